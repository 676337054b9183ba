"""The result of a drift comparison: per statistic, per column, and the verdict.

Every outcome is a value, never an exception: a window too small to judge, a column on one side
only, a type that changed, a statistic that cannot be computed are each a ``status`` or a
``note``. ``to_dict`` is JSON-safe (a non-finite number becomes None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from keel.data._profile import finite_or_none
from keel.data._schema import DType
from keel.monitoring._reference import ColumnKind
from keel.monitoring._stats import Kind


class _HasName(Protocol):
    @property
    def name(self) -> str: ...


_Named = TypeVar("_Named", bound=_HasName)
Correction = Literal["bh", "bonferroni", "none"]
Verdict = Literal["drift", "no_drift", "not_enough_data"]
WindowStatus = Literal["ok", "empty", "not_enough_data"]
#: ``ok``: compared; ``not_enough_data``: the window is below ``min_rows``; ``missing_in_*``:
#: the column is on one side only; ``type_changed``: numeric on one side, categorical on the
#: other; ``unsupported``: a type no statistic applies to (timestamps)
ColumnStatus = Literal[
    "ok",
    "not_enough_data",
    "missing_in_current",
    "missing_in_reference",
    "type_changed",
    "unsupported",
]


@dataclass(frozen=True)
class StatisticResult:
    """One statistic on one column. ``p_value`` statistics carry their raw and corrected
    p-values (``drifted``: corrected p ≤ alpha); ``threshold`` ones their ``threshold``
    (``drifted``: value > threshold). ``value`` None (with a ``note``) when it cannot be
    computed; ``drifted`` is then None too."""

    name: str
    kind: Kind
    value: float | None
    drifted: bool | None
    p_value: float | None = None
    adjusted_p_value: float | None = None
    threshold: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "value": finite_or_none(self.value),
            "p_value": finite_or_none(self.p_value),
            "adjusted_p_value": finite_or_none(self.adjusted_p_value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "note": self.note,
        }


@dataclass(frozen=True)
class UnseenCategories:
    """Current values of a categorical column its (complete) reference never saw: ``count``
    rows, ``distinct`` values, the most frequent ones listed in ``values`` as (value, rows)."""

    count: int
    distinct: int
    values: tuple[tuple[Any, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "distinct": self.distinct,
            "values": [{"value": value, "count": count} for value, count in self.values],
        }


@dataclass(frozen=True)
class ColumnDrift:
    """One column: its status, the statistics computed, and its verdict ``drifted`` (the flag
    of ``default_statistic``; None unless the status is ``ok``).

        report["age"].drifted, report["age"]["ks"].p_value
    """

    name: str
    status: ColumnStatus
    kind: ColumnKind | None
    dtype: tuple[DType | None, DType | None]
    rows: tuple[int, int]
    null_rate: tuple[float | None, float | None]
    statistics: tuple[StatisticResult, ...] = ()
    default_statistic: str | None = None
    drifted: bool | None = None
    unseen: UnseenCategories | None = None
    notes: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> StatisticResult:
        return _named(self.statistics, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "kind": self.kind,
            "dtype": list(self.dtype),
            "rows": list(self.rows),
            "null_rate": [finite_or_none(rate) for rate in self.null_rate],
            "default_statistic": self.default_statistic,
            "drifted": self.drifted,
            "statistics": [result.to_dict() for result in self.statistics],
            "unseen": self.unseen.to_dict() if self.unseen else None,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class DriftReport:
    """A current window compared with a reference.

    ``verdict`` is ``drift`` when a compared column drifted, ``no_drift`` when columns were
    compared and none did, and ``not_enough_data`` when the window is empty or below
    ``min_rows`` (or no column could be compared): neither drift nor its absence is claimed.
    ``correction`` was applied over the ``tests`` p-value-based results of the report.

        report = drift(snapshot.profile, window)
        report.verdict, report.drifted_columns, report.to_dict()
    """

    verdict: Verdict
    status: WindowStatus
    reference: Literal["profile", "data"]
    rows: tuple[int, int]
    min_rows: int
    alpha: float
    correction: Correction
    tests: int
    columns: tuple[ColumnDrift, ...]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.drifted]

    def __getitem__(self, name: str) -> ColumnDrift:
        return _named(self.columns, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "status": self.status,
            "reference": self.reference,
            "rows": list(self.rows),
            "min_rows": self.min_rows,
            "alpha": self.alpha,
            "correction": self.correction,
            "tests": self.tests,
            "drifted_columns": self.drifted_columns,
            "columns": [column.to_dict() for column in self.columns],
        }


def _named(items: tuple[_Named, ...], name: str) -> _Named:
    for item in items:
        if item.name == name:
            return item
    raise KeyError(name)
