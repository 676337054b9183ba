"""A run's params, tags and lifecycle, and ``keel.start_run`` in a project directory."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import keel
from keel import Run, Workspace
from keel.errors import RunNotActive, TrackingError
from keel.tracking import FAILED, FINISHED, KILLED, RUNNING

# -- params ----------------------------------------------------------------------------------------


def test_params_given_at_start_and_logged_later_are_recorded(workspace: Workspace) -> None:
    with workspace.start_run(experiment="churn", params={"C": 0.5, "penalty": "l2"}) as run:
        run.log_param("max_iter", 200)
        run.log_params({"solver": "lbfgs"})

    params = workspace.runs.get(run.id).params

    assert params == {"C": "0.5", "penalty": "l2", "max_iter": "200", "solver": "lbfgs"}


def test_logging_the_same_param_value_twice_is_accepted(workspace: Workspace) -> None:
    with workspace.start_run(params={"C": 1.0}) as run:
        run.log_param("C", 1.0)
        run.log_params({"C": "1.0"})  # the same once stringified

    assert workspace.runs.get(run.id).params == {"C": "1.0"}


def test_logging_a_different_value_for_a_param_raises_tracking_error(
    workspace: Workspace,
) -> None:
    with (
        workspace.start_run(params={"C": 1.0}) as run,
        pytest.raises(TrackingError, match="param 'C'.*already '1.0'"),
    ):
        run.log_param("C", 2.0)

    assert workspace.runs.get(run.id).params == {"C": "1.0"}


def test_param_values_are_stored_as_their_string_form(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        run.log_params({"n": 3, "rate": 0.25, "flag": True, "nothing": None, "layers": [64, 32]})

    params = workspace.runs.get(run.id).params

    assert params == {
        "n": "3",
        "rate": "0.25",
        "flag": "True",
        "nothing": "None",
        "layers": "[64, 32]",
    }


def test_params_of_a_rejected_call_can_still_be_logged(workspace: Workspace) -> None:
    with workspace.start_run(params={"C": 1.0}) as run:
        with pytest.raises(TrackingError):
            run.log_params({"alpha": 0.1, "C": 2.0})
        run.log_param("alpha", 0.1)

    assert workspace.runs.get(run.id).params == {"C": "1.0", "alpha": "0.1"}


# -- tags ------------------------------------------------------------------------------------------


def test_tags_are_recorded_as_strings(workspace: Workspace) -> None:
    with workspace.start_run(tags={"team": "risk"}) as run:
        run.set_tag("attempt", 2)
        run.set_tags({"gpu": False})

    tags = workspace.runs.get(run.id).tags

    assert tags == {"team": "risk", "attempt": "2", "gpu": "False"}


def test_setting_a_tag_again_replaces_its_value(workspace: Workspace) -> None:
    with workspace.start_run(tags={"stage": "draft"}) as run:
        run.set_tag("stage", "final")

    assert workspace.runs.get(run.id).tags == {"stage": "final"}


# -- what a run records about itself ---------------------------------------------------------------


def test_run_records_experiment_default_name_and_actor(workspace: Workspace) -> None:
    with workspace.start_run(experiment="churn") as run:
        pass

    record = workspace.runs.get(run.id)

    assert (record.experiment, record.name, record.actor) == (
        "churn",
        f"run-{run.id[:8]}",
        "tester",
    )


def test_run_records_the_name_it_is_given(workspace: Workspace) -> None:
    with workspace.start_run(experiment="churn", name="baseline") as run:
        pass

    assert workspace.runs.get(run.id).name == "baseline"


def test_run_ids_are_unique(workspace: Workspace) -> None:
    ids = set()
    for _ in range(3):
        with workspace.start_run() as run:
            ids.add(run.id)

    assert len(ids) == 3


# -- lifecycle -------------------------------------------------------------------------------------


def test_run_is_running_with_no_end_until_it_ends(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        record = workspace.runs.get(run.id)

    assert (record.status, record.ended_at, run.status) == (RUNNING, None, FINISHED)


def test_run_used_as_context_manager_ends_finished_with_an_end_time(
    workspace: Workspace,
) -> None:
    before = time.time()
    with workspace.start_run() as run:
        pass

    record = workspace.runs.get(run.id)

    assert record.status == FINISHED
    assert record.error is None
    assert record.ended_at is not None
    assert before <= record.started_at <= record.ended_at <= time.time()


def test_exception_in_the_block_marks_the_run_failed_with_the_error_and_is_reraised(
    workspace: Workspace,
) -> None:
    with pytest.raises(ValueError, match="bad fold"), workspace.start_run() as run:
        raise ValueError("bad fold")

    record = workspace.runs.get(run.id)

    assert record.status == FAILED
    assert record.error is not None
    assert record.error.startswith("ValueError: bad fold")
    assert "Traceback" in record.error
    assert record.ended_at is not None


def test_keyboard_interrupt_marks_the_run_killed_and_is_reraised(workspace: Workspace) -> None:
    with pytest.raises(KeyboardInterrupt), workspace.start_run() as run:
        raise KeyboardInterrupt

    record = workspace.runs.get(run.id)

    assert record.status == KILLED
    assert record.error is not None
    assert "KeyboardInterrupt" in record.error


def test_end_records_the_status_and_error_it_is_given(workspace: Workspace) -> None:
    run = workspace.start_run()
    run.end(FAILED, "diverged")

    record = workspace.runs.get(run.id)

    assert (record.status, record.error) == (FAILED, "diverged")


def test_ending_an_ended_run_again_keeps_its_first_status(workspace: Workspace) -> None:
    run = workspace.start_run()
    run.end()
    run.end(FAILED, "too late")

    record = workspace.runs.get(run.id)

    assert (record.status, record.error) == (FINISHED, None)


LOGGING_CALLS: dict[str, Callable[[Run], object]] = {
    "log_param": lambda run: run.log_param("C", 1),
    "log_params": lambda run: run.log_params({"C": 1}),
    "set_tag": lambda run: run.set_tag("team", "risk"),
    "set_tags": lambda run: run.set_tags({"team": "risk"}),
    "log_metric": lambda run: run.log_metric("loss", 0.1),
    "log_metrics": lambda run: run.log_metrics({"loss": 0.1}),
    "log_bytes": lambda run: run.log_bytes("notes.txt", b"hi"),
    "log_input": lambda run: run.log_input(pd.DataFrame({"a": [1]})),
}


@pytest.mark.parametrize("call", LOGGING_CALLS.values(), ids=LOGGING_CALLS.keys())
def test_logging_to_an_ended_run_raises_run_not_active(
    workspace: Workspace, call: Callable[[Run], object]
) -> None:
    with workspace.start_run() as run:
        pass

    with pytest.raises(RunNotActive, match=f"run '{run.id}' is finished"):
        call(run)


def test_run_not_active_is_a_tracking_error() -> None:
    assert issubclass(RunNotActive, TrackingError)


def test_end_callbacks_are_called_once_after_the_run_has_ended(workspace: Workspace) -> None:
    seen: list[str] = []
    run = workspace.start_run()
    run.on_end(lambda: seen.append(workspace.runs.get(run.id).status))

    run.end()
    run.end()

    assert seen == [FINISHED]


# -- resources -------------------------------------------------------------------------------------


def test_run_records_plausible_wall_time_cpu_time_and_peak_memory(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        deadline = time.process_time() + 0.25
        while time.process_time() < deadline:
            pass

    resources = workspace.runs.get(run.id).resources

    assert resources["cpu_seconds"] > 0.1
    assert resources["wall_seconds"] >= 0.2
    assert resources["wall_seconds"] < 60
    # a Python process with pandas and sqlalchemy imported holds far more than 10 MB
    assert 10 * 2**20 < resources["peak_rss_bytes"] < 64 * 2**30


# -- keel.start_run --------------------------------------------------------------------------------


def test_keel_start_run_records_into_the_project_of_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metadata_url: str
) -> None:
    for name in ("KEEL_PROJECT_DIR", "KEEL_METADATA_URL", "KEEL_ARTIFACTS_URL", "KEEL_ACTOR"):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "here"
    project.mkdir()
    (project / "keel.toml").write_text(
        f'metadata_url = "{metadata_url}"\n'
        'artifacts_url = "store"\n'
        'actor = "from-toml"\n'
        "[tracking]\n"
        "capture_packages = false\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(project)

    with keel.start_run(experiment="cwd", params={"C": 1}) as run:
        run.log_metric("auc", 0.91)

    with keel.open_workspace(project) as workspace:
        record = workspace.runs.get(run.id)
    assert (record.experiment, record.status, record.actor) == ("cwd", FINISHED, "from-toml")
    assert (record.params, record.metrics) == ({"C": "1"}, {"auc": 0.91})
    assert record.environment["packages"] == {}
