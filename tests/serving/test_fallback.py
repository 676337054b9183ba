"""Fallback and circuit breaker on the request path: a primary that raises, hangs or keeps
failing is answered for by the endpoint's fallback (a simpler model version or a default
prediction), the log and the response say so and why, and an open breaker recovers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from keel import Settings, Workspace
from keel.serving import DefaultPrediction
from keel.serving._app import ServingApp
from keel.serving._predlog import Compactor, LogReader
from keel.serving._server import serving_app

from .conftest import sqlite_settings

pytestmark = pytest.mark.anyio

FRAME = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
ROW = {"x": 1.5}


class Flaky:
    """A regressor (2x) that raises while ``down`` exists, and sleeps while ``slow`` exists."""

    def __init__(self, down: Path, slow: Path) -> None:
        self.down = str(down)
        self.slow = str(slow)
        self.calls = 0

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        self.calls += 1
        if Path(self.slow).exists():
            time.sleep(0.3)
        if Path(self.down).exists():
            raise RuntimeError("the model is down")
        return frame["x"].to_numpy() * 2


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sqlite_settings(tmp_path, breaker_min_requests=5, breaker_open_seconds=0.2)


@pytest.fixture
def flags(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "down", tmp_path / "slow"


@pytest.fixture
def registered(workspace: Workspace, flags: tuple[Path, Path]) -> Workspace:
    """``flaky`` v1 (the primary, 2x) and ``simple`` v1 (a LinearRegression, x + 10)."""
    workspace.registry.register("flaky", Flaky(*flags), input_example=FRAME)
    simple = LinearRegression().fit(FRAME, FRAME["x"] + 10)
    workspace.registry.register("simple", simple, input_example=FRAME)
    return workspace


async def started(workspace: Workspace) -> ServingApp:
    app = serving_app(workspace)
    await app.startup()
    return app


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    apps: list[ServingApp] = []
    clients: list[httpx.AsyncClient] = []

    async def make(workspace: Workspace) -> tuple[ServingApp, httpx.AsyncClient]:
        app = await started(workspace)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k")
        apps.append(app)
        clients.append(client)
        return app, client

    yield make
    for client in clients:
        await client.aclose()
    for app in apps:
        await app.shutdown()


def logged(app: ServingApp, sql: str) -> list[dict[str, Any]]:
    app.dataplane.log.rotate()
    Compactor(app.dataplane.log.directory).run_once()
    rows: list[dict[str, Any]] = LogReader(app.dataplane.log.directory).query(sql).to_pylist()
    return rows


async def test_a_failing_primary_is_answered_by_the_fallback_on_every_request(
    registered: Workspace, flags: tuple[Path, Path], client_for: Any
) -> None:
    registered.deployments.create_endpoint("churn", "models:/flaky/1", fallback="models:/simple/1")
    app, client = await client_for(registered)
    flags[0].touch()

    responses: list[httpx.Response] = []
    for _ in range(3):  # three waves of 20 concurrent requests
        responses += await asyncio.gather(
            *(client.post("/v1/endpoints/churn/predict", json={"inputs": ROW}) for _ in range(20))
        )

    assert {r.status_code for r in responses} == {200}
    bodies = [r.json() for r in responses]
    assert {b["model"]["name"] for b in bodies} == {"simple"}
    assert {b["fallback"] for b in bodies} <= {"model_error", "breaker_open"}
    assert "breaker_open" in {b["fallback"] for b in bodies}  # the breaker opened on the way
    assert all(b["predictions"][0]["prediction"] == pytest.approx(11.5) for b in bodies)
    rows = logged(app, "SELECT model, model_version, fallback FROM predictions")
    assert len(rows) == 60
    assert {(row["model"], row["model_version"]) for row in rows} == {("simple", 1)}
    assert all(row["fallback"] in ("model_error", "breaker_open") for row in rows)


async def test_a_default_prediction_answers_over_both_apis(
    registered: Workspace, flags: tuple[Path, Path], client_for: Any
) -> None:
    registered.deployments.create_endpoint(
        "churn", "models:/flaky/1", fallback=DefaultPrediction(0.0)
    )
    _, client = await client_for(registered)
    flags[0].touch()

    native = await client.post("/v1/endpoints/churn/predict", json={"inputs": [ROW, ROW]})
    v2 = await client.post(
        "/v2/models/churn/infer",
        json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.5]}]},
    )

    assert native.status_code == 200
    assert native.json()["fallback"] == "model_error"
    assert [p["prediction"] for p in native.json()["predictions"]] == [0.0, 0.0]
    assert v2.status_code == 200
    assert v2.json()["parameters"] == {"fallback": "model_error"}
    assert v2.json()["outputs"][0]["data"] == [0.0]


async def test_a_model_that_hangs_past_the_timeout_is_answered_by_the_fallback(
    registered: Workspace, flags: tuple[Path, Path], client_for: Any
) -> None:
    registered.deployments.create_endpoint(
        "churn", "models:/flaky/1", fallback="models:/simple/1", timeout_ms=50
    )
    _, client = await client_for(registered)
    flags[1].touch()

    response = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})

    assert response.status_code == 200
    assert response.json()["fallback"] == "timeout"
    assert response.json()["model"] == {"name": "simple", "version": 1}


async def test_without_a_fallback_failures_are_500_then_503_once_the_breaker_opens(
    registered: Workspace, flags: tuple[Path, Path], client_for: Any
) -> None:
    registered.deployments.create_endpoint("churn", "models:/flaky/1")
    _, client = await client_for(registered)
    flags[0].touch()

    statuses = [
        (await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})).status_code
        for _ in range(8)
    ]

    assert statuses[:5] == [500] * 5
    assert statuses[5:] == [503] * 3
    refused = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    assert refused.json()["code"] == "breaker_open"


async def test_an_open_breaker_recovers_when_the_model_heals(
    registered: Workspace, flags: tuple[Path, Path], client_for: Any
) -> None:
    registered.deployments.create_endpoint(
        "churn", "models:/flaky/1", fallback=DefaultPrediction(-1.0)
    )
    app, client = await client_for(registered)
    model = app.dataplane.runtimes["churn"]._model
    assert model is not None
    flaky: Flaky = model.model
    flags[0].touch()
    for _ in range(5):
        await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    breaker = app.dataplane.runtimes["churn"].breaker
    assert breaker is not None
    assert breaker.state.value == "open"
    ready = await client.get("/readyz")
    assert ready.status_code == 200  # the fallback answers: still ready
    assert ready.json()["endpoints"]["churn"]["breaker"] == "open"
    calls = flaky.calls
    while_open = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    assert while_open.json()["fallback"] == "breaker_open"
    assert flaky.calls == calls  # the model was not asked while the breaker was open

    flags[0].unlink()  # the model heals
    await asyncio.sleep(0.25)  # past breaker_open_seconds: probes go through
    answers = [
        (await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})).json()
        for _ in range(5)
    ]

    assert breaker.state.value == "closed"
    assert "fallback" not in answers[-1]
    assert answers[-1]["predictions"][0]["prediction"] == pytest.approx(3.0)
    metrics = (await client.get("/metrics")).text
    assert 'keel_breaker_state{endpoint="churn",state="closed"} 1.0' in metrics
    assert 'keel_breaker_transitions_total{endpoint="churn",state="open"} 1.0' in metrics
    assert 'keel_fallbacks_total{endpoint="churn",reason="breaker_open"}' in metrics


def test_the_fallback_is_set_and_removed_as_revisions(registered: Workspace) -> None:
    deployments = registered.deployments
    deployments.create_endpoint("churn", "models:/flaky/1")

    with_model = deployments.set("churn", fallback="models:/simple/1", reason="safety net")
    with_value = deployments.set("churn", fallback=DefaultPrediction(0.0))
    kept = deployments.set("churn", max_batch_size=8)
    removed = deployments.set("churn", fallback=None)

    assert with_model.policy.fallback is not None
    assert with_value.policy.fallback == DefaultPrediction(0.0)
    assert kept.policy.fallback == DefaultPrediction(0.0)
    assert removed.policy.fallback is None
    assert [r.number for r in deployments.history("churn")] == [1, 2, 3, 4, 5]
