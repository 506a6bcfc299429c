"""The ``agenttop`` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from agenttop import __version__
from agenttop.config import (
    DEFAULT_GRPC,
    ServeSettings,
    default_db_path,
    format_address,
    parse_address,
    parse_duration,
)

# gRPC's C core would print its own diagnostics (a failed bind, say) to the terminal;
# agenttop reports those itself, in one line. Set before grpc is first imported.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def _fail(message: str) -> None:
    click.echo(f"agenttop: error: {message}", err=True)
    sys.exit(1)


def _settings_error(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"--{where.replace('_', '-')}: {message}" if where else message


DB_OPTION = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=default_db_path,
    show_default="a file in the user data directory",
    envvar="AGENTTOP_DB",
    help="SQLite database file (env AGENTTOP_DB).",
)


RULES_OPTION = click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Alert rules (TOML). Default: the shipped rules, which follow the lesson's "
    "thresholds: prompt failures > 5 %, tool errors > 2 %, any memory or auth failure, "
    "runtime p99 > 5 s, output_quality_score < 0.9.",
)


def _load_rules(path: Path | None) -> list:
    """The rules, or exit 2 with the file, line, rule and field of the first problem."""
    from agenttop.analysis.alerts import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as e:
        click.echo(f"agenttop: error: {e}", err=True)
        sys.exit(2)


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
@click.option(
    "--keep-pii",
    is_flag=True,
    help="Store attribute values and log bodies as received. By default PII found in them "
    "(SSNs, card numbers, e-mail addresses, phone numbers, IPs, API keys) is replaced by a "
    "token such as [SSN] before anything is written.",
)
@click.option(
    "--max-value-kb", type=int, default=64, show_default=True,
    help="Longest string value stored, in KiB (attributes, log bodies): longer ones are cut "
    "and end in a marker such as …[truncated 1,234 bytes], before PII scanning.",
)
@RULES_OPTION
@click.option(
    "--on-alert",
    metavar="COMMAND",
    help="Run COMMAND whenever an alert fires or resolves, with the alert as JSON on its "
    "standard input (no shell; at most 10 s each).",
)
@click.option(
    "--alert-interval",
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between alert evaluations.",
)
@click.option(
    "--token",
    envvar="AGENTTOP_TOKEN",
    metavar="TOKEN",
    default=None,
    help="Require 'authorization: Bearer TOKEN' metadata on every OTLP call; others get "
    "UNAUTHENTICATED (env AGENTTOP_TOKEN, which other users cannot see in `ps`).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow listening on a non-loopback address without --token.",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Serve TLS with this PEM certificate (chain); needs --tls-key.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="The PEM private key of --tls-cert.")
@click.option("--tls-client-ca", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Mutual TLS: clients must present a certificate signed by "
              "a CA in this PEM file.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="'json': start lines, alert transitions and warnings "
              "as JSON lines on stderr, for log shippers.")
def serve(
    db: Path, grpc_address: str, max_message_mb: int, queue_spans: int, sync: str,
    decoders: int | None, keep_pii: bool, max_value_kb: int, rules: Path | None,
    on_alert: str | None, alert_interval: float, token: str | None, insecure: bool,
    tls_cert: Path | None, tls_key: Path | None, tls_client_ca: Path | None, log_format: str,
) -> None:
    """Receive OTLP into the database until interrupted (no UI).

    Every Export is answered only after its rows are committed. Stop with Ctrl-C or
    SIGTERM: accepted data is flushed before exit.
    """
    from agenttop.analysis.alerts import AlertCommand
    from agenttop.otlp.grpc_server import BindError
    from agenttop.serve import TLSError, exposure_problem, serve_forever
    from agenttop.store import StoreError

    try:
        settings = ServeSettings(
            db=db, grpc=grpc_address, max_message_mb=max_message_mb,
            queue_spans=queue_spans, sync=sync, decoders=decoders, keep_pii=keep_pii,
            max_value_kb=max_value_kb, rules=rules, alert_interval_s=alert_interval, token=token,
            tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
        )
    except ValidationError as e:
        raise click.UsageError(_settings_error(e)) from None
    problem = None if insecure else exposure_problem(settings)
    if problem:
        click.echo(f"agenttop: error: {problem}", err=True)
        sys.exit(2)
    alert_rules = _load_rules(rules)
    try:
        command = AlertCommand(on_alert) if on_alert else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--on-alert") from None
    try:
        asyncio.run(serve_forever(settings, alert_rules, command, log_format))
    except (StoreError, BindError, TLSError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        pass


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@main.command()
@DB_OPTION
@click.option("--window", default="15m", show_default=True, callback=_duration,
              help="How far back to look: 90s, 15m, 2h, 7d... The window ends at the newest "
              "data in the file, so a gate run after a test run sees that run.")
@RULES_OPTION
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def check(db: Path, window: int, rules: Path | None, output: str) -> None:
    """Release gate: each layer's figures against the alert rules.

    Every rule is evaluated over --window. Exit status: 0 if every rule holds, 1 if any
    is breached, 2 on a usage error or an unreadable file.
    """
    from agenttop.analysis.alerts import check_rules
    from agenttop.analysis.health import layer_health, metric_health
    from agenttop.report import render_check
    from agenttop.store import StoreError, open_reader
    from agenttop.store.queries import latest_data_ns

    alert_rules = [r.model_copy(update={"window": window}) for r in _load_rules(rules)]
    try:
        conn = open_reader(db)
    except StoreError as e:
        click.echo(f"agenttop: error: {e}", err=True)
        sys.exit(2)
    try:
        at_ns = latest_data_ns(conn)
        if at_ns is None:
            layers, metrics = {}, {}
        else:
            names = sorted({r.metric for r in alert_rules if r.metric})
            layers = layer_health(conn, at_ns, [window])
            metrics = metric_health(conn, at_ns, [window], names) if names else {}
        checks = check_rules(alert_rules, layers, metrics)
    finally:
        conn.close()
    click.echo(render_check(db, window, at_ns, layers, checks, output), nl=False)
    sys.exit(1 if any(c.status == "breached" for c in checks) else 0)



@main.command()
@DB_OPTION
@RULES_OPTION
def ui(db: Path, rules: Path | None) -> None:
    """Watch a database in the terminal UI (any number may watch one file).

    The file may be written by a running `agenttop serve`; if it does not exist yet, the
    UI waits for it.
    """
    from agenttop.tui.app import make_app

    make_app(db, rules=_load_rules(rules)).run()


ENDPOINT_OPTION = click.option(
    "--endpoint", default=DEFAULT_GRPC, show_default=True, metavar="HOST:PORT",
    help="The OTLP/gRPC endpoint to send to.")


@main.command()
@ENDPOINT_OPTION
@click.option("--rate", type=click.FloatRange(0.1, 1000), default=2.0, show_default=True,
              help="Agent runs (traces) per second.")
@click.option("--duration", type=click.FloatRange(min=0.1), default=None,
              help="Seconds to run.  [default: until interrupted]")
@click.option("--seed", type=int, default=None, help="Make the traffic reproducible.")
@click.option("--failure-scale", type=click.FloatRange(0, 20), default=1.0, show_default=True,
              help="Multiply every injected failure and leak rate (0: a healthy system).")
def demo(endpoint: str, rate: float, duration: float | None, seed: int | None,
         failure_scale: float) -> None:
    """Send simulated multi-agent traffic (traces, metrics, logs) through the OpenTelemetry SDK.

    A support agent and its helpers plan, call LLMs and tools, retrieve from memory,
    checkpoint and authenticate users; at steady rates they time out, hit rate limits,
    fail schema validation and auth, run slow, leak an SSN or a card number, and receive
    prompt-injection attempts: everything agenttop's dashboard watches.
    """
    import threading

    from agenttop.demo import DemoSettings, run_demo

    try:
        parse_address(endpoint)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--endpoint") from None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    settings = DemoSettings(endpoint=endpoint, rate=rate, duration_s=duration, seed=seed,
                            failure_scale=failure_scale)
    stats = run_demo(settings, stop)
    click.echo(f"agenttop demo: {stats.summary()}", err=True)


@main.command()
@DB_OPTION
@click.option("--grpc", "grpc_address", default=DEFAULT_GRPC, show_default=True,
              metavar="HOST:PORT", help="Where the receiver listens for OTLP/gRPC.")
@click.option("--demo", "with_demo", is_flag=True,
              help="Also send simulated agent traffic, so every panel comes alive.")
@RULES_OPTION
@click.option("--keep-pii", is_flag=True, help="Store PII as received (see serve --help).")
def run(db: Path, grpc_address: str, with_demo: bool, rules: Path | None,
        keep_pii: bool) -> None:
    """Receive OTLP and watch it live: `serve` in the background, the UI in front.

    Point your exporters at the --grpc address. Quitting the UI stops the receiver
    cleanly (everything received is flushed); its log is written beside the database.
    With --demo and no --db, the simulated traffic goes to demo.db in the user data
    directory, never into your default database.
    """
    from agenttop.launcher import Children, LaunchError, log_path
    from agenttop.tui.app import make_app

    ctx = click.get_current_context()
    if with_demo and ctx.get_parameter_source("db") is click.core.ParameterSource.DEFAULT:
        # Simulated traffic never goes into the database of your real agents.
        db = db.with_name("demo.db")

    try:
        grpc_address = format_address(*parse_address(grpc_address))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--grpc") from None
    alert_rules = _load_rules(rules)  # a bad file is reported here, not in the child's log
    db = db.expanduser()
    try:
        db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        _fail(f"cannot create directory {db.parent}: {e.strerror}")
    children = Children(log_path(db))
    extra = [*(["--rules", str(rules)] if rules else []), *(["--keep-pii"] if keep_pii else [])]
    try:
        serve_proc = children.start_serve(db, grpc_address, extra)
        if with_demo:
            children.start(["demo", "--endpoint", grpc_address])

        def serve_health() -> str | None:
            if serve_proc.poll() is None:
                return None
            return f"agenttop serve exited ({serve_proc.returncode}); see {children.log}"

        make_app(db, rules=alert_rules, health_check=serve_health).run()
    except LaunchError as e:
        children.stop()
        _fail(str(e))
    finally:
        children.stop()


if __name__ == "__main__":
    main()
