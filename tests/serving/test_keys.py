"""API keys: hashed at rest, shown once, scoped, revocable, audited, cheap to check."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest
import sqlalchemy as sa

from keel import Workspace
from keel.errors import (
    ApiKeyError,
    ApiKeyExists,
    ApiKeyNotFound,
    InvalidApiKey,
    MissingScope,
    NotFoundError,
    ServingError,
)
from keel.serving._keys import KeyStore
from keel.store import _tables as t


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys(workspace: Workspace, clock: FakeClock) -> KeyStore:
    """A key store with a 5 s cache on a clock the test moves."""
    return KeyStore(workspace.store, "tester", cache_ttl=5.0, clock=clock)


def _audit(workspace: Workspace, key_id: str) -> list[Any]:
    log = t.audit_log
    with workspace.store.read() as connection:
        return connection.execute(
            sa.select(log.c.actor, log.c.action, log.c.from_value, log.c.to_value, log.c.reason)
            .where(log.c.entity == "api_key", log.c.entity_key == key_id)
            .order_by(log.c.id)
        ).all()


def _row(workspace: Workspace, key_id: str) -> Any:
    with workspace.store.read() as connection:
        return connection.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id)).one()


# -- creating --------------------------------------------------------------------------------------


def test_create_returns_a_secret_naming_the_key_and_stores_only_its_hash(
    workspace: Workspace, keys: KeyStore
) -> None:
    record, secret = keys.create("ci", ["predict", "feedback"], rate_per_second=10, burst=20)

    prefix, key_id, random_part = secret.split("_", 2)
    assert (prefix, key_id) == ("keel", record.id)
    assert len(random_part) >= 43  # 32 bytes, URL-safe base64
    row = _row(workspace, record.id)
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(tuple(row))
    assert record.scopes == frozenset({"predict", "feedback"})
    assert (record.rate_per_second, record.burst, record.created_by) == (10.0, 20, "tester")
    assert "secret" not in record.to_dict()
    assert all(secret not in str(value) for value in record.to_dict().values())


def test_two_keys_get_different_ids_and_secrets(keys: KeyStore) -> None:
    first, first_secret = keys.create("a", ["predict"])
    second, second_secret = keys.create("b", ["predict"])

    assert first.id != second.id
    assert first_secret.split("_", 2)[2] != second_secret.split("_", 2)[2]


def test_create_is_audited_with_the_actor_and_without_the_secret(
    workspace: Workspace, keys: KeyStore
) -> None:
    record, secret = keys.create("ci", ["predict"], rate_per_second=5)
    admin, _ = keys.create("ops", ["admin"], actor="key:root/0123")

    [entry] = _audit(workspace, record.id)
    assert (entry.actor, entry.action, entry.from_value) == ("tester", "create", None)
    assert entry.to_value == "ci scopes=predict rate=5/s burst=5"
    assert secret.split("_", 2)[2] not in entry.to_value
    assert _audit(workspace, admin.id)[0].actor == "key:root/0123"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scopes": ["predict", "delete"]}, "unknown scope 'delete'"),
        ({"scopes": []}, "at least one scope"),
        ({"name": "bad name"}, "not a valid key name"),
        ({"rate_per_second": 0}, "positive"),
        ({"rate_per_second": float("nan")}, "positive"),
        ({"burst": 5}, "a burst needs a rate"),
        ({"rate_per_second": 1, "burst": 0}, "at least 1"),
    ],
)
def test_create_refuses_bad_input(keys: KeyStore, kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"name": "ci", "scopes": ["predict"], **kwargs}
    with pytest.raises(ApiKeyError, match=message):
        keys.create(arguments.pop("name"), arguments.pop("scopes"), **arguments)
    assert keys.list() == []


def test_burst_defaults_to_one_second_of_rate(keys: KeyStore) -> None:
    assert keys.create("a", ["predict"], rate_per_second=2.5)[0].burst == 3
    assert keys.create("b", ["predict"], rate_per_second=0.1)[0].burst == 1
    assert keys.create("c", ["predict"])[0].limited is False


def test_a_name_is_taken_even_after_revocation(keys: KeyStore) -> None:
    keys.create("ci", ["predict"])
    with pytest.raises(ApiKeyExists, match="'ci' already exists"):
        keys.create("ci", ["admin"])
    keys.revoke("ci", "rotating")
    with pytest.raises(ApiKeyExists):
        keys.create("ci", ["predict"])


# -- authenticating --------------------------------------------------------------------------------


def test_authenticate_returns_the_key_and_its_scopes(keys: KeyStore) -> None:
    record, secret = keys.create("ci", ["predict"])

    found = keys.authenticate(secret)

    assert found == record
    assert found.allows("predict")
    assert not found.allows("admin")
    found.require("predict")
    with pytest.raises(MissingScope, match="'ci' does not have the 'admin' scope"):
        found.require("admin")


def test_admin_does_not_imply_the_other_scopes(keys: KeyStore) -> None:
    _, secret = keys.create("ops", ["admin"])
    assert not keys.authenticate(secret).allows("predict")


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), id="wrong-secret"),
        pytest.param(lambda s: "keel_0123456789abcdef_" + s.split("_", 2)[2], id="unknown-id"),
        pytest.param(lambda s: s[:-1], id="truncated"),
        pytest.param(lambda s: "", id="empty"),
        pytest.param(lambda s: "Bearer " + s, id="with-scheme"),
        pytest.param(lambda s: s.upper(), id="upper-case"),
    ],
)
def test_wrong_or_malformed_secrets_are_one_invalid_api_key(keys: KeyStore, mangle: Any) -> None:
    _, secret = keys.create("ci", ["predict"])

    with pytest.raises(InvalidApiKey) as raised:
        keys.authenticate(mangle(secret))

    assert str(raised.value) == "invalid API key"
    assert raised.value.reason in {"unknown", "malformed"}


def test_the_reason_is_logged_with_the_key_id_and_not_the_secret(
    keys: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    record, secret = keys.create("ci", ["predict"])
    keys.revoke("ci", "leaked")

    with (
        caplog.at_level(logging.WARNING, logger="keel.serving.keys"),
        pytest.raises(InvalidApiKey, match="^invalid API key$"),
    ):
        keys.authenticate(secret)

    assert f"(revoked), key id {record.id}" in caplog.text
    assert secret.split("_", 2)[2] not in caplog.text


def test_an_expired_key_is_refused_at_its_expiry_even_from_the_cache(
    keys: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall = [1_000_000.0]
    for module in ("keel.serving._keys", "keel.serving._key_record"):
        monkeypatch.setattr(f"{module}.now", lambda: wall[0])
    _, secret = keys.create("temp", ["predict"], expires_at=1_000_010.0)
    assert keys.authenticate(secret).status() == "active"  # now cached

    wall[0] = 1_000_010.0

    with pytest.raises(InvalidApiKey) as raised:
        keys.authenticate(secret)
    assert raised.value.reason == "expired"


def test_verified_keys_are_cached_so_the_database_is_not_asked_again(
    workspace: Workspace, keys: KeyStore, clock: FakeClock
) -> None:
    record, secret = keys.create("ci", ["predict"])
    assert keys.cached(secret) is None
    keys.authenticate(secret)
    assert keys.cached(secret) == record
    queries: list[str] = []
    sa.event.listen(
        workspace.store.engine, "before_cursor_execute", lambda *a: queries.append(a[2])
    )

    for _ in range(100):
        keys.authenticate(secret)
    clock.now += 4.9
    keys.authenticate(secret)

    assert queries == []


def test_a_revocation_elsewhere_takes_effect_within_the_cache_ttl(
    workspace: Workspace, keys: KeyStore, clock: FakeClock
) -> None:
    _, secret = keys.create("ci", ["predict"])
    keys.authenticate(secret)
    elsewhere = KeyStore(workspace.store, "admin")  # another process's store

    elsewhere.revoke("ci", "leaked")
    clock.now += 4.9
    keys.authenticate(secret)  # still cached: the documented bound
    clock.now += 0.1

    with pytest.raises(InvalidApiKey):
        keys.authenticate(secret)
    assert keys.cached(secret) is None


def test_revoking_through_the_same_store_takes_effect_at_once(keys: KeyStore) -> None:
    _, secret = keys.create("ci", ["predict"])
    keys.authenticate(secret)

    keys.revoke("ci", "leaked")

    with pytest.raises(InvalidApiKey):
        keys.authenticate(secret)


def test_the_cache_holds_at_most_cache_size_keys(workspace: Workspace, clock: FakeClock) -> None:
    keys = KeyStore(workspace.store, "tester", cache_size=2, clock=clock)
    secrets = [keys.create(f"k{i}", ["predict"])[1] for i in range(3)]
    for secret in secrets:
        keys.authenticate(secret)

    assert keys.cached(secrets[0]) is None
    assert keys.cached(secrets[1]) is not None
    assert keys.cached(secrets[2]) is not None


# -- listing and revoking --------------------------------------------------------------------------


def test_list_shows_every_key_oldest_first_with_its_status(keys: KeyStore) -> None:
    first, _ = keys.create("a", ["predict"])
    keys.create("b", ["feedback", "predict"])
    keys.revoke(first.id, "done")

    listed = keys.list()

    assert [(r.name, r.status()) for r in listed] == [("a", "revoked"), ("b", "active")]
    assert [r.name for r in keys.list(include_revoked=False)] == ["b"]
    assert listed[1].to_dict()["scopes"] == ["feedback", "predict"]


def test_revoke_by_id_or_name_is_audited_once(workspace: Workspace, keys: KeyStore) -> None:
    record, _ = keys.create("ci", ["predict"])

    revoked = keys.revoke(record.id, "leaked in a build log", actor="key:ops/abc")
    again = keys.revoke("ci", "twice")

    assert revoked.status() == "revoked"
    assert (revoked.revoked_by, revoked.revoke_reason) == ("key:ops/abc", "leaked in a build log")
    assert again == revoked
    entries = _audit(workspace, record.id)
    assert [e.action for e in entries] == ["create", "revoke"]
    assert tuple(entries[1]) == (
        "key:ops/abc",
        "revoke",
        "active",
        "revoked",
        "leaked in a build log",
    )


def test_revoke_needs_a_known_key_and_a_reason(keys: KeyStore) -> None:
    keys.create("ci", ["predict"])
    with pytest.raises(ApiKeyNotFound, match="no API key with id or name 'nope'") as raised:
        keys.revoke("nope", "why")
    assert isinstance(raised.value, NotFoundError)
    assert isinstance(raised.value, ServingError)
    with pytest.raises(ApiKeyError, match="needs a reason"):
        keys.revoke("ci", " ")


def test_the_workspace_has_a_key_store(workspace: Workspace) -> None:
    record, secret = workspace.keys.create("ci", ["predict"])
    assert workspace.keys.authenticate(secret).id == record.id
    assert workspace.keys.get("ci") == record
