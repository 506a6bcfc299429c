"""Per-layer health over sliding windows, and metric figures, read from the store.

The data model below is shared by the dashboard, ``agenttop check`` and the alert
evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOWS_S = (60, 300, 900)  # 1 m, 5 m, 15 m


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
