"""Monitoring: drift of live data against a reference (a snapshot's profile or any data set).

    from keel.monitoring import Reference, drift

    report = drift(snapshot.profile, window)            # or drift(train_df, live_df)
    report.verdict                                      # "drift" | "no_drift" | "not_enough_data"
    report["age"]["ks"].p_value, report.to_dict()

    reference = Reference.from_profile(snapshot.profile)   # once, for many windows

The statistics (KS, chi-square, PSI, Jensen-Shannon, Wasserstein) and how each is computed from
a binned profile are described in ``keel.monitoring._stats`` and ``keel.monitoring._reference``.
"""

from keel.monitoring._concept import ConceptDriftFinding, detect_concept_drift
from keel.monitoring._drift import DEFAULT_MIN_ROWS, DEFAULT_STATISTICS, drift
from keel.monitoring._estimate import Calibrator, estimate_performance
from keel.monitoring._labels import LabelledWindow, VersionLabels, labelled_window
from keel.monitoring._perf_results import MetricResult, PerformanceReport
from keel.monitoring._performance import (
    DEFAULT_TOLERANCES,
    compare_to_validation,
    realised_performance,
)
from keel.monitoring._quality import QualityOptions
from keel.monitoring._reference import Reference
from keel.monitoring._report import (
    ColumnDrift,
    ColumnStatus,
    Correction,
    DriftReport,
    StatisticResult,
    UnseenCategories,
    Verdict,
)
from keel.monitoring._results import MonitorResult, ResultStore
from keel.monitoring._runner import MonitorRunner, WindowOutcome, Windows
from keel.monitoring._stats import STATISTICS, StatisticInfo

# isort: split
# -- alerts, SLOs and generated Prometheus/Grafana files (a block of its own) ----------------------
from keel._monitoring_settings import AlertRule
from keel.monitoring._alert_rules import DEFAULT_RULES
from keel.monitoring._alert_store import Alert, AlertStore
from keel.monitoring._alerting import alert_evaluator, slo_tracker
from keel.monitoring._alerts import AlertEvaluator, Evaluation
from keel.monitoring._grafana import grafana_dashboard
from keel.monitoring._promrules import prometheus_rules_yaml
from keel.monitoring._sinks import LogSink, Notifier, WebhookSink
from keel.monitoring._slo import SloStatus, SloTracker

__all__ = [
    "DEFAULT_MIN_ROWS",
    "DEFAULT_RULES",
    "DEFAULT_STATISTICS",
    "DEFAULT_TOLERANCES",
    "STATISTICS",
    "Alert",
    "AlertEvaluator",
    "AlertRule",
    "AlertStore",
    "Calibrator",
    "ColumnDrift",
    "ColumnStatus",
    "ConceptDriftFinding",
    "Correction",
    "DriftReport",
    "Evaluation",
    "LabelledWindow",
    "LogSink",
    "MetricResult",
    "MonitorResult",
    "MonitorRunner",
    "Notifier",
    "PerformanceReport",
    "QualityOptions",
    "Reference",
    "ResultStore",
    "SloStatus",
    "SloTracker",
    "StatisticInfo",
    "StatisticResult",
    "UnseenCategories",
    "Verdict",
    "VersionLabels",
    "WebhookSink",
    "WindowOutcome",
    "Windows",
    "alert_evaluator",
    "compare_to_validation",
    "detect_concept_drift",
    "drift",
    "estimate_performance",
    "grafana_dashboard",
    "labelled_window",
    "prometheus_rules_yaml",
    "realised_performance",
    "slo_tracker",
]
