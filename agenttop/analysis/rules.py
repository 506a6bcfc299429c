"""Alert rules: the measures a rule may judge, the rules file format (TOML, ``[[rule]]``
tables) and its validation (``load_rules``, ``RulesError``), and the shipped
``default_rules.toml``.

A bad file is reported in one line naming the file, line, rule and field.
"""

from __future__ import annotations

import importlib.resources
import math
import operator
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from agenttop.analysis.baseline import Regression, parse_regression
from agenttop.analysis.health import ALL, WINDOWS_S, LayerHealth
from agenttop.analysis.tomlfile import key_line, parse_tables, read_text, where
from agenttop.config import format_duration, parse_duration
from agenttop.store.evaluations import EvalTotals
from agenttop.store.rows import FAILURES, LAYERS
from agenttop.store.series import CARDINALITY_LIMIT

Op = Literal[">", ">=", "<", "<="]

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
# "5m" and "300s" both name the 300 s window.
_WINDOWS = {**{format_duration(s): s for s in WINDOWS_S}, **{f"{s}s": s for s in WINDOWS_S}}


# --- measures -----------------------------------------------------------------------------

def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# Each layer measure: how to read it, and what counts as a sample for ``min_samples``.
LAYER_MEASURE_FNS: dict[str, Callable[[LayerHealth], float | None]] = {
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
    # Spend: what the window's priced model calls cost (None when calls had tokens but none
    # could be priced: unknown is not $0), per agent run (a runtime root span), and tokens
    # per run.
    "cost_usd": lambda h: None if h.unpriced and not h.cost_usd else h.cost_usd,
    "cost_per_run": lambda h: None if h.unpriced and not h.cost_usd else _ratio(
        h.cost_usd, h.runs),
    "tokens_per_run": lambda h: _ratio(h.input_tokens + h.output_tokens, h.runs),
}
PER_RUN_MEASURES = frozenset(("cost_per_run", "tokens_per_run"))
RATE_MEASURES = frozenset(("failure_rate", "truncated_rate", "empty_retrieval_rate"))
METRIC_MEASURES = ("last", "rate", "count", "p50", "p95", "p99", "mean", "min", "max")
# Evaluation results (gen_ai.evaluation.result): the mean, lowest and highest score, the
# share of results with the rule's ``label``, and how many results came.
EVAL_MEASURE_FNS: dict[str, Callable[[EvalTotals, str | None], float | None]] = {
    "score_mean": lambda t, _: t.mean,
    "score_min": lambda t, _: t.score_min,
    "score_max": lambda t, _: t.score_max,
    "label_rate": lambda t, label: _ratio(t.labels.get(label or "", 0), t.results),
    "results": lambda t, _: t.results,
}
EVAL_MEASURES = tuple(EVAL_MEASURE_FNS)
LAYER_MEASURES = tuple(LAYER_MEASURE_FNS)


def layer_samples(measure: str, h: LayerHealth) -> int:
    """What ``min_samples`` counts for a layer measure."""
    if measure == "empty_retrieval_rate":
        return h.retrievals
    return h.runs if measure in PER_RUN_MEASURES else h.spans


def attr_text(value: object) -> str:
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
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)

    name: str
    layer: str | None = None  # one of layers.LAYERS
    evaluation: str | None = None  # gen_ai.evaluation.name
    metric: Annotated[str | None, Field(validate_default=True)] = None
    service: str | None = None
    attributes: dict[str, str] | None = None
    measure: str
    op: Op
    threshold: float
    window: int  # seconds, one of WINDOWS_S; written "5m" (or "300s") in the file
    min_samples: Annotated[int, Field(ge=0)] = 0
    clear_after: Annotated[int, Field(ge=1)] = 1
    # As Prometheus does: the breach must last this long before the alert fires (pending
    # until then), and the measure must stay clear this long before it resolves; "2m".
    for_s: Annotated[int, Field(alias="for", ge=0)] = 0
    keep_firing_for_s: Annotated[int, Field(alias="keep_firing_for", ge=0)] = 0
    # Metric rules: at most this many series are judged, the most recently active first
    # (the evaluator's cost per tick stays bounded however many series a metric has).
    max_series: Annotated[int, Field(ge=1)] = CARDINALITY_LIMIT
    description: str = ""
    # label_rate: the share of results with this label.
    label: Annotated[str | None, Field(validate_default=True)] = None

    def __hash__(self) -> int:
        # The generated hash would fail on the attributes dict; rules key dicts and sets.
        return hash((self.name, self.layer, self.metric, self.measure, self.threshold))

    @property
    def window_s(self) -> int:
        return self.window

    @property
    def subject(self) -> str:
        return self.layer or self.evaluation or str(self.metric)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # Braces would make the displayed alert (name{series}) ambiguous to read.
        if not v.strip() or v != v.strip() or any(c in v for c in "{}\n\r\t"):
            raise ValueError("must be a non-empty name without braces, tabs or newlines, "
                             "and without leading or trailing spaces")
        return v

    @field_validator("layer")
    @classmethod
    def _layer(cls, v: str | None) -> str | None:
        if v is not None and v not in LAYERS and v != ALL:
            raise ValueError(f"unknown layer {v!r}; expected one of {', '.join(LAYERS)}, "
                             f"or {ALL!r} for every layer together")
        return v

    @field_validator("metric")
    @classmethod
    def _one_of_layer_metric(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "layer" not in info.data:  # layer itself was invalid: that error is enough
            return v
        layer, evaluation = info.data["layer"], info.data.get("evaluation")
        given = [k for k, x in (("layer", layer), ("evaluation", evaluation), ("metric", v))
                 if x is not None]
        if not given:
            raise PydanticCustomError(
                "layer_or_metric", "a rule needs one of layer = \"...\", metric = \"...\" "
                "or evaluation = \"...\"")
        if len(given) > 1:
            raise PydanticCustomError("layer_and_metric",
                                      "give one of {given}, not both",
                                      {"given": " or ".join(given)})
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("service")
    @classmethod
    def _service(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and (info.data.get("layer") or info.data.get("evaluation")):
            raise PydanticCustomError("layer_service",
                                      "a service filter is only supported on metric rules")
        return v

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes(cls, v: object, info: ValidationInfo) -> object:
        if v is None:
            return v
        if info.data.get("layer") or info.data.get("evaluation"):
            raise PydanticCustomError("layer_attributes",
                                      "an attributes filter is only supported on metric rules")
        if not isinstance(v, dict):
            raise PydanticCustomError("attributes_type",
                                      "must be a table, e.g. attributes = {route = \"chat\"}")
        out = {}
        for key, value in v.items():
            if not isinstance(value, str | int | float | bool):
                raise ValueError(f"value of {key!r} must be a string, number or boolean")
            out[key] = attr_text(value)
        return out

    @field_validator("measure")
    @classmethod
    def _measure(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("layer") is not None and v not in LAYER_MEASURE_FNS:
            raise ValueError(f"unknown layer measure {v!r}; expected one of "
                             + ", ".join(LAYER_MEASURES))
        if info.data.get("metric") is not None and v not in METRIC_MEASURES:
            raise ValueError(f"unknown metric measure {v!r}; expected one of "
                             + ", ".join(METRIC_MEASURES))
        if info.data.get("evaluation") is not None and v not in EVAL_MEASURE_FNS:
            raise ValueError(f"unknown evaluation measure {v!r}; expected one of "
                             + ", ".join(EVAL_MEASURES))
        return v

    @field_validator("label")
    @classmethod
    def _label(cls, v: str | None, info: ValidationInfo) -> str | None:
        measure = info.data.get("measure")
        if v is not None and measure != "label_rate":
            raise PydanticCustomError("label_measure",
                                      "a label is only read by measure = \"label_rate\"")
        if v is None and measure == "label_rate":
            raise PydanticCustomError("label_missing",
                                      "label_rate needs the label it counts: label = \"pass\"")
        return v

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return float(v)

    @field_validator("for_s", "keep_firing_for_s", mode="before")
    @classmethod
    def _duration(cls, v: object) -> object:
        if isinstance(v, str):
            if v.strip() in ("0", "0s"):
                return 0
            try:
                return parse_duration(v)
            except ValueError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: object) -> object:
        if isinstance(v, str) and v.strip() in _WINDOWS:
            return _WINDOWS[v.strip()]
        if isinstance(v, int) and not isinstance(v, bool) and v in WINDOWS_S:
            return v
        raise ValueError(f"must be one of {', '.join(map(format_duration, WINDOWS_S))} "
                         f"(or {', '.join(f'{s}s' for s in WINDOWS_S)}), got {v!r}")




def load_regression(path: str | os.PathLike[str] | None) -> Regression:
    """The ``[regression]`` tolerances of a rules file (defaults when it has none).

    Raises ``RulesError`` naming the file, line and field of a bad value.
    """
    path = default_rules_path() if path is None else Path(path)
    text = read_text(path, RulesError, "rules file")
    table = tomllib.loads(text).get("regression", {})  # the rules were read first: valid
    lines = text.splitlines()
    start = next((n for n, t in enumerate(lines, 1) if t.strip().startswith("[regression")),
                 None)
    try:
        return parse_regression(table)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"]]
        line = (key_line(lines, loc[0], start, len(lines), "regression") if loc and start
                else None) or start
        raise RulesError(f"{where(str(path), line)}regression.{'.'.join(loc)}: "
                         f"{err['msg']}") from None


def default_rules_path() -> Path:
    """The rules file shipped with agenttop: the default thresholds of each layer."""
    return Path(str(importlib.resources.files("agenttop.analysis") / "default_rules.toml"))


def load_rules(path: str | os.PathLike[str] | None) -> list[Rule]:
    """Read and validate a rules file (``None``: the shipped defaults).

    Raises ``RulesError`` with one message naming the file, line, rule and field.
    """
    path = default_rules_path() if path is None else Path(path)
    return parse_rules(read_text(path, RulesError, "rules file"), str(path))


def parse_rules(text: str, filename: str = "rules.toml") -> list[Rule]:
    """Validate the text of a rules file; ``filename`` is only used in error messages."""
    rules: list[Rule] = []
    first_line: dict[str, int | None] = {}
    for rule, line in parse_tables(text, filename, "rule", Rule, RulesError,
                                   others=frozenset({"regression"})):
        if rule.name in first_line:
            earlier = first_line[rule.name]
            at = f" (first defined at line {earlier})" if earlier else ""
            raise RulesError(f"{where(filename, line)}rule \"{rule.name}\": name: duplicate "
                             f"rule name{at}")
        first_line[rule.name] = line
        rules.append(rule)
    return rules


