"""What the monitoring report of an endpoint shows, gathered from the store: pure data.

    data = gather_report(workspace, "churn")                  # the 7 days up to its last window
    data.columns[0].name                                      # the most drifted column first
    data.distributions["age"].reference, .current             # shares per bin, same bins

Everything comes from what the monitors stored (``monitor_results``, ``monitor_windows``,
``alerts``), except the latest window's distributions: the stored results hold statistics, not
the data, so that one window is read back from the prediction log and binned into the reference
profile's own bins (:meth:`keel.data.Histogram.bin`; the top categories for categoricals).

The default range is the 7 days that end with the endpoint's last computed window (not with
"now": a report on a log that stopped a month ago still shows its last week).

**Drift strength** puts every statistic on one scale, so columns tested by different statistics
(KS for numbers, chi-square for categories) sort and colour together: 1 is the decision
boundary; a p-value statistic scores ``log p / log alpha`` (p = alpha gives 1, p = alpha² gives 2),
a threshold statistic ``value / threshold``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from keel.data._profile import Profile
from keel.data._snapshot import Snapshot
from keel.errors import EndpointNotFound, KeelError
from keel.monitoring._alert_store import Alert, AlertStore
from keel.monitoring._report_bins import Distribution, distributions
from keel.monitoring._results import MonitorResult, ResultStore
from keel.serving._predlog import LogReader
from keel.store import _tables as t

if TYPE_CHECKING:
    from keel._workspace import Workspace

DEFAULT_DAYS = 7.0
_ALERT_ORDER = {"firing": 0, "acknowledged": 1, "resolved": 2}


@dataclass(frozen=True)
class WindowVerdict:
    """A window's overall input-drift verdict (``status``: drift, no_drift, not_enough_data...)."""

    start: float
    end: float
    rows: int
    status: str
    drifted_columns: tuple[str, ...]


@dataclass(frozen=True)
class ScorePoint:
    """One window's value of a column's default statistic; ``strength`` as in the module doc."""

    window_end: float
    value: float | None
    p_value: float | None
    status: str
    strength: float | None


@dataclass(frozen=True)
class ColumnSeries:
    """A column's default statistic over the windows, oldest first; ``kind`` is ``p_value`` or
    ``threshold`` and ``limit`` the alpha or threshold it is decided by."""

    name: str
    statistic: str
    kind: str
    limit: float | None
    points: tuple[ScorePoint, ...]

    @property
    def latest(self) -> ScorePoint | None:
        return self.points[-1] if self.points else None

    @property
    def drifted_windows(self) -> int:
        return sum(point.status == "drift" for point in self.points)


@dataclass(frozen=True)
class PerformancePoint:
    """A metric of one model version in one window; ``low``/``high`` the band of an estimate,
    ``reference`` the version's validation value."""

    window_end: float
    value: float | None
    low: float | None
    high: float | None
    reference: float | None
    status: str
    rows: int


@dataclass(frozen=True)
class PerformanceSeries:
    """One metric of one model version over the windows: from labels and estimated (CBPE)."""

    metric: str
    model_version: int
    realised: tuple[PerformancePoint, ...]
    estimated: tuple[PerformancePoint, ...]


@dataclass(frozen=True)
class QualityAlerts:
    """A data-quality check that alerted in ``windows`` windows of the range, last in the one
    ending at ``last_end``."""

    subject: str
    statistic: str
    windows: int
    last_end: float


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows; see :func:`gather_report`."""

    endpoint: str
    model: str
    reference: str
    since: float
    until: float
    generated_at: float
    alpha: float | None
    correction: str | None
    windows: tuple[WindowVerdict, ...]
    columns: tuple[ColumnSeries, ...]
    distributions: dict[str, Distribution]
    quality: tuple[MonitorResult, ...]
    """The latest window's data-quality findings."""
    quality_alerts: tuple[QualityAlerts, ...]
    """Data-quality checks that alerted in any window of the range, most windows first."""
    predictions: tuple[ColumnSeries, ...]
    prediction_verdicts: tuple[WindowVerdict, ...]
    performance: tuple[PerformanceSeries, ...]
    concept: tuple[MonitorResult, ...]
    """The latest concept-drift finding of each model version and metric."""
    slo: tuple[MonitorResult, ...]
    alerts: tuple[Alert, ...]

    @property
    def latest(self) -> WindowVerdict | None:
        return self.windows[-1] if self.windows else None

    @property
    def firing(self) -> int:
        return sum(alert.state == "firing" for alert in self.alerts)


def gather_report(
    workspace: Workspace,
    endpoint: str,
    *,
    since: float | None = None,
    until: float | None = None,
    span_seconds: float = DEFAULT_DAYS * 86_400.0,
    now: float,
) -> ReportData:
    """What the report of ``endpoint`` shows for windows ending in (``since``, ``until``]
    (default: the ``span_seconds`` up to its last computed window, so ``--last 3h`` of hourly
    windows is three of them); ``now`` stamps the report.
    An endpoint that neither exists nor has results is an error (a typo, most likely)."""
    results = ResultStore(workspace.store)
    last = _last_window_end(workspace, endpoint)
    model = _model(workspace, endpoint)
    if last is None and model is None:
        raise EndpointNotFound(endpoint)
    if until is None:
        until = last or now
    if since is None:
        since = until - span_seconds
    found = [r for r in results.query(endpoint, since=since, until=until) if r.window_end > since]
    by_monitor: dict[str, list[MonitorResult]] = defaultdict(list)
    for result in found:
        by_monitor[result.monitor].append(result)
    verdicts = _verdicts(by_monitor["drift"])
    alpha, correction, reference = _verdict_details(by_monitor["drift"])
    columns = _sorted_by_severity(_series(by_monitor["drift"], alpha))
    snapshot = _snapshot(workspace, reference)
    latest = next((v for v in reversed(verdicts) if v.rows > 0), None)
    distributions = (
        _latest_distributions(workspace, endpoint, latest, snapshot.profile, columns)
        if snapshot is not None and latest is not None
        else {}
    )
    quality_end = max((r.window_end for r in by_monitor["data_quality"]), default=None)
    return ReportData(
        endpoint=endpoint,
        model=model or "(endpoint deleted)",
        reference=f"{snapshot.name} ({snapshot.fingerprint[:12]})" if snapshot else reference,
        since=since,
        until=until,
        generated_at=now,
        alpha=alpha,
        correction=correction,
        windows=tuple(verdicts),
        columns=tuple(columns),
        distributions=distributions,
        quality=tuple(r for r in by_monitor["data_quality"] if r.window_end == quality_end),
        quality_alerts=tuple(_quality_alerts(by_monitor["data_quality"])),
        predictions=tuple(_sorted_by_severity(_series(by_monitor["prediction_drift"], alpha))),
        prediction_verdicts=tuple(_verdicts(by_monitor["prediction_drift"])),
        performance=tuple(_performance(by_monitor)),
        concept=tuple(_latest(by_monitor["concept_drift"], version=True)),
        slo=tuple(_latest(by_monitor["slo"])),
        alerts=tuple(_alerts(workspace, endpoint, since)),
    )


def strength(result: MonitorResult, alpha: float | None) -> float | None:
    """The result on the common drift scale (see the module doc); None when not computed."""
    if result.p_value is not None and alpha:
        return math.log(max(result.p_value, 1e-300)) / math.log(alpha)
    if result.value is not None and result.threshold:
        return result.value / result.threshold
    return None


def _last_window_end(workspace: Workspace, endpoint: str) -> float | None:
    windows = t.monitor_windows
    query = sa.select(sa.func.max(windows.c.window_end)).where(windows.c.endpoint == endpoint)
    with workspace.store.read() as connection:
        found = connection.execute(query).scalar()
    return None if found is None else float(found)


def _verdicts(results: Sequence[MonitorResult]) -> list[WindowVerdict]:
    return [
        WindowVerdict(
            r.window_start,
            r.window_end,
            r.rows,
            r.status,
            tuple(r.details.get("drifted_columns") or ()),
        )
        for r in results
        if r.subject == "" and r.statistic == "verdict"
    ]


def _verdict_details(results: Sequence[MonitorResult]) -> tuple[float | None, str | None, str]:
    for result in reversed(results):
        if result.subject == "" and result.statistic == "verdict":
            details = result.details
            return details.get("alpha"), details.get("correction"), details.get("reference", "")
    return None, None, ""


def _series(results: Sequence[MonitorResult], alpha: float | None) -> list[ColumnSeries]:
    """Each column's default statistic per window (a column not compared in a window, e.g. not
    enough data, has a point without a value there)."""
    points: dict[str, dict[float, ScorePoint]] = defaultdict(dict)
    chosen: dict[str, MonitorResult] = {}
    for r in results:
        if r.subject == "" or not (r.details.get("default") or r.statistic == "status"):
            continue
        if r.statistic != "status":
            chosen[r.subject] = r
        points[r.subject][r.window_end] = ScorePoint(
            r.window_end, r.value, r.p_value, r.status, strength(r, alpha)
        )
    series = []
    for name, by_end in points.items():
        example = chosen.get(name)
        kind = "p_value" if example is not None and example.p_value is not None else "threshold"
        limit = alpha if kind == "p_value" else example.threshold if example else None
        series.append(
            ColumnSeries(
                name=name,
                statistic=example.statistic if example else "status",
                kind=kind,
                limit=limit,
                points=tuple(by_end[end] for end in sorted(by_end)),
            )
        )
    return series


def _sorted_by_severity(series: list[ColumnSeries]) -> list[ColumnSeries]:
    """Drifted in the latest window first, then by strength there, then by drifted windows."""

    def key(column: ColumnSeries) -> tuple[int, float, int, str]:
        latest = column.latest
        drifted = latest is not None and latest.status == "drift"
        score = latest.strength if latest is not None and latest.strength is not None else -1.0
        return (0 if drifted else 1, -score, -column.drifted_windows, column.name)

    return sorted(series, key=key)


def _snapshot(workspace: Workspace, fingerprint: str) -> Snapshot | None:
    if not fingerprint:
        return None
    try:
        return workspace.snapshots.get(fingerprint)
    except KeelError:  # deleted since, or a reference that was not a snapshot
        return None


def _model(workspace: Workspace, endpoint: str) -> str | None:
    try:
        primary = workspace.deployments.get(endpoint).policy.primary
    except EndpointNotFound:  # deleted since; its results remain
        return None
    return f"{primary.name} v{primary.version}"


def _latest_distributions(
    workspace: Workspace,
    endpoint: str,
    window: WindowVerdict,
    profile: Profile,
    columns: Sequence[ColumnSeries],
) -> dict[str, Distribution]:
    settings = workspace.settings
    reader = LogReader(settings.project_path(settings.serving.prediction_log_dir))
    names = [column.name for column in columns]
    return distributions(reader, endpoint, window.start, window.end, profile, names)


def _performance(by_monitor: dict[str, list[MonitorResult]]) -> list[PerformanceSeries]:
    points: dict[tuple[str, int], dict[str, list[PerformancePoint]]] = defaultdict(
        lambda: {"performance": [], "estimated_performance": []}
    )
    for monitor in ("performance", "estimated_performance"):
        for r in by_monitor[monitor]:
            if r.subject == "":  # the window's label-join counts, not a metric
                continue
            points[(r.statistic, r.model_version)][monitor].append(
                PerformancePoint(
                    r.window_end,
                    r.value,
                    r.details.get("low"),
                    r.details.get("high"),
                    r.threshold,
                    r.status,
                    r.rows,
                )
            )
    return [
        PerformanceSeries(
            metric, version, tuple(p["performance"]), tuple(p["estimated_performance"])
        )
        for (metric, version), p in sorted(
            points.items(), key=lambda item: (item[0][1], item[0][0])
        )
    ]


def _quality_alerts(results: Sequence[MonitorResult]) -> list[QualityAlerts]:
    # An alert in an earlier window would be missed by a table of the latest window alone.
    ends: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in results:
        if r.status == "alert":
            ends[(r.subject, r.statistic)].append(r.window_end)
    found = [QualityAlerts(s, stat, len(e), max(e)) for (s, stat), e in ends.items()]
    return sorted(found, key=lambda q: (-q.windows, -q.last_end, q.subject, q.statistic))


def _latest(results: Sequence[MonitorResult], *, version: bool = False) -> list[MonitorResult]:
    """The newest result of each subject and statistic (and model version)."""
    latest: dict[tuple[int, str, str], MonitorResult] = {}
    for r in results:  # oldest first, so the last one kept is the newest
        latest[(r.model_version if version else 0, r.subject, r.statistic)] = r
    return [latest[key] for key in sorted(latest)]


def _alerts(workspace: Workspace, endpoint: str, since: float) -> list[Alert]:
    """Open alerts whenever they started, and resolved ones that started in the range; firing
    first, then acknowledged, then resolved, newest first within each."""
    found = AlertStore(workspace.store, actor="report").list(endpoint=endpoint)
    shown = [a for a in found if a.state != "resolved" or a.started_at >= since]
    return sorted(shown, key=lambda a: (_ALERT_ORDER.get(a.state, 3), -a.started_at))
