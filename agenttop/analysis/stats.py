"""The tests a baseline comparison uses to tell a regression from noise, one-sided (is the
run worse?), with the standard library only.

- Rates (failures of calls): Fisher's exact test. Exact at the small counts a CI run has,
  where a normal approximation misleads, and cheap at the counts it will see.
- Quantiles (p50 / p95 / p99): an exceedance test. Under no regression, a run's duration
  exceeds the baseline's q-quantile with probability at most 1 - q; the number that do is
  binomial, so a one-sided binomial test says whether too many did. It needs no
  distribution and works on the rollups' histograms.
- Means (tokens, cost, findings per run; evaluation scores): Welch's t-test, which does not
  assume equal variances.
"""

from __future__ import annotations

import math


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(a: int, n_a: int, b: int, n_b: int) -> float:
    """P-value that the run's rate (``a`` of ``n_a``) exceeds the baseline's (``b`` of
    ``n_b``) no more than chance: P(X >= a) for the hypergeometric X of the 2x2 table."""
    total, hits = n_a + n_b, a + b
    low, high = max(0, hits - n_b), min(hits, n_a)
    log_all = _log_choose(total, hits)
    p = 0.0
    for x in range(max(a, low), high + 1):
        p += math.exp(_log_choose(n_a, x) + _log_choose(n_b, hits - x) - log_all)
    return min(1.0, p)


def binomial_greater(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    return min(1.0, sum(math.exp(_log_choose(n, x) + x * log_p + (n - x) * log_q)
                        for x in range(k, n + 1)))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-12:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def welch_greater(mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float,
                  n_b: int) -> float:
    """P-value that the run's mean (``a``) exceeds the baseline's (``b``) no more than
    chance, by Welch's t-test; variances are sample variances (n - 1)."""
    se2 = var_a / n_a + var_b / n_b
    if se2 <= 0:
        return 0.0 if mean_a > mean_b else 1.0
    t = (mean_a - mean_b) / math.sqrt(se2)
    df = se2 ** 2 / ((var_a / n_a) ** 2 / max(n_a - 1, 1) + (var_b / n_b) ** 2 / max(n_b - 1, 1))
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))  # P(T >= |t|)
    return tail if t > 0 else 1 - tail
