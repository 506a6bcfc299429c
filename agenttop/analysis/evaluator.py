"""The alert state machine (``AlertEvaluator``) and the one-shot verdict of ``check``.

Pure: it reads the figures computed by ``agenttop.analysis.health`` (``LayerHealth``,
``MetricHealth``) and a clock value it is given, and returns ``Transition`` values; it does
no I/O (``agenttop.analysis.monitor`` runs it in ``serve`` and records the episodes).

Semantics (the judgement calls, tested in tests/test_alerts.py):

- ``evaluate(layers, metrics, now_ns)`` takes ``layers`` keyed by ``(layer, window_s)``
  (figures for all services together) and ``metrics`` keyed by ``window_s``, each a
  sequence of ``MetricHealth`` (one per series). A missing ``(layer, window_s)`` entry is
  an empty window (zero spans), as the health module would report it.
- An alert's identity is an ``AlertKey``: the rule name for a layer rule; for a metric rule,
  evaluated per matching series, the rule name and the series' labels, shown as
  ``output-quality{service=support-agent,route=chat}``: two degraded services are two
  alerts, and one recovering resolves only its own.
- ok -> firing when the measure breaches AND the window holds at least ``min_samples``
  samples (spans for layer rules, retrievals for ``empty_retrieval_rate``; observations
  for histogram/summary metrics, points for the others).
- firing -> resolved once the measure has been clear for ``clear_after`` consecutive
  evaluations (default 1). "Clear" includes "no data" (an empty window, a series that is
  gone, a measure with no value), so nothing stays firing forever. ``min_samples`` gates
  only the start of an episode: a firing alert whose window still breaches with too few
  samples stays firing (the breach is not evidence of recovery), while a window under
  ``min_samples`` that does not breach counts as clear.
- A later breach after a resolution starts a new episode.
- After a restart, ``restore(load_firing(conn))`` resumes the firing episodes, so a
  still-breaching rule does not fire a second time and a recovered one resolves its own
  row. A restored alert whose rule is no longer configured resolves at the next evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agenttop.analysis.health import LayerHealth, MetricHealth, empty_layer
from agenttop.analysis.rules import (
    EVAL_MEASURE_FNS,
    LAYER_MEASURE_FNS,
    OPS,
    PER_RUN_MEASURES,
    RATE_MEASURES,
    Rule,
    attr_text,
    layer_samples,
)
from agenttop.config import counted, format_duration
from agenttop.store.alerts import AlertEpisode, AlertKey
from agenttop.store.evaluations import EvalTotals

State = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Transition:
    """An alert changed state (or, from ``AlertEvaluator.firing``, its current firing state)."""

    rule: Rule
    key: AlertKey
    state: State
    value: float | None  # the measure now; None when there is no data
    threshold: float
    at_ns: int  # when this state was observed
    started_ns: int  # when the episode began
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON object given to ``--on-alert`` commands."""
        return {
            "rule": self.rule.name, "key": str(self.key), "state": self.state,
            "layer": self.rule.layer, "metric": self.rule.metric,
            "measure": self.rule.measure, "op": self.rule.op, "value": self.value,
            "threshold": self.threshold, "window_s": self.rule.window_s,
            "started_ns": self.started_ns, "at_ns": self.at_ns, "message": self.message,
            "description": self.rule.description,
        }


@dataclass(frozen=True)
class Observation:
    subject: str  # "tool", or "output_quality_score{service=a}"
    value: float | None
    samples: int
    unit: str  # what the samples are: spans, retrievals, points, observations


@dataclass
class _Active:
    rule: Rule
    key: AlertKey
    started_ns: int
    value: float | None
    at_ns: int
    message: str
    clear_streak: int = 0
    clear_since_ns: int | None = None  # clear from then on (for keep_firing_for)
    orphan: bool = False  # restored, but its rule is no longer configured


@dataclass(frozen=True)
class Pending:
    """An alert whose rule is breached, waiting for the breach to last its ``for``."""

    rule: Rule
    key: AlertKey
    since_ns: int  # breaching since
    value: float | None
    message: str


class AlertEvaluator:
    """The alert state machine over a fixed list of rules; pure: the caller gives the time.

    ``evaluate(layers, metrics, now_ns)``:

    - ``layers``: ``Mapping[(layer, window_s), LayerHealth]``, all services together;
    - ``metrics``: ``Mapping[window_s, Sequence[MetricHealth]]``, one item per series.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = list(rules)
        self._by_name = {rule.name: rule for rule in self._rules}
        if len(self._by_name) != len(self._rules):
            raise ValueError("duplicate rule names")
        self._active: dict[AlertKey, _Active] = {}
        self._pending: dict[AlertKey, Pending] = {}

    @property
    def pending(self) -> list[Pending]:
        """Alerts breached but not yet for their rule's ``for``, oldest first."""
        return sorted(self._pending.values(), key=lambda p: p.since_ns)

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    @property
    def windows(self) -> set[int]:
        """The windows (seconds) the rules read: the figures the caller must compute."""
        return {rule.window_s for rule in self._rules}

    @property
    def firing(self) -> dict[AlertKey, Transition]:
        """Alerts firing now, by key, each with its latest value and message."""
        return {
            key: Transition(rule=a.rule, key=key, state="firing", value=a.value,
                            threshold=a.rule.threshold, at_ns=a.at_ns,
                            started_ns=a.started_ns, message=a.message)
            for key, a in self._active.items()
        }

    def restore(self, rows: Iterable[AlertEpisode]) -> None:
        """Resume firing episodes read back with ``load_firing`` (after a restart)."""
        for row in sorted(rows, key=lambda r: r.started_ns):  # the latest episode wins
            name = row.key.rule
            rule = self._by_name.get(name)
            orphan = rule is None
            if rule is None:
                # Only used to report the resolution: model_construct skips validation, so
                # a row written by an older agenttop cannot make the restore fail.
                rule = Rule.model_construct(
                    name=name, layer=row.layer, metric=row.metric, service=None,
                    attributes=None, measure=row.measure, op=row.op,
                    threshold=row.threshold, window=row.window_s, min_samples=0,
                    clear_after=1, for_s=0, keep_firing_for_s=0, description="")
            self._active[row.key] = _Active(
                rule=rule, key=row.key, started_ns=row.started_ns, value=row.value,
                at_ns=row.updated_ns, message=row.message, orphan=orphan)

    def evaluate(
        self,
        layers: Mapping[tuple[str, int], LayerHealth],
        metrics: Mapping[int, Sequence[MetricHealth]] | None,
        now_ns: int,
        evals: Mapping[int, Mapping[str, EvalTotals]] | None = None,
        partial: set[str] | frozenset[str] = frozenset(),
    ) -> list[Transition]:
        """Apply one round of figures; return the alerts that started or resolved.
        ``partial`` names the rules whose figures cover only some of their series (capped
        by ``max_series``): their alerts not in this round stay as they are."""
        metrics = metrics or {}
        out: list[Transition] = []
        seen: set[AlertKey] = set()
        for rule in self._rules:
            for key, observation in observe(rule, layers, metrics, evals):
                if key in seen:  # the same series listed twice: the first one counts
                    continue
                seen.add(key)
                transition = self._step(rule, key, observation, now_ns)
                if transition is not None:
                    out.append(transition)
        for key in set(self._pending) - seen:  # no data: the breach did not last
            del self._pending[key]
        for key, active in list(self._active.items()):
            if key in seen:
                continue
            if active.rule.name in partial and not active.orphan:
                continue  # its series was not judged this round, which says nothing
            if active.orphan:
                out.append(self._resolve(active, None, now_ns,
                                         "resolved: rule no longer configured"))
                continue
            # A series that is gone (or a key from an older definition of the rule) has no
            # data, which is clear: it must not stay firing forever.
            rule = self._by_name[active.rule.name]
            nothing = Observation(rule.subject + key.series, None, 0, "")
            transition = self._step(rule, key, nothing, now_ns)
            if transition is not None:
                out.append(transition)
        return out

    def _step(self, rule: Rule, key: AlertKey, seen: Observation, now_ns: int) -> Transition | None:
        breach = breaches(rule, seen.value)
        active = self._active.get(key)
        if active is None:
            if not breach or seen.samples < rule.min_samples:
                self._pending.pop(key, None)
                return None
            message = _firing_message(rule, seen)
            pending = self._pending.get(key)
            since = now_ns if pending is None else pending.since_ns
            if now_ns - since < rule.for_s * 10**9:
                self._pending[key] = Pending(rule, key, since, seen.value, message)
                return None
            self._pending.pop(key, None)
            self._active[key] = _Active(rule=rule, key=key, started_ns=now_ns,
                                        value=seen.value, at_ns=now_ns, message=message)
            return Transition(rule=rule, key=key, state="firing", value=seen.value,
                              threshold=rule.threshold, at_ns=now_ns, started_ns=now_ns,
                              message=message)
        active.rule = rule  # a restored alert now follows the rule as configured
        active.value = seen.value
        active.at_ns = now_ns
        if breach:
            # Still breaching, even with fewer than min_samples: not evidence of recovery.
            active.clear_streak = 0
            active.clear_since_ns = None
            active.message = _firing_message(rule, seen)
            return None
        active.clear_streak += 1
        if active.clear_since_ns is None:
            active.clear_since_ns = now_ns
        if (active.clear_streak < rule.clear_after
                or now_ns - active.clear_since_ns < rule.keep_firing_for_s * 10**9):
            return None
        return self._resolve(active, seen.value, now_ns, _resolved_message(rule, seen))

    def _resolve(self, active: _Active, value: float | None, now_ns: int,
                 message: str) -> Transition:
        del self._active[active.key]
        return Transition(rule=active.rule, key=active.key, state="resolved", value=value,
                          threshold=active.rule.threshold, at_ns=now_ns,
                          started_ns=active.started_ns, message=message)


def observe(
    rule: Rule,
    layers: Mapping[tuple[str, int], LayerHealth],
    metrics: Mapping[int, Sequence[MetricHealth]],
    evals: Mapping[int, Mapping[str, EvalTotals]] | None = None,
) -> Iterable[tuple[AlertKey, Observation]]:
    """What ``rule`` measures in these figures: one (alert key, observation) per subject."""
    if rule.evaluation is not None:
        totals = (evals or {}).get(rule.window_s, {}).get(rule.evaluation)
        totals = totals or EvalTotals(rule.evaluation)
        scored = rule.measure.startswith("score_")
        yield AlertKey(rule.name), Observation(
            rule.evaluation, _number(EVAL_MEASURE_FNS[rule.measure](totals, rule.label)),
            totals.score_count if scored else totals.results, "results")
        return
    if rule.layer is not None:
        health = layers.get((rule.layer, rule.window_s))
        if health is None:
            health = empty_layer(rule.layer, rule.window_s)
        value = LAYER_MEASURE_FNS[rule.measure](health)
        unit = ("retrievals" if rule.measure == "empty_retrieval_rate"
                else "runs" if rule.measure in PER_RUN_MEASURES else "spans")
        yield AlertKey(rule.name), Observation(rule.layer, _number(value),
                                     layer_samples(rule.measure, health), unit)
        return
    for series in metrics.get(rule.window_s, ()):
        if not _matches(rule, series):
            continue
        key = AlertKey(rule.name, series_labels(series))
        counted = series.count is not None
        samples = series.count if counted else series.points
        yield key, Observation(
            series.name + key.series, _number(getattr(series, rule.measure)), samples or 0,
            "observations" if counted else "points")


def breaches(rule: Rule, value: float | None) -> bool:
    return value is not None and OPS[rule.op](value, rule.threshold)


@dataclass(frozen=True)
class Check:
    """One rule against one round of figures, for a one-shot gate (``agenttop check``)."""

    rule: Rule
    key: AlertKey
    observation: Observation
    status: Literal["ok", "breached", "too few samples", "no data"]


def check_rules(
    rules: Sequence[Rule],
    layers: Mapping[tuple[str, int], LayerHealth],
    metrics: Mapping[int, Sequence[MetricHealth]],
    evals: Mapping[int, Mapping[str, EvalTotals]] | None = None,
) -> list[Check]:
    """Every rule's verdict now, with no state. A rule is judged only on at least
    ``min_samples`` samples: below that it is "too few samples" whatever its value, and a
    measure with no value is "no data"; neither is a pass."""
    out = []
    for rule in rules:
        seen_any = False
        for key, observation in observe(rule, layers, metrics, evals):
            seen_any = True
            if observation.samples < rule.min_samples:
                status = "too few samples"
            elif observation.value is None:
                status = "no data"
            elif breaches(rule, observation.value):
                status = "breached"
            else:
                status = "ok"
            out.append(Check(rule, key, observation, status))
        if not seen_any:
            out.append(Check(rule, AlertKey(rule.name), Observation(rule.subject, None, 0, ""),
                             "no data"))
    return out


Verdict = Literal["pass", "fail", "inconclusive"]


def verdict(checks: Sequence[Check], comparisons: Sequence[Any] | None = None) -> Verdict:
    """fail if any rule is breached or a comparison with the baseline found a regression;
    pass if every rule was judged and holds and every comparison could be made; else (no
    rules, no data, too few samples) inconclusive: nothing to judge is not a pass."""
    compared = comparisons or ()
    if any(c.status == "breached" for c in checks) or any(
            c.status == "regression" for c in compared):
        return "fail"
    if checks and all(c.status == "ok" for c in checks) and not any(
            c.status == "inconclusive" for c in compared):
        return "pass"
    return "inconclusive"


def series_labels(series: MetricHealth) -> tuple[tuple[str, str], ...]:
    """What tells a metric alert's series apart: its service, then its attributes."""
    labels = [("service", series.service)] if series.service else []
    labels += [(k, attr_text(v)) for k, v in sorted(series.attributes.items())]
    return tuple(labels)


def _matches(rule: Rule, series: MetricHealth) -> bool:
    if series.name != rule.metric:
        return False
    if rule.service is not None and series.service != rule.service:
        return False
    return attributes_match(rule, series.attributes)


def attributes_match(rule: Rule, attributes: Mapping[str, object]) -> bool:
    """Whether a series' attributes hold every value of the rule's attribute filter
    (compared as text, as the rules file writes them)."""
    return all(k in attributes and attr_text(attributes[k]) == v
               for k, v in (rule.attributes or {}).items())


def _number(value: object) -> float | None:
    if value is None:
        return None
    value = float(value)  # type: ignore[arg-type]
    return None if math.isnan(value) else value


def _format(rule: Rule, value: float) -> str:
    if rule.layer is not None and rule.measure in RATE_MEASURES:
        return f"{value * 100:.3g}%"
    text = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if rule.measure.startswith("cost"):
        return f"${text}"
    if rule.measure.endswith("_ms"):
        return f"{text} ms"
    if rule.measure == "throughput" or rule.measure == "rate":
        return f"{text}/s"
    return text


# What a layer rate counts, in its alert's words: "13 failed of 50 spans".
RATE_WORDS = {"failure_rate": "failed", "truncated_rate": "truncated",
              "empty_retrieval_rate": "empty"}


def _firing_message(rule: Rule, seen: Observation) -> str:
    assert seen.value is not None
    samples = counted(seen.samples, seen.unit.removesuffix("s"))
    if rule.layer is not None and rule.measure in RATE_WORDS:
        samples = f"{round(seen.value * seen.samples):,} {RATE_WORDS[rule.measure]} of {samples}"
    return (f"{seen.subject} {rule.measure} {_format(rule, seen.value)} {rule.op} "
            f"{_format(rule, rule.threshold)} over {format_duration(rule.window_s)} "
            f"({samples})")


def _resolved_message(rule: Rule, seen: Observation) -> str:
    window = format_duration(rule.window_s)
    if seen.value is None:
        return f"resolved: no {seen.subject} {rule.measure} data over {window}"
    return (f"resolved: {seen.subject} {rule.measure} {_format(rule, seen.value)} "
            f"(not {rule.op} {_format(rule, rule.threshold)}) over {window}")
