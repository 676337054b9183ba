"""What batch validation found: column problems and rule failures, gathered in a report.

    result = validate(frame, schema, mode="warn")
    result.report.ok                          # False when anything failed
    result.report.failure("age", "min")       # RuleFailure(column="age", rule="min", count=3, ...)
    print(result.report.summary())            # totals, then one line per problem
    result.report.to_dict()                   # JSON-ready

Row indexes in a report are the frame's index labels for pandas and positions for Arrow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

Frame = TypeVar("Frame", pd.DataFrame, pa.Table)


class DataValidationWarning(UserWarning):
    """Emitted once by ``validate(..., mode="warn")`` when data breaks its schema."""


@dataclass(frozen=True)
class ColumnProblem:
    """A problem with a whole column: ``missing_column``, ``extra_column`` or ``column_dtype``."""

    column: str
    rule: str
    message: str


@dataclass(frozen=True)
class RuleFailure:
    """Rows of one column that broke one rule, with up to five examples."""

    column: str
    rule: str
    count: int
    rows: tuple[Any, ...]
    values: tuple[Any, ...]
    message: str


@dataclass(frozen=True, eq=False)
class ValidationReport:
    """What a batch did wrong: column problems, then rule failures per column and rule.

    ``invalid_rows`` is a boolean mask over the input rows, True where any rule failed.
    """

    rows: int
    problems: tuple[ColumnProblem, ...]
    failures: tuple[RuleFailure, ...]
    invalid_rows: NDArray[np.bool_]
    extra_columns: tuple[str, ...] = ()
    missing_optional: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.problems or self.failures)

    @property
    def invalid_count(self) -> int:
        return int(np.count_nonzero(self.invalid_rows))

    def failure(self, column: str, rule: str) -> RuleFailure | None:
        for item in self.failures:
            if item.column == column and item.rule == rule:
                return item
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (example values become plain numbers, strings or ISO timestamps)."""
        return {
            "ok": self.ok,
            "rows": self.rows,
            "invalid_rows": self.invalid_count,
            "problems": [vars(p).copy() for p in self.problems],
            "failures": [
                {
                    "column": f.column,
                    "rule": f.rule,
                    "count": f.count,
                    "examples": [
                        {"row": _plain(r), "value": _plain(v)}
                        for r, v in zip(f.rows, f.values, strict=True)
                    ],
                    "message": f.message,
                }
                for f in self.failures
            ],
            "extra_columns": list(self.extra_columns),
            "missing_optional": list(self.missing_optional),
        }

    def summary(self) -> str:
        """A few lines for a log or an exception: the totals, then one line per problem."""
        if self.ok:
            return f"{self.rows:,} rows, all valid"
        share = f" ({self.invalid_count / self.rows:.2%})" if self.rows else ""
        lines = [f"{self.rows:,} rows, {self.invalid_count:,} invalid{share}"]
        lines += [f"- {p.message}" for p in self.problems]
        for f in self.failures:
            examples = ", ".join(
                f"row {r}: {show(v)}" for r, v in zip(f.rows, f.values, strict=True)
            )
            lines.append(
                f"- {f.column}: {f.count:,} row{'s' if f.count != 1 else ''} where the value "
                f"{f.message} [{f.rule}] (e.g. {examples})"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class ValidationResult(Generic[Frame]):
    """``valid``: the input (``raise``/``warn``) or its valid rows (``drop``)."""

    valid: Frame
    report: ValidationReport
    quarantine_path: Path | None = None


def show(value: Any) -> str:
    """An example value as a report prints it: strings quoted, the rest as :func:`_plain`."""
    return repr(value) if isinstance(value, str) else str(_plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
