"""The serving app in-process (ASGI client, lifespan run by hand) and one real `keel serve`."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Settings, Workspace
from keel.errors import EndpointNotFound
from keel.serving._app import ServingApp
from keel.serving._predlog import Compactor, LogReader
from keel.serving._server import serving_app

pytestmark = pytest.mark.anyio

ROW = {"age": 0.3, "income": 1.5, "visits": 2}


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """These tests exercise the HTTP layer: SQLite is enough (deployments have their own
    tests on both backends)."""
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


@pytest.fixture
def served(workspace: Workspace) -> Workspace:
    """Endpoint ``churn`` serving a LogisticRegression (labels 0/1) on age, income, visits."""
    frame = pd.DataFrame(
        {
            "age": [0.1, -1.2, 0.7, 1.5, -0.3, -0.8],
            "income": [1, 0, 2, 1, 0, 3.0],
            "visits": [1, 4, 2, 0, 3, 5],
        }
    )
    model = LogisticRegression().fit(frame, [1, 0, 1, 1, 0, 0])
    workspace.registry.register("churn", model, input_example=frame)
    workspace.deployments.create_endpoint("churn", "models:/churn/1")
    return workspace


@pytest.fixture
async def app(served: Workspace) -> AsyncIterator[ServingApp]:
    app = serving_app(served)
    await app.startup()  # httpx's ASGITransport does not send lifespan events
    yield app
    await app.shutdown()


@pytest.fixture
async def client(app: ServingApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
        yield client


def _logged(app: ServingApp, sql: str) -> list[dict[str, Any]]:
    app.dataplane.log.rotate()
    Compactor(app.dataplane.log.directory).run_once()
    rows: list[dict[str, Any]] = LogReader(app.dataplane.log.directory).query(sql).to_pylist()
    return rows


# -- native API ------------------------------------------------------------------------------------


async def test_predict_one_record_round_trip(app: ServingApp, client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["endpoint"] == "churn"
    assert body["model"] == {"name": "churn", "version": 1}
    [row] = body["predictions"]
    assert row["prediction"] in (0, 1)
    assert set(row["probabilities"]) == {"0", "1"}
    assert math.isclose(sum(row["probabilities"].values()), 1.0)
    best = max(row["probabilities"], key=row["probabilities"].__getitem__)
    assert str(row["prediction"]) == best
    logged = _logged(app, "SELECT prediction_id, endpoint, model_version FROM predictions")
    assert logged == [
        {"prediction_id": row["prediction_id"], "endpoint": "churn", "model_version": 1}
    ]


async def test_predict_list_and_columnar_agree(app: ServingApp, client: httpx.AsyncClient) -> None:
    rows = [ROW, {"age": -1.0, "income": 0.0, "visits": 4}]
    as_list = await client.post("/v1/endpoints/churn/predict", json={"inputs": rows})
    columns = {name: [row[name] for row in rows] for name in ROW}
    as_columns = await client.post("/v1/endpoints/churn/predict", json={"inputs": columns})
    assert as_list.status_code == as_columns.status_code == 200
    first = as_list.json()["predictions"]
    second = as_columns.json()["predictions"]
    assert len(first) == len(second) == 2
    for a, b in zip(first, second, strict=True):
        assert a["prediction"] == b["prediction"]
        assert a["probabilities"] == pytest.approx(b["probabilities"])
    ids = {p["prediction_id"] for p in first + second}
    assert len(ids) == 4
    logged = _logged(app, "SELECT prediction_id FROM predictions")
    assert {row["prediction_id"] for row in logged} == ids


async def test_concurrent_requests_each_get_their_answer(client: httpx.AsyncClient) -> None:
    import anyio

    answers: dict[int, Any] = {}

    async def one(i: int) -> None:
        record = {"age": i / 10, "income": 1.0, "visits": i}
        response = await client.post(
            "/v1/endpoints/churn/predict", json={"inputs": [record] * (i % 3 + 1)}
        )
        answers[i] = response.json()["predictions"]

    async with anyio.create_task_group() as group:
        for i in range(20):
            group.start_soon(one, i)
    assert [len(answers[i]) for i in range(20)] == [i % 3 + 1 for i in range(20)]


async def test_feedback_joins_the_prediction(app: ServingApp, client: httpx.AsyncClient) -> None:
    predicted = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    prediction_id = predicted.json()["predictions"][0]["prediction_id"]
    response = await client.post(
        "/v1/endpoints/churn/feedback",
        json={"feedback": [{"prediction_id": prediction_id, "value": 1}]},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"endpoint": "churn", "accepted": 1}
    single = await client.post(
        "/v1/endpoints/churn/feedback",
        json={"feedback": {"prediction_id": prediction_id, "value": 0, "name": "late"}},
    )
    assert single.json()["accepted"] == 1
    app.dataplane.log.rotate()
    Compactor(app.dataplane.log.directory).run_once()
    joined = LogReader(app.dataplane.log.directory).prediction_with_feedback(prediction_id)
    assert joined is not None
    assert [(f["value"], f["name"]) for f in joined["feedback"]] == [(1, None), (0, "late")]


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "fields"),
    [
        (b'{"inputs": {"age": ', 400, "malformed_json", []),
        (b"[1, 2]", 422, "invalid_body", []),
        (b'{"rows": []}', 422, "invalid_body", []),
        (b'{"inputs": [], "x": 1}', 422, "invalid_body", []),
        (b'{"inputs": []}', 422, "empty_batch", []),
        (b'{"inputs": {"age": [], "income": [], "visits": []}}', 422, "empty_batch", []),
        (
            b'{"inputs": {"age": [1.0], "income": [1.0, 2.0], "visits": [1]}}',
            422,
            "invalid_body",
            [],
        ),
        (b'{"inputs": {"age": "old", "income": 1.0, "visits": 1}}', 422, "invalid_input", ["age"]),
        (b'{"inputs": {"age": 1.0, "visits": 1}}', 422, "invalid_input", ["income"]),
        (
            b'{"inputs": {"age": 1.0, "income": 1.0, "visits": 1, "zip": 7}}',
            422,
            "invalid_input",
            ["zip"],
        ),
        (
            b'{"inputs": {"age": NaN, "income": Infinity, "visits": 1.5}}',
            422,
            "invalid_input",
            ["age", "income", "visits"],
        ),
        (b'{"inputs": [{"age": 1.0, "income": 1.0, "visits": 1}, 3]}', 422, "invalid_input", [""]),
    ],
)
async def test_bad_predict_input_is_a_4xx_naming_the_problem(
    client: httpx.AsyncClient, body: bytes, status: int, code: str, fields: list[str]
) -> None:
    response = await client.post(
        "/v1/endpoints/churn/predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code
    assert error["error"]
    if fields:
        assert [p["field"] for p in error["problems"]] == fields
        assert all(p["message"] for p in error["problems"])


async def test_routing_and_size_errors(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/v1/endpoints/nope/predict", json={"inputs": ROW})
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["error"]
    assert (await client.get("/v1/nothing/here")).status_code == 404
    wrong = await client.get("/v1/endpoints/churn/predict")
    assert wrong.status_code == 405
    assert "POST" in wrong.json()["error"]
    big = b'{"inputs": {"age": "' + b"x" * (8 * 1024 * 1024) + b'"}}'
    too_large = await client.post("/v1/endpoints/churn/predict", content=big)
    assert too_large.status_code == 413
    assert too_large.json()["code"] == "payload_too_large"
    bad_feedback = await client.post(
        "/v1/endpoints/churn/feedback", json={"feedback": [{"prediction_id": 3}, {}]}
    )
    assert bad_feedback.status_code == 422
    assert [(p["row"], p["field"]) for p in bad_feedback.json()["problems"]] == [
        (0, "prediction_id"),
        (0, "value"),
        (1, "prediction_id"),
        (1, "value"),
    ]
    empty_feedback = await client.post("/v1/endpoints/churn/feedback", json={"feedback": []})
    assert empty_feedback.status_code == 422


async def test_a_failing_model_is_a_500_and_the_app_keeps_serving(
    app: ServingApp, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = app.dataplane.runtimes["churn"]
    model = runtime._model
    assert model is not None

    def broken(frame: pd.DataFrame) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(model.model, "predict_proba", broken)  # the fitted estimator breaks
    failed = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    assert failed.status_code == 500
    assert "boom" in failed.json()["error"]
    monkeypatch.undo()
    again = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    assert again.status_code == 200


# -- Open Inference Protocol ----------------------------------------------------------------------


async def test_v2_health_and_metadata(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    assert (await client.get("/v2/models/churn/ready")).json() == {"name": "churn", "ready": True}
    assert (await client.get("/v2/models/churn/versions/1/ready")).status_code == 200
    metadata = (await client.get("/v2/models/churn")).json()
    assert metadata["name"] == "churn"
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "keel-sklearn"
    assert metadata["inputs"] == [
        {"name": "age", "datatype": "FP64", "shape": [-1]},
        {"name": "income", "datatype": "FP64", "shape": [-1]},
        {"name": "visits", "datatype": "INT64", "shape": [-1]},
    ]
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba", "prediction_id"]
    assert metadata["outputs"][0]["datatype"] == "INT64"
    assert (await client.get("/v2/models/churn/versions/1")).json() == metadata
    missing_version = await client.get("/v2/models/churn/versions/9")
    assert missing_version.status_code == 404
    assert "error" in missing_version.json()
    missing = await client.get("/v2/models/nope")
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]


async def test_v2_infer_as_a_kserve_client_sends_it(
    app: ServingApp, client: httpx.AsyncClient
) -> None:
    # What tritonclient.http / KServe's InferenceRESTClient put on the wire (row-major data).
    request = (
        b'{"id":"req-42","inputs":['
        b'{"name":"age","shape":[2],"datatype":"FP32","data":[0.3,-1.0]},'
        b'{"name":"income","shape":[2,1],"datatype":"FP64","data":[[1.5],[0.0]]},'
        b'{"name":"visits","shape":[2],"datatype":"INT64","data":[2,4]}]}'
    )
    response = await client.post(
        "/v2/models/churn/infer", content=request, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "churn"
    assert body["model_version"] == "1"
    assert body["id"] == "req-42"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["shape"] == [2]
    assert outputs["predict"]["datatype"] == "INT64"
    assert outputs["predict_proba"]["shape"] == [2, 2]
    assert len(outputs["predict_proba"]["data"]) == 4
    assert math.isclose(sum(outputs["predict_proba"]["data"][:2]), 1.0)
    ids = outputs["prediction_id"]["data"]
    logged = _logged(app, "SELECT prediction_id FROM predictions")
    assert {row["prediction_id"] for row in logged} == set(ids)

    native = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    assert native.json()["predictions"][0]["prediction"] == outputs["predict"]["data"][0]


async def test_v2_single_matrix_tensor_and_named_outputs(client: httpx.AsyncClient) -> None:
    request = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 3],
                "datatype": "FP64",
                "data": [0.3, 1.5, 2, -1.0, 0.0, 4],
            }
        ],
        "outputs": [{"name": "predict_proba"}],
    }
    response = await client.post("/v2/models/churn/versions/1/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [o["name"] for o in body["outputs"]] == ["predict_proba"]
    assert "id" not in body


@pytest.mark.parametrize(
    ("request_body", "status", "fragment"),
    [
        (
            {"inputs": [{"name": "age", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0]}]},
            400,
            "shape [3]",
        ),
        (
            {"inputs": [{"name": "m", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]},
            400,
            "[N, 3]",
        ),
        (
            {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": ["x"]}]},
            400,
            "FP64",
        ),
        (
            {"inputs": [{"name": "age", "shape": [1], "datatype": "FP99", "data": [1.0]}]},
            400,
            "datatype",
        ),
        ({"inputs": []}, 400, "inputs"),
        (
            {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
            400,
            "income",
        ),
        (
            {
                "inputs": [
                    {"name": "m", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}
                ],
                "outputs": [{"name": "explanation"}],
            },
            400,
            "explanation",
        ),
    ],
)
async def test_v2_bad_requests_are_400_with_an_error(
    client: httpx.AsyncClient, request_body: dict[str, Any], status: int, fragment: str
) -> None:
    response = await client.post("/v2/models/churn/infer", json=request_body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


async def test_v2_malformed_json_and_unknown_model(client: httpx.AsyncClient) -> None:
    malformed = await client.post("/v2/models/churn/infer", content=b"{nope")
    assert malformed.status_code == 400
    assert "error" in malformed.json()
    unknown = await client.post("/v2/models/other/infer", json={"inputs": []})
    assert unknown.status_code == 404


# -- health, readiness, metrics --------------------------------------------------------------------


async def test_healthz_readyz_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    detail = ready.json()
    assert detail["endpoints"]["churn"]["ready"] is True
    assert detail["endpoints"]["churn"]["load_seconds"] > 0
    assert detail["prediction_log"]["degraded"] is False
    await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
    await client.post("/v1/endpoints/churn/predict", json={"inputs": {"age": "x"}})
    text = (await client.get("/metrics")).text
    assert 'keel_requests_total{api="v1",code="200",endpoint="churn",model_version="1"} 1.0' in text
    assert 'keel_request_errors_total{endpoint="churn",type="invalid_input"} 1.0' in text
    assert "keel_request_duration_seconds_bucket" in text
    assert 'keel_batch_rows_count{endpoint="churn"} 1.0' in text
    assert "keel_model_load_seconds{" in text
    assert "keel_prediction_log_entries_written_total 1.0" in text
    assert "keel_requests_in_flight" in text


async def test_readyz_is_503_while_a_model_is_not_loaded(served: Workspace) -> None:
    app = serving_app(served)  # not started: nothing loaded
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["endpoints"]["churn"]["ready"] is False
        assert (await client.get("/v2/health/ready")).status_code == 400
        predicted = await client.post("/v1/endpoints/churn/predict", json={"inputs": ROW})
        assert predicted.status_code == 503
    app.dataplane.log.close()


def test_unknown_endpoint_name_is_refused_when_building(served: Workspace) -> None:
    with pytest.raises(EndpointNotFound):
        serving_app(served, endpoints=["nope"])


# -- the real server -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_keel_serve_answers_over_http(
    served: Workspace, settings: Settings, tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "KEEL_METADATA_URL": settings.metadata_url,
        "KEEL_ARTIFACTS_URL": settings.artifacts_url,
    }
    keel = Path(sys.executable).with_name("keel")  # the console script next to this Python
    command = [str(keel), "--dir", str(settings.project_dir), "serve"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--endpoint", "churn"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        response = httpx.post(f"{base}/v1/endpoints/churn/predict", json={"inputs": [ROW, ROW]})
        assert response.status_code == 200
        ids = [p["prediction_id"] for p in response.json()["predictions"]]
        infer = httpx.post(
            f"{base}/v2/models/churn/infer",
            json={
                "inputs": [
                    {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [0.3, 1.5, 2]}
                ]
            },
        )
        assert infer.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=30)[0].decode()
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    # uvicorn re-raises the signal it handled once shutdown is complete
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "endpoint 'churn' (revision 1): models:/churn/1 loaded in" in output  # keel's own log
    log_dir = settings.project_path(settings.serving.prediction_log_dir)
    Compactor(log_dir).run_once()
    logged = LogReader(log_dir).query("SELECT prediction_id FROM predictions").to_pylist()
    assert set(ids) <= {row["prediction_id"] for row in logged}
    assert len(logged) == 3


async def test_a_request_with_more_records_than_the_limit_is_a_413_before_any_work(
    app: ServingApp, client: httpx.AsyncClient
) -> None:
    app.dataplane.max_request_rows = 3

    at_limit = await client.post("/v1/endpoints/churn/predict", json={"inputs": [ROW] * 3})
    over = await client.post("/v1/endpoints/churn/predict", json={"inputs": [ROW] * 4})
    columns = {name: [value] * 4 for name, value in ROW.items()}
    over_as_columns = await client.post("/v1/endpoints/churn/predict", json={"inputs": columns})

    assert at_limit.status_code == 200
    for answer in (over, over_as_columns):
        assert answer.status_code == 413
        assert answer.json()["code"] == "too_many_rows"
        assert "limit of 3" in answer.json()["error"]
