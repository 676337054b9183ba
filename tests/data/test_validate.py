"""Batch validation of pandas and Arrow data: every rule, the report, the three modes."""

from __future__ import annotations

import json
import math
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.data import (
    Check,
    DataValidationWarning,
    Field,
    RecordValidator,
    Schema,
    ValidationReport,
    check_matches,
    validate,
)
from keel.errors import DataValidationError, SchemaError, SchemaMismatch


def report_of(data: Any, *fields: Field, extra: Any = "forbid") -> ValidationReport:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataValidationWarning)
        return validate(data, Schema(fields), mode="warn", extra=extra).report


def failing(report: ValidationReport) -> dict[tuple[str, str], list[Any]]:
    """(column, rule) -> example row labels, for every failure."""
    return {(f.column, f.rule): list(f.rows) for f in report.failures}


# -- a clean batch ---------------------------------------------------------------------------------


def clean_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20, 35, 50],
            "score": [0.5, np.nan, 1.0],
            "country": pd.Categorical(["FR", "DE", "FR"]),
            "sku": ["ABC-1234", "XYZ-0000", "QQQ-9999"],
            "seen": pd.to_datetime(["2021-01-01", "2022-06-01", "2023-01-01"], utc=True),
            "active": [True, False, True],
        }
    )


SCHEMA = Schema(
    (
        Field("age", "int", min=0, max=130),
        Field("score", "float", nullable=True, min=0, max=1),
        Field("country", "category", allowed=["FR", "DE"]),
        Field("sku", "string", pattern=r"[A-Z]{3}-\d{4}"),
        Field("seen", "timestamp", min="2020-01-01"),
        Field("active", "bool"),
    )
)


def test_a_clean_frame_passes_unchanged() -> None:
    frame = clean_frame()
    result = validate(frame, SCHEMA)
    assert result.report.ok
    assert result.valid is frame
    assert result.report.invalid_count == 0


def test_a_clean_arrow_table_passes() -> None:
    assert validate(pa.Table.from_pandas(clean_frame()), SCHEMA).report.ok


# -- column problems -------------------------------------------------------------------------------


def test_a_missing_required_column_is_a_column_problem() -> None:
    report = report_of(pd.DataFrame({"a": [1]}), Field("a", "int"), Field("b", "float"))
    assert [(p.column, p.rule) for p in report.problems] == [("b", "missing_column")]
    assert "column 'b' (float, required) is missing" in report.summary()


def test_a_missing_nullable_column_is_accepted_and_listed() -> None:
    report = report_of(pd.DataFrame({"a": [1]}), Field("a", "int"), Field("b", "float", True))
    assert report.ok
    assert report.missing_optional == ("b",)


def test_an_extra_column_is_a_problem_by_default() -> None:
    report = report_of(pd.DataFrame({"a": [1], "z": [2]}), Field("a", "int"))
    assert [(p.column, p.rule) for p in report.problems] == [("z", "extra_column")]


def test_an_extra_column_is_only_listed_when_ignored() -> None:
    report = report_of(pd.DataFrame({"a": [1], "z": [2]}), Field("a", "int"), extra="ignore")
    assert report.ok
    assert report.extra_columns == ("z",)


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (pd.Series(["1", "2"], dtype="str"), "int"),
        (pd.Series([1.5, 2.5]), "bool"),
        (pd.Series([True, False]), "float"),
        (pd.Series([1, 2]), "timestamp"),
        (pd.Series(["2024-01-01"], dtype="str"), "timestamp"),
        (pd.Series(pd.to_datetime(["2024-01-01"])), "string"),
        (pd.Series(pd.Categorical([1, 2])), "category"),
        (pd.Series([pd.Timedelta(1)]), "float"),
    ],
)
def test_a_column_whose_storage_cannot_hold_the_type_is_a_column_problem(
    values: pd.Series[Any], dtype: Any
) -> None:
    report = report_of(pd.DataFrame({"x": values}), Field("x", dtype))
    assert [(p.column, p.rule) for p in report.problems] == [("x", "column_dtype")]


def test_an_all_null_column_only_breaks_the_null_rule() -> None:
    frame = pd.DataFrame({"x": [None, None]}, dtype=object)
    assert failing(report_of(frame, Field("x", "int"))) == {("x", "null"): [0, 1]}
    assert report_of(frame, Field("x", "int", True)).ok


# -- types per row ---------------------------------------------------------------------------------


def test_fractional_values_in_an_int_field_fail_the_dtype_rule() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.5, np.inf, 4.0]})
    assert failing(report_of(frame, Field("x", "int"))) == {("x", "dtype"): [1, 2]}


def test_strings_in_an_object_float_column_fail_the_dtype_rule() -> None:
    frame = pd.DataFrame({"x": pd.Series([1.5, "oops", 3, None, True], dtype=object)})
    report = report_of(frame, Field("x", "float", nullable=True, max=2))
    assert failing(report) == {("x", "dtype"): [1, 4], ("x", "max"): [2]}


def test_bools_in_an_object_int_column_fail_the_dtype_rule() -> None:
    frame = pd.DataFrame({"x": pd.Series([1, True, 3], dtype=object)})
    assert failing(report_of(frame, Field("x", "int"))) == {("x", "dtype"): [1]}


def test_non_strings_in_an_object_string_column_fail_the_dtype_rule() -> None:
    frame = pd.DataFrame({"x": pd.Series(["a", 1, "c"], dtype=object)})
    assert failing(report_of(frame, Field("x", "string"))) == {("x", "dtype"): [1]}


def test_mixed_datetimes_in_an_object_column_are_read() -> None:
    values = [datetime(2021, 1, 1), datetime(2019, 1, 1, tzinfo=UTC), "2021-01-01", None]
    frame = pd.DataFrame({"t": pd.Series(values, dtype=object)})
    report = report_of(frame, Field("t", "timestamp", True, min="2020-01-01"))
    assert failing(report) == {("t", "min"): [1], ("t", "dtype"): [2]}


def test_non_bools_in_an_object_bool_column_fail_the_dtype_rule() -> None:
    frame = pd.DataFrame({"x": pd.Series([True, 1, np.False_], dtype=object)})
    assert failing(report_of(frame, Field("x", "bool"))) == {("x", "dtype"): [1]}


# -- nulls, NaN and Inf ----------------------------------------------------------------------------


def test_nulls_fail_a_non_nullable_field() -> None:
    frame = pd.DataFrame({"x": pd.array([1, None, 3], dtype="Int64")})
    assert failing(report_of(frame, Field("x", "int"))) == {("x", "null"): [1]}
    assert report_of(frame, Field("x", "int", nullable=True)).ok


def test_nan_in_a_pandas_float_column_is_a_null() -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan]})
    assert failing(report_of(frame, Field("x", "float"))) == {("x", "null"): [1]}
    assert report_of(frame, Field("x", "float", nullable=True)).ok


def test_inf_fails_the_finite_rule() -> None:
    frame = pd.DataFrame({"x": [1.0, np.inf, -np.inf]})
    report = report_of(frame, Field("x", "float", max=10))
    assert failing(report) == {("x", "finite"): [1, 2]}


def test_allow_nan_accepts_nan_and_inf_even_when_not_nullable() -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan, np.inf]})
    assert report_of(frame, Field("x", "float", allow_nan=True)).ok


def test_arrow_keeps_nan_apart_from_null() -> None:
    table = pa.table({"x": pa.array([1.0, float("nan"), None], pa.float64())})
    report = report_of(table, Field("x", "float", nullable=True))
    assert failing(report) == {("x", "finite"): [1]}
    assert failing(report_of(table, Field("x", "float", allow_nan=True))) == {("x", "null"): [2]}


# -- value rules -----------------------------------------------------------------------------------


def test_min_and_max_are_inclusive() -> None:
    frame = pd.DataFrame({"x": [-1, 0, 5, 10, 11]})
    report = report_of(frame, Field("x", "int", min=0, max=10))
    assert failing(report) == {("x", "min"): [0], ("x", "max"): [4]}


def test_float_bounds_apply_to_floats() -> None:
    frame = pd.DataFrame({"x": [-0.01, 0.0, 1.0, 1.01]})
    report = report_of(frame, Field("x", "float", min=0, max=1))
    assert failing(report) == {("x", "min"): [0], ("x", "max"): [3]}


@pytest.mark.parametrize("zone", [None, "UTC", "Asia/Tokyo"])
def test_timestamp_bounds_work_with_naive_and_aware_columns(zone: str | None) -> None:
    stamps = pd.to_datetime(["2019-12-31 23:59:59", "2020-01-01 00:00:00", "2025-01-01 00:00:00"])
    if zone:
        stamps = stamps.tz_localize("UTC").tz_convert(zone)
    frame = pd.DataFrame({"t": stamps})
    report = report_of(frame, Field("t", "timestamp", min="2020-01-01", max="2024-12-31"))
    assert failing(report) == {("t", "min"): [0], ("t", "max"): [2]}


def test_timestamp_bounds_work_on_arrow_timestamps_of_any_unit() -> None:
    for unit in ("s", "ms", "us", "ns"):
        stamps = pa.array([datetime(2019, 1, 1), datetime(2021, 1, 1)], pa.timestamp(unit, "UTC"))
        report = report_of(pa.table({"t": stamps}), Field("t", "timestamp", min="2020-01-01"))
        assert failing(report) == {("t", "min"): [0]}, unit


def test_unknown_categories_fail_the_allowed_rule() -> None:
    frame = pd.DataFrame({"c": pd.Categorical(["FR", "XX", None, "DE"])})
    report = report_of(frame, Field("c", "category", nullable=True, allowed=["FR", "DE"]))
    assert failing(report) == {("c", "allowed"): [1]}


def test_allowed_applies_to_string_and_number_columns() -> None:
    frame = pd.DataFrame({"s": ["a", "b", "z"], "n": [1, 7, 2]})
    report = report_of(
        frame, Field("s", "string", allowed=["a", "b"]), Field("n", "int", allowed=[1, 2])
    )
    assert failing(report) == {("s", "allowed"): [2], ("n", "allowed"): [1]}


def test_a_pattern_must_match_the_whole_string() -> None:
    frame = pd.DataFrame({"s": ["ABC-1234", "xABC-1234", "ABC-12345", "ABC-1234\n"]})
    report = report_of(frame, Field("s", "string", pattern=r"[A-Z]{3}-\d{4}"))
    assert failing(report) == {("s", "pattern"): [1, 2, 3]}


def test_a_pattern_re2_cannot_run_falls_back_to_python() -> None:
    frame = pd.DataFrame({"s": ["aa", "ab", None]})
    report = report_of(frame, Field("s", "string", True, pattern=r"(a)\1"))
    assert failing(report) == {("s", "pattern"): [1]}


def test_a_pattern_applies_to_categories() -> None:
    frame = pd.DataFrame({"c": pd.Categorical(["ok", "NO", "ok"])})
    assert failing(report_of(frame, Field("c", "category", pattern="[a-z]+"))) == {
        ("c", "pattern"): [1]
    }


def test_a_custom_check_flags_the_rows_it_rejects_but_not_nulls() -> None:
    frame = pd.DataFrame({"x": [2.0, 3.0, np.nan, 4.0]})
    even = Check("even", lambda s: s % 2 == 0)
    report = report_of(frame, Field("x", "float", nullable=True, checks=[even]))
    assert failing(report) == {("x", "check:even"): [1]}


def test_a_custom_check_may_return_a_numpy_array() -> None:
    frame = pd.DataFrame({"x": [1, -1]})
    positive = Check("positive", lambda s: s.to_numpy() > 0)
    assert failing(report_of(frame, Field("x", "int", checks=[positive]))) == {
        ("x", "check:positive"): [1]
    }


def test_a_custom_check_that_raises_is_a_schema_error() -> None:
    def broken(values: pd.Series[Any]) -> Any:
        raise KeyError("nope")

    with pytest.raises(SchemaError, match="field 'x': custom check 'broken' raised KeyError"):
        report_of(pd.DataFrame({"x": [1]}), Field("x", "int", checks=[broken]))


def test_a_custom_check_of_the_wrong_shape_is_a_schema_error() -> None:
    scalar = Check("scalar", lambda s: True)
    with pytest.raises(SchemaError, match="must return one boolean per row"):
        report_of(pd.DataFrame({"x": [1, 2]}), Field("x", "int", checks=[scalar]))


def test_value_rules_skip_rows_of_the_wrong_type() -> None:
    frame = pd.DataFrame({"x": [0.5, 200.0]})
    report = report_of(frame, Field("x", "int", max=100))
    assert failing(report) == {("x", "dtype"): [0], ("x", "max"): [1]}


# -- the report ------------------------------------------------------------------------------------


def test_the_report_counts_rows_and_keeps_five_examples_with_index_labels() -> None:
    frame = pd.DataFrame({"x": list(range(-8, 2))}, index=[f"r{i}" for i in range(10)])
    failure = report_of(frame, Field("x", "int", min=0)).failures[0]
    assert failure.count == 8
    assert failure.rows == ("r0", "r1", "r2", "r3", "r4")
    assert failure.values == (-8, -7, -6, -5, -4)


def test_invalid_rows_marks_rows_failing_any_rule() -> None:
    frame = pd.DataFrame({"a": [1, -1, 1, 1], "b": ["x", "x", "y", "x"]})
    report = report_of(frame, Field("a", "int", min=0), Field("b", "string", allowed=["x"]))
    assert report.invalid_rows.tolist() == [False, True, True, False]
    assert report.invalid_count == 2


def test_the_report_is_json_ready() -> None:
    frame = pd.DataFrame(
        {"t": pd.to_datetime(["2019-01-01"], utc=True), "x": [np.inf]}, index=[pd.Timestamp(0)]
    )
    report = report_of(frame, Field("t", "timestamp", min="2020-01-01"), Field("x", "float"))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["failures"][0]["examples"] == [
        {"row": "1970-01-01T00:00:00", "value": "2019-01-01T00:00:00+00:00"}
    ]
    assert data["failures"][1]["examples"][0]["value"] == "inf"


def test_the_summary_names_columns_rules_and_examples() -> None:
    report = report_of(pd.DataFrame({"age": [5, -3]}), Field("age", "int", min=0))
    summary = report.summary()
    assert "2 rows, 1 invalid (50.00%)" in summary
    assert "age: 1 row where the value is below min 0 [min] (e.g. row 1: -3)" in summary


# -- modes -----------------------------------------------------------------------------------------

BAD = pd.DataFrame({"age": [30, -1, 40, 200], "name": ["a", "b", None, "d"]})
BAD_SCHEMA = Schema((Field("age", "int", min=0, max=130), Field("name", "string")))


def test_raise_mode_raises_with_the_report() -> None:
    with pytest.raises(DataValidationError, match=r"age: 1 row where the value is below") as error:
        validate(BAD, BAD_SCHEMA)
    assert isinstance(error.value.report, ValidationReport)
    assert error.value.report.invalid_count == 3


def test_raise_mode_raises_on_column_problems() -> None:
    with pytest.raises(DataValidationError, match="column 'name' .* is missing"):
        validate(BAD[["age"]].abs().clip(upper=100), BAD_SCHEMA)


def test_warn_mode_returns_every_row_and_warns_once() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = validate(BAD, BAD_SCHEMA, mode="warn")
    assert result.valid is BAD
    assert [w.category for w in caught] == [DataValidationWarning]
    assert "4 rows, 3 invalid" in str(caught[0].message)


def test_data_validation_warning_is_a_user_warning() -> None:
    assert issubclass(DataValidationWarning, UserWarning)


def test_drop_mode_keeps_valid_rows_and_quarantines_the_others(tmp_path: Path) -> None:
    result = validate(BAD, BAD_SCHEMA, mode="drop", quarantine_dir=tmp_path / "q")
    assert result.valid.index.tolist() == [0]
    assert result.quarantine_path is not None
    assert result.quarantine_path.parent == tmp_path / "q"
    assert re.fullmatch(
        r"quarantine-\d{8}T\d{12}Z-[0-9a-f]{8}\.parquet", result.quarantine_path.name
    )
    stored = pd.read_parquet(result.quarantine_path)
    assert stored.index.tolist() == [1, 2, 3]
    assert stored["age"].tolist() == [-1, 40, 200]
    assert stored["_keel_row"].tolist() == [1, 2, 3]
    assert [list(r) for r in stored["_keel_reasons"]] == [["age:min"], ["name:null"], ["age:max"]]


def test_drop_mode_lists_every_failed_rule_of_a_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"age": [-1], "name": [None]}, dtype=object).astype({"age": int})
    result = validate(frame, BAD_SCHEMA, mode="drop", quarantine_dir=tmp_path)
    assert result.quarantine_path is not None
    reasons = pq.read_table(result.quarantine_path).column("_keel_reasons").to_pylist()
    assert reasons == [["age:min", "name:null"]]
    assert len(result.valid) == 0


def test_drop_mode_writes_nothing_when_every_row_is_valid(tmp_path: Path) -> None:
    result = validate(BAD.iloc[[0]], BAD_SCHEMA, mode="drop", quarantine_dir=tmp_path)
    assert result.quarantine_path is None
    assert list(tmp_path.iterdir()) == []


def test_drop_mode_needs_a_quarantine_dir() -> None:
    with pytest.raises(ValueError, match="needs a quarantine_dir"):
        validate(BAD, BAD_SCHEMA, mode="drop")


def test_drop_mode_raises_on_column_problems(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="column 'name' .* is missing"):
        validate(BAD[["age"]], BAD_SCHEMA, mode="drop", quarantine_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_drop_mode_quarantines_mixed_object_columns_as_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": pd.Series([1.5, "oops", None], dtype=object)})
    schema = Schema((Field("x", "float", nullable=True),))
    result = validate(frame, schema, mode="drop", quarantine_dir=tmp_path)
    assert result.quarantine_path is not None
    stored = pd.read_parquet(result.quarantine_path)
    assert stored["x"].tolist() == ["oops"]
    assert result.valid.index.tolist() == [0, 2]


def test_drop_mode_on_an_arrow_table_returns_a_table(tmp_path: Path) -> None:
    table = pa.Table.from_pandas(BAD, preserve_index=False)
    result = validate(table, BAD_SCHEMA, mode="drop", quarantine_dir=tmp_path)
    assert isinstance(result.valid, pa.Table)
    assert result.valid.column("age").to_pylist() == [30]
    assert result.quarantine_path is not None
    stored = pq.read_table(result.quarantine_path)
    assert stored.column("_keel_row").to_pylist() == [1, 2, 3]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        validate(BAD, BAD_SCHEMA, mode="fix")  # type: ignore[arg-type]


def test_only_frames_and_tables_are_validated() -> None:
    with pytest.raises(TypeError, match="pandas DataFrame or an Arrow Table"):
        validate({"age": [1]}, BAD_SCHEMA)  # type: ignore[type-var]


# -- Arrow input -----------------------------------------------------------------------------------


def test_arrow_and_pandas_give_the_same_failures() -> None:
    frame = pd.DataFrame(
        {
            "age": [1, -1, 300],
            "score": [0.5, 2.0, None],
            "country": pd.Categorical(["FR", "XX", "DE"]),
            "sku": ["ABC-1234", "nope", None],
            "seen": pd.to_datetime(["2021-01-01", "2019-01-01", "2022-01-01"]),
            "active": [True, False, True],
        }
    )
    from_pandas = report_of(frame, *SCHEMA.fields)
    from_arrow = report_of(pa.Table.from_pandas(frame, preserve_index=False), *SCHEMA.fields)
    assert failing(from_arrow) == failing(from_pandas)
    assert from_arrow.invalid_rows.tolist() == from_pandas.invalid_rows.tolist()


def test_chunked_arrow_dictionaries_with_different_categories_are_read() -> None:
    chunks = [pa.array(["FR", "DE"]).dictionary_encode(), pa.array(["XX"]).dictionary_encode()]
    table = pa.table({"c": pa.chunked_array(chunks)})
    report = report_of(table, Field("c", "category", allowed=["FR", "DE"]))
    assert failing(report) == {("c", "allowed"): [2]}


def test_an_arrow_string_view_column_is_read() -> None:
    table = pa.table({"s": pa.array(["a", "b"], pa.string_view())})
    assert failing(report_of(table, Field("s", "string", allowed=["a"]))) == {("s", "allowed"): [1]}


# -- check_matches ---------------------------------------------------------------------------------

SIGNATURE = Schema((Field("age", "int"), Field("income", "float"), Field("note", "string", True)))


def test_a_frame_matching_its_signature_passes_with_extra_columns() -> None:
    frame = pd.DataFrame({"age": [1], "income": [2.0], "unused": ["x"]})
    check_matches(frame, SIGNATURE)


def test_int_data_for_a_float_column_passes() -> None:
    check_matches(pd.DataFrame({"age": [1], "income": [2]}), SIGNATURE)


def test_a_mismatching_frame_is_refused_with_every_problem() -> None:
    frame = pd.DataFrame({"age": [1.5], "note": ["x"]})
    with pytest.raises(SchemaMismatch) as error:
        check_matches(frame, SIGNATURE, what="scoring data")
    assert error.value.problems == [
        "missing column 'income' (float)",
        "column 'age' changed type float -> int",
    ]
    assert str(error.value).startswith("scoring data does not match: ")


def test_nulls_where_the_signature_refuses_them_are_a_mismatch() -> None:
    frame = pd.DataFrame({"age": [1], "income": [np.nan]})
    with pytest.raises(SchemaMismatch, match="column 'income' no longer accepts nulls"):
        check_matches(frame, SIGNATURE)


# -- properties ------------------------------------------------------------------------------------

PROPERTY_SCHEMA = Schema(
    (
        Field("i", "int", min=-5, max=5),
        Field("f", "float", nullable=True, min=-1.0, max=1.0),
        Field("g", "float", allow_nan=True, max=0.5),
        Field("c", "category", nullable=True, allowed=["a", "b"]),
        Field(
            "s", "string", pattern=r"[a-c]+\d?", checks=[Check("short", lambda s: s.str.len() < 4)]
        ),
        Field("t", "timestamp", min="2020-01-01", max="2021-01-01"),
        Field("b", "bool", allowed=[True]),
    )
)
floats = st.floats(-2, 2) | st.sampled_from([math.nan, math.inf, -math.inf])
stamps = st.datetimes(datetime(2019, 6, 1), datetime(2021, 6, 1))
rows = st.fixed_dictionaries(
    {
        "i": st.integers(-10, 10),
        "f": floats,
        "g": floats,
        "c": st.sampled_from(["a", "b", "z", None]),
        "s": st.from_regex(r"[a-d]{0,4}\d?", fullmatch=True),
        "t": stamps,
        "b": st.booleans(),
    }
)


def oracle(row: dict[str, Any]) -> bool:
    """Whether one row breaks a rule of PROPERTY_SCHEMA, written out by hand."""
    i, f, g, c, s, t, b = (row[k] for k in "ifgcstb")
    if not -5 <= i <= 5:
        return True
    if not math.isnan(f) and (math.isinf(f) or not -1 <= f <= 1):
        return True
    if g > 0.5:
        return True
    if c not in ("a", "b", None):
        return True
    if not re.fullmatch(r"[a-c]+\d?", s, re.ASCII) or len(s) >= 4:
        return True
    if not datetime(2020, 1, 1) <= t <= datetime(2021, 1, 1):
        return True
    return not b


def frame_of(batch: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(batch, columns=list("ifgcstb"))
    return frame.astype({"c": "category", "s": "str", "i": "int64", "b": "bool"})


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=30))
def test_rows_flagged_invalid_are_exactly_those_breaking_a_rule(
    batch: list[dict[str, Any]],
) -> None:
    report = report_of(frame_of(batch), *PROPERTY_SCHEMA.fields)
    assert report.invalid_rows.tolist() == [oracle(row) for row in batch]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=30))
def test_arrow_tables_flag_the_same_rows(batch: list[dict[str, Any]]) -> None:
    frame = frame_of(batch)
    # pandas reads NaN as missing in 'f' (NaN not allowed) and as a value in 'g' (allowed): say
    # the same in Arrow, which keeps the two apart.
    columns = {name: pa.array(frame[name], from_pandas=name != "g") for name in frame.columns}
    table = pa.table(columns)
    expected = report_of(frame, *PROPERTY_SCHEMA.fields).invalid_rows.tolist()
    assert report_of(table, *PROPERTY_SCHEMA.fields).invalid_rows.tolist() == expected


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=30))
def test_the_record_validator_agrees_with_the_batch_validator(batch: list[dict[str, Any]]) -> None:
    frame = frame_of(batch)
    report = report_of(frame, *PROPERTY_SCHEMA.fields)
    validator = RecordValidator(PROPERTY_SCHEMA)
    records = frame.to_dict("records")
    flagged = [bool(validator.validate(record)) for record in records]  # type: ignore[arg-type]
    assert flagged == report.invalid_rows.tolist()
    per_rule = {(f.column, f.rule): f.count for f in report.failures}
    record_counts: dict[tuple[str, str], int] = {}
    for record in records:
        for problem in validator.validate(record):  # type: ignore[arg-type]
            key = (problem.field, problem.rule)
            record_counts[key] = record_counts.get(key, 0) + 1
    assert record_counts == per_rule
