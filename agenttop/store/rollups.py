"""Per-minute rollups of spans: how they are added to at ingest, and every read of them.

The writer adds each transaction's new spans to ``layer_minutes`` (counts, failures by
category, duration sum and maximum, tokens, quality signals, per minute, layer and service)
and ``layer_minute_durations`` (a log-scale duration histogram per minute, layer and
service). Health over any window then reads a few hundred rollup rows, never ``spans``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

import apsw

from agenttop.store.rows import FAILURES, MINUTE_NS

# Spans this transaction added: rowid above the mark taken before the insert, so spans
# ignored as duplicates are never counted twice.
_NEW_SPANS = "FROM spans WHERE rowid > :mark"
FAILURE_COLUMNS = tuple(f"f_{category}" for category in FAILURES)
_COUNTS = ("input_tokens", "output_tokens", "truncated", "content_filtered", "retrievals",
           "empty_retrievals", "runs", "unpriced")
# The layer_minutes columns a window sums (reads), in RollupTotals' order of reading.
_SUMMED = ("spans", "failures", *FAILURE_COLUMNS, *_COUNTS, "top_score_sum",
           "top_score_count", "eval_score_sum", "eval_score_count", "cost_usd")


def add_excluded(summed: Sequence[str]) -> str:
    """The DO UPDATE SET items of a rollup upsert adding each column's new rows' sum."""
    return ",\n    ".join(f"{c} = {c} + excluded.{c}" for c in summed)


def _add_up(summed: Sequence[str]) -> str:
    """The DO UPDATE SET of a span rollup: each summed column (and the duration sum) plus
    the new rows' sum, the duration maximum the larger of the two."""
    return (add_excluded((*summed, "duration_sum_ns"))
            + ",\n    duration_max_ns = max(duration_max_ns, excluded.duration_max_ns)")

ROLLUP_MINUTES = f"""
INSERT INTO layer_minutes (minute, layer, service, spans, failures, f_auth, f_rate_limit,
    f_timeout, f_schema, f_tool_error, f_server, f_error, duration_sum_ns, duration_max_ns,
    input_tokens, output_tokens, truncated, content_filtered, retrievals, empty_retrievals,
    top_score_sum, top_score_count, eval_score_sum, eval_score_count, runs, cost_usd,
    unpriced)
SELECT start_ns / {MINUTE_NS}, layer, service, count(*), count(failure),
    count(CASE failure WHEN 'auth' THEN 1 END), count(CASE failure WHEN 'rate_limit' THEN 1 END),
    count(CASE failure WHEN 'timeout' THEN 1 END), count(CASE failure WHEN 'schema' THEN 1 END),
    count(CASE failure WHEN 'tool_error' THEN 1 END), count(CASE failure WHEN 'server' THEN 1 END),
    count(CASE failure WHEN 'error' THEN 1 END), sum(duration_ns), max(duration_ns),
    total(input_tokens), total(output_tokens),
    count(genai ->> '$.truncated'), count(genai ->> '$.content_filtered'),
    count(genai ->> '$.retrieval_count'),
    count(CASE WHEN genai ->> '$.retrieval_count' = 0 THEN 1 END),
    total(genai ->> '$.top_score'), count(genai ->> '$.top_score'),
    total(genai ->> '$.eval_score'), count(genai ->> '$.eval_score'),
    count(CASE WHEN parent_span_id IS NULL AND layer = 'runtime' THEN 1 END), total(cost_usd),
    count(genai ->> '$.unpriced')
{_NEW_SPANS}
GROUP BY 1, 2, 3
ON CONFLICT (minute, layer, service) DO UPDATE SET
    {_add_up(_SUMMED)}
"""
# The buckets of agenttop.analysis.buckets.duration_bucket, computed in SQL.
ROLLUP_DURATIONS = f"""
INSERT INTO layer_minute_durations (minute, layer, service, bucket, count)
SELECT start_ns / {MINUTE_NS}, layer, service,
    CASE WHEN duration_ns > 1000 THEN CAST(ceil(8 * log2(duration_ns / 1000.0)) AS INTEGER)
         ELSE 0 END,
    count(*)
{_NEW_SPANS}
GROUP BY 1, 2, 3, 4
ON CONFLICT (minute, layer, service, bucket) DO UPDATE SET count = count + excluded.count
"""


class ModelTotals(NamedTuple):
    """One model's calls summed over a range of minutes, all services together."""

    provider: str  # "" when the spans name none
    model: str
    calls: int
    failures: int
    rate_limits: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    priced: int
    unpriced: int  # calls with tokens but no known price: their cost is not in cost_usd


# The model_minutes columns summed, written and read: ModelTotals after its key.
_MODEL_SUMMED = ModelTotals._fields[2:]
# Model calls (spans naming a model) per minute, provider, model and service.
ROLLUP_MODELS = f"""
INSERT INTO model_minutes (minute, provider, model, service, calls, failures, rate_limits,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    cost_usd, priced, unpriced, duration_sum_ns, duration_max_ns)
SELECT start_ns / {MINUTE_NS}, coalesce(genai ->> '$.provider', ''), genai ->> '$.model',
    service, count(*), count(failure), count(CASE failure WHEN 'rate_limit' THEN 1 END),
    total(input_tokens), total(output_tokens), total(genai ->> '$.cache_read_tokens'),
    total(genai ->> '$.cache_write_tokens'), total(genai ->> '$.reasoning_tokens'),
    total(cost_usd), count(cost_usd), count(genai ->> '$.unpriced'), sum(duration_ns),
    max(duration_ns)
{_NEW_SPANS} AND genai ->> '$.model' IS NOT NULL
GROUP BY 1, 2, 3, 4
ON CONFLICT (minute, provider, model, service) DO UPDATE SET
    {_add_up(_MODEL_SUMMED)}
"""


def add_to_rollups(conn: apsw.Connection, mark: int) -> None:
    """Add the spans stored after rowid ``mark`` (in this transaction) to the rollups."""
    conn.execute(ROLLUP_MINUTES, {"mark": mark})
    conn.execute(ROLLUP_DURATIONS, {"mark": mark})
    conn.execute(ROLLUP_MODELS, {"mark": mark})


class RollupTotals(NamedTuple):
    """The rollup columns of one layer summed over a range of minutes."""

    spans: int
    failures: int
    by_failure: dict[str, int]  # category -> count, only categories seen
    duration_max_ns: int | None
    input_tokens: int
    output_tokens: int
    truncated: int
    content_filtered: int
    retrievals: int
    empty_retrievals: int
    top_score_sum: float
    top_score_count: int
    eval_score_sum: float
    eval_score_count: int
    runs: int = 0  # root spans of the runtime layer: agent runs, workflows
    cost_usd: float = 0.0  # of the priced model calls
    unpriced: int = 0  # model calls with tokens but no known price


def _totals(values: Sequence) -> RollupTotals:
    """``values``: the sums of ``_SUMMED`` in order (total(): floats), then the max."""
    named = dict(zip(_SUMMED, values, strict=False))
    return RollupTotals(
        spans=int(named["spans"]), failures=int(named["failures"]),
        by_failure={category: int(named[column])
                    for category, column in zip(FAILURES, FAILURE_COLUMNS, strict=True)
                    if named[column]},
        duration_max_ns=values[len(_SUMMED)],
        **{c: int(named[c]) for c in _COUNTS},
        top_score_sum=named["top_score_sum"], top_score_count=int(named["top_score_count"]),
        eval_score_sum=named["eval_score_sum"], eval_score_count=int(named["eval_score_count"]),
        cost_usd=named["cost_usd"],
    )


def add_totals(a: RollupTotals, b: RollupTotals) -> RollupTotals:
    """Two layers' (or services') totals together."""
    summed = {name: getattr(a, name) + getattr(b, name) for name in RollupTotals._fields
              if name not in ("by_failure", "duration_max_ns")}
    longest = max((d for d in (a.duration_max_ns, b.duration_max_ns) if d is not None),
                  default=None)
    return RollupTotals(**summed, by_failure=dict(Counter(a.by_failure) + Counter(b.by_failure)),
                        duration_max_ns=longest)


@cache
def _window_sql(n_windows: int, by_service: bool) -> tuple[str, str]:
    """The rollup and duration queries for ``n_windows`` windows at once.

    Every window ends at the same minute, so each is the tail of the largest: one range
    scan of the largest window's minutes, with each window's sums picked out by
    ``minute >= :m<i>``. Sums use total() (a float, never NULL).
    """
    where = "minute BETWEEN :lo AND :hi" + (" AND service = :service" if by_service else "")
    columns = []
    for i in range(n_windows):
        columns += [f"total(CASE WHEN minute >= :m{i} THEN {c} END)" for c in _SUMMED]
        columns.append(f"max(CASE WHEN minute >= :m{i} THEN duration_max_ns END)")
    minutes = (f"SELECT layer, {', '.join(columns)} FROM layer_minutes "
               f"WHERE {where} GROUP BY layer")
    counts = ", ".join(f"total(CASE WHEN minute >= :m{i} THEN count END)"
                       for i in range(n_windows))
    durations = (f"SELECT layer, bucket, {counts} FROM layer_minute_durations "
                 f"WHERE {where} GROUP BY layer, bucket")
    return minutes, durations


def window_totals(conn: apsw.Connection, first_minutes: Sequence[int], last_minute: int,
                  service: str | None = None
                  ) -> tuple[dict[str, list[RollupTotals | None]],
                             dict[str, list[dict[int, int]]]]:
    """Per layer, for each window from ``first_minutes[i]`` to ``last_minute`` (minute
    numbers, inclusive): its totals (None: no spans) and its duration bucket counts.

    Two queries for every layer and window, each a range of the rollups' primary key;
    ``service`` restricts to one service, None sums all of them.
    """
    n = len(first_minutes)
    bindings: dict[str, object] = {"lo": min(first_minutes), "hi": last_minute}
    bindings.update((f"m{i}", first) for i, first in enumerate(first_minutes))
    if service is not None:
        bindings["service"] = service
    minutes_sql, durations_sql = _window_sql(n, service is not None)
    width = len(_SUMMED) + 1
    totals: dict[str, list[RollupTotals | None]] = {}
    for layer, *values in conn.execute(minutes_sql, bindings):
        totals[layer] = [_totals(values[i * width:(i + 1) * width])
                         if values[i * width] else None for i in range(n)]
    buckets: dict[str, list[dict[int, int]]] = {}
    for layer, bucket, *counts in conn.execute(durations_sql, bindings):
        per_window = buckets.get(layer)
        if per_window is None:
            per_window = buckets[layer] = [{} for _ in range(n)]
        for i, count in enumerate(counts):
            if count:
                per_window[i][bucket] = int(count)
    return totals, buckets


def minute_series(conn: apsw.Connection, now_ns: int, minutes: int = 15
                  ) -> dict[str, tuple[list[int], list[int]]]:
    """Spans and failures per minute for each layer, oldest minute first, ending now.

    A range of the ``layer_minutes`` primary key, all services together; minutes without
    spans are zeros.
    """
    last = now_ns // MINUTE_NS
    first = last - minutes + 1
    out: dict[str, tuple[list[int], list[int]]] = {}
    for minute, layer, spans, failures in conn.execute(
        "SELECT minute, layer, sum(spans), sum(failures) FROM layer_minutes "
        "WHERE minute BETWEEN ? AND ? GROUP BY minute, layer", (first, last)):
        series = out.get(layer)
        if series is None:
            series = out[layer] = ([0] * minutes, [0] * minutes)
        series[0][minute - first] = int(spans)
        series[1][minute - first] = int(failures)
    return out


# The token kinds of ModelTotals (``{kind}_tokens``).
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")


def model_totals(conn: apsw.Connection, now_ns: int, window_s: int) -> list[ModelTotals]:
    """Each model's totals over the window ending now, costliest first (then the most
    calls with no price); a range of the ``model_minutes`` primary key."""
    last = now_ns // MINUTE_NS
    since = (now_ns - window_s * 1_000_000_000) // MINUTE_NS
    sums = ", ".join(f"total({c})" if c == "cost_usd" else f"sum({c})" for c in _MODEL_SUMMED)
    return [ModelTotals(*row) for row in conn.execute(
        f"SELECT provider, model, {sums} FROM model_minutes "
        "WHERE minute BETWEEN ? AND ? GROUP BY provider, model "
        "ORDER BY total(cost_usd) DESC, sum(unpriced) DESC, model", (since, last))]


class Spend(NamedTuple):
    """What model calls cost over a window, and per minute over the last minutes."""

    cost_usd: float
    priced: int
    unpriced: int  # calls with tokens but no known price: their cost is not in cost_usd
    per_minute: list[float]  # oldest first, ending now
    top: list[ModelTotals]  # the window's costliest models, then one with no price


def spend(conn: apsw.Connection, now_ns: int, window_s: int, minutes: int = 15,
          top: int = 3) -> Spend:
    """Spend from ``model_minutes``: ranges of its primary key, all services together."""
    last = now_ns // MINUTE_NS
    first = last - minutes + 1
    per_minute = [0.0] * minutes
    for minute, cost in conn.execute(
            "SELECT minute, total(cost_usd) FROM model_minutes WHERE minute BETWEEN ? AND ? "
            "GROUP BY minute", (first, last)):
        per_minute[minute - first] = cost
    models = model_totals(conn, now_ns, window_s)
    # The costliest models, and the busiest model with no price: unknown cost is news.
    ranked = [m for m in models if m.cost_usd > 0][:top]
    ranked += sorted((m for m in models if not m.cost_usd and m.unpriced),
                     key=lambda m: -m.unpriced)[:1]
    return Spend(sum(m.cost_usd for m in models), sum(m.priced for m in models),
                 sum(m.unpriced for m in models), per_minute, ranked)
