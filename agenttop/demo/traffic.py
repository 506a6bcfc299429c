"""Send the simulated agent system's telemetry through the real OpenTelemetry SDK.

This module owns ``run_demo``: one TracerProvider, LoggerProvider and (for the agents)
MeterProvider per service, each with its own resource and OTLP/gRPC exporter; the pacing
of runs; turning each ``RunPlan`` of ``agenttop.demo.scenario`` into spans (explicit start
and end times, so a 10 s run costs no 10 s of waiting), logs in the context of their spans,
and the lesson's metrics; and a clean, bounded shutdown.

The demo may run beside a TUI: it never writes to stdout, and it keeps the SDK's export
warnings (one per failed batch, per exporter) off the terminal, writing instead a single
line to stderr when nothing could be exported for ``STALL_S`` seconds.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from agenttop.demo.scenario import (
    ANOMALY_KINDS,
    FAILURE_KINDS,
    RESEARCH,
    SERVICES,
    SUPPORT,
    RunPlan,
    Scenario,
    SpanPlan,
)

# Short enough that panels move while you watch, long enough to batch a second of runs.
SPAN_DELAY_MS = 500
METRIC_INTERVAL_MS = 2000
# Per export call, retries included: also bounds how long a stop waits on a dead endpoint.
EXPORT_TIMEOUT_S = 5.0
# How long nothing may be exported before the one line on stderr.
STALL_S = 10.0
# Shutdown flushes every provider in parallel, at most this long in all.
CLOSE_BUDGET_S = 8.0
# Behind schedule by more than this when running until stopped: drop the backlog rather
# than burst (a suspended laptop, a starved CPU).
MAX_LAG_S = 2.0

_KIND = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}
_SEVERITY = {"DEBUG": SeverityNumber.DEBUG, "INFO": SeverityNumber.INFO,
             "WARN": SeverityNumber.WARN, "ERROR": SeverityNumber.ERROR}
_VERSIONS = {SUPPORT: "4.2.0", RESEARCH: "2.0.3"}
_LATENCY_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
_TOKEN_BOUNDS = (16, 64, 256, 1024, 4096, 16384)


@dataclass(frozen=True)
class DemoSettings:
    """What ``agenttop demo`` sends, where, and for how long."""

    endpoint: str = "127.0.0.1:4317"
    rate: float = 2.0  # agent runs (traces) per second
    duration_s: float | None = None  # None: until stopped
    seed: int | None = None  # deterministic traffic shape when set
    failure_scale: float = 1.0  # multiplies every injected failure rate


@dataclass
class DemoStats:
    """What a demo sent. ``runs``, ``spans``, ``logs``, ``failures`` and ``anomalies``
    depend only on the settings' seed, rate, duration and failure_scale (when it ran to its
    duration); the export figures depend on the receiver."""

    runs: int = 0
    spans: int = 0
    logs: int = 0
    # Injected failures (FAILURE_KINDS) and anomalies (ANOMALY_KINDS), by kind.
    failures: dict[str, int] = field(default_factory=dict)
    anomalies: dict[str, int] = field(default_factory=dict)
    spans_by_service: dict[str, int] = field(default_factory=dict)
    spans_exported: int = 0  # acknowledged by the receiver
    export_failures: int = 0  # span batches the exporter gave up on
    elapsed_s: float = 0.0

    def summary(self) -> str:
        """One line for the end of a demo."""
        failures = ", ".join(f"{k} {v}" for k, v in sorted(self.failures.items()) if v) \
            or "none"
        findings = ", ".join(f"{k} {self.anomalies[k]}" for k in ("ssn", "card", "injection",
                                                                   "api_key")
                             if self.anomalies.get(k)) or "none"
        services = len([s for s, n in self.spans_by_service.items() if n])
        line = (f"{self.runs} runs, {self.spans} spans from {services} services, "
                f"{self.logs} logs in {self.elapsed_s:.1f} s; injected failures: {failures}; "
                f"PII/injection: {findings}; exported {self.spans_exported}/{self.spans} spans")
        if self.export_failures:
            line += f" ({self.export_failures} batches failed)"
        return line


# ------------------------------------------------------------------- export health


class _ExportHealth:
    """Export outcomes, shared by the exporters' worker threads and the run loop.

    Successes are counted from span batches; failures also from the SDK's own log records
    ("Transient error ... retrying"), which arrive at the first failed attempt rather than
    after the exporter's whole retry budget.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.exported = 0
        self.failures = 0  # span batches given up on
        self.last_ok: float | None = None
        self.last_failure: float | None = None
        self.last_error = ""
        self.warned = False

    def record(self, ok: bool, count: int) -> None:
        with self._lock:
            if ok:
                self.exported += count
                self.last_ok = time.monotonic()
            else:
                self.failures += 1
                self.last_failure = time.monotonic()

    def note_log(self, message: str) -> None:
        if "Transient error" not in message and "Failed to export" not in message:
            return
        match = re.search(r"StatusCode\.(\w+)", message)
        with self._lock:
            self.last_failure = time.monotonic()
            if match:
                self.last_error = match.group(1)

    def healthy(self) -> bool:
        """Something was exported, and nothing failed since."""
        with self._lock:
            return self.last_ok is not None and (
                self.last_failure is None or self.last_ok >= self.last_failure)

    def failed_since(self, t: float) -> bool:
        with self._lock:
            return self.last_failure is not None and self.last_failure >= t

    def stalled(self, now: float) -> bool:
        """Attempts have failed and nothing got through for ``STALL_S``."""
        with self._lock:
            since = self.last_ok if self.last_ok is not None else self.started
            return self.last_failure is not None and self.last_failure > since \
                and now - since >= STALL_S


class _WatchedSpanExporter(SpanExporter):
    """Passes batches to the OTLP exporter and records whether they got through."""

    def __init__(self, inner: OTLPSpanExporter, health: _ExportHealth) -> None:
        self._inner = inner
        self._health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._inner.export(spans)
        self._health.record(result is SpanExportResult.SUCCESS, len(spans))
        return result

    # BatchProcessor passes its remaining budget when the signature takes timeout_millis.
    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _OtelLogSink(logging.Handler):
    def __init__(self, health: _ExportHealth) -> None:
        super().__init__(logging.DEBUG)
        self._health = health

    def emit(self, record: logging.LogRecord) -> None:
        # A malformed SDK log record must not break the demo.
        with suppress(Exception):
            self._health.note_log(record.getMessage())


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved = True


@contextmanager
def _quiet_otel_logs(health: _ExportHealth) -> Iterator[None]:
    """Keep the SDK's ``opentelemetry.*`` log records off the terminal while we run.

    Python's last-resort handler would print every "Transient error ... retrying" warning
    to stderr, several per second with no receiver, under a TUI. Nested or concurrent
    demos share the switch; the outermost restores it.
    """
    global _quiet_depth, _quiet_saved
    otel = logging.getLogger("opentelemetry")
    sink = _OtelLogSink(health)
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = otel.propagate
            otel.propagate = False
        _quiet_depth += 1
        otel.addHandler(sink)
    try:
        yield
    finally:
        with _quiet_lock:
            otel.removeHandler(sink)
            _quiet_depth -= 1
            if _quiet_depth == 0:
                otel.propagate = _quiet_saved


# ------------------------------------------------------------------------ services


class _Service:
    """One service.name: its providers, exporters and instruments."""

    def __init__(self, name: str, endpoint: str, health: _ExportHealth) -> None:
        self.name = name
        resource = Resource.create({
            "service.name": name, "service.namespace": "acme-support",
            "service.version": _VERSIONS.get(name, "1.0.0"),
            "deployment.environment.name": "demo",
        })
        self.span_exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True,
                                              timeout=EXPORT_TIMEOUT_S)
        self.log_exporter = OTLPLogExporter(endpoint=endpoint, insecure=True,
                                            timeout=EXPORT_TIMEOUT_S)
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            _WatchedSpanExporter(self.span_exporter, health),
            max_queue_size=16_384, schedule_delay_millis=SPAN_DELAY_MS,
            max_export_batch_size=1024))
        scope = f"acme.{name.replace('-', '_')}"
        version = _VERSIONS.get(name, "1.0.0")
        self.tracer = self.tracer_provider.get_tracer(scope, version)
        self.logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            self.log_exporter, schedule_delay_millis=SPAN_DELAY_MS, max_queue_size=16_384))
        self.logger = self.logger_provider.get_logger(scope, version)
        self.meter_provider: MeterProvider | None = None
        self.metric_exporter: OTLPMetricExporter | None = None
        if name in _VERSIONS:  # the agents; the MCP server only traces
            self.metric_exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True,
                                                      timeout=EXPORT_TIMEOUT_S)
            reader = PeriodicExportingMetricReader(
                self.metric_exporter, export_interval_millis=METRIC_INTERVAL_MS,
                export_timeout_millis=EXPORT_TIMEOUT_S * 1000)
            self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader],
                                                shutdown_on_exit=False)
            meter = self.meter_provider.get_meter(scope, version)
            # The lesson's three instruments, plus the GenAI client metrics.
            self.requests = meter.create_counter(
                "requests_total", unit="{request}", description="Agent requests handled")
            self.latency = meter.create_histogram(
                "request_latency", unit="s", description="Agent request latency",
                explicit_bucket_boundaries_advisory=_LATENCY_BOUNDS)
            self.quality = meter.create_gauge(
                "output_quality_score", description="Evaluated quality of the last answer")
            self.token_usage = meter.create_histogram(
                "gen_ai.client.token.usage", unit="{token}",
                description="Tokens used per model call",
                explicit_bucket_boundaries_advisory=_TOKEN_BOUNDS)
            self.operation_duration = meter.create_histogram(
                "gen_ai.client.operation.duration", unit="s",
                description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=_LATENCY_BOUNDS)

    @property
    def providers(self) -> list[Any]:
        found: list[Any] = [self.tracer_provider, self.logger_provider]
        if self.meter_provider is not None:
            found.append(self.meter_provider)
        return found

    @property
    def exporters(self) -> list[Any]:
        found: list[Any] = [self.span_exporter, self.log_exporter]
        if self.metric_exporter is not None:
            found.append(self.metric_exporter)
        return found


def _parallel(calls: list[Callable[[], object]], budget_s: float,
              give_up: Callable[[], bool] | None = None) -> bool:
    """Run the calls in threads; wait at most ``budget_s``, or until ``give_up()``.

    True when every call finished in time.
    """

    def guarded(call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with suppress(Exception):  # one provider failing must not stop the others
                call()
        return run

    threads = [threading.Thread(target=guarded(c), name="agenttop-demo-close", daemon=True)
               for c in calls]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + budget_s
    for thread in threads:
        while thread.is_alive() and time.monotonic() < deadline:
            if give_up is not None and give_up():
                return False
            thread.join(min(0.05, max(0.0, deadline - time.monotonic())))
    return not any(thread.is_alive() for thread in threads)


def _close(services: list[_Service], health: _ExportHealth) -> None:
    """Flush and shut down every provider, in parallel and within bounded time."""
    providers = [p for s in services for p in s.providers]
    if health.healthy():
        # A receiver is answering: give it the whole budget (it may be pushing back under
        # load).
        flushed = _parallel([p.force_flush for p in providers], CLOSE_BUDGET_S)
    elif not health.failed_since(health.started):
        # Nothing tried yet: flush, but stop at the first failed attempt, since with no
        # receiver each exporter would retry for EXPORT_TIMEOUT_S.
        begun = time.monotonic()
        flushed = _parallel([p.force_flush for p in providers], CLOSE_BUDGET_S,
                            give_up=lambda: health.failed_since(begun))
    else:
        flushed = False  # the receiver is not answering: do not wait for it
    if not flushed:
        # Shutting the exporters down first interrupts their retry back-off and cancels
        # calls in flight, so the providers' own final flush fails fast.
        for exporter in (e for s in services for e in s.exporters):
            with suppress(Exception):  # already closing: nothing to report
                exporter.shutdown()
    _parallel([p.shutdown for p in providers], CLOSE_BUDGET_S)


# ------------------------------------------------------------------------- emitting


class _Emitter:
    def __init__(self, services: dict[str, _Service], stats: DemoStats) -> None:
        self.services = services
        self.stats = stats
        self.by_service: Counter[str] = Counter()

    def run(self, plan: RunPlan, end_ns: int) -> None:
        start_ns = end_ns - int(plan.root.duration_s * 1e9)
        # An explicit empty context: the root must not become a child of whatever span the
        # caller happens to have active.
        self._span(plan.root, Context(), start_ns)
        for inv in plan.invocations:
            svc = self.services[inv.service]
            if svc.meter_provider is None:
                continue
            svc.requests.add(1, {"agent": inv.agent, "status": inv.status})
            svc.latency.record(inv.duration_s, {"agent": inv.agent})
            if inv.quality is not None:
                svc.quality.set(round(inv.quality, 4), {"agent": inv.agent})
        stats = self.stats
        stats.runs += 1
        for kind in plan.injected:
            bucket = stats.failures if kind in FAILURE_KINDS else stats.anomalies
            bucket[kind] = bucket.get(kind, 0) + 1

    def _span(self, plan: SpanPlan, parent: Context, run_start_ns: int) -> None:
        svc = self.services[plan.service]
        start = run_start_ns + int(plan.start_s * 1e9)
        end = start + int(plan.duration_s * 1e9)
        span = svc.tracer.start_span(plan.name, context=parent, kind=_KIND[plan.kind],
                                     attributes=plan.attributes, start_time=start)
        ctx = trace.set_span_in_context(span, parent)
        for child in plan.children:
            self._span(child, ctx, run_start_ns)
        if plan.exception is not None:
            exc_type, message = plan.exception
            span.add_event("exception", {"exception.type": exc_type,
                                         "exception.message": message}, timestamp=end)
        for name, attributes in plan.events:
            span.add_event(name, attributes, timestamp=end)
        if plan.error is not None:
            span.set_status(Status(StatusCode.ERROR, plan.error))
        for log in plan.logs:
            svc.logger.emit(timestamp=run_start_ns + int(log.at_s * 1e9), context=ctx,
                            severity_number=_SEVERITY[log.severity],
                            severity_text=log.severity, body=log.body,
                            attributes=log.attributes, event_name=log.event_name)
        self.stats.logs += len(plan.logs)
        if svc.meter_provider is not None and \
                plan.attributes.get("gen_ai.operation.name") == "chat":
            self._chat_metrics(svc, plan)
        span.end(end_time=end)
        self.stats.spans += 1
        self.by_service[plan.service] += 1

    @staticmethod
    def _chat_metrics(svc: _Service, plan: SpanPlan) -> None:
        a = plan.attributes
        labels: dict[str, Any] = {"gen_ai.operation.name": "chat",
                                  "gen_ai.provider.name": a["gen_ai.provider.name"],
                                  "gen_ai.request.model": a["gen_ai.request.model"]}
        if "error.type" in a:
            labels["error.type"] = a["error.type"]
        svc.operation_duration.record(plan.duration_s, labels)
        for kind, key in (("input", "gen_ai.usage.input_tokens"),
                          ("output", "gen_ai.usage.output_tokens")):
            if key in a:
                svc.token_usage.record(a[key], {**labels, "gen_ai.token.type": kind})


# --------------------------------------------------------------------------- public


def run_demo(settings: DemoSettings, stop: threading.Event | None = None) -> DemoStats:
    """Blocking: generate traffic until ``duration_s`` or ``stop`` is set; flush and shut
    down the SDK providers cleanly. Writes nothing to stdout.

    With ``duration_s`` the demo sends exactly ``ceil(rate * duration_s)`` runs, one every
    ``1 / rate`` seconds (catching up if it falls behind), so a seed fixes everything but
    ids and timestamps.
    """
    if not settings.rate > 0:
        raise ValueError("rate must be positive")
    if settings.duration_s is not None and settings.duration_s < 0:
        raise ValueError("duration_s must not be negative")
    stop = stop or threading.Event()
    stats = DemoStats()
    health = _ExportHealth()
    scenario = Scenario(settings.rate, settings.failure_scale, settings.seed)
    total = None if settings.duration_s is None else math.ceil(
        round(settings.rate * settings.duration_s, 6))
    began = time.monotonic()
    with _quiet_otel_logs(health):
        services = {name: _Service(name, settings.endpoint, health) for name in SERVICES}
        emitter = _Emitter(services, stats)
        try:
            t0 = time.monotonic()
            i = 0
            while total is None or i < total:
                delay = t0 + i / settings.rate - time.monotonic()
                if delay > 0:
                    if stop.wait(delay):
                        break
                elif stop.is_set():
                    break
                elif total is None and -delay > MAX_LAG_S:
                    t0 = time.monotonic() - i / settings.rate
                emitter.run(scenario.next_run(), time.time_ns())
                i += 1
                if not health.warned and health.stalled(time.monotonic()):
                    health.warned = True
                    reason = f" ({health.last_error})" if health.last_error else ""
                    print(f"agenttop demo: nothing could be exported to {settings.endpoint} "
                          f"for {STALL_S:.0f} s{reason}; is `agenttop serve` listening "
                          "there? Still trying.", file=sys.stderr, flush=True)
        finally:
            _close(list(services.values()), health)
    stats.spans_by_service = {name: emitter.by_service[name] for name in SERVICES}
    stats.spans_exported = health.exported
    stats.export_failures = health.failures
    stats.elapsed_s = time.monotonic() - began
    for kind in FAILURE_KINDS:
        stats.failures.setdefault(kind, 0)
    for kind in ANOMALY_KINDS:
        stats.anomalies.setdefault(kind, 0)
    return stats
