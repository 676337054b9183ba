"""A drift report as stored results: one per column and statistic, and the window's verdict.

A statistic's ``status`` follows its own flag (its corrected p-value against alpha, or its value
against its threshold): ``drift`` when it is the column's deciding statistic and flags it,
``flagged`` when another statistic does (evidence, not a verdict: the PSI of a small window
flags more often than its KS), ``ok`` when it does not; ``not_computed`` when it could not be
computed, or the column's status when the column was not compared (``not_enough_data``,
``missing_in_current``...). So ``status = 'drift'`` rows are exactly the drifted columns.
``p_value`` is the corrected p-value; the raw one is in ``details``, with ``default`` telling
the statistic that decides the column's verdict.
"""

from __future__ import annotations

from keel.data._profile import finite_or_none
from keel.monitoring._log_window import LogWindow
from keel.monitoring._report import DriftReport
from keel.monitoring._results import MonitorResult, result_maker


def drift_results(
    window: LogWindow, report: DriftReport, reference: str, monitor: str = "drift"
) -> list[MonitorResult]:
    """One result per column and statistic of ``report`` (monitor ``monitor``), plus the
    window's overall verdict (subject ``""``, statistic ``verdict``); ``reference`` names what
    the window was compared with."""

    result = result_maker(window.endpoint, window.start, window.end, monitor)
    found = [
        result(
            "",
            "verdict",
            report.verdict,
            window.rows,
            value=float(len(report.drifted_columns)),
            details={
                "reference": reference,
                "correction": report.correction,
                "tests": report.tests,
                "alpha": report.alpha,
                "drifted_columns": report.drifted_columns,
            },
        )
    ]
    for column in report.columns:
        if not column.statistics:  # a column on one side only, or of a type no test fits
            found.append(
                result(
                    column.name,
                    "status",
                    column.status,
                    column.rows[1],
                    details={"notes": list(column.notes)},
                )
            )
        for statistic in column.statistics:
            deciding = statistic.name == column.default_statistic
            status = (
                column.status
                if column.status != "ok"
                else "not_computed"
                if statistic.drifted is None
                else "ok"
                if not statistic.drifted
                else "drift"
                if deciding
                else "flagged"
            )
            adjusted = statistic.adjusted_p_value
            found.append(
                result(
                    column.name,
                    statistic.name,
                    status,
                    column.rows[1],
                    value=finite_or_none(statistic.value),
                    p_value=finite_or_none(statistic.p_value if adjusted is None else adjusted),
                    threshold=statistic.threshold,
                    details={
                        "default": statistic.name == column.default_statistic,
                        "raw_p_value": finite_or_none(statistic.p_value),
                        "note": statistic.note,
                    },
                )
            )
    return found
