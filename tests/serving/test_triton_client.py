"""A real Open Inference Protocol client (NVIDIA Triton's ``tritonclient.http``, which KServe
and MLServer clients also use) against a real ``keel serve``: health, metadata and inference
round-trip unchanged, JSON tensors both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as tritonclient_http

from keel import Settings, Workspace

from ._server_process import ServerProcess, deploy_churn

pytestmark = pytest.mark.slow


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


@pytest.fixture
def server(workspace: Workspace, settings: Settings) -> Iterator[ServerProcess]:
    deploy_churn(workspace)
    with ServerProcess(settings) as server:
        server.wait_ready()
        yield server


def _client(server: ServerProcess) -> object:
    return tritonclient_http.InferenceServerClient(url=server.url.removeprefix("http://"))


def test_triton_client_sees_the_server_and_the_model_ready(server: ServerProcess) -> None:
    client = _client(server)

    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("churn")
    assert not client.is_model_ready("no-such-model")


def test_triton_client_reads_the_model_metadata_from_the_signature(
    server: ServerProcess,
) -> None:
    metadata = _client(server).get_model_metadata("churn")

    assert metadata["name"] == "churn"
    assert metadata["versions"] == ["1"]
    inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
    assert inputs["age"]["datatype"] == "FP64"
    assert inputs["visits"]["datatype"] == "INT64"
    assert inputs["age"]["shape"] == [-1]
    assert {tensor["name"] for tensor in metadata["outputs"]} >= {"predict", "predict_proba"}


def test_triton_client_infers_with_one_tensor_per_column(server: ServerProcess) -> None:
    http = tritonclient_http
    columns = {
        "age": (np.array([0.3, -1.0], dtype=np.float64), "FP64"),
        "income": (np.array([1.5, 0.0], dtype=np.float64), "FP64"),
        "visits": (np.array([2, 4], dtype=np.int64), "INT64"),
    }
    inputs = []
    for name, (values, datatype) in columns.items():
        tensor = http.InferInput(name, list(values.shape), datatype)
        tensor.set_data_from_numpy(values, binary_data=False)
        inputs.append(tensor)
    outputs = [
        http.InferRequestedOutput("predict", binary_data=False),
        http.InferRequestedOutput("predict_proba", binary_data=False),
    ]

    result = _client(server).infer("churn", inputs, outputs=outputs)

    proba = result.as_numpy("predict_proba")
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert result.as_numpy("predict").tolist() == proba.argmax(axis=1).tolist()
    assert result.get_response()["model_name"] == "churn"


def test_triton_client_gets_the_protocol_error_for_a_bad_tensor(server: ServerProcess) -> None:
    http = tritonclient_http
    tensor = http.InferInput("age", [2], "FP64")
    tensor.set_data_from_numpy(np.array([0.3, 1.0]), binary_data=False)

    with pytest.raises(http.InferenceServerException) as raised:
        _client(server).infer("churn", [tensor])  # income and visits are missing

    assert raised.value.status() == "400"
    assert "income" in raised.value.message()
