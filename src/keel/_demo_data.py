"""The quickstart's data: a contract, a snapshot, and training through the feature store.

The breast-cancer measurements that ship with scikit-learn are dressed up as what a hospital
system would deliver: one row per patient measurement with a patient id and a measurement time,
plus two broken rows (a negative radius, a missing texture). The demo validates the delivery
against its schema (broken rows go to a quarantine file), snapshots the valid rows, declares a
feature view over the snapshot, and builds the training frame with a point-in-time join of
diagnoses recorded a week after each measurement. The same view is materialized to the online
store so the champion can score patients from their stored features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from keel._workspace import Workspace
from keel.data import Field, Schema, Snapshot, validate

SNAPSHOT_NAME = "breast-cancer-measurements"
VALIDATION_SNAPSHOT_NAME = "breast-cancer-validation"
VIEW = "tumor"
TARGET = "malignant"
#: what the model is trained on: every view feature and one on-demand feature
FEATURES = [f"{VIEW}:*", "radius_ratio"]
MEASURED_FROM = datetime(2026, 1, 1, tzinfo=UTC)
DIAGNOSIS_DELAY = timedelta(days=7)

Report = Callable[[str], None]


@dataclass(frozen=True)
class DemoData:
    """What the data half of the demo produced."""

    train: pd.DataFrame
    valid: pd.DataFrame
    y_train: pd.Series[Any]
    y_valid: pd.Series[Any]
    snapshot: Snapshot
    validation_snapshot: Snapshot
    """The validation rows with their diagnoses, as a snapshot."""
    quarantined: int
    quarantine_path: Path | None
    features: list[str]


def _column(name: str) -> str:
    return name.replace(" ", "_")


def measurements() -> tuple[pd.DataFrame, pd.Series[Any]]:
    """The delivery: 569 measurements plus two broken rows, and each patient's diagnosis."""
    data = load_breast_cancer(as_frame=True)
    frame: pd.DataFrame = data.data.rename(columns=_column)
    frame.insert(0, "patient_id", np.arange(1, len(frame) + 1, dtype="int64"))
    frame.insert(1, "measured_at", MEASURED_FROM + pd.to_timedelta(np.arange(len(frame)), unit="h"))
    # scikit-learn codes malignant as 0; the demo predicts malignancy, the class that matters.
    diagnosis = pd.Series((data.target == 0).astype(int).to_numpy(), name=TARGET)
    broken = frame.iloc[:2].copy()
    broken["patient_id"] = [len(frame) + 1, len(frame) + 2]
    broken.loc[broken.index[0], "mean_radius"] = -3.0
    broken.loc[broken.index[1], "mean_texture"] = np.nan
    return pd.concat([frame, broken], ignore_index=True), diagnosis


def diagnoses(patients: Sequence[int]) -> list[int]:
    """Each patient's diagnosis (1: malignant): the outcome the demo reports as feedback."""
    _, diagnosis = measurements()
    return [int(diagnosis.iloc[patient - 1]) for patient in patients]


def measurement_schema(frame: pd.DataFrame) -> Schema:
    """The contract of a delivery, declared once: ids, times, non-negative measurements."""
    measures = [c for c in frame.columns if c not in ("patient_id", "measured_at")]
    return Schema(
        (
            Field("patient_id", "int", min=1),
            Field("measured_at", "timestamp"),
            *(Field(name, "float", min=0.0) for name in measures),
        )
    )


FEATURES_MODULE = '''"""Feature definitions of the keel demo project, written by `keel demo`.

`keel features apply` records them; `keel features materialize tumor` fills the online store.
"""

from datetime import timedelta

import pandas as pd

from keel.data import Field
from keel.features import Entity, FeatureView, OnDemandFeature, SnapshotSource

MEASUREMENTS = {measurements!r}

patient = Entity("patient", join_keys=("patient_id",))

tumor = FeatureView(
    name="{view}",
    entities=(patient,),
    source=SnapshotSource("{snapshot}"),  # the newest snapshot of that name
    timestamp_column="measured_at",
    ttl=timedelta(days=3650),
    features=tuple(Field(name, "float") for name in MEASUREMENTS),
    description="cell-nucleus measurements of each patient's biopsy",
)


def radius_ratio_of(frame: pd.DataFrame) -> pd.DataFrame:
    """Worst radius over mean radius: how far the largest cells stray from the typical."""
    return pd.DataFrame({{"radius_ratio": frame["worst_radius"] / frame["mean_radius"]}})


radius_ratio = OnDemandFeature(
    name="radius_ratio",
    inputs=("{view}:worst_radius", "{view}:mean_radius"),
    outputs=(Field("radius_ratio", "float"),),
    function=radius_ratio_of,
)
'''


def write_definitions(project: Path, measures: list[str]) -> Path | None:
    """Write the demo's ``features.py`` unless the project already has one (it may be edited)."""
    path = project / "features.py"
    if path.exists():
        return None
    text = FEATURES_MODULE.format(measurements=measures, view=VIEW, snapshot=SNAPSHOT_NAME)
    path.write_text(text, encoding="utf-8")
    return path


def prepare(workspace: Workspace, report: Report, *, seed: int) -> DemoData:
    """Validate, snapshot, declare and join: the training and validation frames."""
    delivery, diagnosis = measurements()
    schema = measurement_schema(delivery)
    quarantine = workspace.settings.project_path(".keel/quarantine")
    checked = validate(delivery, schema, mode="drop", quarantine_dir=quarantine)
    report(
        f"validated {len(delivery)} delivered rows against their schema: "
        f"{checked.report.invalid_count} broken rows quarantined to {checked.quarantine_path}"
    )
    snapshot = workspace.snapshots.create(checked.valid, SNAPSHOT_NAME)
    report(
        f"snapshot {SNAPSHOT_NAME} {snapshot.fingerprint[:16]}: {snapshot.num_rows} rows, "
        "schema, profile and lineage recorded"
    )
    measures = [c for c in delivery.columns if c not in ("patient_id", "measured_at")]
    written = write_definitions(workspace.settings.project_dir, measures)
    if written is not None:
        report(f"wrote the feature definitions to {written}")
    features = workspace.features
    [applied] = features.apply()
    labels = pd.DataFrame(
        {
            "patient_id": checked.valid["patient_id"].to_numpy(),
            "diagnosed_at": checked.valid["measured_at"] + DIAGNOSIS_DELAY,
            TARGET: diagnosis.to_numpy()[: len(checked.valid)],
        }
    )
    frame = features.get_training_frame(labels, FEATURES, timestamp_column="diagnosed_at")
    report(
        f"feature view {VIEW} v{applied.version}: point-in-time join of {len(labels)} "
        f"diagnoses with their measurements ({int(frame[f'{VIEW}__found'].sum())} found)"
    )
    inputs = frame.drop(columns=["patient_id", "diagnosed_at", TARGET, f"{VIEW}__found"])
    target = frame[TARGET]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))
    cut = int(len(frame) * 0.75)
    train, valid = order[:cut], order[cut:]
    validation = workspace.snapshots.create(
        inputs.iloc[valid].assign(**{TARGET: target.iloc[valid].to_numpy()}),
        VALIDATION_SNAPSHOT_NAME,
    )
    return DemoData(
        train=inputs.iloc[train],
        valid=inputs.iloc[valid],
        y_train=target.iloc[train],
        y_valid=target.iloc[valid],
        snapshot=snapshot,
        validation_snapshot=validation,
        quarantined=checked.report.invalid_count,
        quarantine_path=checked.quarantine_path,
        features=FEATURES,
    )


def serve_from_online_store(
    workspace: Workspace, uri: str, patients: list[int], report: Report
) -> pd.DataFrame:
    """Materialize the view and score ``patients`` with the model at ``uri`` from their stored
    features, the way a serving endpoint given only patient ids would."""
    features = workspace.features
    result = features.materialize(VIEW)
    report(
        f"materialized {VIEW} into the online store {features.online.url}: "
        f"{result.rows_written} patients written"
    )
    # recorded whatever the sampling rate, so `keel features skew` has these lookups to check
    online = features.get_online_features(
        [{"patient_id": p} for p in patients], FEATURES, record=True
    )
    model = workspace.registry.load(uri)
    proba = model.predict_proba(online.frame)
    assert proba is not None, "the demo's models are classifiers"
    scored = pd.DataFrame({"patient_id": patients, "p_malignant": proba[:, 1]})
    listing = ", ".join(
        f"patient {row.patient_id}: {row.p_malignant:.3f}" for row in scored.itertuples()
    )
    report(f"scored from online features with {uri}: {listing}")
    return scored
