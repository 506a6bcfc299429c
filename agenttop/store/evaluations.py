"""Evaluation results from telemetry: what an eval harness or an online evaluator reports as
``gen_ai.evaluation.result`` (OTel GenAI: ``gen_ai.evaluation.name``,
``gen_ai.evaluation.score.value``, ``gen_ai.evaluation.score.label``), as span events, as
log records (events), or as the attributes of a span of its own.

The writer counts them per minute, name, service and label in ``eval_minutes``, from the
rows a transaction stored; a window then reads a few rollup rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import apsw

from agenttop.store.rows import MINUTE_NS

EVENT = "gen_ai.evaluation.result"
_NAME = '$."gen_ai.evaluation.name"'
_SCORE = '$."gen_ai.evaluation.score.value"'
_LABEL = '$."gen_ai.evaluation.score.label"'


def _result(attributes: str) -> str:
    """The name, label and score columns of a result whose attributes are ``attributes``
    (a JSON object column); a score that is not a number counts as none."""
    return (f"{attributes} ->> '{_NAME}' AS name, "
            f"coalesce(CAST({attributes} ->> '{_LABEL}' AS TEXT), '') AS label, "
            f"iif(typeof({attributes} ->> '{_SCORE}') IN ('integer', 'real'), "
            f"{attributes} ->> '{_SCORE}', NULL) AS score")


_ROLLUP = f"""
INSERT INTO eval_minutes (minute, name, service, label, results, score_sum, score_count,
                          score_sq, score_min, score_max)
SELECT minute, name, service, label, count(*), total(score), count(score),
       total(score * score), min(score), max(score)
FROM (
    SELECT coalesce(e.value ->> '$.time_ns', s.start_ns) / {MINUTE_NS} AS minute, s.service,
           {_result("(e.value -> '$.attributes')")}
    FROM spans AS s, json_each(s.events) AS e
    WHERE s.rowid > :spans AND instr(s.events, '{EVENT}') > 0
      AND e.value ->> '$.name' = '{EVENT}'
    UNION ALL
    SELECT s.start_ns / {MINUTE_NS}, s.service, {_result("s.attributes")}
    FROM spans AS s
    WHERE s.rowid > :spans AND instr(s.attributes, 'gen_ai.evaluation.name') > 0
    UNION ALL
    SELECT l.time_ns / {MINUTE_NS}, l.service, {_result("l.attributes")}
    FROM logs AS l
    WHERE l.log_id > :logs
      AND coalesce(l.event_name, l.attributes ->> '$."event.name"') = '{EVENT}'
)
WHERE name IS NOT NULL
GROUP BY 1, 2, 3, 4
ON CONFLICT (minute, name, service, label) DO UPDATE SET
    results = results + excluded.results, score_sum = score_sum + excluded.score_sum,
    score_count = score_count + excluded.score_count, score_sq = score_sq + excluded.score_sq,
    score_min = CASE WHEN score_min IS NULL THEN excluded.score_min
                     WHEN excluded.score_min IS NULL THEN score_min
                     ELSE min(score_min, excluded.score_min) END,
    score_max = CASE WHEN score_max IS NULL THEN excluded.score_max
                     WHEN excluded.score_max IS NULL THEN score_max
                     ELSE max(score_max, excluded.score_max) END
"""


def add_evaluations(conn: apsw.Connection, span_mark: int, log_mark: int) -> None:
    """Count the evaluation results of the spans and logs stored after these marks."""
    conn.execute(_ROLLUP, {"spans": span_mark, "logs": log_mark})


@dataclass
class EvalTotals:
    """One evaluation's results over a range of minutes, all services together."""

    name: str
    results: int = 0
    score_sum: float = 0.0
    score_count: int = 0
    score_sq: float = 0.0  # the squares of the scores summed (for their variance)
    score_min: float | None = None
    score_max: float | None = None
    labels: Counter[str] = field(default_factory=Counter)  # label -> results ('' none)

    @property
    def mean(self) -> float | None:
        return self.score_sum / self.score_count if self.score_count else None


def eval_totals(conn: apsw.Connection, first_minute: int, last_minute: int
                ) -> dict[str, EvalTotals]:
    """Each evaluation's totals over the minutes, by name."""
    out: dict[str, EvalTotals] = {}
    for name, label, results, total, count, squares, low, high in conn.execute(
            "SELECT name, label, sum(results), total(score_sum), sum(score_count), "
            "total(score_sq), min(score_min), max(score_max) FROM eval_minutes "
            "WHERE minute BETWEEN ? AND ? GROUP BY name, label", (first_minute, last_minute)):
        t = out.setdefault(name, EvalTotals(name))
        t.results += results
        t.score_sum += total
        t.score_count += count
        t.score_sq += squares
        t.labels[label] += results
        if low is not None:
            t.score_min = low if t.score_min is None else min(t.score_min, low)
        if high is not None:
            t.score_max = high if t.score_max is None else max(t.score_max, high)
    return out
