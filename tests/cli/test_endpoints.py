"""``keel endpoints``: deployments through the command line."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression

from keel import Workspace

from .conftest import Data, Keel, assert_one_line_error, sqlite_only


@pytest.fixture
def models(workspace: Workspace, training_data: Data) -> str:
    """Model ``churn`` with versions 1 and 2 (trained on feature-store features), ``champion``
    on version 2."""
    features, target = training_data
    model = LogisticRegression().fit(features, target)
    lineage = [{"feature": "customer:age", "view": "customer", "view_version": 1}]
    for version in (1, 2):
        workspace.registry.register(
            "churn", model, input_example=features, features=lineage if version == 2 else None
        )
    workspace.registry.set_alias("churn", "champion", 2)
    return "churn"


@pytest.fixture
def endpoint(keel: Keel, models: str) -> str:
    """Endpoint ``churn-api`` created from ``models:/churn/1`` (revision 1)."""
    keel.ok("endpoints", "create", "churn-api", "--model", "models:/churn/1")
    return "churn-api"


def test_create_json_is_revision_1_with_the_pinned_alias(keel: Keel, models: str) -> None:
    revision = keel.json(
        "endpoints", "create", "churn-api", "--model", "models:/churn@champion", "--reason", "go"
    )

    assert (revision["endpoint"], revision["number"], revision["action"]) == (
        "churn-api",
        1,
        "create",
    )
    assert revision["policy"]["primary"] == {
        "name": "churn",
        "version": 2,
        "uri": "models:/churn@champion",
    }
    assert (revision["reason"], revision["created_by"]) == ("go", "tester")


def test_create_takes_the_serving_options(keel: Keel, models: str) -> None:
    revision = keel.json(
        "endpoints",
        "create",
        "churn-api",
        "--model",
        "models:/churn/2",
        "--max-batch-size",
        "8",
        "--max-batch-wait-ms",
        "0",
        "--timeout-ms",
        "50",
        "--features",
    )

    policy = revision["policy"]
    assert (policy["max_batch_size"], policy["max_batch_wait_ms"]) == (8, 0.0)
    assert (policy["timeout_ms"], policy["features"]) == (50, True)


@sqlite_only
def test_create_prints_what_the_endpoint_serves(keel: Keel, models: str) -> None:
    output = keel.ok("endpoints", "create", "churn-api", "--model", "models:/churn@champion").stdout

    assert "churn-api created: revision 1 serves models:/churn/2" in output
    assert "(from models:/churn@champion)" in output


def test_an_invalid_option_is_one_line_naming_it(keel: Keel, models: str) -> None:
    result = keel(
        "endpoints", "create", "churn-api", "--model", "models:/churn/1", "--max-batch-size", "0"
    )

    assert_one_line_error(result, "max_batch_size", ">= 1")


def test_an_unknown_model_is_one_line(keel: Keel, models: str) -> None:
    result = keel("endpoints", "create", "churn-api", "--model", "models:/churn/9")

    assert_one_line_error(result, "no version 9")


def test_an_existing_name_is_one_line(keel: Keel, endpoint: str) -> None:
    result = keel("endpoints", "create", endpoint, "--model", "models:/churn/2")

    assert_one_line_error(result, "already exists")


def test_show_json_has_the_live_revision(keel: Keel, endpoint: str) -> None:
    shown = keel.json("endpoints", "show", endpoint)

    assert shown["name"] == endpoint
    assert shown["revision"]["number"] == 1
    assert shown["revision"]["policy"]["primary"]["version"] == 1


@sqlite_only
def test_show_prints_the_policy(keel: Keel, endpoint: str) -> None:
    output = keel.ok("endpoints", "show", endpoint).stdout

    assert "models:/churn/1" in output
    assert "batch ≤32 / 2 ms" in output
    assert "1 (create)" in output


def test_show_of_an_unknown_endpoint_is_one_line(keel: Keel, models: str) -> None:
    assert_one_line_error(keel("endpoints", "show", "nope"), "no endpoint named 'nope'")


def test_set_json_is_the_next_revision(keel: Keel, endpoint: str) -> None:
    revision = keel.json(
        "endpoints", "set", endpoint, "--model", "models:/churn@champion", "--timeout-ms", "80"
    )

    assert (revision["number"], revision["action"]) == (2, "set")
    assert revision["policy"]["primary"]["version"] == 2
    assert revision["policy"]["timeout_ms"] == 80


@sqlite_only
def test_an_unchanged_set_says_so(keel: Keel, endpoint: str) -> None:
    output = keel.ok("endpoints", "set", endpoint, "--model", "models:/churn/1").stdout

    assert "churn-api unchanged: revision 1" in output


def test_set_can_remove_the_timeout_and_feature_lookups(keel: Keel, models: str) -> None:
    keel.ok(
        "endpoints",
        "create",
        "churn-api",
        "--model",
        "models:/churn/2",
        "--timeout-ms",
        "50",
        "--features",
    )

    policy = keel.json("endpoints", "set", "churn-api", "--no-timeout", "--no-features")["policy"]

    assert (policy["timeout_ms"], policy["features"]) == (None, False)


@sqlite_only
def test_no_timeout_with_a_timeout_is_a_usage_error(keel: Keel, endpoint: str) -> None:
    result = keel("endpoints", "set", endpoint, "--no-timeout", "--timeout-ms", "5")

    assert result.exit_code == 2
    assert "--no-timeout" in result.stderr


def test_list_json_has_every_endpoint(keel: Keel, endpoint: str) -> None:
    keel.ok("endpoints", "create", "b-api", "--model", "models:/churn@champion")

    listed = keel.json("endpoints", "list")

    assert [(e["name"], e["revision"]["policy"]["primary"]["version"]) for e in listed] == [
        ("b-api", 2),
        (endpoint, 1),
    ]


@sqlite_only
def test_list_without_endpoints_says_how_to_create_one(keel: Keel, models: str) -> None:
    assert "keel endpoints create" in keel.ok("endpoints", "list").stdout


def test_history_json_lists_revisions_oldest_first(keel: Keel, endpoint: str) -> None:
    keel.ok("endpoints", "set", endpoint, "--model", "models:/churn/2", "--reason", "retrained")

    history = keel.json("endpoints", "history", endpoint)

    assert [(r["number"], r["action"], r["reason"]) for r in history] == [
        (1, "create", None),
        (2, "set", "retrained"),
    ]


@sqlite_only
def test_history_table_shows_each_revision(keel: Keel, endpoint: str) -> None:
    keel.ok("endpoints", "set", endpoint, "--model", "models:/churn/2", "--reason", "retrained")

    output = keel.ok("endpoints", "history", endpoint).stdout

    assert "models:/churn/2" in output
    assert "retrained" in output


def test_rollback_restores_the_previous_policy(keel: Keel, endpoint: str) -> None:
    keel.ok("endpoints", "set", endpoint, "--model", "models:/churn/2")

    revision = keel.json("endpoints", "rollback", endpoint, "--reason", "p99")

    assert (revision["number"], revision["action"]) == (3, "rollback")
    assert revision["policy"]["primary"]["version"] == 1
    assert revision["reason"] == "rollback to revision 1: p99"


def test_rollback_to_a_named_revision(keel: Keel, endpoint: str) -> None:
    keel.ok("endpoints", "set", endpoint, "--model", "models:/churn/2")
    keel.ok("endpoints", "set", endpoint, "--max-batch-size", "4")

    revision = keel.json("endpoints", "rollback", endpoint, "--to", "1")

    assert revision["number"] == 4
    assert revision["policy"]["max_batch_size"] == 32


def test_rollback_without_an_earlier_revision_is_one_line(keel: Keel, endpoint: str) -> None:
    assert_one_line_error(keel("endpoints", "rollback", endpoint), "nothing to roll back to")


def test_a_fallback_is_set_from_a_model_or_a_value_and_removed(keel: Keel, endpoint: str) -> None:
    by_value = keel.json("endpoints", "set", endpoint, "--fallback-value", '{"label": 0}')
    by_model = keel.json("endpoints", "set", endpoint, "--fallback-model", "models:/churn/2")
    kept = keel.json("endpoints", "set", endpoint, "--max-batch-size", "4")
    removed = keel.json("endpoints", "set", endpoint, "--no-fallback")

    assert by_value["policy"]["fallback"] == {"prediction": {"label": 0}}
    assert by_model["policy"]["fallback"]["model"]["version"] == 2
    assert kept["policy"]["fallback"]["model"]["version"] == 2
    assert removed["policy"]["fallback"] is None


def test_create_takes_a_fallback_value(keel: Keel, models: str) -> None:
    revision = keel.json(
        "endpoints", "create", "churn-api", "--model", "models:/churn/1", "--fallback-value", "0"
    )

    assert revision["policy"]["fallback"] == {"prediction": 0}


def test_a_fallback_value_that_is_not_json_is_refused(keel: Keel, endpoint: str) -> None:
    result = keel("endpoints", "set", endpoint, "--fallback-value", "yes please")

    assert result.exit_code == 2
    assert "--fallback-value" in result.stderr
    assert "not a JSON value" in result.stderr


def test_arms_are_set_from_uri_weight_pairs_and_removed(keel: Keel, endpoint: str) -> None:
    split = keel.json(
        "endpoints", "set", endpoint, "--arm", "models:/churn/1=90", "--arm", "models:/churn/2=10"
    )
    removed = keel.json("endpoints", "set", endpoint, "--no-arms")

    arms = split["policy"]["arms"]
    assert [(a["model"]["version"], a["weight"]) for a in arms] == [(1, 90.0), (2, 10.0)]
    assert removed["policy"]["arms"] == []


def test_an_arm_that_is_not_uri_weight_is_refused(keel: Keel, endpoint: str) -> None:
    result = keel("endpoints", "set", endpoint, "--arm", "models:/churn/1")

    assert result.exit_code == 2
    assert "URI=WEIGHT" in result.stderr


def test_shadows_are_set_and_removed(keel: Keel, endpoint: str) -> None:
    shadowed = keel.json("endpoints", "set", endpoint, "--shadow", "models:/churn/2")
    shown = keel("endpoints", "show", endpoint)
    removed = keel.json("endpoints", "set", endpoint, "--no-shadows")

    assert [s["version"] for s in shadowed["policy"]["shadows"]] == [2]
    assert "models:/churn/2" in shown.stdout
    assert removed["policy"]["shadows"] == []


def test_a_shadow_and_no_shadows_together_are_refused(keel: Keel, endpoint: str) -> None:
    result = keel("endpoints", "set", endpoint, "--shadow", "models:/churn/2", "--no-shadows")

    assert result.exit_code == 2
    assert "--no-shadows" in result.stderr


def test_the_routing_field_is_set_and_removed(keel: Keel, endpoint: str) -> None:
    routed = keel.json("endpoints", "set", endpoint, "--routing-field", "customer_id")
    cleared = keel.json("endpoints", "set", endpoint, "--no-routing-field")

    assert routed["policy"]["routing_field"] == "customer_id"
    assert cleared["policy"]["routing_field"] is None
