"""Column profiles: the statistics a snapshot keeps about its data, and comparing two of them.

A profile is the reference monitoring compares live traffic against, so it is stored in a form
that makes that comparison cheap:

- **numeric** columns keep count, nulls, min/max/mean/std, quantiles and a histogram with
  **fixed bin edges** (``bins`` equal-width bins over the finite [min, max]). The edges are stored
  explicitly, so live values are binned into the *same* edges with :meth:`Histogram.bin` (one
  ``searchsorted`` per batch) and the two count vectors compared bucket by bucket (PSI, chi²)
  without touching the reference data again. Values outside the edges are counted in ``below``
  and ``above``; ±inf land there too;
- **bool, string and category** columns keep the ``top_n`` most frequent values with their
  counts, the count of all other values and the number of distinct values;
- **timestamp** columns keep min and max (ISO 8601).

Numeric columns also keep a sketch (:mod:`keel.data._sketch`): about 100 buckets of roughly
equal reference mass on a fine grid, which drift tests bucket live values into by arithmetic
alone. It is optional: profiles stored before it existed have none and still load (monitoring
falls back to the histogram).

Everything is computed vectorized (NumPy and pandas' hash tables). ``to_dict`` is JSON-safe:
statistics that do not exist (the mean of an empty column, a std of one value) are ``None``,
never NaN.

    reference = profile(train_df)
    live = profile(batch_df, reference=reference)    # numerics binned into reference's edges
    profile_diff(reference, live).columns[0].psi
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from keel.data._schema import DType, infer_dtype
from keel.data._sketch import Sketch, padded_range, sketch_of

#: profile format version, stored with every profile so readers can tell layouts apart
FORMAT = 1
DEFAULT_BINS = 20
DEFAULT_TOP_N = 50
#: quantile levels kept for numeric columns, by name
QUANTILES: dict[str, float] = {
    "p1": 0.01,
    "p5": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
# Bucket share assumed for an empty bucket in PSI, so one empty bucket does not make it infinite.
_PSI_FLOOR = 1e-4

Number = int | float


@dataclass(frozen=True)
class Histogram:
    """Counts of values in fixed bins: bin ``i`` holds ``edges[i] <= x < edges[i + 1]``, the
    last bin also holds ``x == edges[-1]``; ``below`` / ``above`` count values outside.

        live = reference.histogram.bin(live_values)   # same edges, so counts line up
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    below: int = 0
    above: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts) + self.below + self.above

    def bin(self, values: np.ndarray[Any, Any]) -> Histogram:
        """A histogram of ``values`` (NaN ignored) over these same edges."""
        counts, below, above = _bin_counts(np.asarray(self.edges, dtype="float64"), values)
        return Histogram(self.edges, counts, below, above)

    def psi(self, other: Histogram) -> float | None:
        """Population stability index from ``self`` (expected) to ``other`` (actual) over the
        buckets below, each bin, and above; None when the edges differ or either is empty."""
        if self.edges != other.edges or self.total == 0 or other.total == 0:
            return None
        expected = np.array([self.below, *self.counts, self.above], dtype="float64") / self.total
        actual = np.array([other.below, *other.counts, other.above], dtype="float64")
        actual /= other.total
        expected = np.maximum(expected, _PSI_FLOOR)
        actual = np.maximum(actual, _PSI_FLOOR)
        return float(np.sum((actual - expected) * np.log(actual / expected)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "counts": list(self.counts),
            "below": self.below,
            "above": self.above,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        return cls(
            edges=tuple(float(e) for e in data["edges"]),
            counts=tuple(int(c) for c in data["counts"]),
            below=int(data.get("below", 0)),
            above=int(data.get("above", 0)),
        )


@dataclass(frozen=True)
class Frequencies:
    """The ``top`` values of a column with their counts (most frequent first, ties by value),
    how many non-null values are not among them (``other``) and how many values are distinct."""

    top: tuple[tuple[Any, int], ...]
    other: int
    distinct: int

    @property
    def complete(self) -> bool:
        """True when ``top`` lists every value the column holds."""
        return self.distinct == len(self.top)

    def counts(self) -> dict[Any, int]:
        return dict(self.top)

    def to_dict(self) -> dict[str, Any]:
        return {
            "top": [{"value": value, "count": count} for value, count in self.top],
            "other": self.other,
            "distinct": self.distinct,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Frequencies:
        return cls(
            top=tuple((item["value"], int(item["count"])) for item in data["top"]),
            other=int(data["other"]),
            distinct=int(data["distinct"]),
        )


@dataclass(frozen=True)
class ColumnProfile:
    """Statistics of one column. ``count`` is the number of non-null values; which of the other
    fields are set depends on the type: numeric (min … histogram; ``infinite`` counts ±inf,
    which are left out of the other statistics), bool/string/category (``frequencies``) or
    timestamp (``min``/``max`` as ISO strings)."""

    name: str
    dtype: DType
    count: int
    nulls: int
    infinite: int = 0
    min: Number | str | None = None
    max: Number | str | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float | None] | None = None
    histogram: Histogram | None = None
    frequencies: Frequencies | None = None
    sketch: Sketch | None = None

    @property
    def rows(self) -> int:
        return self.count + self.nulls

    @property
    def null_rate(self) -> float | None:
        return self.nulls / self.rows if self.rows else None

    @property
    def is_numeric(self) -> bool:
        return self.dtype in ("int", "float")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"dtype": self.dtype, "count": self.count, "nulls": self.nulls}
        if self.is_numeric:
            data.update(
                infinite=self.infinite,
                min=self.min,
                max=self.max,
                mean=self.mean,
                std=self.std,
                quantiles=self.quantiles,
                histogram=self.histogram.to_dict() if self.histogram else None,
            )
            if self.sketch is not None:  # left out when absent, as in profiles from before it
                data["sketch"] = self.sketch.to_dict()
        elif self.dtype == "timestamp":
            data.update(min=self.min, max=self.max)
        else:
            data["frequencies"] = self.frequencies.to_dict() if self.frequencies else None
        return data

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> ColumnProfile:
        histogram = data.get("histogram")
        frequencies = data.get("frequencies")
        quantiles = data.get("quantiles")
        sketch = data.get("sketch")
        return cls(
            name=name,
            dtype=data["dtype"],
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            infinite=int(data.get("infinite", 0)),
            min=data.get("min"),
            max=data.get("max"),
            mean=data.get("mean"),
            std=data.get("std"),
            quantiles=dict(quantiles) if quantiles is not None else None,
            histogram=Histogram.from_dict(histogram) if histogram else None,
            frequencies=Frequencies.from_dict(frequencies) if frequencies else None,
            sketch=Sketch.from_dict(sketch) if sketch else None,
        )


@dataclass(frozen=True)
class Profile:
    """Column profiles of a frame, in column order.

    profile = Profile.from_dict(stored)
    profile["age"].histogram.edges
    """

    num_rows: int
    columns: tuple[ColumnProfile, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def get(self, name: str) -> ColumnProfile | None:
        try:
            return self[name]
        except KeyError:
            return None

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def __iter__(self) -> Iterator[ColumnProfile]:
        return iter(self.columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "num_rows": self.num_rows,
            "columns": {c.name: c.to_dict() for c in self.columns},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            num_rows=int(data["num_rows"]),
            columns=tuple(
                ColumnProfile.from_dict(name, item) for name, item in data["columns"].items()
            ),
        )


# -- computing -------------------------------------------------------------------------------------


def profile(
    frame: pd.DataFrame | pa.Table,
    *,
    bins: int = DEFAULT_BINS,
    top_n: int = DEFAULT_TOP_N,
    reference: Profile | None = None,
) -> Profile:
    """Profile every column of ``frame``. With ``reference``, numeric columns it also has are
    binned into its histogram edges (instead of edges of their own), so the histograms of the
    two profiles can be compared bucket by bucket."""
    if bins < 1 or top_n < 0:
        raise ValueError("bins must be at least 1 and top_n at least 0")
    if isinstance(frame, pa.Table):
        frame = frame.to_pandas()
    columns = []
    for position, name in enumerate(frame.columns):
        series = frame.iloc[:, position]
        reference_edges = None
        if reference is not None and str(name) in reference:
            reference_histogram = reference[str(name)].histogram
            if reference_histogram is not None:
                reference_edges = reference_histogram.edges
        columns.append(_column(str(name), series, bins, top_n, reference_edges))
    return Profile(num_rows=len(frame), columns=tuple(columns))


def _column(
    name: str,
    series: pd.Series[Any],
    bins: int,
    top_n: int,
    reference_edges: tuple[float, ...] | None,
) -> ColumnProfile:
    dtype = infer_dtype(series)
    missing = series.isna()
    nulls = int(missing.sum())
    count = len(series) - nulls
    if dtype in ("int", "float"):
        return _numeric(name, dtype, series, count, nulls, bins, reference_edges)
    if dtype == "timestamp":
        present = series[~missing]
        return ColumnProfile(
            name,
            dtype,
            count,
            nulls,
            min=present.min().isoformat() if count else None,
            max=present.max().isoformat() if count else None,
        )
    return ColumnProfile(name, dtype, count, nulls, frequencies=_frequencies(series, count, top_n))


def _numeric(
    name: str,
    dtype: DType,
    series: pd.Series[Any],
    count: int,
    nulls: int,
    bins: int,
    reference_edges: tuple[float, ...] | None,
) -> ColumnProfile:
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    values = values[~np.isnan(values)]
    finite_mask = np.isfinite(values)
    finite = values[finite_mask]
    infinite = int(values.size - finite.size)
    if reference_edges is not None:
        edges = np.asarray(reference_edges, dtype="float64")
    elif finite.size:
        edges = _edges(float(finite.min()), float(finite.max()), bins)
    else:
        edges = None
    histogram = None
    if edges is not None:
        counts, below, above = _bin_counts(edges, values)
        histogram = Histogram(tuple(float(e) for e in edges), counts, below, above)
    if not finite.size:
        return ColumnProfile(name, dtype, count, nulls, infinite=infinite, histogram=histogram)
    if dtype == "int":
        # exact, where the float64 copy would round integers past 2**53
        present = series.dropna()
        low: Number = int(present.min())
        high: Number = int(present.max())
    else:
        low, high = float(finite.min()), float(finite.max())
    with np.errstate(over="ignore", invalid="ignore"):
        mean = finite_or_none(np.mean(finite))
        std = finite_or_none(np.std(finite, ddof=1)) if finite.size > 1 else None
        levels = np.quantile(finite, list(QUANTILES.values()))
    return ColumnProfile(
        name,
        dtype,
        count,
        nulls,
        infinite=infinite,
        min=low,
        max=high,
        mean=mean,
        std=std,
        quantiles={key: finite_or_none(v) for key, v in zip(QUANTILES, levels, strict=True)},
        histogram=histogram,
        sketch=sketch_of(values, finite),
    )


def _edges(low: float, high: float, bins: int) -> np.ndarray[Any, Any]:
    """``bins`` equal-width bins over [low, high]; a constant column gets a unit-wide range
    around its value (as NumPy does), widened where 0.5 is lost in the value's precision."""
    if low == high:
        low, high = padded_range(low)
    if math.isfinite(high - low):
        edges = np.linspace(low, high, bins + 1)
    else:  # the span overflows float64: interpolate without computing it
        steps = np.linspace(0.0, 1.0, bins + 1)
        edges = low * (1.0 - steps) + high * steps
    edges[0], edges[-1] = low, high
    return edges


def _bin_counts(
    edges: np.ndarray[Any, Any], values: np.ndarray[Any, Any]
) -> tuple[tuple[int, ...], int, int]:
    values = np.asarray(values, dtype="float64")
    values = values[~np.isnan(values)]
    bins = len(edges) - 1
    index = np.searchsorted(edges, values, side="right") - 1
    index[values == edges[-1]] = bins - 1  # the last bin is closed on the right
    inside = (index >= 0) & (index < bins)
    counts = np.bincount(index[inside], minlength=bins)
    return (
        tuple(int(c) for c in counts),
        int(np.count_nonzero(index < 0)),
        int(np.count_nonzero(index >= bins)),
    )


def _frequencies(series: pd.Series[Any], count: int, top_n: int) -> Frequencies:
    counts = series.value_counts(dropna=True, sort=False)
    counts = counts[counts > 0]  # categoricals list unused categories with a zero count
    distinct = len(counts)
    if top_n == 0:
        counts = counts.iloc[:0]
    elif distinct > top_n:
        # only values as frequent as the top_n-th one can make the list: sort just those
        cutoff = np.partition(counts.to_numpy(), distinct - top_n)[distinct - top_n]
        counts = counts[counts >= cutoff]
    try:
        counts = counts.sort_index(kind="stable")
    except TypeError:  # values of mixed types: order the ties by their text instead
        counts = counts.iloc[np.argsort(counts.index.astype(str).to_numpy(), kind="stable")]
    top = counts.sort_values(ascending=False, kind="stable").iloc[:top_n]
    pairs = tuple(
        (_json_value(value), int(n)) for value, n in zip(top.index, top.to_numpy(), strict=True)
    )
    return Frequencies(top=pairs, other=count - sum(n for _, n in pairs), distinct=distinct)


def _json_value(value: Any) -> Any:
    """A value as JSON can carry it and bring it back equal."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def finite_or_none(value: Any) -> float | None:
    """``value`` as a plain float; None when it is None, NaN or infinite (JSON has neither)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
