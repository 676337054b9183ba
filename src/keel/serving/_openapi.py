"""The OpenAPI 3.1 document of a running server, built from the signatures of its endpoints.

    document = openapi_document(app.dataplane, max_request_bytes=app.max_request_bytes)
    page = docs_page(document)               # the self-contained HTML of GET /docs

Paths are literal, one set per endpoint (``/v1/endpoints/churn/predict``,
``/v2/models/churn/versions/3/infer``): each endpoint takes its own records, which a path
parameter could not say. A request schema is the signature's JSON Schema
(:meth:`Schema.to_json_schema <keel.data.Schema.to_json_schema>`) in the forms ``_native`` and
``_v2`` read; response schemas are what they write (V2 metadata is the very answer of
``_v2.metadata``), and every documented error status lists the ``code`` values it can carry.
What JSON Schema cannot say is in descriptions: columns have one length, V2 tensors have one
row count and ``prod(shape)`` elements, NaN and ±Infinity (non-standard JSON the server also
reads) follow the field's ``allow_nan``. On an endpoint with features on, a native record is
what :class:`~keel.serving._features.FeatureStep` takes (entity keys, request fields, the inputs
the store does not provide), and so are its V2 tensors.

An endpoint whose model is not loaded (still loading, or its load failed) is documented
generically: its operations are listed, with untyped inputs and only the answers they can give
without a model (503 for predictions and inference, 400 for V2 metadata). The app caches the
document once every endpoint has loaded or failed to, so the generic form lasts only as long as
that state does.

Not repeated on every operation: 404 for a path that is not listed, 405 (with ``Allow``) for a
method a path does not take and, on any route, 413 for a body over ``max_request_bytes`` and
400 for a Content-Length that is not a number.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from keel import __version__
from keel.serving import _v2
from keel.serving._dataplane import Problem
from keel.serving._metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from keel.data import Field, Schema
    from keel.serving._dataplane import Dataplane
    from keel.serving._runtime import EndpointRuntime

JSONDict = dict[str, Any]
Responses = dict[str, JSONDict]

_JSON = "application/json"
_REF = "#/components/schemas/"
_UUID7 = "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}  # the record validator refuses the rest
_V2_GROUPS = {  # V2 datatypes by the JSON type of their elements
    "integer": ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"),
    "number": ("FP16", "FP32", "FP64"),
    "boolean": ("BOOL",),
    "string": ("BYTES",),
}
_V2_COLUMN_GROUPS = {  # what a column of each signature type may be sent as
    "int": ("integer", "number"),
    "float": ("integer", "number"),
    "bool": ("boolean",),
    "string": ("string",),
    "category": ("string",),
    "timestamp": ("string",),
}
_PREDICTED = {"float": ["number", "null"], "int": "integer", "bool": "boolean"}


def openapi_document(dataplane: Dataplane, *, max_request_bytes: int) -> JSONDict:
    """The OpenAPI 3.1 document of the server answering for ``dataplane``'s endpoints."""
    names = sorted(dataplane.runtimes)
    paths = dict(_SERVER_PATHS)
    schemas = dict(_COMMON_SCHEMAS)
    for name in names:
        endpoint = _Endpoint(dataplane.runtimes[name])
        paths |= endpoint.paths()
        schemas |= {f"{name}.{key}": value for key, value in endpoint.schemas().items()}
    description = (
        f"Endpoints: {', '.join(names) or 'none'}. Request bodies are JSON of at most "
        f"{max_request_bytes} bytes (413 beyond). Every error is "
        '{"error": message, "code": kind}, with "problems" (one per bad field) for invalid '
        "inputs. A path not listed here is a 404; a method a path does not take, a 405."
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "keel serving API", "version": __version__, "description": description},
        "tags": [{"name": "server"}, *({"name": name} for name in names)],
        "paths": paths,
        "components": {"schemas": schemas},
    }


class _Endpoint:
    """The paths and component schemas of one endpoint, from its loaded model (if any)."""

    def __init__(self, runtime: EndpointRuntime) -> None:
        self.name = runtime.name
        self.primary = runtime.policy.primary
        self.timeout_ms = runtime.policy.timeout_ms
        self.fallback = runtime.policy.fallback
        self.uses_features = runtime.policy.features
        self.labels = runtime.labels
        self.features = runtime.feature_step  # set when loaded with features on
        self.version = runtime.model_version if runtime.ready else None
        self.metadata: JSONDict = {}
        if self.version is not None:
            try:
                self.metadata = _v2.metadata(runtime)
            except Problem:  # unloaded in between: documented generically
                self.version = None

    def ref(self, what: str) -> JSONDict:
        return {"$ref": f"{_REF}{self.name}.{what}"}

    # -- components --------------------------------------------------------------------------

    def schemas(self) -> JSONDict:
        """Component schemas, by name within the endpoint (``Record`` -> ``churn.Record``)."""
        record = self.ref("Record")
        forms: list[JSONDict] = [record, {"type": "array", "minItems": 1, "items": record}]
        schemas = {"Record": self._record()}
        if self.version is not None:
            forms.append(self._columns(schemas["Record"]))
            schemas |= {
                "Prediction": self._prediction(),
                "PredictResponse": self._predict_response(),
                "ModelMetadata": _object(**{k: {"const": v} for k, v in self.metadata.items()}),
                "InferResponse": self._infer_response(),
            }
        inputs = {"description": "One record, a non-empty list of records, or columns."}
        schemas["PredictRequest"] = _object(inputs=inputs | {"anyOf": forms})
        schemas["InferRequest"] = self._infer_request()
        return schemas

    def _record(self) -> JSONDict:
        if self.version is None:
            return {"type": "object", "description": "Not known until the model is loaded."}
        step = self.features
        record = _annotated(self.version.signature.inputs if step is None else step.request_schema)
        record["description"] = (
            f"One input row of model '{self.version.name}' version {self.version.version}: "
            "a missing nullable field is null; a field not listed here is refused."
        )
        if step is not None:  # entity keys and request-time fields; the store adds the rest
            key: JSONDict = {"type": ["integer", "string", "boolean"], "description": "entity key"}
            given = {"not": {"type": "null"}, "description": "request field of a feature"}
            fields = dict.fromkeys(step.keys, key) | dict.fromkeys(step.request_fields, given)
            record["properties"] = fields | record["properties"]
            record["required"] = list(dict.fromkeys([*fields, *record["required"]]))
            record["description"] += f" Looked up in the feature store: {', '.join(step.provided)}."
        return record

    @staticmethod
    def _columns(record: JSONDict) -> JSONDict:
        return {
            "type": "object",
            "description": "Columns: each value a list of one field's values, all of one length.",
            "properties": {
                name: {"type": "array", "minItems": 1, "items": prop}
                for name, prop in record["properties"].items()
            },
            "required": record["required"],
            "additionalProperties": False,
            "minProperties": 1,
        }

    def _prediction(self) -> JSONDict:
        assert self.version is not None
        if self.labels is None:
            prediction = _predicted(self.version.signature.output)
            probabilities: JSONDict = {"type": "null", "description": "a regressor has none"}
        else:
            keys = [str(label) for label in self.labels]
            prediction = {"enum": self.labels, "description": "the most probable class label"}
            by_label = {"type": "object", "properties": dict.fromkeys(keys, _NUMBER_OR_NAN)}
            probabilities = {
                "description": "each class label's probability; null if the model has none",
                "anyOf": [
                    by_label | {"required": keys, "additionalProperties": False},
                    {"type": "null"},
                ],
            }
        return _object(
            prediction_id=_PREDICTION_ID, prediction=prediction, probabilities=probabilities
        )

    def _infer_request(self) -> JSONDict:
        if self.version is None:
            inputs: JSONDict = {"type": "array", "minItems": 1, "items": {"type": "object"}}
            outputs: JSONDict = {"type": "object", "required": ["name"]}
        else:
            record = self._record()  # the request's fields, as the native API takes them
            names = list(record["properties"])
            inputs_schema = self.version.signature.inputs
            if self.features is not None:
                inputs_schema = self.features.request_schema
            dtypes = {field.name: field.dtype for field in inputs_schema.fields}
            matrix = [_tensor({"not": {"enum": names}}, len(names), g) for g in _V2_GROUPS]
            columns = [  # an entity key or a request field may be of any element type
                _tensor({"const": name}, 1, group)
                for name in names
                for group in _V2_COLUMN_GROUPS.get(dtypes.get(name, ""), tuple(_V2_GROUPS))
            ]
            by_column: JSONDict = {
                "type": "array",
                "minItems": 1,
                "maxItems": len(names),
                "items": {"anyOf": columns},
            }
            if record["required"]:
                by_column["allOf"] = [{"contains": _named(name)} for name in record["required"]]
            inputs = {
                "description": (
                    "One tensor per field (shape [N] or [N, 1], every field once, all with N "
                    f"rows), or one [N, {len(names)}] tensor whose rows hold the fields in "
                    f"this order: {', '.join(names)}."
                ),
                "anyOf": [
                    by_column,
                    {"type": "array", "minItems": 1, "maxItems": 1, "items": {"anyOf": matrix}},
                ],
            }
            available = [output["name"] for output in self.metadata["outputs"]]
            outputs = _object(name={"enum": available})
            outputs["additionalProperties"] = True
        return {
            "type": "object",
            "required": ["inputs"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": ["string", "null"], "description": "echoed in the response"},
                "parameters": {"description": "accepted and ignored"},
                "inputs": inputs,
                "outputs": {
                    "description": "the outputs to return (default: all)",
                    "anyOf": [{"type": "array", "minItems": 1, "items": outputs}, {"type": "null"}],
                },
            },
        }

    def _infer_response(self) -> JSONDict:
        elements = {
            "predict": self._prediction()["properties"]["prediction"],
            "predict_proba": _NUMBER_OR_NAN,
            "prediction_id": _PREDICTION_ID,
        }
        tensors = [
            _object(
                name={"const": output["name"]},
                datatype={"const": output["datatype"]},
                shape=_output_shape(output["shape"]),
                data={"type": "array", "items": elements[output["name"]]},
            )
            for output in self.metadata["outputs"]
        ]
        response = _object(
            model_name={"const": self.name},
            model_version=(
                {"type": "string", "description": "the primary's version, or the fallback's"}
                if self.fallback is not None
                else {"const": str(self.primary.version)}
            ),
            outputs={"type": "array", "minItems": 1, "items": {"anyOf": tensors}},
        )
        response["properties"]["id"] = {"type": "string", "description": "the request's id"}
        if self.fallback is not None:
            response["properties"]["parameters"] = _object(fallback=_FALLBACK_REASON)
        return response

    def _predict_response(self) -> JSONDict:
        model = _object(name={"const": self.primary.name}, version={"const": self.primary.version})
        if self.fallback is not None:  # the fallback model (or a default prediction) answered
            model = _object(name={"type": "string"}, version={"type": ["integer", "null"]})
        response = _object(
            endpoint={"const": self.name},
            model=model,
            predictions={"type": "array", "minItems": 1, "items": self.ref("Prediction")},
        )
        if self.fallback is not None:
            response["properties"]["fallback"] = _FALLBACK_REASON
        return response

    # -- paths -------------------------------------------------------------------------------

    def paths(self) -> JSONDict:
        loaded = self.version is not None
        model = f"model '{self.primary.name}' version {self.primary.version}"
        features = self.uses_features
        model_errors: Responses = {"503": _NOT_READY_FEATURES if features else _NOT_READY}
        if loaded:
            model_errors["500"] = _error("The model failed.", "model_error")
        if self.timeout_ms is not None:
            message = f"The model took longer than {self.timeout_ms} ms."
            model_errors["504"] = _error(message, "timeout")
        invalid = _INVALID_FEATURES if features else _INVALID_PREDICT
        predict = _BODY_ERRORS | {"422": invalid} | model_errors
        if loaded:
            predict["200"] = _ok("One prediction per input row, in order", "PredictResponse", self)
        v1 = f"/v1/endpoints/{self.name}"
        logged = _object(endpoint={"const": self.name}, accepted={"type": "integer", "minimum": 1})
        paths: JSONDict = {
            f"{v1}/predict": {
                "post": self._op("predict", f"Predict with {model}", predict, "PredictRequest")
            },
            f"{v1}/feedback": {
                "post": self._op(
                    "feedback",
                    "Log feedback (a label, an outcome) for earlier predictions",
                    _BODY_ERRORS | {"200": _ok("Logged", logged), "422": _INVALID_FEEDBACK},
                    body=_FEEDBACK_REQUEST,
                )
            },
        }
        ready = _object(name={"const": self.name}, ready={"type": "boolean"})
        is_ready = {"200": _ok("Ready", ready), "400": _ok("Not ready (V2's 4xx for false)", ready)}
        bad_request = _INVALID_INFER_FEATURES if features else _INVALID_INFER
        infer = {"400": bad_request, "413": _BODY_ERRORS["413"]} | model_errors
        if loaded:
            infer["200"] = _ok("Inference", "InferResponse", self)
            metadata = {"200": _ok("Model metadata", "ModelMetadata", self)}
        else:
            metadata = {"400": _error("The model is not loaded.", "not_ready")}
        v2 = f"/v2/models/{self.name}"
        for base, suffix in ((v2, ""), (f"{v2}/versions/{self.primary.version}", ".version")):
            paths[base] = {
                "get": self._op(f"v2.metadata{suffix}", f"V2 metadata of {model}", metadata)
            }
            paths[f"{base}/ready"] = {
                "get": self._op(f"v2.ready{suffix}", "Whether the model is loaded (V2)", is_ready)
            }
            paths[f"{base}/infer"] = {
                "post": self._op(
                    f"v2.infer{suffix}", f"V2 inference with {model}", infer, "InferRequest"
                )
            }
        return paths

    def _op(
        self,
        op_id: str,
        summary: str,
        responses: Responses,
        ref: str = "",
        body: JSONDict | None = None,
    ) -> JSONDict:
        return _operation(
            f"{self.name}.{op_id}", self.name, summary, responses, self.ref(ref) if ref else body
        )


# -- building blocks -------------------------------------------------------------------------------


def _operation(
    op_id: str, tag: str, summary: str, responses: Responses, body: JSONDict | None = None
) -> JSONDict:
    operation: JSONDict = {"operationId": op_id, "tags": [tag], "summary": summary}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {_JSON: {"schema": body}}}
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _object(**properties: JSONDict) -> JSONDict:
    """A closed object whose properties are all required."""
    return _closed(list(properties), **properties)


def _closed(required: list[str], **properties: JSONDict) -> JSONDict:
    """An object with only ``properties``, of which ``required``."""
    schema = {"type": "object", "required": required, "additionalProperties": False}
    return schema | {"properties": properties}


def _ok(description: str, schema: JSONDict | str, endpoint: _Endpoint | None = None) -> JSONDict:
    if isinstance(schema, str):
        assert endpoint is not None
        schema = endpoint.ref(schema)
    return _content(description, _JSON, schema)


def _content(description: str, media_type: str, schema: JSONDict) -> JSONDict:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def _error(description: str, codes: str) -> JSONDict:
    """A Problem body whose ``code`` is one of ``codes`` (space-separated)."""
    only = {"properties": {"code": {"enum": codes.split()}}}
    return _content(description, _JSON, {"allOf": [{"$ref": f"{_REF}Problem"}, only]})


def _output_shape(shape: list[int]) -> JSONDict:
    """An output tensor's shape: ``shape`` (from the metadata) with -1 rows, at least one.

    Not written with ``prefixItems``: response validators that still read a tuple the draft-7
    way (schemathesis 4's) reject it; ``contains`` pins the fixed size instead."""
    sizes = {"type": "array", "items": {"type": "integer", "minimum": 1}}
    schema = sizes | {"minItems": len(shape), "maxItems": len(shape)}
    fixed = [size for size in shape[1:] if size >= 0]
    if fixed:
        schema["contains"] = {"const": fixed[0]}
    return schema


def _tensor(name: JSONDict, width: int, group: str) -> JSONDict:
    """An input tensor of ``[N, width]`` (a column, width 1, may also be ``[N]``)."""
    element = {"type": group}
    rows = {"type": "integer", "minimum": 1}  # no rows is a 400 (empty_batch)
    shape = {"type": "array", "prefixItems": [rows, {"const": width}], "items": False}
    shape["minItems"] = 1 if width == 1 else 2
    data = {
        "type": "array",
        "minItems": 1,
        "items": {"anyOf": [element, {"type": "array", "items": element}]},
        "description": "prod(shape) elements, flat or nested row-major",
    }
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"} | name,
            "shape": shape,
            "datatype": {"enum": list(_V2_GROUPS[group])},
            "data": data,
        },
    }


def _annotated(schema: Schema) -> JSONDict:
    """``schema``'s JSON Schema for one record, with what the record validator adds."""
    record = schema.to_json_schema()
    del record["$schema"]
    for field in schema.fields:
        prop = record["properties"][field.name]
        if field.dtype == "int":
            prop |= {key: prop.get(key, bound) for key, bound in _INT64.items()}
        prop["description"] = " ".join(filter(None, [prop.get("description"), _note(field)]))
    return record


def _named(name: str) -> JSONDict:
    return {"type": "object", "required": ["name"], "properties": {"name": {"const": name}}}


def _predicted(output: Mapping[str, Any]) -> JSONDict:
    """A regressor's prediction, from the signature's output (NaN is sent as null)."""
    if output.get("shape"):
        return {"type": "array", "description": f"shape {output['shape']} per row"}
    dtype = str(output.get("dtype"))
    if dtype in ("string", "category"):
        return {"type": "string"}
    if dtype in _PREDICTED:
        return {"type": _PREDICTED[dtype]}
    return {"description": f"a {dtype} value"}


def _note(field: Field) -> str:
    """What a field accepts beyond its JSON Schema type, in words."""
    if field.dtype == "float":
        if field.allow_nan:
            return "NaN, Infinity and -Infinity (non-standard JSON) are values."
        null = "null" if field.nullable else "refused (read as null)"
        return f"NaN is {null}; Infinity and -Infinity are refused."
    if field.dtype == "int":
        return "A 64-bit whole number (3.0 is read as 3)."
    if field.dtype == "timestamp":
        return "ISO 8601 text; without a UTC offset it is read as UTC."
    return ""


_NUMBER_OR_NAN = {"type": ["number", "null"], "description": "null where the model gave NaN"}
_PREDICTION_ID: JSONDict = {"type": "string", "pattern": _UUID7, "description": "a UUIDv7"}
_BODY_ERRORS = {
    "400": _error(
        "The body is not JSON, or Content-Length not a number.", "malformed_json bad_request"
    ),
    "413": _error("The body is over the server's max_request_bytes.", "payload_too_large"),
}
_INVALID_PREDICT = _error(
    "The body is not {inputs}, holds no record, or a record breaks the signature.",
    "invalid_body empty_batch invalid_input",
)
_INVALID_FEEDBACK = _error(
    "The body is not {feedback}, or an entry is invalid.", "invalid_body empty_batch invalid_input"
)
_INVALID_INFER = _error(
    "Malformed JSON, a bad request or tensor, or inputs breaking the signature.",
    "malformed_json bad_request invalid_body invalid_input shape_mismatch empty_batch",
)
_INVALID_INFER_FEATURES = _error(
    "Malformed JSON, a bad request or tensor, inputs breaking the signature, or no value in "
    "the feature store for a feature the model needs.",
    "malformed_json bad_request invalid_body invalid_input shape_mismatch empty_batch "
    "missing_features",
)
_INVALID_FEATURES = _error(
    "The body is not {inputs}, holds no record, a record breaks the signature, or the feature "
    "store has no value for a feature the model needs.",
    "invalid_body empty_batch invalid_input missing_features",
)
_NOT_READY_FEATURES = _error(
    "The model is not loaded, too many requests wait, or the feature lookup failed.",
    "not_ready overloaded features_unavailable",
)
_NOT_READY = _error("The model is not loaded, or too many requests wait.", "not_ready overloaded")
_FEEDBACK_ENTRY = _closed(
    ["prediction_id", "value"],
    prediction_id={"type": "string", "minLength": 1, "maxLength": 128},
    value={"description": "any JSON value: the label or outcome"},
    name={"type": ["string", "null"], "description": "what the value is (default: none)"},
)
_FEEDBACK_REQUEST = _object(
    feedback={
        "description": "Ids are not looked up: feedback may come before its prediction.",
        "anyOf": [_FEEDBACK_ENTRY, {"type": "array", "minItems": 1, "items": _FEEDBACK_ENTRY}],
    }
)
_NULLABLE = {"type": ["number", "null"]}
_FALLBACK_REASON = {
    "enum": ["model_error", "timeout", "breaker_open"],
    "description": "present when the endpoint's fallback answered instead of the primary: why",
}
_READINESS = _closed(
    ["ready", "endpoints", "prediction_log", "compaction"],
    ready={"type": "boolean"},
    endpoints={
        "type": "object",
        "additionalProperties": _object(
            ready={"type": "boolean"},
            model={"type": "string"},
            model_version={"type": "integer"},
            revision={"type": "integer"},
            load_seconds=_NULLABLE,
            error={"type": ["string", "null"]},
            breaker={
                "enum": ["closed", "open", "half_open", None],
                "description": "the primary's circuit breaker (null until loaded)",
            },
            fallback_error={
                "type": ["string", "null"],
                "description": "why the fallback model could not be loaded",
            },
        ),
    },
    prediction_log={
        "type": "object",
        "required": ["degraded"],
        "properties": {"degraded": {"type": "boolean"}, "reason": {"type": ["string", "null"]}},
    },
    compaction={"type": ["object", "null"], "description": "the background compactor's"},
    cache={
        "type": ["object", "null"],
        "description": "the prediction cache: backend, reachable, hits, misses, bypassed",
    },
    revisions={
        "type": "object",
        "description": "per endpoint: the revision served, those kept for an instant rollback, "
        "the last check of the metadata store and the last problem (live changes)",
        "additionalProperties": _object(
            revision={"type": "integer"},
            kept_revisions={"type": "array", "items": {"type": "integer"}},
            checked_seconds_ago=_NULLABLE,
            switches={"type": "integer"},
            error={"type": ["string", "null"]},
        ),
    },
)
_COMMON_SCHEMAS: JSONDict = {
    "Problem": _closed(
        ["error", "code"],
        error={"type": "string", "description": "what was wrong, for a person"},
        code={"type": "string", "description": "what was wrong, for a program"},
        problems={"type": "array", "items": {"$ref": f"{_REF}FieldProblem"}},
    ),
    "FieldProblem": _closed(
        ["row", "field", "message"],
        row={"type": "integer", "minimum": 0, "description": "position in the request"},
        field={"type": "string", "description": "empty when the row is not an object"},
        rule={"type": "string", "description": "null, dtype, min, max, allowed, ..."},
        message={"type": "string"},
    ),
    "Readiness": _READINESS,
}
_READY = {"$ref": f"{_REF}Readiness"}
_V2_READY = _object(ready={"type": "boolean"})
_SERVER_PATHS: JSONDict = {
    path: {"get": _operation(op_id, "server", summary, responses)}
    for path, op_id, summary, responses in [
        ("/healthz", "healthz", "Alive", {"200": _ok("OK", _object(status={"const": "alive"}))}),
        (
            "/readyz",
            "readyz",
            "Whether every model is loaded, and the prediction log's health",
            {"200": _ok("Ready", _READY), "503": _ok("Not ready", _READY)},
        ),
        (
            "/metrics",
            "metrics",
            "Prometheus metrics",
            {"200": _content(CONTENT_TYPE, CONTENT_TYPE.split(";")[0], {"type": "string"})},
        ),
        ("/openapi.json", "openapi", "This document", {"200": _ok("OpenAPI 3.1", {})}),
        (
            "/docs",
            "docs",
            "This document as a web page",
            {"200": _content("HTML", "text/html", {"type": "string"})},
        ),
        (
            "/v2/health/live",
            "v2.live",
            "Alive (V2)",
            {"200": _ok("OK", _object(live={"const": True}))},
        ),
        (
            "/v2/health/ready",
            "v2.ready",
            "Whether every model is loaded (V2)",
            {"200": _ok("Ready", _V2_READY), "400": _ok("Not ready", _V2_READY)},
        ),
    ]
}


# -- the web page ----------------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h2{border-top:1px solid #ddd;padding-top:1em}code,pre{font:13px ui-monospace,monospace}
pre{background:#f6f8fa;padding:.8em;overflow:auto;border-radius:4px}td,th{vertical-align:top;
text-align:left;padding:.3em .6em}table{border-collapse:collapse}.m{display:inline-block;
min-width:4em;border-radius:3px;color:#fff;background:#2b6cb0;text-align:center}.post{background:#2f855a}
"""


def docs_page(document: Mapping[str, Any]) -> str:
    """``document`` as one HTML page with no external resource: operations, then schemas."""
    info = document["info"]
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    out = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_h(info['title'])}",
        f"</title><style>{_STYLE}</style></head><body><h1>{_h(info['title'])} ",
        f"<small>{_h(info['version'])}</small></h1><p>{_h(info['description'])}</p><ul>",
    ]
    out += [
        f"<li><a href='#{_h(op['operationId'])}'><code>{method.upper()} {_h(path)}</code></a> "
        f"{_h(op['summary'])}</li>"
        for path, method, op in operations
    ]
    out.append("</ul>")
    for path, method, op in operations:
        out.append(
            f"<h2 id='{_h(op['operationId'])}'><span class='m {method}'>{method.upper()}</span> "
            f"<code>{_h(path)}</code></h2><p>{_h(op['summary'])}</p>"
        )
        if "requestBody" in op:
            out.append(f"<h3>Request body</h3>{_body(op['requestBody']['content'][_JSON])}")
        out.append("<h3>Responses</h3><table><tr><th>status</th><th>when</th><th>body</th></tr>")
        for status, answer in op["responses"].items():
            [(media, content)] = answer["content"].items()
            out.append(
                f"<tr><td>{_h(status)}</td><td>{_h(answer['description'])}</td>"
                f"<td><code>{_h(media)}</code> {_body(content)}</td></tr>"
            )
        out.append("</table>")
    out.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        out.append(f"<h3 id='schema-{_h(name)}'>{_h(name)}</h3>{_pre(schema)}")
    out.append("</body></html>")
    return "\n".join(out)


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _body(content: Mapping[str, Any]) -> str:
    """A media type's schema: a link for a named one, the codes for an error, else JSON."""
    schema = content["schema"]
    if set(schema) == {"$ref"}:
        name = schema["$ref"].removeprefix(_REF)
        return f"<a href='#schema-{_h(name)}'>{_h(name)}</a>"
    if set(schema) == {"allOf"} and schema["allOf"][0] == {"$ref": f"{_REF}Problem"}:
        codes = ", ".join(
            f"<code>{_h(c)}</code>" for c in schema["allOf"][1]["properties"]["code"]["enum"]
        )
        return f"<a href='#schema-Problem'>Problem</a> with code {codes}"
    return _pre(schema)


def _pre(schema: Any) -> str:
    """Indented JSON whose ``$ref`` targets link to the schema's section."""
    parts = _h(json.dumps(schema, indent=2, ensure_ascii=False)).split(f"&quot;{_REF}")
    for index in range(1, len(parts)):
        name, rest = parts[index].split("&quot;", 1)
        parts[index] = f"&quot;<a href='#schema-{name}'>{_REF}{name}</a>&quot;{rest}"
    return f"<pre>{''.join(parts)}</pre>"
