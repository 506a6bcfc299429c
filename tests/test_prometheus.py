"""Prometheus exposition (``serve --prometheus HOST:PORT``): a scrape of ``/metrics``, parsed
with prometheus_client's own parser, holds the same health the dashboard shows."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from agenttop.analysis.cost import PriceBook, Tokens
from agenttop.config import ServeSettings
from agenttop.serve import exposure_problem
from agenttop.store.status import read_status
from tests.conftest import read_db
from tests.test_bad_input import TRACES, status_of
from tests.test_process import free_port, run_cli

TOKEN = "scrape-T0ken"
WAIT_S = 60


def scrape(port: int, token: str | None = None) -> tuple[dict, dict]:
    """(samples: (name, labels) -> value, families: name -> (type, help))."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples, families = {}, {}
    for family in text_string_to_metric_families(text):
        families[family.name] = (family.type, family.documentation)
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples, families


def metrics_port(service) -> int:
    return int(service.metrics.address.rpartition(":")[2])


def send(port: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "support-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)))
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("checkpoint save") as memory:
        memory.set_attribute("db.system", "postgresql")
        memory.set_status(Status(StatusCode.ERROR, "checkpoint write failed"))
    # Two priced calls by the support agent (exported before their agent span, as spans
    # end), and one call of a model with no known price outside any agent.
    with tracer.start_as_current_span("invoke_agent support") as agent:
        agent.set_attribute("gen_ai.agent.name", "support")
        for _ in range(2):
            chat_call(tracer, "gpt-4o")
    chat_call(tracer, "my-finetune")
    provider.shutdown()


def chat_call(tracer, model: str) -> None:
    with tracer.start_as_current_span(f"chat {model}") as chat:
        chat.set_attribute("gen_ai.provider.name", "openai")
        chat.set_attribute("gen_ai.request.model", model)
        chat.set_attribute("gen_ai.usage.input_tokens", 1000)
        chat.set_attribute("gen_ai.usage.cache_read.input_tokens", 200)
        chat.set_attribute("gen_ai.usage.output_tokens", 100)


def firing(db) -> set[str]:
    conn = read_db(db)
    try:
        return {r[0] for r in conn.execute("SELECT rule FROM alerts WHERE state = 'firing'")}
    finally:
        conn.close()


def test_scrape_has_layers_alerts_and_counters(make_server, db_path):
    server = make_server(prometheus="127.0.0.1:0", alert_interval_s=0.2,
                         forward=f"grpc://127.0.0.1:{free_port()}")  # nobody listens there
    send(server.grpc_port)
    assert status_of(server, TRACES, b"\xff not protobuf") is not None
    deadline = time.monotonic() + WAIT_S
    while "memory-failures" not in firing(db_path) or not server.forwarder.failing:
        assert time.monotonic() < deadline, "the memory alert never fired"
        time.sleep(0.05)

    samples, families = scrape(metrics_port(server))

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    for window in ("1m", "5m", "15m"):
        assert value("agenttop_layer_spans", layer="memory", window=window) == 1
        assert value("agenttop_layer_failures", layer="memory", window=window) == 1
        assert value("agenttop_layer_failure_ratio", layer="memory", window=window) == 1.0
        assert value("agenttop_layer_failures_by_category", layer="memory", window=window,
                     category="error") == 1
        assert value("agenttop_layer_spans", layer="prompt", window=window) == 3
        assert value("agenttop_layer_failure_ratio", layer="prompt", window=window) == 0.0
        quantiles = [value("agenttop_layer_latency_seconds", layer="prompt", window=window,
                           quantile=q) for q in ("0.5", "0.95", "0.99")]
        assert None not in quantiles and 0 < quantiles[0] <= quantiles[1] <= quantiles[2] < 60
        # No spans, no ratio and no latency: absent rather than a made-up zero.
        assert value("agenttop_layer_spans", layer="auth", window=window) == 0
        assert value("agenttop_layer_failure_ratio", layer="auth", window=window) is None
        assert value("agenttop_layer_latency_seconds", layer="auth", window=window,
                     quantile="0.5") is None
    gpt4o = PriceBook().cost("openai", "gpt-4o", Tokens(1000, 100, 200), time.time_ns())
    for window in ("1m", "5m", "15m"):
        model = {"provider": "openai", "model": "gpt-4o", "agent": "support", "window": window}
        assert value("agenttop_model_calls", **model) == 2
        assert value("agenttop_cost_usd", **model) == pytest.approx(2 * gpt4o.usd)
        assert value("agenttop_model_unpriced_calls", **model) == 0
        assert value("agenttop_tokens", **model, kind="cache_read") == 400
        assert value("agenttop_tokens", **model, kind="output") == 200
        unknown = {"provider": "openai", "model": "my-finetune", "agent": "", "window": window}
        assert value("agenttop_cost_usd", **unknown) is None  # no price is not $0
        assert value("agenttop_model_unpriced_calls", **unknown) == 1
    assert value("agenttop_alert_firing", alert="memory-failures", layer="memory",
                 metric="") == 1
    assert value("agenttop_alerts_firing") == 1
    assert value("agenttop_ingested_items_total", signal="traces") == 5
    assert value("agenttop_ingested_items_total", signal="logs") == 0
    assert value("agenttop_refused_calls_total", reason="malformed") == 1
    assert value("agenttop_refused_calls_total", reason="unauthenticated") == 0
    assert value("agenttop_refused_calls_total", reason="too_large") == 0
    assert value("agenttop_forward_up") == 0
    assert value("agenttop_forward_requests_total", outcome="sent") == 0
    assert value("agenttop_forward_queued_requests") == 5
    assert value("agenttop_database_readable") == 1
    assert value("process_resident_memory_bytes") > 0
    ours = {name: kind_help for name, kind_help in families.items()
            if name.startswith("agenttop_")}
    assert set(ours) == {
        "agenttop_layer_spans", "agenttop_layer_failures", "agenttop_layer_failures_by_category",
        "agenttop_layer_failure_ratio", "agenttop_layer_latency_seconds",
        "agenttop_alert_firing", "agenttop_alerts_firing", "agenttop_ingested_items",
        "agenttop_refused_calls", "agenttop_forward_requests",
        "agenttop_forward_queued_requests", "agenttop_forward_queued_bytes",
        "agenttop_forward_up", "agenttop_database_readable", "agenttop_model_calls",
        "agenttop_cost_usd", "agenttop_model_unpriced_calls", "agenttop_tokens"}
    assert all(doc for _, doc in ours.values())
    assert families["agenttop_ingested_items"][0] == "counter"
    assert families["agenttop_layer_latency_seconds"][0] == "gauge"


def test_the_token_guards_the_scrape(make_server, db_path):
    server = make_server(prometheus="127.0.0.1:0", token=TOKEN)
    port = metrics_port(server)
    for wrong in (None, "nope"):
        with pytest.raises(urllib.error.HTTPError) as info:
            scrape(port, wrong)
        assert info.value.code == 401
        assert info.value.headers["WWW-Authenticate"].startswith("Bearer")
    samples, _ = scrape(port, TOKEN)
    assert samples["agenttop_database_readable", ()] == 1
    status = read_status(read_db(db_path)).status
    assert status["prometheus"] == {"address": server.metrics.address}


def test_openmetrics_when_asked(make_server):
    server = make_server(prometheus="127.0.0.1:0")
    request = urllib.request.Request(
        f"http://127.0.0.1:{metrics_port(server)}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().decode().rstrip().endswith("# EOF")


def test_a_non_loopback_address_needs_the_token():
    problem = exposure_problem(ServeSettings(prometheus="0.0.0.0:9464"))
    assert problem == ("refusing to listen on 0.0.0.0:9464 without --token: anyone who can "
                       "reach it could read your agents' health; pass --token, or --insecure "
                       "to do it anyway")
    assert exposure_problem(ServeSettings(prometheus="0.0.0.0:9464", token=TOKEN)) is None
    assert exposure_problem(ServeSettings(prometheus="127.0.0.1:9464")) is None


def test_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--db", str(tmp_path / "a.db"), "--decoders", "1",
                         "--grpc", "127.0.0.1:0", "--http", "off",
                         "--prometheus", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"agenttop: error: cannot listen on 127.0.0.1:{port} for --prometheus: "
        "Address already in use")
