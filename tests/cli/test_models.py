"""``keel models``: the registry through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel import Workspace, load_export

from .conftest import Data, Keel, assert_one_line_error, sqlite_only, train_run


@pytest.fixture
def approved(keel: Keel, churn: str) -> str:
    """``churn`` with version 2 approved and aliased ``champion``."""
    keel.ok("models", "transition", churn, "2", "approved", "--reason", "lower loss")
    keel.ok("models", "alias", churn, "champion", "2")
    return churn


def test_list_json_has_each_model_with_its_aliases(keel: Keel, approved: str) -> None:
    models = keel.json("models", "list")

    assert [(m["name"], m["latest_version"], m["aliases"]) for m in models] == [
        ("churn", 2, {"champion": 2})
    ]


@sqlite_only
def test_list_table_shows_each_model(keel: Keel, approved: str) -> None:
    output = keel.ok("models", "list").stdout

    assert "churn" in output
    assert "champion→2" in output


def test_register_makes_the_next_version_from_a_run(
    keel: Keel, churn: str, workspace: Workspace, training_data: Data
) -> None:
    run_id = train_run(workspace, training_data, 3.0)

    version = keel.json("models", "register", churn, "--run", run_id, "--description", "C=3")

    assert version["version"] == 3
    assert version["status"] == "candidate"
    assert version["run_id"] == run_id
    assert version["description"] == "C=3"
    assert version["params"]["C"] == "3.0"


@sqlite_only
def test_register_prints_the_new_uri(keel: Keel, workspace: Workspace, training_data: Data) -> None:
    run_id = train_run(workspace, training_data, 3.0)

    output = keel.ok("models", "register", "fraud", "--run", run_id).stdout

    assert "registered models:/fraud/1" in output


def test_register_from_unknown_run_is_one_line(keel: Keel, churn: str) -> None:
    assert_one_line_error(keel("models", "register", churn, "--run", "0" * 32), "0" * 32)


def test_show_name_lists_versions_with_status_and_aliases(keel: Keel, approved: str) -> None:
    versions = keel.json("models", "show", approved)

    assert [(v["version"], v["semver"], v["status"], v["aliases"]) for v in versions] == [
        (1, "1.0.0", "candidate", []),
        (2, "1.1.0", "approved", ["champion"]),
    ]


@sqlite_only
def test_show_name_table_lists_versions(keel: Keel, approved: str) -> None:
    output = keel.ok("models", "show", approved).stdout

    assert "1.1.0" in output
    assert "approved" in output
    assert "champion" in output
    assert "accuracy=" in output


def test_show_uri_resolves_an_alias(keel: Keel, approved: str) -> None:
    version = keel.json("models", "show", "models:/churn@champion")

    assert version["uri"] == "models:/churn/2"
    assert version["signature"]["inputs"]["fields"][0]["name"] == "age"


@sqlite_only
def test_show_uri_table_shows_one_version_in_detail(keel: Keel, approved: str) -> None:
    output = keel.ok("models", "show", "models:/churn/2").stdout

    for expected in ("models:/churn/2", "approved", "sha256:", "Metrics", "Signature", "income"):
        assert expected in output


@sqlite_only
@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("nope", "no registered model named 'nope'"),
        ("models:/nope/1", "no registered model named 'nope'"),
        ("models:/churn/9", "has no version 9"),
        ("models:/churn@gone", "has no alias 'gone'"),
        ("models:/churn", "is not a model URI"),
    ],
    ids=["unknown-model", "unknown-model-uri", "unknown-version", "unknown-alias", "bad-uri"],
)
def test_show_lookup_errors_are_one_line(
    keel: Keel, churn: str, target: str, fragment: str
) -> None:
    assert_one_line_error(keel("models", "show", target), fragment)


def test_transition_moves_the_status(keel: Keel, churn: str) -> None:
    output = keel.ok("models", "transition", churn, "1", "approved", "--reason", "ok").stdout

    assert "models:/churn/1 is now approved" in output
    assert keel.json("models", "show", "models:/churn/1")["status"] == "approved"


def test_invalid_transition_is_one_line(keel: Keel, churn: str) -> None:
    keel.ok("models", "transition", churn, "1", "archived")

    assert_one_line_error(
        keel("models", "transition", churn, "1", "approved"), "cannot move to approved"
    )


def test_transition_of_unknown_version_is_one_line(keel: Keel, churn: str) -> None:
    assert_one_line_error(keel("models", "transition", churn, "7", "approved"), "no version 7")


def test_alias_points_at_a_version(keel: Keel, churn: str) -> None:
    output = keel.ok("models", "alias", churn, "challenger", "1", "--reason", "shadow").stdout

    assert "models:/churn@challenger -> models:/churn/1" in output
    assert keel.json("models", "show", "models:/churn@challenger")["version"] == 1


def test_alias_with_expect_moves_when_it_matches(keel: Keel, approved: str) -> None:
    keel.ok("models", "alias", approved, "champion", "1", "--expect", "2")

    assert keel.json("models", "show", "models:/churn@champion")["version"] == 1


def test_alias_with_expect_none_creates_a_new_alias(keel: Keel, churn: str) -> None:
    keel.ok("models", "alias", churn, "champion", "1", "--expect", "none")

    assert keel.json("models", "show", "models:/churn@champion")["version"] == 1


def test_alias_expect_conflict_is_one_line(keel: Keel, approved: str) -> None:
    result = keel("models", "alias", approved, "champion", "1", "--expect", "1")

    assert_one_line_error(result, "expected at version 1 but is at version 2")
    assert keel.json("models", "show", "models:/churn@champion")["version"] == 2


@sqlite_only
def test_alias_expect_must_be_a_version_or_none(keel: Keel, churn: str) -> None:
    result = keel("models", "alias", churn, "champion", "1", "--expect", "latest")

    assert result.exit_code == 2
    assert "'latest'" in result.stderr


def test_alias_delete_removes_it(keel: Keel, approved: str) -> None:
    keel.ok("models", "alias", approved, "champion", "--delete")

    assert_one_line_error(keel("models", "show", "models:/churn@champion"), "no alias 'champion'")


def test_alias_delete_of_unknown_alias_is_one_line(keel: Keel, churn: str) -> None:
    assert_one_line_error(keel("models", "alias", churn, "gone", "--delete"), "no alias 'gone'")


@sqlite_only
def test_alias_needs_a_version_or_delete(keel: Keel, churn: str) -> None:
    assert keel("models", "alias", churn, "champion").exit_code == 2
    assert keel("models", "alias", churn, "champion", "1", "--delete").exit_code == 2


def test_alias_of_unknown_version_is_one_line(keel: Keel, churn: str) -> None:
    assert_one_line_error(keel("models", "alias", churn, "champion", "9"), "no version 9")


def test_card_prints_the_markdown_card(keel: Keel, approved: str) -> None:
    card = keel.ok("models", "card", "models:/churn@champion").stdout

    assert card.startswith("# churn — version 2 (1.1.0)")
    assert "- **Status:** approved" in card
    assert "lower loss" in card


def test_card_notes_are_stored_and_the_card_written(
    keel: Keel, approved: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("Only for customers older than 18.\n")
    output = tmp_path / "card.md"

    result = keel.ok(
        "models", "card", "models:/churn@champion", "--notes", str(notes), "--output", str(output)
    )

    assert str(output) in result.stdout
    assert "Only for customers older than 18." in output.read_text()
    assert (
        "Only for customers older than 18." in keel.ok("models", "card", "models:/churn/2").stdout
    )


@sqlite_only
def test_card_with_missing_notes_file_is_a_usage_error(
    keel: Keel, churn: str, tmp_path: Path
) -> None:
    result = keel("models", "card", "models:/churn/1", "--notes", str(tmp_path / "missing.md"))

    assert result.exit_code == 2


@sqlite_only
def test_card_of_bad_uri_is_one_line(keel: Keel, churn: str) -> None:
    assert_one_line_error(keel("models", "card", "churn/1"), "is not a model URI")


def test_export_writes_a_loadable_directory(keel: Keel, approved: str, tmp_path: Path) -> None:
    target = tmp_path / "export"

    output = keel.ok("models", "export", "models:/churn@champion", str(target)).stdout

    assert "exported models:/churn/2" in output
    metadata = json.loads((target / "keel-model.json").read_text())
    assert (metadata["name"], metadata["version"]) == ("churn", 2)
    assert load_export(target).model.get_params()["C"] == 0.01


def test_export_into_a_non_empty_directory_needs_force(
    keel: Keel, churn: str, tmp_path: Path
) -> None:
    target = tmp_path / "export"
    target.mkdir()
    (target / "other.txt").write_text("keep")

    assert_one_line_error(keel("models", "export", "models:/churn/1", str(target)), "--force")
    keel.ok("models", "export", "models:/churn/1", str(target), "--force")
    assert (target / "MODEL_CARD.md").exists()


def test_audit_json_lists_every_change_oldest_first(keel: Keel, approved: str) -> None:
    entries = keel.json("models", "audit", approved)

    assert [(e["entity_key"], e["action"], e["to_value"]) for e in entries] == [
        ("churn/1", "register", "candidate 1.0.0"),
        ("churn/2", "register", "candidate 1.1.0"),
        ("churn/2", "transition", "approved"),
        ("churn@champion", "move", "2"),
    ]
    assert entries[2]["reason"] == "lower loss"
    assert {e["actor"] for e in entries} == {"tester"}


def test_audit_of_one_version(keel: Keel, approved: str) -> None:
    entries = keel.json("models", "audit", approved, "--version", "1")

    assert [(e["entity_key"], e["action"]) for e in entries] == [("churn/1", "register")]


@sqlite_only
def test_audit_table_shows_changes_and_reasons(keel: Keel, approved: str) -> None:
    output = keel.ok("models", "audit", approved).stdout

    assert "candidate → approved" in output
    assert "lower loss" in output


def test_audit_of_unknown_model_is_one_line(keel: Keel, churn: str) -> None:
    assert_one_line_error(keel("models", "audit", "nope"), "no registered model named 'nope'")


def test_audit_of_unknown_version_is_one_line(keel: Keel, churn: str) -> None:
    assert_one_line_error(keel("models", "audit", churn, "--version", "5"), "no version 5")


def test_requirements_prints_pinned_packages(keel: Keel, churn: str) -> None:
    lines = keel.ok("models", "requirements", "models:/churn/1").stdout.splitlines()

    assert any(line.startswith("scikit-learn==") for line in lines)
    assert all("==" in line for line in lines)


def test_requirements_of_unknown_alias_is_one_line(keel: Keel, churn: str) -> None:
    assert_one_line_error(keel("models", "requirements", "models:/churn@prod"), "no alias 'prod'")
