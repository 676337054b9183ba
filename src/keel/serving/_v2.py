"""The Open Inference Protocol (KServe V2) over REST, for KServe, MLServer and Triton clients.

An endpoint is a V2 *model* of the same name; its one *version* is the registered version it
serves (as text, ``"3"``). Readiness answers 200 when ready and 400 otherwise, as the protocol
asks ("4xx indicates false"); errors are ``{"error": "..."}`` with 400 (bad request) or 404.

Tensors
-------
Model metadata advertises **one input tensor per signature column**, shape ``[-1]`` (MLServer's
"pandas codec" layout): ``float`` -> FP64, ``int`` -> INT64, ``bool`` -> BOOL, ``string``,
``category`` and ``timestamp`` (ISO 8601 text) -> BYTES. An infer request may send

* one tensor per column, each of shape ``[N]`` or ``[N, 1]`` (any numeric datatype for a
  numeric column), or
* a single tensor of shape ``[N, F]`` whose F values per row are the columns in signature order
  (the layout of the KServe scikit-learn server and of Triton's Python clients).

``data`` is row-major, flat or nested; the number of elements must equal the product of
``shape``, and every element must be of the tensor's datatype, or the request gets a 400.

Outputs are ``predict`` (shape ``[N]``), ``predict_proba`` (classifiers, FP64 ``[N, C]``,
columns in class-label order, see the metadata's ``parameters.classes``) and ``prediction_id``
(BYTES ``[N]``, the ids the prediction log and feedback use). A request's ``outputs`` list picks
which are returned; without it all are.
"""

from __future__ import annotations

import math
from typing import Any

from keel.serving._dataplane import Dataplane, Problem
from keel.serving._runtime import EndpointRuntime, ModelNotReady, Record

DATATYPES = {
    "float": "FP64",
    "int": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
    "category": "BYTES",
    "timestamp": "BYTES",
}
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
_INTS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
_KNOWN = _FLOATS | _INTS | {"BOOL", "BYTES"}
OUTPUTS = ("predict", "predict_proba", "prediction_id")


def check_version(runtime: EndpointRuntime, version: str | None) -> None:
    served = str(runtime.policy.primary.version)
    if version is not None and version != served:
        raise Problem(
            404,
            "not_found",
            f"model '{runtime.name}' has no version '{version}' (it serves version {served})",
        )


def metadata(runtime: EndpointRuntime) -> dict[str, Any]:
    version = runtime.model_version
    if version is None:
        raise Problem(400, "not_ready", f"model '{runtime.name}' is not loaded: {runtime.error}")
    labels = runtime.labels
    outputs: list[dict[str, Any]] = [
        {"name": "predict", "datatype": _output_datatype(runtime), "shape": [-1]}
    ]
    if labels is not None:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(labels)]})
    outputs.append({"name": "prediction_id", "datatype": "BYTES", "shape": [-1]})
    parameters: dict[str, Any] = {"registered_model": version.name}
    if labels is not None:
        parameters["classes"] = ",".join(str(label) for label in labels)
    return {
        "name": runtime.name,
        "versions": [str(version.version)],
        "platform": f"keel-{version.flavor}",
        "inputs": [
            {"name": field.name, "datatype": DATATYPES[field.dtype], "shape": [-1]}
            for field in version.signature.inputs.fields
        ],
        "outputs": outputs,
        "parameters": parameters,
    }


async def infer(
    dataplane: Dataplane,
    runtime: EndpointRuntime,
    payload: Any,
    version: str | None,
    routing_key: str | None = None,
) -> dict[str, Any]:
    check_version(runtime, version)
    if not isinstance(payload, dict):
        raise Problem(400, "invalid_body", "the inference request must be a JSON object")
    unknown = set(payload) - {"id", "parameters", "inputs", "outputs"}
    if unknown:
        raise Problem(400, "invalid_body", f"unknown request field(s): {sorted(unknown)}")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise Problem(400, "invalid_body", "'id' must be a string")
    wanted = _requested_outputs(payload.get("outputs"), runtime)
    records = _records(payload.get("inputs"), runtime)
    try:
        scored = await dataplane.predict(runtime, records, routing_key)
    except Problem as problem:
        if problem.status == 422:  # the protocol's bad-request status
            problem.status = 400
        raise
    rows = len(scored)
    outputs: list[dict[str, Any]] = []
    for name in wanted:
        if name == "predict":
            outputs.append(
                {
                    "name": "predict",
                    "datatype": _output_datatype(runtime),
                    "shape": [rows],
                    "data": [row.result.prediction for row in scored],
                }
            )
        elif name == "predict_proba":
            if any(row.result.probabilities is None for row in scored):
                continue  # a default prediction answered: it has no probabilities to give
            labels = runtime.labels or []
            data: list[float] = []
            for row in scored:
                probabilities = row.result.probabilities or {}
                data += probabilities.values()
            outputs.append(
                {"name": name, "datatype": "FP64", "shape": [rows, len(labels)], "data": data}
            )
        else:
            outputs.append(
                {
                    "name": name,
                    "datatype": "BYTES",
                    "shape": [rows],
                    "data": [row.prediction_id for row in scored],
                }
            )
    _, answered_by = scored[0].model
    response: dict[str, Any] = {
        "model_name": runtime.name,
        "model_version": str(answered_by or runtime.policy.primary.version),
        "outputs": outputs,
    }
    fallback = scored[0].result.fallback
    if fallback is not None:  # answered by the endpoint's fallback, and why
        response["parameters"] = {"fallback": fallback}
    if request_id is not None:
        response["id"] = request_id
    return response


def _requested_outputs(requested: Any, runtime: EndpointRuntime) -> list[str]:
    available = [n for n in OUTPUTS if n != "predict_proba" or runtime.labels is not None]
    if requested is None:
        return available
    if not isinstance(requested, list) or not requested:
        raise Problem(400, "invalid_body", "'outputs' must be a non-empty list of {\"name\"}")
    names: list[str] = []
    for item in requested:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in available:
            raise Problem(
                400,
                "invalid_body",
                f"unknown output {name!r}: model '{runtime.name}' has {', '.join(available)}",
            )
        names.append(name)
    return names


def _records(inputs: Any, runtime: EndpointRuntime) -> list[Record]:
    if not isinstance(inputs, list) or not inputs:
        raise Problem(400, "invalid_body", "'inputs' must be a non-empty list of tensors")
    try:
        fields = runtime.request_names  # on a features endpoint: keys and request fields
    except ModelNotReady as error:
        raise Problem(503, "not_ready", str(error)) from None
    tensors = [_tensor(item, index) for index, item in enumerate(inputs)]
    names = [name for name, _, _, _ in tensors]
    if len(tensors) == 1 and names[0] not in fields:
        return _records_from_matrix(tensors[0], list(fields))
    unknown = [name for name in names if name not in fields]
    if unknown:
        raise Problem(
            400,
            "invalid_input",
            f"unknown input tensor(s) {unknown}: model '{runtime.name}' takes "
            f"{', '.join(fields)} (one tensor each, or one [N, {len(fields)}] tensor)",
        )
    if len(set(names)) != len(names):
        raise Problem(400, "invalid_input", "an input tensor is given twice")
    rows: int | None = None
    columns: dict[str, list[Any]] = {}
    for name, shape, _datatype, data in tensors:
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise Problem(
                400, "invalid_input", f"input '{name}' must have shape [N] or [N, 1], not {shape}"
            )
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise Problem(
                400, "invalid_input", f"input '{name}' has {shape[0]} rows, the others {rows}"
            )
        columns[name] = data
    assert rows is not None
    return [{name: column[row] for name, column in columns.items()} for row in range(rows)]


def _records_from_matrix(
    tensor: tuple[str, list[int], str, list[Any]], names: list[str]
) -> list[Record]:
    name, shape, _datatype, data = tensor
    if len(shape) != 2 or shape[1] != len(names):
        raise Problem(
            400,
            "invalid_input",
            f"input '{name}' is not a column of the model; a single tensor must have shape "
            f"[N, {len(names)}] (columns {', '.join(names)}), not {shape}",
        )
    width = len(names)
    return [dict(zip(names, data[i : i + width], strict=True)) for i in range(0, len(data), width)]


def _tensor(item: Any, index: int) -> tuple[str, list[int], str, list[Any]]:
    if not isinstance(item, dict):
        raise Problem(400, "invalid_input", f"inputs[{index}] must be a tensor object")
    name = item.get("name")
    if not isinstance(name, str):
        raise Problem(400, "invalid_input", f"inputs[{index}] has no 'name'")
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise Problem(400, "invalid_input", f"input '{name}': 'shape' must be a list of sizes >= 0")
    datatype = item.get("datatype")
    if not isinstance(datatype, str) or datatype not in _KNOWN:
        raise Problem(400, "invalid_input", f"input '{name}': unknown datatype {datatype!r}")
    data = item.get("data")
    if not isinstance(data, list):
        raise Problem(400, "invalid_input", f"input '{name}': 'data' must be a list")
    flat = _flatten(data)
    expected = math.prod(shape)
    if len(flat) != expected:
        raise Problem(
            400,
            "shape_mismatch",
            f"input '{name}': shape {shape} holds {expected} elements but 'data' has {len(flat)}",
        )
    _check_elements(name, datatype, flat)
    return name, shape, datatype, flat


def _flatten(data: list[Any]) -> list[Any]:
    if not any(type(value) is list for value in data):
        return data
    flat: list[Any] = []
    for value in data:
        if type(value) is list:
            flat += _flatten(value)
        else:
            flat.append(value)
    return flat


def _check_elements(name: str, datatype: str, data: list[Any]) -> None:
    if datatype in _FLOATS:
        ok = all((type(v) is float or type(v) is int) for v in data)
    elif datatype in _INTS:
        ok = all(type(v) is int for v in data)
    elif datatype == "BOOL":
        ok = all(type(v) is bool for v in data)
    else:
        ok = all(type(v) is str for v in data)
    if not ok:
        bad = next(v for v in data if not _fits(datatype, v))
        raise Problem(400, "invalid_input", f"input '{name}': {bad!r} is not a {datatype} element")


def _fits(datatype: str, value: Any) -> bool:
    if datatype in _FLOATS:
        return type(value) is float or type(value) is int
    if datatype in _INTS:
        return type(value) is int
    if datatype == "BOOL":
        return type(value) is bool
    return type(value) is str


def _output_datatype(runtime: EndpointRuntime) -> str:
    labels = runtime.labels
    if labels is None:
        dtype = (
            runtime.model_version.signature.output.get("dtype") if runtime.model_version else None
        )
        return DATATYPES.get(str(dtype), "FP64")
    kinds = {type(label) for label in labels}
    if kinds == {bool}:
        return "BOOL"
    if kinds == {int}:
        return "INT64"
    if kinds <= {int, float}:
        return "FP64"
    return "BYTES"
