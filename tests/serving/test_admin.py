"""The admin routes: endpoints read, rolled back and re-weighted over HTTP by a key with the
admin scope, each change a revision audited with the key's identity and picked up by every
server's watcher; refused without a key, without the scope, and while auth is off."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Workspace
from keel.registry import AuditEntry
from keel.serving._app import ServingApp
from keel.serving._deployments import DeploymentStore
from keel.serving._keys import KeyRecord
from keel.serving._server import serving_app
from keel.store import MetadataStore

from ._server_process import ROW, ServerProcess, deploy_churn, free_port

pytestmark = pytest.mark.anyio

ENDPOINT = "/v1/endpoints/churn"
ARMS = f"{ENDPOINT}/arms"
ROLLBACK = f"{ENDPOINT}/rollback"


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


@pytest.fixture
def served(workspace: Workspace) -> Workspace:
    """Endpoint ``churn`` on version 1; version 2 (other labels) registered, not served."""
    deploy_churn(workspace)
    frame = pd.DataFrame(
        {"age": [0.1, -1.2, 0.7, 1.5], "income": [1, 0, 2, 1.0], "visits": [1, 4, 2, 0]}
    )
    workspace.registry.register(
        "churn", LogisticRegression().fit(frame, [0, 1, 0, 1]), input_example=frame
    )
    return workspace


def build(workspace: Workspace, *, auth: bool) -> ServingApp:
    return serving_app(workspace, auth=auth)


@pytest.fixture
async def app(served: Workspace) -> AsyncIterator[ServingApp]:
    app = build(served, auth=True)
    await app.startup()
    yield app
    await app.shutdown()


@pytest.fixture
async def client(app: ServingApp) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app) as client:
        yield client


@pytest.fixture
def admin(served: Workspace) -> tuple[KeyRecord, dict[str, str]]:
    record, secret = served.keys.create("ops", ["admin"])
    return record, {"authorization": f"Bearer {secret}"}


def _client(app: ServingApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://keel")


def endpoint_audit(workspace: Workspace) -> list[AuditEntry]:
    return [entry for entry in workspace.registry.audit_log() if entry.entity == "endpoint"]


def arms_body(*arms: tuple[int, float], reason: str | None = None) -> dict[str, Any]:
    return {
        "arms": [{"model": f"models:/churn/{v}", "weight": w} for v, w in arms],
        "reason": reason,
    }


# -- reading -------------------------------------------------------------------------------------


async def test_the_listing_shows_each_served_endpoint_with_its_live_revision_and_policy(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]]
) -> None:
    response = await client.get("/v1/endpoints", headers=admin[1])

    assert response.status_code == 200, response.text
    [churn] = response.json()["endpoints"]
    assert churn["name"] == "churn"
    assert churn["revision"]["number"] == 1
    assert churn["revision"]["policy"]["primary"] == {
        "name": "churn",
        "version": 1,
        "uri": "models:/churn/1",
    }
    assert churn["served_revision"] == 1


async def test_an_endpoint_is_shown_as_it_is_live(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    response = await client.get(ENDPOINT, headers=admin[1])

    assert response.status_code == 200
    assert response.json() == served.deployments.get("churn").to_dict() | {"served_revision": 1}


# -- changing ------------------------------------------------------------------------------------


async def test_setting_arms_writes_a_revision_audited_with_the_keys_identity(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    record, headers = admin

    body = arms_body((1, 90), (2, 10), reason="canary")
    response = await client.put(ARMS, json=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["changed"] is True
    revision = served.deployments.get("churn").revision
    assert response.json()["revision"] == revision.to_dict()
    assert revision.number == 2
    assert revision.created_by == record.actor == f"key:ops/{record.id}"
    assert [(arm.model.version, arm.weight) for arm in revision.policy.arms] == [(1, 90), (2, 10)]
    entry = endpoint_audit(served)[-1]
    assert (entry.actor, entry.entity_key, entry.action) == (record.actor, "churn", "set")
    assert (entry.from_value, entry.to_value, entry.reason) == ("1", "2", "canary")


async def test_arms_are_pinned_as_the_cli_pins_them(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    served.registry.set_alias("churn", "challenger", 2)
    body = {"arms": [{"model": "models:/churn@challenger", "weight": 1}]}

    response = await client.put(ARMS, json=body, headers=admin[1])

    assert response.status_code == 200, response.text
    [arm] = served.deployments.get("churn").policy.arms
    assert (arm.model.uri, arm.model.version) == ("models:/churn@challenger", 2)


async def test_the_same_arms_again_write_no_revision(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    body = arms_body((1, 90), (2, 10))
    await client.put(ARMS, json=body, headers=admin[1])

    again = await client.put(ARMS, json=body, headers=admin[1])

    assert again.status_code == 200
    assert again.json()["changed"] is False
    assert again.json()["revision"]["number"] == 2
    assert len(endpoint_audit(served)) == 2  # create, set


async def test_no_arms_stop_the_split(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    await client.put(ARMS, json=arms_body((1, 90), (2, 10)), headers=admin[1])

    response = await client.put(ARMS, json={"arms": []}, headers=admin[1])

    assert response.status_code == 200
    assert served.deployments.get("churn").policy.arms == ()


async def test_a_rollback_without_a_body_restores_the_previous_policy_audited_with_the_key(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    record, headers = admin
    served.deployments.set("churn", model_uri="models:/churn/2")

    response = await client.post(ROLLBACK, headers=headers)

    assert response.status_code == 200, response.text
    live = served.deployments.get("churn").revision
    assert (live.number, live.action, live.policy.primary.version) == (3, "rollback", 1)
    assert live.created_by == record.actor
    entry = endpoint_audit(served)[-1]
    assert (entry.actor, entry.action, entry.to_value) == (record.actor, "rollback", "3")
    assert entry.reason == "rollback to revision 1"


async def test_a_rollback_to_a_named_revision_records_its_reason(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    served.deployments.set("churn", model_uri="models:/churn/2")
    served.deployments.set("churn", max_batch_size=8)

    body = {"to_revision": 1, "reason": "p99 regressed"}
    response = await client.post(ROLLBACK, json=body, headers=admin[1])

    assert response.status_code == 200
    assert response.json()["revision"]["number"] == 4
    assert response.json()["revision"]["reason"] == "rollback to revision 1: p99 regressed"
    assert served.deployments.get("churn").policy == served.deployments.revision("churn", 1).policy


async def test_a_rollback_with_nothing_to_roll_back_to_is_409(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    response = await client.post(ROLLBACK, json={}, headers=admin[1])

    assert response.status_code == 409
    assert response.json()["code"] == "deployment_refused"
    assert "nothing to roll back to" in response.json()["error"]
    assert len(endpoint_audit(served)) == 1


# -- refusals ------------------------------------------------------------------------------------

ADMIN_REQUESTS = [
    ("GET", "/v1/endpoints", None),
    ("GET", ENDPOINT, None),
    ("POST", ROLLBACK, {}),
    ("PUT", ARMS, arms_body((2, 1))),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_REQUESTS)
async def test_an_admin_request_without_a_key_is_401(
    client: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await client.request(method, path, json=body)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_request_sending_two_different_keys_is_401_whichever_header_comes_first(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    _, other = served.keys.create("app", ["predict"])
    secret = admin[1]["authorization"].removeprefix("Bearer ")
    orders = [
        [("authorization", f"Bearer {secret}"), ("x-api-key", other)],
        [("x-api-key", other), ("authorization", f"Bearer {secret}")],
    ]
    same = [("authorization", f"Bearer {secret}"), ("x-api-key", secret)]

    answers = [await client.put(ARMS, json={"arms": []}, headers=order) for order in orders]

    for response in answers:
        assert response.status_code == 401
        assert response.json()["code"] == "ambiguous_api_key"
    assert (await client.get(ENDPOINT, headers=same)).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_REQUESTS)
async def test_an_admin_request_with_a_key_lacking_the_admin_scope_is_403(
    client: httpx.AsyncClient, served: Workspace, method: str, path: str, body: Any
) -> None:
    _, secret = served.keys.create("app", ["predict", "feedback"])

    response = await client.request(method, path, json=body, headers={"x-api-key": secret})

    assert response.status_code == 403
    assert response.json()["code"] == "missing_scope"
    assert "lacks the 'admin' scope" in response.json()["error"]
    assert served.deployments.get("churn").revision.number == 1


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_REQUESTS)
async def test_admin_requests_are_refused_while_auth_is_off(
    served: Workspace, method: str, path: str, body: Any
) -> None:
    app = build(served, auth=False)
    await app.startup()
    try:
        async with _client(app) as client:
            response = await client.request(method, path, json=body)
    finally:
        await app.shutdown()

    assert response.status_code == 403
    assert response.json()["code"] == "admin_disabled"
    assert 'auth = "on"' in response.json()["error"]
    assert served.deployments.get("churn").revision.number == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], ""),
        ({}, "arms"),
        ({"arms": {"model": "models:/churn/2", "weight": 1}}, "arms"),
        ({"arms": ["models:/churn/2=10"]}, "arms[0]"),
        ({"arms": [{"model": "models:/churn/2"}]}, "arms[0]"),
        ({"arms": [{"model": 2, "weight": 1}]}, "arms[0].model"),
        ({"arms": [{"model": "models:/churn/2", "weight": "10"}]}, "arms[0].weight"),
        ({"arms": [{"model": "models:/churn/2", "weight": True}]}, "arms[0].weight"),
        ({"arms": [{"model": "models:/churn/2", "weight": 10**400}]}, "arms[0].weight"),
        ({"arms": [{"model": "models:/churn/2", "weight": -1}]}, "arms[0].weight"),
        ({"arms": [{"model": "models:/churn/2", "weight": 0}]}, "arms"),
        (arms_body((2, 1), (2, 3)), "arms[1]"),
        ({"arms": [{"model": "churn v2", "weight": 1}]}, "arms"),
        (arms_body((7, 1)), "arms"),
        ({"arms": [], "reason": 3}, "reason"),
        ({"arms": [], "weights": [1]}, "weights"),
    ],
)
async def test_an_invalid_arms_body_is_422_naming_the_field(
    client: httpx.AsyncClient,
    admin: tuple[KeyRecord, dict[str, str]],
    served: Workspace,
    body: Any,
    field: str,
) -> None:
    response = await client.put(ARMS, json=body, headers=admin[1])

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_body"
    assert [problem["field"] for problem in response.json()["problems"]] == [field]
    assert served.deployments.get("churn").revision.number == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"to_revision": "1"}, "to_revision", "must be a revision number"),
        ({"to_revision": 0}, "to_revision", "must be a revision number"),
        ({"to_revision": 9}, "to_revision", "has no revision 9"),
        ({"reason": ["why"]}, "reason", "must be text"),
        ({"revision": 1}, "revision", "not a field"),
    ],
)
async def test_an_invalid_rollback_body_is_422_naming_the_field(
    client: httpx.AsyncClient,
    admin: tuple[KeyRecord, dict[str, str]],
    served: Workspace,
    body: Any,
    field: str,
    message: str,
) -> None:
    served.deployments.set("churn", model_uri="models:/churn/2")

    response = await client.post(ROLLBACK, json=body, headers=admin[1])

    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert problem["field"] == field
    assert message in problem["message"]
    assert served.deployments.get("churn").revision.number == 2


async def test_a_body_that_is_not_json_is_400(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]]
) -> None:
    response = await client.put(ARMS, content=b"{arms", headers=admin[1])

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/endpoints/fraud", None),
        ("POST", "/v1/endpoints/fraud/rollback", {}),
        ("PUT", "/v1/endpoints/fraud/arms", arms_body((1, 1))),
    ],
)
async def test_an_endpoint_not_served_here_is_404(
    client: httpx.AsyncClient,
    admin: tuple[KeyRecord, dict[str, str]],
    method: str,
    path: str,
    body: Any,
) -> None:
    response = await client.request(method, path, json=body, headers=admin[1])

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "this server serves: churn" in response.json()["error"]


async def test_an_unreachable_metadata_database_is_503(
    app: ServingApp,
    client: httpx.AsyncClient,
    admin: tuple[KeyRecord, dict[str, str]],
    served: Workspace,
) -> None:
    assert (await client.get(ENDPOINT, headers=admin[1])).status_code == 200  # key verified
    nobody = MetadataStore(f"postgresql://keel@127.0.0.1:{free_port()}/keel")  # nothing listens
    app.deployments = DeploymentStore(nobody, served.registry, "tester")
    try:
        listing = await client.get("/v1/endpoints", headers=admin[1])
        change = await client.put(ARMS, json=arms_body((2, 1)), headers=admin[1])
    finally:
        nobody.close()

    for response in (listing, change):
        assert response.status_code == 503
        assert response.json()["code"] == "metadata_unavailable"


# -- every server follows ------------------------------------------------------------------------


async def test_a_change_made_here_is_switched_to_by_every_servers_watcher(
    app: ServingApp,
    client: httpx.AsyncClient,
    admin: tuple[KeyRecord, dict[str, str]],
    served: Workspace,
) -> None:
    other = build(served, auth=False)  # another server process of the same project
    await other.startup()
    try:
        response = await client.put(ARMS, json=arms_body((2, 1)), headers=admin[1])
        assert response.status_code == 200

        for server in (app, other):
            assert server.watcher is not None
            await server.watcher.poll()

        async with _client(other) as other_client:
            answered = await other_client.post(f"{ENDPOINT}/predict", json={"inputs": ROW})
        assert answered.json()["model"]["version"] == 2
        assert other.dataplane.runtimes["churn"].revision == 2
        assert (await client.get(ENDPOINT, headers=admin[1])).json()["served_revision"] == 2
    finally:
        await other.shutdown()


async def test_a_running_keel_serve_switches_to_a_change_made_through_the_admin_route(
    client: httpx.AsyncClient, admin: tuple[KeyRecord, dict[str, str]], served: Workspace
) -> None:
    env = {"KEEL_SERVING__REVISION_POLL_SECONDS": "0.2"}
    with ServerProcess(served.settings, env=env) as server:
        server.wait_ready()  # nothing else runs on this loop yet
        async with httpx.AsyncClient(base_url=server.url) as remote:

            async def version() -> int:
                answer = await remote.post(f"{ENDPOINT}/predict", json={"inputs": ROW})
                served_by: int = answer.json()["model"]["version"]
                return served_by

            assert await version() == 1
            response = await client.put(ARMS, json=arms_body((2, 1)), headers=admin[1])
            assert response.status_code == 200
            switched_at = time.monotonic()
            while await version() != 2:
                assert time.monotonic() - switched_at < 20, server.output
                await anyio.sleep(0.1)
        server.stop()  # SIGTERM, by the PID started here
