"""The prediction cache on the request path: a record the model version already answered is
answered from the cache (whatever its field order or number formatting), flagged in the log and
counted; a new version starts cold; fallback answers are never cached; an unreachable Redis is
bypassed, not fatal."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from keel import Settings, Workspace
from keel.errors import InvalidPolicy
from keel.serving import DefaultPrediction
from keel.serving._app import ServingApp
from keel.serving._predlog import Compactor, LogReader
from keel.serving._server import serving_app

pytestmark = pytest.mark.anyio

FRAME = pd.DataFrame({"x": [0.0, 1.0, 2.0], "n": [1, 2, 3]})


class Counting:
    """A regressor (x + n) that counts the rows it was asked for; raises while ``down`` exists."""

    def __init__(self, down: Path, offset: float = 0.0) -> None:
        self.down = str(down)
        self.offset = offset
        self.rows = 0

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        if Path(self.down).exists():
            raise RuntimeError("down")
        self.rows += len(frame)
        return (frame["x"] + frame["n"]).to_numpy() + self.offset


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


@pytest.fixture
def down(tmp_path: Path) -> Path:
    return tmp_path / "down"


@pytest.fixture
def registered(workspace: Workspace, down: Path) -> Workspace:
    workspace.registry.register("m", Counting(down), input_example=FRAME)
    workspace.registry.register("m", Counting(down, offset=100.0), input_example=FRAME)
    return workspace


@pytest.fixture
async def served(registered: Workspace) -> AsyncIterator[tuple[ServingApp, httpx.AsyncClient]]:
    registered.deployments.create_endpoint(
        "api", "models:/m/1", cache=True, fallback=DefaultPrediction(-1.0)
    )
    app = serving_app(registered)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://keel"
    ) as client:
        yield app, client
    await app.shutdown()


def model_rows(app: ServingApp) -> int:
    loaded = app.dataplane.runtimes["api"]._model
    assert loaded is not None
    rows: int = loaded.model.rows
    return rows


async def predict(client: httpx.AsyncClient, inputs: Any) -> dict[str, Any]:
    response = await client.post("/v1/endpoints/api/predict", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_record_already_answered_comes_from_the_cache(
    served: tuple[ServingApp, httpx.AsyncClient],
) -> None:
    app, client = served
    first = await predict(client, {"x": 1.5, "n": 2})
    rows = model_rows(app)

    again = await predict(client, {"n": 2.0, "x": 1.50})  # other order, other formatting

    assert again["predictions"][0]["prediction"] == first["predictions"][0]["prediction"] == 3.5
    assert model_rows(app) == rows  # the model was not asked
    app.dataplane.log.rotate()
    Compactor(app.dataplane.log.directory).run_once()
    logged = LogReader(app.dataplane.log.directory).query(
        "SELECT cache_hit FROM predictions ORDER BY time"
    )
    assert [row["cache_hit"] for row in logged.to_pylist()] == [False, True]
    metrics = (await client.get("/metrics")).text
    assert 'keel_cache_lookups_total{endpoint="api",result="hit"} 1.0' in metrics
    assert 'keel_cache_lookups_total{endpoint="api",result="miss"} 1.0' in metrics


async def test_only_the_missing_rows_of_a_request_reach_the_model(
    served: tuple[ServingApp, httpx.AsyncClient],
) -> None:
    app, client = served
    await predict(client, [{"x": 1.0, "n": 1}, {"x": 2.0, "n": 1}])
    rows = model_rows(app)

    answer = await predict(client, [{"x": 2.0, "n": 1}, {"x": 9.0, "n": 1}, {"x": 1.0, "n": 1}])

    assert [p["prediction"] for p in answer["predictions"]] == [3.0, 10.0, 2.0]
    assert model_rows(app) == rows + 1


async def test_a_new_model_version_never_sees_the_old_versions_answers(
    served: tuple[ServingApp, httpx.AsyncClient], registered: Workspace
) -> None:
    app, client = served
    await predict(client, {"x": 1.0, "n": 1})
    registered.deployments.set("api", model_uri="models:/m/2")
    assert app.watcher is not None
    await app.watcher.poll()

    answer = await predict(client, {"x": 1.0, "n": 1})

    assert answer["predictions"][0]["prediction"] == 102.0


async def test_fallback_answers_are_not_cached(
    served: tuple[ServingApp, httpx.AsyncClient], down: Path
) -> None:
    _, client = served
    down.touch()
    assert (await predict(client, {"x": 1.0, "n": 1}))["fallback"] == "model_error"
    down.unlink()

    answer = await predict(client, {"x": 1.0, "n": 1})

    assert "fallback" not in answer
    assert answer["predictions"][0]["prediction"] == 2.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_an_unreachable_redis_cache_is_bypassed(
    registered: Workspace, settings: Settings
) -> None:
    serving = settings.serving.model_copy(
        update={"cache_url": f"redis://127.0.0.1:{_closed_port()}/0"}
    )
    with Workspace(settings.model_copy(update={"serving": serving})) as workspace:
        workspace.deployments.create_endpoint("api", "models:/m/1", cache=True)
        app = serving_app(workspace)
        await app.startup()
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://keel"
            ) as client:
                answers = [await predict(client, {"x": 1.0, "n": 1}) for _ in range(3)]
                ready = (await client.get("/readyz")).json()
        finally:
            await app.shutdown()

    assert [a["predictions"][0]["prediction"] for a in answers] == [2.0, 2.0, 2.0]
    assert ready["cache"]["backend"] == "redis"
    assert ready["cache"]["reachable"] is False


def test_the_cache_cannot_be_on_with_feature_lookup() -> None:
    from keel.serving import PinnedModel, TrafficPolicy

    with pytest.raises(InvalidPolicy, match="cannot be on with features"):
        TrafficPolicy(primary=PinnedModel("m", 1, "models:/m/1"), features=True, cache=True)
