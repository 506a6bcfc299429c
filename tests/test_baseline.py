"""Comparing a run with its baseline: the tests that tell a regression from noise, a
saved summary round trip, and the gate's verdicts on runs sent through the real SDK."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner
from opentelemetry.trace import Status, StatusCode

from agenttop.analysis.baseline import Calls, Moments, Regression, Summary, compare
from agenttop.analysis.rules import RulesError, load_regression
from agenttop.analysis.stats import binomial_greater, fisher_greater, welch_greater
from agenttop.cli import main
from agenttop.serve import BackgroundService
from tests.conftest import serve_settings
from tests.test_check import PROMPT_AND_AUTH, rules_file, run_check
from tests.test_sdk_ingest import tracer_provider
from tests.tui.fixtures import CLIENT, NOW, span, traces_request, write

GOLDEN = Path(__file__).parent / "golden"

GATE = PROMPT_AND_AUTH + """
[regression]
min_samples = 20
measures = ["failure_rate", "p50_ms", "tokens_per_run"]
"""


def test_fisher_binomial_and_welch_against_hand_computed_values():
    # All 3 of 3 failed against none of 3: one table of C(6,3) = 20 is as extreme.
    assert fisher_greater(3, 3, 0, 3) == pytest.approx(1 / 20)
    assert fisher_greater(0, 3, 3, 3) == pytest.approx(1.0)
    # P(X >= 2) for Binomial(2, 0.5) = 1/4; P(X >= 1) for Binomial(3, 0.5) = 7/8.
    assert binomial_greater(2, 2, 0.5) == pytest.approx(0.25)
    assert binomial_greater(1, 3, 0.5) == pytest.approx(0.875)
    # Equal means: no evidence either way; t = 3.873 with 58 degrees of freedom.
    assert welch_greater(1.0, 1.0, 30, 1.0, 1.0, 30) == pytest.approx(0.5)
    assert welch_greater(1.0, 1.0, 30, 0.0, 1.0, 30) == pytest.approx(1.38e-4, rel=0.01)


def calls(n: int, failed: int, category: str = "error", ms: int = 100) -> Calls:
    bucket = 8 * 17  # ~131 ms
    return Calls(n, {category: failed} if failed else {}, {bucket + (ms > 500) * 30: n})


def summary(subjects: dict[str, Calls], tokens: Moments | None = None) -> Summary:
    return Summary("test", 0, 1, subjects, {"tokens_per_run": tokens or Moments()}, {})


def test_a_regression_needs_the_tolerance_and_credible_evidence():
    reg = Regression(measures=["failure_rate"])
    base = summary({"tool:search": calls(100, 1)})
    # 3 of 100 against 1 of 100: past the tolerance, but chance could do it.
    noise = compare(base, summary({"tool:search": calls(100, 3)}), reg)
    assert {(c.measure, c.status) for c in noise} == {("failure_rate", "ok"),
                                                      ("failures.error", "ok")}
    assert all(c.p_value > 0.05 for c in noise)
    worse = compare(base, summary({"tool:search": calls(100, 15)}), reg)
    assert {(c.measure, c.status) for c in worse} == {("failure_rate", "regression"),
                                                      ("failures.error", "regression")}
    # A category the baseline never had is tested from zero, and named.
    timeouts = compare(base, summary({"tool:search": calls(100, 12, "timeout")}), reg)
    assert {(c.measure, c.status, c.note) for c in timeouts} == {
        ("failure_rate", "regression", ""),
        ("failures.timeout", "regression", "new failure category")}
    # Within the tolerance it holds, however sure: 1 point more with absolute = 0.05.
    loose = Regression(measures=["failure_rate"], subjects={
        "tool:search": {"failure_rate": {"absolute": 0.2}}})
    held = compare(base, summary({"tool:search": calls(100, 15)}), loose)
    assert [c.status for c in held if c.measure == "failure_rate"] == ["ok"]


def test_too_few_samples_are_inconclusive_and_new_subjects_are_named():
    reg = Regression(measures=["failure_rate", "p95_ms", "tokens_per_run"])
    base = summary({"tool:search": calls(10, 0)}, Moments(5, 100, 10))
    run = summary({"tool:search": calls(10, 5), "tool:new": calls(40, 0)},
                  Moments(50, 100, 10))
    found = {(c.subject, c.measure): c.status for c in compare(base, run, reg)}
    assert found == {("tool:search", "failure_rate"): "inconclusive",
                     ("tool:search", "p95_ms"): "inconclusive",
                     ("tool:new", "calls"): "new",
                     ("runs", "tokens_per_run"): "inconclusive"}


def test_latency_and_means_regress_when_credibly_worse():
    reg = Regression(measures=["p50_ms", "tokens_per_run"])
    base = summary({"layer:tool": calls(200, 0, ms=100)}, Moments(200, 1000, 100 ** 2))
    run = summary({"layer:tool": calls(200, 0, ms=900)}, Moments(200, 1500, 100 ** 2))
    found = {c.measure: c.status for c in compare(base, run, reg)}
    assert found == {"p50_ms": "regression", "tokens_per_run": "regression"}
    same = {c.measure: c.status for c in compare(base, base, reg)}
    assert same == {"p50_ms": "ok", "tokens_per_run": "ok"}


def test_a_bad_regression_table_names_the_file_line_and_field(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(GATE + 'alpha = 2\n')
    line = len(GATE.splitlines()) + 1  # the line of alpha, under [regression]
    with pytest.raises(RulesError, match=rf"rules.toml:{line}: regression.alpha: Input "
                                         r"should be less than 1"):
        load_regression(path)


def send_runs(db_path, runs: int, tool_failures: int, category: str = "ToolError",
              input_tokens: int = 100) -> None:
    """``runs`` agent runs, each with a gpt-4o chat (``input_tokens`` + 10 tokens) and a
    tool call; the first ``tool_failures`` tool calls fail with ``category`` as their
    error.type."""
    with BackgroundService(serve_settings(db_path)) as service:
        provider = tracer_provider(service)
        tracer = provider.get_tracer("agent")
        for i in range(runs):
            with tracer.start_as_current_span("invoke_agent support") as root:
                root.set_attribute("gen_ai.agent.name", "support")
                with tracer.start_as_current_span("chat gpt-4o") as chat:
                    chat.set_attribute("gen_ai.operation.name", "chat")
                    chat.set_attribute("gen_ai.request.model", "gpt-4o")
                    chat.set_attribute("gen_ai.usage.input_tokens", input_tokens + i % 7)
                    chat.set_attribute("gen_ai.usage.output_tokens", 10)
                with tracer.start_as_current_span("execute_tool lookup") as tool:
                    tool.set_attribute("gen_ai.operation.name", "execute_tool")
                    tool.set_attribute("gen_ai.tool.name", "lookup")
                    if i < tool_failures:
                        tool.set_attribute("error.type", category)
                        tool.set_status(Status(StatusCode.ERROR))
        provider.shutdown()


def test_the_gate_against_a_saved_baseline_and_a_baseline_database(tmp_path):
    rules = rules_file(tmp_path, GATE)
    base_db, worse_db, small_db = (tmp_path / f"{n}.db" for n in ("base", "worse", "small"))
    send_runs(base_db, 60, tool_failures=1)
    saved = tmp_path / "baseline.json"
    first = run_check("--db", str(base_db), "--rules", rules, "--save-baseline", str(saved))
    assert first.returncode == 0, first.stdout + first.stderr
    kept = json.loads(saved.read_text())
    assert kept["agenttop_baseline"] == 1 and kept["subjects"]["tool:lookup"]["calls"] == 60

    same = run_check("--db", str(base_db), "--rules", rules, "--baseline", str(saved))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "comparisons hold" in same.stdout and "PASS" in same.stdout

    send_runs(worse_db, 60, tool_failures=15, category="TimeoutError")
    for baseline in (saved, base_db):  # the summary, or the database it came from
        worse = run_check("--db", str(worse_db), "--rules", rules, "--baseline",
                          str(baseline), "--format", "json")
        assert worse.returncode == 1, worse.stdout + worse.stderr
        report = json.loads(worse.stdout)
        regressions = {(c["subject"], c["measure"]) for c in report["comparisons"]
                       if c["status"] == "regression"}
        assert {("layer:tool", "failure_rate"), ("tool:lookup", "failure_rate"),
                ("tool:lookup", "failures.timeout")} <= regressions
    junit = ElementTree.fromstring(run_check(
        "--db", str(worse_db), "--rules", rules, "--baseline", str(saved), "--format",
        "junit").stdout)
    failed = {case.get("name") for case in junit.iter("testcase")
              if case.find("failure") is not None}
    assert "tool:lookup failure_rate" in failed

    send_runs(small_db, 8, tool_failures=0)
    small = run_check("--db", str(small_db), "--rules", rules, "--baseline", str(saved))
    assert small.returncode == 3, small.stdout + small.stderr
    assert "tool:lookup failure_rate (60 vs 8 calls, fewer than 20)" in small.stdout


def test_a_cost_per_run_increase_beyond_tolerance_fails_the_gate(tmp_path):
    rules = rules_file(tmp_path, PROMPT_AND_AUTH + """
[regression]
measures = ["failure_rate", "cost_per_run"]
cost_per_run = {relative = 0.25}
""")
    base_db, pricier_db, slightly_db = (tmp_path / f"{n}.db"
                                        for n in ("base", "pricier", "slightly"))
    send_runs(base_db, 30, tool_failures=0)
    send_runs(pricier_db, 30, tool_failures=0, input_tokens=300)  # about 2.3x the cost
    send_runs(slightly_db, 30, tool_failures=0, input_tokens=110)  # +8 %: within 25 %
    pricier = run_check("--db", str(pricier_db), "--rules", rules, "--baseline", str(base_db),
                        "--format", "json")
    assert pricier.returncode == 1, pricier.stdout + pricier.stderr
    cost = next(c for c in json.loads(pricier.stdout)["comparisons"]
                if c["measure"] == "cost_per_run")
    assert cost["status"] == "regression" and cost["run"] > 2 * cost["base"]
    slightly = run_check("--db", str(slightly_db), "--rules", rules, "--baseline",
                         str(base_db))
    assert slightly.returncode == 0, slightly.stdout + slightly.stderr


def fixture_runs(db, tool_failures: int, runs: int = 40) -> None:
    """Runs through the real writer at the fixtures' fixed time: a root, a chat and a tool
    call each; the first ``tool_failures`` tool calls time out."""
    spans = []
    for i in range(runs):
        trace = f"run-{i}"
        spans += [
            span(trace, "invoke_agent support", start_ms=i * 100, duration_ms=90,
                 attributes={"gen_ai.agent.name": "support"}),
            span(trace, "chat gpt-4o", parent="invoke_agent support", start_ms=i * 100 + 1,
                 duration_ms=40, kind=CLIENT, attributes={
                     "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                     "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10}),
            span(trace, "execute_tool lookup", parent="invoke_agent support",
                 start_ms=i * 100 + 50, duration_ms=20,
                 error="timed out" if i < tool_failures else None,
                 attributes={"gen_ai.tool.name": "lookup",
                             **({"error.type": "TimeoutError"} if i < tool_failures else {})}),
        ]
    write(db, ("traces", traces_request([("support-agent", spans)])))


def test_the_markdown_report_against_a_baseline_matches_the_golden_file(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixture_runs(tmp_path / "base.db", tool_failures=0)
    fixture_runs(tmp_path / "run.db", tool_failures=12)
    rules = rules_file(tmp_path, GATE)
    until = datetime.fromtimestamp(NOW / 1e9 + 60, UTC).isoformat()
    result = CliRunner().invoke(main, ["check", "--db", "run.db", "--rules", rules,
                                       "--baseline", "base.db", "--until", until,
                                       "--format", "markdown"])
    assert result.exit_code == 1, result.output
    golden = GOLDEN / "check-baseline.md"
    if os.environ.get("AGENTTOP_UPDATE_GOLDEN"):
        golden.write_text(result.stdout.replace(str(tmp_path), "."), encoding="utf-8")
    assert result.stdout.replace(str(tmp_path), ".") == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize(("runs", "failed", "code", "status"), [
    (400, 20, 1, "regression"),  # 20 -> 40 failed tool calls of 400: credible
    (10, 1, 3, "inconclusive"),  # 1 -> 2 of 10: too few to say
])
def test_a_doubled_tool_failure_rate(tmp_path, monkeypatch, runs, failed, code, status):
    monkeypatch.chdir(tmp_path)
    fixture_runs(tmp_path / "base.db", tool_failures=failed, runs=runs)
    fixture_runs(tmp_path / "run.db", tool_failures=2 * failed, runs=runs)
    rules = rules_file(tmp_path, GATE.replace("min_samples = 20\n[[", "[["))
    until = datetime.fromtimestamp(NOW / 1e9 + 60, UTC).isoformat()
    result = CliRunner().invoke(main, ["check", "--db", "run.db", "--rules", rules,
                                       "--baseline", "base.db", "--until", until,
                                       "--format", "json", "--allow-inconclusive"])
    report = json.loads(result.stdout)
    rate = next(c for c in report["comparisons"]
                if (c["subject"], c["measure"]) == ("tool:lookup", "failure_rate"))
    assert rate["status"] == status
    assert rate["run"] == pytest.approx(2 * rate["base"])
    assert result.exit_code == (1 if code == 1 else 0)  # inconclusive allowed here
