"""Alert rules: file validation, the state machine, episodes in the database, --on-alert."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from agenttop.analysis.evaluator import AlertEvaluator, Transition
from agenttop.analysis.health import LayerHealth, MetricHealth
from agenttop.analysis.hooks import AlertCommand
from agenttop.analysis.monitor import record, update_values
from agenttop.analysis.rules import Rule, RulesError, load_rules, parse_rules
from agenttop.store import open_writer
from agenttop.store.alerts import AlertKey, load_firing

S = 1_000_000_000
T0 = 1_700_000_000 * S
ALERTS_LOG = "agenttop.analysis.hooks"


def lh(layer: str, spans: int = 100, failures: int = 0, *, window_s: int = 300,
       p99_ms: float | None = None, by_failure: dict[str, int] | None = None,
       **more: object) -> LayerHealth:
    if by_failure is None:
        by_failure = {"error": failures} if failures else {}
    return LayerHealth(
        layer=layer, window_s=window_s, spans=spans, failures=failures,
        failure_rate=failures / spans if spans else None, by_failure=by_failure,
        throughput=spans / window_s, p50_ms=None if p99_ms is None else p99_ms / 10,
        p95_ms=p99_ms, p99_ms=p99_ms, max_ms=p99_ms, input_tokens=0, output_tokens=0,
        **more)


def figures(*items: LayerHealth) -> dict[tuple[str, int], LayerHealth]:
    return {(h.layer, h.window_s): h for h in items}


def quality(value: float | None, service: str = "support-agent", points: int = 3,
            **attributes: object) -> MetricHealth:
    return MetricHealth(name="output_quality_score", type="gauge", unit="1", service=service,
                        attributes=attributes, points=points, last=value)


def rule(**kw: object) -> Rule:
    spec: dict[str, object] = {"name": "tool-errors", "layer": "tool", "measure": "failure_rate",
                               "op": ">", "threshold": 0.02, "window": "5m"}
    spec.update(kw)
    return Rule.model_validate(spec)


def tool(failures: int, spans: int = 100) -> dict[tuple[str, int], LayerHealth]:
    return figures(lh("tool", spans, failures))


# --- the state machine --------------------------------------------------------------------

def test_fires_on_breach_once_and_tracks_the_value():
    ev = AlertEvaluator([rule(min_samples=50)])
    [t] = ev.evaluate(tool(5), {}, T0)
    assert (str(t.key), t.state, t.value, t.threshold) == ("tool-errors", "firing", 0.05, 0.02)
    assert t.started_ns == t.at_ns == T0
    assert t.message == "tool failure_rate 5% > 2% over 5m (5 failed of 100 spans)"
    [one] = AlertEvaluator([rule()]).evaluate(tool(1, spans=1), {}, T0)
    assert one.message == "tool failure_rate 100% > 2% over 5m (1 failed of 1 span)"
    assert ev.evaluate(tool(9), {}, T0 + 10 * S) == []  # still firing: no new transition
    now = ev.firing[AlertKey("tool-errors")]
    assert (now.value, now.at_ns, now.started_ns) == (0.09, T0 + 10 * S, T0)
    assert "9%" in now.message
    assert len({t, now}) == 2  # hashable, for the UI's sets and dicts


def test_quiet_below_min_samples_then_fires_with_enough():
    ev = AlertEvaluator([rule(min_samples=50)])
    assert ev.evaluate(tool(20, spans=49), {}, T0) == []  # 41 % failing, but 49 spans
    assert ev.firing == {}
    [t] = ev.evaluate(tool(2, spans=50), {}, T0 + S)
    assert t.state == "firing"


def test_threshold_is_strict_for_greater_than():
    ev = AlertEvaluator([rule()])
    assert ev.evaluate(tool(2), {}, T0) == []  # exactly 2 %: not above 2 %
    assert len(ev.evaluate(tool(3), {}, T0 + S)) == 1
    ev = AlertEvaluator([rule(op=">=")])
    assert len(ev.evaluate(tool(2), {}, T0)) == 1


def test_resolves_then_a_new_breach_is_a_second_episode():
    ev = AlertEvaluator([rule()])
    [fired] = ev.evaluate(tool(10), {}, T0)
    [resolved] = ev.evaluate(tool(1), {}, T0 + 60 * S)
    assert resolved.state == "resolved"
    assert (resolved.value, resolved.started_ns, resolved.at_ns) == (0.01, T0, T0 + 60 * S)
    assert resolved.message == "resolved: tool failure_rate 1% (not > 2%) over 5m"
    assert ev.firing == {}
    assert ev.evaluate(tool(1), {}, T0 + 90 * S) == []  # stays resolved
    [again] = ev.evaluate(tool(50), {}, T0 + 120 * S)
    assert again.state == "firing" and again.started_ns == T0 + 120 * S


def test_clear_after_needs_consecutive_clear_evaluations():
    ev = AlertEvaluator([rule(clear_after=2)])
    assert [t.state for t in ev.evaluate(tool(10), {}, T0)] == ["firing"]
    assert ev.evaluate(tool(0), {}, T0 + 1 * S) == []  # clear once: still firing
    assert AlertKey("tool-errors") in ev.firing
    assert ev.evaluate(tool(10), {}, T0 + 2 * S) == []  # breach again resets the count
    assert ev.evaluate(tool(0), {}, T0 + 3 * S) == []
    [t] = ev.evaluate(tool(0), {}, T0 + 4 * S)
    assert t.state == "resolved" and t.started_ns == T0


def test_resolves_when_the_window_has_no_data():
    ev = AlertEvaluator([rule()])
    ev.evaluate(tool(10), {}, T0)
    [t] = ev.evaluate({}, {}, T0 + 300 * S)  # no tool spans in the window any more
    assert (t.state, t.value) == ("resolved", None)
    assert t.message == "resolved: no tool failure_rate data over 5m"
    # An explicit empty window is the same as a missing one.
    ev.evaluate(tool(10), {}, T0 + 400 * S)
    [t] = ev.evaluate(figures(lh("tool", 0)), None, T0 + 500 * S)
    assert t.state == "resolved"


def test_no_data_counts_towards_clear_after():
    ev = AlertEvaluator([rule(clear_after=2)])
    ev.evaluate(tool(10), {}, T0)
    assert ev.evaluate({}, {}, T0 + S) == []
    assert [t.state for t in ev.evaluate({}, {}, T0 + 2 * S)] == ["resolved"]


def test_firing_alert_with_too_few_samples_holds_while_breaching_resolves_when_clear():
    ev = AlertEvaluator([rule(min_samples=50)])
    ev.evaluate(tool(10), {}, T0)
    assert ev.evaluate(tool(2, spans=5), {}, T0 + S) == []  # 40 % of 5 spans: still bad
    assert ev.firing[AlertKey("tool-errors")].value == 0.4
    [t] = ev.evaluate(tool(0, spans=5), {}, T0 + 2 * S)  # clear, even on few samples
    assert t.state == "resolved"


def test_other_windows_and_layers_are_not_read():
    ev = AlertEvaluator([rule()])
    other = figures(lh("tool", 100, 50, window_s=60), lh("prompt", 100, 50))
    assert ev.evaluate(other, {}, T0) == []
    assert ev.windows == {300}


@pytest.mark.parametrize(("measure", "health", "threshold", "fires"), [
    ("failures.timeout", lh("tool", by_failure={"timeout": 3}, failures=3), 2, True),
    ("failures.timeout", lh("tool", by_failure={"rate_limit": 9}, failures=9), 0, False),
    ("truncated_rate", lh("tool", 10, truncated=4), 0.3, True),
    ("truncated_rate", lh("tool", 10, truncated=2), 0.3, False),
    ("empty_retrieval_rate", lh("tool", 10, retrievals=4, empty_retrievals=2), 0.4, True),
    ("empty_retrieval_rate", lh("tool", 10), 0.4, False),  # no retrievals: no data
    ("p99_ms", lh("tool", 10, p99_ms=250.0), 200, True),
    ("throughput", lh("tool", 600), 1.5, True),
])
def test_layer_measures(measure, health, threshold, fires):
    ev = AlertEvaluator([rule(measure=measure, threshold=threshold)])
    assert bool(ev.evaluate(figures(health), {}, T0)) is fires


def test_below_rules_see_an_empty_window_as_zero():
    # A "traffic stopped" rule: a layer absent from the figures had zero spans.
    ev = AlertEvaluator([rule(measure="spans", op="<", threshold=1)])
    assert [t.message for t in ev.evaluate({}, {}, T0)] == ["tool spans 0 < 1 over 5m (0 spans)"]


def test_empty_retrieval_rate_counts_retrievals_as_samples():
    ev = AlertEvaluator([rule(layer="memory", measure="empty_retrieval_rate", threshold=0.5,
                              min_samples=10)])
    few = figures(lh("memory", 1000, retrievals=9, empty_retrievals=9))
    assert ev.evaluate(few, {}, T0) == []
    enough = figures(lh("memory", 10, retrievals=10, empty_retrievals=6))
    assert [t.message for t in ev.evaluate(enough, {}, T0 + S)] == [
        "memory empty_retrieval_rate 60% > 50% over 5m (6 empty of 10 retrievals)"]


def test_for_keeps_a_short_breach_pending_and_it_never_fires():
    ev = AlertEvaluator([rule(**{"for": "1m"})])
    assert ev.evaluate(tool(10), {}, T0) == []  # breached: pending, not firing
    [pending] = ev.pending
    assert (str(pending.key), pending.since_ns) == ("tool-errors", T0)
    assert ev.evaluate(tool(10), {}, T0 + 30 * S) == []  # still under a minute
    assert ev.evaluate(tool(0), {}, T0 + 40 * S) == [] and ev.pending == []  # cleared
    assert ev.evaluate(tool(10), {}, T0 + 50 * S) == []  # a new breach starts over
    assert ev.evaluate(tool(10), {}, T0 + 100 * S) == []
    [t] = ev.evaluate(tool(10), {}, T0 + 110 * S)  # a minute of breach: it fires
    assert t.state == "firing" and ev.pending == []


def test_keep_firing_for_rides_out_a_flapping_measure():
    # The demo's output-quality alert fired and resolved six times in a few minutes:
    # with keep_firing_for it is one episode.
    ev = AlertEvaluator([rule(keep_firing_for="2m")])
    transitions = []
    for i, failures in enumerate([10, 0, 10, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]):
        transitions += ev.evaluate(tool(failures), {}, T0 + i * 15 * S)
    assert [t.state for t in transitions] == ["firing", "resolved"]
    assert transitions[1].at_ns - T0 == 14 * 15 * S  # clear for two minutes from 90 s on


def test_for_and_keep_firing_for_are_durations_in_the_rules_file():
    one = "\n".join(GOOD[GOOD.index('name = "tool-errors"') - 1:])  # that rule alone
    [r] = parse_rules(one + '\nfor = "2m"\nkeep_firing_for = "90s"\n')
    assert (r.for_s, r.keep_firing_for_s) == (120, 90)
    with pytest.raises(RulesError, match=r"rules.toml:9: rule \"tool-errors\": for: 'a while' "
                                         "is not a duration"):
        parse_rules(one + '\nfor = "a while"\n')


# --- the shipped rules (lesson 8's table) --------------------------------------------------

def test_default_rules_reproduce_the_lesson_table():
    table = {(r.name, r.layer or r.metric, r.measure, r.op, r.threshold, r.window_s,
              r.min_samples) for r in load_rules(None)}
    assert table == {
        ("prompt-failure-rate", "prompt", "failure_rate", ">", 0.05, 300, 20),
        ("tool-error-rate", "tool", "failure_rate", ">", 0.02, 300, 50),
        ("memory-failures", "memory", "failures", ">", 0, 300, 0),
        ("runtime-p99-latency", "runtime", "p99_ms", ">", 5000, 300, 20),
        ("auth-failures", "auth", "failures", ">", 0, 300, 0),
        ("output-quality", "output_quality_score", "last", "<", 0.9, 300, 0),
    }


HEALTHY = {
    "prompt": lh("prompt", 100, 5),  # exactly 5 %: not above
    "tool": lh("tool", 100, 2),  # exactly 2 %
    "memory": lh("memory", 500, 0),
    "runtime": lh("runtime", 100, p99_ms=5000.0),  # exactly 5 s
    "auth": lh("auth", 50, 0),
}


@pytest.mark.parametrize(("name", "layers", "metrics"), [
    ("prompt-failure-rate", [lh("prompt", 100, 6)], []),
    ("tool-error-rate", [lh("tool", 100, 3)], []),
    ("memory-failures", [lh("memory", 1, 1)], []),
    ("runtime-p99-latency", [lh("runtime", 20, p99_ms=5001.0)], []),
    ("auth-failures", [lh("auth", 1, 1, by_failure={"auth": 1})], []),
    ("output-quality{service=support-agent}", [], [quality(0.89)]),
])
def test_each_default_rule_fires_on_its_breach_alone(name, layers, metrics):
    rules = load_rules(None)
    wait = next(r.for_s for r in rules if name.startswith(r.name))
    ev = AlertEvaluator(rules)
    current = {**HEALTHY, **{h.layer: h for h in layers}}
    assert ev.evaluate(figures(*HEALTHY.values()), {300: [quality(0.9)]}, T0) == []
    fired = ev.evaluate(figures(*current.values()), {300: metrics or [quality(0.9)]}, T0 + S)
    if wait:  # the rate, latency and quality rules wait for the breach to last
        assert fired == [] and [str(p.key) for p in ev.pending] == [name]
        fired = ev.evaluate(figures(*current.values()), {300: metrics or [quality(0.9)]},
                            T0 + S + wait * S)
    assert [(str(t.key), t.state) for t in fired] == [(name, "firing")]


@pytest.mark.parametrize("health", [
    lh("prompt", 19, 19),  # min_samples 20
    lh("tool", 49, 49),  # min_samples 50
    lh("runtime", 19, p99_ms=60_000.0),  # min_samples 20
])
def test_default_rate_and_latency_rules_wait_for_min_samples(health):
    assert AlertEvaluator(load_rules(None)).evaluate(figures(health), {}, T0) == []


def test_default_runtime_rule_message_in_milliseconds():
    ev = AlertEvaluator(load_rules(None))
    assert ev.evaluate(figures(lh("runtime", 40, p99_ms=7250.0)), {}, T0) == []  # pending
    [t] = ev.evaluate(figures(lh("runtime", 40, p99_ms=7250.0)), {}, T0 + 60 * S)
    assert t.message == "runtime p99_ms 7250 ms > 5000 ms over 5m (40 spans)"


# --- metric rules -------------------------------------------------------------------------

def quality_rule(**kw: object) -> Rule:
    return Rule.model_validate({"name": "output-quality", "metric": "output_quality_score",
                                "measure": "last", "op": "<", "threshold": 0.9,
                                "window": "5m", **kw})


def test_metric_rule_is_evaluated_per_series():
    ev = AlertEvaluator([quality_rule()])
    a = "output-quality{service=support-agent,route=chat}"
    b = "output-quality{service=billing}"
    [t] = ev.evaluate({}, {300: [quality(0.82, route="chat"), quality(0.95, "billing")]}, T0)
    assert (str(t.key), t.state, t.value) == (a, "firing", 0.82)
    assert t.message == ("output_quality_score{service=support-agent,route=chat} last 0.82 "
                         "< 0.9 over 5m (3 points)")
    fired = ev.evaluate({}, {300: [quality(0.80, route="chat"), quality(0.5, "billing")]},
                        T0 + S)
    assert [(str(t.key), t.state) for t in fired] == [(b, "firing")]
    assert set(map(str, ev.firing)) == {a, b}
    fired = ev.evaluate({}, {300: [quality(0.93, route="chat"), quality(0.5, "billing")]},
                        T0 + 2 * S)
    assert [(str(t.key), t.state) for t in fired] == [(a, "resolved")]
    # The billing series stops reporting: no data resolves it.
    fired = ev.evaluate({}, {300: [quality(0.93, route="chat")]}, T0 + 3 * S)
    assert [(str(t.key), t.state, t.value) for t in fired] == [(b, "resolved", None)]
    assert ev.firing == {}


def test_metric_rule_ignores_other_windows_and_names():
    ev = AlertEvaluator([quality_rule()])
    other = MetricHealth(name="accuracy", type="gauge", unit="1", service="s", points=1,
                         last=0.1)
    assert ev.evaluate({}, {60: [quality(0.1)], 300: [other, quality(None)]}, T0) == []


def test_metric_rule_filters_on_service_and_attributes():
    ev = AlertEvaluator([quality_rule(service="billing", attributes={"tier": 1, "beta": True})])
    series = [quality(0.1, "support-agent", tier=1, beta=True),
              quality(0.1, "billing", tier=2, beta=True),
              quality(0.1, "billing", tier=1, beta=False),
              quality(0.2, "billing", tier=1, beta=True, route="chat")]
    assert [str(t.key) for t in ev.evaluate({}, {300: series}, T0)] == [
        "output-quality{service=billing,beta=true,route=chat,tier=1}"]


def test_metric_rule_min_samples_counts_histogram_observations():
    ev = AlertEvaluator([quality_rule(name="slow", metric="request_latency", measure="p99",
                                      op=">", threshold=5.0, min_samples=100)])
    hist = MetricHealth(name="request_latency", type="histogram", unit="s", service="s",
                        points=500, count=99, p99=9.0)
    assert ev.evaluate({}, {300: [hist]}, T0) == []
    hist = MetricHealth(name="request_latency", type="histogram", unit="s", service="s",
                        points=2, count=100, p99=9.0)
    [t] = ev.evaluate({}, {300: [hist]}, T0 + S)
    assert t.message == "request_latency{service=s} p99 9 > 5 over 5m (100 observations)"


# --- the rules file -----------------------------------------------------------------------

GOOD = """\
# alert rules
[[rule]]
name = "prompt-failures"
layer = "prompt"
measure = "failure_rate"
op = ">"
threshold = 0.05
window = "5m"

[[rule]]
name = "tool-errors"
layer = "tool"
measure = "failure_rate"
op = ">"
threshold = 0.02
window = "5m"
min_samples = 50
""".splitlines()


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def edit(line: int, *new: str) -> list[str]:
    """GOOD with its (1-based) ``line`` replaced by ``new`` lines."""
    return GOOD[:line - 1] + list(new) + GOOD[line:]


def test_good_rules_file(tmp_path):
    rules = load_rules(write(tmp_path, GOOD + ['clear_after = 2', 'description = "d"']))
    assert [(r.name, r.window_s, r.min_samples, r.clear_after) for r in rules] == [
        ("prompt-failures", 300, 0, 1), ("tool-errors", 300, 50, 2)]
    windows = {w: load_rules(write(tmp_path, edit(16, f"window = {w}")))[1].window_s
               for w in ('"1m"', '"15m"', '"60s"', '"900s"', "300")}
    assert windows == {'"1m"': 60, '"15m"': 900, '"60s"': 60, '"900s"': 900, "300": 300}
    assert load_rules(write(tmp_path, ["# nothing yet"])) == []


@pytest.mark.parametrize(("lines", "expected"), [
    (edit(15, "threshold = 0.02.1"), ":15: invalid TOML: "),
    (edit(15, "treshold = 0.02"),
     ':15: rule "tool-errors": treshold: unknown key (did you mean "threshold"?)'),
    (edit(15, 'threshold = "0.02"'),
     ':15: rule "tool-errors": threshold: Input should be a valid number'),
    (edit(15, "threshold = nan"), ':15: rule "tool-errors": threshold: must be a finite number'),
    (edit(17, "min_samples = 2.5"),
     ':17: rule "tool-errors": min_samples: Input should be a valid integer'),
    (edit(12),  # no layer, no metric: the header line
     ':10: rule "tool-errors": metric: a rule needs one of layer = "...", metric = "..." or '
     'evaluation = "..."'),
    (edit(12, 'layer = "tool"', 'metric = "output_quality_score"'),
     ':13: rule "tool-errors": metric: give one of layer or metric, not both'),
    (edit(12, 'layer = "tool"', 'evaluation = "accuracy"'),
     ':10: rule "tool-errors": metric: give one of layer or evaluation, not both'),
    (edit(12, 'evaluation = "accuracy"'),
     ':13: rule "tool-errors": measure: unknown evaluation measure \'failure_rate\''),
    (GOOD[:11] + ['evaluation = "accuracy"', 'measure = "label_rate"'] + GOOD[13:],
     ':10: rule "tool-errors": label: label_rate needs the label it counts: label = "pass"'),
    (edit(12, 'layer = "tools"'),
     ":12: rule \"tool-errors\": layer: unknown layer 'tools'; expected one of prompt, tool, "
     "memory, runtime, auth, other"),
    (edit(16, 'window = "10m"'),
     ":16: rule \"tool-errors\": window: must be one of 1m, 5m, 15m (or 60s, 300s, 900s), "
     "got '10m'"),
    (edit(14, 'op = "=="'),
     ":14: rule \"tool-errors\": op: Input should be '>', '>=', '<' or '<='"),
    (edit(13, 'measure = "error_rate"'),
     ":13: rule \"tool-errors\": measure: unknown layer measure 'error_rate'; expected one of "
     "failure_rate, failures,"),
    (edit(14), ':10: rule "tool-errors": op: required key is missing'),
    (edit(11, 'name = "prompt-failures"'),
     ':11: rule "prompt-failures": name: duplicate rule name (first defined at line 3)'),
    (edit(12, 'layer = "tool"', 'service = "x"'),
     ':13: rule "tool-errors": service: a service filter is only supported on metric rules'),
    (edit(17, "min_samples = -1"),
     ':17: rule "tool-errors": min_samples: Input should be greater than or equal to 0'),
    (edit(11, "name = 'a{b}'"), ':11: rule "a{b}": name: must be a non-empty name'),
    (["[[rules]]", 'name = "x"'], ":1: unknown top-level key 'rules' (did you mean \"rule\"?)"),
    (["", "[rule]", 'name = "x"'], ":2: 'rule' must be [[rule]] tables"),
    (["rule = [1]"], ': rule #1: must be a table'),
])
def test_rules_file_errors_name_file_line_rule_and_field(tmp_path, lines, expected):
    path = write(tmp_path, lines)
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    message = str(raised.value)
    assert message.startswith(f"{path}{expected}"), message
    # Every problem on its line, each naming the file and line (a typo's "missing" is
    # the typo, not another problem).
    assert all(line.startswith(f"{path}:") for line in message.splitlines())
    assert "required key is missing" not in message or "unknown key" not in message


def test_metric_rule_errors(tmp_path):
    metric = ['[[rule]]', 'name = "q"', 'metric = "output_quality_score"', 'measure = "p99_ms"',
              'op = "<"', 'threshold = 0.9', 'window = "5m"', 'attributes = {route = [1]}']
    # Two problems: both, in file order.
    with pytest.raises(RulesError) as raised:
        load_rules(write(tmp_path, metric))
    first, second = str(raised.value).splitlines()
    assert first.endswith("rules.toml:4: rule \"q\": measure: unknown metric measure 'p99_ms'; "
                          "expected one of last, rate, count, p50, p95, p99, mean, min, max")
    assert second.endswith("rules.toml:8: rule \"q\": attributes: value of 'route' must be a "
                           "string, number or boolean")
    metric[3] = 'measure = "last"'
    with pytest.raises(RulesError, match=r"rules.toml:8: rule \"q\": attributes: value of "
                                         r"'route' must be a string, number or boolean"):
        load_rules(write(tmp_path, metric))


def test_unreadable_rules_file(tmp_path):
    with pytest.raises(RulesError, match="missing.toml: cannot read rules file"):
        load_rules(tmp_path / "missing.toml")


def test_shipped_rules_each_say_why_in_a_comment():
    lines = Path(__file__).parents[1].joinpath(
        "agenttop/analysis/default_rules.toml").read_text().splitlines()
    headers = [i for i, line in enumerate(lines) if line == "[[rule]]"]
    assert len(headers) == 6
    assert all(lines[i - 1].startswith("# ") for i in headers)


# --- persistence --------------------------------------------------------------------------

@pytest.fixture
def conn(tmp_path):
    conn = open_writer(tmp_path / "a.db")
    yield conn
    conn.close()


def write_tx(conn, fn, *args) -> None:
    conn.execute("BEGIN")
    fn(conn, *args)
    conn.execute("COMMIT")


def rows(conn) -> list[tuple]:
    return list(conn.execute(
        "SELECT rule, layer, metric, measure, op, state, value, threshold, window_s, "
        "started_ns, resolved_ns, updated_ns FROM alerts ORDER BY alert_id"))


def test_episodes_are_recorded_firing_then_resolved(conn):
    ev = AlertEvaluator([rule()])
    write_tx(conn, record, ev.evaluate(tool(10), {}, T0))
    assert rows(conn) == [("tool-errors", "tool", None, "failure_rate", ">", "firing", 0.1,
                           0.02, 300, T0, None, T0)]
    ev.evaluate(tool(20), {}, T0 + S)
    write_tx(conn, update_values, ev.firing)
    assert rows(conn)[0][6] == 0.2 and rows(conn)[0][11] == T0 + S
    write_tx(conn, record, ev.evaluate(tool(0), {}, T0 + 2 * S))
    write_tx(conn, record, ev.evaluate(tool(10), {}, T0 + 3 * S))
    assert rows(conn) == [
        ("tool-errors", "tool", None, "failure_rate", ">", "resolved", 0.0, 0.02, 300,
         T0, T0 + 2 * S, T0 + 2 * S),
        ("tool-errors", "tool", None, "failure_rate", ">", "firing", 0.1, 0.02, 300,
         T0 + 3 * S, None, T0 + 3 * S),
    ]
    [message] = next(iter(conn.execute("SELECT message FROM alerts WHERE alert_id = 1")))
    assert message == ("tool failure_rate 10% > 2% over 5m (10 failed of 100 spans); "
                       "resolved: tool failure_rate 0% (not > 2%) over 5m")


def test_metric_episode_stores_the_series_key(conn):
    ev = AlertEvaluator([quality_rule()])
    write_tx(conn, record, ev.evaluate({}, {300: [quality(0.5)]}, T0))
    [row] = load_firing(conn)
    assert (str(row.key), row.layer, row.metric, row.measure, row.value) == (
        "output-quality{service=support-agent}", None, "output_quality_score", "last", 0.5)


def test_restore_resumes_firing_alerts_instead_of_firing_twice(conn):
    first = AlertEvaluator(load_rules(None))
    breach = figures(lh("auth", 3, 2, by_failure={"auth": 2}))
    bad_quality = {300: [quality(0.7)]}
    write_tx(conn, record, first.evaluate(breach, bad_quality, T0))
    write_tx(conn, record, first.evaluate(breach, bad_quality, T0 + 60 * S))  # its `for`
    assert len(rows(conn)) == 2

    restarted = AlertEvaluator(load_rules(None))  # a new process
    restarted.restore(load_firing(conn))
    assert set(map(str, restarted.firing)) == {"auth-failures",
                                              "output-quality{service=support-agent}"}
    assert restarted.firing[AlertKey("auth-failures")].started_ns == T0
    assert restarted.evaluate(breach, bad_quality, T0 + 90 * S) == []  # no second firing
    resolved = restarted.evaluate({}, bad_quality, T0 + 400 * S)
    assert [(str(t.key), t.state, t.started_ns) for t in resolved] == [
        ("auth-failures", "resolved", T0)]
    write_tx(conn, record, resolved)
    assert [(r[0], r[5], r[10]) for r in rows(conn)] == [
        ("auth-failures", "resolved", T0 + 400 * S),
        ("output-quality{service=support-agent}", "firing", None)]


def test_restored_alert_of_a_removed_rule_resolves(conn):
    write_tx(conn, record, AlertEvaluator([rule(name="old")]).evaluate(tool(10), {}, T0))
    ev = AlertEvaluator([rule()])  # "old" was renamed "tool-errors"
    ev.restore(load_firing(conn))
    assert set(map(str, ev.firing)) == {"old"}
    out = ev.evaluate(tool(10), {}, T0 + S)
    assert [(str(t.key), t.state, t.message) for t in out] == [
        ("tool-errors", "firing", "tool failure_rate 10% > 2% over 5m (10 failed of 100 spans)"),
        ("old", "resolved", "resolved: rule no longer configured")]
    write_tx(conn, record, out)
    assert [str(r.key) for r in load_firing(conn)] == ["tool-errors"]


def test_firing_again_without_restore_closes_the_stale_row(conn):
    write_tx(conn, record, AlertEvaluator([rule()]).evaluate(tool(10), {}, T0))
    write_tx(conn, record, AlertEvaluator([rule()]).evaluate(tool(10), {}, T0 + S))
    assert [(r[5], r[9]) for r in rows(conn)] == [("resolved", T0), ("firing", T0 + S)]
    assert [r.started_ns for r in load_firing(conn)] == [T0 + S]


# --- --on-alert ---------------------------------------------------------------------------

def firing_transition() -> Transition:
    [t] = AlertEvaluator([rule()]).evaluate(tool(10), {}, T0)
    return t


def python(code: str, *args: object) -> str:
    return shlex.join([sys.executable, "-c", code, *map(str, args)])


SAVE_STDIN = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())"


def test_command_gets_the_transition_as_json_on_stdin(tmp_path):
    out = tmp_path / "alert.json"
    command = AlertCommand(python(SAVE_STDIN, out))
    command.notify(firing_transition())
    command.close(10)
    payload = json.loads(out.read_text())
    assert payload == {
        "rule": "tool-errors", "key": "tool-errors", "state": "firing", "layer": "tool",
        "metric": None, "measure": "failure_rate", "op": ">", "value": 0.1,
        "threshold": 0.02, "window_s": 300, "started_ns": T0, "at_ns": T0,
        "message": "tool failure_rate 10% > 2% over 5m (10 failed of 100 spans)", "description": "",
    }


def test_notify_does_not_wait_for_the_command(tmp_path):
    out = tmp_path / "alert.json"
    command = AlertCommand(python("import time; time.sleep(1); " + SAVE_STDIN, out))
    started = time.monotonic()
    command.notify(firing_transition())
    assert time.monotonic() - started < 0.3
    assert not out.exists()
    command.close(10)
    assert out.exists()


def test_command_past_its_timeout_is_killed_and_logged(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=ALERTS_LOG)
    pid_file = tmp_path / "pid"
    code = ("import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
            "sys.stderr.write('still thinking'); sys.stderr.flush(); time.sleep(60)")
    command = AlertCommand(python(code, pid_file), timeout_s=0.5)
    started = time.monotonic()
    command.notify(firing_transition())
    command.close(10)
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    [entry] = [r.getMessage() for r in caplog.records]
    assert "timed out after 0.5s and was killed (alert tool-errors firing)" in entry
    assert "still thinking" in entry
    assert command.failed == 1


def test_failing_command_is_logged_with_its_stderr(caplog):
    caplog.set_level(logging.WARNING, logger=ALERTS_LOG)
    command = AlertCommand(python("import sys; sys.stderr.write('x' * 900 + 'boom'); "
                                  "sys.exit(3)"))
    command.notify(firing_transition())
    command.close(10)
    [entry] = [r.getMessage() for r in caplog.records]
    assert "exited with status 3 (alert tool-errors firing): ..." in entry
    assert entry.endswith("xboom") and len(entry) < 700


def test_missing_command_is_logged_not_raised(caplog):
    caplog.set_level(logging.WARNING, logger=ALERTS_LOG)
    command = AlertCommand("/nonexistent/agenttop-no-such-command --flag")
    command.notify(firing_transition())
    command.close(10)
    [entry] = [r.getMessage() for r in caplog.records]
    assert "/nonexistent/agenttop-no-such-command not found" in entry


def test_a_flood_of_alerts_is_bounded(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=ALERTS_LOG)
    runs = tmp_path / "runs"
    runs.mkdir()
    code = ("import sys, time, uuid, pathlib; time.sleep(0.3); "
            "pathlib.Path(sys.argv[1], uuid.uuid4().hex).write_text('x')")
    command = AlertCommand(python(code, runs), max_running=2, max_queued=3)
    for _ in range(10):
        command.notify(firing_transition())
    accepted = 10 - command.dropped
    assert 3 <= accepted <= 5  # at most 2 running + 3 waiting
    command.close(10)
    assert len(list(runs.iterdir())) == accepted
    assert any("too many alert commands pending" in r.getMessage() for r in caplog.records)
    command.notify(firing_transition())  # after close: dropped, not run
    assert command.dropped == 11 - accepted
    assert "closed" in caplog.records[-1].getMessage()


def test_empty_command_is_a_usage_error():
    with pytest.raises(ValueError):
        AlertCommand("  ")


def test_every_problem_of_every_rule_is_listed(tmp_path):
    lines = ['[[rule]]', 'name = "a"', 'layer = "tool"', 'measure = "failure_rate"',
             'op = ">"', 'threshold = "2"', 'window = "5m"', '',
             '[[rule]]', 'name = "b"', 'layer = "nope"', 'measure = "failure_rate"',
             'op = ">"', 'threshold = 0.1', 'window = "7m"']
    with pytest.raises(RulesError) as raised:
        load_rules(write(tmp_path, lines))
    problems = str(raised.value).splitlines()
    assert [p.split(": ", 2)[0].rsplit(":", 1)[1] for p in problems] == ["6", "11", "15"]
    assert 'rule "a": threshold' in problems[0] and 'rule "b": layer' in problems[1]
    assert 'rule "b": window' in problems[2]
