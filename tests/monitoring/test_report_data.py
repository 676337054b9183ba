"""What the report gathers matches what the monitors stored, most drifted column first."""

from __future__ import annotations

import numpy as np
import pytest

from keel import Workspace
from keel.errors import EndpointNotFound
from keel.monitoring import AlertStore, MonitorRunner, ResultStore, Windows
from keel.monitoring._report_data import gather_report
from monitoring.report_helpers import SHIFTED_HOURS, STEADY_HOURS, monitored_history
from monitoring.test_runner import HOUR, T0, training_frame, write_traffic
from monitoring.test_runner import endpoint as endpoint  # the fixture, re-exported

NOW = T0 + 300 * 86_400  # long after the traffic: the default range follows the last window
WINDOWS = STEADY_HOURS + SHIFTED_HOURS


def test_the_shifted_columns_come_first_with_the_stored_scores(
    workspace: Workspace, endpoint: str
) -> None:
    end = monitored_history(workspace)
    data = gather_report(workspace, endpoint, now=NOW)
    assert (data.since, data.until) == (end - 7 * 86_400, end)
    assert [w.status for w in data.windows] == ["no_drift"] * STEADY_HOURS + ["drift"] * 3
    assert data.latest is not None
    assert set(data.latest.drifted_columns) == {"age", "plan"}
    assert [c.name for c in data.columns][2:] == ["income"]
    assert {c.name for c in data.columns[:2]} == {"age", "plan"}
    age = next(c for c in data.columns if c.name == "age")
    stored = ResultStore(workspace.store).query(endpoint, monitor="drift", subject="age")
    ks = [r for r in stored if r.statistic == "ks"]
    assert (age.statistic, age.kind, age.limit) == ("ks", "p_value", 0.05)
    assert [(p.value, p.p_value, p.status) for p in age.points] == [
        (r.value, r.p_value, r.status) for r in ks
    ]
    assert age.drifted_windows == SHIFTED_HOURS
    assert age.points[-1].strength is not None
    assert age.points[-1].strength > 1
    assert data.columns[-1].latest is not None
    assert data.columns[-1].latest.status == "ok"
    assert data.model == "churn v1"
    assert data.reference.startswith("churn-train (")
    assert (data.alpha, data.correction) == (0.05, "bh")


def test_the_latest_window_is_binned_like_its_reference(
    workspace: Workspace, endpoint: str
) -> None:
    monitored_history(workspace)
    data = gather_report(workspace, endpoint, now=NOW)
    profile = workspace.snapshots.get("churn-train").profile
    histogram = profile["age"].histogram
    assert histogram is not None
    age, plan = data.distributions["age"], data.distributions["plan"]
    # the reference side is the profile's own bins (plus below/above when either side has any)
    inner = [i for i, label in enumerate(age.labels) if label[0] not in "<>("]
    assert [age.reference[i] * age.reference_rows for i in inner] == pytest.approx(
        list(histogram.counts)
    )
    assert age.reference_rows == histogram.total
    assert (age.kind, age.current_rows) == ("numeric", 1_000)
    assert sum(age.current) == pytest.approx(1.0)
    # the current window sits 8 years higher: its mass is further right than the reference's
    positions = np.arange(len(age.labels))
    assert np.dot(positions, age.current) > np.dot(positions, age.reference) + 0.5
    assert plan.kind == "categorical"
    assert set(plan.labels) == {"basic", "plus", "pro"}
    pro = plan.labels.index("pro")
    assert plan.current[pro] > plan.reference[pro] + 0.2
    assert plan.reference_rows == 5_000
    assert plan.current_rows == 1_000


def test_performance_quality_and_alerts_are_gathered_firing_first(
    workspace: Workspace, endpoint: str
) -> None:
    monitored_history(workspace)
    alerts = AlertStore(workspace.store, actor="tester")
    firing = alerts.list(endpoint=endpoint, state="firing")
    assert len(firing) >= 2
    alerts.ack(firing[0].id)
    data = gather_report(workspace, endpoint, now=NOW)
    states = [a.state for a in data.alerts]
    assert states == sorted(states, key=["firing", "acknowledged", "resolved"].index)
    assert states.count("acknowledged") == 1
    assert data.firing == len(firing) - 1
    accuracy = next(s for s in data.performance if s.metric == "accuracy")
    assert accuracy.model_version == 1
    assert len(accuracy.realised) == len(accuracy.estimated) == WINDOWS
    stored = ResultStore(workspace.store).query(
        endpoint, monitor="performance", statistic="accuracy"
    )
    assert [p.value for p in accuracy.realised] == [r.value for r in stored]
    band = accuracy.estimated[-1]
    assert band.low is not None
    assert band.high is not None
    assert band.low <= band.high
    assert {(r.subject, r.statistic) for r in data.quality} >= {
        ("", "volume"),
        ("age", "null_rate"),
    }
    assert {r.window_end for r in data.quality} == {data.until}
    assert next(s.name for s in data.predictions) in {"prediction", "score"}
    assert data.prediction_verdicts[-1].status == "drift"
    assert data.slo == ()


def test_a_range_before_any_window_is_empty_and_an_unknown_endpoint_an_error(
    workspace: Workspace, endpoint: str
) -> None:
    empty = gather_report(workspace, endpoint, now=NOW)  # no traffic yet
    assert (empty.windows, empty.columns, empty.distributions) == ((), (), {})
    assert empty.until == NOW
    monitored_history(workspace)
    before = gather_report(workspace, endpoint, since=T0 - 2 * HOUR, until=T0 - HOUR, now=NOW)
    assert before.windows == ()
    assert before.performance == ()
    last_hour = gather_report(workspace, endpoint, span_seconds=HOUR, now=NOW)
    assert len(last_hour.windows) == 1  # the range's start is the end of the window before
    with pytest.raises(EndpointNotFound):
        gather_report(workspace, "nobody", now=NOW)


def test_a_quality_alert_in_an_earlier_window_is_kept_next_to_the_latest_findings(
    workspace: Workspace, endpoint: str
) -> None:
    surge = training_frame(1_000, seed=1).astype({"income": object})
    surge.loc[:299, "income"] = None
    write_traffic(workspace, [surge, training_frame(1_000, seed=2)])
    MonitorRunner(workspace, windows=Windows(seconds=HOUR)).run(endpoint, now=T0 + 3 * HOUR)
    data = gather_report(workspace, endpoint, now=NOW)
    latest = {(r.subject, r.statistic): r.status for r in data.quality}
    assert latest[("income", "null_rate")] == "ok"
    # the nulls also break the schema: the model was trained on a column without any
    assert sorted((q.subject, q.statistic, q.windows, q.last_end) for q in data.quality_alerts) == [
        ("income", "null_rate", 1, T0 + HOUR),
        ("income", "out_of_schema", 1, T0 + HOUR),
    ]
    # neither the reference nor the latest window has a null: no null bar to draw
    assert "(null)" not in data.distributions["income"].labels
