"""Baselines: a run's figures summed up (``Summary``, saved as a small versioned JSON file
meant to be committed next to the tests), and a run compared with its baseline per layer,
agent, tool and model (``compare``).

A difference is a regression only when it passes the tolerance (the larger of an absolute
and a relative one, per measure: the ``[regression]`` table of the rules file) and is
credible for the sample sizes at hand (``agenttop.analysis.stats``, one-sided, at
``alpha``). Too few samples on either side make a comparison inconclusive, never a pass
or a fail by accident.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import apsw
from pydantic import BaseModel, ConfigDict, Field

from agenttop.analysis.buckets import bucket_upper_ns, quantile_ns
from agenttop.analysis.stats import binomial_greater, fisher_greater, welch_greater
from agenttop.store.calls import calls_window, durations
from agenttop.store.evaluations import eval_totals
from agenttop.store.queries import run_figures
from agenttop.store.rollups import window_totals
from agenttop.store.rows import MINUTE_NS

VERSION = 1
QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
PER_RUN = ("tokens_per_run", "cost_per_run", "findings_per_run")


class BaselineError(Exception):
    """A baseline file cannot be used; the message says why."""


# --- what a run sums up to -------------------------------------------------------------

@dataclass
class Calls:
    """One subject's calls (spans of a layer; runs of an agent; calls of a tool or model)."""

    calls: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # category -> calls
    durations: dict[int, int] = field(default_factory=dict)  # log bucket -> calls

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


@dataclass
class Moments:
    """Count, mean and sample variance of a quantity."""

    n: int = 0
    mean: float = 0.0
    var: float = 0.0

    @classmethod
    def of(cls, values: list[float]) -> Moments:
        n = len(values)
        if not n:
            return cls()
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, var)


@dataclass
class Summary:
    source: str
    first_ns: int | None
    last_ns: int | None
    subjects: dict[str, Calls]  # "layer:tool", "agent:support", "tool:search", "model:p/m"
    per_run: dict[str, Moments]  # tokens_per_run, cost_per_run, findings_per_run
    evals: dict[str, Moments]  # evaluation name -> its scores

    def to_json(self) -> str:
        return json.dumps({"agenttop_baseline": VERSION, **asdict(self)}, indent=1,
                          sort_keys=True) + "\n"


def summarize(conn: apsw.Connection, first_ns: int, last_ns: int, source: str) -> Summary:
    """The figures of everything that started between ``first_ns`` and ``last_ns``."""
    first, last = first_ns // MINUTE_NS, last_ns // MINUTE_NS
    subjects: dict[str, Calls] = {}
    totals, buckets = window_totals(conn, [first], last)
    for layer, (total,) in totals.items():
        if total is not None:
            subjects[f"layer:{layer}"] = Calls(total.spans, dict(total.by_failure),
                                               buckets.get(layer, [{}])[0])
    window = calls_window(conn, first, last)
    histograms = durations(conn, first, last, window.stats)
    for subject, stats in window.stats.items():
        name = f"{subject.provider}/{subject.name}" if subject.provider else subject.name
        subjects[f"{subject.kind}:{name}"] = Calls(stats.calls, dict(stats.by_failure),
                                                   dict(histograms[subject]))
    runs = run_figures(conn, first_ns, last_ns)
    per_run = {"tokens_per_run": Moments.of([float(t) for t, _, _ in runs]),
               "cost_per_run": Moments.of([c for _, c, _ in runs if c is not None]),
               "findings_per_run": Moments.of([float(f) for _, _, f in runs])}
    evals = {}
    for name, t in eval_totals(conn, first, last).items():
        if t.score_count:
            mean = t.score_sum / t.score_count
            var = (max(0.0, t.score_sq - t.score_count * mean * mean) / (t.score_count - 1)
                   if t.score_count > 1 else 0.0)
            evals[name] = Moments(t.score_count, mean, var)
    return Summary(source, first_ns, last_ns, subjects, per_run, evals)


def load_summary(path: Path) -> Summary | None:
    """The summary in ``path``, or None when the file is not a baseline summary (a
    database or OTLP/JSON); BaselineError when it is one that cannot be read."""
    try:
        head = path.read_bytes()[:4096]
    except OSError as e:
        raise BaselineError(f"{path}: cannot read: {e.strerror or e}") from None
    if b'"agenttop_baseline"' not in head:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.pop("agenttop_baseline") != VERSION:
            raise BaselineError(f"{path}: a baseline of another version; save it again "
                                "with this agenttop (check --save-baseline)")
        return Summary(
            data["source"], data["first_ns"], data["last_ns"],
            {k: Calls(v["calls"], v["failures"], {int(b): c for b, c in v["durations"].items()})
             for k, v in data["subjects"].items()},
            {k: Moments(**v) for k, v in data["per_run"].items()},
            {k: Moments(**v) for k, v in data["evals"].items()})
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BaselineError(f"{path}: not a valid baseline summary ({e})") from None


# --- tolerances ----------------------------------------------------------------------------

class Tolerance(BaseModel):
    """How much worse a measure may get: the larger of the two."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    absolute: float = Field(0.0, ge=0)
    relative: float = Field(0.0, ge=0)

    def allowed(self, base: float) -> float:
        return max(self.absolute, self.relative * abs(base))


DEFAULT_TOLERANCES = {
    "failure_rate": Tolerance(absolute=0.01, relative=0.25),
    **{q: Tolerance(relative=0.20) for q in QUANTILES},
    "tokens_per_run": Tolerance(relative=0.20),
    "cost_per_run": Tolerance(relative=0.20),
    "findings_per_run": Tolerance(absolute=0.10),
    "eval_score": Tolerance(absolute=0.02),
}


MeasureName = Literal["failure_rate", "p50_ms", "p95_ms", "p99_ms", "tokens_per_run",
                     "cost_per_run", "findings_per_run", "eval_score"]


class Regression(BaseModel):
    """The ``[regression]`` table of a rules file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    alpha: float = Field(0.05, gt=0, lt=1)
    min_samples: int = Field(20, ge=1)
    # What is compared; p99_ms is left out by default: judging it needs 500 calls a side.
    measures: list[MeasureName] = Field(default_factory=lambda: [
        "failure_rate", "p50_ms", "p95_ms", "tokens_per_run", "cost_per_run",
        "findings_per_run", "eval_score"])
    failure_rate: Tolerance = DEFAULT_TOLERANCES["failure_rate"]
    p50_ms: Tolerance = DEFAULT_TOLERANCES["p50_ms"]
    p95_ms: Tolerance = DEFAULT_TOLERANCES["p95_ms"]
    p99_ms: Tolerance = DEFAULT_TOLERANCES["p99_ms"]
    tokens_per_run: Tolerance = DEFAULT_TOLERANCES["tokens_per_run"]
    cost_per_run: Tolerance = DEFAULT_TOLERANCES["cost_per_run"]
    findings_per_run: Tolerance = DEFAULT_TOLERANCES["findings_per_run"]
    eval_score: Tolerance = DEFAULT_TOLERANCES["eval_score"]
    # Per subject ("tool:search", "layer:prompt", "eval:accuracy"), measure -> tolerance.
    subjects: dict[str, dict[str, Tolerance]] = Field(default_factory=dict)

    def tolerance(self, subject: str, measure: str) -> Tolerance:
        own = self.subjects.get(subject, {}).get(measure)
        return own if own is not None else getattr(self, measure)


def parse_regression(data: object) -> Regression:
    """The ``[regression]`` table (already parsed TOML); pydantic's ValidationError."""
    return Regression.model_validate(data if isinstance(data, dict) else {})


# --- comparing -----------------------------------------------------------------------------

Status = Literal["ok", "regression", "inconclusive", "new"]


@dataclass(frozen=True)
class Comparison:
    subject: str
    measure: str
    base: float | None
    run: float | None
    status: Status
    p_value: float | None = None
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.subject} {self.measure}"


def _worse(base: float, run: float, tolerance: Tolerance, higher_is_worse: bool) -> bool:
    diff = run - base if higher_is_worse else base - run
    return diff > tolerance.allowed(base)


def _rate(subject: str, measure: str, run_failed: int, run: Calls, base_failed: int,
          base: Calls, reg: Regression) -> Comparison:
    base_rate, run_rate = base_failed / base.calls, run_failed / run.calls
    p = fisher_greater(run_failed, run.calls, base_failed, base.calls)
    worse = _worse(base_rate, run_rate, reg.tolerance(subject, "failure_rate"), True)
    return Comparison(subject, measure, base_rate, run_rate,
                      "regression" if worse and p < reg.alpha else "ok", p)


def _compare_calls(subject: str, base: Calls, run: Calls, reg: Regression
                   ) -> Iterable[Comparison]:
    few = min(base.calls, run.calls) < reg.min_samples
    if "failure_rate" not in reg.measures:
        pass
    elif few:
        yield Comparison(subject, "failure_rate", base.failed / base.calls if base.calls
                         else None, run.failed / run.calls if run.calls else None,
                         "inconclusive", note=f"{base.calls} vs {run.calls} calls, fewer "
                         f"than {reg.min_samples}")
    else:
        yield _rate(subject, "failure_rate", run.failed, run, base.failed, base, reg)
        for category in sorted(run.failures):
            # Each category's rate; one the baseline never had is tested from zero, named.
            c = _rate(subject, f"failures.{category}", run.failures[category], run,
                      base.failures.get(category, 0), base, reg)
            if category not in base.failures:
                c = Comparison(c.subject, c.measure, c.base, c.run, c.status, c.p_value,
                               "new failure category")
            yield c
    for measure, q in QUANTILES.items():
        if measure not in reg.measures:
            continue
        needed = math.ceil(5 / (1 - q))  # five expected exceedances on each side
        b_q, r_q = quantile_ns(base.durations, q), quantile_ns(run.durations, q)
        base_ms = None if b_q is None else b_q / 1e6
        run_ms = None if r_q is None else r_q / 1e6
        if min(sum(base.durations.values()), sum(run.durations.values())) < needed:
            yield Comparison(subject, measure, base_ms, run_ms, "inconclusive",
                             note=f"fewer than {needed} calls on a side")
            continue
        assert b_q is not None and r_q is not None and base_ms is not None
        bucket = max(b for b in base.durations if bucket_upper_ns(b) <= b_q)
        above = sum(c for b, c in run.durations.items() if b > bucket)
        p = binomial_greater(above, sum(run.durations.values()), 1 - q)
        worse = _worse(base_ms, run_ms, reg.tolerance(subject, measure), True)  # type: ignore[arg-type]
        yield Comparison(subject, measure, base_ms, run_ms,
                         "regression" if worse and p < reg.alpha else "ok", p)


def _compare_means(subject: str, measure: str, base: Moments, run: Moments,
                   tolerance: Tolerance, reg: Regression, higher_is_worse: bool
                   ) -> Comparison:
    if min(base.n, run.n) < reg.min_samples:
        return Comparison(subject, measure, base.mean if base.n else None,
                          run.mean if run.n else None, "inconclusive",
                          note=f"{base.n} vs {run.n} samples, fewer than {reg.min_samples}")
    a, b = (run, base) if higher_is_worse else (base, run)
    p = welch_greater(a.mean, a.var, a.n, b.mean, b.var, b.n)
    worse = _worse(base.mean, run.mean, tolerance, higher_is_worse)
    return Comparison(subject, measure, base.mean, run.mean,
                      "regression" if worse and p < reg.alpha else "ok", p)


def compare(base: Summary, run: Summary, reg: Regression) -> list[Comparison]:
    """Every comparison of the run with its baseline; regressions first."""
    out: list[Comparison] = []
    for subject in sorted(set(base.subjects) | set(run.subjects)):
        b, r = base.subjects.get(subject), run.subjects.get(subject)
        if r is None or not r.calls:
            continue  # gone from the run: nothing of it can have got worse
        if b is None or not b.calls:
            out.append(Comparison(subject, "calls", None, r.calls, "new",
                                  note="not in the baseline"))
            continue
        out += _compare_calls(subject, b, r, reg)
    for measure in PER_RUN:
        if measure not in reg.measures:
            continue
        b_m, r_m = base.per_run.get(measure, Moments()), run.per_run.get(measure, Moments())
        if b_m.n or r_m.n:
            out.append(_compare_means("runs", measure, b_m, r_m, reg.tolerance("runs", measure),
                                      reg, higher_is_worse=True))
    for name in sorted(set(base.evals) | set(run.evals)) if "eval_score" in reg.measures \
            else ():
        b_m, r_m = base.evals.get(name, Moments()), run.evals.get(name, Moments())
        subject = f"eval:{name}"
        out.append(_compare_means(subject, "score_mean", b_m, r_m,
                                  reg.tolerance(subject, "eval_score"), reg,
                                  higher_is_worse=False))
    order = {"regression": 0, "inconclusive": 1, "new": 2, "ok": 3}
    return sorted(out, key=lambda c: order[c.status])

