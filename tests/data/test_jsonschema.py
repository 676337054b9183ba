"""JSON Schema export: the document's shape, and records judged alike by it and by keel."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from keel.data import Check, Field, RecordValidator, Schema, to_json_schema

SCHEMA = Schema(
    (
        Field("age", "int", min=0, max=130, description="age in years"),
        Field("income", "float", nullable=True, min=0.0),
        Field("country", "category", allowed=["FR", "DE"]),
        Field("tier", "string", nullable=True, allowed=["free", "pro"]),
        Field("sku", "string", pattern=r"[A-Z]{3}-\d{4}"),
        Field("seen", "timestamp", min="2020-01-01"),
        Field("active", "bool"),
    )
)


def test_the_document_is_a_draft_2020_12_object_schema() -> None:
    document = SCHEMA.to_json_schema(title="Customer")
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["title"] == "Customer"
    assert document["type"] == "object"
    assert document["additionalProperties"] is False
    json.dumps(document)


def test_the_title_is_optional() -> None:
    assert "title" not in to_json_schema(SCHEMA)


def test_non_nullable_fields_are_required() -> None:
    assert SCHEMA.to_json_schema()["required"] == ["age", "country", "sku", "seen", "active"]


def test_each_dtype_maps_to_a_json_type() -> None:
    properties = SCHEMA.to_json_schema()["properties"]
    assert {name: prop["type"] for name, prop in properties.items()} == {
        "age": "integer",
        "income": ["number", "null"],
        "country": "string",
        "tier": ["string", "null"],
        "sku": "string",
        "seen": "string",
        "active": "boolean",
    }
    assert properties["seen"]["format"] == "date-time"


def test_rules_become_keywords() -> None:
    properties = SCHEMA.to_json_schema()["properties"]
    assert properties["age"] == {
        "type": "integer",
        "description": "age in years",
        "minimum": 0,
        "maximum": 130,
    }
    assert properties["income"]["minimum"] == 0.0
    assert properties["country"]["enum"] == ["FR", "DE"]
    assert properties["sku"]["pattern"] == r"^(?:[A-Z]{3}-\d{4})$"


def test_a_nullable_enum_admits_null() -> None:
    assert SCHEMA.to_json_schema()["properties"]["tier"]["enum"] == ["free", "pro", None]


def test_what_json_schema_cannot_say_is_annotated() -> None:
    field = Field("t", "timestamp", min="2020-01-01", checks=[Check("weekday", lambda s: s)])
    prop = Schema((field,)).to_json_schema()["properties"]["t"]
    assert prop["x-keel-minimum"] == "2020-01-01T00:00:00+00:00"
    assert prop["x-keel-checks"] == ["weekday"]
    assert "minimum" not in prop


def test_a_sensitive_field_is_annotated_write_only() -> None:
    schema = Schema((Field("email", "string", sensitive=True), Field("age", "int")))
    properties = schema.to_json_schema()["properties"]
    assert properties["email"] == {"type": "string", "writeOnly": True, "x-keel-sensitive": True}
    assert properties["age"] == {"type": "integer"}


# -- a tiny validator for the keywords keel emits --------------------------------------------------

_JSON_TYPES = {
    "integer": lambda v: (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and float(v).is_integer()
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "null": lambda v: v is None,
}


def json_schema_accepts(document: dict[str, Any], record: dict[str, Any]) -> bool:
    """Draft 2020-12 semantics for type, enum, minimum, maximum, pattern, required and
    additionalProperties: false (all that keel emits)."""
    properties = document["properties"]
    if any(name not in record for name in document["required"]):
        return False
    if any(name not in properties for name in record):
        return False
    for name, value in record.items():
        prop = properties[name]
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        if not any(_JSON_TYPES[t](value) for t in types):
            return False
        if "enum" in prop and value not in prop["enum"]:
            return False
        if value is None:
            continue
        if "minimum" in prop and value < prop["minimum"]:
            return False
        if "maximum" in prop and value > prop["maximum"]:
            return False
        if "pattern" in prop and not re.search(prop["pattern"], value, re.ASCII):
            return False
    return True


SUBSET = Schema(tuple(f for f in SCHEMA.fields if f.dtype != "timestamp"))
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(-5, 200),
    st.sampled_from(["FR", "DE", "XX", "free", "pro", "ABC-1234", "AB-1", "ABC-12345"]),
)
records = st.dictionaries(st.sampled_from([*SUBSET.names, "other"]), values, max_size=8)


@given(records)
def test_json_schema_and_the_record_validator_agree(record: dict[str, Any]) -> None:
    document = SUBSET.to_json_schema()
    expected = RecordValidator(SUBSET).validate(record) == []
    assert json_schema_accepts(document, record) == expected


def test_a_good_record_passes_the_json_schema() -> None:
    record = {
        "age": 30,
        "income": None,
        "country": "FR",
        "sku": "ABC-1234",
        "seen": pd.Timestamp("2024-01-01", tz="UTC").isoformat(),
        "active": True,
    }
    assert json_schema_accepts(SCHEMA.to_json_schema(), record)
    assert not json_schema_accepts(SCHEMA.to_json_schema(), {**record, "age": -1})
