"""``drift(reference, current)``: every column of a window compared with its reference.

Each column is counted into its reference's buckets once (:mod:`keel.monitoring._window`) and
every requested statistic is computed from those counts (:mod:`keel.monitoring._compare`).
A column's verdict is the flag of its *default statistic* (numeric → ``ks``, categorical →
``chi2``; configurable); the other statistics are reported alongside as evidence.

**Multiple testing.** Every p-value-based result of the report (each column's ``ks`` and
``chi2``) forms one family, corrected together: Benjamini-Hochberg by default (the expected
share of false alarms among flagged tests ≤ alpha; valid under independence and the positive
dependence of two tests on one column), Bonferroni (chance of any false alarm ≤ alpha) or none
(each test at alpha). The report records which correction and how many tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import stats as _scipy_stats

from keel.data._profile import Profile
from keel.data._schema import DType, infer_dtype
from keel.monitoring import _options as options
from keel.monitoring._compare import compare_categorical, compare_numeric
from keel.monitoring._reference import (
    CategoricalReference,
    ColumnKind,
    ColumnReference,
    NumericReference,
    Reference,
    kind_of,
)
from keel.monitoring._report import (
    ColumnDrift,
    ColumnStatus,
    Correction,
    DriftReport,
    UnseenCategories,
    Verdict,
    WindowStatus,
)
from keel.monitoring._window import count_categorical, count_numeric

#: the statistic whose flag is a column's verdict, by column kind
DEFAULT_STATISTICS: Final[dict[ColumnKind, str]] = {"numeric": "ks", "categorical": "chi2"}
#: windows with fewer rows are "not enough data" (see the bias note in keel.monitoring._stats)
DEFAULT_MIN_ROWS: Final = 1000


def drift(
    reference: Reference | Profile | pd.DataFrame | pa.Table,
    current: pd.DataFrame | pa.Table,
    *,
    columns: Iterable[str] | None = None,
    statistics: Iterable[str] | None = None,
    default_statistics: Mapping[str, str] | None = None,
    correction: Correction = "bh",
    alpha: float = 0.05,
    thresholds: Mapping[str, float] | None = None,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column.

    ``reference`` is a stored profile (statistics from its buckets), a :class:`Reference`
    (build it once for many windows) or a data set (exact KS and Wasserstein). ``columns``
    limits the comparison (default: every column of either side); ``statistics`` picks among
    ``ks``, ``chi2``, ``psi``, ``js``, ``wasserstein`` (default: all that apply);
    ``default_statistics`` maps ``numeric`` / ``categorical`` to the statistic deciding a
    column's verdict; ``thresholds`` overrides the threshold statistics' defaults (PSI 0.2,
    JS 0.1, Wasserstein 0.1 reference std). Bad options raise :class:`MonitoringError`.

        report = drift(snapshot.profile, window, correction="bonferroni")
        report.verdict, report["age"]["ks"].p_value
    """
    names = options.statistics(statistics)
    limits = options.thresholds(thresholds)
    options.check(correction, alpha, min_rows)
    ref = options.reference(reference)
    window = options.current(current)
    selected = options.columns(columns, ref, window)
    present = {c.kind for name in selected if (c := ref.columns.get(name)) and c.kind}
    deciding = options.default_statistics(default_statistics, DEFAULT_STATISTICS, names, present)
    rows = len(current)
    status: WindowStatus = "empty" if rows == 0 else "not_enough_data" if rows < min_rows else "ok"
    results = [
        _column(name, ref.columns.get(name), window.get(name), rows, status == "ok", names, limits)
        for name in selected
    ]
    results, tests = _correct(results, correction, alpha)
    decided = [_decide(column, deciding) if column.status == "ok" else column for column in results]
    compared = [c for c in decided if c.status == "ok"]
    verdict: Verdict
    if status != "ok" or not compared:
        verdict = "not_enough_data"
    else:
        verdict = "drift" if any(c.drifted for c in compared) else "no_drift"
    return DriftReport(
        verdict=verdict,
        status=status,
        reference=ref.source,
        rows=(ref.num_rows, rows),
        min_rows=min_rows,
        alpha=alpha,
        correction=correction,
        tests=tests,
        columns=tuple(decided),
    )


def _column(
    name: str,
    reference: ColumnReference | None,
    series: pd.Series[Any] | None,
    rows: int,
    judged: bool,
    names: list[str],
    thresholds: Mapping[str, float],
) -> ColumnDrift:
    ref_dtype: DType | None = reference.dtype if reference else None
    cur_dtype: DType | None = infer_dtype(series) if series is not None else None
    ref_nulls = reference.nulls / reference.rows if reference and reference.rows else None
    status = _status(reference, cur_dtype, judged)
    # a compared column's null rate comes from its counts, without another pass over it
    cur_nulls = None
    if series is not None and rows and status != "ok":
        cur_nulls = float(series.isna().mean())
    base = ColumnDrift(
        name=name,
        status="ok",
        kind=reference.kind if reference else None,
        dtype=(ref_dtype, cur_dtype),
        rows=(reference.rows if reference else 0, rows if series is not None else 0),
        null_rate=(ref_nulls, cur_nulls),
    )
    if status != "ok":
        return replace(base, status=status)
    assert series is not None
    if isinstance(reference, NumericReference):
        numeric = count_numeric(reference, series)
        found, notes = compare_numeric(reference, numeric, names, thresholds)
        return replace(
            base,
            statistics=tuple(found),
            notes=tuple(notes),
            null_rate=(ref_nulls, numeric.nulls / rows),
        )
    assert isinstance(reference, CategoricalReference)
    categorical = count_categorical(reference, series)
    found, notes = compare_categorical(reference, categorical, names, thresholds)
    unseen = None
    if reference.complete:
        unseen = UnseenCategories(
            int(categorical.counts[-1]), categorical.unseen_distinct, categorical.unseen
        )
    return replace(
        base,
        statistics=tuple(found),
        notes=tuple(notes),
        unseen=unseen,
        null_rate=(ref_nulls, categorical.nulls / rows),
    )


def _status(reference: ColumnReference | None, dtype: DType | None, judged: bool) -> ColumnStatus:
    if reference is None:
        return "missing_in_reference"
    if dtype is None:
        return "missing_in_current"
    if reference.kind is None:
        return "unsupported"
    if kind_of(dtype) != reference.kind:
        return "type_changed"
    return "ok" if judged else "not_enough_data"


def _correct(
    columns: list[ColumnDrift], correction: Correction, alpha: float
) -> tuple[list[ColumnDrift], int]:
    """Fill in adjusted p-values and flags of every p-value-based result, corrected together."""
    raw = [r.p_value for c in columns for r in c.statistics if r.kind == "p_value"]
    p_values = np.asarray(raw, dtype="float64")
    if correction == "bonferroni":
        adjusted = np.minimum(p_values * len(raw), 1.0)
    elif correction == "bh" and raw:
        adjusted = _scipy_stats.false_discovery_control(p_values, method="bh")
    else:
        adjusted = p_values
    values = iter(adjusted.tolist())
    corrected = []
    for column in columns:
        found = []
        for result in column.statistics:
            if result.kind == "p_value":
                p = next(values)
                result = replace(result, adjusted_p_value=p, drifted=p <= alpha)
            found.append(result)
        corrected.append(replace(column, statistics=tuple(found)))
    return corrected, len(raw)


def _decide(column: ColumnDrift, deciding: Mapping[ColumnKind, str]) -> ColumnDrift:
    assert column.kind is not None
    name = deciding[column.kind]
    # None when the deciding statistic could not be computed (e.g. Wasserstein, constant column)
    return replace(column, default_statistic=name, drifted=column[name].drifted)
