"""The latest window against its reference, bin by bin: what the report's bar charts draw.

    found = distributions(reader, "churn", start, end, snapshot.profile, ["age", "plan"])
    found["age"].reference, found["age"].current     # shares over the same bins

A numeric column is binned into its reference histogram's own edges
(:meth:`keel.data.Histogram.bin`), with a bar for values below and above the reference's range
when either side has any (the first sign of a shift); a categorical column shows its
reference's top categories, then "(other)" (listed or possibly listed values beyond the top),
"(unseen)" (values a complete reference never held) and "(null)".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.data._profile import ColumnProfile, Profile
from keel.monitoring._log_window import SqlType, read_window, sql_type
from keel.monitoring._reference import category_key, kind_of
from keel.serving._predlog import LogReader

#: categories drawn per column; the rest are added up as "other"
TOP_CATEGORIES = 8


@dataclass(frozen=True)
class Distribution:
    """Reference and current shares over the same ``labels`` (bins or categories)."""

    column: str
    kind: str
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]
    reference_rows: int
    current_rows: int


def distributions(
    reader: LogReader,
    endpoint: str,
    start: float,
    end: float,
    profile: Profile,
    names: Sequence[str],
) -> dict[str, Distribution]:
    """The window ``[start, end)`` of ``endpoint`` against ``profile``, for the columns of
    ``names`` the profile holds and a drift test applies to."""
    columns: dict[str, ColumnProfile] = {
        name: profile[name] for name in names if name in profile and kind_of(profile[name].dtype)
    }
    types: dict[str, SqlType] = {name: sql_type(c.dtype) for name, c in columns.items()}
    current = read_window(reader, endpoint, start, end, types).inputs
    found = {}
    for name, column in columns.items():
        values = current.column(name)
        shape = numeric_bins(column, values) if column.is_numeric else category_bins(column, values)
        if shape is not None:
            labels, reference, now_ = shape
            found[name] = Distribution(
                name,
                "numeric" if column.is_numeric else "categorical",
                labels,
                _shares(reference),
                _shares(now_),
                sum(reference),
                sum(now_),
            )
    return found


Shape = tuple[tuple[str, ...], list[int], list[int]]


#: a window's values of one column: Arrow (as read from the log), or a list with None for null
Values: TypeAlias = "pa.ChunkedArray | pa.Array | Sequence[Any]"


def _arrow(values: Values) -> pa.Array | pa.ChunkedArray:
    return values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)


def numeric_bins(column: ColumnProfile, values: Values) -> Shape | None:
    """Labels, reference counts and current counts of ``values`` over the column's histogram
    bins; None when the profile has no histogram."""
    histogram = column.histogram
    if histogram is None:
        return None
    array = _arrow(values)
    # Arrow to NumPy in one go: a million-row window must not become a Python list.
    present = np.asarray(pc.drop_null(array).to_numpy(zero_copy_only=False), dtype="float64")
    binned = histogram.bin(present)
    edges = histogram.edges
    labels = [
        f"{_short(edges[i])}\u2013{_short(edges[i + 1])}" for i in range(len(histogram.counts))
    ]
    reference, current = list(histogram.counts), list(binned.counts)
    # Values outside the reference's range are the first sign of a shift: their own bars.
    if histogram.below or binned.below:
        labels, reference, current = (
            [f"< {_short(edges[0])}", *labels],
            [histogram.below, *reference],
            [binned.below, *current],
        )
    if histogram.above or binned.above:
        labels.append(f"> {_short(edges[-1])}")
        reference.append(histogram.above)
        current.append(binned.above)
    _add_nulls(labels, reference, current, column.nulls, array.null_count)
    return tuple(labels), reference, current


def category_bins(column: ColumnProfile, values: Values) -> Shape | None:
    """Labels, reference counts and current counts of ``values`` over the column's top
    categories, "(other)", "(unseen)" and "(null)"; None without frequencies."""
    frequencies = column.frequencies
    if frequencies is None:
        return None
    shown = [category_key(value) for value, _ in frequencies.top[:TOP_CATEGORIES]]
    listed = {category_key(value) for value, _ in frequencies.top}
    array = _arrow(values)
    counted: dict[Any, int] = defaultdict(int)
    other = unseen = 0
    # Counted by Arrow, so the Python loop runs once per distinct value, not once per row.
    for pair in pc.value_counts(pc.drop_null(array)).to_pylist():
        key, count = category_key(pair["values"]), int(pair["counts"])
        if key in shown:
            counted[key] += count
        elif key in listed or not frequencies.complete:
            other += count
        else:
            unseen += count
    nulls = array.null_count
    labels = [str(value) for value in shown]
    reference = [count for _, count in frequencies.top[:TOP_CATEGORIES]]
    current = [counted[key] for key in shown]
    reference_other = frequencies.other + sum(c for _, c in frequencies.top[TOP_CATEGORIES:])
    if reference_other or other:
        labels.append("(other)")
        reference.append(reference_other)
        current.append(other)
    if unseen:
        labels.append("(unseen)")
        reference.append(0)
        current.append(unseen)
    _add_nulls(labels, reference, current, column.nulls, nulls)
    return tuple(labels), reference, current


def _add_nulls(
    labels: list[str], reference: list[int], current: list[int], before: int, now_: int
) -> None:
    if before or now_:
        labels.append("(null)")
        reference.append(before)
        current.append(now_)


def _shares(counts: Sequence[int]) -> tuple[float, ...]:
    total = sum(counts)
    return tuple(count / total if total else 0.0 for count in counts)


def _short(number: float) -> str:
    """A bin edge in at most ~5 characters: 0.25, 36.8, 34.4k, 1.26M (axes have little room)."""
    size = abs(number)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{number / limit:.3g}{suffix}"
    text = f"{number:.3g}"
    return f"{number:.0f}" if "e+" in text else text  # 999.9 rounds to "1e+03"
