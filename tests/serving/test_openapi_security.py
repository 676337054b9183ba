"""The OpenAPI document of a server with API keys on: both ways to send a key declared, each
operation whose route needs a scope requiring it, the guard's answers (401, 403, 429 with
Retry-After) documented and true; fuzzed with a key, including the admin operations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.definitions import OPENAPI_31

from keel import Workspace
from keel.serving._server import serving_app

from ._server_process import ROW, deploy_churn
from .test_openapi import (
    FUZZ_EXAMPLES,
    NEGATIVE,
    POSITIVE,
    _client,
    _document,
    _project,
    _schema_objects,
)

pytestmark = pytest.mark.anyio


def _codes(response: dict[str, Any]) -> list[str]:
    """The ``code`` values an error response documents."""
    only = response["content"]["application/json"]["schema"]["allOf"][1]
    codes: list[str] = only["properties"]["code"]["enum"]
    return codes


OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str]]:
    """A project of its own, as the admin operations change it: endpoint ``churn``, and the
    secret of a key with every scope."""
    with Workspace(_project(tmp_path_factory.mktemp("guarded"))) as workspace:
        deploy_churn(workspace)
        _, secret = workspace.keys.create("all", ["predict", "feedback", "admin"])
        yield workspace, secret


def _guarded_app(workspace: Workspace) -> Any:
    return serving_app(workspace, auth=True)


@pytest.fixture
async def guarded_document(guarded: tuple[Workspace, str]) -> dict[str, Any]:
    app = _guarded_app(guarded[0])
    await app.startup()
    try:
        async with _client(app) as client:
            return await _document(client)
    finally:
        await app.shutdown()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _scope(path: str) -> str | None:
    """The scope a path of the document needs, said independently of the router's table."""
    if path in OPEN or path.startswith("/v2/health/"):
        return None
    if path == "/v1/endpoints" or path.rsplit("/", 1)[-1] not in ("predict", "feedback"):
        return "predict" if path.startswith("/v2/") else "admin"
    return path.rsplit("/", 1)[-1]


async def test_with_auth_on_the_document_declares_both_ways_to_send_a_key(
    guarded_document: dict[str, Any],
) -> None:
    jsonschema_rs.validator_for(OPENAPI_31).validate(guarded_document)
    for schema in _schema_objects(guarded_document):
        jsonschema_rs.meta.validate(schema)
    schemes = guarded_document["components"]["securitySchemes"]
    assert all(scheme.pop("description") for scheme in schemes.values())
    assert schemes == {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    assert "X-API-Key" in guarded_document["info"]["description"]


async def test_with_auth_on_each_operation_needing_a_scope_requires_a_key_with_it(
    guarded_document: dict[str, Any],
) -> None:
    secured = 0
    for path, _, operation in _operations(guarded_document):
        scope = _scope(path)
        if scope is None:
            assert "security" not in operation, path
            assert not {"401", "429"} & operation["responses"].keys(), path
            continue
        secured += 1
        assert operation["security"] == [{"bearer": [scope]}, {"apiKey": [scope]}], path
        responses = operation["responses"]
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert _codes(responses["401"]) == [
            "unauthenticated",
            "invalid_api_key",
            "ambiguous_api_key",
        ]
        assert _codes(responses["403"]) == ["missing_scope"]
        assert _codes(responses["429"]) == ["rate_limited"]
        retry_after = responses["429"]["headers"]["Retry-After"]["schema"]
        assert retry_after == {"type": "integer", "minimum": 1}
        assert "keys_unavailable" in _codes(responses["503"])
    assert secured == 12  # 8 routes of the endpoint, 4 admin routes


async def test_with_auth_off_no_operation_needs_a_key_and_admin_ones_answer_403(
    guarded: tuple[Workspace, str],
) -> None:
    app = serving_app(guarded[0])
    await app.startup()
    try:
        async with _client(app) as client:
            document = await _document(client)
    finally:
        await app.shutdown()
    assert "securitySchemes" not in document["components"]
    admin = 0
    for path, _, operation in _operations(document):
        assert "security" not in operation
        if _scope(path) == "admin":
            admin += 1
            assert _codes(operation["responses"]["403"]) == ["admin_disabled"]
    assert admin == 4  # the listing, and the endpoint's three admin routes


async def test_the_answers_of_the_guard_are_the_documented_ones(
    guarded: tuple[Workspace, str],
) -> None:
    workspace, _ = guarded
    _, limited = workspace.keys.create("limited", ["predict"], rate_per_second=0.01, burst=1)
    schema = schemathesis.openapi.from_asgi("/openapi.json", _guarded_app(workspace))
    schema.config.checks.update(included_check_names=GUARD_CHECKS)
    predict = schema.find_operation_by_label("POST /v1/endpoints/churn/predict")
    show = schema.find_operation_by_label("GET /v1/endpoints/churn")
    try:
        for operation, headers, status in [
            (predict, {}, 401),
            (predict, {"x-api-key": "keel_0000000000000000_" + "A" * 43}, 401),
            (show, {"authorization": "Bearer nonsense"}, 401),
            (show, {"authorization": f"Bearer {limited}", "x-api-key": "other"}, 401),
            (show, {"x-api-key": limited}, 403),
            (predict, {"x-api-key": limited}, 200),
            (predict, {"x-api-key": limited}, 429),
        ]:
            body = {"body": {"inputs": ROW}} if operation is predict else {}
            case = operation.Case(headers=headers, **body)
            response = case.call_and_validate()
            assert response.status_code == status, response.text
    finally:
        shutdown_lifespans()


# -- fuzzing ---------------------------------------------------------------------------------------

GUARD_CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]


@pytest.fixture
def guarded_schema(guarded: tuple[Workspace, str]) -> Iterator[Any]:
    """The document of an app with auth on, loaded by schemathesis, which also checks that an
    operation answered with the key refuses the same request without one (``ignored_auth``)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", _guarded_app(guarded[0]))
    checks = [*GUARD_CHECKS, "negative_data_rejection", "ignored_auth"]
    schema.config.checks.update(included_check_names=checks)
    yield schema
    shutdown_lifespans()


GUARDED = [
    "GET /v1/endpoints",
    "GET /v1/endpoints/churn",
    "POST /v1/endpoints/churn/rollback",
    "PUT /v1/endpoints/churn/arms",
    "POST /v1/endpoints/churn/predict",
]
GUARDED_FUZZ = [(label, POSITIVE) for label in GUARDED] + [
    (label, NEGATIVE) for label in GUARDED if not label.startswith("GET")
]


@pytest.mark.parametrize(
    ("label", "mode"), GUARDED_FUZZ, ids=[f"{label}-{mode.value}" for label, mode in GUARDED_FUZZ]
)
def test_fuzzed_requests_with_a_key_get_documented_answers(
    guarded_schema: Any, guarded: tuple[Workspace, str], label: str, mode: Any
) -> None:
    operation = guarded_schema.find_operation_by_label(label)
    secret = guarded[1]
    # Both headers, named as the schemes name them: nothing generated in their place, and the
    # probes that drop them (ignored_auth) find them.
    key = {"Authorization": f"Bearer {secret}", "X-API-Key": secret}

    @hypothesis.settings(max_examples=FUZZ_EXAMPLES, database=None)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=key)

    fuzz()
