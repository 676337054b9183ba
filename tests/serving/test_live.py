"""Live deployment changes: a new revision is loaded in the background and switched to, a
rollback is instant from the kept runtime, a version that fails to load is never switched to,
and an unreachable metadata store leaves serving as it was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Workspace
from keel.errors import MetadataStoreUnavailable
from keel.serving._app import ServingApp
from keel.serving._server import serving_app

pytestmark = pytest.mark.anyio

ROW = {"age": 0.3, "income": 1.5}
FRAME = pd.DataFrame({"age": [0.1, -1.2, 0.7, 1.5, -0.3], "income": [1, 0, 2, 1, 0.0]})


@dataclass
class Load:
    """What eight clients posting back to back saw, in the order their answers came."""

    statuses: list[int] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    """The model version of each 200."""


@asynccontextmanager
async def under_load(client: httpx.AsyncClient) -> AsyncIterator[Load]:
    """Eight clients predicting back to back for as long as the block runs (and 50 ms before
    and after it)."""
    seen = Load()
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            response = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
            seen.statuses.append(response.status_code)
            if response.status_code == 200:
                seen.versions.append(response.json()["model"]["version"])

    clients = [asyncio.ensure_future(load()) for _ in range(8)]
    await asyncio.sleep(0.05)
    try:
        yield seen
        await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*clients)


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


@pytest.fixture
def served(workspace: Workspace) -> Workspace:
    """Endpoint ``churn`` on version 1; version 2 (other labels) registered, not yet served."""
    for labels in ([1, 0, 1, 1, 0], [0, 1, 0, 0, 1]):
        model = LogisticRegression().fit(FRAME, labels)
        workspace.registry.register("churn", model, input_example=FRAME)
    workspace.deployments.create_endpoint("churn", "models:/churn/1")
    return workspace


@pytest.fixture
async def app(served: Workspace) -> AsyncIterator[ServingApp]:
    app = serving_app(served)
    await app.startup()
    yield app
    await app.shutdown()


@pytest.fixture
async def client(app: ServingApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://keel"
    ) as client:
        yield client


async def served_version(client: httpx.AsyncClient) -> int:
    response = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    assert response.status_code == 200, response.text
    version: int = response.json()["model"]["version"]
    return version


async def test_a_new_revision_is_switched_to_without_failing_a_request(
    app: ServingApp, client: httpx.AsyncClient, served: Workspace
) -> None:
    watcher = app.watcher
    assert watcher is not None
    async with under_load(client) as seen:
        served.deployments.set("churn", model_uri="models:/churn/2", reason="new version")
        await watcher.poll()  # loads version 2 in a thread while the clients keep asking
    versions = seen.versions

    assert set(seen.statuses) == {200}
    assert versions[0] == 1
    assert versions[-1] == 2
    assert versions == sorted(versions)  # never back to 1 once 2 answered
    assert watcher.status()["churn"]["revision"] == 2
    ready = (await client.get("/readyz")).json()
    assert ready["endpoints"]["churn"]["model_version"] == 2
    assert ready["revisions"]["churn"]["kept_revisions"] == [1]


async def test_a_rollback_switches_back_to_the_kept_runtime_at_once(
    app: ServingApp, client: httpx.AsyncClient, served: Workspace
) -> None:
    watcher = app.watcher
    assert watcher is not None
    first = app.dataplane.runtimes["churn"]
    served.deployments.set("churn", model_uri="models:/churn/2")
    await watcher.poll()
    assert await served_version(client) == 2

    served.deployments.rollback("churn", 1, reason="v2 regressed")
    await watcher.poll()

    assert app.dataplane.runtimes["churn"] is first  # nothing loaded again
    assert first.revision == 3  # the rollback's own revision number
    assert await served_version(client) == 1


async def test_a_switch_and_a_rollback_under_load_fail_no_request(
    app: ServingApp, client: httpx.AsyncClient, served: Workspace
) -> None:
    watcher = app.watcher
    assert watcher is not None
    async with under_load(client) as seen:
        served.deployments.set("churn", model_uri="models:/churn/2", reason="new version")
        await watcher.poll()
        await asyncio.sleep(0.05)
        answered_before_rollback = len(seen.versions)
        served.deployments.rollback("churn", 1, reason="v2 regressed")
        await watcher.poll()  # the kept runtime of version 1 comes back while clients ask
    versions = seen.versions

    assert set(seen.statuses) == {200}
    changes = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
    assert changes == [1, 2, 1]  # each switch happened once, between two requests
    assert 2 in versions[:answered_before_rollback]
    assert versions[-1] == 1


async def test_a_version_that_fails_to_load_is_never_switched_to(
    app: ServingApp, client: httpx.AsyncClient, served: Workspace
) -> None:
    watcher = app.watcher
    assert watcher is not None
    version = served.registry.get_version("churn", 2)
    artifact = Path(served.artifacts.location(version.artifact_digest))
    artifact.write_bytes(b"tampered")
    served.deployments.set("churn", model_uri="models:/churn/2")

    await watcher.poll()

    assert await served_version(client) == 1
    status = watcher.status()["churn"]
    assert status["revision"] == 1
    assert "revision 2" in status["error"]
    assert "ArtifactCorrupted" in status["error"]
    ready = await client.get("/readyz")
    assert ready.status_code == 200  # still serving, the problem is in the detail
    assert "failed to load" in ready.json()["revisions"]["churn"]["error"]


class _Unreachable:
    """The deployment store with its database gone: every read fails as a dead server's."""

    def changed_since(self, name: str, revision: int) -> Any:
        raise MetadataStoreUnavailable("postgresql://db/keel", "connection refused")


async def test_an_unreachable_metadata_store_keeps_the_last_known_revision(
    app: ServingApp, client: httpx.AsyncClient, served: Workspace
) -> None:
    watcher = app.watcher
    assert watcher is not None
    real = watcher._deployments
    watcher._deployments = _Unreachable()  # type: ignore[assignment]

    await watcher.poll()

    assert await served_version(client) == 1
    assert "connection refused" in watcher.status()["churn"]["error"]
    served.deployments.set("churn", model_uri="models:/churn/2")
    watcher._deployments = real  # the database is back
    await watcher.poll()
    assert watcher.status()["churn"]["error"] is None
    assert await served_version(client) == 2


async def test_moving_the_alias_an_endpoint_was_set_from_switches_every_server(
    served: Workspace,
) -> None:
    served.registry.set_alias("churn", "champion", 1)
    served.deployments.set("churn", model_uri="models:/churn@champion")
    apps = [serving_app(served), serving_app(served)]  # two server processes, say
    for app in apps:
        await app.startup()
    try:
        served.registry.set_alias("churn", "champion", 2)  # from anywhere: no endpoint command
        for app in apps:
            assert app.watcher is not None
            await app.watcher.poll()
        for app in apps:
            assert app.watcher is not None
            await app.watcher.poll()  # the other's revision, if it was the one to write it

        history = served.deployments.history("churn")
        assert [r.action for r in history] == ["create", "set", "follow"]  # written once
        for app in apps:
            runtime = app.dataplane.runtimes["churn"]
            assert (runtime.revision, runtime.policy.primary.version) == (3, 2)
    finally:
        for app in apps:
            await app.shutdown()


async def test_an_alias_moved_where_the_endpoint_cannot_follow_is_reported_not_followed(
    app: ServingApp, served: Workspace
) -> None:
    served.registry.set_alias("churn", "champion", 1)
    served.deployments.set("churn", model_uri="models:/churn@champion", shadows=["models:/churn/2"])
    assert app.watcher is not None
    await app.watcher.poll()
    served.registry.set_alias("churn", "champion", 2)  # the primary would repeat the shadow

    await app.watcher.poll()

    assert app.dataplane.runtimes["churn"].policy.primary.version == 1
    error = app.watcher.status()["churn"]["error"]
    assert "cannot follow" in error
    assert "repeats models:/churn/2" in error
    assert served.deployments.get("churn").revision.number == 2
