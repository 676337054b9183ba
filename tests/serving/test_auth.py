"""API keys and rate limits on the request path: 401 without a valid key, 403 without the
scope, 429 with Retry-After over the limit; health, readiness and metrics stay open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Workspace
from keel.serving._app import ServingApp
from keel.serving._auth import Guard, auth_needed
from keel.serving._dataplane import Problem
from keel.serving._keys import KeyRecord, KeyStore
from keel.serving._ratelimit import MemoryLimiter
from keel.serving._server import serving_app

pytestmark = pytest.mark.anyio

ROW = {"age": 0.3, "income": 1.5}
PREDICT = "/v1/endpoints/churn/predict"


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


@pytest.fixture
async def app(workspace: Workspace) -> AsyncIterator[ServingApp]:
    frame = pd.DataFrame({"age": [0.1, -1.2, 0.7, 1.5], "income": [1, 0, 2, 1.0]})
    workspace.registry.register(
        "churn", LogisticRegression().fit(frame, [1, 0, 1, 0]), input_example=frame
    )
    workspace.deployments.create_endpoint("churn", "models:/churn/1")
    app = serving_app(workspace, auth=True)
    await app.startup()
    yield app
    await app.shutdown()


@pytest.fixture
async def client(app: ServingApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://keel"
    ) as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def test_a_request_without_a_key_is_401_with_a_challenge(client: httpx.AsyncClient) -> None:
    response = await client.post(PREDICT, json={"inputs": ROW})

    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_health_readiness_and_metrics_need_no_key(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/v2/health/live", "/openapi.json"):
        assert (await client.get(path)).status_code == 200, path


async def test_readiness_shows_how_keys_and_rate_limits_are_answered(
    client: httpx.AsyncClient,
) -> None:
    detail = (await client.get("/readyz")).json()

    assert detail["api_keys"]["database_reachable"] is True
    assert detail["ratelimit"]["backend"] == "memory"


async def test_a_key_with_the_scope_is_accepted_in_either_header(
    client: httpx.AsyncClient, workspace: Workspace
) -> None:
    _, secret = workspace.keys.create("app", ["predict"])

    by_bearer = await client.post(PREDICT, json={"inputs": ROW}, headers=bearer(secret))
    by_header = await client.post(PREDICT, json={"inputs": ROW}, headers={"x-api-key": secret})
    infer = await client.post(
        "/v2/models/churn/infer",
        json={"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [0.3]},
                         {"name": "income", "shape": [1], "datatype": "FP64", "data": [1.5]}]},
        headers=bearer(secret),
    )  # fmt: skip

    assert (by_bearer.status_code, by_header.status_code, infer.status_code) == (200, 200, 200)


async def test_wrong_and_revoked_keys_are_401_with_one_message(
    client: httpx.AsyncClient, workspace: Workspace
) -> None:
    record, secret = workspace.keys.create("app", ["predict"])
    assert (await client.post(PREDICT, json={"inputs": ROW}, headers=bearer(secret))).is_success
    workspace.keys.revoke(record.id, "leaked")

    revoked = await client.post(PREDICT, json={"inputs": ROW}, headers=bearer(secret))
    wrong = await client.post(PREDICT, json={"inputs": ROW}, headers=bearer(secret[:-4] + "AAAA"))
    garbage = await client.post(PREDICT, json={"inputs": ROW}, headers=bearer("nonsense"))

    for response in (revoked, wrong, garbage):
        assert response.status_code == 401
        assert response.json() == {"error": "invalid API key", "code": "invalid_api_key"}


async def test_a_key_without_the_scope_is_403(
    client: httpx.AsyncClient, workspace: Workspace
) -> None:
    _, feedback_only = workspace.keys.create("labeler", ["feedback"])
    _, predict_only = workspace.keys.create("app", ["predict"])

    predict = await client.post(PREDICT, json={"inputs": ROW}, headers=bearer(feedback_only))
    feedback = await client.post(
        "/v1/endpoints/churn/feedback",
        json={"feedback": {"prediction_id": "x", "value": 1}},
        headers=bearer(predict_only),
    )

    assert predict.status_code == 403
    assert "lacks the 'predict' scope" in predict.json()["error"]
    assert feedback.status_code == 403


async def test_a_key_over_its_rate_limit_is_429_with_retry_after(
    client: httpx.AsyncClient, workspace: Workspace
) -> None:
    _, secret = workspace.keys.create("app", ["predict"], rate_per_second=0.5, burst=2)

    statuses = [
        (await client.post(PREDICT, json={"inputs": ROW}, headers=bearer(secret))).status_code
        for _ in range(2)
    ]
    over = await client.post(PREDICT, json={"inputs": ROW}, headers=bearer(secret))

    assert statuses == [200, 200]
    assert over.status_code == 429
    assert over.json()["code"] == "rate_limited"
    assert int(over.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("setting", "host", "needed"),
    [
        ("auto", "127.0.0.1", False),
        ("auto", "::1", False),
        ("auto", "localhost", False),
        ("auto", "0.0.0.0", True),
        ("auto", "10.1.2.3", True),
        ("auto", "serving.internal", True),
        ("on", "127.0.0.1", True),
        ("off", "0.0.0.0", False),
    ],
)
def test_auth_is_on_by_default_off_loopback(setting: str, host: str, needed: bool) -> None:
    assert auth_needed(setting, host) is needed


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _headers(secret: str) -> dict[bytes, bytes]:
    return {b"authorization": f"Bearer {secret}".encode()}


async def test_a_remembered_key_header_is_checked_again_once_the_cache_ttl_is_over(
    workspace: Workspace,
) -> None:
    clock = FakeClock()
    guard = Guard(KeyStore(workspace.store, "server", cache_ttl=5.0, clock=clock), MemoryLimiter())
    record, secret = workspace.keys.create("app", ["predict"])
    assert (await guard.check(_headers(secret), "predict")).id == record.id  # the database
    assert (await guard.check(_headers(secret), "predict")).id == record.id  # remembered
    workspace.keys.revoke(record.id, "leaked")  # by another process's store

    clock.now += 4.9
    still = await guard.check(_headers(secret), "predict")
    clock.now += 0.2
    with pytest.raises(Problem) as refused:
        await guard.check(_headers(secret), "predict")

    assert still.id == record.id
    assert (refused.value.status, refused.value.code) == (401, "invalid_api_key")


async def test_a_remembered_key_header_is_refused_at_once_when_its_store_revokes_it(
    workspace: Workspace,
) -> None:
    keys = KeyStore(workspace.store, "server", cache_ttl=60.0, clock=FakeClock())
    guard = Guard(keys, MemoryLimiter())
    record, secret = keys.create("app", ["predict"])
    for _ in range(3):
        await guard.check(_headers(secret), "predict")

    keys.revoke(record.id, "leaked")

    with pytest.raises(Problem) as refused:
        await guard.check(_headers(secret), "predict")
    assert refused.value.status == 401


async def test_a_remembered_bearer_header_does_not_let_the_same_bytes_in_as_x_api_key(
    workspace: Workspace,
) -> None:
    guard = Guard(KeyStore(workspace.store, "server", clock=FakeClock()), MemoryLimiter())
    _, secret = workspace.keys.create("app", ["predict"])
    for _ in range(2):
        await guard.check(_headers(secret), "predict")

    with pytest.raises(Problem) as refused:
        await guard.check({b"x-api-key": f"Bearer {secret}".encode()}, "predict")

    assert refused.value.code == "invalid_api_key"
    key = await guard.check({b"x-api-key": secret.encode()}, "predict")  # the key itself is fine
    assert key.name == "app"


async def test_a_key_with_an_expiry_is_refused_at_its_expiry_however_often_it_was_used(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall = [1_000_000.0]
    for module in ("keel.serving._keys", "keel.serving._key_record"):
        monkeypatch.setattr(f"{module}.now", lambda: wall[0])
    keys = KeyStore(workspace.store, "server", cache_ttl=60.0, clock=FakeClock())
    guard = Guard(keys, MemoryLimiter())
    _, secret = keys.create("temp", ["predict"], expires_at=1_000_010.0)
    for _ in range(3):
        await guard.check(_headers(secret), "predict")

    wall[0] = 1_000_010.0

    with pytest.raises(Problem) as refused:
        await guard.check(_headers(secret), "predict")
    assert refused.value.code == "invalid_api_key"


async def test_concurrent_requests_of_a_key_the_store_must_ask_for_share_one_query(
    workspace: Workspace,
) -> None:
    keys = KeyStore(workspace.store, "server", clock=FakeClock())
    guard = Guard(keys, MemoryLimiter())
    record, secret = keys.create("app", ["predict"])
    _, other = keys.create("other", ["predict"])
    asked: list[str] = []
    authenticate = keys.authenticate

    def counted(secret: str) -> KeyRecord:
        asked.append(secret)
        return authenticate(secret)

    keys.authenticate = counted  # type: ignore[method-assign]
    wrong = secret[:-4] + "AAAA"

    answers = await asyncio.gather(
        *(guard.check(_headers(s), "predict") for s in [secret] * 50 + [other] * 5 + [wrong] * 5),
        return_exceptions=True,
    )

    assert sorted(set(asked)) == sorted({secret, other, wrong})
    assert len(asked) == 3  # one query per distinct key, not one per request
    assert {a.id for a in answers[:50] if isinstance(a, KeyRecord)} == {record.id}
    assert all(isinstance(a, KeyRecord) for a in answers[:55])
    assert all(isinstance(a, Problem) and a.status == 401 for a in answers[55:])


async def test_a_request_cancelled_while_its_key_is_asked_for_leaves_the_others_answered(
    workspace: Workspace,
) -> None:
    keys = KeyStore(workspace.store, "server", clock=FakeClock())
    guard = Guard(keys, MemoryLimiter())
    record, secret = keys.create("app", ["predict"])
    first = asyncio.ensure_future(guard.check(_headers(secret), "predict"))
    second = asyncio.ensure_future(guard.check(_headers(secret), "predict"))
    await asyncio.sleep(0)  # both wait on the one query now

    first.cancel()

    assert (await second).id == record.id
    assert first.cancelled()


async def test_a_key_padded_past_the_remembered_length_is_checked_every_time(
    workspace: Workspace,
) -> None:
    guard = Guard(KeyStore(workspace.store, "server", clock=FakeClock()), MemoryLimiter())
    record, secret = workspace.keys.create("app", ["predict"])
    padded = {b"authorization": f"Bearer {secret}{' ' * 300}".encode()}

    answers = [await guard.check(padded, "predict") for _ in range(3)]

    assert {key.id for key in answers} == {record.id}
    assert guard._remembered == {}  # a client's padding never becomes memory the server holds
