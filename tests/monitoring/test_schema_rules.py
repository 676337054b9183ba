"""Values that break the input schema's rules are counted per rule, as a data-quality finding."""

from __future__ import annotations

import pyarrow as pa
import pytest

from keel.data import Field
from keel.monitoring._drift import drift
from keel.monitoring._log_window import LogWindow
from keel.monitoring._quality import quality_results
from keel.monitoring._schema_rules import rule_violations


def test_numbers_below_min_and_above_max_are_counted() -> None:
    values = pa.array([-1.0, 0.0, 50.0, 130.0, 131.0, None])
    broken = rule_violations(values, Field("age", "float", min=0, max=130, nullable=True))
    assert broken == {"min": 1, "max": 1}


def test_a_null_in_a_field_that_is_not_nullable_is_counted() -> None:
    assert rule_violations(pa.array([1.0, None, None]), Field("x", "float")) == {"not_null": 2}


def test_categories_outside_allowed_are_counted_and_nulls_left_to_nullability() -> None:
    text = pa.array(["FR", "DE", "XX", None, "XX"])
    assert rule_violations(text, Field("c", "category", allowed=["FR", "DE"], nullable=True)) == {
        "allowed": 2
    }


def test_a_pattern_must_match_the_whole_value() -> None:
    skus = pa.array(["ABC-1234", "ABC-12345", "abc-1234"])
    broken = rule_violations(skus, Field("sku", "string", pattern=r"[A-Z]{3}-\d{4}"))
    assert broken == {"not_null": 0, "pattern": 2}


def test_quality_results_report_out_of_schema_values_as_an_alert() -> None:
    inputs = pa.table({"age": pa.array([10.0, 20.0, -5.0, 200.0] * 300)})
    window = LogWindow("churn", 0.0, 3600.0, inputs.num_rows, inputs, pa.table({}), {"age": 0})
    report = drift(inputs, inputs, min_rows=10)
    fields = {"age": Field("age", "float", min=0, max=130)}
    [found] = [
        r
        for r in quality_results(window, report, [], fields=fields)
        if r.statistic == "out_of_schema"
    ]
    assert (found.subject, found.status, found.value) == ("age", "alert", pytest.approx(600.0))
    assert found.details == {"not_null": 0, "min": 300, "max": 300}
