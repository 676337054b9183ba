"""Schema and Field: rules, normalization, serialization (dict, YAML, JSON) and evolution."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keel.data
from keel.data import Check, Field, Schema
from keel.errors import SchemaError


def positive(values: pd.Series[Any]) -> Any:
    return values > 0


RULED = Schema(
    (
        Field("age", "int", min=0, max=130, description="years"),
        Field("score", "float", nullable=True, min=-1.5, max=1.5, allow_nan=True),
        Field("country", "category", allowed=["FR", "DE"]),
        Field("sku", "string", pattern=r"[A-Z]{3}-\d{4}", checks=[positive]),
        Field("seen", "timestamp", min="2020-01-01", max="2030-01-01T00:00:00+02:00"),
        Field("active", "bool", nullable=True),
    )
)


# -- backward compatibility ------------------------------------------------------------------------


def test_positional_field_keeps_working() -> None:
    field = Field("age", "int", True)
    assert (field.name, field.dtype, field.nullable) == ("age", "int", True)


def test_a_field_without_rules_serializes_as_before() -> None:
    assert Field("age", "int").to_dict() == {"name": "age", "dtype": "int", "nullable": False}


def test_an_old_dict_round_trips_unchanged() -> None:
    old = {"fields": [{"name": "a", "dtype": "float", "nullable": True}]}
    assert Schema.from_dict(old).to_dict() == old


def test_a_dict_without_nullable_reads_as_not_nullable() -> None:
    assert Schema.from_dict({"fields": [{"name": "a", "dtype": "int"}]}).fields[0].nullable is False


def test_rules_round_trip_through_dicts() -> None:
    assert Schema.from_dict(RULED.to_dict(), checks={"positive": positive}) == RULED


def test_to_dict_is_json_ready() -> None:
    json.dumps(RULED.to_dict())


def test_public_names_exist_and_are_listed_once() -> None:
    assert len(set(keel.data.__all__)) == len(keel.data.__all__)
    for name in keel.data.__all__:
        assert hasattr(keel.data, name), name


# -- normalization ---------------------------------------------------------------------------------


def test_timestamp_bounds_become_utc_timestamps() -> None:
    field = RULED.field("seen")
    assert field.min == pd.Timestamp("2020-01-01", tz="UTC")
    assert field.max == pd.Timestamp("2029-12-31T22:00:00", tz="UTC")


def test_timestamp_bounds_accept_datetimes() -> None:
    paris = timezone(timedelta(hours=1))
    field = Field("t", "timestamp", min=datetime(2024, 1, 1, 1, tzinfo=paris))
    assert field.min == pd.Timestamp("2024-01-01T00:00:00", tz="UTC")


def test_allowed_becomes_a_tuple_and_sets_are_ordered() -> None:
    assert Field("c", "category", allowed=["b", "a"]).allowed == ("b", "a")
    assert Field("c", "category", allowed={"b", "a"}).allowed == ("a", "b")


def test_a_named_function_becomes_a_check() -> None:
    assert RULED.field("sku").checks == (Check("positive", positive),)


def test_fields_with_rules_are_hashable() -> None:
    assert len({RULED.field("country"), RULED.field("country")}) == 1


def test_a_list_of_fields_becomes_a_tuple() -> None:
    schema = Schema([Field("a", "int")])  # type: ignore[arg-type]
    assert isinstance(schema.fields, tuple)


# -- definitions that cannot work ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"dtype": "decimal"}, "unknown dtype 'decimal'"),
        ({"dtype": "int", "min": 5, "max": 1}, "min 5 is greater than max 1"),
        ({"dtype": "string", "pattern": "[a-"}, "not a valid regex"),
        ({"dtype": "int", "pattern": "x"}, "pattern applies to string and category"),
        ({"dtype": "string", "min": 1}, "min applies to int, float and timestamp"),
        ({"dtype": "int", "min": "zero"}, "min must be a number"),
        ({"dtype": "int", "min": True}, "min must be a number"),
        ({"dtype": "float", "max": float("nan")}, "max must be finite"),
        ({"dtype": "timestamp", "min": "not a date"}, "is not a timestamp"),
        ({"dtype": "timestamp", "min": 3}, "min must be a timestamp"),
        ({"dtype": "int", "allow_nan": True}, "allow_nan applies to float"),
        ({"dtype": "int", "allowed": [1, "2"]}, "allowed value '2' is not a int"),
        ({"dtype": "int", "allowed": [True]}, "allowed value True is not a int"),
        ({"dtype": "category", "allowed": []}, "allowed is empty"),
        ({"dtype": "category", "allowed": "FR"}, "allowed must be a list"),
        ({"dtype": "timestamp", "allowed": ["2020-01-01"]}, "allowed does not apply to timestamp"),
        ({"dtype": "int", "nullable": "yes"}, "nullable must be true or false"),
        ({"dtype": "int", "checks": [lambda s: s > 0]}, "needs a name"),
        ({"dtype": "int", "checks": ["positive"]}, "is not callable"),
        ({"dtype": "int", "checks": [positive, positive]}, "check names repeat"),
        ({"dtype": "string", "sensitive": "yes"}, "sensitive must be true or false"),
    ],
)
def test_a_field_that_cannot_work_is_refused_with_its_name(
    kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(SchemaError, match="field 'x'") as error:
        Field("x", **kwargs)
    assert problem in str(error.value)


def test_a_field_needs_a_name() -> None:
    with pytest.raises(SchemaError, match="non-empty string name"):
        Field("", "int")


def test_a_schema_refuses_repeated_names() -> None:
    with pytest.raises(SchemaError, match="declared twice: a"):
        Schema((Field("a", "int"), Field("a", "float")))


def test_a_lambda_can_be_named_with_check() -> None:
    field = Field("x", "int", checks=[Check("even", lambda s: s % 2 == 0)])
    assert field.custom_checks[0].name == "even"


# -- YAML and JSON ---------------------------------------------------------------------------------

YAML = """
fields:
  - name: age
    dtype: int
    min: 0
    max: 130
    description: years
  - name: country
    dtype: category
    allowed: [FR, DE]
  - name: sku
    dtype: string
    pattern: '[A-Z]{3}-\\d{4}'
    checks: [positive]
  - name: seen
    dtype: timestamp
    nullable: true
    min: 2020-01-01
"""


def test_yaml_text_is_read() -> None:
    schema = Schema.from_yaml(YAML, checks={"positive": positive})
    assert schema.field("age").max == 130
    assert schema.field("country").allowed == ("FR", "DE")
    assert schema.field("sku").pattern == r"[A-Z]{3}-\d{4}"
    assert schema.field("seen").min == pd.Timestamp("2020-01-01", tz="UTC")


def test_yaml_round_trips() -> None:
    checks = {"positive": positive}
    assert Schema.from_yaml(RULED.to_yaml(), checks=checks) == RULED


def test_json_round_trips() -> None:
    checks = {"positive": positive}
    assert Schema.from_json(RULED.to_json(), checks=checks) == RULED


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_load_picks_the_format_by_suffix(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"contract{suffix}"
    path.write_text(RULED.to_json() if suffix == ".json" else RULED.to_yaml())
    assert Schema.load(path, checks={"positive": positive}) == RULED
    assert Schema.load(str(path), checks={"positive": positive}) == RULED


def test_from_yaml_reads_a_path_given_as_a_string(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text(YAML)
    assert Schema.from_yaml(str(path), checks={"positive": positive}).names[0] == "age"


def test_load_refuses_an_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"ends in \.yaml, \.yml or \.json"):
        Schema.load(tmp_path / "contract.toml")


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot read the schema file"):
        Schema.load(tmp_path / "absent.yaml")


def test_a_check_is_resolved_by_name_from_a_full_check() -> None:
    check = Check("positive", positive, scalar=lambda v: v > 0)
    schema = Schema.from_yaml(YAML, checks={"positive": check})
    assert schema.field("sku").custom_checks == (check,)


def test_an_unknown_check_name_is_refused() -> None:
    with pytest.raises(SchemaError, match="field 'sku': unknown custom check 'positive'"):
        Schema.from_yaml(YAML)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{name: a, dtype: decimal}", "field 'a': unknown dtype 'decimal'"),
        ("{name: a, dtype: int, min: 3, max: 1}", "field 'a': min 3 is greater than max 1"),
        ("{name: a, dtype: string, pattern: '(unclosed'}", "field 'a': pattern"),
        ("{name: a, dtype: int, maximum: 3}", "field 'a': unknown key(s) 'maximum'"),
        ("{name: a}", "field 'a': has no 'dtype'"),
        ("{dtype: int}", "needs a non-empty string 'name'"),
        ("{name: a, dtype: int, checks: positive}", "field 'a': checks must be a list"),
        ("{name: a, dtype: int, allowed: 3}", "field 'a': allowed must be a list"),
        ("[a, int]", "a field must be a mapping"),
    ],
)
def test_a_bad_yaml_field_is_refused_with_the_field_and_the_problem(
    entry: str, problem: str
) -> None:
    with pytest.raises(SchemaError) as error:
        Schema.from_yaml(f"fields:\n  - {entry}\n")
    assert problem in str(error.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("fields: [", "not valid YAML"),
        ("- a\n- b\n", "a mapping with a 'fields' list"),
        ("fields: []\nversion: 2\n", "unknown schema key(s): 'version'"),
    ],
)
def test_a_bad_yaml_document_is_refused(text: str, problem: str) -> None:
    with pytest.raises(SchemaError) as error:
        Schema.from_yaml(text)
    assert problem in str(error.value)


def test_bad_json_is_refused() -> None:
    with pytest.raises(SchemaError, match="not valid JSON"):
        Schema.from_json('{"fields": [')


# -- sensitive fields ------------------------------------------------------------------------------


def test_a_field_is_not_sensitive_unless_marked() -> None:
    assert Field("email", "string").sensitive is False
    assert Field("email", "string", sensitive=True).sensitive is True


def test_sensitive_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Field("email", "string", False, True)  # type: ignore[misc]


def test_a_sensitive_flag_round_trips_through_dict_yaml_and_json() -> None:
    schema = Schema((Field("email", "string", sensitive=True), Field("age", "int", min=0)))
    assert schema.to_dict()["fields"][0] == {
        "name": "email",
        "dtype": "string",
        "nullable": False,
        "sensitive": True,
    }
    assert "sensitive" not in schema.to_dict()["fields"][1]
    assert Schema.from_dict(schema.to_dict()) == schema
    assert Schema.from_yaml(schema.to_yaml()).sensitive_names == ["email"]
    assert Schema.from_json(schema.to_json()).sensitive_names == ["email"]


def test_a_stored_schema_from_before_the_flag_loads_with_nothing_sensitive() -> None:
    stored = {"fields": [{"name": "email", "dtype": "string", "nullable": False}]}
    schema = Schema.from_dict(stored)
    assert schema.sensitive_names == []
    assert schema.to_dict() == stored


def test_yaml_marks_a_field_sensitive() -> None:
    schema = Schema.from_yaml("fields:\n  - {name: email, dtype: string, sensitive: true}\n")
    assert schema.field("email").sensitive is True


def test_a_schema_inferred_from_a_frame_has_no_sensitive_field() -> None:
    frame = pd.DataFrame({"email": ["a@b.c"], "age": [3]})
    assert Schema.from_frame(frame).sensitive_names == []


def test_mark_sensitive_marks_the_named_fields_and_keeps_their_rules() -> None:
    marked = RULED.mark_sensitive("sku", "age")
    assert marked.sensitive_names == ["age", "sku"]
    assert marked.field("sku").custom_checks == RULED.field("sku").custom_checks
    assert marked.field("age").max == 130
    assert RULED.sensitive_names == []  # a new schema: the old one is unchanged


def test_mark_sensitive_refuses_an_unknown_field() -> None:
    with pytest.raises(SchemaError, match="'mail'"):
        RULED.mark_sensitive("mail")


def test_marking_a_field_sensitive_is_not_a_change_of_shape() -> None:
    assert RULED.diff(RULED.mark_sensitive("age")).is_empty


# -- evolution -------------------------------------------------------------------------------------


def test_changed_rules_are_not_a_retyping() -> None:
    old = Schema((Field("a", "int", min=0),))
    new = Schema((Field("a", "int", min=5, description="now stricter"),))
    assert old.diff(new).is_empty


def test_a_changed_dtype_is_a_retyping_and_breaks() -> None:
    diff = Schema((Field("a", "float"),)).diff(Schema((Field("a", "int", max=3),)))
    assert [(o.dtype, n.dtype) for o, n in diff.retyped] == [("float", "int")]
    assert diff.breaking == ["column 'a' changed type float -> int"]


def test_widening_and_new_nullable_columns_do_not_break() -> None:
    old = Schema((Field("a", "int"), Field("b", "category")))
    new = Schema((Field("a", "float"), Field("b", "string"), Field("c", "int", True)))
    assert old.diff(new).breaking == []


# -- property --------------------------------------------------------------------------------------

numbers = st.integers(-1000, 1000)


@st.composite
def ruled_fields(draw: st.DrawFn) -> Field:
    dtype = draw(st.sampled_from(["int", "float", "bool", "string", "category", "timestamp"]))
    kwargs: dict[str, Any] = {
        "description": draw(st.none() | st.text(max_size=10)),
        "sensitive": draw(st.booleans()),
    }
    if dtype in ("int", "float"):
        low, high = sorted(draw(st.lists(numbers, min_size=2, max_size=2)))
        kwargs |= {"min": draw(st.none() | st.just(low)), "max": draw(st.none() | st.just(high))}
        if draw(st.booleans()):
            kwargs["allowed"] = draw(st.lists(numbers, min_size=1, max_size=4))
    if dtype == "float":
        kwargs["allow_nan"] = draw(st.booleans())
    if dtype in ("string", "category"):
        kwargs["allowed"] = draw(st.none() | st.lists(st.text(max_size=5), min_size=1, max_size=4))
        kwargs["pattern"] = draw(st.none() | st.sampled_from([r"\w+", "[a-c]*", "x|y"]))
    if dtype == "timestamp":
        stamp = draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)))
        kwargs["min"] = draw(st.none() | st.just(stamp))
    return Field(
        draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True)), dtype, draw(st.booleans()), **kwargs
    )


@given(st.lists(ruled_fields(), max_size=6, unique_by=lambda f: f.name))
def test_any_schema_round_trips_through_yaml_and_json(fields: list[Field]) -> None:
    schema = Schema(tuple(fields))
    assert Schema.from_yaml(schema.to_yaml()) == schema
    assert Schema.from_json(schema.to_json()) == schema
