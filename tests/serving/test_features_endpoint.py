"""Endpoints whose model was trained through the feature store: requests carry entity keys and
request-time fields, the server looks the rest up (one lookup per micro-batch)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Workspace
from keel.data import Field
from keel.errors import InvalidPolicy
from keel.features import DataFrameSource, Entity, FeatureView, OnDemandFeature
from keel.serving._app import ServingApp
from keel.serving._predlog import Compactor, LogReader
from keel.serving._server import serving_app

pytestmark = pytest.mark.anyio

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=4)
CUSTOMERS = list(range(1, 41))
FEATURES = ["spend:spend_7d", "spend:visits", "basket_ratio"]


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


def definitions(spend_rows: pd.DataFrame, *, ttl_days: int = 30) -> list[Any]:
    customer = Entity("customer", join_keys=("customer_id",))
    spend = FeatureView(
        name="spend",
        entities=(customer,),
        source=DataFrameSource(spend_rows),
        timestamp_column="event_time",
        ttl=timedelta(days=ttl_days),
        features=(Field("spend_7d", "float"), Field("visits", "float")),
    )
    ratio = OnDemandFeature(
        name="basket_ratio",
        inputs=("basket_value", "spend:spend_7d"),
        outputs=(Field("basket_ratio", "float"),),
        function=lambda f: pd.DataFrame({"basket_ratio": f["basket_value"] / f["spend_7d"]}),
    )
    return [customer, spend, ratio]


@pytest.fixture
def spend_rows() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "customer_id": CUSTOMERS,
            "event_time": [T0 + timedelta(hours=c) for c in CUSTOMERS],
            "spend_7d": rng.uniform(10, 100, len(CUSTOMERS)),
            "visits": rng.integers(0, 9, len(CUSTOMERS)).astype(float),
        }
    )


@pytest.fixture
def served(workspace: Workspace, spend_rows: pd.DataFrame) -> Workspace:
    """Endpoint ``shop`` (features on) serving a LogisticRegression trained on the training
    frame: ``age`` from the labels, two view features and an on-demand ratio."""
    store = workspace.features
    store.apply(definitions(spend_rows))
    rng = np.random.default_rng(3)
    labels = pd.DataFrame(
        {
            "customer_id": CUSTOMERS,
            "event_time": [T0 + timedelta(days=2)] * len(CUSTOMERS),
            "basket_value": rng.uniform(5, 50, len(CUSTOMERS)),
            "age": rng.uniform(18, 80, len(CUSTOMERS)),
            "bought": [c % 2 for c in CUSTOMERS],
        }
    )
    frame = store.get_training_frame(labels, FEATURES, timestamp_column="event_time")
    inputs = frame[["age", "spend_7d", "visits", "basket_ratio"]]
    model = LogisticRegression(max_iter=1000).fit(inputs, labels["bought"])
    workspace.registry.register(
        "shop", model, input_example=inputs, features=store.lineage(FEATURES)
    )
    store.materialize("spend", start=T0, end=T0 + timedelta(days=3))
    workspace.deployments.create_endpoint("shop", "models:/shop/1", features=True)
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


def expected_probability(workspace: Workspace, customer: int, basket: float, age: float) -> float:
    online = workspace.features.get_online_features(
        [{"customer_id": customer, "basket_value": basket}], FEATURES, record=False
    ).frame
    row = pd.DataFrame(
        {
            "age": [age],
            "spend_7d": online["spend_7d"],
            "visits": online["visits"],
            "basket_ratio": online["basket_ratio"],
        }
    )
    model = workspace.registry.load("models:/shop/1")
    proba = model.predict_proba(row)
    assert proba is not None
    return float(proba[0, 1])


async def test_a_request_with_only_keys_is_scored_from_the_online_store(
    app: ServingApp, client: httpx.AsyncClient, served: Workspace
) -> None:
    record = {"customer_id": 5, "basket_value": 20.0, "age": 33.0}
    response = await client.post("/v1/endpoints/shop/predict", json={"inputs": record})

    assert response.status_code == 200, response.text
    [row] = response.json()["predictions"]
    assert row["probabilities"]["1"] == pytest.approx(expected_probability(served, 5, 20.0, 33.0))
    # the log holds what the model saw: the request and the looked-up features
    app.dataplane.log.rotate()
    Compactor(app.dataplane.log.directory).run_once()
    [logged] = (
        LogReader(app.dataplane.log.directory).query("SELECT inputs FROM predictions").to_pylist()
    )
    inputs = json.loads(logged["inputs"]) if isinstance(logged["inputs"], str) else logged["inputs"]
    assert inputs["customer_id"] == 5
    assert set(inputs) >= {"spend_7d", "visits", "basket_ratio", "age", "basket_value"}


async def test_concurrent_requests_share_one_lookup_and_each_get_their_answer(
    app: ServingApp, client: httpx.AsyncClient, served: Workspace
) -> None:
    lookups = 0
    store = served.features
    original = store.get_online_features

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal lookups
        lookups += 1
        return original(*args, **kwargs)

    store.get_online_features = counting  # type: ignore[method-assign]
    records = [{"customer_id": c, "basket_value": 10.0 + c, "age": 40.0} for c in CUSTOMERS[:12]]
    responses = await asyncio.gather(
        *(client.post("/v1/endpoints/shop/predict", json={"inputs": r}) for r in records)
    )
    store.get_online_features = original  # type: ignore[method-assign]

    assert lookups < len(records)  # grouped into micro-batches, one lookup each
    for record, response in zip(records, responses, strict=True):
        assert response.status_code == 200, response.text
        probability = response.json()["predictions"][0]["probabilities"]["1"]
        expected = expected_probability(served, record["customer_id"], record["basket_value"], 40.0)
        assert probability == pytest.approx(expected)


async def test_a_feature_the_store_provides_is_refused_in_the_request(
    client: httpx.AsyncClient,
) -> None:
    record = {"customer_id": 5, "basket_value": 20.0, "age": 33.0, "spend_7d": 1.0}
    response = await client.post("/v1/endpoints/shop/predict", json={"inputs": record})

    assert response.status_code == 422
    [problem] = response.json()["problems"]
    assert problem["field"] == "spend_7d"
    assert "comes from the feature store" in problem["message"]


async def test_missing_keys_and_request_fields_are_named(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/endpoints/shop/predict", json={"inputs": {"age": 33.0, "customer_id": [1]}}
    )

    assert response.status_code == 422
    fields = {(p["field"], p["rule"]) for p in response.json()["problems"]}
    assert ("customer_id", "dtype") in fields
    assert ("basket_value", "required") in fields


async def test_an_unknown_entity_is_a_422_and_does_not_fail_its_batch_neighbours(
    client: httpx.AsyncClient,
) -> None:
    known = {"customer_id": 5, "basket_value": 20.0, "age": 33.0}
    unknown = {"customer_id": 999, "basket_value": 20.0, "age": 33.0}
    ok, bad = await asyncio.gather(
        client.post("/v1/endpoints/shop/predict", json={"inputs": known}),
        client.post("/v1/endpoints/shop/predict", json={"inputs": unknown}),
    )

    assert ok.status_code == 200, ok.text
    assert bad.status_code == 422
    body = bad.json()
    assert body["code"] == "missing_features"
    assert "not materialized" in body["problems"][0]["message"]


async def test_v2_infer_takes_the_keys_as_named_tensors(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/models/shop/infer",
        json={
            "inputs": [
                {"name": "customer_id", "shape": [2], "datatype": "INT64", "data": [3, 4]},
                {"name": "basket_value", "shape": [2], "datatype": "FP64", "data": [9.5, 12]},
                {"name": "age", "shape": [2], "datatype": "FP64", "data": [30, 50]},
            ]
        },
    )

    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"][0] == 2


async def test_a_view_redefined_since_training_keeps_the_endpoint_not_ready(
    served: Workspace, spend_rows: pd.DataFrame
) -> None:
    served.features.apply(definitions(spend_rows, ttl_days=7))  # a new view version
    app = serving_app(served)
    await app.startup()
    try:
        ready, detail = app.dataplane.readiness()
    finally:
        await app.shutdown()

    assert not ready
    error = detail["endpoints"]["shop"]["error"]
    assert "trained on feature view 'spend' version 1" in error
    assert "now version 2" in error


def test_a_model_without_feature_lineage_cannot_get_an_endpoint_with_features_on(
    workspace: Workspace,
) -> None:
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    workspace.registry.register("plain", model, input_example=frame)

    with pytest.raises(InvalidPolicy, match="records no feature-store features"):
        workspace.deployments.create_endpoint("plain", "models:/plain/1", features=True)


async def test_a_request_field_the_on_demand_function_cannot_take_is_a_422_alone(
    client: httpx.AsyncClient,
) -> None:
    good = {"customer_id": 5, "basket_value": 20.0, "age": 33.0}
    bad = {"customer_id": 6, "basket_value": "twenty", "age": 33.0}
    listed = {"customer_id": 7, "basket_value": [1.0], "age": 33.0}
    ok, refused, wrong_shape = await asyncio.gather(
        client.post("/v1/endpoints/shop/predict", json={"inputs": good}),
        client.post("/v1/endpoints/shop/predict", json={"inputs": bad}),
        client.post("/v1/endpoints/shop/predict", json={"inputs": listed}),
    )

    assert ok.status_code == 200, ok.text
    assert refused.status_code == 422
    assert "could not be computed from this request's fields" in refused.json()["error"]
    assert wrong_shape.status_code == 422
    assert wrong_shape.json()["problems"][0]["field"] == "basket_value"
