"""``keel keys``: API keys through the command line."""

from __future__ import annotations

import sqlalchemy as sa

from keel import Workspace
from keel.store import _tables as t

from .conftest import Keel, assert_one_line_error, sqlite_only


def test_create_json_carries_the_secret_once(keel: Keel, workspace: Workspace) -> None:
    created = keel.json(
        "keys", "create", "ci", "--scope", "predict", "--scope", "feedback", "--rate", "100",
        "--burst", "200",
    )  # fmt: skip

    assert created["name"] == "ci"
    assert created["scopes"] == ["feedback", "predict"]
    assert (created["rate_per_second"], created["burst"]) == (100.0, 200)
    assert created["secret"].startswith(f"keel_{created['id']}_")
    assert workspace.keys.authenticate(created["secret"]).id == created["id"]


@sqlite_only
def test_create_prints_the_secret_and_says_it_will_not_be_shown_again(keel: Keel) -> None:
    output = keel.ok("keys", "create", "ci", "--scope", "predict").stdout

    lines = output.splitlines()
    assert lines[0].startswith("API key ci created (id ")
    assert "no rate limit" in lines[0]
    assert lines[1].startswith("keel_")
    assert "will not be shown again" in lines[2]


def test_list_never_shows_secrets_or_hashes(keel: Keel, workspace: Workspace) -> None:
    created = keel.json("keys", "create", "ci", "--scope", "predict", "--rate", "5")
    secret = created["secret"]
    with workspace.store.read() as connection:
        digest = connection.execute(sa.select(t.api_keys.c.secret_hash)).scalar_one()

    text = keel.ok("keys", "list").stdout
    listed = keel.json("keys", "list")

    for shown in (text, str(listed)):
        assert secret not in shown
        assert secret.split("_", 2)[2] not in shown
        assert digest not in shown
    assert [(k["name"], k["status"], k["burst"]) for k in listed] == [("ci", "active", 5)]
    assert "secret" not in listed[0]
    assert "5/s, burst 5" in text


def test_revoke_by_name_then_list_shows_it_revoked(keel: Keel, workspace: Workspace) -> None:
    created = keel.json("keys", "create", "ci", "--scope", "predict")

    revoked = keel.json("keys", "revoke", "ci", "--reason", "leaked")

    assert (revoked["id"], revoked["status"]) == (created["id"], "revoked")
    assert (revoked["revoked_by"], revoked["revoke_reason"]) == ("tester", "leaked")
    assert keel.json("keys", "list", "--active") == []
    assert [k["status"] for k in keel.json("keys", "list")] == ["revoked"]


@sqlite_only
def test_revoke_by_id_prints_one_line(keel: Keel) -> None:
    created = keel.json("keys", "create", "ci", "--scope", "admin")

    output = keel.ok("--actor", "jane", "keys", "revoke", created["id"], "--reason", "x").stdout

    assert output.startswith(f"API key ci (id {created['id']}) revoked ")
    assert output.rstrip().endswith("by jane")


@sqlite_only
def test_list_without_keys_says_how_to_make_one(keel: Keel) -> None:
    assert "keel keys create NAME --scope predict" in keel.ok("keys", "list").stdout


@sqlite_only
def test_bad_input_is_one_line(keel: Keel) -> None:
    assert_one_line_error(keel("keys", "create", "ci", "--scope", "delete"), "unknown scope")
    assert_one_line_error(
        keel("keys", "create", "ci", "--scope", "predict", "--burst", "3"), "a burst needs a rate"
    )
    keel.ok("keys", "create", "ci", "--scope", "predict")
    assert_one_line_error(keel("keys", "create", "ci", "--scope", "predict"), "already exists")
    assert_one_line_error(keel("keys", "revoke", "nope", "--reason", "x"), "no API key")


@sqlite_only
def test_revoke_needs_a_reason(keel: Keel) -> None:
    keel.ok("keys", "create", "ci", "--scope", "predict")
    result = keel("keys", "revoke", "ci")
    assert result.exit_code == 2
    assert "--reason" in result.stderr
