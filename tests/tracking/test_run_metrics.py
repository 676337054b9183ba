"""Metrics: steps, history, the latest value per key, and buffered writes."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

import numpy as np
import pytest
import sqlalchemy as sa

from keel import Workspace
from keel.errors import KeelError, TrackingError
from keel.store import _tables as t
from keel.tracking import FINISHED, MetricPoint

MakeWorkspace = Callable[..., Workspace]


def stored_metric_count(workspace: Workspace, run_id: str) -> int:
    """Metric values of ``run_id`` that reached the database (not those still buffered)."""
    with workspace.store.read() as connection:
        count = connection.execute(
            sa.select(sa.func.count()).where(t.run_metrics.c.run_id == run_id)
        ).scalar_one()
    return int(count)


# -- steps, timestamps and history -----------------------------------------------------------------


def test_explicit_steps_and_timestamps_are_recorded(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        run.log_metric("loss", 0.5, step=10, timestamp=1_700_000_000.5)
        run.log_metric("loss", 0.25, step=20, timestamp=1_700_000_060.0)

    history = workspace.runs.metric_history(run.id, "loss")

    assert history == [
        MetricPoint(step=10, value=0.5, timestamp=1_700_000_000.5),
        MetricPoint(step=20, value=0.25, timestamp=1_700_000_060.0),
    ]


def test_values_logged_without_a_timestamp_get_the_current_time(workspace: Workspace) -> None:
    before = time.time()
    with workspace.start_run() as run:
        run.log_metric("loss", 0.5)
    after = time.time()

    [point] = workspace.runs.metric_history(run.id, "loss")

    assert before <= point.timestamp <= after


def test_steps_count_up_from_zero_separately_for_each_key(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        for value in (0.9, 0.8, 0.7):
            run.log_metric("loss", value)
        for value in (0.5, 0.6):
            run.log_metric("acc", value)

    loss_steps = [p.step for p in workspace.runs.metric_history(run.id, "loss")]
    acc_steps = [p.step for p in workspace.runs.metric_history(run.id, "acc")]

    assert (loss_steps, acc_steps) == ([0, 1, 2], [0, 1])


def test_automatic_steps_continue_after_the_highest_explicit_step(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        run.log_metric("loss", 0.9, step=10)
        run.log_metric("loss", 0.8, step=4)
        run.log_metric("loss", 0.7)

    steps = [p.step for p in workspace.runs.metric_history(run.id, "loss")]

    assert steps == [4, 10, 11]


def test_log_metrics_logs_every_key_at_the_given_step(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        run.log_metrics({"loss": 0.3, "acc": 0.8}, step=5)

    history = {
        key: [(p.step, p.value) for p in workspace.runs.metric_history(run.id, key)]
        for key in ("loss", "acc")
    }

    assert history == {"loss": [(5, 0.3)], "acc": [(5, 0.8)]}


def test_metric_history_is_in_step_order(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        for step in (5, 1, 3, 2, 4):
            run.log_metric("loss", step / 10, step=step)

    history = workspace.runs.metric_history(run.id, "loss")

    assert [(p.step, p.value) for p in history] == [(s, s / 10) for s in range(1, 6)]


def test_metric_history_of_a_key_never_logged_is_empty(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        run.log_metric("loss", 0.5)

    assert workspace.runs.metric_history(run.id, "acc") == []


# -- the latest value per key ----------------------------------------------------------------------


def test_run_keeps_the_last_logged_value_of_each_key(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        for value in (0.9, 0.5, 0.7):
            run.log_metric("loss", value)
        run.log_metric("acc", 0.8)

    assert workspace.runs.get(run.id).metrics == {"loss": 0.7, "acc": 0.8}


@pytest.mark.parametrize("flush_between", [False, True], ids=["same-batch", "separate-batches"])
def test_a_lower_step_logged_later_does_not_replace_the_latest_value(
    workspace: Workspace, flush_between: bool
) -> None:
    with workspace.start_run() as run:
        run.log_metric("loss", 0.2, step=10)
        if flush_between:
            run.flush()
        run.log_metric("loss", 0.9, step=3)

    assert workspace.runs.get(run.id).metrics == {"loss": 0.2}


@pytest.mark.parametrize("flush_between", [False, True], ids=["same-batch", "separate-batches"])
def test_a_later_value_at_the_same_step_replaces_the_latest_value(
    workspace: Workspace, flush_between: bool
) -> None:
    with workspace.start_run() as run:
        run.log_metric("loss", 0.5, step=2, timestamp=100.0)
        if flush_between:
            run.flush()
        run.log_metric("loss", 0.4, step=2, timestamp=200.0)

    assert workspace.runs.get(run.id).metrics == {"loss": 0.4}


def test_latest_values_of_two_runs_are_kept_apart(workspace: Workspace) -> None:
    with workspace.start_run() as first:
        first.log_metric("loss", 0.1, step=100)
    with workspace.start_run() as second:
        second.log_metric("loss", 0.9, step=1)

    assert workspace.runs.get(second.id).metrics == {"loss": 0.9}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_raise_tracking_error_and_are_not_recorded(
    workspace: Workspace, value: float
) -> None:
    with (
        workspace.start_run() as run,
        pytest.raises(TrackingError, match="metric 'loss'.*not a finite number"),
    ):
        run.log_metric("loss", value)

    assert workspace.runs.metric_history(run.id, "loss") == []


def test_numpy_and_integer_values_are_stored_as_floats(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        run.log_metric("count", 3)
        run.log_metric("auc", np.float32(0.5))

    assert workspace.runs.get(run.id).metrics == {"count": 3.0, "auc": 0.5}


# -- buffering -------------------------------------------------------------------------------------


def test_values_stay_buffered_until_the_batch_is_full(
    tracking_workspace: MakeWorkspace,
) -> None:
    workspace = tracking_workspace(metric_batch_size=100, metric_flush_seconds=3600)
    with workspace.start_run() as run:
        for step in range(99):
            run.log_metric("loss", 1.0, step=step)

        assert stored_metric_count(workspace, run.id) == 0


def test_the_value_that_fills_the_batch_writes_it(tracking_workspace: MakeWorkspace) -> None:
    workspace = tracking_workspace(metric_batch_size=100, metric_flush_seconds=3600)
    with workspace.start_run() as run:
        for step in range(100):
            run.log_metric("loss", 1.0, step=step)

        assert stored_metric_count(workspace, run.id) == 100


def test_flush_writes_buffered_values_immediately(tracking_workspace: MakeWorkspace) -> None:
    workspace = tracking_workspace(metric_batch_size=100, metric_flush_seconds=3600)
    with workspace.start_run() as run:
        for step in range(7):
            run.log_metric("loss", 1.0, step=step)
        run.flush()

        assert stored_metric_count(workspace, run.id) == 7
        assert workspace.runs.get(run.id).metrics == {"loss": 1.0}


def test_end_writes_the_values_still_buffered(tracking_workspace: MakeWorkspace) -> None:
    workspace = tracking_workspace(metric_batch_size=100, metric_flush_seconds=3600)
    with workspace.start_run() as run:
        for step in range(150):
            run.log_metric("loss", float(step), step=step)

    assert stored_metric_count(workspace, run.id) == 150
    assert workspace.runs.get(run.id).metrics == {"loss": 149.0}


def test_a_failed_run_still_writes_its_buffered_values(tracking_workspace: MakeWorkspace) -> None:
    workspace = tracking_workspace(metric_batch_size=100, metric_flush_seconds=3600)
    run = workspace.start_run()
    run.log_metric("loss", 0.5)
    with pytest.raises(RuntimeError), run:
        raise RuntimeError("crash")

    assert stored_metric_count(workspace, run.id) == 1


def test_zero_flush_seconds_writes_every_value_as_it_is_logged(
    tracking_workspace: MakeWorkspace,
) -> None:
    workspace = tracking_workspace(metric_batch_size=100, metric_flush_seconds=0)
    with workspace.start_run() as run:
        run.log_metric("loss", 0.9)

        assert stored_metric_count(workspace, run.id) == 1


def test_ten_thousand_values_all_arrive(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        for step in range(5_000):
            run.log_metrics({"loss": 1 / (step + 1), "lr": step * 1e-4})

    record = workspace.runs.get(run.id)
    loss = workspace.runs.metric_history(run.id, "loss")

    assert stored_metric_count(workspace, run.id) == 10_000
    assert [p.step for p in loss] == list(range(5_000))
    assert record.metrics == {"loss": 1 / 5_000, "lr": 4_999 * 1e-4}


def test_a_buffered_value_is_written_once_older_than_the_age_limit(
    tracking_workspace: MakeWorkspace,
) -> None:
    workspace = tracking_workspace(metric_batch_size=100, metric_flush_seconds=0.1)
    with workspace.start_run() as run:
        run.log_metric("loss", 0.9)
        time.sleep(0.4)

        assert stored_metric_count(workspace, run.id) == 1


# -- keys the database cannot hold -----------------------------------------------------------------

TOO_LONG_KEY = "k" * 300  # run_metrics.key is VARCHAR(255)


def test_a_metric_key_too_long_for_the_database_is_rejected_when_logged(
    workspace: Workspace,
) -> None:
    run = workspace.start_run()
    try:
        with pytest.raises(TrackingError):
            run.log_metric(TOO_LONG_KEY, 1.0)
    finally:
        run.end()


def test_one_unwritable_metric_does_not_lose_the_other_metrics(workspace: Workspace) -> None:
    run = workspace.start_run()
    run.log_metric("loss", 0.5)
    with contextlib.suppress(KeelError):
        run.log_metric(TOO_LONG_KEY, 1.0)
        run.flush()
    run.log_metric("loss", 0.4)
    with contextlib.suppress(KeelError):
        run.end()

    record = workspace.runs.get(run.id)

    assert (record.status, record.metrics.get("loss")) == (FINISHED, 0.4)
