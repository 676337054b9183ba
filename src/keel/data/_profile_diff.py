"""Comparing two profiles column by column: counts, null rates, shifts, PSI, category shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keel.data._profile import QUANTILES, ColumnProfile, Frequencies, Profile, finite_or_none
from keel.data._schema import DType


@dataclass(frozen=True)
class ColumnChange:
    """How one column present in both profiles changed from ``a`` to ``b``.

    For numerics, ``psi`` is the population stability index over the histogram buckets when
    both histograms have the same edges (profile ``b`` with ``reference=a``); otherwise it is
    None and ``quantile_shift`` (b - a per quantile) is the distribution comparison. For
    bool/string/category columns, ``shares`` maps each value in either top list to its share of
    non-null values in a and b (None where the value is not in that side's top list);
    ``new_values`` / ``gone_values`` are only listed when the other side's list is complete."""

    name: str
    dtype: tuple[DType, DType]
    count: tuple[int, int]
    null_rate: tuple[float | None, float | None]
    mean: tuple[float | None, float | None] | None = None
    std: tuple[float | None, float | None] | None = None
    mean_shift_in_std: float | None = None
    psi: float | None = None
    quantile_shift: dict[str, float | None] | None = None
    shares: dict[str, tuple[float | None, float | None]] | None = None
    new_values: list[Any] = field(default_factory=list)
    gone_values: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": list(self.dtype),
            "count": list(self.count),
            "null_rate": list(self.null_rate),
            "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None,
            "mean_shift_in_std": self.mean_shift_in_std,
            "psi": self.psi,
            "quantile_shift": self.quantile_shift,
            "shares": {k: list(v) for k, v in self.shares.items()} if self.shares else None,
            "new_values": self.new_values,
            "gone_values": self.gone_values,
        }


@dataclass(frozen=True)
class ProfileDiff:
    """Changes from profile ``a`` to profile ``b``: row counts, columns only one side has, and
    a :class:`ColumnChange` for each column both have (in ``b``'s order)."""

    num_rows: tuple[int, int]
    added: list[str]
    removed: list[str]
    columns: tuple[ColumnChange, ...]

    def __getitem__(self, name: str) -> ColumnChange:
        for change in self.columns:
            if change.name == name:
                return change
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_rows": list(self.num_rows),
            "added": self.added,
            "removed": self.removed,
            "columns": [c.to_dict() for c in self.columns],
        }


def profile_diff(a: Profile, b: Profile) -> ProfileDiff:
    """Per-column changes from ``a`` (the reference) to ``b``. Kept simple on purpose: counts,
    null rates, mean/std shift, PSI where the histogram edges match, quantile shifts otherwise,
    and category share changes; monitoring builds its statistics on the same profiles."""
    return ProfileDiff(
        num_rows=(a.num_rows, b.num_rows),
        added=[name for name in b.names if name not in a],
        removed=[name for name in a.names if name not in b],
        columns=tuple(_change(a[c.name], c) for c in b.columns if c.name in a),
    )


def _change(a: ColumnProfile, b: ColumnProfile) -> ColumnChange:
    base: dict[str, Any] = {
        "name": a.name,
        "dtype": (a.dtype, b.dtype),
        "count": (a.count, b.count),
        "null_rate": (a.null_rate, b.null_rate),
    }
    if a.is_numeric and b.is_numeric:
        shift = None
        if a.mean is not None and b.mean is not None and a.std:
            shift = finite_or_none((b.mean - a.mean) / a.std)
        psi = a.histogram.psi(b.histogram) if a.histogram and b.histogram else None
        return ColumnChange(
            **base,
            mean=(a.mean, b.mean),
            std=(a.std, b.std),
            mean_shift_in_std=shift,
            psi=psi,
            quantile_shift=None if psi is not None else _quantile_shift(a, b),
        )
    if a.frequencies is not None and b.frequencies is not None:
        return ColumnChange(**base, **_share_changes(a, b, a.frequencies, b.frequencies))
    return ColumnChange(**base)


def _quantile_shift(a: ColumnProfile, b: ColumnProfile) -> dict[str, float | None] | None:
    if a.quantiles is None or b.quantiles is None:
        return None
    shift: dict[str, float | None] = {}
    for key in QUANTILES:
        old, new = a.quantiles.get(key), b.quantiles.get(key)
        shift[key] = finite_or_none(new - old) if old is not None and new is not None else None
    return shift


def _share_changes(
    a: ColumnProfile, b: ColumnProfile, fa: Frequencies, fb: Frequencies
) -> dict[str, Any]:
    counts_a, counts_b = fa.counts(), fb.counts()
    values: list[Any] = [v for v, _ in fa.top] + [v for v, _ in fb.top if v not in counts_a]
    shares = {
        str(value): (_share(counts_a.get(value), a.count), _share(counts_b.get(value), b.count))
        for value in values
    }
    return {
        "shares": shares,
        "new_values": [v for v, _ in fb.top if v not in counts_a] if fa.complete else [],
        "gone_values": [v for v, _ in fa.top if v not in counts_b] if fb.complete else [],
    }


def _share(count: int | None, total: int) -> float | None:
    return count / total if count is not None and total else None
