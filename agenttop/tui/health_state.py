"""A layer card's state (ok / warn / critical) from its figures and the alert rules.

Pure and headless. The thresholds are the layer rules of the rules file (by default:
prompt failures > 5 %, tool errors > 2 %, any memory or auth failure,
runtime p99 > 5 s), judged on the dashboard's window:

- critical: an alert for the layer is firing, or a rule is breached with at least its
  ``min_samples`` (what would make ``serve`` fire it);
- warn: elevated but not (yet) critical: a breach on too few samples, a measure past half
  its threshold, or any failure at all;
- ok: otherwise (including no spans).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from agenttop.analysis.evaluator import breaches, observe
from agenttop.analysis.health import LayerHealth
from agenttop.analysis.rules import Rule
from agenttop.tui import fmt

State = Literal["ok", "warn", "critical"]
_RANK = {"ok": 0, "warn": 1, "critical": 2}


@dataclass(frozen=True)
class LayerState:
    state: State
    reason: str  # one short phrase for the card; "" when ok


_NAMES = {"failure_rate": "failed", "failures": "failures", "p99_ms": "p99", "p95_ms": "p95",
          "p50_ms": "p50", "empty_retrieval_rate": "empty retrievals"}


def _amount(rule: Rule, value: float) -> str:
    if rule.measure.endswith("_rate"):
        return fmt.percent(value)
    if rule.measure.endswith("_ms"):
        return fmt.millis(value)
    return f"{value:g}"


def describe(rule: Rule, relation: str | None = None) -> str:
    """``failed > 2%``, ``p99 > 5.00s``: a rule's condition in card words."""
    return (f"{_NAMES.get(rule.measure, rule.measure)} {relation or rule.op} "
            f"{_amount(rule, rule.threshold)}")


def _elevated(rule: Rule, value: float) -> bool:
    if rule.op in (">", ">=") and rule.threshold > 0:
        return value > rule.threshold / 2
    return False


def layer_state(health: LayerHealth, rules: Sequence[Rule], firing: Iterable[str] = ()
                ) -> LayerState:
    """The state of ``health.layer``; ``firing`` names the alerts firing for it."""
    firing = list(firing)
    if firing:
        return LayerState("critical", f"alert: {firing[0]}")
    best = LayerState("ok", "")

    def worse(candidate: LayerState) -> None:
        nonlocal best
        if _RANK[candidate.state] > _RANK[best.state]:
            best = candidate

    figures = {(health.layer, health.window_s): health}
    for rule in rules:
        if rule.layer != health.layer:
            continue
        rule = rule.model_copy(update={"window": health.window_s})
        for _key, seen in observe(rule, figures, {}):
            if seen.value is None:
                continue
            if breaches(rule, seen.value):
                if seen.samples >= rule.min_samples:
                    worse(LayerState("critical", describe(rule)))
                else:
                    # Breached, on too few to judge (the card's figures say by how much).
                    worse(LayerState("warn", f"needs {rule.min_samples} {seen.unit}, "
                                             f"has {seen.samples}"))
            elif _elevated(rule, seen.value):
                worse(LayerState("warn", describe(rule, "near")))
    if health.failures and best.state == "ok":
        best = LayerState("warn", "some failures")
    return best
