"""Counting a current window into its reference's buckets: one pass over each column.

Numeric columns are bucketed by arithmetic on the reference's grid (a multiply, two clips and a
``bincount``; no search), categorical columns through integer codes (pandas Categorical codes,
Arrow ``dictionary_encode`` for Arrow-backed strings, ``pandas.factorize`` otherwise) and a
``bincount``. Only the distinct values of a categorical column are looked up in Python.
Everything the statistics need is in the returned counts, so no statistic touches the data again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keel.data._schema import DType, infer_dtype
from keel.monitoring._reference import CategoricalReference, NumericReference, category_key
from keel.monitoring._stats import Counts

#: unseen categories listed by value in a report (all are counted)
UNSEEN_LISTED: Final = 20


@dataclass(frozen=True, eq=False)
class NumericWindow:
    """A numeric column of the current window: values per reference bucket, nulls, finite
    range, and its sorted values when the reference keeps its own (exact statistics)."""

    rows: int
    nulls: int
    counts: Counts
    minimum: float | None
    maximum: float | None
    values: Counts | None


@dataclass(frozen=True, eq=False)
class CategoricalWindow:
    """A categorical column of the current window: counts aligned with the reference's listed
    values, then "other", then unseen categories (one bucket), and the unseen ones by value."""

    rows: int
    nulls: int
    counts: Counts
    unseen: tuple[tuple[Any, int], ...]
    unseen_distinct: int


def columns_of(data: pd.DataFrame | pa.Table) -> dict[str, pd.Series[Any]]:
    """The window's columns by name (an Arrow table's converted one column at a time)."""
    if isinstance(data, pa.Table):
        return {name: data.column(name).to_pandas() for name in data.column_names}
    return {str(name): data.iloc[:, position] for position, name in enumerate(data.columns)}


def dtype_of(series: pd.Series[Any]) -> DType:
    return infer_dtype(series)


def count_numeric(reference: NumericReference, series: pd.Series[Any]) -> NumericWindow:
    # a float64 column is read in place; anything else is converted once
    if series.dtype == np.float64:
        values = series.to_numpy()
    else:
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    rows = len(values)
    if reference.sketch is None:
        present = int(np.count_nonzero(~np.isnan(values)))
        counts = np.array([present], dtype=np.int64)
    else:
        counts = reference.sketch.bin(values)
    nulls = rows - int(counts.sum())
    minimum, maximum = _finite_range(values) if nulls < rows else (None, None)
    exact = None
    if reference.values is not None:
        exact = np.sort(values[~np.isnan(values)])
    return NumericWindow(rows, nulls, counts, minimum, maximum, exact)


def _finite_range(values: Counts) -> tuple[float | None, float | None]:
    """Smallest and largest finite value (fmin/fmax skip NaN without a masked copy)."""
    low, high = float(np.fmin.reduce(values)), float(np.fmax.reduce(values))
    if not (np.isfinite(low) and np.isfinite(high)):  # ±inf present: look at the finite ones
        finite = values[np.isfinite(values)]
        if not finite.size:
            return None, None
        low, high = float(finite.min()), float(finite.max())
    return low, high


def count_categorical(reference: CategoricalReference, series: pd.Series[Any]) -> CategoricalWindow:
    codes, uniques = _codes(series)
    # per distinct value (position 0: null), then each distinct value to its bucket
    per_value = np.bincount(codes + 1, minlength=len(uniques) + 1)
    listed = len(reference.values)
    other, unseen_bucket = listed, listed + 1
    buckets = np.empty(len(uniques) + 1, dtype=np.intp)
    buckets[0] = listed + 2  # nulls: counted apart, dropped below
    unseen: list[tuple[Any, int]] = []
    index = reference.index
    for position, value in enumerate(uniques, start=1):
        key = category_key(value)
        bucket = index.get(key)
        if bucket is None:
            bucket = unseen_bucket if reference.complete else other
            if reference.complete and per_value[position]:
                unseen.append((key, int(per_value[position])))
        buckets[position] = bucket
    counts = np.bincount(buckets, weights=per_value, minlength=listed + 3).astype(np.int64)
    unseen.sort(key=lambda item: -item[1])
    return CategoricalWindow(
        rows=len(codes),
        nulls=int(per_value[0]),
        counts=counts[: listed + 2],
        unseen=tuple(unseen[:UNSEEN_LISTED]),
        unseen_distinct=len(unseen),
    )


def _codes(series: pd.Series[Any]) -> tuple[Counts, list[Any]]:
    """(codes with -1 for null, distinct values) of a categorical column."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(np.intp)
        return codes, list(dtype.categories)
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        # Arrow's hash encoding of Arrow-backed strings beats pandas' factorize
        encoded = pc.dictionary_encode(pa.array(series))
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.intp)
        return codes, encoded.dictionary.to_pylist()
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), list(uniques)
