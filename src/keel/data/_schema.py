"""The data contract, declared once: a :class:`Schema` of typed :class:`Field` columns and rules.

A field's type and nullability are its *shape* (what a model signature records and what schema
evolution compares); its rules (``min``/``max``, ``allowed``, ``pattern``, ``allow_nan`` and
custom ``checks``) constrain values. The same schema validates batches (``keel.data.validate``),
single records (``keel.data.RecordValidator``) and exports JSON Schema.

Rule semantics shared by every validator:

* ``min``/``max`` are inclusive; for timestamps they are instants, and timestamps without a zone
  (in the data or in the bound) are read as UTC.
* ``pattern`` must match the whole string (``re.fullmatch``). ``\\d``, ``\\w``, ``\\s`` and ``\\b``
  are ASCII-only (``re.ASCII``), which is also what Arrow's RE2 engine does for batches.
* ``allowed`` lists the values a column may take (a ``category`` field's categories).
* ``allow_nan`` lets a ``float`` field hold NaN and ±Inf. Containers that cannot tell a missing
  value from NaN (a NumPy float column in pandas, an object column, ``float("nan")`` in a record,
  which is how pandas writes a missing value) read NaN as missing, so ``nullable`` governs it,
  unless the field allows NaN, in which case NaN is a value. Arrow tables keep null and NaN apart.
* A custom check is a named, vectorized callable: it takes a pandas Series and returns a boolean
  Series or array, True for valid rows. A batch calls it once per column (nulls included; its
  verdict on null rows and rows of the wrong type is ignored); a single record calls the same
  callable on a one-element Series. In YAML/JSON a check is referenced by name and resolved
  through the ``checks={"name": fn}`` argument of the loader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from keel.data._schema_diff import SchemaDiff as SchemaDiff  # re-exported: its old home
from keel.data._schema_io import dump_json, dump_yaml, parse_file, parse_json, parse_yaml
from keel.errors import SchemaError

if TYPE_CHECKING:
    from keel.data._jsonschema import JSONSchema

DType = Literal["int", "float", "bool", "string", "category", "timestamp"]
DTYPES: tuple[DType, ...] = ("int", "float", "bool", "string", "category", "timestamp")

CheckFn = Callable[["pd.Series[Any]"], Any]
Bound = int | float | pd.Timestamp

# How loaders resolve check names: a function (named by the key) or a full Check.
Checks = Mapping[str, "CheckFn | Check"]

_FIELD_KEYS = (
    "name",
    "dtype",
    "nullable",
    "min",
    "max",
    "allowed",
    "pattern",
    "checks",
    "allow_nan",
    "description",
    "sensitive",
)
_ORDERED = ("int", "float", "timestamp")
_TEXT = ("string", "category")


def infer_dtype(series: pd.Series[Any]) -> DType:
    """The keel type of a pandas column."""
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype):
        return "bool"
    if ptypes.is_integer_dtype(dtype):
        return "int"
    if ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    return "string"


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` as every validator uses it (ASCII classes, matched against whole strings)."""
    return re.compile(pattern, re.ASCII)


@dataclass(frozen=True)
class Check:
    """A named custom rule: ``fn(series)`` returns True for the valid rows, vectorized.

        Check("even", lambda s: s % 2 == 0)
        Check("short", lambda s: s.str.len() <= 12, scalar=lambda v: len(v) <= 12)

    A single record calls ``fn`` on a one-element Series, which costs pandas' overhead (tens of
    microseconds); ``scalar``, if given, is called with the bare value instead and must give the
    same verdict. A plain function can be given to ``Field(checks=...)``; its ``__name__`` names it.
    """

    name: str
    fn: CheckFn
    scalar: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name == "<lambda>":
            raise SchemaError(f"a custom check needs a name, not {self.name!r}")
        if not callable(self.fn) or (self.scalar is not None and not callable(self.scalar)):
            raise SchemaError(f"custom check '{self.name}' is not callable")


def _field_error(name: object, problem: str) -> SchemaError:
    return SchemaError(f"field '{name}': {problem}")


@dataclass(frozen=True)
class Field:
    """One column: its type, whether it may be null, and the rules its values follow.

        Field("age", "int", min=0, max=130)
        Field("country", "category", allowed=["FR", "DE"], description="ISO 3166 code")
        Field("sku", "string", pattern=r"[A-Z]{3}-\\d{4}", checks=[is_known_sku])
        Field("ratio", "float", nullable=True, allow_nan=True)
        Field("email", "string", sensitive=True)

    ``sensitive`` marks personal data: servers tokenize or drop the field's values before they
    reach the prediction log (``[serving] pii_mode``). It is not a rule and cannot be inferred
    from data, so a schema read from a frame has none.

    Rules are keyword-only and default to "no rule", so ``Field(name, dtype, nullable)`` keeps
    meaning what it always did. Values are normalized on construction: ``allowed`` becomes a
    tuple, timestamp bounds become UTC ``pd.Timestamp`` values and plain functions in ``checks``
    become :class:`Check` objects. A rule that cannot work raises :class:`SchemaError` naming the
    field.
    """

    name: str
    dtype: DType
    nullable: bool = False
    _: KW_ONLY
    min: Bound | str | datetime | None = None
    max: Bound | str | datetime | None = None
    allowed: Collection[Any] | None = None
    pattern: str | None = None
    checks: Sequence[Check | CheckFn] = ()
    allow_nan: bool = False
    description: str | None = None
    sensitive: bool = False

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise SchemaError(f"a field needs a non-empty string name, not {name!r}")
        if self.dtype not in DTYPES:
            raise _field_error(
                name, f"unknown dtype '{self.dtype}' (use one of: {', '.join(DTYPES)})"
            )
        if not isinstance(self.nullable, bool):
            raise _field_error(name, f"nullable must be true or false, not {self.nullable!r}")
        set_ = object.__setattr__
        set_(self, "min", self._bound("min", self.min))
        set_(self, "max", self._bound("max", self.max))
        if self.min is not None and self.max is not None and self.min > self.max:  # type: ignore[operator]
            raise _field_error(name, f"min {self.min} is greater than max {self.max}")
        set_(self, "allowed", self._allowed(self.allowed))
        if self.pattern is not None:
            self._check_pattern(self.pattern)
        set_(self, "checks", self._checks(self.checks))
        if not isinstance(self.allow_nan, bool):
            raise _field_error(name, f"allow_nan must be true or false, not {self.allow_nan!r}")
        if self.allow_nan and self.dtype != "float":
            raise _field_error(name, f"allow_nan applies to float fields, not {self.dtype}")
        if self.description is not None and not isinstance(self.description, str):
            raise _field_error(name, "description must be a string")
        if not isinstance(self.sensitive, bool):
            raise _field_error(name, f"sensitive must be true or false, not {self.sensitive!r}")

    # -- normalization -----------------------------------------------------------------------

    def _bound(self, which: str, value: object) -> Bound | None:
        if value is None:
            return None
        if self.dtype not in _ORDERED:
            raise _field_error(self.name, f"{which} applies to int, float and timestamp fields")
        if self.dtype == "timestamp":
            if not isinstance(value, str | date | np.datetime64):
                raise _field_error(self.name, f"{which} must be a timestamp, not {value!r}")
            try:
                stamp = pd.Timestamp(value)
            except (ValueError, TypeError) as error:
                raise _field_error(self.name, f"{which} {value!r} is not a timestamp") from error
            if pd.isna(stamp):
                raise _field_error(self.name, f"{which} must be a timestamp, not NaT")
            return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _field_error(self.name, f"{which} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise _field_error(self.name, f"{which} must be finite, not {value}")
        return value

    def _allowed(self, values: Collection[Any] | None) -> tuple[Any, ...] | None:
        if values is None:
            return None
        if isinstance(values, str | bytes) or not isinstance(values, Collection):
            raise _field_error(self.name, f"allowed must be a list of values, not {values!r}")
        if self.dtype == "timestamp":
            raise _field_error(self.name, "allowed does not apply to timestamp fields")
        items = [v.item() if isinstance(v, np.generic) else v for v in values]
        if isinstance(values, set | frozenset):
            items.sort(key=repr)
        if not items:
            raise _field_error(self.name, "allowed is empty, so no value could be valid")
        for item in items:
            if not _is_value_of(self.dtype, item):
                raise _field_error(self.name, f"allowed value {item!r} is not a {self.dtype}")
        return tuple(items)

    def _check_pattern(self, pattern: object) -> None:
        if self.dtype not in _TEXT:
            raise _field_error(self.name, "pattern applies to string and category fields")
        if not isinstance(pattern, str):
            raise _field_error(self.name, f"pattern must be a string, not {pattern!r}")
        try:
            compile_pattern(pattern)
        except re.error as error:
            raise _field_error(
                self.name, f"pattern {pattern!r} is not a valid regex: {error}"
            ) from error

    def _checks(self, checks: object) -> tuple[Check, ...]:
        if isinstance(checks, Check) or callable(checks):
            checks = (checks,)
        if not isinstance(checks, Sequence):
            raise _field_error(self.name, "checks must be a list of named callables")
        result: list[Check] = []
        for item in checks:
            if isinstance(item, Check):
                result.append(item)
            elif callable(item):
                fn_name = getattr(item, "__name__", "")
                if not fn_name or fn_name == "<lambda>":
                    raise _field_error(
                        self.name, "a custom check needs a name: wrap it as Check('name', fn)"
                    )
                result.append(Check(fn_name, item))
            else:
                raise _field_error(self.name, f"custom check {item!r} is not callable")
        names = [c.name for c in result]
        if len(set(names)) != len(names):
            raise _field_error(self.name, f"custom check names repeat: {names}")
        return tuple(result)

    # -- rules -------------------------------------------------------------------------------

    @property
    def custom_checks(self) -> tuple[Check, ...]:
        """``checks``, normalized to :class:`Check` objects (they always are after construction)."""
        return tuple(c for c in self.checks if isinstance(c, Check))

    def describe_rule(self, rule: str) -> str:
        """What a value failing ``rule`` did wrong, in words (shared by every validator)."""
        if rule == "null":
            return "is null in a non-nullable field"
        if rule == "dtype":
            return f"is not a valid {self.dtype}"
        if rule == "finite":
            return "is NaN or infinite"
        if rule in ("min", "max"):
            bound = getattr(self, rule)
            text = bound.isoformat() if isinstance(bound, pd.Timestamp) else bound
            return f"is {'below min' if rule == 'min' else 'above max'} {text}"
        if rule == "allowed":
            allowed = tuple(self.allowed or ())
            shown = ", ".join(repr(v) for v in allowed[:8])
            more = ", ..." if len(allowed) > 8 else ""
            return f"is not one of {shown}{more}"
        if rule == "pattern":
            return f"does not match {self.pattern!r}"
        if rule.startswith("check:"):
            return f"fails custom check '{rule[6:]}'"
        return f"fails {rule}"

    # -- serialization -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form; rules at their defaults are left out (old dicts round-trip)."""
        data: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "nullable": self.nullable}
        for which in ("min", "max"):
            bound = getattr(self, which)
            if bound is not None:
                data[which] = bound.isoformat() if isinstance(bound, pd.Timestamp) else bound
        if self.allowed is not None:
            data["allowed"] = list(self.allowed)
        if self.pattern is not None:
            data["pattern"] = self.pattern
        if self.checks:
            data["checks"] = [c.name for c in self.custom_checks]
        if self.allow_nan:
            data["allow_nan"] = True
        if self.description is not None:
            data["description"] = self.description
        if self.sensitive:
            data["sensitive"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], checks: Checks | None = None) -> Field:
        """Read :meth:`to_dict` output; custom checks are resolved by name through ``checks``."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"a field must be a mapping of keys, not {data!r}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"a field needs a non-empty string 'name', got {data!r}")
        unknown = [key for key in data if key not in _FIELD_KEYS]
        if unknown:
            raise _field_error(
                name, f"unknown key(s) {', '.join(map(repr, unknown))} (known: {_FIELD_KEYS})"
            )
        if "dtype" not in data:
            raise _field_error(name, "has no 'dtype'")
        resolved: list[Check] = []
        names = data.get("checks") or []
        if isinstance(names, str) or not isinstance(names, list):
            raise _field_error(name, "checks must be a list of check names")
        for check_name in names:
            if not isinstance(check_name, str) or check_name not in (checks or {}):
                known = ", ".join(sorted(checks or {})) or "none were given"
                raise _field_error(
                    name,
                    f"unknown custom check {check_name!r}: pass checks={{name: fn}} to the "
                    f"loader (known: {known})",
                )
            found = (checks or {})[check_name]
            resolved.append(found if isinstance(found, Check) else Check(check_name, found))
        allowed = data.get("allowed")
        if allowed is not None and not isinstance(allowed, list):
            raise _field_error(name, f"allowed must be a list, not {allowed!r}")
        return cls(
            name,
            data["dtype"],
            data.get("nullable", False),
            min=data.get("min"),
            max=data.get("max"),
            allowed=allowed,
            pattern=data.get("pattern"),
            checks=tuple(resolved),
            allow_nan=data.get("allow_nan", False),
            description=data.get("description"),
            sensitive=data.get("sensitive", False),
        )


def _is_value_of(dtype: DType, value: object) -> bool:
    if dtype == "bool":
        return isinstance(value, bool)
    if dtype == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if dtype == "float":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    return isinstance(value, str)


@dataclass(frozen=True)
class Schema:
    """An ordered set of typed columns with their rules.

    schema = Schema((Field("age", "int", min=0), Field("country", "category", allowed=["FR"])))
    schema = Schema.from_frame(train_df)               # types and nullability, no rules
    schema = schema.mark_sensitive("email")            # tokenized before the prediction log
    schema = Schema.load("contract.yaml", checks={"is_known_sku": is_known_sku})
    Schema.from_dict(schema.to_dict()) == schema
    schema.diff(other).breaking                        # ["removed column 'age'", ...]
    """

    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        fields = tuple(self.fields)
        for item in fields:
            if not isinstance(item, Field):
                raise SchemaError(f"a schema holds Field objects, not {item!r}")
        names = [f.name for f in fields]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SchemaError(f"field name(s) declared twice: {', '.join(repeated)}")
        object.__setattr__(self, "fields", fields)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Schema:
        return cls(
            tuple(
                Field(str(name), infer_dtype(frame[name]), bool(frame[name].isna().any()))
                for name in frame.columns
            )
        )

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def sensitive_names(self) -> list[str]:
        """The fields marked ``sensitive``, in schema order."""
        return [f.name for f in self.fields if f.sensitive]

    def mark_sensitive(self, *names: str) -> Schema:
        """This schema with ``names`` marked sensitive (how a flag is added to an inferred one).

        signature_inputs = Schema.from_frame(train_df).mark_sensitive("email", "phone")
        """
        unknown = [name for name in names if name not in self.names]
        if unknown:
            raise SchemaError(
                f"cannot mark unknown field(s) sensitive: {', '.join(map(repr, unknown))} "
                f"(fields: {', '.join(self.names)})"
            )
        chosen = set(names)
        return Schema(
            tuple(replace(f, sensitive=True) if f.name in chosen else f for f in self.fields)
        )

    def field(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def diff(self, new: Schema) -> SchemaDiff:
        """Changes from ``self`` (old) to ``new``: added, removed and retyped columns.

        A column is retyped when its dtype or nullability changed; changed value rules are not
        a change of shape.
        """
        old_by_name = {f.name: f for f in self.fields}
        new_by_name = {f.name: f for f in new.fields}
        return SchemaDiff(
            added=[f for f in new.fields if f.name not in old_by_name],
            removed=[f for f in self.fields if f.name not in new_by_name],
            retyped=[
                (old_by_name[f.name], f)
                for f in new.fields
                if f.name in old_by_name
                and (old_by_name[f.name].dtype, old_by_name[f.name].nullable)
                != (f.dtype, f.nullable)
            ],
        )

    # -- serialization -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], checks: Checks | None = None) -> Schema:
        if not isinstance(data, Mapping) or not isinstance(data.get("fields"), list):
            raise SchemaError("a schema is a mapping with a 'fields' list")
        unknown = [key for key in data if key != "fields"]
        if unknown:
            raise SchemaError(f"unknown schema key(s): {', '.join(map(repr, unknown))}")
        return cls(tuple(Field.from_dict(item, checks) for item in data["fields"]))

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    def to_json(self) -> str:
        return dump_json(self.to_dict())

    @classmethod
    def from_yaml(cls, source: str | Path, *, checks: Checks | None = None) -> Schema:
        """A schema from YAML text or a ``.yaml``/``.yml`` file."""
        return cls.from_dict(parse_yaml(source), checks)

    @classmethod
    def from_json(cls, source: str | Path, *, checks: Checks | None = None) -> Schema:
        """A schema from JSON text or a ``.json`` file."""
        return cls.from_dict(parse_json(source), checks)

    @classmethod
    def load(cls, path: str | Path, *, checks: Checks | None = None) -> Schema:
        """A schema file, read as YAML (``.yaml``/``.yml``) or JSON (``.json``) by its suffix."""
        return cls.from_dict(parse_file(path), checks)

    def to_json_schema(self, title: str | None = None) -> JSONSchema:
        """A JSON Schema (draft 2020-12) describing one record of this schema."""
        from keel.data._jsonschema import to_json_schema

        return to_json_schema(self, title=title)
