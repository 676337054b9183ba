"""Weighted arms on the request path: each request is answered by one arm, chosen by weight;
the same routing key always gets the same arm, in every server process; the log says which."""

from __future__ import annotations

import collections
import concurrent.futures
import http.client
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Settings, Workspace
from keel.errors import InvalidPolicy
from keel.serving._app import ServingApp
from keel.serving._predlog import Compactor, LogReader
from keel.serving._server import serving_app

from ._server_process import ROW, ServerProcess

pytestmark = pytest.mark.anyio

PREDICT = "/v1/endpoints/churn/predict"
FRAME = pd.DataFrame(
    {
        "age": [0.1, -1.2, 0.7, 1.5, -0.3, -0.8],
        "income": [1, 0, 2, 1, 0, 3.0],
        "visits": [1, 4, 2, 0, 3, 5],
    }
)


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


@pytest.fixture
def split(workspace: Workspace) -> Workspace:
    """Endpoint ``churn``: versions 1 and 2 of the same model, 70/30."""
    for labels in ([1, 0, 1, 1, 0, 0], [0, 1, 0, 0, 1, 1]):
        model = LogisticRegression().fit(FRAME, labels)
        workspace.registry.register("churn", model, input_example=FRAME)
    workspace.deployments.create_endpoint(
        "churn", "models:/churn/1", arms=[("models:/churn/1", 70), ("models:/churn/2", 30)]
    )
    return workspace


@pytest.fixture
async def client(split: Workspace) -> AsyncIterator[tuple[ServingApp, httpx.AsyncClient]]:
    app = serving_app(split)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://keel"
    ) as client:
        yield app, client
    await app.shutdown()


async def version_for(client: httpx.AsyncClient, key: str | None) -> int:
    headers = {} if key is None else {"x-keel-routing-key": key}
    response = await client.post(PREDICT, json={"inputs": ROW}, headers=headers)
    assert response.status_code == 200, response.text
    version: int = response.json()["model"]["version"]
    return version


async def test_the_same_routing_key_always_gets_the_same_arm(
    client: tuple[ServingApp, httpx.AsyncClient],
) -> None:
    _, http = client
    for key in (f"user-{n}" for n in range(20)):
        versions = {await version_for(http, key) for _ in range(3)}
        assert len(versions) == 1, key


async def test_requests_split_by_the_arms_weights(
    client: tuple[ServingApp, httpx.AsyncClient],
) -> None:
    app, http = client
    counts = collections.Counter([await version_for(http, f"user-{n}") for n in range(400)])

    # 70/30 of 400: a binomial with sd ≈ 9.2; ±5 sd
    assert 280 - 46 <= counts[1] <= 280 + 46
    assert counts[1] + counts[2] == 400
    app.dataplane.log.rotate()
    Compactor(app.dataplane.log.directory).run_once()
    logged = LogReader(app.dataplane.log.directory).query(
        "SELECT arm, model_version, count(*) AS n FROM predictions GROUP BY ALL ORDER BY arm"
    )
    rows = {(r["arm"], r["model_version"]): r["n"] for r in logged.to_pylist()}
    assert rows == {("models:/churn/1", 1): counts[1], ("models:/churn/2", 2): counts[2]}


async def test_requests_without_a_key_still_follow_the_weights(
    client: tuple[ServingApp, httpx.AsyncClient],
) -> None:
    _, http = client
    counts = collections.Counter([await version_for(http, None) for _ in range(300)])

    assert 210 - 40 <= counts[1] <= 210 + 40


def test_arms_are_set_and_removed_as_revisions(split: Workspace) -> None:
    deployments = split.deployments
    changed = deployments.set("churn", arms=[("models:/churn/1", 50), ("models:/churn/2", 50)])
    removed = deployments.set("churn", arms=[])

    assert [a.weight for a in changed.policy.arms] == [50, 50]
    assert removed.policy.arms == ()
    with pytest.raises(InvalidPolicy, match="weight"):
        deployments.set("churn", arms=[("models:/churn/1", -1)])


@pytest.mark.slow
def test_sticky_assignment_holds_for_10000_keys_across_two_server_processes(
    split: Workspace, settings: Settings
) -> None:
    keys = [f"customer-{n}" for n in range(10_000)]
    body = json.dumps({"inputs": ROW})

    def assignments(server: ServerProcess) -> list[Any]:
        # one kept-alive connection with the standard library: ~5x less client time than httpx
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        versions = []
        try:
            for key in keys:
                connection.request(
                    "POST",
                    PREDICT,
                    body,
                    {"content-type": "application/json", "x-keel-routing-key": key},
                )
                response = connection.getresponse()
                assert response.status == 200
                versions.append(json.loads(response.read())["model"]["version"])
        finally:
            connection.close()
        return versions

    with ServerProcess(settings) as first, ServerProcess(settings) as second:
        first.wait_ready()
        second.wait_ready()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            seen_first, seen_second = pool.map(assignments, [first, second])

    assert seen_first == seen_second
    assert 0.65 < seen_first.count(1) / len(keys) < 0.75


async def test_the_routing_field_keeps_one_customer_on_one_arm_without_a_header(
    split: Workspace,
) -> None:
    split.deployments.set("churn", routing_field="visits")
    app = serving_app(split)
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://keel"
        ) as http:
            arms: dict[int, set[int]] = collections.defaultdict(set)
            for visits in range(12):
                for age in (-1.0, 0.0, 0.5, 1.0):  # other fields vary: the arm does not
                    response = await http.post(
                        PREDICT, json={"inputs": {**ROW, "age": age, "visits": visits}}
                    )
                    arms[visits].add(response.json()["model"]["version"])
            by_header = {
                await version_for(http, f"user-{n}") for n in range(40)
            }  # the header still wins: both arms are reached although visits stays 2
    finally:
        await app.shutdown()

    assert all(len(versions) == 1 for versions in arms.values()), arms
    assert {v for versions in arms.values() for v in versions} == {1, 2}
    assert by_header == {1, 2}
