"""Data quality of a window: null rates, values outside the schema, unseen categories, volume.

Each finding is a :class:`MonitorResult` of monitor ``data_quality`` with status ``ok``,
``alert`` or ``not_enough_data``:

- ``null_rate`` per column: the window's share of nulls against the reference's; an alert when
  it exceeds the reference's by more than ``null_rate_tolerance`` (absolute, default 0.05);
- ``invalid`` per column: values present but not of the column's type (text in a numeric
  column); any is an alert, since the model never saw such a value;
- ``out_of_schema`` per column whose schema field has rules: values below ``min``, above
  ``max``, outside ``allowed``, not matching ``pattern``, or null where the field is not
  nullable (counts per rule in ``details``, :mod:`._schema_rules`); any is an alert;
- ``unseen`` per categorical column: rows whose value the (complete) reference never held;
- ``volume`` for the window: its row count against the previous windows' (a z-score); an
  anomaly beyond ``volume_z`` (default 3) standard deviations once ``volume_history`` (5)
  windows exist, "not enough data" before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keel.data import Field
from keel.monitoring._log_window import LogWindow
from keel.monitoring._report import DriftReport
from keel.monitoring._results import MonitorResult, result_maker
from keel.monitoring._schema_rules import rule_violations

MONITOR = "data_quality"


@dataclass(frozen=True)
class QualityOptions:
    null_rate_tolerance: float = 0.05
    volume_z: float = 3.0
    volume_history: int = 5


def quality_results(
    window: LogWindow,
    report: DriftReport,
    previous_sizes: Sequence[int],
    options: QualityOptions = QualityOptions(),
    fields: Mapping[str, Field] | None = None,
) -> list[MonitorResult]:
    """The data-quality findings of ``window`` (``report`` is its drift report, which holds the
    reference's null rates and the unseen categories; ``fields`` the model's input schema by
    column, whose rules are counted as ``out_of_schema``)."""

    make = result_maker(window.endpoint, window.start, window.end, MONITOR)

    def result(subject: str, statistic: str, status: str, **values: Any) -> MonitorResult:
        return make(subject, statistic, status, window.rows, **values)

    found = [_volume(result, window.rows, previous_sizes, options)]
    if window.rows == 0:
        return found
    for column in report.columns:
        reference_rate, current_rate = column.null_rate
        if current_rate is not None:
            limit = None if reference_rate is None else reference_rate + options.null_rate_tolerance
            status = "ok" if limit is None or current_rate <= limit else "alert"
            found.append(
                result(
                    column.name,
                    "null_rate",
                    status,
                    value=current_rate,
                    threshold=limit,
                    details={"reference": reference_rate},
                )
            )
        if column.unseen is not None:
            found.append(
                result(
                    column.name,
                    "unseen",
                    "alert" if column.unseen.count else "ok",
                    value=float(column.unseen.count),
                    threshold=0.0,
                    details=column.unseen.to_dict(),
                )
            )
    for name, field in (fields or {}).items():
        if name not in window.inputs.column_names:
            continue
        broken = rule_violations(window.inputs.column(name), field)
        if broken:
            total = sum(broken.values())
            found.append(
                result(
                    name,
                    "out_of_schema",
                    "alert" if total else "ok",
                    value=float(total),
                    threshold=0.0,
                    details=broken,
                )
            )
    for name, count in window.invalid.items():
        found.append(
            result(name, "invalid", "alert" if count else "ok", value=float(count), threshold=0.0)
        )
    return found


def _volume(
    result: Callable[..., MonitorResult],
    rows: int,
    previous: Sequence[int],
    options: QualityOptions,
) -> MonitorResult:
    if len(previous) < options.volume_history:
        return result(
            "",
            "volume",
            "not_enough_data",
            value=float(rows),
            details={"previous_windows": len(previous), "needed": options.volume_history},
        )
    mean = sum(previous) / len(previous)
    spread = math.sqrt(sum((size - mean) ** 2 for size in previous) / (len(previous) - 1))
    # A perfectly steady history has no spread: judge against a Poisson-like floor instead.
    spread = max(spread, math.sqrt(mean), 1.0)
    z = (rows - mean) / spread
    return result(
        "",
        "volume",
        "alert" if abs(z) > options.volume_z else "ok",
        value=float(rows),
        threshold=options.volume_z,
        details={"z": z, "mean": mean, "std": spread, "previous_windows": len(previous)},
    )
