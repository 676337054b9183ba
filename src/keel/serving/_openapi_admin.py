"""The admin routes in the OpenAPI document (see :mod:`._admin`): literal paths per served
endpoint, like the prediction routes, and the deployment's shapes as component schemas (those
of ``Endpoint.to_dict`` and ``TrafficPolicy.to_dict``)."""

from __future__ import annotations

from keel.serving._openapi_common import (
    _BODY_ERRORS,
    _REF,
    JSONDict,
    Responses,
    _closed,
    _error,
    _object,
    _ok,
    _operation,
)

_MODEL = {"$ref": f"{_REF}PinnedModel"}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_REASON = {"type": ["string", "null"], "description": "why: recorded with the revision, audited"}
_WEIGHT = {"type": "number", "minimum": 0, "description": "share: weight / sum of weights"}

ADMIN_SCHEMAS: JSONDict = {
    "PinnedModel": _object(
        name={"type": "string"},
        version={"type": "integer", "minimum": 1, "description": "what uri resolved to"},
        uri={"type": "string", "description": "what it was set from (a version or an alias)"},
    ),
    "TrafficPolicy": _object(
        primary=_MODEL,
        shadows={"type": "array", "items": _MODEL},
        arms={"type": "array", "items": _object(model=_MODEL, weight=_WEIGHT)},
        fallback={
            "anyOf": [
                {"type": "null"},
                _object(model=_MODEL),
                _object(prediction={"description": "any JSON value"}),
            ]
        },
        max_batch_size={"type": "integer", "minimum": 1},
        max_batch_wait_ms={"type": "number", "minimum": 0},
        timeout_ms={"type": ["integer", "null"], "minimum": 1},
        features={"type": "boolean"},
        cache={"type": "boolean"},
        routing_field=_NULLABLE_TEXT,
    ),
    "Revision": _object(
        endpoint={"type": "string"},
        number={"type": "integer", "minimum": 1},
        action={"enum": ["create", "set", "rollback", "follow"]},
        policy={"$ref": f"{_REF}TrafficPolicy"},
        created_at={"type": "number", "description": "seconds since the epoch"},
        created_by={"type": "string", "description": "key:<name>/<id> when set by an API key"},
        reason=_NULLABLE_TEXT,
    ),
    "Endpoint": _object(
        name={"type": "string"},
        description=_NULLABLE_TEXT,
        created_at={"type": "number"},
        created_by={"type": "string"},
        revision={"$ref": f"{_REF}Revision"},
        served_revision={
            "type": ["integer", "null"],
            "description": "the revision this worker serves: behind the live one until its "
            "watcher has switched",
        },
    ),
    "Change": _object(
        changed={"type": "boolean", "description": "false: nothing changed, no new revision"},
        revision={"$ref": f"{_REF}Revision"},
    ),
}

_UNAVAILABLE = _error(
    "The metadata database cannot be reached (or the server has no deployment store).",
    "metadata_unavailable admin_unavailable",
)
_NOT_SERVED = _error("The endpoint is not served here.", "not_found")
_REFUSED = _error(
    "The deployment refuses the change (an archived version, nothing to roll back to).",
    "deployment_refused",
)
_DISABLED = _error("Auth is off: the admin routes need it on.", "admin_disabled")
_ROLLBACK_REQUEST = _closed(
    [],
    to_revision={
        "type": ["integer", "null"],
        "minimum": 1,
        "description": "the revision whose policy to restore (default: the previous one)",
    },
    reason=_REASON,
)
_ARMS_REQUEST = _closed(
    ["arms"],
    arms={
        "type": "array",
        "items": _object(model={"type": "string", "description": "a models:/ URI"}, weight=_WEIGHT),
        "description": "(as `keel endpoints set NAME --arm URI=WEIGHT`); [] stops splitting",
    },
    reason=_REASON,
)


def admin_paths(names: list[str], *, auth: bool) -> JSONDict:
    """The admin operations for the endpoints ``names``; with auth off each answers 403."""
    change = _BODY_ERRORS | {
        "200": _ok("The live revision after the change", {"$ref": f"{_REF}Change"}),
        "404": _NOT_SERVED,
        "409": _REFUSED,
        "422": _error("An invalid body: one problem per field.", "invalid_body"),
        "503": _UNAVAILABLE,
    }
    endpoint = {"200": _ok("The endpoint", {"$ref": f"{_REF}Endpoint"})}
    endpoint |= {"404": _NOT_SERVED, "503": _UNAVAILABLE}
    endpoints = {"type": "array", "items": {"$ref": f"{_REF}Endpoint"}}
    listed = {"200": _ok("The endpoints served here", _object(endpoints=endpoints))}
    paths: JSONDict = {
        "/v1/endpoints": {
            "get": _admin(
                "admin.endpoints",
                "The endpoints served here, each as it is live",
                listed | {"503": _UNAVAILABLE},
                auth,
            )
        }
    }
    for name in names:
        base = f"/v1/endpoints/{name}"
        rollback = _admin(
            f"{name}.admin.rollback",
            f"Roll '{name}' back to an earlier revision's policy, as a new revision",
            change,
            auth,
            _ROLLBACK_REQUEST,
        )
        rollback["requestBody"]["required"] = False  # no body: back to the previous revision
        paths[base] = {
            "get": _admin(f"{name}.admin.show", f"'{name}' as it is live", endpoint, auth)
        }
        paths[f"{base}/rollback"] = {"post": rollback}
        paths[f"{base}/arms"] = {
            "put": _admin(
                f"{name}.admin.arms",
                f"Set the weighted arms of '{name}' (a new revision)",
                change,
                auth,
                _ARMS_REQUEST,
            )
        }
    return paths


def _admin(
    op_id: str, summary: str, responses: Responses, auth: bool, body: JSONDict | None = None
) -> JSONDict:
    return _operation(
        op_id, "admin", summary, responses | ({} if auth else {"403": _DISABLED}), body
    )
