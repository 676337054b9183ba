"""Prediction-cache keys: a model version's records in canonical form, hashed.

    keys = CacheKeys("churn", 3, ["age", "plan", "tenure"])   # once per loaded version
    keys.key({"tenure": 12, "age": 41.0, "plan": "pro"})      # b"churn:3:9f0c..."

The model name and version stay in clear as the key's prefix (a new version never reads an old
version's entries, and Redis keys can be scanned per version); the record goes through a
128-bit blake2b digest of a typed, unambiguous encoding of each signature column, so field
order, number formatting and int-versus-equal-float do not change the key.

The digest covers one tag per column (``f``: a number a double holds, its 8 bytes follow;
``x``: anything else, its self-delimiting encoding follows), then the columns' payloads. A
record whose every column is such a number (most feature vectors) packs all of them in one
``struct`` call, a few times faster than encoding column by column, to the very same bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from typing import Any

_DOUBLE = struct.Struct("<d")
_LENGTH = struct.Struct("<Q")
_NUMBER_TYPES = frozenset({float, int})
_FLOAT = frozenset({float})


def _encode(value: Any, out: list[bytes]) -> None:
    """Append the canonical bytes of one value to ``out``: a type tag, then a payload that is
    self-delimiting, so the concatenation of several values is unambiguous."""
    kind = type(value)
    if kind is float:
        out.append(_float_bytes(value))
    elif kind is str:
        data = value.encode("utf-8", "surrogatepass")
        out.append(b"s" + _LENGTH.pack(len(data)) + data)
    elif value is None:
        out.append(b"z")
    elif kind is bool:  # before int: bool is an int subclass, but True must not key like 1
        out.append(b"T" if value else b"F")
    elif kind is int:
        out.append(_int_bytes(value))
    elif isinstance(value, (list, tuple)):
        out.append(b"[")
        for item in value:
            _encode(item, out)
        out.append(b"]")
    elif isinstance(value, Mapping):
        out.append(b"{")
        for name in sorted(value, key=str):
            _encode(str(name), out)
            _encode(value[name], out)
        out.append(b"}")
    elif isinstance(value, int | float | str):  # subclasses: np.float64, IntEnum, StrEnum, ...
        _encode(_plain_builtin(value), out)
    elif hasattr(value, "item") and callable(value.item):  # numpy scalars: np.int64, np.bool_
        plain = value.item()
        if type(plain) is type(value):
            _encode_other(value, out)
        else:
            _encode(plain, out)
    else:
        _encode_other(value, out)


def _as_doubles(values: list[Any]) -> list[float] | None:
    """``values`` as the doubles :func:`_as_double` gives each, when every one is a plain int
    or float that gives one (the common all-numeric record, checked by C loops); else None."""
    kinds = set(map(type, values))
    if kinds == _FLOAT:
        numbers = values
    elif kinds <= _NUMBER_TYPES:
        try:
            numbers = list(map(float, values))
        except OverflowError:
            return None
        if numbers != values:  # an int no double holds exactly
            return None
    else:
        return None
    total = sum(numbers)
    if total != total:  # a NaN (or inf and -inf): the column-by-column path sorts it out
        return None
    if 0.0 in numbers:
        numbers = [number + 0.0 for number in numbers]  # -0.0 + 0.0 is 0.0
    return numbers


def _as_double(value: Any) -> float | None:
    """The double a number keys as (-0.0 as 0.0): a float other than NaN, or an int (not a
    bool) a double holds exactly, a subclass of either or a numpy scalar of either; None for
    anything else."""
    if isinstance(value, float):
        number = float(value)
        return None if number != number else number + 0.0
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number + 0.0 if number == int(value) else None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars: np.int64, np.float32
        plain = value.item()
        if type(plain) is not type(value):
            return _as_double(plain)
    return None


def _plain_builtin(value: int | float | str) -> int | float | str:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value)
    return int(value)


def _encode_other(value: Any, out: list[bytes]) -> None:
    # Anything else (dates, decimals, ...) keys by its type and repr: equal values that print
    # differently only cost a miss, never a wrong answer.
    data = f"{type(value).__module__}.{type(value).__qualname__}:{value!r}".encode(
        "utf-8", "surrogatepass"
    )
    out.append(b"r" + _LENGTH.pack(len(data)) + data)


def _float_bytes(value: float) -> bytes:
    if value != value:
        return b"N"  # every NaN (any sign or payload) is the same missing number
    if value == 0.0:
        value = 0.0  # -0.0 == 0.0 == 0: one key for all three
    return b"f" + _DOUBLE.pack(value)


def _int_bytes(value: int) -> bytes:
    # An int a double holds exactly keys as that double, so 1 and 1.0 meet; a larger one
    # equals no float at all and keys by its decimal digits (';' ends them).
    number = _as_double(value)
    if number is not None:
        return b"f" + _DOUBLE.pack(number)
    return b"i" + str(value).encode() + b";"


class CacheKeys:
    """The cache keys of one model version's records: ``NAME:VERSION:`` + 32 hex digits.

        keys = CacheKeys("churn", 3, ["age", "plan", "tenure"])
        keys.key({"tenure": 12, "age": 41.0, "plan": "pro"})   # b"churn:3:9f0c..."

    Only ``columns`` count (in no particular order; a missing field keys like None), so extra
    fields a request carries do not split the cache. Numbers key by exact value: 1, 1.0 and
    1.00e0 are one key, 0.1 and 0.1000000000000000055511151231257827 (the same double) too;
    -0.0 keys like 0.0 (no model keel serves answers differently for them); every NaN keys
    alike but apart from None. Strings, booleans, None and numbers never meet: "1", True, None
    and 1 are four keys. Build one per loaded version: the digest of the column names is
    computed once and copied per record.
    """

    __slots__ = ("_base", "_columns", "_numbers_base", "_pack", "prefix")

    def __init__(self, model_name: str, model_version: int | str, columns: Sequence[str]) -> None:
        self.prefix = f"{model_name}:{model_version}:".encode()
        self._columns = tuple(sorted(set(columns)))
        self._base = hashlib.blake2b(digest_size=16, person=b"keel-cache-v2")
        header: list[bytes] = []
        for name in self._columns:
            _encode(name, header)
        self._base.update(b"".join(header))
        self._pack = struct.Struct(f"<{len(self._columns)}d").pack
        # The state after the tags of a record of numbers only: one update per such record.
        self._numbers_base = self._base.copy()
        self._numbers_base.update(b"f" * len(self._columns))

    def key(self, record: Mapping[str, Any]) -> bytes:
        """The key of one record."""
        values = list(map(record.get, self._columns))
        numbers = _as_doubles(values)
        if numbers is not None:
            digest = self._numbers_base.copy()
            digest.update(self._pack(*numbers))
        else:
            digest = self._base.copy()
            tags = bytearray()
            payload: list[bytes] = []
            for value in values:
                number = _as_double(value)
                if number is None:
                    tags += b"x"
                    _encode(value, payload)
                else:
                    tags += b"f"
                    payload.append(_DOUBLE.pack(number))
            digest.update(tags)
            digest.update(b"".join(payload))
        return self.prefix + digest.hexdigest().encode()

    def keys(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """The keys of a request's records, in order."""
        return [self.key(record) for record in records]


def cache_key(
    model_name: str, model_version: int | str, record: Mapping[str, Any], columns: Sequence[str]
) -> bytes:
    """The key of one record (see :class:`CacheKeys`, which serving uses to key many)."""
    return CacheKeys(model_name, model_version, columns).key(record)
