"""What changed between two schemas, and which changes break a client of the old one.

diff = old.diff(new)                  # a SchemaDiff
diff.breaking                         # ["removed column 'age'", ...]
diff.describe()                       # ["+ plan (category)", "~ age: int -> float"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.data._schema import Field

# A column typed ``key`` in the old schema may carry ``value`` in the new one without breaking
# clients: anything that was a valid int is still a valid float.
_WIDENINGS: dict[str, set[str]] = {"int": {"float"}, "category": {"string"}}


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
