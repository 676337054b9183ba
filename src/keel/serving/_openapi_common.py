"""The parts of the OpenAPI document that do not depend on an endpoint: schema helpers, the
error bodies, readiness, feedback, and the server's own paths (see :mod:`._openapi`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from keel.serving._metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from keel.data import Field, Schema

JSONDict = dict[str, Any]
Responses = dict[str, JSONDict]

JSON_MEDIA_TYPE = "application/json"
REF_PREFIX = "#/components/schemas/"
_JSON = JSON_MEDIA_TYPE
_REF = REF_PREFIX
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


class _Refs(Protocol):
    def ref(self, what: str) -> JSONDict: ...


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


def _ok(description: str, schema: JSONDict | str, endpoint: _Refs | None = None) -> JSONDict:
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
            shadows={
                "description": "the shadow versions mirrored to, and the copies in flight",
                "anyOf": [
                    _object(
                        models={"type": "array", "items": {"type": "string"}},
                        pending={"type": "integer", "minimum": 0},
                    ),
                    {"type": "null"},
                ],
            },
            shadow_errors={
                "type": ["object", "null"],
                "additionalProperties": {"type": "string"},
                "description": "per shadow model URI, why it could not be loaded",
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
    api_keys={
        "type": "object",
        "description": "with auth on: whether the metadata store answers key checks, or keys "
        "verified before it failed are answered from memory",
    },
    ratelimit={
        "type": "object",
        "description": "with auth on: the rate limiter's backend and, for Redis, whether it is "
        "reachable (when not, each process limits on its own)",
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


# -- API keys --------------------------------------------------------------------------------------

ScopeOf = Callable[[str, str], "str | None"]
"""(method, path) -> the API-key scope the route needs, or None for an open route."""

SECURITY_SCHEMES: JSONDict = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <key>, a key from `keel keys create`.",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same key in its own header.",
    },
}
_HEADER = {"schema": {"type": "string"}}
_UNAUTHENTICATED = _error(
    "No API key, one that is unknown, revoked or expired, or two different keys.",
    "unauthenticated invalid_api_key ambiguous_api_key",
) | {"headers": {"WWW-Authenticate": _HEADER | {"description": 'Bearer realm="keel"'}}}
_RATE_LIMITED = _error("The key is over its rate limit.", "rate_limited") | {
    "headers": {
        "Retry-After": {
            "description": "whole seconds to wait before the next request",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
}


def _secured(paths: JSONDict, scope_of: ScopeOf) -> JSONDict:
    """``paths`` with, on each operation whose route needs an API-key scope, the security
    requirement (either header, the scope as its role: OpenAPI 3.1 lets a non-OAuth scheme
    name roles) and the guard's answers: 401, 403, 429 with Retry-After, and 503 when keys
    cannot be checked. The router says which routes need which scope, so this cannot drift."""
    secured: JSONDict = {}
    for path, item in paths.items():
        secured[path] = {}
        for method, operation in item.items():
            scope = scope_of(method.upper(), path)
            if scope is not None:
                operation = _guarded(operation, scope)
            secured[path][method] = operation
    return secured


def _guarded(operation: JSONDict, scope: str) -> JSONDict:
    responses = dict(operation["responses"])
    missing = _error(f"The key lacks the '{scope}' scope.", "missing_scope")
    unavailable = "The API key cannot be checked now (the metadata database is unreachable)."
    responses |= {"401": _UNAUTHENTICATED, "403": missing, "429": _RATE_LIMITED}
    responses["503"] = _with_code(responses.get("503"), unavailable, "keys_unavailable")
    security = [{name: [scope]} for name in SECURITY_SCHEMES]
    return operation | {"security": security, "responses": dict(sorted(responses.items()))}


def _with_code(response: JSONDict | None, description: str, code: str) -> JSONDict:
    """An error response that may also carry ``code``: ``response`` (built by :func:`_error`)
    widened, or a new one."""
    if response is None:
        return _error(description, code)
    codes = response["content"][_JSON]["schema"]["allOf"][1]["properties"]["code"]["enum"]
    return _error(f"{response['description']} Or: {description}", " ".join([*codes, code]))
