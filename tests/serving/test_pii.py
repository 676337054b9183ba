"""Sensitive fields before the prediction log: keyed tokens or nothing, never the value.

The redactor is tested alone (tokens, modes, refusals, properties), the flag through the
registry on both metadata backends, and the whole path end to end: a served model whose
signature marks fields sensitive, real requests, and every byte under the log directory read
back (segments, then Parquet, raw and decoded) without finding one sensitive value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from keel import Settings, Workspace
from keel.data import Field, Schema
from keel.errors import ConfigError
from keel.registry import ModelVersion
from keel.serving._pii import TOKEN_PREFIX, InputRedactor, canonical_text
from keel.serving._predlog import Compactor
from keel.serving._server import serving_app

from .conftest import sqlite_settings

KEY = "pii-test-key-0123456789abcdef"
TOKEN = re.compile(re.escape(TOKEN_PREFIX) + "[0-9a-f]{64}")
SCHEMA = Schema(
    (
        Field("age", "float"),
        Field("email", "string", sensitive=True),
        Field("ssn", "int", sensitive=True),
        Field("seen", "timestamp", nullable=True, sensitive=True),
        Field("plan", "category"),
    )
)
RECORD = {"age": 41.0, "email": "ann@example.com", "ssn": 123456789, "seen": None, "plan": "pro"}


def redactor(mode: Any = "tokenize", key: str | bytes | None = KEY) -> InputRedactor:
    made = InputRedactor.from_schemas([SCHEMA], mode=mode, key=key)
    assert made is not None
    return made


def hmac_hex(key: str, text: str) -> str:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


# -- tokens ----------------------------------------------------------------------------------------


def test_a_sensitive_value_becomes_the_hmac_sha256_of_its_text_under_the_key() -> None:
    redacted = redactor().redact(RECORD)
    assert redacted["email"] == TOKEN_PREFIX + hmac_hex(KEY, "ann@example.com")
    assert redacted["ssn"] == TOKEN_PREFIX + hmac_hex(KEY, "123456789")


def test_fields_not_marked_sensitive_are_logged_as_they_came() -> None:
    redacted = redactor().redact(RECORD)
    assert (redacted["age"], redacted["plan"]) == (41.0, "pro")
    assert list(redacted) == list(RECORD)


def test_redacting_leaves_the_request_record_unchanged() -> None:
    record = dict(RECORD)
    redactor().redact(record)
    assert record == RECORD


def test_two_redactors_with_one_key_give_the_same_tokens() -> None:
    # What makes tokens joinable across workers and restarts: no per-process state.
    assert redactor().redact(RECORD) == redactor(key=KEY.encode()).redact(RECORD)


def test_another_key_gives_other_tokens() -> None:
    first = redactor().redact(RECORD)
    second = redactor(key="another-key-0123456789").redact(RECORD)
    assert first["email"] != second["email"]
    assert first["ssn"] != second["ssn"]


def test_a_missing_value_stays_missing() -> None:
    redacted = redactor().redact({**RECORD, "email": None})
    assert redacted["email"] is None
    assert redacted["seen"] is None


def test_a_field_absent_from_the_record_stays_absent() -> None:
    redacted = redactor().redact({"age": 1.0, "email": "x@y.z"})
    assert set(redacted) == {"age", "email"}


@pytest.mark.parametrize("spelling", [7, 7.0, "7", np.int64(7), np.float64(7.0), np.int32(7)])
def test_the_spellings_of_one_number_give_one_token(spelling: Any) -> None:
    assert redactor().redact({"ssn": spelling})["ssn"] == redactor().redact({"ssn": 7})["ssn"]


@pytest.mark.parametrize(
    ("one", "other"), [(7, 7.5), (0, False), (1, True), ("007", 7), (0.1, np.float32(0.1))]
)
def test_different_values_give_different_tokens(one: Any, other: Any) -> None:
    r = redactor()
    assert r.redact({"ssn": one})["ssn"] != r.redact({"ssn": other})["ssn"]


def test_negative_zero_is_zero() -> None:
    assert redactor().token(-0.0) == redactor().token(0)


@pytest.mark.parametrize(
    "spelling",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T12:00:00",
        "2024-05-01 12:00:00.000+00:00",
        pd.Timestamp("2024-05-01T12:00:00", tz="UTC"),
    ],
)
def test_the_spellings_of_one_instant_give_one_token_in_a_timestamp_field(spelling: Any) -> None:
    r = redactor()
    assert r.redact({"seen": spelling})["seen"] == r.token("2024-05-01T12:00Z", timestamp=True)


def test_a_timestamp_field_keeps_text_that_is_no_instant_distinct() -> None:
    r = redactor()
    assert r.redact({"seen": "not a date"})["seen"] == r.token("not a date")


def test_a_token_can_be_computed_for_a_known_value() -> None:
    r = redactor()
    assert r.token("ann@example.com") == r.redact(RECORD)["email"]
    assert r.token(None) is None


def test_containers_are_tokenized_by_their_sorted_json() -> None:
    r = redactor()
    assert r.token({"b": 1, "a": [1, 2]}) == r.token({"a": [1, 2], "b": 1})
    assert canonical_text({"b": 1, "a": 2}) == '{"a":2,"b":1}'


def test_an_integer_too_long_for_text_is_tokenized_not_an_error() -> None:
    assert redactor().token(10**5000) != redactor().token(10**5000 + 1)


def test_a_lone_surrogate_is_tokenized_not_an_error() -> None:
    assert TOKEN.fullmatch(redactor().redact({"email": "\ud800"})["email"])


def test_redact_many_redacts_each_record() -> None:
    r = redactor()
    assert r.redact_many([RECORD, {"email": "b@c.d"}]) == [
        r.redact(RECORD),
        r.redact({"email": "b@c.d"}),
    ]


def test_the_repr_never_shows_the_key() -> None:
    assert KEY not in repr(redactor())
    assert "email" in repr(redactor())


# -- modes and refusals ----------------------------------------------------------------------------


def test_no_sensitive_field_gives_no_redactor() -> None:
    plain = Schema((Field("age", "float"), Field("plan", "category")))
    assert InputRedactor.from_schema(plain, "tokenize", None) is None
    assert InputRedactor.from_schemas([], mode="drop", key=None) is None


def test_drop_mode_removes_the_sensitive_fields_and_needs_no_key() -> None:
    assert redactor("drop", key=None).redact(RECORD) == {"age": 41.0, "plan": "pro"}


def test_drop_mode_computes_no_tokens() -> None:
    with pytest.raises(ConfigError, match="drop"):
        redactor("drop", key=None).token("ann@example.com")


def test_a_field_sensitive_in_any_schema_is_protected() -> None:
    primary = Schema((Field("email", "string", sensitive=True), Field("phone", "string")))
    shadow = Schema((Field("email", "string"), Field("phone", "string", sensitive=True)))
    r = InputRedactor.from_schemas([primary, shadow], mode="drop", key=None)
    assert r is not None
    assert r.names == ("email", "phone")


def test_a_field_that_is_a_timestamp_in_one_schema_is_read_as_an_instant() -> None:
    text = Schema((Field("seen", "string", sensitive=True),))
    stamp = Schema((Field("seen", "timestamp", sensitive=True),))
    for order in ([text, stamp], [stamp, text]):
        r = InputRedactor.from_schemas(order, mode="tokenize", key=KEY)
        assert r is not None
        assert r.redact({"seen": "2024-05-01T14:00:00+02:00"}) == r.redact(
            {"seen": "2024-05-01T12:00:00Z"}
        )


def test_tokenize_mode_without_a_key_is_refused_saying_how_to_set_one() -> None:
    with pytest.raises(ConfigError) as error:
        InputRedactor.from_schemas([SCHEMA], mode="tokenize", key=None, what="endpoint 'churn'")
    message = str(error.value)
    assert "serving.pii_key" in message
    assert "endpoint 'churn'" in message
    assert "email, ssn, seen" in message
    assert "KEEL_SERVING__PII_KEY" in message
    assert '"drop"' in message


@pytest.mark.parametrize("key", ["", "short", b"0123456789abcde"])
def test_a_key_shorter_than_16_characters_is_refused(key: str | bytes) -> None:
    with pytest.raises(ConfigError, match="serving.pii_key"):
        redactor(key=key)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="serving.pii_mode"):
        redactor("mask")


def test_the_key_is_read_from_the_environment_and_hidden_from_the_settings_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_SERVING__PII_KEY", KEY)
    settings = Settings.load(tmp_path)
    assert settings.serving.pii_key == KEY
    assert settings.serving.pii_mode == "tokenize"
    assert KEY not in repr(settings)
    # Workers get their settings as JSON: the key must survive it, or tokens would differ.
    assert Settings.model_validate(settings.model_dump(mode="json")).serving.pii_key == KEY


def test_a_short_key_in_the_settings_is_refused_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_SERVING__PII_KEY", "tooshort-secret")
    with pytest.raises(ConfigError, match="KEEL_SERVING__PII_KEY") as error:
        Settings.load(tmp_path)
    assert "tooshort-secret" not in str(error.value)


# -- properties ------------------------------------------------------------------------------------

values = st.one_of(
    st.text(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
)
HEX = set("0123456789abcdef")


@given(value=values, other=st.text(max_size=5))
def test_a_sensitive_value_never_appears_in_the_logged_json(value: Any, other: str) -> None:
    record = {"email": value, "plan": other}
    redacted = redactor().redact(record)
    assert TOKEN.fullmatch(redacted["email"])
    assert {k: v for k, v in redacted.items() if k != "email"} == {"plan": other}
    logged = orjson.dumps(redacted).decode()
    skeleton = orjson.dumps({"email": TOKEN_PREFIX, "plan": other}).decode()
    text = canonical_text(value)
    # Hex digits, and text the record holds anyway, appear whatever the value: not a leak.
    assume(len(text) >= 3 and not set(text) <= HEX and text not in skeleton)
    assert text not in logged


@given(value=values)
def test_no_sensitive_value_survives_drop_mode(value: Any) -> None:
    assert redactor("drop", None).redact({"email": value, "ssn": value, "age": 1.0}) == {"age": 1.0}


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_an_integer_and_its_float_and_text_spellings_share_a_token(number: int) -> None:
    r = redactor()
    assert r.token(number) == r.token(float(number)) == r.token(str(number))


@given(values, values)
def test_values_of_different_text_get_different_tokens(one: Any, other: Any) -> None:
    assume(canonical_text(one) != canonical_text(other))
    assert redactor().token(one) != redactor().token(other)


# -- through the registry --------------------------------------------------------------------------

TRAIN = pd.DataFrame(
    {
        "age": [0.1, -1.2, 0.7, 1.5, -0.3, -0.8],
        "income": [1, 0, 2, 1, 0, 3.0],
        "email": [f"train{i}@example.com" for i in range(6)],
        "ssn": [100_000_000 + i for i in range(6)],
    }
)
LABELS = [1, 0, 1, 1, 0, 0]


def numeric_model() -> Any:
    """Scores age and income only; email and ssn are in the signature, as a join key would be."""
    columns = ColumnTransformer([("numbers", "passthrough", ["age", "income"])])
    return make_pipeline(columns, LogisticRegression()).fit(TRAIN, LABELS)


def register_sensitive(
    workspace: Workspace, name: str, sensitive: Sequence[str] = ("email", "ssn")
) -> ModelVersion:
    """Register ``numeric_model`` with ``sensitive`` marked in its inferred signature.

    The registry infers signatures from an input example and takes no schema of its own yet,
    so the flag is added to the logged model's signature before it is registered.
    """
    with workspace.start_run(experiment="pii") as run:
        logged = run.log_model(numeric_model(), input_example=TRAIN)
    inputs = logged.signature.inputs.mark_sensitive(*sensitive)
    signature = dataclasses.replace(logged.signature, inputs=inputs)
    return workspace.registry.register(name, dataclasses.replace(logged, signature=signature))


def test_the_sensitive_flag_survives_registration_and_loading(
    workspace: Workspace, tmp_path: Path
) -> None:
    registered = register_sensitive(workspace, "scored")
    assert registered.signature.inputs.sensitive_names == ["email", "ssn"]
    again = workspace.registry.resolve("models:/scored/1")
    assert again.signature.inputs.sensitive_names == ["email", "ssn"]
    assert again.signature.inputs.field("email") == Field("email", "string", sensitive=True)
    exported = workspace.registry.export("models:/scored/1", tmp_path / "export")
    signature = json.loads((exported / "signature.json").read_text())
    assert [f["name"] for f in signature["inputs"]["fields"] if f.get("sensitive")] == [
        "email",
        "ssn",
    ]


def test_a_version_that_only_marks_a_field_sensitive_is_a_compatible_one(
    workspace: Workspace,
) -> None:
    workspace.registry.register("scored", numeric_model(), input_example=TRAIN)
    marked = register_sensitive(workspace, "scored")
    assert marked.semver.startswith("1.")


# -- end to end: nothing sensitive under the log directory -----------------------------------------

EMAILS = ["alice.secret@example.com", "bob.hidden+x@example.org", "carol.q@example.net"]
SSNS = [918_273_645_546_372_819, 918_273_645_546_370_001, 918_273_645_546_379_999]
SECRETS: list[str | int] = [*EMAILS, *SSNS]


@pytest.fixture(params=["tokenize", "drop"])
def pii_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    with Workspace(sqlite_settings(tmp_path, pii_mode=request.param, pii_key=KEY)) as workspace:
        yield workspace


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def log_directory(workspace: Workspace) -> Path:
    return workspace.settings.project_path(workspace.settings.serving.prediction_log_dir)


def leaks(directory: Path, secrets: Sequence[str | int]) -> tuple[list[str], list[Path]]:
    """Where any of ``secrets`` appears under ``directory``: in the raw bytes of every file
    (text, and int64 in either byte order), and in every decoded row of every Parquet file
    (compressed pages hide raw text). Also the files read, so a test knows it read some."""
    found: list[str] = []
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    for path in files:
        texts = [path.read_bytes()]
        if path.suffix == ".parquet":
            rows = pq.read_table(path).to_pylist()
            texts.append(json.dumps(rows, default=str, ensure_ascii=False).encode())
        for text in texts:
            found += [f"{path}: {secret!r}" for secret in secrets if holds(text, secret)]
    return found, files


def holds(data: bytes, secret: str | int) -> bool:
    if isinstance(secret, str):
        return secret.encode() in data
    # Digits are hex digits too: a number counts where no hex digit touches it (never in a token).
    digits = re.compile(rb"(?<![0-9a-fA-F])" + str(secret).encode() + rb"(?![0-9a-fA-F])")
    packed = [secret.to_bytes(8, order, signed=True) for order in ("little", "big")]
    return bool(digits.search(data)) or any(p in data for p in packed)


def test_the_leak_scanner_finds_values_in_clear(tmp_path: Path) -> None:
    (tmp_path / "segment").write_text(json.dumps({"email": EMAILS[0], "ssn": SSNS[0]}))
    pq.write_table(pa.table({"ssn": [SSNS[1]]}), tmp_path / "p.parquet", compression="zstd")
    found, files = leaks(tmp_path, SECRETS)
    assert len(files) == 2
    assert any(repr(EMAILS[0]) in f for f in found)
    assert any(repr(SSNS[0]) in f for f in found)
    assert any("p.parquet" in f and repr(SSNS[1]) in f for f in found)
    assert not holds(b'"hmac-sha256:' + str(SSNS[2]).encode() + b'ab"', SSNS[2])


async def send_sensitive_requests(app: Any) -> list[str]:
    """Native records, native columns and a V2 infer request, all carrying EMAILS and SSNS;
    the ids of the predictions made."""
    records = [
        {"age": 0.3 * i, "income": 1.0 + i, "email": email, "ssn": ssn}
        for i, (email, ssn) in enumerate(zip(EMAILS, SSNS, strict=True))
    ]
    columns = {name: [r[name] for r in records] for name in records[0]}
    v2 = {
        "inputs": [
            {"name": "age", "shape": [3], "datatype": "FP64", "data": columns["age"]},
            {"name": "income", "shape": [3], "datatype": "FP64", "data": columns["income"]},
            {"name": "email", "shape": [3], "datatype": "BYTES", "data": EMAILS},
            {"name": "ssn", "shape": [3], "datatype": "INT64", "data": SSNS},
        ]
    }
    ids: list[str] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
        for body in ({"inputs": records}, {"inputs": columns}):
            response = await client.post("/v1/endpoints/scored/predict", json=body)
            assert response.status_code == 200, response.text
            ids += [p["prediction_id"] for p in response.json()["predictions"]]
        response = await client.post("/v2/models/scored/infer", json=v2)
        assert response.status_code == 200, response.text
        [prediction_ids] = [o for o in response.json()["outputs"] if o["name"] == "prediction_id"]
        ids += prediction_ids["data"]
    return ids


def assert_nothing_sensitive_is_logged(
    workspace: Workspace, ids: list[str]
) -> list[dict[str, Any]]:
    """Read every file under the log directory for SECRETS, before and after compaction; the
    logged rows."""
    directory = log_directory(workspace)
    found, files = leaks(directory, SECRETS)
    assert files, "the closed log left no segment to read"
    assert found == []
    Compactor(directory).run_once()
    found, files = leaks(directory, SECRETS)
    parquet = [path for path in files if path.suffix == ".parquet"]
    assert parquet, "compaction wrote no Parquet file"
    assert found == []
    rows = [row for path in parquet for row in pq.read_table(path).to_pylist()]
    logged = {row["prediction_id"]: json.loads(row["inputs"]) for row in rows if not row["shadow"]}
    assert set(ids) <= set(logged)
    redactor = InputRedactor.from_schemas(
        [SCHEMA], mode=workspace.settings.serving.pii_mode, key=KEY
    )
    assert redactor is not None
    for row in rows:
        inputs = json.loads(row["inputs"])
        if redactor.mode == "drop":
            assert "email" not in inputs, row
            assert "ssn" not in inputs, row
        else:
            # Joinable: the token anyone with the key computes for a known customer.
            assert inputs["email"] in {redactor.token(e) for e in EMAILS}, row
            assert inputs["ssn"] in {redactor.token(s) for s in SSNS}, row
    return rows


@pytest.mark.anyio
async def test_no_sensitive_value_reaches_any_file_of_the_prediction_log(
    pii_workspace: Workspace,
) -> None:
    register_sensitive(pii_workspace, "scored")
    pii_workspace.deployments.create_endpoint("scored", "models:/scored/1")
    app = serving_app(pii_workspace)
    await app.startup()
    try:
        ids = await send_sensitive_requests(app)
    finally:
        await app.shutdown()  # the log's last group is written and its segment closed
    assert_nothing_sensitive_is_logged(pii_workspace, ids)


@pytest.mark.anyio
async def test_arms_and_shadows_that_do_not_mark_a_field_log_it_protected_too(
    pii_workspace: Workspace,
) -> None:
    # Every version of an endpoint sees the same request records: one that marks a field
    # sensitive protects it in the entries of all of them.
    register_sensitive(pii_workspace, "scored")
    plain = numeric_model()
    pii_workspace.registry.register("plain", plain, input_example=TRAIN)
    pii_workspace.registry.register("twin", plain, input_example=TRAIN)
    pii_workspace.deployments.create_endpoint(
        "scored",
        "models:/scored/1",
        arms=[("models:/scored/1", 0), ("models:/plain/1", 1)],  # plain answers every request
        shadows=["models:/twin/1"],
    )
    app = serving_app(pii_workspace)
    await app.startup()
    try:
        ids = await send_sensitive_requests(app)
    finally:
        await app.shutdown()  # shadows drain first: their entries are logged
    rows = assert_nothing_sensitive_is_logged(pii_workspace, ids)
    assert {row["model"] for row in rows if not row["shadow"]} == {"plain"}
    assert sorted(row["prediction_id"] for row in rows if row["shadow"]) == sorted(ids)


@pytest.mark.anyio
async def test_an_endpoint_with_sensitive_fields_does_not_start_without_a_key(
    tmp_path: Path,
) -> None:
    settings = sqlite_settings(tmp_path)
    assert (settings.serving.pii_mode, settings.serving.pii_key) == ("tokenize", None)
    with Workspace(settings) as workspace:
        register_sensitive(workspace, "scored")
        workspace.deployments.create_endpoint("scored", "models:/scored/1")
        app = serving_app(workspace)
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                reason = json.dumps(ready.json())
                assert "KEEL_SERVING__PII_KEY" in reason
                assert "email, ssn" in reason
                record = {"age": 0.1, "income": 1.0, "email": EMAILS[0], "ssn": SSNS[0]}
                response = await client.post(
                    "/v1/endpoints/scored/predict", json={"inputs": record}
                )
                assert response.status_code == 503
        finally:
            await app.shutdown()
        assert leaks(log_directory(workspace), SECRETS)[0] == []


def test_register_marks_the_named_input_fields_sensitive(workspace: Workspace) -> None:
    registered = workspace.registry.register(
        "marked", numeric_model(), input_example=TRAIN, sensitive=["ssn"]
    )

    assert registered.signature.inputs.sensitive_names == ["ssn"]
    assert workspace.registry.resolve("models:/marked/1").signature.inputs.sensitive_names == [
        "ssn"
    ]
