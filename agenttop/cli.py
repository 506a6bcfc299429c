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
    DEFAULT_HTTP,
    ServeSettings,
    default_db_path,
    format_address,
    format_duration,
    parse_address,
    parse_duration,
    parse_retention,
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


def _retention(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    try:
        return parse_retention(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


RETENTION_OPTION = click.option(
    "--retention", default="7d", show_default=True, metavar="AGE", callback=_retention,
    help="Keep data this long: 12h, 7d, 30d... Whole traces go once they ended (and arrived) "
    "longer ago, with their logs and findings, and so do older logs, metric points, rollups, "
    "resolved alerts and audit rows; 'off' or 0 keeps everything.")
MAX_DB_OPTION = click.option(
    "--max-db-mb", type=click.IntRange(min=0), default=0, show_default=True, metavar="MB",
    help="Keep the database file, with its write-ahead log, under about this many MB "
    "(1 MB = 1,000,000 bytes): once the data passes 7/8 of it, the oldest traces, logs and "
    "points are pruned and the space is given back to the file system. 0: no limit.")


def _http_address(ctx: click.Context, param: click.Parameter, value: str) -> str | None:
    if value.strip().lower() == "off":
        return None
    try:
        return format_address(*parse_address(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


HTTP_OPTION = click.option(
    "--http", "http_address", default=DEFAULT_HTTP, show_default=True,
    metavar="HOST:PORT|off", callback=_http_address,
    help="Where to listen for OTLP/HTTP (POST /v1/traces, /v1/metrics, /v1/logs; protobuf or "
    "JSON, gzip or not) and the probes GET /healthz (up) and /readyz (taking data); "
    "'off': no HTTP.")


def _load_rules(path: Path | None) -> list:
    """The rules, or exit 2 with the file, line, rule and field of the first problem."""
    from agenttop.analysis.rules import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as e:
        click.echo(f"agenttop: error: {e}", err=True)
        sys.exit(2)


class _HeaderType(click.ParamType):
    """``NAME: VALUE``; in the environment variable, one header a line."""

    name = "header"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line for line in rv.splitlines() if line.strip()]


FORWARD_HEADERS_ENV = "AGENTTOP_FORWARD_HEADERS"

UPSTREAM_OPTIONS = (
    click.option(
        "--forward", metavar="URL", default=None,
        help="Send everything received on to an upstream OTLP collector or backend "
        "(Jaeger, Tempo, Phoenix, another agenttop): grpc://HOST:PORT or grpcs://HOST:PORT "
        "for OTLP/gRPC (port 4317 / 443 by default), http://HOST:PORT[/PREFIX] or https://... "
        "for OTLP/HTTP protobuf (POST PREFIX/v1/traces, /v1/metrics, /v1/logs). Requests are "
        "forwarded once stored, as the client sent them: agenttop redacts PII in what it "
        "stores, not in what it forwards. An unreachable upstream never slows ingest: "
        "requests wait in memory (--forward-queue-mb) and are retried with backoff; "
        "answers such as 400 or INVALID_ARGUMENT count them as failed."),
    click.option(
        "--forward-header", "forward_header", metavar="'NAME: VALUE'", multiple=True,
        type=_HeaderType(), envvar=FORWARD_HEADERS_ENV,
        help="Send this header (gRPC metadata) with every forwarded call, e.g. "
        "'authorization: Bearer TOKEN' for the upstream (--token is for incoming calls only). "
        f"Repeatable; env {FORWARD_HEADERS_ENV}, one header a line, keeps values out of `ps`."),
    click.option(
        "--forward-queue-mb", type=click.IntRange(1, 65536), default=64, show_default=True,
        help="Memory for requests waiting to be forwarded, in MiB; when it is full the oldest "
        "are dropped (and counted)."),
    click.option(
        "--prometheus", metavar="HOST:PORT", default=None,
        help="Serve Prometheus metrics at http://HOST:PORT/metrics (off by default; 9464 is "
        "the usual port): per layer, spans, failures, failure ratio and latency quantiles "
        "over 1m, 5m and 15m (a window label); firing alerts; ingest and forwarding counters. "
        "With --token, scrapes need 'Authorization: Bearer TOKEN'; with --tls-cert it is "
        "HTTPS. Like the OTLP ports, a non-loopback address needs --token or --insecure."),
)


def upstream_options(command):
    """--forward, --forward-header, --forward-queue-mb and --prometheus (serve and run)."""
    for option in reversed(UPSTREAM_OPTIONS):
        command = option(command)
    return command


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
    help="Where to listen for OTLP/gRPC and the standard gRPC health service (which needs "
    "no token). Port 0 picks a free port.",
)
@HTTP_OPTION
@click.option(
    "--max-message-mb",
    default=16,
    show_default=True,
    type=int,
    help="Largest request accepted, and the most a gzip body may inflate to; larger ones "
    "get RESOURCE_EXHAUSTED (HTTP 413).",
)
@click.option(
    "--max-inflight-mb",
    default=64,
    show_default=True,
    type=int,
    help="Request bodies held in memory at once, in MiB, over all calls being read, decoded "
    "or written (a call counts as --max-message-mb until its body is read). Calls past it "
    "wait up to a second, then are told UNAVAILABLE and retry.",
)
@click.option(
    "--queue-spans",
    default=20_000,
    show_default=True,
    type=int,
    help="Items (spans, points, log records) accepted but not yet committed; past it, "
    "exporters are told UNAVAILABLE (HTTP 503) and retry.",
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
@RETENTION_OPTION
@MAX_DB_OPTION
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
    help="Require 'authorization: Bearer TOKEN' (gRPC metadata, HTTP header) on every OTLP "
    "call; others get UNAUTHENTICATED (HTTP 401). Health checks need none (env "
    "AGENTTOP_TOKEN, which other users cannot see in `ps`).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow listening on a non-loopback address without --token.",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Serve TLS (gRPC) and HTTPS (HTTP) with this PEM certificate "
              "(chain); needs --tls-key.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="The PEM private key of --tls-cert.")
@click.option("--tls-client-ca", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Mutual TLS: clients must present a certificate signed by "
              "a CA in this PEM file.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="'json': start lines, alert transitions and warnings "
              "as JSON lines on stderr, for log shippers.")
@upstream_options
def serve(
    db: Path, grpc_address: str, http_address: str | None, max_message_mb: int,
    max_inflight_mb: int, queue_spans: int, sync: str,
    decoders: int | None, keep_pii: bool, max_value_kb: int, retention: int | None,
    max_db_mb: int, rules: Path | None,
    on_alert: str | None, alert_interval: float, token: str | None, insecure: bool,
    tls_cert: Path | None, tls_key: Path | None, tls_client_ca: Path | None, log_format: str,
    forward: str | None, forward_header: tuple[str, ...], forward_queue_mb: int,
    prometheus: str | None,
) -> None:
    """Receive OTLP into the database until interrupted (no UI).

    Every Export is answered only after its rows are committed. Stop with Ctrl-C or
    SIGTERM: accepted data is flushed before exit.
    """
    from agenttop.analysis.hooks import AlertCommand
    from agenttop.otlp.receiver import BindError
    from agenttop.serve import TLSError, exposure_problem, serve_forever
    from agenttop.store import StoreError

    try:
        settings = ServeSettings(
            db=db, grpc=grpc_address, http=http_address, max_message_mb=max_message_mb,
            max_inflight_mb=max_inflight_mb,
            queue_spans=queue_spans, sync=sync, decoders=decoders, keep_pii=keep_pii,
            max_value_kb=max_value_kb, rules=rules, alert_interval_s=alert_interval, token=token,
            retention_s=retention, max_db_mb=max_db_mb or None,
            tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
            forward=forward, forward_header=forward_header, forward_queue_mb=forward_queue_mb,
            prometheus=prometheus,
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
    from agenttop.analysis.evaluator import check_rules
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


def _open_reader(db: Path):
    """A read connection, or exit 2 with why not."""
    from agenttop.store import StoreError, open_reader

    try:
        return open_reader(db)
    except StoreError as e:
        click.echo(f"agenttop: error: {e}", err=True)
        sys.exit(2)


@main.command()
@DB_OPTION
@RULES_OPTION
@click.option("--format", "output", type=click.Choice(["markdown", "json"]),
              default="markdown", show_default=True,
              help="'markdown': the lesson's tables; 'json': the same, for scripts.")
@click.option("--name", default=None, metavar="TEXT",
              help="The application's name in the title.  [default: its busiest root "
              "services]")
def scorecard(db: Path, rules: Path | None, output: str, name: str | None) -> None:
    """The production-readiness scorecard of lesson 8, filled in from the database.

    Each of its 24 items (observability, testing, security, reliability, deployment) is
    "pass" or "fail" from what was received: logs, metrics and traces, the alert rules
    and their episodes, PII in outputs, prompt injection in inputs, rejected and refused
    callers, retries, checkpoints, graceful degradation, health probes. Items telemetry
    cannot settle (a runbook, a test suite's pass rate) are "not observable", never
    guessed. Exit status 0 whatever the verdict; 2 on a usage error or an unreadable file.
    """
    from agenttop.analysis.scorecard import build_scorecard, render_json, render_markdown

    alert_rules = _load_rules(rules)
    conn = _open_reader(db)
    try:
        card = build_scorecard(conn, alert_rules, application=name,
                               rules_source=str(rules) if rules else "shipped defaults")
    finally:
        conn.close()
    click.echo(render_json(card) if output == "json" else render_markdown(card), nl=False)


@main.command()
@DB_OPTION
@click.argument("trace_ids", nargs=-1, required=True, metavar="TRACE_ID...")
@click.option("--format", "output", type=click.Choice(["otlp-json"]), default="otlp-json",
              show_default=True, help="OTLP's JSON encoding, as OTLP/HTTP endpoints accept it.")
@click.option("--signal", type=click.Choice(["all", "traces", "logs"]), default="all",
              show_default=True,
              help="'all': JSON lines, the traces request then (when there are any) the logs "
              "request; 'traces' or 'logs': that request alone, one JSON document.")
@click.option("-o", "--output", "target", type=click.File("wb", lazy=True), default="-",
              metavar="FILE", help="Write to FILE instead of standard output.")
def export(db: Path, trace_ids: tuple[str, ...], output: str, signal: str, target) -> None:
    """Write traces as OTLP/JSON requests (TRACE_ID: a trace id or a unique prefix of one).

    The traces request holds the spans with their resources, scopes, attributes, events,
    links and status; the logs request the traces' log records, and their PII and
    injection findings as log records named agenttop.finding. Values are written as
    stored: what was redacted stays redacted. POST a traces request to /v1/traces and a
    logs request to /v1/logs of any OTLP/HTTP endpoint (Content-Type: application/json),
    or load the file into another database with `agenttop import`.
    """
    import orjson

    from agenttop.otlp.export import logs_request, trace_request
    from agenttop.otlp.otlp_json import to_json
    from agenttop.store.queries import find_trace_ids

    conn = _open_reader(db)
    try:
        ids = []
        for wanted in trace_ids:
            found = find_trace_ids(conn, wanted, limit=2)
            if wanted.lower() in found:
                found = [wanted.lower()]
            if len(found) != 1:
                _fail(f"no trace {wanted!r} in {db}" if not found else
                      f"{wanted!r} starts more than one trace id in {db}; give more of it")
            ids.append(found[0])
        requests = {"traces": trace_request(conn, ids), "logs": logs_request(conn, ids)}
    finally:
        conn.close()
    keys = {"traces": "resourceSpans", "logs": "resourceLogs"}
    for kind, request in requests.items():
        if signal not in ("all", kind) or (signal == "all" and kind == "logs"
                                           and not request.resource_logs):
            continue
        document = to_json(request) or {keys[kind]: []}
        target.write(orjson.dumps(document) + b"\n")


@main.command("import")
@DB_OPTION
@click.argument("files", nargs=-1, required=True, metavar="FILE...",
                type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--keep-pii", is_flag=True, help="Store PII as received (see serve --help).")
@click.option("--max-value-kb", type=click.IntRange(1, 1024 * 1024), default=64,
              show_default=True, help="Longest string value stored, in KiB (see serve --help).")
def import_(db: Path, files: tuple[Path, ...], keep_pii: bool, max_value_kb: int) -> None:
    """Load OTLP/JSON files (FILE: one request, or JSON lines; - for standard input).

    Traces, metrics and logs go through the receiver's path: classification, PII and
    injection scanning, redaction, trace summaries and rollups; a span already stored is
    kept once (log records and data points are added again). Findings exported by
    `agenttop export` are restored as they were. Prints what each file added; a line that
    is not a valid request is reported by file and line number and skipped, the rest is
    imported. Safe while `agenttop serve` writes the same file: both take turns at the
    write lock. Exit status 0, 1 if anything could not be imported, 2 on a usage error or
    an unusable database file.
    """
    from agenttop.otlp.importer import Importer
    from agenttop.store import StoreError

    try:
        importer = Importer(db, redact=not keep_pii, max_value_bytes=max_value_kb * 1024)
    except StoreError as e:
        click.echo(f"agenttop: error: {e}", err=True)
        sys.exit(2)
    failed = False
    try:
        for path in files:
            name = "<stdin>" if str(path) == "-" else str(path)
            try:
                stream = sys.stdin.buffer if str(path) == "-" else path.open("rb")
            except OSError as e:
                click.echo(f"agenttop: error: {name}: cannot read: {e.strerror}", err=True)
                failed = True
                continue
            try:
                result = importer.load(stream, name)
            finally:
                if stream is not sys.stdin.buffer:
                    stream.close()
            for problem in result.errors:
                click.echo(f"agenttop: error: {problem}", err=True)
            failed = failed or bool(result.errors)
            click.echo(result.summary())
    finally:
        problem = importer.close()
    if problem:
        click.echo(f"agenttop: error: {problem}", err=True)
    sys.exit(1 if failed or problem else 0)



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
@HTTP_OPTION
@click.option("--demo", "with_demo", is_flag=True,
              help="Also send simulated agent traffic, so every panel comes alive.")
@RULES_OPTION
@click.option("--keep-pii", is_flag=True, help="Store PII as received (see serve --help).")
@RETENTION_OPTION
@MAX_DB_OPTION
@upstream_options
def run(db: Path, grpc_address: str, http_address: str | None, with_demo: bool,
        rules: Path | None, keep_pii: bool, retention: int | None, max_db_mb: int,
        forward: str | None, forward_header: tuple[str, ...],
        forward_queue_mb: int, prometheus: str | None) -> None:
    """Receive OTLP and watch it live: `serve` in the background, the UI in front.

    Point your exporters at the --grpc or the --http address. Quitting the UI stops the receiver
    cleanly (everything received is flushed); its log is written beside the database.
    With --demo and no --db, the simulated traffic goes to demo.db in the user data
    directory, never into your default database.
    """
    from agenttop.launcher import Children, LaunchError, exit_reason, log_path
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
    extra = [*(["--rules", str(rules)] if rules else []), *(["--keep-pii"] if keep_pii else []),
             "--http", http_address or "off",
             "--retention", "off" if retention is None else format_duration(retention),
             "--max-db-mb", str(max_db_mb),
             *(["--forward", forward, "--forward-queue-mb", str(forward_queue_mb)]
               if forward else []),
             *(["--prometheus", prometheus] if prometheus else [])]
    if forward_header:  # through the environment: `ps` shows a command line to everyone
        os.environ[FORWARD_HEADERS_ENV] = "\n".join(forward_header)
    try:
        serve_proc = children.start_serve(db, grpc_address, extra)
        if with_demo:
            children.start(["demo", "--endpoint", grpc_address])

        def serve_health() -> str | None:
            ended = exit_reason(serve_proc)
            return ended and f"agenttop serve {ended}; its log: {children.log}"

        make_app(db, rules=alert_rules, health_check=serve_health).run()
    except LaunchError as e:
        children.stop()
        _fail(str(e))
    finally:
        children.stop()


if __name__ == "__main__":
    main()
