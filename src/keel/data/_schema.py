"""Column types of a frame, declared once: the model signature is a :class:`Schema`.

This module holds the part of the data contract the registry needs (names, types, nullability,
inference from a training frame, and comparison of two schemas). Value rules (ranges, allowed
values, patterns) and batch/record validation build on the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from pandas.api import types as ptypes

DType = Literal["int", "float", "bool", "string", "category", "timestamp"]
DTYPES: tuple[DType, ...] = ("int", "float", "bool", "string", "category", "timestamp")

# A column typed ``key`` in the old schema may carry ``value`` in the new one without breaking
# clients: anything that was a valid int is still a valid float.
_WIDENINGS: dict[str, set[str]] = {"int": {"float"}, "category": {"string"}}


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


@dataclass(frozen=True)
class Field:
    """One column: its name, type and whether it may be missing."""

    name: str
    dtype: DType
    nullable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "nullable": self.nullable}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Field:
        dtype = data["dtype"]
        if dtype not in DTYPES:
            raise ValueError(f"field '{data['name']}' has unknown dtype '{dtype}'")
        return cls(name=data["name"], dtype=dtype, nullable=bool(data.get("nullable", False)))


@dataclass(frozen=True)
class SchemaDiff:
    """What changed from one schema to another."""

    added: list[Field] = field(default_factory=list)
    removed: list[Field] = field(default_factory=list)
    retyped: list[tuple[Field, Field]] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.retyped)

    @property
    def breaking(self) -> list[str]:
        """Changes that break a client sending data shaped by the old schema."""
        problems = [f"removed column '{f.name}'" for f in self.removed]
        problems += [f"new required column '{f.name}'" for f in self.added if not f.nullable]
        for old, new in self.retyped:
            if new.dtype != old.dtype and new.dtype not in _WIDENINGS.get(old.dtype, set()):
                problems.append(f"column '{old.name}' changed type {old.dtype} -> {new.dtype}")
            elif old.nullable and not new.nullable:
                problems.append(f"column '{old.name}' no longer accepts nulls")
        return problems

    def describe(self) -> list[str]:
        lines = [f"+ {f.name} ({f.dtype})" for f in self.added]
        lines += [f"- {f.name} ({f.dtype})" for f in self.removed]
        lines += [
            f"~ {old.name}: {old.dtype}{'?' if old.nullable else ''} -> "
            f"{new.dtype}{'?' if new.nullable else ''}"
            for old, new in self.retyped
        ]
        return lines


@dataclass(frozen=True)
class Schema:
    """An ordered set of typed columns.

    schema = Schema.from_frame(train_df)
    Schema.from_dict(schema.to_dict()) == schema
    schema.diff(other).breaking          # ["removed column 'age'", ...]
    """

    fields: tuple[Field, ...]

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

    def field(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(tuple(Field.from_dict(item) for item in data["fields"]))

    def diff(self, new: Schema) -> SchemaDiff:
        """Changes from ``self`` (old) to ``new``."""
        old_by_name = {f.name: f for f in self.fields}
        new_by_name = {f.name: f for f in new.fields}
        return SchemaDiff(
            added=[f for f in new.fields if f.name not in old_by_name],
            removed=[f for f in self.fields if f.name not in new_by_name],
            retyped=[
                (old_by_name[f.name], f)
                for f in new.fields
                if f.name in old_by_name and old_by_name[f.name] != f
            ],
        )
