"""The ``agenttop`` command line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from agenttop import __version__
from agenttop.config import DEFAULT_GRPC, ServeSettings, default_db_path

# gRPC's C core would print its own diagnostics (a failed bind, say) to the terminal;
# agenttop reports those itself, in one line. Set before grpc is first imported.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def _fail(message: str) -> None:
    click.echo(f"agenttop: error: {message}", err=True)
    sys.exit(1)


def _settings_error(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "settings"
    message = first["msg"].removeprefix("Value error, ")
    return f"--{where.replace('_', '-')}: {message}"


DB_OPTION = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=default_db_path,
    show_default="a file in the user data directory",
    envvar="AGENTTOP_DB",
    help="SQLite database file (env AGENTTOP_DB).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agenttop")
def main() -> None:
    """agenttop: `top` for AI-agent systems.

    Receive OpenTelemetry traces, metrics and logs from your agents into one SQLite
    file, and watch per-layer health, alerts and PII findings live in the terminal.
    """


@main.command()
@DB_OPTION
@click.option(
    "--grpc",
    "grpc_address",
    default=DEFAULT_GRPC,
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen for OTLP/gRPC. Port 0 picks a free port.",
)
@click.option(
    "--max-message-mb",
    default=16,
    show_default=True,
    type=int,
    help="Largest request accepted; larger ones get RESOURCE_EXHAUSTED.",
)
@click.option(
    "--queue-spans",
    default=50_000,
    show_default=True,
    type=int,
    help="Items (spans, points, log records) accepted but not yet committed; past it, "
    "exporters are told UNAVAILABLE and retry.",
)
@click.option(
    "--sync",
    type=click.Choice(["full", "normal"]),
    default="full",
    show_default=True,
    help="SQLite synchronous mode: 'full' survives power loss, 'normal' only process crashes.",
)
@click.option(
    "--decoders",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes that decode requests.  [default: by the number of CPU cores]",
)
def serve(
    db: Path, grpc_address: str, max_message_mb: int, queue_spans: int, sync: str,
    decoders: int | None,
) -> None:
    """Receive OTLP into the database until interrupted (no UI).

    Every Export is answered only after its rows are committed. Stop with Ctrl-C or
    SIGTERM: accepted data is flushed before exit.
    """
    from agenttop.otlp.grpc_server import BindError
    from agenttop.serve import serve_forever
    from agenttop.store import StoreError

    try:
        settings = ServeSettings(
            db=db, grpc=grpc_address, max_message_mb=max_message_mb,
            queue_spans=queue_spans, sync=sync, decoders=decoders,
        )
    except ValidationError as e:
        raise click.UsageError(_settings_error(e)) from None
    try:
        asyncio.run(serve_forever(settings))
    except (StoreError, BindError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
