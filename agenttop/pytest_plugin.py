"""agenttop as a pytest plugin: the release gate at the end of a test session.

Off unless asked: ``pytest --agenttop`` (the shipped rules) or ``--agenttop=RULES``. For
the session it starts a receiver on free loopback ports writing ``--agenttop-db``, points
the OpenTelemetry SDK of the code under test at it (the ``OTEL_EXPORTER_OTLP_*``
environment variables, and a tracer, meter and logger provider when none is configured),
and when the tests are done runs ``agenttop check`` over what the session sent (with
``--agenttop-baseline FILE``, against that baseline too). A failed gate fails the session
with a short summary; the database stays for ``agenttop ui --db ...``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

_STATE = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agenttop", "agenttop release gate")
    group.addoption("--agenttop", nargs="?", const="", default=None, metavar="RULES",
                    help="Receive the session's OpenTelemetry and gate it with agenttop "
                    "check at the end: the shipped rules, or the rules file RULES.")
    group.addoption("--agenttop-baseline", default=None, metavar="FILE",
                    help="Also compare the session with this baseline (a summary saved by "
                    "agenttop check --save-baseline, a database or an OTLP/JSON file).")
    group.addoption("--agenttop-db", default=None, metavar="FILE",
                    help="Where the session's telemetry is kept (replaced at each session; "
                    "default: .agenttop/pytest.db under the root directory).")
    group.addoption("--agenttop-allow-inconclusive", action="store_true", default=False,
                    help="Pass the session when the gate is inconclusive (too few samples).")


def pytest_configure(config: pytest.Config) -> None:
    rules = config.getoption("agenttop")
    if rules is None or hasattr(config, "workerinput"):  # off, or an xdist worker
        return
    from agenttop.analysis.rules import RulesError, load_regression, load_rules
    from agenttop.config import ServeSettings
    from agenttop.serve import BackgroundService

    rules = str(Path(rules).resolve()) if rules else None
    try:  # a bad rules file is said now, not after the tests
        load_rules(rules)
        load_regression(rules)
    except RulesError as e:
        raise pytest.UsageError(f"--agenttop: {e}") from None
    db = Path(config.getoption("agenttop_db") or config.rootpath / ".agenttop" / "pytest.db")
    db.parent.mkdir(parents=True, exist_ok=True)
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    background = BackgroundService(ServeSettings(db=db, grpc="127.0.0.1:0",
                                                 http="127.0.0.1:0", decoders=1))
    service = background.__enter__()
    grpc = f"127.0.0.1:{service.grpc_port}"
    os.environ.update({
        # OTLP/gRPC, the Python SDK's default; an OTLP/HTTP exporter can be pointed at
        # AGENTTOP_OTLP_HTTP_ENDPOINT.
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{grpc}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "AGENTTOP_OTLP_HTTP_ENDPOINT": f"http://127.0.0.1:{service.http_port}",
    })
    config.stash[_STATE] = {"background": background, "db": db, "rules": rules,
                            "since_ns": time.time_ns(), "providers": _providers(grpc),
                            "result": None}


def _providers(endpoint: str) -> list[Any]:
    """A tracer, meter and logger provider exporting to agenttop over OTLP/gRPC, for each
    kind the code under test has not configured; the ones made (flushed at the end)."""
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    made: list[Any] = []
    # The API's stand-ins until something sets a provider.
    if type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True)))
        trace.set_tracer_provider(tracer_provider)
        made.append(tracer_provider)
    if type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider":
        meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=endpoint, insecure=True))])
        metrics.set_meter_provider(meter_provider)
        made.append(meter_provider)
    if type(_logs.get_logger_provider()).__name__ == "ProxyLoggerProvider":
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=endpoint, insecure=True)))
        _logs.set_logger_provider(logger_provider)
        made.append(logger_provider)
    return made


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    for provider in state["providers"]:
        provider.shutdown()  # flushes what the session sent
    state["background"].__exit__(None, None, None)  # every span acknowledged is on disk
    args = [sys.executable, "-m", "agenttop.cli", "check", "--db", str(state["db"]),
            "--since", _iso(state["since_ns"])]
    if state["rules"]:
        args += ["--rules", state["rules"]]
    baseline = session.config.getoption("agenttop_baseline")
    if baseline:
        args += ["--baseline", baseline]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    state["result"] = done
    allowed = session.config.getoption("agenttop_allow_inconclusive")
    gate_failed = done.returncode != 0 and not (done.returncode == 3 and allowed)
    if gate_failed and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config
                            ) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state["result"] is None:
        return
    done = state["result"]
    verdict = {0: "passed", 1: "FAILED", 3: "inconclusive"}.get(done.returncode, "error")
    terminalreporter.section(f"agenttop release gate {verdict}", sep="=",
                             red=done.returncode != 0, green=done.returncode == 0)
    for line in (done.stdout + done.stderr).rstrip().splitlines():
        terminalreporter.line(line)
    terminalreporter.line(f"telemetry kept in {state['db']}: agenttop ui --db {state['db']}")
