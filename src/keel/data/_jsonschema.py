"""A schema as JSON Schema (draft 2020-12) for one record, as OpenAPI request bodies use it.

    Schema((Field("age", "int", min=0), Field("note", "string", nullable=True))).to_json_schema()
    # {"$schema": ..., "type": "object",
    #  "properties": {"age": {"type": "integer", "minimum": 0},
    #                 "note": {"type": ["string", "null"]}},
    #  "required": ["age"], "additionalProperties": false}

What JSON Schema cannot say is carried as ``x-keel-*`` annotations, which validators ignore:
timestamp bounds (``x-keel-minimum``/``x-keel-maximum``, ISO 8601), custom check names
(``x-keel-checks``) and personal data (``x-keel-sensitive``, with the standard ``writeOnly``).
A nullable field may be absent or null; the others are ``required``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from keel.data._schema import Field, Schema

JSONSchema = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"

_TYPES = {
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "string": "string",
    "category": "string",
    "timestamp": "string",
}


def to_json_schema(schema: Schema, title: str | None = None) -> JSONSchema:
    """The JSON Schema of one record of ``schema``."""
    document: JSONSchema = {"$schema": DRAFT}
    if title is not None:
        document["title"] = title
    document["type"] = "object"
    document["properties"] = {f.name: _property(f) for f in schema.fields}
    document["required"] = [f.name for f in schema.fields if not f.nullable]
    document["additionalProperties"] = False
    return document


def _property(field: Field) -> JSONSchema:
    kind = _TYPES[field.dtype]
    prop: JSONSchema = {"type": [kind, "null"] if field.nullable else kind}
    if field.dtype == "timestamp":
        prop["format"] = "date-time"
    if field.description:
        prop["description"] = field.description
    for which, keyword in (("min", "minimum"), ("max", "maximum")):
        bound = getattr(field, which)
        if isinstance(bound, pd.Timestamp):
            prop[f"x-keel-{keyword}"] = bound.isoformat()
        elif bound is not None:
            prop[keyword] = bound
    if field.allowed is not None:
        prop["enum"] = [*field.allowed, None] if field.nullable else list(field.allowed)
    if field.pattern is not None:
        # JSON Schema patterns search; keel patterns match the whole string.
        prop["pattern"] = f"^(?:{field.pattern})$"
    if field.checks:
        prop["x-keel-checks"] = [c.name for c in field.custom_checks]
    if field.sensitive:
        # writeOnly: a client sends the value, nothing ever gives it back in clear.
        prop["writeOnly"] = True
        prop["x-keel-sensitive"] = True
    return prop
