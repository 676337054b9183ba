"""Aliases move atomically, are audited, and resolve model URIs."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Workspace
from keel.errors import (
    AliasConflict,
    AliasNotFound,
    InvalidModelURI,
    ModelNotFound,
    ModelVersionNotFound,
    RegistryError,
)
from keel.registry import ModelRef


@pytest.fixture
def two_versions(
    workspace: Workspace,
    iris: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
    other_iris_model: LogisticRegression,
) -> None:
    workspace.registry.register("iris", iris_model, input_example=iris[0])
    workspace.registry.register("iris", other_iris_model, input_example=iris[0])


@pytest.mark.usefixtures("two_versions")
def test_an_alias_resolves_to_its_version(workspace: Workspace) -> None:
    registry = workspace.registry
    registry.set_alias("iris", "champion", 2)
    assert registry.resolve("models:/iris@champion").version == 2
    assert registry.resolve("models:/iris/1").version == 1
    assert registry.get_version("iris", 2).aliases == ["champion"]


@pytest.mark.usefixtures("two_versions")
def test_moving_an_alias_is_audited_from_and_to(workspace: Workspace) -> None:
    registry = workspace.registry
    registry.set_alias("iris", "champion", 1, reason="first")
    registry.set_alias("iris", "champion", 2, reason="better", actor="ana")
    moves = [e for e in registry.audit_log("iris") if e.entity == "alias"]
    assert [(e.from_value, e.to_value, e.reason, e.actor) for e in moves] == [
        (None, "1", "first", "tester"),
        ("1", "2", "better", "ana"),
    ]
    assert registry.resolve("models:/iris@champion").version == 2
    assert registry.get_version("iris", 1).aliases == []


@pytest.mark.usefixtures("two_versions")
def test_compare_and_set_refuses_a_stale_expectation(workspace: Workspace) -> None:
    registry = workspace.registry
    registry.set_alias("iris", "champion", 1, expected=None)
    with pytest.raises(AliasConflict, match="expected at unset but is at version 1"):
        registry.set_alias("iris", "champion", 2, expected=None)
    registry.set_alias("iris", "champion", 2, expected=1)
    assert registry.resolve("models:/iris@champion").version == 2


@pytest.mark.usefixtures("two_versions")
def test_deleting_an_alias_makes_it_unresolvable(workspace: Workspace) -> None:
    registry = workspace.registry
    registry.set_alias("iris", "challenger", 1)
    registry.delete_alias("iris", "challenger", reason="done")
    with pytest.raises(AliasNotFound, match="no alias 'challenger'"):
        registry.resolve("models:/iris@challenger")
    assert registry.audit_log("iris")[-1].action == "delete"
    with pytest.raises(AliasNotFound):
        registry.delete_alias("iris", "challenger")


@pytest.mark.usefixtures("two_versions")
def test_an_alias_cannot_point_at_a_missing_or_archived_version(workspace: Workspace) -> None:
    registry = workspace.registry
    with pytest.raises(ModelVersionNotFound, match="no version 9"):
        registry.set_alias("iris", "champion", 9)
    registry.transition("iris", 1, "archived")
    with pytest.raises(RegistryError, match="archived"):
        registry.set_alias("iris", "champion", 1)


@pytest.mark.usefixtures("two_versions")
@pytest.mark.parametrize("alias", ["7", "has space", "", "a/b"])
def test_an_invalid_alias_name_is_refused(workspace: Workspace, alias: str) -> None:
    with pytest.raises(RegistryError, match="not a valid alias"):
        workspace.registry.set_alias("iris", alias, 1)


def test_unknown_model_in_an_alias_uri(workspace: Workspace) -> None:
    with pytest.raises(ModelNotFound):
        workspace.registry.resolve("models:/ghost@champion")


@pytest.mark.parametrize(
    "uri",
    [
        "iris",
        "models:/iris",
        "models:/iris/0",
        "models:/iris/x",
        "models:/iris/1/2",
        "runs:/x",
        "models:/@champion",
        "models:/iris@",
    ],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidModelURI, match="models:/NAME/VERSION or models:/NAME@ALIAS"):
        ModelRef.parse(uri)


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("models:/iris/3", ModelRef("iris", version=3)),
        ("models:/my.model-2@champion", ModelRef("my.model-2", alias="champion")),
    ],
)
def test_well_formed_uris_parse(uri: str, ref: ModelRef) -> None:
    assert ModelRef.parse(uri) == ref
    assert str(ref) == uri
