"""Prometheus exposition (``serve --prometheus HOST:PORT``): ``/metrics`` for an existing
Prometheus and Grafana.

Every scrape computes its figures then, with one read-only connection: per-layer span and
failure counts, failure ratios and latency quantiles over the dashboard's windows (a
``window`` label: 1m, 5m, 15m) from ``agenttop.analysis.health``, and the firing alerts
from the ``alerts`` table. Live counters come from the running service: items committed,
calls refused, forwarding. The endpoint follows the gRPC port's rules: the token, when
set, is required (``Authorization: Bearer``), and it speaks TLS with the same certificate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import apsw
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agenttop.analysis.health import ALL, WINDOWS_S, layer_health
from agenttop.config import format_address, format_duration, parse_address
from agenttop.otlp.forward import Forwarder
from agenttop.otlp.receiver import BearerToken, BindError, Receiver
from agenttop.store import StoreError, open_reader
from agenttop.store.alerts import load_firing
from agenttop.store.calls import calls_window
from agenttop.store.rollups import TOKEN_KINDS
from agenttop.store.rows import MINUTE_NS, SECOND_NS
from agenttop.store.writer import Writer


class LiveParts(Protocol):
    """What of the running receiver the scrape reports live (``agenttop.serve.Service``):
    each part is None while it is not running."""

    writer: Writer | None
    receiver: Receiver | None
    forwarder: Forwarder | None

log = logging.getLogger(__name__)

QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms"))


def _models(conn: apsw.Connection) -> Iterator[Metric]:
    """Model calls, their cost and tokens by kind over each window, per model and the agent
    that made them ('' for none), from the call rollup."""
    labels = ["provider", "model", "agent", "window"]
    calls = GaugeMetricFamily("agenttop_model_calls", "Model calls started in the window",
                              labels=labels)
    cost = GaugeMetricFamily(
        "agenttop_cost_usd", "What the window's model calls cost, in USD (the priced ones: "
        "see agenttop_model_unpriced_calls)", labels=labels)
    unpriced = GaugeMetricFamily(
        "agenttop_model_unpriced_calls",
        "Model calls in the window with tokens but no known price", labels=labels)
    tokens = GaugeMetricFamily(
        "agenttop_tokens", "Tokens of the window's model calls, by kind (input includes "
        "cached input, output includes reasoning)", labels=[*labels, "kind"])
    now_ns = time.time_ns()
    last = now_ns // MINUTE_NS
    for window_s in WINDOWS_S:
        window = format_duration(window_s)
        calls_in = calls_window(conn, (now_ns - window_s * SECOND_NS) // MINUTE_NS, last)
        for agent, edges in calls_in.edges.items():
            for e in edges:
                if e.callee.kind != "model":
                    continue
                key = [e.callee.provider, e.callee.name, agent, window]
                calls.add_metric(key, e.calls)
                if e.priced:  # a model with no price has no cost sample, never 0
                    cost.add_metric(key, e.cost_usd)
                unpriced.add_metric(key, e.unpriced)
                for kind in TOKEN_KINDS:
                    tokens.add_metric([*key, kind], e.tokens.get(kind, 0))
    yield from (calls, cost, unpriced, tokens)


class HealthCollector(Collector):
    """agenttop's figures, computed on each scrape (called from a worker thread)."""

    def __init__(self, db: Path, service: LiveParts) -> None:
        self.db = db
        self.service = service
        self._reader: apsw.Connection | None = None
        self._lock = threading.Lock()  # one scrape at a time on the one connection

    def collect(self) -> Iterator[Metric]:
        yield from self._live()
        families: list[Metric] = []
        with self._lock:
            try:
                if self._reader is None:
                    self._reader = open_reader(self.db)
                families = list(self._from_database(self._reader))
            except (apsw.Error, StoreError) as e:
                log.warning("metrics: cannot read %s: %s", self.db, e)
                self._close_reader()  # the next scrape opens a fresh one
        readable = GaugeMetricFamily("agenttop_database_readable",
                                     "1 if this scrape could read the database, else 0")
        readable.add_metric([], 1 if families else 0)
        yield readable
        yield from families

    def close(self) -> None:
        with self._lock:
            self._close_reader()

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _from_database(self, conn: apsw.Connection) -> Iterator[Metric]:
        health = layer_health(conn, time.time_ns(), WINDOWS_S)
        labels = ["layer", "window"]
        spans = GaugeMetricFamily("agenttop_layer_spans",
                                  "Spans started in the window, by layer", labels=labels)
        failures = GaugeMetricFamily("agenttop_layer_failures",
                                     "Failed spans in the window, by layer", labels=labels)
        categories = GaugeMetricFamily(
            "agenttop_layer_failures_by_category",
            "Failed spans in the window, by layer and failure category (auth, rate_limit, "
            "timeout, schema, tool_error, server, error)", labels=[*labels, "category"])
        ratio = GaugeMetricFamily(
            "agenttop_layer_failure_ratio",
            "Failed spans / spans in the window, by layer (absent without spans)", labels=labels)
        latency = GaugeMetricFamily(
            "agenttop_layer_latency_seconds",
            "Span duration quantile in the window, by layer (absent without spans)",
            labels=[*labels, "quantile"])
        for (layer, window_s), h in sorted(health.items()):
            if layer == ALL:  # the layers' sum: a series of its own would count twice
                continue
            window = format_duration(window_s)
            spans.add_metric([layer, window], h.spans)
            failures.add_metric([layer, window], h.failures)
            for category, count in sorted(h.by_failure.items()):
                categories.add_metric([layer, window, category], count)
            if h.failure_rate is not None:
                ratio.add_metric([layer, window], h.failure_rate)
            for quantile, field in QUANTILES:
                value = getattr(h, field)
                if value is not None:
                    latency.add_metric([layer, window, quantile], value / 1000)
        yield from (spans, failures, categories, ratio, latency)
        yield from _models(conn)

        firing = load_firing(conn)
        alert = GaugeMetricFamily(
            "agenttop_alert_firing",
            "1 for each firing alert; layer or metric says what it watches",
            labels=["alert", "layer", "metric"])
        for row in firing:
            alert.add_metric([str(row.key), row.layer or "", row.metric or ""], 1)
        count = GaugeMetricFamily("agenttop_alerts_firing", "Alerts firing now")
        count.add_metric([], len(firing))
        yield from (alert, count)

    def _live(self) -> Iterator[Metric]:
        service = self.service
        if service.writer is not None:
            items = CounterMetricFamily(
                "agenttop_ingested_items",
                "Items committed to the database since start: spans (traces), data points "
                "(metrics), log records (logs)", labels=["signal"])
            for signal, count in service.writer.stats.committed.items():
                items.add_metric([signal], count)
            yield items
        if service.receiver is not None and service.writer is not None:
            refused = CounterMetricFamily(
                "agenttop_refused_calls",
                "OTLP calls refused since start: unauthenticated (missing or wrong token), "
                "malformed (undecodable), too_large (over the size limit), slow (body not "
                "delivered within --body-timeout), busy (told to "
                "retry later)", labels=["reason"])
            refused.add_metric(["unauthenticated"], service.receiver.unauthenticated)
            refused.add_metric(["malformed"], service.receiver.malformed)
            refused.add_metric(["too_large"], service.receiver.too_large)
            refused.add_metric(["slow"], service.receiver.slow)
            refused.add_metric(["busy"], service.writer.stats.refused)
            yield refused
        forwarder = service.forwarder
        if forwarder is not None:
            requests = CounterMetricFamily(
                "agenttop_forward_requests",
                "Requests forwarded upstream since start, by outcome: sent, failed (refused "
                "for good by the upstream), dropped (the forward queue was full)",
                labels=["outcome"])
            for outcome in ("sent", "failed", "dropped"):
                requests.add_metric([outcome], getattr(forwarder, outcome))
            yield requests
            status = forwarder.status()
            queued = GaugeMetricFamily("agenttop_forward_queued_requests",
                                       "Requests waiting to be forwarded")
            queued.add_metric([], status["queued"])
            queued_bytes = GaugeMetricFamily("agenttop_forward_queued_bytes",
                                             "Bytes waiting to be forwarded")
            queued_bytes.add_metric([], status["queued_bytes"])
            up = GaugeMetricFamily("agenttop_forward_up",
                                   "0 while forwarding fails and is being retried, else 1")
            up.add_metric([], 0 if forwarder.failing else 1)
            yield from (queued, queued_bytes, up)


class MetricsServer:
    """``GET /metrics`` over aiohttp, on the service's event loop."""

    def __init__(self, collector: HealthCollector, *, token: str | None,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.collector = collector
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        ProcessCollector(registry=self.registry)  # memory, CPU, open files of serve
        self._token = BearerToken(token) if token else None
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self.address = ""

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._token is not None and not self._token.matches(
                request.headers.get("Authorization")):
            return web.Response(status=401, text="agenttop requires 'Authorization: Bearer "
                                "<token>' with the right token\n",
                                headers={"WWW-Authenticate": 'Bearer realm="agenttop"'})
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.to_thread(encoder, self.registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def start(self, address: str) -> None:
        """Listen on ``address`` (port 0 picks one); BindError with the reason if it cannot."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = parse_address(address)
        site = web.TCPSite(self._runner, host, port, ssl_context=self._ssl)
        try:
            await site.start()
        except OSError as e:
            await self.stop()
            reason = os.strerror(e.errno) if e.errno else str(e)  # aiohttp rewords strerror
            raise BindError(f"cannot listen on {address} for --prometheus: {reason}") from None
        self.address = format_address(host, self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await asyncio.to_thread(self.collector.close)

