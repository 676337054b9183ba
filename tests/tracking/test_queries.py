"""Reading runs back: get, search, compare, metric filters and lost runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from keel import Settings, Workspace
from keel.config import TrackingSettings
from keel.errors import ExperimentNotFound, KeelError, NotFoundError, RunNotFound
from keel.store import _tables as t
from keel.tracking import FAILED, FINISHED, RUNNING, MetricFilter


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    """The shared workspace without the package scan: queries never read it, and these tests
    start many runs."""
    quick = settings.model_copy(update={"tracking": TrackingSettings(capture_packages=False)})
    with Workspace(quick) as opened:
        yield opened


def finished_run(
    workspace: Workspace,
    experiment: str = "churn",
    *,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    status: str = FINISHED,
) -> str:
    run = workspace.start_run(experiment=experiment, params=params, tags=tags)
    run.log_metrics(metrics or {})
    run.end(status)
    return run.id


def ids(records: list[Any]) -> list[str]:
    return [record.id for record in records]


# -- get -------------------------------------------------------------------------------------------


def test_get_of_an_unknown_run_raises_run_not_found(workspace: Workspace) -> None:
    with pytest.raises(RunNotFound, match="no run with id 'nope'") as caught:
        workspace.runs.get("nope")

    assert caught.value.run_id == "nope"
    assert isinstance(caught.value, NotFoundError)


def test_metric_history_of_an_unknown_run_raises_run_not_found(workspace: Workspace) -> None:
    with pytest.raises(RunNotFound):
        workspace.runs.metric_history("nope", "loss")


def test_get_returns_what_the_run_logged(workspace: Workspace) -> None:
    run_id = finished_run(workspace, params={"C": 1}, tags={"team": "risk"}, metrics={"auc": 0.8})

    record = workspace.runs.get(run_id)

    assert (record.id, record.experiment, record.status) == (run_id, "churn", FINISHED)
    assert (record.params, record.tags, record.metrics) == (
        {"C": "1"},
        {"team": "risk"},
        {"auc": 0.8},
    )
    assert record.to_dict()["params"] == {"C": "1"}


# -- search ----------------------------------------------------------------------------------------


def test_search_by_experiment_returns_only_its_runs(workspace: Workspace) -> None:
    churn = finished_run(workspace, "churn")
    finished_run(workspace, "fraud")

    assert ids(workspace.runs.search(experiment="churn")) == [churn]


def test_search_by_an_unknown_experiment_raises_experiment_not_found(
    workspace: Workspace,
) -> None:
    finished_run(workspace, "churn")

    with pytest.raises(ExperimentNotFound, match="no experiment named 'fruad'"):
        workspace.runs.search(experiment="fruad")


def test_search_without_conditions_returns_every_run_newest_first(workspace: Workspace) -> None:
    first = finished_run(workspace, "churn")
    second = finished_run(workspace, "fraud")
    third = finished_run(workspace, "churn")

    assert ids(workspace.runs.search()) == [third, second, first]


def test_search_by_tag_returns_runs_with_that_tag_value(workspace: Workspace) -> None:
    risk = finished_run(workspace, tags={"team": "risk"})
    finished_run(workspace, tags={"team": "growth"})
    finished_run(workspace)

    assert ids(workspace.runs.search(tags={"team": "risk"})) == [risk]


def test_search_by_two_tags_requires_both(workspace: Workspace) -> None:
    both = finished_run(workspace, tags={"team": "risk", "gpu": "yes"})
    finished_run(workspace, tags={"team": "risk", "gpu": "no"})
    finished_run(workspace, tags={"gpu": "yes"})

    assert ids(workspace.runs.search(tags={"team": "risk", "gpu": "yes"})) == [both]


def test_search_by_a_metric_threshold(workspace: Workspace) -> None:
    good = finished_run(workspace, metrics={"acc": 0.95})
    edge = finished_run(workspace, metrics={"acc": 0.9})
    finished_run(workspace, metrics={"acc": 0.7})
    finished_run(workspace, metrics={"loss": 0.1})

    assert ids(workspace.runs.search(metrics=["acc>=0.9"])) == [edge, good]


def test_search_by_a_metric_threshold_uses_the_last_logged_value(workspace: Workspace) -> None:
    run = workspace.start_run()
    run.log_metric("acc", 0.95)
    run.log_metric("acc", 0.5)
    run.end()

    assert workspace.runs.search(metrics=["acc>=0.9"]) == []


def test_search_by_two_metric_thresholds_requires_both(workspace: Workspace) -> None:
    both = finished_run(workspace, metrics={"acc": 0.95, "loss": 0.1})
    finished_run(workspace, metrics={"acc": 0.95, "loss": 0.4})
    finished_run(workspace, metrics={"acc": 0.5, "loss": 0.1})
    finished_run(workspace, metrics={"acc": 0.95})

    assert ids(workspace.runs.search(metrics=["acc>=0.9", "loss < 0.2"])) == [both]


def test_search_accepts_parsed_metric_filters(workspace: Workspace) -> None:
    low = finished_run(workspace, metrics={"loss": 0.1})
    finished_run(workspace, metrics={"loss": 0.3})

    found = workspace.runs.search(metrics=[MetricFilter(key="loss", op="<", value=0.2)])

    assert ids(found) == [low]


def test_search_with_a_malformed_metric_filter_raises_keel_error(workspace: Workspace) -> None:
    with pytest.raises(KeelError, match="not a metric filter"):
        workspace.runs.search(metrics=["acc is high"])


def test_search_by_status(workspace: Workspace) -> None:
    failed = finished_run(workspace, status=FAILED)
    finished_run(workspace)

    assert ids(workspace.runs.search(status=FAILED)) == [failed]


def test_search_combines_experiment_tag_metric_and_status(workspace: Workspace) -> None:
    wanted = finished_run(workspace, "churn", tags={"team": "risk"}, metrics={"auc": 0.9})
    finished_run(workspace, "fraud", tags={"team": "risk"}, metrics={"auc": 0.9})
    finished_run(workspace, "churn", tags={"team": "growth"}, metrics={"auc": 0.9})
    finished_run(workspace, "churn", tags={"team": "risk"}, metrics={"auc": 0.6})
    finished_run(workspace, "churn", tags={"team": "risk"}, metrics={"auc": 0.9}, status=FAILED)

    found = workspace.runs.search(
        experiment="churn", tags={"team": "risk"}, metrics=["auc>0.8"], status=FINISHED
    )

    assert ids(found) == [wanted]


@pytest.fixture
def ranked(workspace: Workspace) -> dict[str, str]:
    """Runs with auc 0.7, 0.9 and 0.8, and one run that never logged auc."""
    return {
        "mid-low": finished_run(workspace, metrics={"auc": 0.7}),
        "missing": finished_run(workspace, metrics={"loss": 0.3}),
        "high": finished_run(workspace, metrics={"auc": 0.9}),
        "mid": finished_run(workspace, metrics={"auc": 0.8}),
    }


def test_search_orders_by_a_metric_descending_with_runs_missing_it_last(
    workspace: Workspace, ranked: dict[str, str]
) -> None:
    found = workspace.runs.search(order_by="auc")

    assert ids(found) == [ranked["high"], ranked["mid"], ranked["mid-low"], ranked["missing"]]


def test_search_orders_by_a_metric_ascending_with_runs_missing_it_last(
    workspace: Workspace, ranked: dict[str, str]
) -> None:
    found = workspace.runs.search(order_by="auc", ascending=True)

    assert ids(found) == [ranked["mid-low"], ranked["mid"], ranked["high"], ranked["missing"]]


def test_search_limit_keeps_the_first_runs_in_order(
    workspace: Workspace, ranked: dict[str, str]
) -> None:
    found = workspace.runs.search(order_by="auc", limit=2)

    assert ids(found) == [ranked["high"], ranked["mid"]]


def test_list_runs_of_an_experiment_is_limited_and_newest_first(workspace: Workspace) -> None:
    runs = [finished_run(workspace, "churn") for _ in range(3)]
    finished_run(workspace, "fraud")

    assert ids(workspace.runs.list_runs("churn", limit=2)) == [runs[2], runs[1]]


def test_experiments_lists_every_experiment_once_by_name(workspace: Workspace) -> None:
    finished_run(workspace, "fraud")
    finished_run(workspace, "churn")
    finished_run(workspace, "fraud")

    assert workspace.runs.experiments() == ["churn", "fraud"]


# -- metric filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acc>=0.9", MetricFilter("acc", ">=", 0.9)),
        ("  loss <  1e-3 ", MetricFilter("loss", "<", 0.001)),
        ("val.f1==1", MetricFilter("val.f1", "==", 1.0)),
        ("delta!=-2.5", MetricFilter("delta", "!=", -2.5)),
        ("auc>0", MetricFilter("auc", ">", 0.0)),
        ("rmse<=+3", MetricFilter("rmse", "<=", 3.0)),
    ],
)
def test_metric_filter_parses_key_operator_and_number(text: str, expected: MetricFilter) -> None:
    assert MetricFilter.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "acc", "acc>=", ">=0.9", "acc=>0.9", "acc>=high", "acc>=1e", "acc>=0.9 loss", "acc~0.9"],
)
def test_metric_filter_rejects_garbage_with_a_keel_error(text: str) -> None:
    with pytest.raises(KeelError):
        MetricFilter.parse(text)


# -- compare ---------------------------------------------------------------------------------------


def test_compare_lines_params_and_metrics_up_per_run(workspace: Workspace) -> None:
    a = finished_run(workspace, params={"C": 1, "penalty": "l2"}, metrics={"auc": 0.8})
    b = finished_run(workspace, params={"C": 2}, metrics={"auc": 0.9, "loss": 0.2})

    comparison = workspace.runs.compare([a, b])

    assert comparison.run_ids == [a, b]
    assert comparison.params == {"C": ["1", "2"], "penalty": ["l2", None]}
    assert comparison.metrics == {"auc": [0.8, 0.9], "loss": [None, 0.2]}


def test_differing_params_lists_only_the_params_that_differ(workspace: Workspace) -> None:
    a = finished_run(workspace, params={"C": 1, "solver": "lbfgs", "penalty": "l2"})
    b = finished_run(workspace, params={"C": 2, "solver": "lbfgs"})
    c = finished_run(workspace, params={"C": 1, "solver": "lbfgs", "penalty": "l2"})

    differing = workspace.runs.compare([a, b, c]).differing_params()

    assert differing == {"C": ["1", "2", "1"], "penalty": ["l2", None, "l2"]}


def test_compare_with_an_unknown_run_raises_run_not_found(workspace: Workspace) -> None:
    a = finished_run(workspace)

    with pytest.raises(RunNotFound):
        workspace.runs.compare([a, "nope"])


# -- lost runs -------------------------------------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def set_run_process(workspace: Workspace, run_id: str, **values: Any) -> None:
    with workspace.store.write() as connection:
        connection.execute(t.runs.update().where(t.runs.c.id == run_id).values(**values))


def test_running_run_whose_process_died_shows_as_lost(workspace: Workspace) -> None:
    run = workspace.start_run()
    set_run_process(workspace, run.id, pid=dead_pid())

    assert workspace.runs.get(run.id).status == "lost"


def test_running_run_whose_process_is_alive_shows_as_running(workspace: Workspace) -> None:
    run = workspace.start_run()

    assert workspace.runs.get(run.id).status == RUNNING


def test_running_run_of_another_host_is_not_judged_lost(workspace: Workspace) -> None:
    run = workspace.start_run()
    set_run_process(workspace, run.id, pid=dead_pid(), hostname="some-other-host.invalid")

    assert workspace.runs.get(run.id).status == RUNNING


def test_ended_run_keeps_its_status_after_its_process_died(workspace: Workspace) -> None:
    run_id = finished_run(workspace)
    set_run_process(workspace, run_id, pid=dead_pid())

    assert workspace.runs.get(run_id).status == FINISHED


def test_lost_status_is_not_stored(workspace: Workspace) -> None:
    run = workspace.start_run()
    set_run_process(workspace, run.id, pid=dead_pid())
    workspace.runs.get(run.id)

    with workspace.store.read() as connection:
        stored = connection.execute(
            sa.select(t.runs.c.status).where(t.runs.c.id == run.id)
        ).scalar_one()
    assert stored == RUNNING


def test_search_by_status_lost_finds_runs_whose_process_died(workspace: Workspace) -> None:
    run = workspace.start_run()
    set_run_process(workspace, run.id, pid=dead_pid())

    assert ids(workspace.runs.search(status="lost")) == [run.id]


def test_search_by_status_running_leaves_out_lost_runs(workspace: Workspace) -> None:
    alive = workspace.start_run()
    dead = workspace.start_run()
    set_run_process(workspace, dead.id, pid=dead_pid())

    assert ids(workspace.runs.search(status=RUNNING)) == [alive.id]
