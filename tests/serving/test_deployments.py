"""Endpoints and deployment revisions: numbered, pinned, audited, and rolled back as new ones."""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import re
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

from keel import Settings, Workspace
from keel.errors import (
    AliasNotFound,
    DeploymentError,
    EndpointExists,
    EndpointNotFound,
    InvalidModelURI,
    InvalidPolicy,
    ModelNotFound,
    ModelVersionNotFound,
    NotFoundError,
    RegistryError,
    RevisionNotFound,
)
from keel.serving import (
    Arm,
    DefaultPrediction,
    DeploymentStore,
    PinnedModel,
    TrafficPolicy,
)
from keel.store import _tables as t

V1 = PinnedModel("churn", 1, "models:/churn/1")
V2 = PinnedModel("churn", 2, "models:/churn/2")
LINEAGE = [{"feature": "customer:age", "view": "customer", "view_version": 1}]


@pytest.fixture(scope="module")
def model_and_frame() -> tuple[LogisticRegression, pd.DataFrame]:
    frame = pd.DataFrame({"age": [0.1, -1.2, 0.7, 1.5, -0.3, -0.8], "income": [1, 0, 2, 1, 0, 3.0]})
    return LogisticRegression().fit(frame, [1, 0, 1, 1, 0, 0]), frame


@pytest.fixture
def churn(workspace: Workspace, model_and_frame: tuple[LogisticRegression, pd.DataFrame]) -> str:
    """Model ``churn`` with versions 1, 2 and 3 (candidates; 3 trained on feature-store
    features), ``champion`` on version 1."""
    model, frame = model_and_frame
    for version in (1, 2, 3):
        workspace.registry.register(
            "churn", model, input_example=frame, features=LINEAGE if version == 3 else None
        )
    workspace.registry.set_alias("churn", "champion", 1)
    return "churn"


@pytest.fixture
def deployments(workspace: Workspace, churn: str) -> DeploymentStore:
    return workspace.deployments


def _audit(workspace: Workspace, name: str) -> list[Any]:
    log = t.audit_log
    with workspace.store.read() as connection:
        return connection.execute(
            sa.select(log.c.action, log.c.from_value, log.c.to_value, log.c.reason, log.c.actor)
            .where(log.c.entity == "endpoint", log.c.entity_key == name)
            .order_by(log.c.id)
        ).all()


# -- the policy (no database) ----------------------------------------------------------------------


def test_a_policy_round_trips_through_json() -> None:
    policy = TrafficPolicy(
        primary=PinnedModel("churn", 3, "models:/churn@champion"),
        shadows=[V2],
        arms=[Arm(V1, 0.9), Arm(PinnedModel("churn", 4, "models:/churn/4"), 0.1)],
        fallback=DefaultPrediction({"label": 0, "p": [0.5, 0.5]}),
        max_batch_size=64,
        max_batch_wait_ms=0,
        timeout_ms=250,
        features=True,
    )

    assert TrafficPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


def test_a_model_fallback_round_trips_through_json() -> None:
    policy = TrafficPolicy(primary=V2, fallback=V1)

    assert TrafficPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


def test_a_new_policy_has_the_documented_defaults() -> None:
    policy = TrafficPolicy(primary=V1)

    assert (policy.shadows, policy.arms, policy.fallback) == ((), (), None)
    assert (policy.max_batch_size, policy.max_batch_wait_ms, policy.timeout_ms) == (32, 2.0, None)
    assert policy.features is False


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 2.5}, "max_batch_size"),
        ({"max_batch_size": True}, "max_batch_size"),
        ({"max_batch_wait_ms": -1}, "max_batch_wait_ms"),
        ({"max_batch_wait_ms": math.nan}, "max_batch_wait_ms"),
        ({"timeout_ms": 0}, "timeout_ms"),
        ({"features": "yes"}, "features"),
        ({"arms": [Arm(V2, -1)]}, "arms[0].weight"),
        ({"arms": [Arm(V2, 0)]}, "arms"),
        ({"routing_field": ""}, "routing_field"),
        ({"arms": [Arm(V2, math.inf)]}, "arms[0].weight"),
        ({"arms": [Arm(V2, 1), Arm(V2, 2)]}, "arms[1]"),
        ({"shadows": [V1]}, "shadows[0]"),
        ({"fallback": DefaultPrediction(object())}, "fallback"),
        ({"primary": PinnedModel("churn", 0, "models:/churn/0")}, "primary.version"),
    ],
)
def test_an_invalid_policy_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    expected = f"^invalid deployment policy: {re.escape(field)} "
    with pytest.raises(InvalidPolicy, match=expected) as caught:
        TrafficPolicy(**{"primary": V1, **changes})

    assert caught.value.field == field


def test_an_unknown_serving_option_is_refused_by_name() -> None:
    with pytest.raises(InvalidPolicy, match="max_batch is not a serving option") as caught:
        TrafficPolicy(primary=V1).with_options(max_batch=8)

    assert caught.value.field == "max_batch"


def test_a_stored_policy_with_an_unknown_field_is_refused() -> None:
    data = {**TrafficPolicy(primary=V1).to_dict(), "canary": {}}

    with pytest.raises(InvalidPolicy, match="canary is not a policy field"):
        TrafficPolicy.from_dict(data)


# -- creating --------------------------------------------------------------------------------------


def test_create_makes_revision_1_serving_the_pinned_version(
    deployments: DeploymentStore,
) -> None:
    revision = deployments.create_endpoint("churn-api", "models:/churn/2", reason="launch")

    assert (revision.endpoint, revision.number, revision.action) == ("churn-api", 1, "create")
    assert revision.policy == TrafficPolicy(primary=V2)
    assert (revision.created_by, revision.reason) == ("tester", "launch")


def test_create_applies_serving_options(deployments: DeploymentStore) -> None:
    deployments.create_endpoint(
        "churn-api", "models:/churn/3", max_batch_size=8, max_batch_wait_ms=0, features=True
    )

    policy = deployments.get("churn-api").policy
    assert (policy.max_batch_size, policy.max_batch_wait_ms, policy.features) == (8, 0.0, True)


def test_creating_an_existing_endpoint_is_refused(deployments: DeploymentStore) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")

    with pytest.raises(EndpointExists, match="'churn-api' already exists"):
        deployments.create_endpoint("churn-api", "models:/churn/2")
    assert deployments.get("churn-api").policy.primary == V1


@pytest.mark.parametrize("name", ["", "-api", "churn api", "churn/api"])
def test_an_invalid_endpoint_name_is_refused(deployments: DeploymentStore, name: str) -> None:
    with pytest.raises(DeploymentError, match="not a valid endpoint name"):
        deployments.create_endpoint(name, "models:/churn/1")


@pytest.mark.parametrize(
    ("uri", "error"),
    [
        ("models:/fraud/1", ModelNotFound),
        ("models:/churn/9", ModelVersionNotFound),
        ("models:/churn@staging", AliasNotFound),
        ("churn:1", InvalidModelURI),
    ],
)
def test_an_unresolvable_model_is_refused(
    deployments: DeploymentStore, uri: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        deployments.create_endpoint("churn-api", uri)
    assert deployments.list() == []


def test_an_archived_version_cannot_be_deployed(
    workspace: Workspace, deployments: DeploymentStore
) -> None:
    workspace.registry.transition("churn", 3, "archived")

    with pytest.raises(DeploymentError, match="version 3 is archived"):
        deployments.create_endpoint("churn-api", "models:/churn/3")


def test_feature_lookups_need_a_model_trained_on_the_feature_store(
    deployments: DeploymentStore,
) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/3", features=True)

    with pytest.raises(InvalidPolicy, match="features cannot be on: models:/churn/2") as caught:
        deployments.set("churn-api", model_uri="models:/churn/2")
    assert caught.value.field == "features"
    assert deployments.set("churn-api", model_uri="models:/churn/2", features=False).number == 2


def test_invalid_options_write_nothing(deployments: DeploymentStore) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")

    with pytest.raises(InvalidPolicy, match="timeout_ms must be a whole number"):
        deployments.set("churn-api", timeout_ms=-5)
    assert [r.number for r in deployments.history("churn-api")] == [1]


# -- changing --------------------------------------------------------------------------------------


def test_set_makes_the_next_revision_keeping_what_it_does_not_change(
    deployments: DeploymentStore,
) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1", max_batch_size=8)

    revision = deployments.set("churn-api", model_uri="models:/churn/2", reason="retrained")

    assert (revision.number, revision.action, revision.reason) == (2, "set", "retrained")
    assert revision.policy == TrafficPolicy(primary=V2, max_batch_size=8)
    assert deployments.get("churn-api").revision == revision


def test_an_unchanged_set_makes_no_revision(
    workspace: Workspace, deployments: DeploymentStore
) -> None:
    created = deployments.create_endpoint("churn-api", "models:/churn/1", timeout_ms=100)

    again = deployments.set("churn-api", model_uri="models:/churn/1", timeout_ms=100)

    assert again == created
    assert [r.number for r in deployments.history("churn-api")] == [1]
    assert [entry.action for entry in _audit(workspace, "churn-api")] == ["create"]


def test_an_alias_is_pinned_when_the_policy_is_set(
    workspace: Workspace, deployments: DeploymentStore
) -> None:
    deployments.create_endpoint("churn-api", "models:/churn@champion")
    workspace.registry.set_alias("churn", "champion", 2)

    before = deployments.get("churn-api").policy.primary
    after = deployments.set("churn-api", model_uri="models:/churn@champion")

    assert before == PinnedModel("churn", 1, "models:/churn@champion")
    assert (after.number, after.policy.primary.version) == (2, 2)
    assert after.policy.primary.uri == "models:/churn@champion"


def test_setting_an_archived_version_is_refused(
    workspace: Workspace, deployments: DeploymentStore
) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")
    workspace.registry.transition("churn", 2, "archived")

    with pytest.raises(DeploymentError, match="version 2 is archived"):
        deployments.set("churn-api", model_uri="models:/churn/2")
    assert deployments.get("churn-api").revision.number == 1


def test_changing_an_unknown_endpoint_is_not_found(deployments: DeploymentStore) -> None:
    with pytest.raises(EndpointNotFound, match="no endpoint named 'nope'"):
        deployments.set("nope", max_batch_size=4)


def test_every_change_is_audited_with_its_revisions_and_reason(
    workspace: Workspace, deployments: DeploymentStore
) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1", reason="launch")
    deployments.set("churn-api", model_uri="models:/churn/2", reason="retrained")
    deployments.rollback("churn-api", reason="worse p99")

    assert _audit(workspace, "churn-api") == [
        ("create", None, "1", "launch", "tester"),
        ("set", "1", "2", "retrained", "tester"),
        ("rollback", "2", "3", "rollback to revision 1: worse p99", "tester"),
    ]


# -- rolling back ----------------------------------------------------------------------------------


def test_rollback_restores_the_previous_policy_as_a_new_revision(
    deployments: DeploymentStore,
) -> None:
    first = deployments.create_endpoint("churn-api", "models:/churn/1")
    deployments.set("churn-api", model_uri="models:/churn/2", max_batch_size=4)

    revision = deployments.rollback("churn-api")

    assert (revision.number, revision.action) == (3, "rollback")
    assert revision.policy == first.policy
    assert revision.reason == "rollback to revision 1"


def test_rollback_to_a_named_revision(deployments: DeploymentStore) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")
    deployments.set("churn-api", model_uri="models:/churn/2")
    deployments.set("churn-api", model_uri="models:/churn/3")

    revision = deployments.rollback("churn-api", to=2)

    assert (revision.number, revision.policy.primary) == (4, V2)


def test_rollback_of_a_single_revision_is_refused(deployments: DeploymentStore) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")

    with pytest.raises(DeploymentError, match="nothing to roll back to"):
        deployments.rollback("churn-api")


def test_rollback_to_an_unknown_revision_is_not_found(deployments: DeploymentStore) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")
    deployments.set("churn-api", model_uri="models:/churn/2")

    with pytest.raises(RevisionNotFound, match="no revision 7: its revisions are 1 to 2"):
        deployments.rollback("churn-api", to=7)


def test_rollback_onto_an_archived_version_is_refused(
    workspace: Workspace, deployments: DeploymentStore
) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/3")
    deployments.set("churn-api", model_uri="models:/churn/2")
    workspace.registry.transition("churn", 3, "archived")

    with pytest.raises(DeploymentError, match="version 3 is archived"):
        deployments.rollback("churn-api")


# -- reading ---------------------------------------------------------------------------------------


def test_history_lists_every_revision_oldest_first(deployments: DeploymentStore) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")
    deployments.set("churn-api", model_uri="models:/churn/2")
    deployments.rollback("churn-api")

    history = deployments.history("churn-api")

    assert [(r.number, r.action, r.policy.primary.version) for r in history] == [
        (1, "create", 1),
        (2, "set", 2),
        (3, "rollback", 1),
    ]


def test_revision_reads_one_revision(deployments: DeploymentStore) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")
    deployments.set("churn-api", model_uri="models:/churn/2")

    assert deployments.revision("churn-api", 1).policy.primary == V1
    with pytest.raises(RevisionNotFound):
        deployments.revision("churn-api", 3)


def test_list_gives_every_endpoint_with_its_live_revision(deployments: DeploymentStore) -> None:
    deployments.create_endpoint("b-api", "models:/churn/1", description="second")
    deployments.create_endpoint("a-api", "models:/churn/1")
    deployments.set("a-api", model_uri="models:/churn/2")

    listed = deployments.list()

    assert [(e.name, e.revision.number, e.policy.primary.version) for e in listed] == [
        ("a-api", 2, 2),
        ("b-api", 1, 1),
    ]
    assert listed[1].description == "second"


def test_an_unknown_endpoint_is_not_found(deployments: DeploymentStore) -> None:
    with pytest.raises(EndpointNotFound) as caught:
        deployments.get("nope")

    assert isinstance(caught.value, NotFoundError)


def test_changed_since_is_none_until_a_new_revision(deployments: DeploymentStore) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")
    unchanged = deployments.changed_since("churn-api", 1)
    deployments.set("churn-api", model_uri="models:/churn/2")

    changed = deployments.changed_since("churn-api", 1)

    assert unchanged is None
    assert changed is not None
    assert (changed.number, changed.policy.primary) == (2, V2)
    assert deployments.changed_since("churn-api", 2) is None


def test_changed_since_an_unknown_endpoint_is_not_found(deployments: DeploymentStore) -> None:
    with pytest.raises(EndpointNotFound):
        deployments.changed_since("nope", 1)


# -- concurrency -----------------------------------------------------------------------------------

WORKERS = 3
PER_WORKER = 5


def _set_many(metadata_url: str, artifacts: str, project: str, worker: int, ready: Any) -> None:
    settings = Settings.load(project, metadata_url=metadata_url, artifacts_url=artifacts, actor="w")
    with Workspace(settings) as workspace:
        ready.wait(60)  # every worker has opened its workspace: now they race
        for step in range(PER_WORKER):
            # A batch size no other change uses, so every call is a real change.
            size = 100 + worker * PER_WORKER + step
            workspace.deployments.set("churn-api", max_batch_size=size, reason=str(size))


@pytest.mark.slow
def test_concurrent_changes_get_gapless_revisions_each_audited(
    workspace: Workspace, deployments: DeploymentStore, settings: Settings, metadata_url: str
) -> None:
    deployments.create_endpoint("churn-api", "models:/churn/1")
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(WORKERS)
    base = (metadata_url, settings.artifacts_url, str(settings.project_dir))
    processes = [
        context.Process(target=_set_many, args=(*base, worker, ready)) for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * WORKERS

    history = deployments.history("churn-api")
    audited = _audit(workspace, "churn-api")
    changes = WORKERS * PER_WORKER
    assert [r.number for r in history] == list(range(1, changes + 2))
    assert sorted(r.policy.max_batch_size for r in history[1:]) == list(range(100, 100 + changes))
    assert [(a.from_value, a.to_value) for a in audited[1:]] == [
        (str(n), str(n + 1)) for n in range(1, changes + 1)
    ]
    assert [a.reason for a in audited[1:]] == [r.reason for r in history[1:]]


@pytest.mark.parametrize("role", ["primary", "shadow"])
def test_a_version_an_endpoint_serves_cannot_be_archived(
    workspace: Workspace, deployments: DeploymentStore, role: str
) -> None:
    if role == "primary":
        deployments.create_endpoint("served", "models:/churn/2")
    else:
        deployments.create_endpoint("served", "models:/churn/1")
        with workspace.store.write() as connection:  # shadows are set by the next serving issue
            policy = TrafficPolicy.from_dict(
                connection.execute(sa.select(t.deployment_revisions.c.policy)).scalar_one()
            )
            shadowed = dataclasses.replace(policy, shadows=(V2,))
            connection.execute(t.deployment_revisions.update().values(policy=shadowed.to_dict()))
    with pytest.raises(RegistryError, match="served by endpoint served"):
        workspace.registry.transition("churn", 2, "archived")
    assert workspace.registry.get_version("churn", 2).status == "candidate"
    workspace.registry.transition("churn", 3, "archived")  # not served: allowed


def test_an_endpoint_set_from_an_alias_follows_it_when_it_moves(
    workspace: Workspace, deployments: DeploymentStore
) -> None:
    deployments.create_endpoint("churn", "models:/churn@champion")
    workspace.registry.set_alias("churn", "champion", 2)

    followed = deployments.follow_aliases("churn")
    again = deployments.follow_aliases("churn")

    assert followed is not None
    assert (followed.number, followed.action) == (2, "follow")
    assert followed.policy.primary == PinnedModel("churn", 2, "models:/churn@champion")
    assert followed.reason == "following models:/churn@champion (1 -> 2)"
    assert again is None  # nothing left to move: no revision written
    assert [a.action for a in _audit(workspace, "churn")] == ["create", "follow"]


def test_models_set_from_a_version_uri_never_follow_an_alias(
    workspace: Workspace, deployments: DeploymentStore
) -> None:
    workspace.registry.set_alias("churn", "champion", 2)
    deployments.create_endpoint(
        "churn", "models:/churn/1", arms=[("models:/churn/1", 90), ("models:/churn@champion", 10)]
    )
    workspace.registry.set_alias("churn", "champion", 3)

    followed = deployments.follow_aliases("churn")

    assert followed is not None
    assert followed.policy.primary == V1
    assert [(a.model.version, a.weight) for a in followed.policy.arms] == [(1, 90), (3, 10)]
    assert deployments.follow_aliases("churn") is None


def test_an_alias_moved_to_an_unservable_version_is_refused_and_the_endpoint_stays(
    workspace: Workspace, deployments: DeploymentStore
) -> None:
    deployments.create_endpoint("churn", "models:/churn@champion", shadows=["models:/churn/2"])
    workspace.registry.set_alias("churn", "champion", 2)  # the primary would repeat the shadow

    with pytest.raises(InvalidPolicy, match="repeats models:/churn/2"):
        deployments.follow_aliases("churn")

    assert deployments.get("churn").revision.number == 1
