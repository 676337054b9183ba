"""Lifecycle transitions, the four-eyes rule, and the audit log that records them."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Settings, Workspace
from keel.config import RegistrySettings
from keel.errors import ApprovalPolicyViolation, InvalidTransition, RegistryError
from keel.registry import TRANSITIONS


@pytest.fixture
def version(
    workspace: Workspace, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> int:
    return workspace.registry.register("iris", iris_model, input_example=iris[0]).version


def test_a_new_version_is_a_candidate(workspace: Workspace, version: int) -> None:
    assert workspace.registry.get_version("iris", version).status == "candidate"


def test_the_normal_path_is_candidate_approved_archived(workspace: Workspace, version: int) -> None:
    registry = workspace.registry
    assert registry.transition("iris", version, "approved", reason="good").status == "approved"
    assert registry.transition("iris", version, "archived", reason="old").status == "archived"


@pytest.mark.parametrize(
    ("path", "forbidden"),
    [((), "candidate"), (("archived",), "approved"), (("approved",), "approved")],
)
def test_forbidden_transitions_are_refused_and_change_nothing(
    workspace: Workspace, version: int, path: tuple[str, ...], forbidden: str
) -> None:
    registry = workspace.registry
    for status in path:
        registry.transition("iris", version, status)
    before = registry.get_version("iris", version).status
    entries = len(registry.audit_log("iris"))
    with pytest.raises(InvalidTransition, match=f"is {before} and cannot move to {forbidden}"):
        registry.transition("iris", version, forbidden)
    assert registry.get_version("iris", version).status == before
    assert len(registry.audit_log("iris")) == entries


def test_every_status_can_reach_another(workspace: Workspace) -> None:
    assert all(TRANSITIONS[status] for status in TRANSITIONS)


def test_an_unknown_status_is_refused(workspace: Workspace, version: int) -> None:
    with pytest.raises(RegistryError, match="'production' is not a lifecycle status"):
        workspace.registry.transition("iris", version, "production")


def test_each_transition_is_audited_with_actor_time_and_reason(
    workspace: Workspace, version: int
) -> None:
    workspace.registry.transition("iris", version, "approved", reason="AUC 0.97", actor="rita")
    entry = workspace.registry.audit_log("iris", version)[-1]
    assert (entry.actor, entry.action, entry.from_value, entry.to_value, entry.reason) == (
        "rita",
        "transition",
        "candidate",
        "approved",
        "AUC 0.97",
    )
    assert entry.at > 0


def test_the_registrant_cannot_approve_under_the_four_eyes_rule(
    settings: Settings, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    strict = settings.model_copy(
        update={"registry": RegistrySettings(require_distinct_approver=True)}
    )
    with Workspace(strict) as workspace:
        registry = workspace.registry
        version = registry.register("iris", iris_model, input_example=iris[0]).version
        with pytest.raises(
            ApprovalPolicyViolation, match="tester registered .* cannot also approve"
        ):
            registry.transition("iris", version, "approved")
        assert registry.get_version("iris", version).status == "candidate"
        approved = registry.transition("iris", version, "approved", actor="reviewer")
        assert approved.status == "approved"


def test_without_the_four_eyes_rule_the_registrant_may_approve(
    workspace: Workspace, version: int
) -> None:
    assert workspace.registry.transition("iris", version, "approved").status == "approved"


def test_an_aliased_version_cannot_be_archived(workspace: Workspace, version: int) -> None:
    workspace.registry.set_alias("iris", "champion", version)
    with pytest.raises(RegistryError, match="aliased as champion"):
        workspace.registry.transition("iris", version, "archived")


def test_an_archived_version_is_restored_through_candidate(
    workspace: Workspace, version: int
) -> None:
    registry = workspace.registry
    registry.transition("iris", version, "archived")
    assert registry.transition("iris", version, "candidate").status == "candidate"
