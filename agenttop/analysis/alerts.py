"""Alert rules: loading and validating them, evaluating them, recording episodes, notifying.

This module owns:

- the rules file format (TOML, ``[[rule]]`` tables) and its validation (``load_rules``,
  ``RulesError``), including the shipped ``default_rules.toml`` (lesson 8's table);
- the alert state machine (``AlertEvaluator``): it reads the figures computed by
  ``agenttop.analysis.health`` (``LayerHealth``, ``MetricHealth``) and a clock value it is
  given, and returns ``Transition`` values; it does no I/O;
- alert episodes in the ``alerts`` table (``record``, ``update_values``, ``load_firing``),
  written through the single writer connection;
- the ``--on-alert`` command runner (``AlertCommand``).

It is headless: it never imports textual or rich.

Semantics (the judgement calls, tested in tests/test_alerts.py):

- ``evaluate(layers, metrics, now_ns)`` takes ``layers`` keyed by ``(layer, window_s)``
  (figures for all services together) and ``metrics`` keyed by ``window_s``, each a
  sequence of ``MetricHealth`` (one per series). A missing ``(layer, window_s)`` entry is
  an empty window (zero spans), as the health module would report it.
- An alert's identity (its key) is the rule name for a layer rule. A metric rule is
  evaluated per matching series, and its key is the rule name plus the series label, e.g.
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
- A later breach after a resolution starts a new episode (a new row in ``alerts``).
- After a restart, ``restore(load_firing(conn))`` resumes the firing episodes, so a
  still-breaching rule does not fire a second time and a recovered one resolves its own
  row. A restored alert whose rule is no longer configured resolves at the next evaluation.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.resources
import json
import logging
import math
import operator
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import apsw
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from agenttop.analysis.health import WINDOWS_S, LayerHealth, MetricHealth
from agenttop.analysis.layers import FAILURES, LAYERS

log = logging.getLogger(__name__)

Op = Literal[">", ">=", "<", "<="]
State = Literal["firing", "resolved"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
_WINDOW_LABELS = {s: f"{s // 60}m" for s in WINDOWS_S}  # 60 -> "1m"
_WINDOWS = {**{label: s for s, label in _WINDOW_LABELS.items()},
            **{f"{s}s": s for s in WINDOWS_S}}


# --- measures -----------------------------------------------------------------------------

def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# Each layer measure: how to read it, and what counts as a sample for ``min_samples``.
_LAYER_MEASURES: dict[str, Callable[[LayerHealth], float | None]] = {
    "failure_rate": lambda h: h.failure_rate,
    "failures": lambda h: h.failures,
    "spans": lambda h: h.spans,
    "throughput": lambda h: h.throughput,
    "p50_ms": lambda h: h.p50_ms,
    "p95_ms": lambda h: h.p95_ms,
    "p99_ms": lambda h: h.p99_ms,
    "max_ms": lambda h: h.max_ms,
    "truncated_rate": lambda h: _ratio(h.truncated, h.spans),
    "content_filtered": lambda h: h.content_filtered,
    "eval_score": lambda h: h.eval_score,
    # The denominator is retrievals, so that is also what min_samples counts (below).
    "empty_retrieval_rate": lambda h: _ratio(h.empty_retrievals, h.retrievals),
    "top_score": lambda h: h.top_score,
    **{f"failures.{c}": (lambda h, c=c: h.by_failure.get(c, 0)) for c in FAILURES},
}
_RATE_MEASURES = frozenset(("failure_rate", "truncated_rate", "empty_retrieval_rate"))
METRIC_MEASURES = ("last", "rate", "count", "p50", "p95", "p99")
LAYER_MEASURES = tuple(_LAYER_MEASURES)


def _layer_samples(measure: str, h: LayerHealth) -> int:
    return h.retrievals if measure == "empty_retrieval_rate" else h.spans


def _empty_layer(layer: str, window_s: int) -> LayerHealth:
    return LayerHealth(layer=layer, window_s=window_s, spans=0, failures=0, failure_rate=None,
                       by_failure={}, throughput=0.0, p50_ms=None, p95_ms=None, p99_ms=None,
                       max_ms=None, input_tokens=0, output_tokens=0)


def _attr_text(value: object) -> str:
    """One spelling for an attribute value, so TOML ``200``/``true`` match OTLP ints/bools."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- rules --------------------------------------------------------------------------------

class RulesError(Exception):
    """A rules file cannot be used; the message names the file, line, rule and field."""


class Rule(BaseModel):
    """One alert rule, as written in a ``[[rule]]`` table of a rules file."""

    # strict: ``threshold = "0.05"`` or ``min_samples = 2.5`` are mistakes, not values to
    # coerce; forbid: a typo such as ``treshold`` must not be silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: str
    layer: str | None = None  # one of layers.LAYERS
    metric: Annotated[str | None, Field(validate_default=True)] = None
    service: str | None = None
    attributes: dict[str, str] | None = None
    measure: str
    op: Op
    threshold: float
    window: int  # seconds, one of WINDOWS_S; written "5m" (or "300s") in the file
    min_samples: Annotated[int, Field(ge=0)] = 0
    clear_after: Annotated[int, Field(ge=1)] = 1
    description: str = ""

    def __hash__(self) -> int:
        # The generated hash would fail on the attributes dict; rules key dicts and sets.
        return hash((self.name, self.layer, self.metric, self.measure, self.threshold))

    @property
    def window_s(self) -> int:
        return self.window

    @property
    def subject(self) -> str:
        return self.layer if self.layer is not None else str(self.metric)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # Braces would make the alert key (name{series}) ambiguous to parse on restore.
        if not v.strip() or v != v.strip() or any(c in v for c in "{}\n\r\t"):
            raise ValueError("must be a non-empty name without braces, tabs or newlines, "
                             "and without leading or trailing spaces")
        return v

    @field_validator("layer")
    @classmethod
    def _layer(cls, v: str | None) -> str | None:
        if v is not None and v not in LAYERS:
            raise ValueError(f"unknown layer {v!r}; expected one of {', '.join(LAYERS)}")
        return v

    @field_validator("metric")
    @classmethod
    def _one_of_layer_metric(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "layer" not in info.data:  # layer itself was invalid: that error is enough
            return v
        layer = info.data["layer"]
        if v is None and layer is None:
            raise PydanticCustomError("layer_or_metric",
                                      "a rule needs one of layer = \"...\" or metric = \"...\"")
        if v is not None and layer is not None:
            raise PydanticCustomError("layer_and_metric",
                                      "give either layer or metric, not both")
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("service")
    @classmethod
    def _service(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and info.data.get("layer") is not None:
            raise PydanticCustomError("layer_service",
                                      "a service filter is only supported on metric rules")
        return v

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes(cls, v: object, info: ValidationInfo) -> object:
        if v is None:
            return v
        if info.data.get("layer") is not None:
            raise PydanticCustomError("layer_attributes",
                                      "an attributes filter is only supported on metric rules")
        if not isinstance(v, dict):
            raise PydanticCustomError("attributes_type",
                                      "must be a table, e.g. attributes = {route = \"chat\"}")
        out = {}
        for key, value in v.items():
            if not isinstance(value, str | int | float | bool):
                raise ValueError(f"value of {key!r} must be a string, number or boolean")
            out[key] = _attr_text(value)
        return out

    @field_validator("measure")
    @classmethod
    def _measure(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("layer") is not None and v not in _LAYER_MEASURES:
            raise ValueError(f"unknown layer measure {v!r}; expected one of "
                             + ", ".join(LAYER_MEASURES))
        if info.data.get("metric") is not None and v not in METRIC_MEASURES:
            raise ValueError(f"unknown metric measure {v!r}; expected one of "
                             + ", ".join(METRIC_MEASURES))
        return v

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return float(v)

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: object) -> object:
        if isinstance(v, str) and v.strip() in _WINDOWS:
            return _WINDOWS[v.strip()]
        if isinstance(v, int) and not isinstance(v, bool) and v in WINDOWS_S:
            return v
        raise ValueError(f"must be one of {', '.join(_WINDOW_LABELS.values())} "
                         f"(or {', '.join(f'{s}s' for s in WINDOWS_S)}), got {v!r}")


_HEADER = re.compile(r"^\s*\[\[\s*(?:rule|\"rule\"|'rule')\s*\]\]")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def default_rules_path() -> Path:
    """The rules file shipped with agenttop (lesson 8's table)."""
    return Path(str(importlib.resources.files("agenttop.analysis") / "default_rules.toml"))


def load_rules(path: str | os.PathLike[str] | None) -> list[Rule]:
    """Read and validate a rules file (``None``: the shipped defaults).

    Raises ``RulesError`` with one message naming the file, line, rule and field.
    """
    path = default_rules_path() if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesError(f"{path}: cannot read rules file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise RulesError(f"{path}: not a UTF-8 text file") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, filename: str = "rules.toml") -> list[Rule]:
    """Validate the text of a rules file; ``filename`` is only used in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python 3.11's TOMLDecodeError has no lineno attribute: the position is in the text.
        message = str(e)
        match = _TOML_POSITION.search(message)
        if match:
            raise RulesError(f"{filename}:{match[1]}: invalid TOML: "
                             f"{message[:match.start()]} (column {match[2]})") from None
        raise RulesError(f"{filename}: invalid TOML: {message}") from None

    lines = text.splitlines()
    headers = [i + 1 for i, line in enumerate(lines) if _HEADER.match(line)]
    for key in data:
        if key != "rule":
            line = _key_line(lines, key, 1, len(lines)) or _table_line(lines, key)
            hint = _did_you_mean(key, ["rule"])
            raise RulesError(f"{_where(filename, line)}unknown top-level key {key!r}{hint}; "
                             f"rules are [[rule]] tables")
    entries = data.get("rule", [])
    if not isinstance(entries, list):
        line = _key_line(lines, "rule", 1, len(lines)) or _table_line(lines, "rule")
        raise RulesError(f"{_where(filename, line)}'rule' must be [[rule]] tables")

    rules: list[Rule] = []
    first_line: dict[str, int | None] = {}
    for n, entry in enumerate(entries):
        start = headers[n] if n < len(headers) and len(headers) == len(entries) else None
        end = headers[n + 1] - 1 if start is not None and n + 1 < len(headers) else len(lines)
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f'rule "{name}"' if isinstance(name, str) else f"rule #{n + 1}"
        if not isinstance(entry, dict):
            raise RulesError(f"{_where(filename, start)}{label}: must be a table")
        try:
            rule = Rule.model_validate(entry)
        except ValidationError as e:
            errors = [((_key_line(lines, str(err["loc"][0]), start, end) if err["loc"]
                        else None) or start, err) for err in e.errors()]
            # The first problem in the file; but a misspelt key also makes its correct
            # spelling "missing", so name the typo first.
            line, first = min(errors, key=lambda item: (item[1]["type"] != "extra_forbidden",
                                                        item[0] or 0))
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise RulesError(f"{_where(filename, line)}{label}: "
                             f"{_describe(first, entry)}{more}") from None
        line = _key_line(lines, "name", start, end) or start
        if rule.name in first_line:
            where = first_line[rule.name]
            earlier = f" (first defined at line {where})" if where else ""
            raise RulesError(f"{_where(filename, line)}{label}: name: duplicate rule "
                             f"name{earlier}")
        first_line[rule.name] = line
        rules.append(rule)
    return rules


def _where(filename: str, line: int | None) -> str:
    return f"{filename}:{line}: " if line else f"{filename}: "


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _describe(error: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
    loc = error["loc"]
    path = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        known = [k for k in Rule.model_fields if k not in entry]
        return f"{path}: unknown key{_did_you_mean(str(loc[0]), known)}"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}" if path else message


def _key_line(lines: list[str], key: str, start: int | None, end: int) -> int | None:
    """The line (1-based) of ``key = ...`` (or ``key.x = ...``, ``[rule.key]``) in a section."""
    if start is None:
        return None
    pattern = re.compile(
        rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*[=.]"""
        rf"""|^\s*\[\s*rule\.{re.escape(key)}\s*\]""")
    for number in range(start, end + 1):
        if pattern.match(lines[number - 1]):
            return number
    return None


def _table_line(lines: list[str], key: str) -> int | None:
    pattern = re.compile(rf"^\s*\[\[?\s*{re.escape(key)}\s*[\].]")
    for number, line in enumerate(lines, 1):
        if pattern.match(line):
            return number
    return None


# --- evaluation ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Transition:
    """An alert changed state (or, from ``AlertEvaluator.firing``, its current firing state)."""

    rule: Rule
    key: str  # alert identity: the rule name, or rule name + series label for metric rules
    state: State
    value: float | None  # the measure now; None when there is no data
    threshold: float
    at_ns: int  # when this state was observed
    started_ns: int  # when the episode began
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON object given to ``--on-alert`` commands."""
        return {
            "rule": self.rule.name, "key": self.key, "state": self.state,
            "layer": self.rule.layer, "metric": self.rule.metric,
            "measure": self.rule.measure, "op": self.rule.op, "value": self.value,
            "threshold": self.threshold, "window_s": self.rule.window_s,
            "started_ns": self.started_ns, "at_ns": self.at_ns, "message": self.message,
            "description": self.rule.description,
        }


@dataclass(frozen=True, slots=True)
class AlertEpisode:
    """One row of ``alerts``: a firing or resolved episode (``key`` = the ``rule`` column)."""

    alert_id: int
    key: str
    layer: str | None
    metric: str | None
    measure: str
    op: str
    state: str  # firing | resolved
    value: float | None
    threshold: float
    window_s: int
    started_ns: int
    resolved_ns: int | None
    updated_ns: int
    message: str


ALERT_COLUMNS = ("alert_id, rule, layer, metric, measure, op, state, value, threshold, "
                 "window_s, started_ns, resolved_ns, updated_ns, message")


@dataclass(frozen=True)
class Observation:
    subject: str  # "tool", or "output_quality_score{service=a}"
    value: float | None
    samples: int
    unit: str  # what the samples are: spans, retrievals, points, observations


@dataclass
class _Active:
    rule: Rule
    key: str
    started_ns: int
    value: float | None
    at_ns: int
    message: str
    clear_streak: int = 0
    orphan: bool = False  # restored, but its rule is no longer configured


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
        self._active: dict[str, _Active] = {}

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    @property
    def windows(self) -> set[int]:
        """The windows (seconds) the rules read: the figures the caller must compute."""
        return {rule.window_s for rule in self._rules}

    @property
    def firing(self) -> dict[str, Transition]:
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
            name = row.key.partition("{")[0]
            rule = self._by_name.get(name)
            orphan = rule is None
            if rule is None:
                # Only used to report the resolution: model_construct skips validation, so
                # a row written by an older agenttop cannot make the restore fail.
                rule = Rule.model_construct(
                    name=name, layer=row.layer, metric=row.metric, service=None,
                    attributes=None, measure=row.measure, op=row.op,
                    threshold=row.threshold, window=row.window_s, min_samples=0,
                    clear_after=1, description="")
            self._active[row.key] = _Active(
                rule=rule, key=row.key, started_ns=row.started_ns, value=row.value,
                at_ns=row.updated_ns, message=row.message, orphan=orphan)

    def evaluate(
        self,
        layers: Mapping[tuple[str, int], LayerHealth],
        metrics: Mapping[int, Sequence[MetricHealth]] | None,
        now_ns: int,
    ) -> list[Transition]:
        """Apply one round of figures; return the alerts that started or resolved."""
        metrics = metrics or {}
        out: list[Transition] = []
        seen: set[str] = set()
        for rule in self._rules:
            for key, observation in observe(rule, layers, metrics):
                if key in seen:  # the same series listed twice: the first one counts
                    continue
                seen.add(key)
                transition = self._step(rule, key, observation, now_ns)
                if transition is not None:
                    out.append(transition)
        for key, active in list(self._active.items()):
            if key in seen:
                continue
            if active.orphan:
                out.append(self._resolve(active, None, now_ns,
                                         "resolved: rule no longer configured"))
                continue
            # A series that is gone (or a key from an older definition of the rule) has no
            # data, which is clear: it must not stay firing forever.
            rule = self._by_name[active.rule.name]
            nothing = Observation(rule.subject + key[len(rule.name):], None, 0, "")
            transition = self._step(rule, key, nothing, now_ns)
            if transition is not None:
                out.append(transition)
        return out

    def _step(self, rule: Rule, key: str, seen: Observation, now_ns: int) -> Transition | None:
        breach = breaches(rule, seen.value)
        active = self._active.get(key)
        if active is None:
            if not breach or seen.samples < rule.min_samples:
                return None
            message = _firing_message(rule, seen)
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
            active.message = _firing_message(rule, seen)
            return None
        active.clear_streak += 1
        if active.clear_streak < rule.clear_after:
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
) -> Iterable[tuple[str, Observation]]:
    """What ``rule`` measures in these figures: one (alert key, observation) per subject."""
    if rule.layer is not None:
        health = layers.get((rule.layer, rule.window_s))
        if health is None:
            health = _empty_layer(rule.layer, rule.window_s)
        value = _LAYER_MEASURES[rule.measure](health)
        unit = "retrievals" if rule.measure == "empty_retrieval_rate" else "spans"
        yield rule.name, Observation(rule.layer, _number(value),
                                     _layer_samples(rule.measure, health), unit)
        return
    for series in metrics.get(rule.window_s, ()):
        if not _matches(rule, series):
            continue
        label = series_label(series)
        counted = series.count is not None
        samples = series.count if counted else series.points
        yield rule.name + label, Observation(
            series.name + label, _number(getattr(series, rule.measure)), samples or 0,
            "observations" if counted else "points")


def breaches(rule: Rule, value: float | None) -> bool:
    return value is not None and _OPS[rule.op](value, rule.threshold)


@dataclass(frozen=True)
class Check:
    """One rule against one round of figures, for a one-shot gate (``agenttop check``)."""

    rule: Rule
    key: str
    observation: Observation
    status: Literal["ok", "breached", "too few samples", "no data"]


def check_rules(
    rules: Sequence[Rule],
    layers: Mapping[tuple[str, int], LayerHealth],
    metrics: Mapping[int, Sequence[MetricHealth]],
) -> list[Check]:
    """Every rule's verdict now, with no state: a breach needs ``min_samples`` like an alert."""
    out = []
    for rule in rules:
        seen_any = False
        for key, observation in observe(rule, layers, metrics):
            seen_any = True
            if observation.value is None:
                status = "no data"
            elif not breaches(rule, observation.value):
                status = "ok"
            elif observation.samples < rule.min_samples:
                status = "too few samples"
            else:
                status = "breached"
            out.append(Check(rule, key, observation, status))
        if not seen_any:
            out.append(Check(rule, rule.name, Observation(rule.subject, None, 0, ""), "no data"))
    return out


def series_label(series: MetricHealth) -> str:
    """``{service=a,k=v,...}``: the part of a metric alert's key that names its series."""
    parts = [f"service={series.service}"] if series.service else []
    parts += [f"{k}={_attr_text(v)}" for k, v in sorted(series.attributes.items())]
    return "{" + ",".join(parts) + "}"


def _matches(rule: Rule, series: MetricHealth) -> bool:
    if series.name != rule.metric:
        return False
    if rule.service is not None and series.service != rule.service:
        return False
    return all(k in series.attributes and _attr_text(series.attributes[k]) == v
               for k, v in (rule.attributes or {}).items())


def _number(value: object) -> float | None:
    if value is None:
        return None
    value = float(value)  # type: ignore[arg-type]
    return None if math.isnan(value) else value


def _format(rule: Rule, value: float) -> str:
    if rule.layer is not None and rule.measure in _RATE_MEASURES:
        return f"{value * 100:.3g}%"
    text = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if rule.measure.endswith("_ms"):
        return f"{text} ms"
    if rule.measure == "throughput" or rule.measure == "rate":
        return f"{text}/s"
    return text


def _firing_message(rule: Rule, seen: Observation) -> str:
    assert seen.value is not None
    return (f"{seen.subject} {rule.measure} {_format(rule, seen.value)} {rule.op} "
            f"{_format(rule, rule.threshold)} over {_WINDOW_LABELS[rule.window_s]} "
            f"({seen.samples} {seen.unit})")


def _resolved_message(rule: Rule, seen: Observation) -> str:
    window = _WINDOW_LABELS[rule.window_s]
    if seen.value is None:
        return f"resolved: no {seen.subject} {rule.measure} data over {window}"
    return (f"resolved: {seen.subject} {rule.measure} {_format(rule, seen.value)} "
            f"(not {rule.op} {_format(rule, rule.threshold)}) over {window}")


# --- persistence --------------------------------------------------------------------------

_CLOSE_STALE = """
UPDATE alerts SET state = 'resolved', resolved_ns = :at, updated_ns = :at,
       message = message || '; superseded by a new episode'
WHERE rule = :key AND state = 'firing'
"""
_INSERT = """
INSERT INTO alerts (rule, layer, metric, measure, op, state, value, threshold, window_s,
                    started_ns, resolved_ns, updated_ns, message)
VALUES (:key, :layer, :metric, :measure, :op, 'firing', :value, :threshold, :window_s,
        :started, NULL, :at, :message)
"""
# Every firing row of the key, not only the one started at started_ns: at most one episode
# per key is open, and this also closes one left behind by a crash between restarts.
_RESOLVE = """
UPDATE alerts SET state = 'resolved', resolved_ns = :at, updated_ns = :at, value = :value,
       message = message || '; ' || :message
WHERE rule = :key AND state = 'firing'
"""
_REFRESH = """
UPDATE alerts SET value = :value, updated_ns = :at
WHERE rule = :key AND state = 'firing' AND started_ns = :started
"""


def _bindings(t: Transition) -> dict[str, Any]:
    return {"key": t.key, "layer": t.rule.layer, "metric": t.rule.metric,
            "measure": t.rule.measure, "op": t.rule.op, "value": t.value,
            "threshold": t.threshold, "window_s": t.rule.window_s, "started": t.started_ns,
            "at": t.at_ns, "message": t.message}


def record(conn: apsw.Connection, transitions: Iterable[Transition]) -> None:
    """Write episodes: a firing transition inserts a row, a resolved one closes it.

    Runs inside the caller's transaction (``Writer.call``): it never begins or commits.
    """
    for t in transitions:
        bindings = _bindings(t)
        if t.state == "firing":
            conn.execute(_CLOSE_STALE, bindings)
            conn.execute(_INSERT, bindings)
        else:
            conn.execute(_RESOLVE, bindings)
            if not conn.changes():
                log.debug("no firing row to resolve for alert %s", t.key)


def update_values(conn: apsw.Connection,
                  firing: Mapping[str, Transition] | Iterable[Transition]) -> None:
    """Refresh ``value`` and ``updated_ns`` of firing rows (e.g. from ``evaluator.firing``)."""
    items = firing.values() if isinstance(firing, Mapping) else firing
    for t in items:
        conn.execute(_REFRESH, _bindings(t))


def load_firing(conn: apsw.Connection) -> list[AlertEpisode]:
    """The episodes still firing, oldest first, for ``AlertEvaluator.restore``."""
    rows = conn.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'firing' "
                        "ORDER BY started_ns, alert_id")
    return [AlertEpisode(*row) for row in rows]


# --- --on-alert ---------------------------------------------------------------------------

_STDERR_TAIL = 500


@dataclass
class _Job:
    payload: bytes
    key: str
    state: str
    env: dict[str, str] = field(default_factory=dict)


class AlertCommand:
    """Runs the ``--on-alert`` command for each transition, off the caller's thread.

    The command (split with ``shlex``, run without a shell) gets the transition as one
    JSON object on stdin (see ``Transition.as_dict``) and in ``AGENTTOP_ALERT_*``
    environment variables. At most ``max_running`` commands run at once; up to
    ``max_queued`` more wait; beyond that a notification is dropped and logged, so a flood
    of alerts cannot fork-bomb the machine. A command is killed (with its process group)
    after ``timeout_s``. Failures are logged with the tail of the command's stderr, never
    raised.
    """

    def __init__(self, command: str, timeout_s: float = 10, *, max_running: int = 4,
                 max_queued: int = 100) -> None:
        self.argv = shlex.split(command)  # bad quoting raises ValueError: a usage error
        if not self.argv:
            raise ValueError("the alert command is empty")
        self.timeout_s = timeout_s
        self._max_running = max_running
        self._max_queued = max_queued
        self._queue: deque[_Job] = deque()
        self._workers = 0
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0
        self.failed = 0

    def notify(self, transition: Transition) -> None:
        """Queue the command for this transition and return at once."""
        job = _Job(payload=json.dumps(transition.as_dict()).encode(), key=transition.key,
                   state=transition.state, env={
                       "AGENTTOP_ALERT_KEY": transition.key,
                       "AGENTTOP_ALERT_STATE": transition.state,
                       "AGENTTOP_ALERT_MESSAGE": transition.message,
                   })
        with self._cond:
            if self._closed or len(self._queue) >= self._max_queued:
                self.dropped += 1
                log.warning("alert command not run for %s %s: %s", job.key, job.state,
                            "closed" if self._closed else "too many alert commands pending")
                return
            self._queue.append(job)
            if self._workers < self._max_running:
                self._workers += 1
                threading.Thread(target=self._work, name="agenttop-on-alert",
                                 daemon=True).start()

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting notifications and wait (up to ``timeout``) for queued ones."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._closed = True
            while self._workers:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    log.warning("%d alert commands still running at close", self._workers)
                    return
                self._cond.wait(left)

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._workers -= 1
                    self._cond.notify_all()
                    return
                job = self._queue.popleft()
            try:
                self._run(job)
            except Exception:  # a worker must survive anything to drain the queue
                self.failed += 1
                log.exception("alert command failed for %s", job.key)

    def _run(self, job: _Job) -> None:
        name = self.argv[0]
        try:
            # A session of its own, so a timeout kills the whole process group (a shell
            # script's children too), not only the direct child.
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True,
                                    env={**os.environ, **job.env})
        except FileNotFoundError:
            self.failed += 1
            log.error("alert command %s not found (alert %s %s)", name, job.key, job.state)
            return
        except OSError as e:
            self.failed += 1
            log.error("alert command %s could not start: %s (alert %s %s)", name,
                      e.strerror or e, job.key, job.state)
            return
        try:
            _, stderr = proc.communicate(job.payload, timeout=self.timeout_s)
        except subprocess.TimeoutExpired as e:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                _, rest = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # a grandchild left the group holding stderr
                proc.kill()
                rest = b""
            self.failed += 1
            log.error("alert command %s timed out after %gs and was killed (alert %s %s)%s",
                      name, self.timeout_s, job.key, job.state,
                      _tail((e.stderr or b"") + (rest or b"")))
            return
        if proc.returncode != 0:
            self.failed += 1
            log.error("alert command %s exited with status %s (alert %s %s)%s", name,
                      proc.returncode, job.key, job.state, _tail(stderr))


def _tail(stderr: bytes | None) -> str:
    text = (stderr or b"").decode(errors="replace").strip()
    if not text:
        return ""
    return ": " + (text if len(text) <= _STDERR_TAIL else "..." + text[-_STDERR_TAIL:])
