"""The OpenAPI 3.1 document of a running server, built from the signatures of its endpoints.

    document = openapi_document(app.dataplane, max_request_bytes=app.max_request_bytes)
    page = docs_page(document)          # keel.serving._docs_page: the HTML of GET /docs

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

The admin operations (:mod:`._openapi_admin`) are listed whether auth is on or not (off, they
answer 403). With auth on, the document declares the two ways to send a key (``bearer`` and
``apiKey`` security schemes), and each operation whose route needs a scope (the router's table
says which) requires either, naming the scope as its role, and lists the guard's answers: 401
with ``WWW-Authenticate``, 403, 429 with ``Retry-After``, 503 when keys cannot be checked.

Not repeated on every operation: 404 for a path that is not listed, 405 (with ``Allow``) for a
method a path does not take and, on any route, 413 for a body over ``max_request_bytes`` and
400 for a Content-Length that is not a number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel import __version__
from keel.serving import _v2
from keel.serving._dataplane import Problem
from keel.serving._openapi_admin import ADMIN_SCHEMAS, admin_paths
from keel.serving._openapi_common import (
    _BODY_ERRORS,
    _COMMON_SCHEMAS,
    _FALLBACK_REASON,
    _FEEDBACK_REQUEST,
    _INVALID_FEATURES,
    _INVALID_FEEDBACK,
    _INVALID_INFER,
    _INVALID_INFER_FEATURES,
    _INVALID_PREDICT,
    _NOT_READY,
    _NOT_READY_FEATURES,
    _NUMBER_OR_NAN,
    _PREDICTION_ID,
    _REF,
    _SERVER_PATHS,
    _V2_COLUMN_GROUPS,
    _V2_GROUPS,
    SECURITY_SCHEMES,
    JSONDict,
    Responses,
    ScopeOf,
    _annotated,
    _error,
    _named,
    _object,
    _ok,
    _operation,
    _output_shape,
    _predicted,
    _secured,
    _tensor,
)

if TYPE_CHECKING:
    from keel.serving._dataplane import Dataplane
    from keel.serving._runtime import EndpointRuntime


def openapi_document(
    dataplane: Dataplane,
    *,
    max_request_bytes: int,
    scope_of: ScopeOf | None = None,
    auth: bool = False,
) -> JSONDict:
    """The OpenAPI 3.1 document of the server answering for ``dataplane``'s endpoints.

    ``auth``: the server checks API keys, on the routes for which ``scope_of(method, path)``
    (the router's table) names a scope; those operations then carry the security requirement
    and the 401 / 403 / 429 answers. With auth off the admin operations answer only 403."""
    names = sorted(dataplane.runtimes)
    paths = dict(_SERVER_PATHS)
    schemas = dict(_COMMON_SCHEMAS) | ADMIN_SCHEMAS
    for name in names:
        endpoint = _Endpoint(dataplane.runtimes[name])
        paths |= endpoint.paths()
        schemas |= {f"{name}.{key}": value for key, value in endpoint.schemas().items()}
    paths |= admin_paths(names, auth=auth)
    components: JSONDict = {"schemas": schemas}
    keys = ""
    if auth and scope_of is not None:
        paths = _secured(paths, scope_of)
        components["securitySchemes"] = SECURITY_SCHEMES
        keys = (
            " Operations marked with a security requirement need an API key with the scope "
            "it names (`keel keys create NAME --scope SCOPE`): 'Authorization: Bearer <key>' "
            "or 'X-API-Key: <key>'."
        )
    description = (
        f"Endpoints: {', '.join(names) or 'none'}. Request bodies are JSON of at most "
        f"{max_request_bytes} bytes (413 beyond). Every error is "
        '{"error": message, "code": kind}, with "problems" (one per bad field) for invalid '
        "inputs. A path not listed here is a 404; a method a path does not take, a 405." + keys
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "keel serving API", "version": __version__, "description": description},
        "tags": [{"name": "server"}, {"name": "admin"}, *({"name": name} for name in names)],
        "paths": paths,
        "components": components,
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
