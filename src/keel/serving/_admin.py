"""The admin routes: an endpoint's live deployment, read and changed over HTTP.

    GET  /v1/endpoints                    the endpoints this server serves, each as it is live
    GET  /v1/endpoints/{name}             one of them
    POST /v1/endpoints/{name}/rollback    {"to_revision": 3, "reason": "p99 regressed"}  (optional)
    PUT  /v1/endpoints/{name}/arms        {"arms": [{"model": "models:/churn/2", "weight": 10},
                                                    {"model": "models:/churn/3", "weight": 90}],
                                           "reason": "canary at 10 %"}

An endpoint is answered with its live revision and policy (as ``keel endpoints show --json``)
and ``served_revision``, the revision this worker serves: the two differ until its watcher has
switched. A change answers ``{"changed": bool, "revision": {...}}``.

Each route needs an API key with the ``admin`` scope. A change is written by
:class:`~keel.serving._deployments.DeploymentStore` exactly as ``keel endpoints rollback`` and
``keel endpoints set NAME --arm URI=WEIGHT`` write it: a new revision in the metadata database
(none when nothing changes), so every worker of every server process, this one included, switches
to it through its :class:`~keel.serving._live.RevisionWatcher` within ``[serving]
revision_poll_seconds``. The revision and its audit entry name the key, ``key:<name>/<id>``, not
whoever started the server. The database work runs in a thread, off the event loop.

Answers: 404 ``not_found`` for an endpoint this server does not serve; 422 ``invalid_body``
with ``problems`` (one per bad field: an unknown field, a weight that is not a number, a model
URI that resolves to nothing, a revision the endpoint never had); 409 ``deployment_refused``
for a change the deployment refuses (an archived version, nothing to roll back to); 503
``metadata_unavailable`` when the metadata database cannot be reached.

**Admin needs auth.** While auth is off the admin routes refuse every request (403
``admin_disabled``), even on a loopback address. Loopback is not a trust boundary: every local
user and process reaches it, so do the other containers of a pod and a proxy in front of the
server, and any web page the operator opens can send a cross-origin POST to it (the body is read
as JSON whatever its content type). A change also needs an identity to be audited with, and
with auth off there is none. Local development loses nothing: ``keel endpoints`` makes the same
changes from the command line, audited with the configured actor. (TorchServe turned token auth
on by default for its management API for these reasons.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from keel.errors import (
    DeploymentError,
    EndpointNotFound,
    InvalidModelURI,
    InvalidPolicy,
    MetadataStoreError,
    NotFoundError,
)
from keel.serving._dataplane import Problem
from keel.serving._http import Request, Response, ok

if TYPE_CHECKING:
    from keel.serving._app import ServingApp
    from keel.serving._deployments import DeploymentStore, Endpoint, Revision

_T = TypeVar("_T")

ADMIN_DISABLED = (
    "the admin routes need API keys and this server runs with auth off: start it with "
    '[serving] auth = "on" (or KEEL_SERVING__AUTH=on) and send a key with the admin scope '
    "(`keel keys create NAME --scope admin`), or make the change with `keel endpoints`"
)


async def list_endpoints(app: ServingApp, request: Request) -> Response:
    deployments = _deployments(app)
    endpoints = await _call(deployments.list)
    served = [endpoint for endpoint in endpoints if endpoint.name in app.dataplane.runtimes]
    return ok({"endpoints": [_endpoint(app, endpoint) for endpoint in served]})


async def show_endpoint(app: ServingApp, request: Request) -> Response:
    deployments = _deployments(app)
    name = _served(app, request)
    return ok(_endpoint(app, await _call(deployments.get, name)))


async def rollback(app: ServingApp, request: Request) -> Response:
    deployments = _deployments(app)
    name = _served(app, request)
    body = _body(request, optional=True)
    problems = _unknown(body, ("to_revision", "reason"))
    to = body.get("to_revision")
    if to is not None and (not isinstance(to, int) or isinstance(to, bool) or to < 1):
        problems.append(_problem("to_revision", f"must be a revision number >= 1, not {to!r}"))
    reason = _reason(body, problems)
    _refuse(problems)
    actor = _actor(request)

    def change() -> Revision:
        return deployments.rollback(name, to, reason=reason, actor=actor)

    return await _change(deployments, name, change, "to_revision")


async def set_arms(app: ServingApp, request: Request) -> Response:
    deployments = _deployments(app)
    name = _served(app, request)
    body = _body(request, optional=False)
    problems = _unknown(body, ("arms", "reason"))
    reason = _reason(body, problems)
    arms = _arms(body, problems)
    _refuse(problems)
    actor = _actor(request)

    def change() -> Revision:
        # The path of `keel endpoints set NAME --arm URI=WEIGHT`: pinned and checked there.
        return deployments.set(name, arms=arms, reason=reason, actor=actor)

    return await _change(deployments, name, change, "arms")


# -- helpers -------------------------------------------------------------------------------------


def _deployments(app: ServingApp) -> DeploymentStore:
    """The store to work on, once the request may use admin routes at all."""
    if app.guard is None:
        raise Problem(403, "admin_disabled", ADMIN_DISABLED)
    if app.deployments is None:
        raise Problem(503, "admin_unavailable", "this server was built without a deployment store")
    return app.deployments


def _served(app: ServingApp, request: Request) -> str:
    name = request.params[0]
    if name not in app.dataplane.runtimes:
        served = ", ".join(sorted(app.dataplane.runtimes)) or "none"
        raise Problem(
            404,
            "not_found",
            f"endpoint '{name}' is not served here (this server serves: {served}); "
            "change another endpoint with `keel endpoints` or on a server that serves it",
        )
    return name


def _actor(request: Request) -> str:
    assert request.key is not None  # admin routes answer only with auth on, after the guard
    return request.key.actor


def _endpoint(app: ServingApp, endpoint: Endpoint) -> dict[str, Any]:
    runtime = app.dataplane.runtimes.get(endpoint.name)
    return endpoint.to_dict() | {"served_revision": None if runtime is None else runtime.revision}


async def _change(
    deployments: DeploymentStore, name: str, change: Callable[[], Revision], field: str
) -> Response:
    """Run ``change`` in a thread; its answer, or the Problem its refusal is."""

    def run() -> tuple[int, Revision]:
        before = deployments.get(name).revision.number
        return before, change()

    try:
        before, revision = await _call(run)
    except InvalidPolicy as error:
        raise _invalid([_problem(error.field, error.problem)]) from None
    except DeploymentError as error:
        raise Problem(409, "deployment_refused", str(error)) from None
    except (NotFoundError, InvalidModelURI) as error:  # a model or revision the body names
        raise _invalid([_problem(field, str(error))]) from None
    return ok({"changed": revision.number != before, "revision": revision.to_dict()})


async def _call(function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` in a thread: a metadata read or write, never on the event loop."""
    try:
        return await asyncio.to_thread(function, *args)
    except EndpointNotFound as error:  # served here, but gone from the metadata database
        raise Problem(404, "not_found", str(error)) from None
    except MetadataStoreError as error:
        raise Problem(
            503, "metadata_unavailable", f"the metadata database cannot be reached: {error}"
        ) from None


def _body(request: Request, *, optional: bool) -> dict[str, Any]:
    if optional and not request.body.strip():
        return {}
    body = request.json()
    if not isinstance(body, dict):
        raise _invalid([_problem("", f"the body must be a JSON object, not {_kind(body)}")])
    return body


def _unknown(body: Mapping[str, Any], known: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        _problem(key, f"is not a field of this body (known: {', '.join(known)})")
        for key in body
        if key not in known
    ]


def _reason(body: Mapping[str, Any], problems: list[dict[str, Any]]) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        problems.append(_problem("reason", f"must be text or null, not {_kind(reason)}"))
        return None
    return reason


def _arms(body: Mapping[str, Any], problems: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """The (model URI, weight) pairs of the body, as ``keel endpoints set --arm`` takes them;
    ranges (a weight >= 0, one arm weighing > 0, no arm twice) are the policy's to check."""
    if "arms" not in body:
        problems.append(_problem("arms", "is missing: a list of {model, weight} ([] for none)"))
        return []
    items = body["arms"]
    if not isinstance(items, list):
        problems.append(
            _problem("arms", f"must be a list of {{model, weight}}, not {_kind(items)}")
        )
        return []
    arms: list[tuple[str, float]] = []
    for index, item in enumerate(items):
        where = f"arms[{index}]"
        if not isinstance(item, dict):
            problems.append(_problem(where, f"must be {{model, weight}}, not {_kind(item)}"))
            continue
        if set(item) != {"model", "weight"}:
            has = ", ".join(sorted(map(str, item))) or "none"
            problems.append(_problem(where, f"must have the fields model and weight (has: {has})"))
            continue
        uri, weight = item["model"], _number(item["weight"])
        if not isinstance(uri, str):
            problems.append(_problem(f"{where}.model", f"must be a model URI, not {_kind(uri)}"))
        if weight is None:
            message = f"must be a number, not {_kind(item['weight'])}"
            problems.append(_problem(f"{where}.weight", message))
        if isinstance(uri, str) and weight is not None:
            arms.append((uri, weight))
    return arms


def _number(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:  # a whole number past float's range (Python's JSON reads it)
        return None


def _problem(field: str, message: str) -> dict[str, Any]:
    return {"row": 0, "field": field, "message": message}


def _refuse(problems: list[dict[str, Any]]) -> None:
    if problems:
        raise _invalid(problems)


def _invalid(problems: list[dict[str, Any]]) -> Problem:
    summary = "; ".join(f"{p['field'] or 'body'}: {p['message']}" for p in problems)
    return Problem(422, "invalid_body", f"invalid body: {summary}", problems)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return "a list" if isinstance(value, list) else "an object"
