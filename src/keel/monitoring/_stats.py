"""Drift statistics as vectorized kernels over counts (and, where exact values exist, sorted data).

Every statistic compares a *reference* distribution with a *current* one. They are computed from
per-bucket counts so that one pass over a column's data (bucketing it) feeds all of them:

============  ==========  ===========================================================  ========
name          decides by  what it measures                                             default
============  ==========  ===========================================================  ========
ks            p-value     Kolmogorov-Smirnov: largest gap between the two CDFs         alpha
chi2          p-value     chi-square test of homogeneity on the bucket counts          alpha
psi           threshold   population stability index Σ (a - e) ln(a / e)               0.2
js            threshold   Jensen-Shannon distance, base 2 (0 = same, 1 = disjoint)     0.1
wasserstein   threshold   Wasserstein-1 distance divided by the reference std          0.1
============  ==========  ===========================================================  ========

``ks`` and ``wasserstein`` need ordered values, so they apply to numeric columns only; the other
three apply to both kinds. Nulls take part as a value of their own: the null bucket in chi2, PSI
and JS, and an atom above every number in KS (the CDF of "value, or null") so a surge of missing
values moves the KS statistic by the change in null share. Wasserstein measures distances
between values, so it ignores nulls.

The KS p-value is SciPy's asymptotic two-sample one (``kstwo.sf(D, round(n·m / (n + m)))``, as
``scipy.stats.ks_2samp(method="asymp")``), switching to the limiting distribution for large
samples (:func:`ks_p_value`); the chi-square p-value is ``chi2.sf`` with
``buckets - 1`` degrees of freedom after merging sparse buckets (:func:`merge_sparse`).

Threshold statistics are biased upwards in small samples: with ``k`` buckets and no drift,
PSI ≈ (k - 1)(1/n + 1/m) and the JS divergence ≈ (k - 1) / (8 ln 2 · n) for m ≫ n, which is why
a window needs a minimum size before anything is concluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from scipy import stats as _scipy_stats

Counts = np.ndarray[Any, np.dtype[Any]]
Kind = Literal["p_value", "threshold"]

#: above this many effective rows the KS p-value uses the limiting distribution (see ks_p_value)
KS_LIMIT_ROWS: Final = 10_000
#: the expected count every chi-square bucket must reach (the textbook rule of thumb)
MIN_EXPECTED: Final = 5.0
# Share assumed for an empty bucket in PSI, so one empty bucket does not make it infinite
# (the same floor as keel.data's Histogram.psi).
PSI_FLOOR: Final = 1e-4


@dataclass(frozen=True)
class StatisticInfo:
    """What a statistic is: how it decides, its default threshold, the columns it applies to."""

    name: str
    kind: Kind
    threshold: float | None
    numeric: bool
    categorical: bool
    title: str


#: every statistic by name, in the order reports list them
STATISTICS: Final[dict[str, StatisticInfo]] = {
    info.name: info
    for info in (
        StatisticInfo("ks", "p_value", None, True, False, "Kolmogorov-Smirnov"),
        StatisticInfo("chi2", "p_value", None, True, True, "chi-square"),
        StatisticInfo("psi", "threshold", 0.2, True, True, "population stability index"),
        StatisticInfo("js", "threshold", 0.1, True, True, "Jensen-Shannon distance"),
        StatisticInfo("wasserstein", "threshold", 0.1, True, False, "Wasserstein-1 / ref std"),
    )
}


def shares(counts: Counts) -> Counts:
    total = float(np.sum(counts))
    return np.asarray(counts, dtype="float64") / total if total else np.zeros(len(counts))


# -- Kolmogorov-Smirnov ----------------------------------------------------------------------------


def ks_from_counts(reference: Counts, current: Counts) -> float:
    """KS statistic over ordered buckets (nulls last): the CDFs compared at each bucket's end.

    This is the exact KS statistic of the data when each bucket holds one value; otherwise it
    is a lower bound of it, since the largest gap may fall inside a bucket."""
    gaps = np.abs(np.cumsum(shares(reference)) - np.cumsum(shares(current)))
    return float(gaps.max()) if gaps.size else 0.0


def ks_from_values(
    reference: Counts, reference_rows: int, current: Counts, current_rows: int
) -> float:
    """Exact KS statistic between sorted non-null ``reference`` and ``current`` values out of
    ``*_rows`` rows each, the rows not given being nulls (an atom above every number)."""
    if reference_rows == 0 or current_rows == 0:
        return 0.0
    points = np.concatenate((reference, current))
    if not points.size:  # nulls only on both sides
        return 0.0
    # at the largest value both CDFs reach their non-null share, so the null-share gap is in
    below_r = np.searchsorted(reference, points, side="right") / reference_rows
    below_c = np.searchsorted(current, points, side="right") / current_rows
    return float(np.max(np.abs(below_r - below_c)))


def ks_p_value(statistic: float, reference_rows: int, current_rows: int) -> float:
    """Two-sample asymptotic p-value with ``en = n·m / (n + m)`` effective rows: SciPy's
    ``kstwo.sf(D, round(en))`` (as ``ks_2samp(method="asymp")``) up to :data:`KS_LIMIT_ROWS`,
    beyond it the limiting Kolmogorov distribution with Stephens' finite-size correction,
    ``kstwobign.sf(D·(√en + 0.12 + 0.11/√en))``: ``kstwo``'s tail costs O(en) (over a second
    per column at a million rows) and the two agree to ~1e-3 relative there."""
    if reference_rows == 0 or current_rows == 0:
        return 1.0
    n, m = float(reference_rows), float(current_rows)
    effective = n * m / (n + m)
    if effective <= KS_LIMIT_ROWS:
        return float(_scipy_stats.kstwo.sf(statistic, np.round(effective)))
    root = math.sqrt(effective)
    return float(_scipy_stats.kstwobign.sf(statistic * (root + 0.12 + 0.11 / root)))


# -- chi-square ------------------------------------------------------------------------------------


def merge_sparse(reference: Counts, current: Counts) -> tuple[Counts, Counts]:
    """Merge neighbouring buckets until each one's expected count (under no drift) reaches
    :data:`MIN_EXPECTED` on both sides; a sparse remainder joins the bucket before it.

    Buckets are merged in the order given: ordered buckets stay contiguous, and callers put
    unordered categories in decreasing order of their count so the rare ones merge together."""
    total_r, total_c = float(np.sum(reference)), float(np.sum(current))
    if not total_r or not total_c:
        return np.asarray(reference)[:0], np.asarray(current)[:0]
    # a bucket's expected count on the smaller side is pooled · smaller / total
    needed = MIN_EXPECTED * (total_r + total_c) / min(total_r, total_c)
    groups = np.empty(len(reference), dtype=np.intp)
    group, filled, members = 0, 0.0, 0
    for position, pooled in enumerate((np.asarray(reference) + current).tolist()):
        groups[position] = group
        filled += pooled
        members += 1
        if filled >= needed:
            group, filled, members = group + 1, 0.0, 0
    if members and group:  # an unfilled tail (even of empty buckets) joins the last full group
        groups[groups == group] = group - 1
    merged = int(groups[-1]) + 1 if groups.size else 0
    return (
        np.bincount(groups, weights=reference, minlength=merged),
        np.bincount(groups, weights=current, minlength=merged),
    )


def chi_square(reference: Counts, current: Counts) -> tuple[float, float, int]:
    """(statistic, p-value, degrees of freedom) of the 2 x k homogeneity test over the buckets
    after :func:`merge_sparse`; as ``scipy.stats.chi2_contingency(table, correction=False)``.
    Fewer than two buckets left means nothing to test: (0, 1, 0)."""
    ref, cur = merge_sparse(reference, current)
    if ref.size < 2:
        return 0.0, 1.0, 0
    pooled = ref + cur
    total = float(pooled.sum())
    expected_r = pooled * (ref.sum() / total)
    expected_c = pooled * (cur.sum() / total)
    statistic = float(
        np.sum((ref - expected_r) ** 2 / expected_r + (cur - expected_c) ** 2 / expected_c)
    )
    freedom = int(ref.size - 1)
    return statistic, float(_scipy_stats.chi2.sf(statistic, freedom)), freedom


# -- threshold statistics --------------------------------------------------------------------------


def psi(reference: Counts, current: Counts) -> float:
    """Population stability index from ``reference`` (expected) to ``current`` (actual)."""
    expected = np.maximum(shares(reference), PSI_FLOOR)
    actual = np.maximum(shares(current), PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def js_distance(reference: Counts, current: Counts) -> float:
    """Jensen-Shannon distance in base 2 (the square root of the divergence), in [0, 1]; as
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``."""
    p, q = shares(reference), shares(current)
    middle = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        # 0 · log 0 is 0: where a share is zero its term is dropped
        left = np.where(p > 0, p * np.log2(p / middle), 0.0)
        right = np.where(q > 0, q * np.log2(q / middle), 0.0)
    divergence = float(np.sum(left + right)) / 2
    return float(np.sqrt(min(max(divergence, 0.0), 1.0)))


def wasserstein_from_counts(edges: Counts, reference: Counts, current: Counts) -> float:
    """Wasserstein-1 distance ∫ |F - G| between two histograms over the same ``edges``
    (``len(counts) + 1`` values), each spread uniformly within its buckets: the CDFs are then
    piecewise linear and the integral of their gap is exact bucket by bucket."""
    gap = np.concatenate(([0.0], np.cumsum(shares(reference)) - np.cumsum(shares(current))))
    start, end = gap[:-1], gap[1:]
    width = np.diff(edges)
    same_sign = start * end >= 0
    size = np.abs(start) + np.abs(end)
    with np.errstate(divide="ignore", invalid="ignore"):
        # where the gap changes sign inside a bucket, it is two triangles around the crossing
        crossing = (start**2 + end**2) / (2 * size)
    area = np.where(same_sign, size / 2, np.where(size > 0, crossing, 0.0))
    return float(np.sum(width * area))


def wasserstein_from_values(reference: Counts, current: Counts) -> float:
    """Exact Wasserstein-1 distance between two samples (``scipy.stats.wasserstein_distance``)."""
    return float(_scipy_stats.wasserstein_distance(reference, current))
