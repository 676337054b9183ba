"""What a current window is compared against: a stored profile, or a whole data set.

:meth:`Reference.from_profile` reads a snapshot's :class:`~keel.data.Profile`; it never needs
the reference data again. :meth:`Reference.from_data` profiles a DataFrame or Arrow table and
also keeps each numeric column's sorted values, so KS and Wasserstein are exact. Build a
reference once and compare many windows against it.

**The approximation of a profile reference.** A profile keeps counts, not values, so the
current window is bucketed into the profile's buckets and every statistic is computed from the
two count vectors:

- numeric buckets are the profile's :class:`~keel.data._sketch.Sketch`: about 100 buckets of
  ~1 % of the reference each (plus the 0.1 % tails), whose bounds are lines of a 4096-cell grid.
  Profiles stored before sketches existed fall back to their 20-bin histogram (plus below/above),
  which is coarse on skewed data;
- **KS** is evaluated at the bucket bounds only. The true statistic is a supremum over every
  value, so the binned one is a lower bound of it (they are equal when the largest gap falls on
  a bound). Its p-value is therefore never smaller than the exact one: the test stays
  conservative (false-alarm rate ≤ alpha) and loses a little power, about the mass of one bucket
  (~0.01) in the statistic. ``tests/monitoring/test_reference.py`` measures both against SciPy;
- **Wasserstein** spreads each bucket's mass uniformly between its bounds (the outer buckets
  reach the smaller minimum / larger maximum of the two sides). The error is at most the width
  of a bucket times its mass, summed: small inside, larger in the tails of a heavy-tailed column;
- **chi-square, PSI and JS** are bucket statistics anyway: numeric buckets are merged into ~10
  groups of equal reference mass (deciles, the customary PSI binning) plus the null bucket, so
  they are computed the same way from a profile and from data;
- **categories** are the profile's top-N values with their counts, "other" and null. When the
  top list is complete, any value outside it is an *unseen* category, counted as its own bucket;
  when the list was cut at N, a value outside it may be one of the cut ones and goes to "other".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from keel.data._profile import ColumnProfile, Profile, _json_value, profile
from keel.data._schema import DType
from keel.data._sketch import Sketch
from keel.monitoring._stats import Counts

ColumnKind = Literal["numeric", "categorical"]
#: numeric buckets are merged into this many groups of equal reference mass for chi2/PSI/JS
COARSE_BUCKETS: Final = 10


def kind_of(dtype: DType) -> ColumnKind | None:
    """The kind of drift test a column type gets; None for types no statistic applies to."""
    if dtype in ("int", "float"):
        return "numeric"
    if dtype in ("bool", "string", "category"):
        return "categorical"
    return None


@dataclass(frozen=True, eq=False)
class NumericReference:
    """A numeric column's reference: bucket counts (``sketch``; None when it has no values),
    finite range and std, and, for a data reference, its sorted non-null ``values``."""

    name: str
    dtype: DType
    rows: int
    nulls: int
    sketch: Sketch | None
    minimum: float | None
    maximum: float | None
    std: float | None
    values: Counts | None = field(default=None, repr=False)
    kind: Literal["numeric"] = "numeric"

    @cached_property
    def groups(self) -> Counts:
        """The coarse group of each sketch bucket: ~equal reference mass, in order."""
        if self.sketch is None:
            return np.zeros(1, dtype=np.intp)
        counts = np.asarray(self.sketch.counts, dtype="float64")
        middle = (np.cumsum(counts) - counts / 2) / counts.sum()
        decile = np.minimum((middle * COARSE_BUCKETS).astype(np.intp), COARSE_BUCKETS - 1)
        return np.unique(decile, return_inverse=True)[1]

    @cached_property
    def counts(self) -> Counts:
        """Reference values per bucket (one bucket when there is no sketch)."""
        if self.sketch is None:
            return np.array([self.rows - self.nulls])
        return np.asarray(self.sketch.counts, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """A bool/string/category column's reference: listed ``values`` with their ``counts``,
    ``other`` (non-null values not listed) and whether the list is ``complete``."""

    name: str
    dtype: DType
    rows: int
    nulls: int
    values: tuple[Any, ...]
    counts: tuple[int, ...]
    other: int
    complete: bool
    kind: Literal["categorical"] = "categorical"

    @cached_property
    def index(self) -> dict[Any, int]:
        return {category_key(value): position for position, value in enumerate(self.values)}


@dataclass(frozen=True, eq=False)
class OtherReference:
    """A column no drift statistic applies to (timestamps): reported, not tested."""

    name: str
    dtype: DType
    rows: int
    nulls: int
    kind: None = None


ColumnReference = NumericReference | CategoricalReference | OtherReference


@dataclass(frozen=True, eq=False)
class Reference:
    """The reference side of a drift comparison, column by column.

    reference = Reference.from_profile(snapshot.profile)   # or Reference.from_data(frame)
    for window in windows:
        report = drift(reference, window)
    """

    num_rows: int
    columns: Mapping[str, ColumnReference]
    source: Literal["profile", "data"]

    @classmethod
    def from_profile(cls, stored: Profile) -> Reference:
        """A reference read from a stored profile (statistics from its buckets, see above)."""
        columns = {c.name: _from_column(c, stored.num_rows) for c in stored.columns}
        return cls(num_rows=stored.num_rows, columns=columns, source="profile")

    @classmethod
    def from_data(cls, data: pd.DataFrame | pa.Table) -> Reference:
        """A reference from raw data: profiled with every category listed, and each numeric
        column's sorted values kept so KS and Wasserstein are computed exactly."""
        frame = data.to_pandas() if isinstance(data, pa.Table) else data
        stored = profile(frame, top_n=max(len(frame), 1))
        columns: dict[str, ColumnReference] = {}
        for position, column in enumerate(stored.columns):
            reference = _from_column(column, stored.num_rows)
            if isinstance(reference, NumericReference):
                values = frame.iloc[:, position].to_numpy(dtype="float64", na_value=np.nan)
                present = np.sort(values[~np.isnan(values)])
                reference = replace(reference, values=present)
            columns[column.name] = reference
        return cls(num_rows=stored.num_rows, columns=columns, source="data")


def _from_column(column: ColumnProfile, num_rows: int) -> ColumnReference:
    kind = kind_of(column.dtype)
    if kind == "numeric":
        sketch = column.sketch
        if sketch is None and column.histogram is not None and column.count:
            sketch = Sketch.from_histogram(column.histogram)
        return NumericReference(
            name=column.name,
            dtype=column.dtype,
            rows=num_rows,
            nulls=column.nulls,
            sketch=sketch if column.count else None,
            minimum=_float(column.min),
            maximum=_float(column.max),
            std=column.std,
        )
    if kind == "categorical" and column.frequencies is not None:
        frequencies = column.frequencies
        return CategoricalReference(
            name=column.name,
            dtype=column.dtype,
            rows=num_rows,
            nulls=column.nulls,
            values=tuple(value for value, _ in frequencies.top),
            counts=tuple(count for _, count in frequencies.top),
            other=frequencies.other,
            complete=frequencies.complete,
        )
    return OtherReference(column.name, column.dtype, num_rows, column.nulls)


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def category_key(value: Any) -> Any:
    """A category as profiles store it (plain Python, JSON-representable), for matching."""
    return _json_value(value)
