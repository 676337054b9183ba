"""``keel runs``: reading back runs recorded through the Python API."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from keel import Workspace
from keel.tracking import FAILED

from .conftest import LOSS_CURVE, Data, Keel, assert_one_line_error, sqlite_only, train_run


@dataclass(frozen=True)
class Recorded:
    strong: str
    """experiment churn, C=1.0, tagged team=risk, accuracy and a loss curve."""
    weak: str
    """experiment churn, C=0.01, tagged team=risk, accuracy and a loss curve."""
    failed: str
    """experiment scratch, C=5, tagged team=growth, accuracy 0.1, failed with an error."""


@pytest.fixture
def recorded(workspace: Workspace, training_data: Data) -> Recorded:
    strong = train_run(workspace, training_data, 1.0)
    weak = train_run(workspace, training_data, 0.01)
    run = workspace.start_run("scratch", name="broken", params={"C": 5}, tags={"team": "growth"})
    run.log_metric("accuracy", 0.1)
    run.end(FAILED, "ValueError: the data was empty")
    return Recorded(strong=strong, weak=weak, failed=run.id)


def test_list_json_lists_runs_newest_first(keel: Keel, recorded: Recorded) -> None:
    runs = keel.json("runs", "list")

    assert [r["id"] for r in runs] == [recorded.failed, recorded.weak, recorded.strong]
    assert runs[0]["status"] == "failed"
    assert runs[1]["params"] == {"C": "0.01", "solver": "lbfgs"}


def test_list_filters_by_experiment_and_limit(keel: Keel, recorded: Recorded) -> None:
    runs = keel.json("runs", "list", "--experiment", "churn", "--limit", "1")

    assert [r["id"] for r in runs] == [recorded.weak]


@sqlite_only
def test_list_table_shows_each_run(keel: Keel, recorded: Recorded) -> None:
    output = keel.ok("runs", "list").stdout

    for run_id in (recorded.strong, recorded.weak, recorded.failed):
        assert run_id in output
    assert "failed" in output
    assert "logreg-c1.0" in output


def test_list_of_unknown_experiment_is_one_line(keel: Keel, recorded: Recorded) -> None:
    assert_one_line_error(keel("runs", "list", "--experiment", "nope"), "'nope'")


def test_show_json_has_everything_recorded(keel: Keel, recorded: Recorded) -> None:
    run = keel.json("runs", "show", recorded.strong)

    assert run["id"] == recorded.strong
    assert run["experiment"] == "churn"
    assert run["status"] == "finished"
    assert run["params"] == {"C": "1.0", "solver": "lbfgs"}
    assert run["tags"] == {"team": "risk"}
    assert run["metrics"]["loss"] == pytest.approx(LOSS_CURVE[-1])
    assert run["inputs"]["train"]["num_rows"] == 60
    assert run["artifacts"]["model"]["kind"] == "model"
    assert run["seeds"]["seed"] == 7
    assert set(run["resources"]) >= {"wall_seconds", "cpu_seconds"}


@sqlite_only
def test_show_table_lists_params_metrics_tags_inputs_and_artifacts(
    keel: Keel, recorded: Recorded
) -> None:
    output = keel.ok("runs", "show", recorded.strong).stdout

    for expected in ("Params", "solver", "lbfgs", "Metrics", "loss", "Tags", "risk"):
        assert expected in output
    for expected in ("Inputs", "train", "Artifacts", "sklearn", "seed=7", "Resources"):
        assert expected in output


@sqlite_only
def test_show_of_a_failed_run_shows_its_error(keel: Keel, recorded: Recorded) -> None:
    output = keel.ok("runs", "show", recorded.failed).stdout

    assert "failed" in output
    assert "ValueError: the data was empty" in output


def test_show_of_unknown_run_is_one_line(keel: Keel, recorded: Recorded) -> None:
    assert_one_line_error(keel("runs", "show", "f" * 32), "no run with id")


def test_compare_json_lists_differing_params(keel: Keel, recorded: Recorded) -> None:
    comparison = keel.json("runs", "compare", recorded.strong, recorded.weak)

    assert comparison["run_ids"] == [recorded.strong, recorded.weak]
    assert comparison["params"] == {"C": ["1.0", "0.01"], "solver": ["lbfgs", "lbfgs"]}
    assert comparison["differing_params"] == ["C"]
    assert comparison["metrics"]["loss"] == pytest.approx([0.3, 0.003])


@sqlite_only
def test_compare_table_marks_differing_params(keel: Keel, recorded: Recorded) -> None:
    output = keel.ok("runs", "compare", recorded.strong, recorded.weak).stdout

    marked = [line for line in output.splitlines() if "≠" in line and "param " in line]
    assert len(marked) == 1
    assert "param C" in marked[0]


@sqlite_only
def test_compare_needs_two_runs(keel: Keel, recorded: Recorded) -> None:
    result = keel("runs", "compare", recorded.strong)

    assert result.exit_code == 2
    assert "at least two" in result.stderr


def test_search_by_tag_and_metric_threshold(keel: Keel, recorded: Recorded) -> None:
    runs = keel.json("runs", "search", "--tag", "team=risk", "--metric", "loss<0.1")

    assert [r["id"] for r in runs] == [recorded.weak]


def test_search_by_status(keel: Keel, recorded: Recorded) -> None:
    runs = keel.json("runs", "search", "--status", "failed")

    assert [r["id"] for r in runs] == [recorded.failed]


def test_search_orders_by_a_metric(keel: Keel, recorded: Recorded) -> None:
    descending = keel.json("runs", "search", "--experiment", "churn", "--order-by", "loss")
    ascending = keel.json(
        "runs", "search", "--experiment", "churn", "--order-by", "loss", "--ascending"
    )

    assert [r["id"] for r in descending] == [recorded.strong, recorded.weak]
    assert [r["id"] for r in ascending] == [recorded.weak, recorded.strong]


@sqlite_only
def test_search_with_a_bad_metric_filter_is_one_line(keel: Keel, recorded: Recorded) -> None:
    assert_one_line_error(keel("runs", "search", "--metric", "loss~1"), "'loss~1'")


@sqlite_only
def test_search_with_a_bad_tag_is_a_usage_error(keel: Keel, recorded: Recorded) -> None:
    result = keel("runs", "search", "--tag", "team")

    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr


def test_history_json_lists_values_in_step_order(keel: Keel, recorded: Recorded) -> None:
    points = keel.json("runs", "history", recorded.strong, "loss")

    assert [p["step"] for p in points] == [0, 1, 2]
    assert [p["value"] for p in points] == pytest.approx(list(LOSS_CURVE))


@sqlite_only
def test_history_table_shows_each_step(keel: Keel, recorded: Recorded) -> None:
    output = keel.ok("runs", "history", recorded.strong, "loss").stdout

    assert "0.9" in output
    assert "0.5" in output


def test_history_of_unknown_metric_is_one_line(keel: Keel, recorded: Recorded) -> None:
    assert_one_line_error(
        keel("runs", "history", recorded.strong, "auc"), "no metric 'auc'", "accuracy, loss"
    )
