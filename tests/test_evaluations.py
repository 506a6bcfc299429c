"""Evaluation results from telemetry: gen_ai.evaluation.result as span events, as log
events and as a span's own attributes, counted by the writer and judged by rules; the
shipped release gate over an eval harness's run sent through the real SDK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from agenttop.analysis.evaluator import check_rules, verdict
from agenttop.analysis.health import evaluation_health
from agenttop.analysis.rules import parse_rules
from agenttop.serve import BackgroundService
from agenttop.store import open_reader
from tests.conftest import serve_settings
from tests.test_check import run_check
from tests.test_sdk_ingest import tracer_provider
from tests.tui.fixtures import (
    MS,
    NOW,
    any_value,
    log_record,
    logs_request,
    span,
    traces_request,
    write,
)

ROOT = Path(__file__).resolve().parent.parent
RESULT = "gen_ai.evaluation.result"


def result(name: str, score: float | None = None, label: str | None = None) -> dict:
    out: dict = {"gen_ai.evaluation.name": name}
    if score is not None:
        out["gen_ai.evaluation.score.value"] = score
    if label is not None:
        out["gen_ai.evaluation.score.label"] = label
    return out


def test_results_are_counted_however_they_are_sent(tmp_path):
    db = tmp_path / "a.db"
    spans = [
        # On the evaluated span, as events.
        span("t", "invoke_agent support", duration_ms=500, events=[
            (100, RESULT, result("accuracy", 0.8, "fail")),
            (200, RESULT, result("accuracy", 1.0, "pass")),
            (300, "exception", {"exception.type": "ValueError"}),
        ]),
        # A span of its own.
        span("t", "evaluate safety", parent="invoke_agent support", start_ms=10,
             attributes=result("safety", 0.5, "unsafe")),
    ]
    record = log_record("t", "invoke_agent support", at_ns=NOW + 400 * MS, body="",
                        event_name=RESULT)
    record.attributes.extend(KeyValue(key=k, value=any_value(v))
                             for k, v in result("accuracy", 0.9, "pass").items())
    unnamed = log_record("t", "invoke_agent support", at_ns=NOW, body="", event_name=RESULT)
    write(db, ("traces", traces_request([("svc", spans)])),
          ("logs", logs_request("svc", [record, unnamed])))
    conn = open_reader(db)
    try:
        evals = evaluation_health(conn, NOW + MS * 1000, [300])[300]
    finally:
        conn.close()
    accuracy, safety = evals["accuracy"], evals["safety"]
    assert (accuracy.results, accuracy.score_count) == (3, 3)
    assert accuracy.mean == pytest.approx(0.9)
    assert (accuracy.score_min, accuracy.score_max) == (0.8, 1.0)
    assert accuracy.labels == {"pass": 2, "fail": 1}
    assert (safety.results, safety.mean, safety.labels) == (1, 0.5, {"unsafe": 1})
    assert set(evals) == {"accuracy", "safety"}  # a result without a name is not one

    rules = parse_rules("""
[[rule]]
name = "accuracy-pass-rate"
evaluation = "accuracy"
measure = "label_rate"
label = "pass"
op = "<"
threshold = 0.7
window = "5m"
min_samples = 3

[[rule]]
name = "safety-min"
evaluation = "safety"
measure = "score_min"
op = "<"
threshold = 0.6
window = "5m"

[[rule]]
name = "helpfulness"
evaluation = "helpfulness"
measure = "score_mean"
op = "<"
threshold = 0.5
window = "5m"
""")
    checks = {c.rule.name: c for c in check_rules(rules, {}, {}, {300: evals})}
    assert checks["accuracy-pass-rate"].status == "breached"  # 2 of 3 passed
    assert checks["accuracy-pass-rate"].observation.value == pytest.approx(2 / 3)
    assert checks["safety-min"].status == "breached"
    assert checks["helpfulness"].status == "no data"  # never reported: not a pass
    assert verdict(list(checks.values())) == "fail"


def run_harness(db_path, accuracy: float, runs: int = 25) -> None:
    """An eval harness: ``runs`` agent runs through the real SDK, each with a chat and two
    tool calls, and its results as span events on the run (accuracy, schema compliance)
    and on an evaluation span of its own (safety)."""
    with BackgroundService(serve_settings(db_path)) as service:
        provider = tracer_provider(service)
        tracer = provider.get_tracer("eval-harness")
        for _ in range(runs):
            with tracer.start_as_current_span("invoke_agent support") as run:
                run.set_attribute("gen_ai.operation.name", "invoke_agent")
                with tracer.start_as_current_span("chat gpt-4o") as chat:
                    chat.set_attribute("gen_ai.operation.name", "chat")
                    chat.set_attribute("gen_ai.request.model", "gpt-4o")
                for tool in ("lookup_order", "refund"):
                    with tracer.start_as_current_span(f"execute_tool {tool}") as call:
                        call.set_attribute("gen_ai.operation.name", "execute_tool")
                        call.set_attribute("gen_ai.tool.name", tool)
                run.add_event(RESULT, result("accuracy", accuracy))
                run.add_event(RESULT, result("schema_compliance", 1.0, "valid"))
                with tracer.start_as_current_span("evaluate safety") as evaluation:
                    for key, value in result("safety", 0.99, "safe").items():
                        evaluation.set_attribute(key, value)
        provider.shutdown()


@pytest.mark.parametrize(("accuracy", "code", "verdict_text"), [
    (0.95, 0, "PASS: all 8 rules judged"),
    (0.80, 1, "FAIL"),
])
def test_the_shipped_release_gate(db_path, accuracy, code, verdict_text):
    run_harness(db_path, accuracy)
    gate = str(ROOT / "examples" / "release-gate.toml")
    result = run_check("--db", str(db_path), "--rules", gate)
    assert result.returncode == code, result.stdout + result.stderr
    assert verdict_text in result.stdout
    report = json.loads(run_check("--db", str(db_path), "--rules", gate, "--format",
                                  "json").stdout)
    accuracy_rule = next(r for r in report["rules"] if r["rule"] == "accuracy")
    assert accuracy_rule["value"] == pytest.approx(accuracy)
    assert accuracy_rule["samples"] == 25
