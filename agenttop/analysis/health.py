"""Per-layer health over sliding windows, and metric figures, read from the store.

This module owns the numbers the dashboard, ``agenttop check`` and the alert evaluator
show and judge: the data model (``LayerHealth``, ``MetricHealth``) and the two read
queries that fill it, ``layer_health`` and ``metric_health``. Both are read-only, take any
connection (a reader's, usually) and an explicit ``now_ns``, so they are repeatable in
tests and cheap enough to run on every refresh of a million-span file:

- layer figures come from the writer's per-minute rollups (``layer_minutes`` and
  ``layer_minute_durations``), never from ``spans``: windows are whole minutes;
- metric figures come from the raw ``metric_points`` of the window, grouped into series
  and reduced in Python per point type: every series of some metrics through the
  (name, time_ns) index (``metric_health``, for a one-shot gate), or given series through
  their own (series_id, time_ns) ranges (``series_health``, ``SeriesPoints``: screens and
  the evaluator, whose cost follows the series they show or judge).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import apsw
import orjson

from agenttop.analysis.buckets import quantile_ns
from agenttop.store.evaluations import EvalTotals, eval_totals
from agenttop.store.metrics import field_getter, points_between
from agenttop.store.rollups import RollupTotals, add_totals, window_totals
from agenttop.store.rows import LAYERS, MINUTE_NS, SECOND_NS
from agenttop.store.series import SERIES_ID, series_points

WINDOWS_S = (60, 300, 900)  # 1 m, 5 m, 15 m
# Every layer together, a subject of rules like a layer: what a run costs, in all.
ALL = "all"


@dataclass(frozen=True)
class LayerHealth:
    """One layer (optionally one service) over one window ending at ``now_ns``."""

    layer: str
    window_s: int
    spans: int
    failures: int
    failure_rate: float | None  # failures / spans; None when there were no spans
    by_failure: dict[str, int]  # category -> count, only categories seen
    throughput: float  # spans per second over the window
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    input_tokens: int
    output_tokens: int
    # Quality, not only errors (None where nothing was observed):
    truncated: int = 0  # prompt: finish_reasons contained "length"
    content_filtered: int = 0  # prompt: finish_reasons contained "content_filter"
    eval_score: float | None = None  # prompt: mean evaluation score seen on spans
    retrievals: int = 0  # memory: retrievals with a known result count
    empty_retrievals: int = 0  # memory: of those, how many returned nothing
    top_score: float | None = None  # memory: mean top retrieval score
    runs: int = 0  # root spans of the runtime layer: agent runs, workflows
    cost_usd: float = 0.0  # what the priced model calls cost
    unpriced: int = 0  # model calls with tokens but no known price


@dataclass(frozen=True)
class MetricHealth:
    """One metric series (name + attributes) over one window ending at ``now_ns``."""

    name: str
    type: str  # gauge | sum | histogram | exponential_histogram | summary
    unit: str
    service: str
    attributes: dict = field(default_factory=dict)
    points: int = 0
    last: float | None = None  # gauges: last value; sums: last (cumulative) value
    rate: float | None = None  # sums: increase per second over the window
    count: int | None = None  # histograms and summaries: observations in the window
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    # gauges: the mean, lowest and highest value over the window's points
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    series_id: int | None = None  # its metric_series row, when read by series


# ------------------------------------------------------------------------------ layers

def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


def _mean(total: float, count: float) -> float | None:
    return total / count if count else None


def layer_health(
    conn: apsw.Connection,
    now_ns: int,
    windows: Sequence[int] = WINDOWS_S,
    service: str | None = None,
) -> dict[tuple[str, int], LayerHealth]:
    """Health of every layer over each window ending at ``now_ns``, keyed (layer, window_s).

    Read from the per-minute rollups only (two queries for all layers and windows, never a
    scan of ``spans``), so a window is made of whole minutes: a window of W seconds covers
    the minutes from ``(now_ns - W s) // 1 min`` to ``now_ns // 1 min`` inclusive, by span
    start time. It therefore holds between W and W + 60 seconds of spans, and throughput
    divides by what it really covers: from the start of its first minute to ``now_ns``.
    Spans that start after ``now_ns``'s minute (clock skew) are in no window.

    Every layer of ``LAYERS`` is present for every window, with zeros (and None for rates,
    latencies and means) when it had no spans; a layer outside ``LAYERS`` found in the
    rollups is reported too, and ``ALL``, every layer together (runs, cost, the whole
    system's failure rate). ``service`` restricts to one service; None sums all of them.
    Latency quantiles come from the log-scale duration buckets (within about 9 % above the
    exact value), capped at the window's exact maximum.
    """
    windows = tuple(windows)
    if not windows:
        return {}
    firsts = [(now_ns - w * SECOND_NS) // MINUTE_NS for w in windows]
    totals, buckets = window_totals(conn, firsts, now_ns // MINUTE_NS, service)
    out: dict[tuple[str, int], LayerHealth] = {}
    layers = list(LAYERS) + sorted(set(totals) - set(LAYERS))
    for i, (window_s, first) in enumerate(zip(windows, firsts, strict=True)):
        covered_s = (now_ns - first * MINUTE_NS) / SECOND_NS
        every: RollupTotals | None = None
        every_counts: dict[int, int] = {}
        for layer in layers:
            sums = totals.get(layer, [None] * len(windows))[i]
            counts = buckets.get(layer, [{}] * len(windows))[i]
            out[(layer, window_s)] = empty_layer(layer, window_s) if sums is None else _layer(
                layer, window_s, covered_s, sums, counts)
            if sums is not None:
                every = sums if every is None else add_totals(every, sums)
                for bucket, n in counts.items():
                    every_counts[bucket] = every_counts.get(bucket, 0) + n
        out[(ALL, window_s)] = empty_layer(ALL, window_s) if every is None else _layer(
            ALL, window_s, covered_s, every, every_counts)
    return out


def empty_layer(layer: str, window_s: int) -> LayerHealth:
    """A layer with no spans in the window."""
    return LayerHealth(
        layer=layer, window_s=window_s, spans=0, failures=0, failure_rate=None, by_failure={},
        throughput=0.0, p50_ms=None, p95_ms=None, p99_ms=None, max_ms=None, input_tokens=0,
        output_tokens=0,
    )


def _layer(layer: str, window_s: int, covered_s: float, sums: RollupTotals,
           counts: dict[int, int]) -> LayerHealth:
    max_ns = sums.duration_max_ns

    def quantile(q: float) -> float | None:
        # A bucket's upper bound can pass the slowest span; the exact maximum is known.
        value = quantile_ns(counts, q)
        return None if value is None else _ms(value if max_ns is None else min(value, max_ns))

    return LayerHealth(
        layer=layer,
        window_s=window_s,
        spans=sums.spans,
        failures=sums.failures,
        failure_rate=sums.failures / sums.spans,
        by_failure=sums.by_failure,
        throughput=sums.spans / covered_s,
        p50_ms=quantile(0.50),
        p95_ms=quantile(0.95),
        p99_ms=quantile(0.99),
        max_ms=_ms(max_ns),
        input_tokens=sums.input_tokens,
        output_tokens=sums.output_tokens,
        truncated=sums.truncated,
        content_filtered=sums.content_filtered,
        eval_score=_mean(sums.eval_score_sum, sums.eval_score_count),
        retrievals=sums.retrievals,
        empty_retrievals=sums.empty_retrievals,
        top_score=_mean(sums.top_score_sum, sums.top_score_count),
        runs=sums.runs,
        cost_usd=sums.cost_usd,
        unpriced=sums.unpriced,
    )


# ----------------------------------------------------------------------------- metrics

DELTA = 1  # OTLP AggregationTemporality; anything else is read as cumulative
HISTOGRAMS = ("histogram", "exponential_histogram")
# How long before a window a cumulative histogram's baseline point may be. With the usual
# export intervals (10-60 s) the point just before the window is well inside this; an
# older one would count observations made long before the window.
BASELINE_LOOKBACK_NS = 300 * SECOND_NS
# A summary's quantile stands in for a requested one only this close: p50 is never read
# off a summary's max (q = 1).
SUMMARY_Q_TOLERANCE = 0.1

Bucket = tuple[float | None, float | None, int]  # lower edge, upper edge, count


class _Buckets:
    """Bucket counts of one histogram point, or of a window's sum of them."""

    def combine(self, other: _Buckets, sign: int) -> _Buckets:
        """self + other (sign 1) or self - other (sign -1, clamped at zero per bucket).

        Explicit buckets must have the same bounds (the caller checks ``_Point.shape``);
        exponential ones may differ in scale.
        """
        raise NotImplementedError

    def edges(self, low: float | None, high: float | None) -> list[Bucket]:
        """(lower edge, upper edge, count) in ascending order, given the min and max."""
        raise NotImplementedError



@dataclass(slots=True)
class _Explicit(_Buckets):
    """Explicit buckets (-inf, b0], (b0, b1], ..., (b_last, +inf)."""

    bounds: list[float]
    counts: list[int]

    def combine(self, other: _Buckets, sign: int) -> _Explicit:
        assert isinstance(other, _Explicit)
        return _Explicit(self.bounds, [max(a + sign * b, 0)
                                       for a, b in zip(self.counts, other.counts, strict=True)])

    def edges(self, low: float | None, high: float | None) -> list[Bucket]:
        bounds = self.bounds
        out: list[Bucket] = []
        last = len(self.counts) - 1
        for i, n in enumerate(self.counts):
            if i:
                lower: float | None = bounds[i - 1]
            elif low is not None:
                lower = low
            else:  # observations are usually not negative: the open end starts at 0
                lower = (0.0 if bounds[0] > 0 else bounds[0]) if bounds else None
            if i < last:
                upper: float | None = bounds[i]
            else:
                upper = high if high is not None else (bounds[-1] if bounds else None)
            out.append((lower, upper, n))
        return out


@dataclass(slots=True)
class _Exp(_Buckets):
    """Exponential buckets keyed by absolute index (offset added) at one scale."""

    scale: int
    zero: int
    positive: dict[int, int]
    negative: dict[int, int]

    def at(self, scale: int) -> _Exp:
        """The same counts at a coarser scale: index i becomes i >> (difference)."""
        if scale >= self.scale:
            return self
        shift = self.scale - scale

        def down(buckets: dict[int, int]) -> dict[int, int]:
            out: dict[int, int] = {}
            for index, n in buckets.items():
                out[index >> shift] = out.get(index >> shift, 0) + n
            return out

        return _Exp(scale, self.zero, down(self.positive), down(self.negative))

    def combine(self, other: _Buckets, sign: int) -> _Exp:
        assert isinstance(other, _Exp)
        scale = min(self.scale, other.scale)
        a, b = self.at(scale), other.at(scale)

        def merge(x: dict[int, int], y: dict[int, int]) -> dict[int, int]:
            out = dict(x)
            for index, n in y.items():
                out[index] = out.get(index, 0) + sign * n
            return {i: n for i, n in out.items() if n > 0}

        return _Exp(scale, max(a.zero + sign * b.zero, 0), merge(a.positive, b.positive),
                    merge(a.negative, b.negative))

    def edges(self, low: float | None, high: float | None) -> list[Bucket]:
        # Bucket i covers (base^i, base^(i+1)] with base = 2^(2^-scale); negatives mirror.
        factor = 2.0 ** -self.scale

        def edge(index: int) -> float:
            try:
                return 2.0 ** (index * factor)
            except OverflowError:
                return math.inf

        out: list[Bucket] = [(-edge(i + 1), -edge(i), n)
                             for i, n in sorted(self.negative.items(), reverse=True)]
        if self.zero:
            out.append((0.0, 0.0, self.zero))
        out += [(edge(i), edge(i + 1), n) for i, n in sorted(self.positive.items())]
        return out


@dataclass(slots=True)
class _Point:
    start_ns: int
    time_ns: int
    value: float | None
    count: int | None
    min: float | None
    max: float | None
    kind: str
    # Explicit histograms: the bounds as stored and the number of buckets. Points of the
    # same shape can be subtracted bucket by bucket; nothing needs parsing to find out.
    shape: tuple[str, int] | None = None
    raw: tuple | None = None  # bucket or quantile columns, parsed only when used
    parsed: _Buckets | list | None = None

    def buckets(self) -> _Buckets:
        if self.parsed is None:
            if self.kind == "histogram":
                bounds, counts = self.raw  # type: ignore[misc]
                self.parsed = _Explicit(orjson.loads(bounds) if bounds else [],
                                        orjson.loads(counts) if counts else [])
            else:
                scale, zero, pos_offset, pos_counts, neg_offset, neg_counts = self.raw  # type: ignore[misc]
                self.parsed = _Exp(scale or 0, zero or 0, _expanded(pos_offset, pos_counts),
                                   _expanded(neg_offset, neg_counts))
        return self.parsed  # type: ignore[return-value]

    def quantiles(self) -> list[list[float]]:
        if self.parsed is None:
            self.parsed = orjson.loads(self.raw[0]) if self.raw and self.raw[0] else []
        return self.parsed  # type: ignore[return-value]


@dataclass(slots=True)
class _Series:
    name: str
    type: str
    unit: str
    temporality: int | None
    monotonic: int | None
    service: str
    attributes: dict
    order: bytes  # attributes as sorted JSON: the series key and the sort order
    points: list[_Point] = field(default_factory=list)
    newest_ns: int = -1
    series_id: int | None = None
    ordered: bool = False  # points sorted by time, their times in ``times``
    times: list[int] = field(default_factory=list)


def _expanded(offset: int | None, counts_json: str | None) -> dict[int, int]:
    if not counts_json:
        return {}
    base = offset or 0
    return {base + i: n for i, n in enumerate(orjson.loads(counts_json)) if n}


# The fields of a point row (agenttop.store.metrics.PointSample), by name.
_SERIES = field_getter("name", "type", "service", "attributes", "unit", "temporality",
                       "monotonic")
_FIGURES = field_getter("start_ns", "time_ns", "value", "count", "min", "max")
_EXPLICIT = field_getter("bounds", "bucket_counts")
_EXPONENTIAL = field_getter("scale", "zero_count", "positive_offset", "positive_counts",
                            "negative_offset", "negative_counts")
_QUANTILES = field_getter("quantiles")


def _point(row: tuple, kind: str) -> _Point:
    point = _Point(*_FIGURES(row), kind)
    if kind == "histogram":
        bounds, counts = point.raw = _EXPLICIT(row)
        point.shape = (bounds or "", counts.count(",") if counts else -1)
    elif kind == "exponential_histogram":
        point.raw = _EXPONENTIAL(row)
    elif kind == "summary":
        point.raw = (_QUANTILES(row),)
    return point


def _read_points(rows: Iterator[tuple], series: dict[tuple, _Series],
                 attrs: dict[str, tuple[bytes, dict]], create: bool) -> None:
    for row in rows:
        name, kind, service, text, unit, temporality, monotonic = _SERIES(row)
        canonical = attrs.get(text)
        if canonical is None:
            parsed = orjson.loads(text) if text else {}
            # Sorted keys: the same attributes sent in another order are the same series.
            canonical = attrs[text] = (orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS), parsed)
        key = (name, kind, service, canonical[0])
        one = series.get(key)
        if one is None:
            if not create:
                continue
            one = series[key] = _Series(name, kind, unit, temporality, monotonic, service,
                                        canonical[1], canonical[0],
                                        series_id=row[SERIES_ID] if len(row) > SERIES_ID
                                        else None)
        point = _point(row, kind)
        if point.time_ns > one.newest_ns:
            # The newest point says what the series is now (unit, temporality).
            one.newest_ns = point.time_ns
            one.unit, one.temporality, one.monotonic = unit, temporality, monotonic
        one.points.append(point)
        one.ordered = False


def evaluation_health(conn: apsw.Connection, now_ns: int, windows: Sequence[int] = WINDOWS_S
                      ) -> dict[int, dict[str, EvalTotals]]:
    """Evaluation results by name over each window ending at ``now_ns``, keyed window_s."""
    return {w: eval_totals(conn, (now_ns - w * SECOND_NS) // MINUTE_NS, now_ns // MINUTE_NS)
            for w in windows}


def metric_health(
    conn: apsw.Connection,
    now_ns: int,
    windows: Sequence[int] = WINDOWS_S,
    names: Sequence[str] | None = None,
) -> dict[int, list[MetricHealth]]:
    """Figures of every metric series over each window ending at ``now_ns``.

    Returns window_s -> one ``MetricHealth`` per series (name, type, service and
    attributes) with at least one point in the window ``(now_ns - W s, now_ns]`` by point
    time, sorted by name, service and attributes. ``names`` restricts to those metrics.

    - gauge: ``last`` is the newest value.
    - sum: ``last`` is the newest value; ``rate`` is the increase per second: for delta
      temporality the sum of the window's values over W; for cumulative, the increase from
      the window's first to its last point over the time between them (None with fewer
      than two points). A monotonic counter that drops, or any sum whose start time moves
      past the previous point, restarted: its new value is all increase.
    - histogram, exponential_histogram: ``count`` and ``p50``/``p95``/``p99`` (in the
      metric's unit) of the observations in the window: for delta temporality the sum of
      the window's points (quantiles from those with the newest point's bounds); for
      cumulative, the newest point minus the point just before the window (at most
      ``BASELINE_LOOKBACK_NS`` earlier), else minus the window's first point, unless the
      series started inside the window. A restart (count drops, start time moves) adds
      what the new process counted; new bounds leave the newest points alone. Quantiles
      are interpolated linearly inside the bucket that holds them; the open first and
      last buckets end at the min and max when sent, else at 0 and the last bound.
    - summary: ``count`` and the quantiles of the newest point, each from the nearest
      quantile the summary has (within ``SUMMARY_Q_TOLERANCE``).
    """
    windows = tuple(windows)
    if not windows:
        return {}
    widest_lo = now_ns - max(windows) * SECOND_NS
    series: dict[tuple, _Series] = {}
    attrs: dict[str, tuple[bytes, dict]] = {}
    _read_points(points_between(conn, widest_lo, now_ns, names), series, attrs, True)

    # Baselines for cumulative histograms over the widest window lie before it.
    cumulative = sorted({s.name for s in series.values()
                         if s.type in HISTOGRAMS and s.temporality != DELTA})
    if cumulative:
        _read_points(points_between(conn, widest_lo - BASELINE_LOOKBACK_NS, widest_lo,
                                    cumulative), series, attrs, False)
    return _health(series, now_ns, windows)


def series_health(
    conn: apsw.Connection,
    series_ids: Sequence[int],
    now_ns: int,
    windows: Sequence[int] = WINDOWS_S,
) -> dict[int, list[MetricHealth]]:
    """``metric_health`` of the given series only (``metric_series`` ids): same figures,
    same order, each series read through its own index range, so the cost follows these
    series' points in the widest window whatever else the file holds. ``series_id`` is
    set on each figure."""
    windows = tuple(windows)
    if not windows:
        return {}
    return SeriesPoints(conn, series_ids, now_ns - max(windows) * SECOND_NS,
                        now_ns).health(now_ns, windows)


class SeriesPoints:
    """The points of some series between ``lo_ns`` and ``hi_ns`` (and the lookback before
    ``lo_ns`` a cumulative histogram's baseline needs), read once, for figures at any
    time inside that span (a trend's minutes)."""

    def __init__(self, conn: apsw.Connection, series_ids: Sequence[int], lo_ns: int,
                 hi_ns: int) -> None:
        self._series: dict[tuple, _Series] = {}
        if series_ids:
            _read_points(series_points(conn, series_ids, lo_ns - BASELINE_LOOKBACK_NS, hi_ns),
                         self._series, {}, True)

    def health(self, now_ns: int, windows: Sequence[int]) -> dict[int, list[MetricHealth]]:
        """Figures over each window ending at ``now_ns`` (within the span read)."""
        return _health(self._series, now_ns, tuple(windows))


def _health(series: dict[tuple, _Series], now_ns: int, windows: tuple[int, ...]
            ) -> dict[int, list[MetricHealth]]:
    ordered = sorted(series.values(), key=lambda s: (s.name, s.service, s.order, s.type))
    out: dict[int, list[MetricHealth]] = {w: [] for w in windows}
    for one in ordered:
        if not one.ordered:
            one.points.sort(key=lambda p: p.time_ns)
            one.times = [p.time_ns for p in one.points]
            one.ordered = True
        times = one.times
        end = bisect_right(times, now_ns)  # points after now_ns: read for a later "now"
        for window_s in windows:
            lo = now_ns - window_s * SECOND_NS
            first = bisect_right(times, lo)
            inside = one.points[first:end]
            if not inside:
                continue
            base = one.points[first - 1] if first else None
            if base is not None and base.time_ns <= lo - BASELINE_LOOKBACK_NS:
                base = None
            out[window_s].append(_figures(one, inside, base, lo, window_s))
    return out


def _figures(one: _Series, inside: list[_Point], base: _Point | None, lo: int,
             window_s: int) -> MetricHealth:
    figures: dict[str, object] = {}
    if one.type in ("gauge", "sum"):
        valued = [p for p in inside if p.value is not None]
        if valued:
            values = [float(p.value) for p in valued]  # type: ignore[arg-type]
            figures["last"] = values[-1]
            if one.type == "gauge":
                figures.update(mean=sum(values) / len(values), min=min(values),
                               max=max(values))
            if one.type == "sum":
                figures["rate"] = _sum_rate(valued, values, one.temporality == DELTA,
                                            bool(one.monotonic), window_s)
    elif one.type in HISTOGRAMS:
        figures.update(_histogram(inside, base, lo, one.temporality == DELTA))
    elif one.type == "summary":
        newest = inside[-1]
        figures["count"] = newest.count
        for label, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            figures[label] = _nearest(newest.quantiles(), q)
    return MetricHealth(
        name=one.name, type=one.type, unit=one.unit, service=one.service,
        attributes=dict(one.attributes), points=len(inside), series_id=one.series_id,
        **figures,
    )


def _restarted(prev: _Point, cur: _Point) -> bool:
    """OTLP marks a reset by a new start time; one after ``prev`` was taken is a restart."""
    return cur.start_ns > prev.start_ns and cur.start_ns > prev.time_ns


def _sum_rate(points: list[_Point], values: list[float], delta: bool, monotonic: bool,
              window_s: int) -> float | None:
    """Increase per second of a sum; ``values`` are the points' values (none missing)."""
    if delta:
        return sum(values) / window_s
    if len(points) < 2:
        return None
    increase = 0.0
    for i in range(1, len(points)):
        if _restarted(points[i - 1], points[i]) or (monotonic and values[i] < values[i - 1]):
            increase += values[i]
        else:
            increase += values[i] - values[i - 1]
    elapsed = (points[-1].time_ns - points[0].time_ns) / SECOND_NS
    return increase / elapsed if elapsed > 0 else None


def _nearest(quantiles: list[list[float]], q: float) -> float | None:
    # Ties go to the higher quantile: the cautious reading of a latency.
    best = min(quantiles, key=lambda qv: (round(abs(qv[0] - q), 9), -qv[0]), default=None)
    if best is None or abs(best[0] - q) > SUMMARY_Q_TOLERANCE:
        return None
    return best[1]


def _histogram(inside: list[_Point], base: _Point | None, lo: int,
               delta: bool) -> dict[str, object]:
    """count and quantiles of the observations of one histogram series in one window."""
    acc: _Buckets | None = None
    count = 0
    if delta:
        newest = inside[-1]
        for p in inside:
            count += p.count or 0
            # Points with other bounds cannot be added bucket by bucket; the newest decide.
            if p.shape == newest.shape:
                acc = p.buckets() if acc is None else acc.combine(p.buckets(), 1)
    else:
        # Runs of points without a restart; each run adds its last point minus its base
        # (None: counting began within the run). Parsing only the ends of runs keeps a
        # window of many cumulative points cheap.
        first = inside[0]
        if base is not None:
            run_base, rest = base, inside
        elif first.start_ns > lo:  # the series began inside the window: all of it counts
            run_base, rest = None, inside
        else:
            run_base, rest = first, inside[1:]
        runs: list[tuple[_Point | None, _Point]] = []
        last = run_base
        for cur in rest:
            if last is not None and cur.shape != last.shape:
                # New bounds cannot be compared with the old: the newest points alone count.
                runs, run_base = [], None
            elif last is not None and (_restarted(last, cur)
                                       or (cur.count or 0) < (last.count or 0)):
                runs.append((run_base, last))
                run_base = None
            last = cur
        if last is not None:
            runs.append((run_base, last))
        for start, end in runs:
            if start is end:
                continue
            if start is None:
                diff, n = end.buckets(), end.count or 0
            else:
                diff = end.buckets().combine(start.buckets(), -1)
                n = (end.count or 0) - (start.count or 0)
            acc = diff if acc is None else acc.combine(diff, 1)
            count += max(n, 0)
    if acc is None:
        return {"count": count}

    # The window's extremes are known only if every point sent them.
    mins = [p.min for p in inside if p.min is not None]
    maxes = [p.max for p in inside if p.max is not None]
    low = min(mins) if len(mins) == len(inside) else None
    high = max(maxes) if len(maxes) == len(inside) else None
    if low is not None and high is not None and low > high:
        low = high = None  # inconsistent: trust the buckets alone
    buckets = [(_clamp(a, low, high), _clamp(b, low, high), n)
               for a, b, n in acc.edges(low, high)]
    return {"count": count, "p50": _interpolate(buckets, 0.50),
            "p95": _interpolate(buckets, 0.95), "p99": _interpolate(buckets, 0.99)}


def _clamp(x: float | None, low: float | None, high: float | None) -> float | None:
    if x is None:
        return None
    if low is not None and x < low:
        return low
    if high is not None and x > high:
        return high
    return x


def _interpolate(buckets: list[Bucket], q: float) -> float | None:
    """The q-quantile, linear inside the bucket that holds it (Prometheus' reading)."""
    total = sum(n for _, _, n in buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for lower, upper, n in buckets:
        if n <= 0:
            continue
        if seen + n >= rank:
            if lower is None or upper is None:
                return None
            return lower + (upper - lower) * max(rank - seen, 0) / n
        seen += n
    return None
