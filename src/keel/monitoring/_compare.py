"""One column's statistics from its reference and its window counts.

p-value results leave ``drifted`` unset: it depends on the multiple-testing correction over the
whole report, which :func:`keel.monitoring.drift` applies once every column is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import numpy as np

from keel.monitoring._reference import CategoricalReference, NumericReference
from keel.monitoring._report import StatisticResult
from keel.monitoring._stats import (
    STATISTICS,
    Counts,
    chi_square,
    js_distance,
    ks_from_counts,
    ks_from_values,
    ks_p_value,
    psi,
    wasserstein_from_counts,
    wasserstein_from_values,
)
from keel.monitoring._window import CategoricalWindow, NumericWindow

Results = tuple[list[StatisticResult], list[str]]


def compare_numeric(
    reference: NumericReference,
    window: NumericWindow,
    names: Collection[str],
    thresholds: Mapping[str, float],
) -> Results:
    """Statistics of a numeric column, in :data:`STATISTICS` order, and notes."""
    notes = _null_notes(reference.rows, reference.nulls, window.rows, window.nulls)
    # KS sees nulls as an atom above every number; the coarse buckets get a null bucket
    coarse_r = np.append(np.bincount(reference.groups, weights=reference.counts), reference.nulls)
    coarse_c = np.append(np.bincount(reference.groups, weights=window.counts), window.nulls)
    computed: dict[str, Callable[[], StatisticResult]] = {
        "ks": lambda: _ks(reference, window),
        "chi2": lambda: _chi2(coarse_r, coarse_c),
        "psi": lambda: _threshold("psi", psi(coarse_r, coarse_c), thresholds),
        "js": lambda: _threshold("js", js_distance(coarse_r, coarse_c), thresholds),
        "wasserstein": lambda: _wasserstein(reference, window, thresholds),
    }
    return [computed[name]() for name in STATISTICS if name in names], notes


def compare_categorical(
    reference: CategoricalReference,
    window: CategoricalWindow,
    names: Collection[str],
    thresholds: Mapping[str, float],
) -> Results:
    """Statistics of a categorical column over its listed values, other, unseen and null."""
    notes = _null_notes(reference.rows, reference.nulls, window.rows, window.nulls)
    counts_r = np.array([*reference.counts, reference.other, 0, reference.nulls], dtype=np.int64)
    counts_c = np.append(window.counts, window.nulls)
    # chi2 merges sparse buckets in order: rarest last, so they merge with one another
    order = np.argsort(-(counts_r + counts_c), kind="stable")
    computed: dict[str, Callable[[], StatisticResult]] = {
        "chi2": lambda: _chi2(counts_r[order], counts_c[order]),
        "psi": lambda: _threshold("psi", psi(counts_r, counts_c), thresholds),
        "js": lambda: _threshold("js", js_distance(counts_r, counts_c), thresholds),
    }
    return [computed[name]() for name in STATISTICS if name in names and name in computed], notes


def _ks(reference: NumericReference, window: NumericWindow) -> StatisticResult:
    if reference.values is not None and window.values is not None:
        value = ks_from_values(reference.values, reference.rows, window.values, window.rows)
    else:
        value = ks_from_counts(
            np.append(reference.counts, reference.nulls), np.append(window.counts, window.nulls)
        )
    p_value = ks_p_value(value, reference.rows, window.rows)
    return StatisticResult("ks", "p_value", value, None, p_value=p_value)


def _chi2(reference: Counts, current: Counts) -> StatisticResult:
    value, p_value, freedom = chi_square(reference, current)
    note = "one bucket left after merging sparse ones: nothing to test" if not freedom else None
    return StatisticResult("chi2", "p_value", value, None, p_value=p_value, note=note)


def _threshold(name: str, value: float, thresholds: Mapping[str, float]) -> StatisticResult:
    limit = thresholds[name]
    return StatisticResult(name, "threshold", value, value > limit, threshold=limit)


def _wasserstein(
    reference: NumericReference,
    window: NumericWindow,
    thresholds: Mapping[str, float],
) -> StatisticResult:
    limit = thresholds["wasserstein"]
    missing = _missing_reason(reference, window)
    if missing:
        return StatisticResult(
            "wasserstein", "threshold", None, None, threshold=limit, note=missing
        )
    # _missing_reason has ruled these out; the asserts tell the type checker
    assert reference.std is not None
    assert reference.minimum is not None
    assert reference.maximum is not None
    assert window.minimum is not None
    assert window.maximum is not None
    if reference.values is not None and window.values is not None:
        distance = wasserstein_from_values(_finite(reference.values), _finite(window.values))
    else:
        assert reference.sketch is not None
        edges = np.concatenate(
            (
                [min(reference.minimum, window.minimum)],
                reference.sketch.bounds,
                [max(reference.maximum, window.maximum)],
            )
        )
        distance = wasserstein_from_counts(edges, reference.counts, window.counts)
    value = distance / reference.std
    return StatisticResult("wasserstein", "threshold", value, value > limit, threshold=limit)


def _missing_reason(reference: NumericReference, window: NumericWindow) -> str | None:
    """Why Wasserstein cannot be computed here, if it cannot."""
    if reference.minimum is None or window.minimum is None:
        return "no finite values on one side: Wasserstein measures distances between values"
    if not reference.std:  # None (one value) or 0
        return "the reference is constant: no std to make Wasserstein scale-free"
    return None


def _finite(values: Counts) -> Counts:
    """The finite part of sorted values (±inf sit at the ends)."""
    low = int(np.searchsorted(values, -np.inf, side="right"))
    return values[low : int(np.searchsorted(values, np.inf, side="left"))]


def _null_notes(ref_rows: int, ref_nulls: int, cur_rows: int, cur_nulls: int) -> list[str]:
    notes = []
    if ref_rows and ref_nulls == ref_rows:
        notes.append("every reference value is null")
    if cur_rows and cur_nulls == cur_rows:
        notes.append("every current value is null")
    return notes
