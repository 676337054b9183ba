"""Single records (request payloads) checked against a :class:`Schema`, fast enough to serve.

    validator = RecordValidator(schema)           # once per schema: one compiled plan per field
    validator.validate({"age": 31, "country": "FR"})   # [] when valid, else RecordProblems
    validator.check(payload)                      # raises DataValidationError naming bad fields

Values are accepted as a JSON decoder (or ``DataFrame.to_dict("records")``) produces them: an int
for a float field, a float with no fractional part for an int field, an ISO 8601 string or a
``datetime`` for a timestamp (without a zone it is read as UTC), NumPy scalars for their Python
types. ``True``/``False`` are not numbers and numbers are not booleans. A missing key or ``None``
is null; so is ``float("nan")`` (and ``pd.NA``/``pd.NaT``) unless the field allows NaN. Keys the
schema does not declare are a problem (rule ``extra``) unless ``extra="ignore"``.

Custom checks run on a one-element pandas Series holding the converted value, which costs tens
of microseconds per check; the other rules are plain Python comparisons.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from keel.data._schema import CheckFn, Field, Schema, compile_pattern
from keel.errors import DataValidationError, SchemaError

Convert = Callable[[Any], Any]
Rule = Callable[[Any], bool]

_MISSING: Any = object()
_BAD: Any = object()  # a value of the wrong type
_NULL: Any = object()  # NaN, pd.NA or pd.NaT standing for a missing value
_INF = math.inf
# An int field is a 64-bit column (int64 / Int64) and a float field a double: values beyond
# those cannot be put in the frame a model is called with.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = sys.float_info.max


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """One field of a record that broke one rule; ``message`` says how, with the value."""

    field: str
    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class _Plan:
    name: str
    nullable: bool
    convert: Convert
    finite: bool
    rules: tuple[tuple[str, Rule], ...]
    field: Field


class RecordValidator:
    """A schema compiled for checking one record at a time.

        validator = RecordValidator(schema)
        problems = validator.validate(payload)
        [f"{p.field}: {p.message}" for p in problems]

    Build one per schema and keep it: construction does the per-field work (converters,
    bounds, compiled patterns) so that ``validate`` only runs comparisons.
    """

    __slots__ = ("_names", "_plans", "extra", "schema")

    def __init__(self, schema: Schema, *, extra: Literal["ignore", "forbid"] = "forbid") -> None:
        if extra not in ("ignore", "forbid"):
            raise ValueError(f"extra must be 'ignore' or 'forbid', not {extra!r}")
        self.schema = schema
        self.extra = extra
        self._plans = tuple(_plan(f) for f in schema.fields)
        self._names = frozenset(schema.names)

    def validate(self, record: Mapping[str, Any]) -> list[RecordProblem]:
        """Every problem of ``record``, in schema order (extra keys last); [] if it is valid."""
        if not isinstance(record, Mapping):
            return [
                RecordProblem("", "dtype", f"a record is a mapping, not {type(record).__name__}")
            ]
        problems: list[RecordProblem] = []
        get = record.get
        found = 0
        for plan in self._plans:
            value = get(plan.name, _MISSING)
            if value is _MISSING or value is None:
                if not plan.nullable:
                    problems.append(_null_problem(plan.name, value))
                continue
            found += 1
            converted = plan.convert(value)
            if converted is _NULL:
                if not plan.nullable:
                    problems.append(_problem(plan.field, "null", value))
                continue
            if converted is _BAD:
                problems.append(_problem(plan.field, "dtype", value))
                continue
            if plan.finite and (converted == _INF or converted == -_INF):
                problems.append(_problem(plan.field, "finite", value))
                continue
            for rule, passes in plan.rules:
                if not passes(converted):
                    problems.append(_problem(plan.field, rule, value))
        if self.extra == "forbid" and len(record) > found:
            problems += [
                RecordProblem(str(key), "extra", f"{key!r} is not a field of the schema")
                for key in record
                if key not in self._names
            ]
        return problems

    def check(self, record: Mapping[str, Any]) -> None:
        """Raise :class:`DataValidationError` naming each bad field (``report``: the problems)."""
        problems = self.validate(record)
        if problems:
            details = "; ".join(f"{p.field}: {p.message}" for p in problems)
            raise DataValidationError(f"the record does not match its schema: {details}", problems)


def _null_problem(name: str, value: object) -> RecordProblem:
    what = "is missing (the field is required)" if value is _MISSING else "is null"
    return RecordProblem(name, "null", f"{what}; the field is not nullable")


def _problem(field: Field, rule: str, value: object) -> RecordProblem:
    return RecordProblem(field.name, rule, f"{value!r} {field.describe_rule(rule)}")


# -- compilation -----------------------------------------------------------------------------------


def _plan(field: Field) -> _Plan:
    rules: list[tuple[str, Rule]] = []
    low, high = field.min, field.max
    if isinstance(low, pd.Timestamp):  # records carry microseconds: round the bounds inwards
        low = low.ceil("us").to_pydatetime()
    if isinstance(high, pd.Timestamp):
        high = high.floor("us").to_pydatetime()
    if low is not None:
        rules.append(("min", _at_least(low)))
    if high is not None:
        rules.append(("max", _at_most(high)))
    if field.allowed is not None:
        rules.append(("allowed", frozenset(field.allowed).__contains__))
    if field.pattern is not None:
        match = compile_pattern(field.pattern).fullmatch
        rules.append(("pattern", lambda v: match(v) is not None))
    rules += [
        (f"check:{c.name}", c.scalar or _custom(field, c.name, c.fn)) for c in field.custom_checks
    ]
    return _Plan(
        name=field.name,
        nullable=field.nullable,
        convert=_converter(field),
        finite=field.dtype == "float" and not field.allow_nan,
        rules=tuple(rules),
        field=field,
    )


# Written as "not below" / "not above" so that NaN (where allowed) passes, as in a batch.
def _at_least(bound: Any) -> Rule:
    return lambda v: not v < bound


def _at_most(bound: Any) -> Rule:
    return lambda v: not v > bound


def _custom(field: Field, name: str, fn: CheckFn) -> Rule:
    def passes(value: Any) -> bool:
        try:
            result = fn(pd.Series([value]))
        except Exception as error:
            raise SchemaError(
                f"field '{field.name}': custom check '{name}' raised "
                f"{type(error).__name__}: {error}"
            ) from error
        first = result.iloc[0] if isinstance(result, pd.Series) else np.asarray(result).ravel()[0]
        return first is True or first is np.True_

    return passes


def _converter(field: Field) -> Convert:
    if field.dtype == "float":
        return _to_float_with_nan if field.allow_nan else _to_float
    return _CONVERTERS[field.dtype]


def _missing_or_bad(value: Any) -> Any:
    if (
        value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float | np.floating) and value != value)
    ):
        return _NULL
    return _BAD


def _to_int(value: Any) -> Any:
    kind = type(value)
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else _BAD
    if kind is float:
        if value != value:
            return _NULL
        # strictly inside: JSON parsers round integers just below -2**63 to the float -2**63
        return value if value.is_integer() and _INT_MIN < value < _INT_MAX else _BAD
    if isinstance(value, np.integer):
        return _to_int(int(value))
    if isinstance(value, np.floating):
        return _to_int(float(value))
    return _missing_or_bad(value)


def _to_float(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return _NULL if value != value else value
    if kind is int:
        return value if -_FLOAT_MAX <= value <= _FLOAT_MAX else _BAD
    if isinstance(value, np.integer | np.floating):
        return _to_float(value.item())
    return _missing_or_bad(value)


def _to_float_with_nan(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return value if -_FLOAT_MAX <= value <= _FLOAT_MAX else _BAD
    if isinstance(value, np.integer | np.floating):
        return value.item()
    return _missing_or_bad(value)


def _to_bool(value: Any) -> Any:
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    return _missing_or_bad(value)


def _to_str(value: Any) -> Any:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    return _missing_or_bad(value)


def _to_timestamp(value: Any) -> Any:
    if type(value) is str:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return _BAD
    elif isinstance(value, datetime):
        if value is pd.NaT:
            return _NULL
        stamp = value
    elif isinstance(value, np.datetime64):
        if np.isnat(value):
            return _NULL
        stamp = pd.Timestamp(value)
    else:
        return _missing_or_bad(value)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


_CONVERTERS: dict[str, Convert] = {
    "int": _to_int,
    "bool": _to_bool,
    "string": _to_str,
    "category": _to_str,
    "timestamp": _to_timestamp,
}
