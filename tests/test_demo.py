"""``agenttop demo``: simulated agent traffic through the real OpenTelemetry SDK.

The end-to-end test sends a few seconds of demo traffic to a real receiver and checks that
every panel of the dashboard has something to show: all five layers, the failure
categories the lesson names, PII and injection findings, the lesson's metrics, linked logs
and several services. The scenario tests hold the plans to agenttop's own classifier, so
a span meant for the auth layer cannot silently land elsewhere.
"""

from __future__ import annotations

import json
import socket
from dataclasses import astuple

import pytest

from agenttop.analysis.layers import classify
from agenttop.demo import DemoSettings, DemoStats, run_demo
from agenttop.demo.scenario import BILLING, RESEARCH, SUPPORT, Scenario, SpanPlan
from agenttop.serve import BackgroundService
from tests.conftest import read_db, serve_settings

RATE, DURATION = 20.0, 3.0
LAYERS = {"prompt", "tool", "memory", "runtime", "auth"}
_KIND = {"internal": 1, "server": 2, "client": 3}


def _deterministic(stats: DemoStats) -> tuple:
    """Everything in the stats that the seed fixes (not export outcomes or timing)."""
    return (stats.runs, stats.spans, stats.logs, stats.failures, stats.anomalies,
            stats.spans_by_service)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _classify(span: SpanPlan, is_root: bool) -> tuple[str, str | None]:
    events = [{"name": name, "time_ns": 0, "attributes": attrs} for name, attrs in span.events]
    if span.exception:
        events.append({"name": "exception", "time_ns": 0, "attributes": {
            "exception.type": span.exception[0], "exception.message": span.exception[1]}})
    return classify(span.name, _KIND[span.kind], is_root, 2 if span.error else 0,
                    span.attributes, events, span.error or "")


def test_demo_lights_up_every_panel(tmp_path, capsys):
    db = tmp_path / "agenttop.db"
    with BackgroundService(serve_settings(db)) as service:
        stats = run_demo(DemoSettings(endpoint=f"127.0.0.1:{service.grpc_port}", rate=RATE,
                                      duration_s=DURATION, seed=1))
    # Read once the receiver has stopped: two SQLite libraries (apsw's and Python's)
    # should not share a live WAL file in one process.
    out, _ = capsys.readouterr()
    assert out == ""
    assert stats.runs == RATE * DURATION
    assert stats.spans_exported == stats.spans and stats.export_failures == 0

    conn = read_db(db)
    assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] == stats.spans
    assert conn.execute("SELECT count(*) FROM traces").fetchone()[0] == stats.runs
    layers = {r[0] for r in conn.execute("SELECT DISTINCT layer FROM spans")}
    assert layers >= LAYERS, layers

    failed = {(r["layer"], r["failure"]): r["n"] for r in conn.execute(
        "SELECT layer, failure, count(*) AS n FROM spans WHERE failure IS NOT NULL "
        "AND service != ? GROUP BY 1, 2", (BILLING,))}
    for category in ("timeout", "rate_limit", "schema", "auth"):
        assert any(f == category for _, f in failed), (category, failed)
    # Each injected failure is exactly one failed span where it was meant to land (the MCP
    # server's mirror of a client-side tool error is left out above).
    f = stats.failures
    assert failed.get(("tool", "timeout"), 0) == f["tool_timeout"] > 0
    assert failed.get(("tool", "rate_limit"), 0) == f["tool_rate_limit"] > 0
    assert failed.get(("tool", "tool_error"), 0) == f["tool_error"]
    assert failed.get(("prompt", "schema"), 0) == f["schema"] > 0
    assert failed.get(("prompt", "rate_limit"), 0) == f["llm_rate_limit"]
    assert failed.get(("auth", "auth"), 0) == f["auth"] > 0
    memory = sum(n for (layer, _), n in failed.items() if layer == "memory")
    assert memory == f["checkpoint"] + f["retrieval_error"] > 0
    assert sum(failed.values()) == sum(f.values())

    findings = {(r["kind"], r["pattern"]): r["n"] for r in conn.execute(
        "SELECT kind, pattern, count(*) AS n FROM findings WHERE signal = 'span' GROUP BY 1, 2")}
    assert findings.get(("pii", "ssn"), 0) == stats.anomalies["ssn"] > 0
    assert findings.get(("pii", "card"), 0) == stats.anomalies["card"] > 0
    assert sum(n for (kind, _), n in findings.items() if kind == "injection") \
        >= stats.anomalies["injection"] > 0
    log_findings = {r[0] for r in conn.execute(
        "SELECT pattern FROM findings WHERE signal = 'log'")}
    assert {"ssn", "card", "openai_key"} <= log_findings
    # Redacted before disk: the leaked card never reaches the file.
    leaked = conn.execute("SELECT count(*) FROM spans WHERE attributes LIKE '%1111 1111%' "
                          "OR attributes LIKE '%4444%5555%'").fetchone()[0]
    assert leaked == 0

    metrics = {r[0]: r[1] for r in conn.execute(
        "SELECT name, type FROM metric_points GROUP BY name")}
    assert metrics["requests_total"] == "sum"
    assert metrics["request_latency"] == "histogram"
    assert metrics["output_quality_score"] == "gauge"
    # Cumulative: the newest point of each support-agent series adds up to one request per
    # run.
    newest = conn.execute(
        "SELECT attributes, value FROM metric_points WHERE name = 'requests_total' "
        "AND service = ? ORDER BY time_ns", (SUPPORT,)).fetchall()
    assert sum({r["attributes"]: r["value"] for r in newest}.values()) == stats.runs

    logs = conn.execute("SELECT count(*) AS n, count(trace_id) AS linked, "
                        "count(event_name) AS events FROM logs").fetchone()
    assert logs["n"] == stats.logs and logs["linked"] == logs["n"] and logs["events"] > 0
    names = {r[0] for r in conn.execute("SELECT DISTINCT event_name FROM logs")}
    assert {"gen_ai.user.message", "gen_ai.choice"} <= names
    # "Tool X failed at step N" is logged in the failing span's context.
    tool_log = conn.execute(
        "SELECT s.failure FROM logs l JOIN spans s USING (trace_id, span_id) "
        "WHERE l.body LIKE 'Tool % failed at step %'").fetchall()
    assert tool_log and all(r[0] is not None for r in tool_log)

    services = {r[0] for r in conn.execute("SELECT DISTINCT service FROM spans")}
    assert services == {SUPPORT, RESEARCH, BILLING}
    assert conn.execute("SELECT count(*) FROM traces WHERE services LIKE ?",
                        (f"%{RESEARCH}%{SUPPORT}%",)).fetchone()[0] > 0
    roots = {r[0] for r in conn.execute("SELECT DISTINCT root_name FROM traces")}
    assert roots == {f"invoke_agent {SUPPORT}"}
    slow = conn.execute("SELECT count(*) FROM spans WHERE parent_span_id IS NULL "
                        "AND duration_ns > 5e9").fetchone()[0]
    assert slow >= stats.anomalies["slow_run"] > 0

    # Same seed, same traffic: here to an endpoint where nothing listens, which must also
    # end promptly and print nothing on stdout.
    again = run_demo(DemoSettings(endpoint=f"127.0.0.1:{_closed_port()}", rate=RATE,
                                  duration_s=DURATION, seed=1))
    assert _deterministic(again) == _deterministic(stats)
    assert again.spans_exported == 0 and again.elapsed_s < DURATION + 3
    out, _ = capsys.readouterr()
    assert out == ""


def test_every_planned_span_lands_where_intended():
    scenario = Scenario(rate=2.0, failure_scale=4.0, seed=3)
    seen: set[tuple[str, str | None]] = set()
    for _ in range(800):
        run = scenario.next_run()
        for span in run.root.walk():
            got = _classify(span, span is run.root)
            assert got == span.intent, (span.name, span.attributes, got, span.intent)
            seen.add(got)
    assert {("tool", "timeout"), ("tool", "rate_limit"), ("tool", "tool_error"),
            ("prompt", "schema"), ("prompt", "rate_limit"), ("memory", "error"),
            ("memory", "server"), ("auth", "auth"), ("runtime", None)} <= seen


def _plans(seed: int, n: int = 200, scale: float = 1.0) -> list:
    scenario = Scenario(rate=2.0, failure_scale=scale, seed=seed)
    return [[(s.name, s.service, json.dumps(s.attributes, sort_keys=True), s.error,
              s.start_s, s.duration_s, [astuple(log) for log in s.logs])
             for s in scenario.next_run().root.walk()] for _ in range(n)]


def test_seed_fixes_the_traffic():
    assert _plans(5) == _plans(5)
    assert _plans(5) != _plans(6)


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[int(q * (len(values) - 1))]


@pytest.mark.parametrize("scale", [1.0, 0.0])
def test_default_rates_trip_the_lesson_alerts(scale):
    """At failure_scale 1 the injected failures, not the healthy traffic, breach the
    tool (> 2 %) and runtime (p99 > 5 s) thresholds; the prompt layer stays under 5 %
    outside the scheduled regression. At 0 nothing fails."""
    scenario = Scenario(rate=2.0, failure_scale=scale, seed=11)
    spans: dict[str, list[tuple[bool, float]]] = {}
    injected = 0
    for _ in range(2000):
        run = scenario.next_run()
        injected += len(run.injected)
        regression = 60 <= (run.index / 2.0) % 420 < 120
        for span in run.root.walk():
            layer = span.intent[0] if not (regression and span.intent[0] == "prompt") \
                else "prompt-regression"
            spans.setdefault(layer, []).append((span.intent[1] is not None, span.duration_s))

    def rate(layer: str) -> float:
        return sum(f for f, _ in spans[layer]) / len(spans[layer])

    runtime_p99 = _percentile([d for _, d in spans["runtime"]], 0.99)
    if scale:
        assert rate("tool") > 0.03
        assert rate("prompt") < 0.05 < rate("prompt-regression")
        assert runtime_p99 > 6.0
    else:
        assert injected == 0 and "auth" not in spans
        assert all(rate(layer) == 0 for layer in spans)
        assert runtime_p99 < 5.0


def test_demo_fails_when_nothing_reaches_a_receiver():
    from tests.test_process import free_port, run_cli

    result = run_cli("demo", "--endpoint", f"127.0.0.1:{free_port()}", "--duration", "1")
    assert result.returncode == 1
    assert "nothing was exported: is a receiver listening on" in result.stderr
