"""Values of a window that break the rules of the model's input schema, counted per column.

    broken = rule_violations(window.inputs.column("age"), Field("age", "int", min=0, max=130))
    broken   # {"min": 3, "max": 0, ...}: rows below min, above max, ...

The serving endpoint validated each request against the same schema, so a violation here
means a value reached the model that the contract forbids (an endpoint with validation
relaxed, a feature looked up from the store, a default prediction's inputs): a data-quality
finding. Counted vectorized with Arrow compute: ``min`` / ``max`` (numbers), ``allowed``
(categories), ``pattern`` (full match, as the schema means it) and nulls in a field that is not
nullable. Custom ``checks`` are Python callables and are not re-run here.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from keel.data import Field


def rule_violations(values: pa.ChunkedArray | pa.Array, field: Field) -> dict[str, int]:
    """Rows of ``values`` breaking each rule ``field`` declares (rules it lacks are left out)."""
    broken: dict[str, int] = {}
    if not field.nullable:
        broken["not_null"] = values.null_count
    numeric = pa.types.is_floating(values.type) or pa.types.is_integer(values.type)
    if numeric and isinstance(field.min, int | float):
        broken["min"] = _count(pc.less(values, field.min))
    if numeric and isinstance(field.max, int | float):
        broken["max"] = _count(pc.greater(values, field.max))
    if field.allowed is not None:
        allowed = pa.array(list(field.allowed), values.type)
        present = pc.is_valid(values)
        broken["allowed"] = _count(pc.and_(present, pc.invert(pc.is_in(values, allowed))))
    if field.pattern is not None and pa.types.is_string(values.type):
        matched = pc.match_substring_regex(values, f"^(?:{field.pattern})$")
        broken["pattern"] = _count(pc.invert(matched))
    return broken


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)  # nulls are not counted: they are not_null's
