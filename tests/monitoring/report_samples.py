"""Report data built by hand, so the HTML tests need no store: every section filled, or none."""

from __future__ import annotations

from keel.monitoring._alert_store import Alert
from keel.monitoring._report_bins import Distribution
from keel.monitoring._report_data import (
    ColumnSeries,
    PerformancePoint,
    PerformanceSeries,
    QualityAlerts,
    ReportData,
    ScorePoint,
    WindowVerdict,
)
from keel.monitoring._results import MonitorResult

HOUR = 3600.0
T0 = 1_767_225_600.0
ENDS = [T0 + (h + 1) * HOUR for h in range(6)]


def _alert(state: str, subject: str, started: float) -> Alert:
    return Alert(
        id=f"al_{state}", fingerprint=f"fp_{state}", rule="drift", endpoint="churn",
        subject=subject, severity="warning", state=state,
        summary=f"churn: column {subject} drifted", value=0.4, threshold=0.05,
        window_start=started - HOUR, window_end=started, evidence={}, started_at=started,
        last_seen_at=started, acknowledged_at=None, acknowledged_by=None, resolved_at=None,
        resolved_by=None, resolve_reason=None,
    )  # fmt: skip


def full_report(endpoint: str = "churn", column: str = "age") -> ReportData:
    """Six windows, the last two drifted in ``column``; every section has something."""
    drifting = tuple(
        ScorePoint(end, 0.3 if h >= 4 else 0.02, 1e-30 if h >= 4 else 0.6,
                   "drift" if h >= 4 else "ok", 25.0 if h >= 4 else 0.2)
        for h, end in enumerate(ENDS)
    )  # fmt: skip
    steady = tuple(ScorePoint(end, 0.05, None, "ok", 0.5) for end in ENDS)
    metric = tuple(
        PerformancePoint(end, 0.9 - 0.02 * h, None, None, 0.91, "ok", 400)
        for h, end in enumerate(ENDS)
    )
    estimate = tuple(
        PerformancePoint(end, 0.88 - 0.01 * h, 0.85 - 0.01 * h, 0.91 - 0.01 * h, 0.91, "ok", 1000)
        for h, end in enumerate(ENDS)
    )
    quality = MonitorResult(endpoint, ENDS[-2], ENDS[-1], "data_quality", column, "null_rate",
                            "alert", 1000, value=0.2, threshold=0.05,
                            details={"reference": 0.0})  # fmt: skip
    slo = MonitorResult(endpoint, ENDS[0], ENDS[-1], "slo", "availability", "budget_remaining",
                        "ok", 10_000, value=0.62, threshold=0.0,
                        details={"target": 0.999})  # fmt: skip
    concept = MonitorResult(endpoint, ENDS[-2], ENDS[-1], "concept_drift", "accuracy",
                            "accuracy", "concept_drift", 400, value=0.8, threshold=0.91,
                            model_version=3, details={"note": None})  # fmt: skip
    return ReportData(
        endpoint=endpoint,
        model="churn v3",
        reference="churn-train (6cf4cd781284)",
        since=T0,
        until=ENDS[-1],
        generated_at=ENDS[-1] + 60,
        alpha=0.05,
        correction="bh",
        windows=tuple(
            WindowVerdict(
                end - HOUR,
                end,
                1000,
                "drift" if h >= 4 else "no_drift",
                (column,) if h >= 4 else (),
            )
            for h, end in enumerate(ENDS)
        ),
        columns=(
            ColumnSeries(column, "ks", "p_value", 0.05, drifting),
            ColumnSeries("plan", "psi", "threshold", 0.2, steady),
        ),
        distributions={
            column: Distribution(
                column,
                "numeric",
                ("0\u201310", "10\u201320", "20\u201330"),
                (0.2, 0.5, 0.3),
                (0.1, 0.3, 0.6),
                5000,
                1000,
            ),
            "plan": Distribution(
                "plan",
                "categorical",
                ("basic", "pro", "(unseen)"),
                (0.6, 0.4, 0.0),
                (0.5, 0.4, 0.1),
                5000,
                1000,
            ),
        },
        quality=(quality,),
        quality_alerts=(QualityAlerts(column, "null_rate", 2, ENDS[-1]),),
        predictions=(ColumnSeries("score", "ks", "p_value", 0.05, drifting),),
        prediction_verdicts=(WindowVerdict(ENDS[-1] - HOUR, ENDS[-1], 1000, "drift", ("score",)),),
        performance=(PerformanceSeries("accuracy", 3, metric, estimate),),
        concept=(concept,),
        slo=(slo,),
        alerts=(_alert("firing", column, ENDS[-1]), _alert("resolved", "plan", ENDS[1])),
    )


def empty_report(endpoint: str = "churn") -> ReportData:
    """An endpoint that has not served a window yet."""
    return ReportData(
        endpoint=endpoint, model="churn v1", reference="", since=T0, until=T0 + 7 * 86_400,
        generated_at=T0 + 7 * 86_400, alpha=None, correction=None, windows=(), columns=(),
        distributions={}, quality=(), quality_alerts=(), predictions=(), prediction_verdicts=(),
        performance=(), concept=(), slo=(), alerts=(),
    )  # fmt: skip
