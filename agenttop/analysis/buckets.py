"""Log-scale duration buckets: how per-minute rollups keep latency quantiles cheap.

A span's duration falls into bucket ``ceil(8 * log2(microseconds))``: eight buckets per
doubling (each about 9 % wide), so an hour of one layer's latencies is a few hundred
counters, not a million rows. The writer computes the same formula in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

PER_DOUBLING = 8


def duration_bucket(duration_ns: int) -> int:
    """The bucket of a duration; everything up to 1 µs is bucket 0."""
    micros = duration_ns / 1000
    return math.ceil(PER_DOUBLING * math.log2(micros)) if micros > 1 else 0


def bucket_upper_ns(bucket: int) -> float:
    """The largest duration (ns) that falls into ``bucket``."""
    return 1000 * 2 ** (bucket / PER_DOUBLING)


def quantile_ns(counts: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of the durations counted per bucket, or None if empty.

    Returns the upper bound of the bucket holding the quantile: never below the true value,
    and at most one bucket's width (about 9 %) above it.
    """
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return bucket_upper_ns(bucket)
    return bucket_upper_ns(max(counts))
