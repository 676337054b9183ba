"""Shadow versions: every request is mirrored to them in the background; their answers are
logged next to the primary's (same prediction id, ``shadow`` true) and never returned, and
their failures or slowness never reach the caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LinearRegression

from keel import Settings, Workspace
from keel.serving._app import ServingApp
from keel.serving._predlog import Compactor, LogReader
from keel.serving._server import serving_app
from keel.serving._shadow import same_prediction

from .conftest import sqlite_settings

pytestmark = pytest.mark.anyio

PREDICT = "/v1/endpoints/churn/predict"
FRAME = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})


class Doubler:
    """A regressor answering 2x; raises while ``down`` exists, sleeps ``delay`` s a call."""

    def __init__(self, down: Path | None = None, delay: float = 0.0) -> None:
        self.down = None if down is None else str(down)
        self.delay = delay

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        if self.delay:
            time.sleep(self.delay)
        if self.down is not None and Path(self.down).exists():
            raise RuntimeError("the shadow is broken")
        return frame["x"].to_numpy() * 2


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sqlite_settings(tmp_path)


@pytest.fixture
def down(tmp_path: Path) -> Path:
    return tmp_path / "down"


@pytest.fixture
def registered(workspace: Workspace, down: Path) -> Workspace:
    """``primary`` v1 (2x), ``twin`` v1 (2x too), ``plus`` v1 (x + 100), ``broken`` v1 (2x,
    raising while ``down`` exists) and ``slow`` v1 (2x, 0.5 s a call)."""
    registry = workspace.registry
    registry.register("primary", Doubler(), input_example=FRAME)
    registry.register("twin", Doubler(), input_example=FRAME)
    registry.register("plus", LinearRegression().fit(FRAME, FRAME["x"] + 100), input_example=FRAME)
    registry.register("broken", Doubler(down), input_example=FRAME)
    registry.register("slow", Doubler(delay=0.5), input_example=FRAME)
    return workspace


Started = Callable[[Workspace], Awaitable[tuple[ServingApp, httpx.AsyncClient]]]


@pytest.fixture
async def start() -> AsyncIterator[Started]:
    opened: list[tuple[ServingApp, httpx.AsyncClient]] = []

    async def make(workspace: Workspace) -> tuple[ServingApp, httpx.AsyncClient]:
        app = serving_app(workspace)
        await app.startup()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k")
        opened.append((app, client))
        return app, client

    yield make
    for app, client in opened:
        await client.aclose()
        await app.shutdown()


async def predict_many(client: httpx.AsyncClient, count: int) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(client.post(PREDICT, json={"inputs": {"x": float(i)}}) for i in range(count))
        )
    )


def logged(app: ServingApp, sql: str) -> list[dict[str, Any]]:
    app.dataplane.log.rotate()
    Compactor(app.dataplane.log.directory).run_once()
    rows: list[dict[str, Any]] = LogReader(app.dataplane.log.directory).query(sql).to_pylist()
    return rows


def metric(app: ServingApp, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(app.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


async def settle(app: ServingApp) -> None:
    """Wait until no request is being mirrored to a shadow any more."""
    runtime = app.dataplane.runtimes["churn"]
    assert runtime.shadows is not None
    for _ in range(500):
        if runtime.shadows.pending == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the shadows did not settle in 5 s")


async def test_a_shadows_answers_are_logged_under_the_primarys_ids_and_never_returned(
    registered: Workspace, start: Started
) -> None:
    registered.deployments.create_endpoint("churn", "models:/primary/1", shadows=["models:/plus/1"])
    app, client = await start(registered)

    responses = await predict_many(client, 10)
    await settle(app)

    assert {r.status_code for r in responses} == {200}
    answers = {
        p["prediction_id"]: p["prediction"] for r in responses for p in r.json()["predictions"]
    }
    assert {r.json()["model"]["name"] for r in responses} == {"primary"}
    rows = logged(app, "SELECT prediction_id, model, shadow, prediction FROM predictions")
    primary = {r["prediction_id"]: r for r in rows if not r["shadow"]}
    shadow = {r["prediction_id"]: r for r in rows if r["shadow"]}
    assert set(primary) == set(shadow) == set(answers)
    for prediction_id, answer in answers.items():
        assert primary[prediction_id]["model"] == "primary"
        assert shadow[prediction_id]["model"] == "plus"
        # The shadow (x + 100) differs from what the caller got (2x), which the log shows.
        assert float(shadow[prediction_id]["prediction"]) != answer


async def test_show_lists_the_shadows_answers_beside_the_prediction_and_its_feedback(
    registered: Workspace, start: Started
) -> None:
    registered.deployments.create_endpoint(
        "churn", "models:/primary/1", shadows=["models:/plus/1", "models:/twin/1"]
    )
    app, client = await start(registered)
    response = await client.post(PREDICT, json={"inputs": {"x": 4.0}})
    prediction_id = response.json()["predictions"][0]["prediction_id"]
    await client.post(
        "/v1/endpoints/churn/feedback",
        json={"feedback": {"prediction_id": prediction_id, "value": 8}},
    )
    await settle(app)
    logged(app, "SELECT 1")  # compacts

    found = LogReader(app.dataplane.log.directory).prediction_with_feedback(prediction_id)

    assert found is not None
    assert found["prediction"]["model"] == "primary"
    assert found["prediction"]["shadow"] is False
    assert sorted((s["model"], s["prediction"]) for s in found["shadows"]) == [
        ("plus", pytest.approx(104.0)),
        ("twin", 8.0),
    ]
    assert [f["value"] for f in found["feedback"]] == [8]


async def test_the_disagreement_rate_counts_rows_where_the_shadow_answers_otherwise(
    registered: Workspace, start: Started
) -> None:
    registered.deployments.create_endpoint(
        "churn", "models:/primary/1", shadows=["models:/plus/1", "models:/twin/1"]
    )
    app, client = await start(registered)

    await predict_many(client, 12)
    await settle(app)

    for model, disagreements in (("models:/plus/1", 12), ("models:/twin/1", 0)):
        labels = {"endpoint": "churn", "model": model}
        assert metric(app, "keel_shadow_compared_rows_total", **labels) == 12
        assert metric(app, "keel_shadow_disagreements_total", **labels) == disagreements
        assert metric(app, "keel_shadow_requests_total", outcome="ok", **labels) == 12


async def test_a_failing_shadow_never_reaches_the_callers(
    registered: Workspace, start: Started, down: Path
) -> None:
    registered.deployments.create_endpoint(
        "churn", "models:/primary/1", shadows=["models:/broken/1"]
    )
    app, client = await start(registered)
    down.touch()

    responses = await predict_many(client, 30)
    await settle(app)

    assert {r.status_code for r in responses} == {200}
    assert {p["prediction"] for r in responses for p in r.json()["predictions"]} == {
        2.0 * i for i in range(30)
    }
    labels = {"endpoint": "churn", "model": "models:/broken/1", "outcome": "error"}
    assert metric(app, "keel_shadow_requests_total", **labels) == 30
    assert logged(app, "SELECT * FROM predictions WHERE shadow") == []
    # The primary's breaker heard nothing of the shadow's failures.
    assert app.dataplane.runtimes["churn"].breaker is not None
    assert app.dataplane.runtimes["churn"].breaker.state.value == "closed"


async def test_a_slow_shadow_never_slows_the_callers(registered: Workspace, start: Started) -> None:
    registered.deployments.create_endpoint("churn", "models:/primary/1", shadows=["models:/slow/1"])
    app, client = await start(registered)
    await client.post(PREDICT, json={"inputs": {"x": 0.0}})  # warm

    took = []
    for i in range(8):  # one after another: each would wait 0.5 s if the shadow were awaited
        started = time.perf_counter()
        response = await client.post(PREDICT, json={"inputs": {"x": float(i)}})
        took.append(time.perf_counter() - started)
        assert response.status_code == 200

    assert max(took) < 0.25, took
    await settle(app)
    labels = {"endpoint": "churn", "model": "models:/slow/1"}
    assert metric(app, "keel_shadow_requests_total", outcome="ok", **labels) == 9


async def test_a_shadow_too_slow_for_the_endpoints_timeout_gives_up_quietly(
    registered: Workspace, start: Started
) -> None:
    registered.deployments.create_endpoint(
        "churn", "models:/primary/1", shadows=["models:/slow/1"], timeout_ms=100
    )
    app, client = await start(registered)

    responses = await predict_many(client, 3)
    await settle(app)

    assert {r.status_code for r in responses} == {200}
    assert "fallback" not in responses[0].json()
    labels = {"endpoint": "churn", "model": "models:/slow/1", "outcome": "timeout"}
    assert metric(app, "keel_shadow_requests_total", **labels) >= 1


async def test_requests_beyond_the_pending_bound_are_dropped_not_queued(
    registered: Workspace, start: Started
) -> None:
    registered.deployments.create_endpoint("churn", "models:/primary/1", shadows=["models:/slow/1"])
    app, client = await start(registered)
    mirror = app.dataplane.runtimes["churn"].shadows
    assert mirror is not None
    mirror.max_pending = 2

    responses = []
    for i in range(6):
        responses.append(await client.post(PREDICT, json={"inputs": {"x": float(i)}}))

    assert {r.status_code for r in responses} == {200}
    labels = {"endpoint": "churn", "model": "models:/slow/1"}
    assert metric(app, "keel_shadow_requests_total", outcome="dropped", **labels) == 4
    assert mirror.pending <= 2


async def test_shutdown_logs_what_the_shadows_were_still_answering(
    registered: Workspace, settings: Settings, start: Started
) -> None:
    registered.deployments.create_endpoint("churn", "models:/primary/1", shadows=["models:/slow/1"])
    app = serving_app(registered)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://k"
    ) as client:
        await client.post(PREDICT, json={"inputs": {"x": 1.0}})
    directory = app.dataplane.log.directory

    await app.shutdown()  # the shadow is still sleeping on that request

    Compactor(directory).run_once()
    rows = LogReader(directory).query("SELECT model, shadow FROM predictions").to_pylist()
    assert sorted((r["model"], r["shadow"]) for r in rows) == [
        ("primary", False),
        ("slow", True),
    ]


async def test_a_shadow_that_cannot_load_is_reported_and_the_endpoint_serves(
    registered: Workspace, start: Started
) -> None:
    registered.deployments.create_endpoint("churn", "models:/primary/1", shadows=["models:/plus/1"])
    version = registered.registry.get_version("plus", 1)
    Path(registered.artifacts.location(version.artifact_digest)).write_bytes(b"tampered")

    _, client = await start(registered)
    response = await client.post(PREDICT, json={"inputs": {"x": 1.0}})
    ready = await client.get("/readyz")

    assert response.status_code == 200
    assert ready.status_code == 200
    detail = ready.json()["endpoints"]["churn"]
    assert detail["shadows"] is None
    assert "models:/plus/1" in detail["shadow_errors"]


async def test_shadows_are_set_and_removed_as_revisions(registered: Workspace) -> None:
    deployments = registered.deployments
    deployments.create_endpoint("churn", "models:/primary/1")

    with_shadow = deployments.set("churn", shadows=["models:/twin/1"])
    without = deployments.set("churn", shadows=[])

    assert [s.pinned_uri for s in with_shadow.policy.shadows] == ["models:/twin/1"]
    assert without.policy.shadows == ()
    assert without.number == with_shadow.number + 1


def test_predictions_agree_as_labels_or_as_numbers_to_rounding() -> None:
    assert same_prediction("yes", "yes")
    assert not same_prediction("yes", "no")
    assert same_prediction(0.1 + 0.2, 0.3)
    assert not same_prediction(1.0, 1.001)
    assert same_prediction(1, 1.0)
    assert not same_prediction(True, 1.0)
