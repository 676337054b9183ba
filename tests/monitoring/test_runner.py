"""`keel monitor run`: complete windows of an endpoint's traffic, computed once, stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from keel import Workspace
from keel.errors import KeelError, MonitoringError
from keel.monitoring._runner import MonitorRunner, Windows
from keel.serving._predlog import FeedbackEntry, PredictionEntry, PredictionLog

HOUR = 3600.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a multiple of an hour


def training_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "plan": pd.Categorical(rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])),
        }
    )


@pytest.fixture
def endpoint(workspace: Workspace) -> str:
    frame = training_frame(5_000)
    snapshot = workspace.snapshots.create(frame, name="churn-train")
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["plan"]), remainder=StandardScaler()),
        LogisticRegression(),
    ).fit(frame, frame["age"] > 40)
    with workspace.start_run(experiment="churn") as run:
        run.log_input(snapshot, name="train")
        logged = run.log_model(model, input_example=frame.head(20))
    version = workspace.registry.register("churn", logged)
    workspace.deployments.create_endpoint("churn", version.uri)
    return "churn"


def write_traffic(workspace: Workspace, hours: list[pd.DataFrame], start: float = T0) -> None:
    """Each frame's rows answered by the endpoint's model, spread over one hour each from
    ``start``."""
    directory = workspace.settings.project_path(workspace.settings.serving.prediction_log_dir)
    model = workspace.registry.load("models:/churn/1")
    entries = []
    for hour, frame in enumerate(hours):
        if frame.empty:  # an hour without traffic
            continue
        step = HOUR / (len(frame) + 1)
        try:
            labels, scores = model.predict(frame), model.predict_proba(frame)
        except KeelError:  # inputs the model refuses (the data-quality test): log no answers
            labels, scores = [None] * len(frame), None
        for n, record in enumerate(frame.to_dict("records")):
            entries.append(
                PredictionEntry(
                    prediction_id=f"{hour:08d}-0000-0000-0000-{n:012d}",
                    endpoint="churn",
                    model="churn",
                    model_version=1,
                    inputs={**record, "plan": str(record["plan"])},
                    prediction=None if labels[n] is None else bool(labels[n]),
                    probabilities=None
                    if scores is None
                    else {"False": float(scores[n][0]), "True": float(scores[n][1])},
                    time=int((start + hour * HOUR + (n + 1) * step) * 1e9),
                )
            )
    with PredictionLog(directory, fsync="never") as log:
        log.append_sync(entries)


def test_each_complete_hour_is_one_window_and_a_shifted_one_is_flagged(
    workspace: Workspace, endpoint: str
) -> None:
    shifted = training_frame(2_000, seed=2)
    shifted["age"] += 8
    write_traffic(workspace, [training_frame(2_000, seed=1), shifted, training_frame(500, 3)])
    runner = MonitorRunner(workspace, windows=Windows(seconds=HOUR))
    outcomes = runner.run(endpoint, now=T0 + 3 * HOUR + 120)
    assert [(o.start - T0, o.rows, o.verdict) for o in outcomes] == [
        (0.0, 2_000, "no_drift"),
        (HOUR, 2_000, "drift"),
        (2 * HOUR, 500, "not_enough_data"),
    ]
    assert outcomes[1].drifted_columns == ("age",)
    drifted_rows = runner.results.query(endpoint, monitor="drift", since=T0 + 2 * HOUR)
    # one "drift" row per drifted column: the deciding statistic's (others only flag)
    assert [(r.subject, r.statistic) for r in drifted_rows if r.status == "drift"][1:] == [
        ("age", "ks")
    ]
    ks = runner.results.query(endpoint, monitor="drift", subject="age", statistic="ks")
    assert [r.status for r in ks] == ["ok", "drift"]
    assert (ks[1].p_value or 1.0) < 0.001
    outputs = runner.results.query(endpoint, monitor="prediction_drift", statistic="verdict")
    assert [r.status for r in outputs] == ["no_drift", "drift", "not_enough_data"]
    assert outputs[1].details["drifted_columns"] == ["prediction", "score"]
    small = runner.results.query(endpoint, monitor="drift", subject="age", since=T0 + 3 * HOUR)
    assert [(r.statistic, r.status) for r in small] == [("status", "not_enough_data")]


def test_a_window_still_open_or_within_its_lateness_is_not_computed(
    workspace: Workspace, endpoint: str
) -> None:
    write_traffic(workspace, [training_frame(1_000, seed=1), training_frame(1_000, seed=2)])
    runner = MonitorRunner(workspace, windows=Windows(seconds=HOUR, lateness_seconds=300))
    assert [o.start for o in runner.run(endpoint, now=T0 + 2 * HOUR + 299)] == [T0]


def test_running_twice_computes_nothing_twice_unless_forced(
    workspace: Workspace, endpoint: str
) -> None:
    write_traffic(workspace, [training_frame(1_000, seed=1)])
    runner = MonitorRunner(workspace, windows=Windows(seconds=HOUR))
    first = runner.run(endpoint, now=T0 + 2 * HOUR)
    stored = len(runner.results.query(endpoint))
    assert len(first) == 1
    assert runner.run(endpoint, now=T0 + 2 * HOUR) == []
    assert len(runner.run(endpoint, now=T0 + 2 * HOUR, force=True)) == 1
    assert len(runner.results.query(endpoint)) == stored


def test_a_gap_in_traffic_is_one_empty_window_not_one_per_hour_of_it(
    workspace: Workspace, endpoint: str
) -> None:
    silence = [training_frame(0)] * 98
    write_traffic(workspace, [training_frame(1_000, seed=1), *silence, training_frame(1_000, 2)])
    runner = MonitorRunner(workspace, windows=Windows(seconds=HOUR))
    outcomes = runner.run(endpoint, now=T0 + 200 * HOUR)
    assert [((o.start - T0) / HOUR, o.status) for o in outcomes] == [
        (0, "computed"),
        (1, "empty"),
        (99, "computed"),
        (100, "empty"),
    ]


def test_row_windows_hold_their_row_count(workspace: Workspace, endpoint: str) -> None:
    write_traffic(workspace, [training_frame(2_500, seed=1)])
    runner = MonitorRunner(workspace, windows=Windows(seconds=None, rows=1_000))
    outcomes = runner.run(endpoint, now=T0 + HOUR)
    assert [o.rows for o in outcomes] == [1_000, 1_000]  # the last 500 wait for more
    assert all(o.verdict == "no_drift" for o in outcomes)


def test_a_missing_value_surge_and_text_in_a_numeric_field_are_data_quality_alerts(
    workspace: Workspace, endpoint: str
) -> None:
    frame = training_frame(2_000, seed=1).astype({"income": object})
    frame.loc[:399, "income"] = None
    frame.loc[400:409, "income"] = "n/a"
    write_traffic(workspace, [frame])
    runner = MonitorRunner(workspace, windows=Windows(seconds=HOUR))
    runner.run(endpoint, now=T0 + 2 * HOUR)
    found = {
        (r.subject, r.statistic): r for r in runner.results.query(endpoint, monitor="data_quality")
    }
    assert found[("income", "null_rate")].status == "alert"
    assert found[("income", "null_rate")].value == pytest.approx(410 / 2_000)
    assert found[("income", "invalid")].value == 10
    assert found[("age", "null_rate")].status == "ok"
    assert found[("", "volume")].status == "not_enough_data"


def test_an_endpoint_without_a_training_snapshot_needs_a_named_reference(
    workspace: Workspace,
) -> None:
    frame = training_frame(200)
    model = LogisticRegression().fit(frame[["age", "income"]], frame["age"] > 40)
    version = workspace.registry.register("bare", model, input_example=frame[["age", "income"]])
    workspace.deployments.create_endpoint("bare", version.uri)
    with pytest.raises(MonitoringError, match="--reference"):
        MonitorRunner(workspace).run("bare", now=T0)
    workspace.snapshots.create(frame, name="named")
    assert MonitorRunner(workspace, reference="named").run("bare", now=T0) == []


def test_a_window_is_a_duration_or_a_row_count_never_both(tmp_path: Path) -> None:
    with pytest.raises(MonitoringError, match="exactly one"):
        Windows(seconds=60, rows=100)
    with pytest.raises(MonitoringError, match="positive"):
        Windows(seconds=0)


def write_labels(workspace: Workspace, hour: int, labels: list[bool]) -> None:
    directory = workspace.settings.project_path(workspace.settings.serving.prediction_log_dir)
    with PredictionLog(directory, fsync="never") as log:
        log.append_sync(
            [
                FeedbackEntry(
                    prediction_id=f"{hour:08d}-0000-0000-0000-{n:012d}",
                    value=label,
                    endpoint="churn",
                    time=int((T0 + 2 * HOUR + n) * 1e9),
                )
                for n, label in enumerate(labels)
            ]
        )


def test_labels_arriving_after_a_window_was_computed_add_its_realised_performance(
    workspace: Workspace, endpoint: str
) -> None:
    frame = training_frame(1_000, seed=1)
    write_traffic(workspace, [frame])
    runner = MonitorRunner(workspace, windows=Windows(seconds=HOUR), min_labels=100)
    runner.run(endpoint, now=T0 + 2 * HOUR)
    before = runner.results.query(endpoint, monitor="performance", statistic="labels")
    assert [(r.status, r.value) for r in before] == [("not_enough_data", 0.0)]
    estimated = runner.results.query(endpoint, monitor="estimated_performance", subject="accuracy")
    assert len(estimated) == 1  # from the logged probabilities, before any label
    truth = (frame["age"] > 40).tolist()
    truth[:100] = [not value for value in truth[:100]]  # the model is wrong on these
    write_labels(workspace, 0, truth[:500])

    later = runner.run(endpoint, now=T0 + 3 * HOUR)  # the next hour, empty; the first refreshed
    assert [(o.start, o.status) for o in later] == [(T0 + HOUR, "empty")]
    accuracy = runner.results.query(endpoint, monitor="performance", subject="accuracy")
    assert len(accuracy) == 1
    assert accuracy[0].rows == 500
    model_accuracy = float(
        (workspace.registry.load("models:/churn/1").predict(frame[:500]) == truth[:500]).mean()
    )
    assert accuracy[0].value == pytest.approx(model_accuracy)
    assert runner.results.query(endpoint, monitor="concept_drift")  # a finding was recorded
    assert runner.results.query(endpoint, monitor="drift", subject="", statistic="verdict")
