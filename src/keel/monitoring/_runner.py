"""``keel monitor run``: every complete window of every endpoint, computed once and stored.

    runner = MonitorRunner(workspace, windows=Windows(seconds=3600))
    outcomes = runner.run()                  # each endpoint's windows not computed yet
    runner.run("churn", force=True)          # recompute them all (replacing their results)
    runner.results.frame("churn", monitor="drift")

**Windows** are tumbling: by time (``seconds``: ``[k·s, (k+1)·s)`` in epoch seconds, so every
process cuts the same windows) or by row count (``rows``: consecutive runs of that many answers,
cut only between two distinct timestamps so the rows of one request never straddle windows). A
time window is complete once ``lateness_seconds`` have passed since its end (entries appended
late still land in it); a row window once it holds its rows. Time windows are those holding
answers plus the one after each (empty: the sign of an outage), never every window of a gap.
Only complete windows are computed, and a window already in ``monitor_windows`` is skipped
unless ``force``: running twice stores nothing twice.

**Per window**: input drift against the reference (:func:`keel.monitoring.drift`), data
quality (:mod:`._quality`), prediction drift against the model's answers on its validation data
(:mod:`._predictions`), and the performance monitors (:mod:`._performance_monitor`): realised
metrics of the labelled rows, the CBPE estimate of every row, concept drift. Labels arrive
late: on every run, windows that ended within ``label_horizon_seconds`` (7 days) and got
feedback since they were last computed have their performance monitors recomputed (and only
those). The versions compared with validation metrics are the primary's model's (an arm
serving another model is compared with nothing).

**Reference**: the training snapshot of the endpoint's primary model version (the first of its
recorded inputs that is a snapshot), or the snapshot named by ``reference``. Its stored profile
is what each window is compared with (:func:`keel.monitoring.drift`). The compared columns are
the model's input fields that the reference holds, except fields marked sensitive (the log
keeps only their tokens, never comparable with clear reference values).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from keel.data import Field
from keel.data._snapshot import Snapshot
from keel.errors import KeelError, MonitoringError
from keel.monitoring._drift import DEFAULT_MIN_ROWS, drift
from keel.monitoring._drift_results import drift_results
from keel.monitoring._log_window import (
    LogWindow,
    SqlType,
    log_time_range,
    read_window,
    sql_type,
)
from keel.monitoring._performance_monitor import MONITORS as PERFORMANCE_MONITORS
from keel.monitoring._performance_monitor import performance_results
from keel.monitoring._predictions import MONITOR as PREDICTION_DRIFT
from keel.monitoring._predictions import pick_validation_input, reference_outputs, window_outputs
from keel.monitoring._quality import QualityOptions, quality_results
from keel.monitoring._reference import Reference, kind_of
from keel.monitoring._report import Correction
from keel.monitoring._results import MonitorResult, ResultStore
from keel.registry import ModelVersion
from keel.serving._predlog import LogReader

if TYPE_CHECKING:
    from keel._workspace import Workspace

WindowStatus = Literal["computed", "not_enough_data", "empty"]


@dataclass(frozen=True)
class _Basis:
    """What an endpoint's windows are compared with, resolved once per run."""

    snapshot: Snapshot
    inputs: Reference
    columns: dict[str, SqlType]
    fields: dict[str, Field]
    version: ModelVersion
    classes: list[Any] | None


@dataclass(frozen=True)
class Windows:
    """How a log is cut into windows: by ``seconds`` or by ``rows`` (exactly one)."""

    seconds: float | None = 3600.0
    rows: int | None = None
    lateness_seconds: float = 60.0

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.rows is None):
            raise MonitoringError(
                "a window is either a duration or a row count", fix="give exactly one"
            )
        if self.seconds is not None and not self.seconds > 0:
            raise MonitoringError(f"a window of {self.seconds} s", fix="give a positive duration")
        if self.rows is not None and self.rows < 1:
            raise MonitoringError(f"a window of {self.rows} rows", fix="give at least 1 row")
        if self.lateness_seconds < 0:
            raise MonitoringError(
                f"lateness of {self.lateness_seconds} s", fix="give 0 or more seconds"
            )


@dataclass(frozen=True)
class WindowOutcome:
    """What a run did with one window."""

    endpoint: str
    start: float
    end: float
    rows: int
    status: WindowStatus
    verdict: str
    drifted_columns: tuple[str, ...] = ()
    results: tuple[MonitorResult, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "status": self.status,
            "verdict": self.verdict,
            "drifted_columns": list(self.drifted_columns),
        }


class MonitorRunner:
    """Computes and stores the monitors of endpoints' windows; see the module doc."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        windows: Windows | None = None,
        reference: str | None = None,
        min_rows: int = DEFAULT_MIN_ROWS,
        correction: Correction = "bh",
        alpha: float = 0.05,
        quality: QualityOptions | None = None,
        label_name: str = "label",
        min_labels: int = 100,
        label_horizon_seconds: float = 7 * 86_400.0,
    ) -> None:
        self.workspace = workspace
        self.windows = windows or Windows()
        self.reference = reference
        self.min_rows = min_rows
        self.correction: Correction = correction
        self.alpha = alpha
        self.quality = quality or QualityOptions()
        self.label_name = label_name
        self.min_labels = min_labels
        self.label_horizon_seconds = label_horizon_seconds
        self.results = ResultStore(workspace.store)
        self._output_references: dict[tuple[str, int], Reference | str] = {}
        settings = workspace.settings
        self.reader = LogReader(settings.project_path(settings.serving.prediction_log_dir))

    def run(
        self, endpoint: str | None = None, *, now: float | None = None, force: bool = False
    ) -> list[WindowOutcome]:
        """Compute every complete window not computed yet (all of them with ``force``) of
        ``endpoint``, or of every endpoint; oldest first per endpoint."""
        names = [endpoint] if endpoint else [e.name for e in self.workspace.deployments.list()]
        current = time.time() if now is None else now
        outcomes: list[WindowOutcome] = []
        for name in names:
            outcomes.extend(self._run_endpoint(name, current, force))
        return outcomes

    def _run_endpoint(self, name: str, current: float, force: bool) -> list[WindowOutcome]:
        basis = self._basis(name)
        computed = {} if force else self.results.computed(name)
        outcomes = []
        for start, end in self._windows(name, current):
            if (start, end) in computed:
                continue
            window = read_window(self.reader, name, start, end, basis.columns, basis.classes or ())
            outcomes.append(self._compute(window, basis, current))
        self._refresh_performance(name, basis, computed, current)
        return outcomes

    def _refresh_performance(
        self,
        name: str,
        basis: _Basis,
        computed: dict[tuple[float, float], float],
        current: float,
    ) -> None:
        """Recompute the performance monitors of windows within the label horizon that
        feedback arrived for since they were last computed."""
        latest = self._latest_feedback(name)
        if latest is None:
            return
        horizon = current - self.label_horizon_seconds
        for (start, end), computed_at in sorted(computed.items()):
            if end < horizon or latest <= computed_at:
                continue
            window = read_window(self.reader, name, start, end, {}, basis.classes or ())
            verdicts = self.results.query(
                name, monitor="drift", subject="", statistic="verdict", since=end, until=end
            )
            input_drift = _input_drift(verdicts[0].status if verdicts else None)
            self.results.replace(
                name, start, end, monitors=PERFORMANCE_MONITORS,
                results=self._performance(window, basis, input_drift), at=current,
            )  # fmt: skip

    def _latest_feedback(self, name: str) -> float | None:
        found = self.reader.query(
            "SELECT epoch_ns(max(time)) AS t FROM feedback WHERE endpoint = ?", [name]
        ).column("t")[0].as_py()  # fmt: skip
        return None if found is None else found / 1e9

    def _performance(
        self, window: LogWindow, basis: _Basis, input_drift: bool | None
    ) -> list[MonitorResult]:
        versions = {v.version: v for v in self.workspace.registry.list_versions(basis.version.name)}
        return performance_results(
            self.reader, window, versions, input_drift=input_drift, classes=basis.classes,
            label_name=self.label_name, min_labels=self.min_labels,
        )  # fmt: skip

    def _compute(self, window: LogWindow, basis: _Basis, current: float) -> WindowOutcome:
        report = drift(
            basis.inputs,
            window.inputs,
            correction=self.correction,
            alpha=self.alpha,
            min_rows=self.min_rows,
        )
        previous = self.results.window_sizes(
            window.endpoint, window.start, self.quality.volume_history * 4
        )
        results = [
            *drift_results(window, report, basis.snapshot.fingerprint),
            *quality_results(window, report, previous, self.quality, basis.fields),
            *self._prediction_drift(window, basis),
            *self._performance(window, basis, _input_drift(report.verdict)),
        ]
        status: WindowStatus = (
            "empty"
            if window.rows == 0
            else "not_enough_data"
            if report.verdict == "not_enough_data"
            else "computed"
        )
        self.results.save(
            window.endpoint, window.start, window.end, rows=window.rows, status=status,
            results=results, at=current,
        )  # fmt: skip
        return WindowOutcome(
            window.endpoint,
            window.start,
            window.end,
            window.rows,
            status,
            report.verdict,
            tuple(report.drifted_columns),
            tuple(results),
        )

    def _windows(self, name: str, current: float) -> Iterator[tuple[float, float]]:
        if self.windows.seconds is not None:
            yield from self._time_windows(name, current, self.windows.seconds)
            return
        span = log_time_range(self.reader, name)
        if span is not None:
            yield from self._row_windows(name, *span)

    def _time_windows(
        self, name: str, current: float, size: float
    ) -> Iterator[tuple[float, float]]:
        # The windows holding answers, and the one after each (an empty window after traffic
        # is what shows an outage), not every window of a gap: months of silence would
        # otherwise be thousands of empty windows to compute.
        found = self.reader.query(
            "SELECT DISTINCT CAST(floor(epoch_ns(time) / 1e9 / ?) AS BIGINT) AS k "
            "FROM predictions WHERE endpoint = ? AND NOT coalesce(shadow, false)",
            [size, name],
        ).column("k").to_pylist()  # fmt: skip
        indices = sorted({k for index in found for k in (index, index + 1)})
        for index in indices:
            start = index * size
            if start + size + self.windows.lateness_seconds <= current:
                yield start, start + size

    def _row_windows(self, name: str, first: float, last: float) -> Iterator[tuple[float, float]]:
        assert self.windows.rows is not None
        # Microseconds: what a window bound (a float of epoch seconds, then a datetime) holds
        # exactly, so rows sharing a microsecond are never split across two windows.
        times = self.reader.query(
            "SELECT epoch_ns(time) // 1000 AS t FROM predictions "
            "WHERE endpoint = ? AND NOT coalesce(shadow, false) ORDER BY time",
            [name],
        ).column("t").to_pylist()  # fmt: skip
        size, begin = self.windows.rows, 0
        while begin + size <= len(times):
            cut = begin + size
            while cut < len(times) and times[cut] == times[cut - 1]:
                cut += 1
            # [start, end): from the window's first row to just past its last one.
            yield times[begin] / 1e6, (times[cut - 1] + 1) / 1e6
            begin = cut

    def _basis(self, name: str) -> _Basis:
        endpoint = self.workspace.deployments.get(name)
        primary = endpoint.policy.primary
        version = self.workspace.registry.get_version(primary.name, primary.version)
        snapshot = self._snapshot(name, list(version.inputs.values()))
        columns: dict[str, SqlType] = {}
        for input_field in version.signature.inputs.fields:
            stored = snapshot.profile.get(input_field.name)
            if input_field.sensitive or stored is None or kind_of(stored.dtype) is None:
                continue
            columns[input_field.name] = sql_type(stored.dtype)
        classes = version.signature.output.get("classes")
        return _Basis(
            snapshot=snapshot,
            inputs=Reference.from_profile(snapshot.profile),
            columns=columns,
            fields={f.name: f for f in version.signature.inputs.fields if f.name in columns},
            version=version,
            classes=None if classes is None else list(classes),
        )

    def _prediction_drift(self, window: LogWindow, basis: _Basis) -> list[MonitorResult]:
        """The window's outputs against the model's on its validation data (see
        :mod:`keel.monitoring._predictions`); a model that cannot be loaded or run here is
        one ``error`` result, not a failed run."""
        key = (basis.version.name, basis.version.version)
        if key not in self._output_references:
            self._output_references[key] = self._outputs_reference(basis)
        reference = self._output_references[key]
        if isinstance(reference, str):
            return [
                MonitorResult(
                    endpoint=window.endpoint,
                    window_start=window.start,
                    window_end=window.end,
                    monitor=PREDICTION_DRIFT,
                    subject="",
                    statistic="verdict",
                    status="error",
                    rows=window.rows,
                    details={"error": reference},
                )
            ]
        report = drift(
            reference,
            window_outputs(window.predictions, basis.classes),
            correction=self.correction,
            alpha=self.alpha,
            min_rows=self.min_rows,
        )
        return drift_results(window, report, basis.version.uri, monitor=PREDICTION_DRIFT)

    def _outputs_reference(self, basis: _Basis) -> Reference | str:
        version = basis.version
        try:
            snapshot = self._snapshot(version.name, pick_validation_input(version.inputs))
            data = self.workspace.snapshots.load(snapshot)
            model = self.workspace.registry.load_version(version)
            names = [f.name for f in version.signature.inputs.fields]
            return Reference.from_data(reference_outputs(model, data, names))
        except Exception as error:  # a model that fails here must not stop input monitoring
            return f"reference outputs of {version.uri}: {type(error).__name__}: {error}"

    def _snapshot(self, endpoint: str, fingerprints: list[str]) -> Snapshot:
        if self.reference is not None:
            return self.workspace.snapshots.get(self.reference)
        for fingerprint in fingerprints:
            try:
                return self.workspace.snapshots.get(fingerprint)
            except KeelError:
                continue
        raise MonitoringError(
            f"endpoint '{endpoint}' has no reference to compare with (its model version was "
            "not trained from a keel snapshot)",
            fix="name one with --reference SNAPSHOT",
        )


def _input_drift(verdict: str | None) -> bool | None:
    return {"drift": True, "no_drift": False}.get(verdict or "")
