"""Single-record validation: JSON-ish input, every rule, problems that name the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.data import Check, Field, RecordProblem, RecordValidator, Schema
from keel.errors import DataValidationError, SchemaError


def problems(field: Field, record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p.field, p.rule) for p in RecordValidator(Schema((field,))).validate(record)]


def accepts(field: Field, value: Any) -> bool:
    return problems(field, {field.name: value}) == []


SCHEMA = Schema(
    (
        Field("age", "int", min=0, max=130),
        Field("income", "float", nullable=True, min=0),
        Field("country", "category", allowed=["FR", "DE"]),
        Field("sku", "string", pattern=r"[A-Z]{3}-\d{4}"),
        Field("seen", "timestamp", min="2020-01-01", max="2030-01-01"),
        Field("active", "bool"),
    )
)
GOOD = {
    "age": 31,
    "income": 1200.5,
    "country": "FR",
    "sku": "ABC-1234",
    "seen": "2024-05-01T12:00:00Z",
    "active": True,
}


def test_a_valid_record_has_no_problems() -> None:
    assert RecordValidator(SCHEMA).validate(GOOD) == []


def test_check_passes_a_valid_record() -> None:
    RecordValidator(SCHEMA).check(GOOD)


def test_check_raises_naming_each_bad_field() -> None:
    bad = {**GOOD, "age": -1, "sku": "nope"}
    with pytest.raises(DataValidationError) as error:
        RecordValidator(SCHEMA).check(bad)
    message = str(error.value)
    assert "age: -1 is below min 0" in message
    assert "sku: 'nope' does not match" in message
    assert [p.field for p in error.value.report] == ["age", "sku"]  # type: ignore[attr-defined]


def test_problems_come_in_schema_order_with_messages() -> None:
    bad = {**GOOD, "active": "yes", "age": 200}
    assert RecordValidator(SCHEMA).validate(bad) == [
        RecordProblem("age", "max", "200 is above max 130"),
        RecordProblem("active", "dtype", "'yes' is not a valid bool"),
    ]


# -- nulls -----------------------------------------------------------------------------------------


def test_a_missing_required_field_is_a_null_problem() -> None:
    record = {k: v for k, v in GOOD.items() if k != "age"}
    [problem] = RecordValidator(SCHEMA).validate(record)
    assert (problem.field, problem.rule) == ("age", "null")
    assert "missing" in problem.message


def test_none_in_a_required_field_is_a_null_problem() -> None:
    assert problems(Field("x", "int"), {"x": None}) == [("x", "null")]


def test_a_missing_optional_field_is_fine() -> None:
    assert problems(Field("x", "int", nullable=True), {}) == []


@pytest.mark.parametrize("missing", [math.nan, pd.NA, pd.NaT, np.float64("nan")])
def test_nan_and_pandas_missing_values_are_null(missing: Any) -> None:
    assert problems(Field("x", "string"), {"x": missing}) == [("x", "null")]
    assert problems(Field("x", "string", nullable=True), {"x": missing}) == []


def test_allow_nan_makes_nan_a_value() -> None:
    assert accepts(Field("x", "float", allow_nan=True), math.nan)
    assert accepts(Field("x", "float", allow_nan=True, max=1), math.nan)


@pytest.mark.parametrize("value", [math.inf, -math.inf, np.float64("inf")])
def test_inf_fails_the_finite_rule(value: float) -> None:
    assert problems(Field("x", "float", max=10), {"x": value}) == [("x", "finite")]


# -- types -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "value", "ok"),
    [
        ("int", 3, True),
        ("int", 3.0, True),
        ("int", 3.5, False),
        ("int", math.inf, False),
        ("int", True, False),
        ("int", "3", False),
        ("int", np.int32(3), True),
        ("int", np.float32(2.0), True),
        ("float", 3, True),
        ("float", 2.5, True),
        ("float", np.float32(2.5), True),
        ("float", np.int64(2), True),
        ("float", False, False),
        ("float", "2.5", False),
        ("bool", True, True),
        ("bool", np.True_, True),
        ("bool", 1, False),
        ("bool", "true", False),
        ("string", "a", True),
        ("string", np.str_("a"), True),
        ("string", 1, False),
        ("category", "a", True),
        ("category", b"a", False),
        ("timestamp", "2024-01-01", True),
        ("timestamp", "2024-01-01T10:00:00+02:00", True),
        ("timestamp", "2024-01-01T10:00:00Z", True),
        ("timestamp", datetime(2024, 1, 1), True),
        ("timestamp", pd.Timestamp("2024-01-01", tz="Europe/Paris"), True),
        ("timestamp", np.datetime64("2024-01-01"), True),
        ("timestamp", "yesterday", False),
        ("timestamp", 1704067200, False),
    ],
)
def test_json_ish_values_are_accepted_or_refused_by_type(dtype: Any, value: Any, ok: bool) -> None:
    expected = [] if ok else [("x", "dtype")]
    assert problems(Field("x", dtype), {"x": value}) == expected


def test_a_non_mapping_record_is_a_problem() -> None:
    [problem] = RecordValidator(SCHEMA).validate([1, 2])  # type: ignore[arg-type]
    assert problem.rule == "dtype"


# -- value rules -----------------------------------------------------------------------------------


def test_min_and_max_are_inclusive() -> None:
    field = Field("x", "int", min=0, max=10)
    assert [accepts(field, v) for v in (-1, 0, 10, 11)] == [False, True, True, False]


def test_timestamp_bounds_read_naive_values_as_utc() -> None:
    field = Field("t", "timestamp", min="2024-01-01T00:00:00Z")
    assert accepts(field, "2024-01-01T00:00:00")
    assert not accepts(field, "2023-12-31T23:59:59")
    assert not accepts(field, "2024-01-01T00:30:00+01:00")
    assert accepts(field, datetime(2024, 1, 1, tzinfo=UTC))


def test_a_value_not_allowed_fails() -> None:
    field = Field("c", "category", allowed=["FR", "DE"])
    assert problems(field, {"c": "XX"}) == [("c", "allowed")]


def test_numbers_are_compared_by_value_in_allowed() -> None:
    assert accepts(Field("x", "int", allowed=[1, 2]), 2.0)


def test_a_pattern_must_match_the_whole_string() -> None:
    field = Field("s", "string", pattern=r"[A-Z]{3}")
    assert [accepts(field, v) for v in ("ABC", "ABCD", "xABC", "ABC\n")] == [
        True,
        False,
        False,
        False,
    ]


def test_pattern_classes_are_ascii_only() -> None:
    assert not accepts(Field("s", "string", pattern=r"\d+"), "٣")


def test_a_custom_check_runs_on_a_one_element_series() -> None:
    seen: list[pd.Series[Any]] = []

    def even(values: pd.Series[Any]) -> Any:
        seen.append(values)
        return values % 2 == 0

    field = Field("x", "int", checks=[even])
    assert accepts(field, 4)
    assert problems(field, {"x": 3}) == [("x", "check:even")]
    assert [len(s) for s in seen] == [1, 1]


def test_a_custom_check_with_a_scalar_form_uses_it() -> None:
    check = Check("even", lambda s: pd.Series([False] * len(s)), scalar=lambda v: v % 2 == 0)
    assert accepts(Field("x", "int", checks=[check]), 4)


def test_a_custom_check_that_raises_is_a_schema_error() -> None:
    def broken(values: pd.Series[Any]) -> Any:
        raise ValueError("nope")

    with pytest.raises(SchemaError, match="custom check 'broken' raised ValueError: nope"):
        problems(Field("x", "int", checks=[broken]), {"x": 1})


def test_a_value_breaking_several_rules_reports_each() -> None:
    field = Field("s", "string", allowed=["ab"], pattern="[0-9]+")
    assert problems(field, {"s": "zz"}) == [("s", "allowed"), ("s", "pattern")]


def test_a_wrong_type_stops_the_other_rules() -> None:
    assert problems(Field("x", "int", min=5), {"x": "1"}) == [("x", "dtype")]


# -- extra keys ------------------------------------------------------------------------------------


def test_extra_keys_are_problems_by_default() -> None:
    assert problems(Field("x", "int"), {"x": 1, "y": 2}) == [("y", "extra")]


def test_extra_keys_can_be_ignored() -> None:
    validator = RecordValidator(Schema((Field("x", "int"),)), extra="ignore")
    assert validator.validate({"x": 1, "y": 2}) == []


def test_an_unknown_extra_option_is_refused() -> None:
    with pytest.raises(ValueError, match="extra must be"):
        RecordValidator(SCHEMA, extra="allow")  # type: ignore[arg-type]
