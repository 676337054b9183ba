"""The monitoring part of ``keel demo``: shifted traffic, detected as drift and alerted on.

    shown = show_monitoring(workspace, server.url, report)   # the demo server is running

A second hospital starts sending patients, measured on a scanner that reads every size 25 %
larger (radius, perimeter, area). Its measurements arrive as a new delivery of the
measurements snapshot and are materialized to the online store, as the first ones were; then:

1. the endpoint scores ``WINDOW_ROWS`` patients of the first hospital and ``WINDOW_ROWS`` of
   the second over HTTP, by patient id, as any client would;
2. ``keel monitor run`` cuts the log into windows of ``WINDOW_ROWS`` answers and compares each
   with the champion's training snapshot: the first hospital's window shows no drift, the
   second's the size columns drifted (and the model's scores with them);
3. the alert rules fire an alert carrying its evidence (the statistic, its p-value, the top
   drifting columns), which ``keel alerts list`` shows and a person can acknowledge;
4. the monitoring report of the endpoint is written as one HTML page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from keel._demo import MODEL_NAME, SEED
from keel._demo_data import SNAPSHOT_NAME, TARGET, VIEW, Report, measurements
from keel._demo_http import post_json
from keel._workspace import Workspace
from keel.monitoring import MonitorRunner, Windows
from keel.monitoring._alert_store import Alert
from keel.monitoring._alerting import alert_evaluator
from keel.monitoring._report_data import gather_report
from keel.monitoring._report_html import render_report
from keel.monitoring._runner import WindowOutcome
from keel.serving._predlog import LogReader

ENDPOINT = MODEL_NAME
PREDICT_PATH = f"/v1/endpoints/{ENDPOINT}/predict"
WINDOW_ROWS = 300
BATCH = 50
#: the second hospital's patients are numbered from here
NEW_PATIENTS_FROM = 100_001
#: what its scanner does to every size measurement
SCANNER_SCALE = 1.25
SIZE_COLUMNS = ("radius", "perimeter", "area")
REPORT_PATH = ".keel/reports/breast-cancer.html"


@dataclass(frozen=True)
class Monitored:
    """What the monitoring step showed."""

    windows: tuple[WindowOutcome, ...]
    alerts: tuple[Alert, ...]
    report: Path
    """The HTML monitoring report of the endpoint."""

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c for window in self.windows for c in window.drifted_columns)


def show_monitoring(workspace: Workspace, url: str, report: Report) -> Monitored:
    """Send the two hospitals' traffic, compute the windows, evaluate the alert rules."""
    new_patients = deliver_second_hospital(workspace, report)
    reader = LogReader(
        workspace.settings.project_path(workspace.settings.serving.prediction_log_dir)
    )
    # Windows are counted from the first answer of the endpoint: pad the first hospital's
    # traffic so the second's starts exactly on a window boundary.
    answered = _answered(reader)
    first_hospital = (WINDOW_ROWS - answered % WINDOW_ROWS) % WINDOW_ROWS + WINDOW_ROWS
    original = [int(p) for p in measurements()[0]["patient_id"].iloc[:-2]]
    # A random draw of its patients: a representative sample of the reference population.
    rng = np.random.default_rng(SEED)
    _score(url, [int(p) for p in rng.choice(original, size=first_hospital)])
    report(f"POST {PREDICT_PATH}: {first_hospital} patients of the first hospital, by id")
    _score(url, new_patients[:WINDOW_ROWS])
    report(
        f"POST {PREDICT_PATH}: {WINDOW_ROWS} patients of the second hospital, whose scanner "
        f"reads sizes x{SCANNER_SCALE}"
    )
    runner = MonitorRunner(
        workspace,
        windows=Windows(seconds=None, rows=WINDOW_ROWS),
        min_rows=WINDOW_ROWS // 2,
        label_name=TARGET,
    )
    windows = runner.run(ENDPOINT)
    for window in windows[-2:]:
        drifted = ", ".join(window.drifted_columns[:4]) or "none"
        more = len(window.drifted_columns) - 4
        report(
            f"monitor window of {window.rows} answers: {window.verdict} "
            f"(drifted: {drifted}{f' and {more} more' if more > 0 else ''})"
        )
    settings = workspace.settings
    evaluator = alert_evaluator(workspace.store, settings.monitoring, settings.actor)
    fired = evaluator.evaluate(endpoint=ENDPOINT).fired  # the log sink prints each one
    if fired:
        report(
            f"the alert rules fired {len(fired)} alert(s), each with its evidence: "
            "`keel alerts list`, then `keel alerts ack ID` to take one in hand"
        )
    report_path = settings.project_path(REPORT_PATH)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    page = render_report(gather_report(workspace, ENDPOINT, now=time.time()))
    report_path.write_text(page, encoding="utf-8")
    report(f"monitoring report written to {report_path} (`keel monitor report {ENDPOINT}`)")
    return Monitored(tuple(windows), tuple(fired), report_path)


def deliver_second_hospital(workspace: Workspace, report: Report) -> list[int]:
    """A new delivery of the measurements snapshot with the second hospital's patients,
    materialized to the online store; their patient ids."""
    delivered, _ = measurements()
    valid = delivered.iloc[:-2]  # the two broken rows of the first delivery stay out
    new = valid.copy()
    new["patient_id"] = NEW_PATIENTS_FROM + pd.RangeIndex(len(new))
    # Measured now: after the first delivery was materialized, so the incremental
    # materialization below picks exactly the new patients up.
    measured = datetime.now(UTC)
    new["measured_at"] = measured
    sizes = [c for c in new.columns if any(word in c for word in SIZE_COLUMNS)]
    new[sizes] = new[sizes] * SCANNER_SCALE
    snapshot = workspace.snapshots.create(pd.concat([valid, new], ignore_index=True), SNAPSHOT_NAME)
    written = workspace.features.materialize(VIEW, end=measured + timedelta(seconds=1)).rows_written
    report(
        f"snapshot {SNAPSHOT_NAME} {snapshot.fingerprint[:16]}: a second hospital's "
        f"{len(new)} patients (sizes x{SCANNER_SCALE}); {written} materialized online"
    )
    return [int(p) for p in new["patient_id"]]


def _score(url: str, patients: list[int]) -> None:
    for start in range(0, len(patients), BATCH):
        chosen = patients[start : start + BATCH]
        post_json(url + PREDICT_PATH, {"inputs": [{"patient_id": p} for p in chosen]})


def _answered(reader: LogReader) -> int:
    found = reader.query(
        "SELECT count(*) AS n FROM predictions WHERE endpoint = ? AND NOT coalesce(shadow, false)",
        [ENDPOINT],
    )
    return int(found.column("n")[0].as_py())
