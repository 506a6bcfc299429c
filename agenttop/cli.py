"""The ``agenttop`` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import click

from agenttop import __version__
from agenttop.config import (
    DEFAULT_CONFIG_SHOWN,
    DEFAULT_GRPC,
    RUN_DOES_NOT_PASS,
    CheckSettings,
    ServeSettings,
    UiSettings,
    default_config_path,
    default_db_path,
    home_relative,
    parse_address,
)
from agenttop.options import build, option, options, serve_args

# gRPC's C core would print its own diagnostics (a failed bind, say) to the terminal;
# agenttop reports those itself, in one line. Set before grpc is first imported.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def _fail(message: str) -> None:
    click.echo(f"agenttop: error: {message}", err=True)
    sys.exit(1)


def _usage_error(message: str) -> NoReturn:
    """Exit 2 (a usage error, an unusable file) saying why."""
    click.echo(f"agenttop: error: {message}", err=True)
    sys.exit(2)


DB_OPTION = option("db", UiSettings.model_fields["db"], with_default=True)
RULES_OPTION = option("rules", UiSettings.model_fields["rules"])


def _load_prices(path: Path | None) -> Any:
    """The price book, or exit 2 with the file, line, entry and field of the first
    problem."""
    from agenttop.analysis.prices import PricesError, load_price_book

    try:
        return load_price_book(path)
    except PricesError as e:
        click.echo(f"agenttop: error: {e}", err=True)
        sys.exit(2)


CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    envvar="AGENTTOP_CONFIG", default=None, metavar="FILE",
    help="Your UI settings (TOML): theme, bell, window and a keymap of binding ids (listed "
         f"on the help screen). A missing file means the defaults (env AGENTTOP_CONFIG).  "
         f"[default: {DEFAULT_CONFIG_SHOWN}]")


def _load_preferences(path: Path | None) -> Any:
    """The UI settings, or exit 2 naming every problem with its line."""
    from agenttop.tui.app import binding_ids
    from agenttop.tui.preferences import PreferencesError, load_preferences

    try:
        return load_preferences((path or default_config_path()).expanduser(), binding_ids())
    except PreferencesError as e:
        _usage_error(str(e))


def _load_rules(path: Path | None, part: str = "rules") -> Any:
    """The rules (or ``part="regression"``: the [regression] tolerances) of a rules file,
    or exit 2 with the file, line, rule and field of the first problem."""
    from agenttop.analysis.rules import RulesError, load_regression, load_rules

    try:
        return (load_rules if part == "rules" else load_regression)(path)
    except RulesError as e:
        _usage_error(str(e))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agenttop")
def main() -> None:
    """agenttop: `top` for AI-agent systems.

    Receive OpenTelemetry traces, metrics and logs from your agents into one SQLite
    file, and watch per-layer health, alerts and PII findings live in the terminal.
    """


@main.command()
@options(ServeSettings)
def serve(**values: Any) -> None:
    """Receive OTLP into the database until interrupted (no UI).

    Every Export is answered only after its rows are committed. Stop with Ctrl-C or
    SIGTERM: accepted data is flushed before exit. Exit status 1 when it cannot start
    (the port is taken, the file is not usable or already written by another serve) or
    cannot go on (the file was deleted); it then creates no database file.
    """
    from agenttop.analysis.hooks import AlertCommand
    from agenttop.otlp.decode import DecoderStartError
    from agenttop.otlp.receiver import BindError
    from agenttop.serve import TLSError, exposure_problem, serve_forever
    from agenttop.store import StoreError

    token = values.get("token")
    if token is not None and token != token.strip():
        click.echo("agenttop: warning: the token has whitespace around it (a trailing newline "
                   "from a secret file?); it was removed", err=True)
    settings = build(ServeSettings, values)
    problem = None if settings.insecure else exposure_problem(settings)
    if problem:
        click.echo(f"agenttop: error: {problem}", err=True)
        sys.exit(2)
    alert_rules = _load_rules(settings.rules)
    _load_prices(settings.prices)  # a bad file is reported before anything starts
    command = AlertCommand(settings.on_alert) if settings.on_alert else None
    try:
        asyncio.run(serve_forever(settings, alert_rules, command, settings.log_format))
    except (StoreError, BindError, TLSError, DecoderStartError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        pass


EXIT_INCONCLUSIVE = 3


@main.command()
@options(CheckSettings)
@click.argument("files", nargs=-1, metavar="[FILE]...",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(files: tuple[Path, ...], **values: Any) -> None:
    """Release gate: each layer's figures against the alert rules.

    FILE: agenttop databases or OTLP/JSON files (one request, or JSON lines; gzip or not),
    as a test run's exporter wrote them; default --db. OTLP/JSON files, several files, or
    --where make a run: what they hold (of the resources --where names, between --since
    and --until; of a database, its traces and their logs) is loaded through the
    receiver's path into a temporary database and judged whole. Every rule is judged on
    at least its min_samples samples. Exit status: 0 pass (every rule judged, and each
    holds); 1 fail (a rule is breached); 2 a usage error, an unreadable file or an empty
    rules file; 3 inconclusive (no data, or a rule below its minimum samples: they are
    named with their counts; --allow-inconclusive makes this 0).
    """
    from agenttop.analysis.baseline import compare, summarize
    from agenttop.analysis.evaluator import check_rules, verdict
    from agenttop.analysis.health import evaluation_health, layer_health, metric_health
    from agenttop.report import render_check
    from agenttop.store.queries import (
        clock_skew,
        earliest_data_ns,
        latest_arrival_ns,
        latest_data_ns,
    )

    settings = build(CheckSettings, values)
    update: dict[str, Any] = {}
    if settings.min_samples is not None:
        update["min_samples"] = settings.min_samples
    alert_rules = _load_rules(settings.rules)
    if not alert_rules:
        click.echo(f"agenttop: error: {settings.rules}: no rules to check", err=True)
        sys.exit(2)
    inputs = files or (settings.db,)
    run = len(inputs) > 1 or bool(settings.where) or not _is_database(inputs[0])
    with tempfile.TemporaryDirectory(prefix="agenttop-check-") as tmp:
        db = _load_run(inputs, settings, Path(tmp) / "run.db") if run else inputs[0]
        conn = _open_reader(db)
        try:
            at_ns = settings.until_ns or (latest_data_ns if run else latest_arrival_ns)(conn)
            first_ns = settings.since_ns or (earliest_data_ns(conn) if run else None)
            window = settings.window_s or (
                900 if first_ns is None or at_ns is None
                else max(1, -(-(at_ns - first_ns) // 10**9)))  # whole seconds, rounded up
            newest_ns = latest_data_ns(conn)
            skew = clock_skew(conn)
            alert_rules = [r.model_copy(update={**update, "window": window})
                           for r in alert_rules]
            if at_ns is None:
                layers, metrics, evals = {}, {}, {}
            else:
                names = sorted({r.metric for r in alert_rules if r.metric})
                layers = layer_health(conn, at_ns, [window])
                metrics = metric_health(conn, at_ns, [window], names) if names else {}
                evals = evaluation_health(conn, at_ns, [window])
            checks = check_rules(alert_rules, layers, metrics, evals)
            label = ", ".join(str(f) for f in inputs)
            summary = None if at_ns is None else summarize(
                conn, at_ns - window * 10**9, at_ns, label)
        finally:
            conn.close()
        comparisons = None
        if settings.baseline is not None:
            base = _baseline(settings, Path(tmp) / "baseline.db")
            comparisons = [] if summary is None else compare(
                base, summary, _load_rules(settings.rules, "regression"))
    if settings.save_baseline is not None and summary is not None:
        try:
            settings.save_baseline.write_text(summary.to_json(), encoding="utf-8")
        except OSError as e:
            _usage_error(f"{settings.save_baseline}: cannot write: {e.strerror or e}")
    result = verdict(checks, comparisons)
    click.echo(render_check(label, window, at_ns, layers, checks, result, skew,
                            newest_ns, settings.output, comparisons,
                            None if settings.baseline is None else str(settings.baseline)),
               nl=False)
    if result == "fail":
        sys.exit(1)
    if result == "inconclusive" and not settings.allow_inconclusive:
        sys.exit(EXIT_INCONCLUSIVE)


def _baseline(settings: CheckSettings, scratch: Path) -> Any:
    """The baseline's summary: as saved, or of the whole database or OTLP/JSON file."""
    from agenttop.analysis.baseline import BaselineError, load_summary, summarize
    from agenttop.store.queries import earliest_data_ns, latest_data_ns

    path = settings.baseline
    assert path is not None
    try:
        saved = load_summary(path)
    except BaselineError as e:
        _usage_error(str(e))
    if saved is not None:
        return saved
    whole = settings.model_copy(update={"where": (), "since_ns": None, "until_ns": None})
    db = path if _is_database(path) else _load_run((path,), whole, scratch)
    conn = _open_reader(db)
    try:
        first, last = earliest_data_ns(conn), latest_data_ns(conn)
        if first is None or last is None:
            _usage_error(f"{path}: the baseline holds no data")
        return summarize(conn, first, last, str(path))
    finally:
        conn.close()


def _is_database(path: Path) -> bool:
    """An SQLite file (by its header), rather than OTLP/JSON."""
    try:
        with path.open("rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return True  # opening it as a database says what is wrong


def _load_run(inputs: tuple[Path, ...], settings: CheckSettings, path: Path) -> Path:
    """The selected telemetry of ``inputs`` loaded into a new database at ``path``, through
    the receiver's path; exit 2 naming what could not be read."""
    from agenttop.config import parse_where
    from agenttop.otlp.export import logs_request, trace_request
    from agenttop.otlp.importer import Importer, open_input
    from agenttop.otlp.selection import Selection
    from agenttop.store.transfer import selected_trace_ids

    selection = Selection(parse_where(settings.where), settings.since_ns, settings.until_ns)
    importer = Importer(path, prices=_load_prices(settings.prices), selection=selection)
    problems: list[str] = []
    try:
        for source in inputs:
            if _is_database(source):
                conn = _open_reader(source)
                try:
                    ids = selected_trace_ids(conn, selection.where, selection.since_ns,
                                             selection.until_ns)
                    chunks = [ids[i:i + 200] for i in range(0, len(ids), 200)]
                    result = importer.load_requests(
                        ((signal, request) for chunk in chunks for signal, request in
                         (("traces", trace_request(conn, chunk)),
                          ("logs", logs_request(conn, chunk)))), str(source))
                finally:
                    conn.close()
            else:
                try:
                    with open_input(source) as stream:
                        result = importer.load(stream, str(source))
                except OSError as e:
                    result = None
                    problems.append(f"{source}: cannot read: {e.strerror or e}")
            if result is not None:
                problems += result.errors
    finally:
        problem = importer.close()
    for text in [*problems, *([problem] if problem else [])]:
        click.echo(f"agenttop: error: {text}", err=True)
    if problems or problem:
        sys.exit(2)
    return path


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
              help="'markdown': one table per section; 'json': the same, for scripts.")
@click.option("--name", default=None, metavar="TEXT",
              help="The application's name in the title.  [default: its busiest root "
              "services]")
def scorecard(db: Path, rules: Path | None, output: str, name: str | None) -> None:
    """agenttop's production-readiness scorecard, filled in from the database.

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

    conn = _open_reader(db)
    try:
        ids = [_trace_id(conn, wanted, db) for wanted in trace_ids]
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


def _trace_id(conn: Any, wanted: str, db: Path) -> str:
    """The one trace id ``wanted`` is or starts; exit 1 saying why not."""
    from agenttop.store.queries import find_trace_ids

    found = find_trace_ids(conn, wanted, limit=2)
    if wanted.lower() in found:
        return wanted.lower()
    if len(found) != 1:
        _fail(f"no trace {wanted!r} in {db}" if not found else
              f"{wanted!r} starts more than one trace id in {db}; give more of it")
    return found[0]


@main.command()
@DB_OPTION
@click.argument("trace_a", metavar="TRACE_A")
@click.argument("trace_b", metavar="TRACE_B")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="'text' for people, 'json' for scripts.")
def diff(db: Path, trace_a: str, trace_b: str, output: str) -> None:
    """Compare two traces (each a trace id or a unique prefix of one): B against A.

    Their span trees are aligned by layer, operation, and tool or model, in start order;
    each aligned pair shows its duration, token and cost differences and a status that
    changed, a span only in one trace (an extra tool call, a retry) is marked - (only in
    A) or + (only in B), a changed tool-call sequence is named, and for model calls whose
    answer changed, a line diff of the output messages.
    """
    import json

    from agenttop.analysis.diff import diff_traces, render_text
    from agenttop.store.transfer import trace_spans_as_stored

    conn = _open_reader(db)
    try:
        a, b = (_trace_id(conn, wanted, db) for wanted in (trace_a, trace_b))
        result = diff_traces(trace_spans_as_stored(conn, [a]), trace_spans_as_stored(conn, [b]))
    finally:
        conn.close()
    if output == "json":
        click.echo(json.dumps({"a": a, "b": b, **result.as_json()}, indent=2))
    else:
        click.echo(render_text(result, a[:8], b[:8]), nl=False)


@main.command("import")
@DB_OPTION
@click.argument("files", nargs=-1, required=True, metavar="FILE...",
                type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@option("keep_pii", ServeSettings.model_fields["keep_pii"])
@option("ignore_pii", ServeSettings.model_fields["ignore_pii"])
@option("max_value_kb", ServeSettings.model_fields["max_value_kb"])
@option("prices", ServeSettings.model_fields["prices"])
def import_(db: Path, files: tuple[Path, ...], keep_pii: bool, ignore_pii: tuple[str, ...],
            max_value_kb: int | None, prices: Path | None) -> None:
    """Load OTLP/JSON files (FILE: one request, or JSON lines, gzip or not; - for standard
    input).

    Traces, metrics and logs go through the receiver's path: classification, PII and
    injection scanning, redaction, trace summaries and rollups; a span, log record or data
    point already stored is kept once (importing a file twice adds nothing). Findings
    exported by `agenttop export` are restored as they were. Prints what each file added;
    a line that is not a valid request is reported by file and line number and skipped,
    the rest is imported. Safe while `agenttop serve` writes the same file: both take turns
    at the write lock. Exit status 0, 1 if anything could not be imported, 2 on a usage
    error or an unusable database file.
    """
    from agenttop.otlp.importer import Importer, open_input
    from agenttop.store import StoreError

    limits = build(ServeSettings, {"keep_pii": keep_pii, "ignore_pii": ignore_pii,
                                   "max_value_kb": max_value_kb})
    try:
        importer = Importer(db, policy=limits.scan_policy, prices=_load_prices(prices),
                            max_value_bytes=limits.max_value_kb * 1024)
    except StoreError as e:
        click.echo(f"agenttop: error: {e}", err=True)
        sys.exit(2)
    failed = False
    try:
        for path in files:
            name = "<stdin>" if str(path) == "-" else str(path)
            try:
                stream = sys.stdin.buffer if str(path) == "-" else open_input(path)
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
@options(UiSettings)
@CONFIG_OPTION
def ui(config_path: Path | None, **values: Any) -> None:
    """Watch a database in the terminal UI (any number may watch one file).

    The file may be written by a running `agenttop serve`; if it does not exist yet, the
    UI waits for it.
    """
    from agenttop.tui.app import make_app

    settings = build(UiSettings, values)
    problem = _unreadable(settings.db)
    if problem:
        _fail(problem)
    make_app(settings.db, rules=_load_rules(settings.rules),
             preferences=_load_preferences(config_path)).run()


def _unreadable(db: Path) -> str | None:
    """Why an existing file cannot be watched (not an agenttop database, corrupt, an
    older or newer schema), or None: a file that does not exist yet, or that a receiver
    is creating, is waited for; one locked for a moment is retried by the UI."""
    from agenttop.store import StoreError
    from agenttop.store.db import is_unmigrated, locked_message, open_reader

    db = db.expanduser()
    if not db.is_file() or db.stat().st_size == 0 or is_unmigrated(db):
        return None
    try:
        open_reader(db).close()
    except StoreError as e:
        return None if str(e) == locked_message(db) else str(e)
    return None


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
    if stats.spans and not stats.spans_exported:
        _fail(f"nothing was exported: is a receiver listening on {endpoint}?")
    if stats.export_failures:
        _fail(f"{stats.export_failures} batches of spans were not exported")


@main.command()
@click.option("--demo", "with_demo", is_flag=True,
              help="Also send simulated agent traffic, so every panel comes alive.")
@options(ServeSettings, exclude=RUN_DOES_NOT_PASS)
@CONFIG_OPTION
def run(with_demo: bool, config_path: Path | None, **values: Any) -> None:
    """Receive OTLP and watch it live: `serve` in the background, the UI in front.

    Takes serve's options and passes them on to it. Point your exporters at the --grpc or
    the --http address. Quitting the UI stops the receiver cleanly (everything received is
    flushed); its log is written beside the database. With --demo and no --db, the
    simulated traffic goes to demo.db beside the default database, never into it.
    """
    from agenttop.launcher import Children, LaunchError, exit_reason, log_path, port_in_use
    from agenttop.tui.app import make_app

    if with_demo and values.get("db") is None:
        # Simulated traffic never goes into the database of your real agents.
        values["db"] = default_db_path().with_name("demo.db")
    settings = build(ServeSettings, values)
    settings = settings.model_copy(update={"db": settings.db.expanduser()})
    alert_rules = _load_rules(settings.rules)  # a bad file is said here, not in a log
    preferences = _load_preferences(config_path)
    db = settings.db
    try:
        db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        _fail(f"cannot create directory {db.parent}: {e.strerror}")
    args, env = serve_args(settings, exclude=RUN_DOES_NOT_PASS)
    # Secrets go through the environment: `ps` shows a command line to everyone.
    os.environ.update(env)
    children = Children(log_path(db))
    failed: list[str] = []  # why serve ended before it listened
    try:
        for address in (settings.grpc, settings.http):
            busy = address and port_in_use(address)
            if busy:
                raise LaunchError(busy)
        serve = children.start_serve(args, settings.grpc)
        if with_demo:
            children.start(["demo", "--endpoint", settings.grpc])

        def serve_health() -> str | None:
            reason = serve.failed_start()
            if reason is not None:  # it never came up: say why in one line, as serve would
                failed.append(reason)
                app.call_from_thread(app.exit, None, 1)
            ended = exit_reason(serve.proc)
            return ended and f"agenttop serve {ended}; its log: {children.log}"

        greeting = (f"demo traffic goes to {home_relative(db)}, not your default database"
                    if with_demo else None)
        app = make_app(db, rules=alert_rules, health_check=serve_health,
                       preferences=preferences, greeting=greeting)
        app.run()
    except LaunchError as e:
        failed.append(str(e))
    finally:
        children.stop()
    if failed:
        _fail(failed[0])


if __name__ == "__main__":
    main()
