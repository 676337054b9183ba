"""The encoding both online stores (SQLite, Redis) share: entity keys, event timestamps, rows.

**Entity keys** are tuples (one part per join key, composite keys allowed), encoded as a compact
JSON array: ``(42,)`` → ``[42]``, ``("42",)`` → ``["42"]``, ``(42, "eu")`` → ``[42,"eu"]``,
``(True,)`` → ``[true]``. So ``1`` and ``"1"`` are different keys, while ``1``, ``1.0`` and
``numpy.int64(1)`` are one key (a float with an integral value is taken as that integer, since
pandas turns integer key columns into floats as soon as one value is missing). Key parts are
int, str or bool (non-integral floats are allowed but unusual); a key with a missing part
(None, NaN) matches nothing.

**Rows** are stored as ``LAYOUT FLAG VALUES``: ``LAYOUT`` is 12 hex digits naming the ordered
list of feature names the row was written with (recorded once per view and layout, so a view
whose features change keeps old rows readable); ``FLAG`` is ``p`` (plain) or ``t`` (holds
tagged values); ``VALUES`` is a JSON array of the values in layout order. float, int, bool, str
and None are JSON scalars (NaN is stored as null); timestamps are ``{"t": ns}`` (an instant,
read back as a UTC ``pd.Timestamp``) or ``{"n": ns}`` (a naive timestamp, read back naive);
infinities are ``{"f": "inf"}`` / ``{"f": "-inf"}``. The event timestamp is kept next to the
row (SQLite: a column; Redis: a fixed-width prefix) so that a write can keep the newer row.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pandas as pd

from keel.errors import FeatureStoreError, TimestampError
from keel.features.online._base import NO_TIME, EntityKeys, OnlineRows

# -- entity keys -----------------------------------------------------------------------------------


def _key_part(value: Any) -> Any:
    """One key part in canonical form; None when missing (the key then matches nothing)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            raise FeatureStoreError(f"entity key part {value!r} is not a finite number")
        return int(number) if number.is_integer() else number
    if isinstance(value, str):
        return str(value)
    raise FeatureStoreError(
        f"entity key part {value!r} is a {type(value).__name__}; key parts are int, str or bool"
    )


def encode_key(key: tuple[Any, ...]) -> bytes | None:
    """The canonical encoding of one entity key, or None if a part is missing."""
    parts = [_key_part(part) for part in key]
    if any(part is None for part in parts):
        return None
    return orjson.dumps(parts)


def encode_keys(keys: EntityKeys) -> list[bytes | None]:
    """:func:`encode_key` of every key; columns of plain ints or strings take a fast path."""
    if isinstance(keys, pd.DataFrame):
        columns = [keys[column] for column in keys.columns]
        if all(_plain_key_column(column) for column in columns):
            lists = [column.tolist() for column in columns]
            if len(lists) == 1 and pd.api.types.is_integer_dtype(columns[0].dtype):
                # the same bytes as orjson, without its over-allocated output buffers, which
                # measured several times slower when a million keys are kept at once
                return [b"[%d]" % key for key in lists[0]]
            return [orjson.dumps(row) for row in zip(*lists, strict=True)]
        tuples: Sequence[tuple[Any, ...]] = list(
            zip(*(column.tolist() for column in columns), strict=True)
        )
    else:
        tuples = keys
    encoded: list[bytes | None] = []
    for key in tuples:
        # Fast paths: parts that are exactly int or str are canonical already.
        if type(key) is tuple:
            if len(key) == 1 and type(key[0]) is int:
                encoded.append(b"[%d]" % key[0])
                continue
            if all(type(part) is int or type(part) is str for part in key):
                encoded.append(orjson.dumps(key))
                continue
        if not isinstance(key, tuple):
            raise FeatureStoreError(
                f"entity key {key!r} is a {type(key).__name__}; give each key as a tuple, "
                "e.g. (42,) or (42, 'eu')"
            )
        encoded.append(encode_key(key))
    return encoded


def _plain_key_column(column: pd.Series[Any]) -> bool:
    """Whether ``tolist()`` of the column already yields canonical parts (ints or strs, no
    missing values)."""
    if pd.api.types.is_integer_dtype(column.dtype) and not column.hasnans:
        return not isinstance(column.dtype, pd.api.extensions.ExtensionDtype)
    return pd.api.types.infer_dtype(column, skipna=False) == "string"


# -- event timestamps ------------------------------------------------------------------------------


def event_nanoseconds(timestamps: Any, count: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Time-zone-aware event timestamps as int64 ns since the epoch (UTC)."""
    series = timestamps if isinstance(timestamps, pd.Series) else pd.Series(timestamps)
    if len(series) != count:
        raise FeatureStoreError(f"{len(series)} event timestamps were given for {count} keys")
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            series = pd.to_datetime(series)
        except (TypeError, ValueError) as error:
            raise TimestampError(
                "event_timestamp", f"holds values that are not timestamps ({error})"
            ) from None
    if getattr(series.dt, "tz", None) is None:
        raise TimestampError(
            "event_timestamp", "has no time zone; online stores take time-zone-aware timestamps"
        )
    if series.isna().any():
        raise TimestampError("event_timestamp", "has missing values (NaT)")
    utc = series.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    return utc.to_numpy().view(np.int64)


# -- rows ------------------------------------------------------------------------------------------


def layout_id(features: Sequence[str]) -> str:
    """The 12-hex-digit name of an ordered list of feature names."""
    return hashlib.sha256(orjson.dumps(list(features))).hexdigest()[:12]


@dataclass(frozen=True)
class EncodedRows:
    """Rows ready to store: their layout, and one ``LAYOUT FLAG VALUES`` payload per row."""

    layout: str
    features: tuple[str, ...]
    payloads: list[bytes]


def encode_rows(values: Mapping[str, Any], count: int) -> EncodedRows:
    """Encode ``count`` rows given as feature columns (arrays, Series or lists)."""
    features = tuple(values)
    if not features:
        raise FeatureStoreError("no feature values were given to write")
    columns: list[list[Any]] = []
    tagged = False
    for name in features:
        column, has_tags = _column_values(name, values[name])
        if len(column) != count:
            raise FeatureStoreError(
                f"feature '{name}' has {len(column)} values for {count} entity keys"
            )
        columns.append(column)
        tagged = tagged or has_tags
    layout = layout_id(features)
    head = (layout + ("t" if tagged else "p")).encode()
    try:
        payloads = [head + orjson.dumps(row) for row in zip(*columns, strict=True)]
    except orjson.JSONEncodeError as error:
        raise FeatureStoreError(f"a feature value cannot be stored: {error}") from None
    return EncodedRows(layout, features, payloads)


def _column_values(name: str, column: Any) -> tuple[list[Any], bool]:
    """One feature column as JSON-ready Python values, and whether any value is tagged."""
    if isinstance(column, pd.Series | pd.Index):
        dtype = column.dtype
        if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
            return _timestamp_values(pd.Series(column)), True
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return _numpy_values(column.to_numpy())
        column = column.to_numpy(dtype=object)  # NA, NaT and NaN all become None below
    if isinstance(column, np.ndarray) and column.dtype.kind in "biuf":
        return _numpy_values(column)
    if isinstance(column, np.ndarray) and column.dtype.kind == "M":
        return _timestamp_values(pd.Series(column)), True
    converted: list[Any] = []
    tagged = False
    for value in column:
        encoded = _encode_value(name, value)
        tagged = tagged or isinstance(encoded, dict)
        converted.append(encoded)
    return converted, tagged


def _numpy_values(array: np.ndarray[Any, Any]) -> tuple[list[Any], bool]:
    values: list[Any] = array.tolist()  # NaN becomes JSON null when encoded
    if array.dtype.kind == "f":
        infinite = np.flatnonzero(np.isinf(array))
        for index in infinite.tolist():
            values[index] = {"f": "inf" if array[index] > 0 else "-inf"}
        return values, bool(len(infinite))
    return values, False


def _timestamp_values(series: pd.Series[Any]) -> list[Any]:
    aware = getattr(series.dt, "tz", None) is not None
    if aware:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    tag = "t" if aware else "n"
    nanos = series.astype("datetime64[ns]").to_numpy().view(np.int64).tolist()
    return [None if value == NO_TIME else {tag: value} for value in nanos]


def _encode_value(name: str, value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isinf(number):
            return {"f": "inf" if number > 0 else "-inf"}
        return None if math.isnan(number) else number
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime | np.datetime64):
        stamp = pd.Timestamp(value)
        if pd.isna(stamp):
            return None
        if stamp.tzinfo is None:
            return {"n": stamp.as_unit("ns").value}
        return {"t": stamp.tz_convert("UTC").as_unit("ns").value}
    raise FeatureStoreError(
        f"feature '{name}' holds a {type(value).__name__} ({value!r}); online stores keep "
        "float, int, bool, str, timestamps and None"
    )


def _decode_value(value: dict[str, Any]) -> Any:
    if "t" in value:
        return pd.Timestamp(value["t"], unit="ns", tz="UTC")
    if "n" in value:
        return pd.Timestamp(value["n"], unit="ns")
    return float(value["f"])


class LayoutCache:
    """Positions of requested features in each layout; layouts never change (they are named by
    their content), so entries stay valid for the life of the store."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], tuple[str, ...]] = {}
        self._positions: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}

    def missing(self, view: str, layouts: set[str]) -> list[str]:
        return [layout for layout in layouts if (view, layout) not in self._names]

    def add(self, view: str, layout: str, features: Sequence[str]) -> None:
        self._names[(view, layout)] = tuple(features)

    def positions(self, view: str, layout: str, features: tuple[str, ...]) -> list[int]:
        """Index of each feature in the layout's values; -1 (a None appended to every decoded
        row) for a feature the layout lacks."""
        cache_key = (view, layout, features)
        found = self._positions.get(cache_key)
        if found is None:
            names = self._names.get((view, layout))
            if names is None:
                raise FeatureStoreError(
                    f"online rows of view '{view}' use layout {layout}, which is not recorded "
                    "in the store (was the store partly deleted?); re-materialize the view"
                )
            index = {name: position for position, name in enumerate(names)}
            found = [index.get(feature, -1) for feature in features]
            self._positions[cache_key] = found
        return found


def assemble(
    view: str,
    features: Sequence[str],
    count: int,
    stored: Mapping[int, tuple[int, bytes]],
    layouts: LayoutCache,
) -> OnlineRows:
    """:class:`OnlineRows` from the stored ``(event ns, payload)`` of each found key index."""
    wanted = tuple(features)
    rows: list[Any] = [(None,) * len(wanted)] * count
    pickers: dict[bytes, Callable[[list[Any]], Any]] = {}  # per layout and flag, for this call
    for index, (_, payload) in stored.items():
        head = payload[:13]
        pick = pickers.get(head)
        if pick is None:
            pick = pickers[head] = _picker(
                layouts.positions(view, head[:12].decode(), wanted), tagged=head[12:] == b"t"
            )
        rows[index] = pick(orjson.loads(memoryview(payload)[13:]))
    found = np.zeros(count, dtype=np.bool_)
    event_ns = np.full(count, NO_TIME, dtype=np.int64)
    if stored:
        found[list(stored)] = True
        event_ns[list(stored)] = [nanos for nanos, _ in stored.values()]
    if count:
        transposed = zip(*rows, strict=True)
        columns = {name: list(values) for name, values in zip(wanted, transposed, strict=True)}
    else:
        columns = {name: [] for name in wanted}
    return OnlineRows(features=wanted, columns=columns, event_ns=event_ns, found=found)


def _picker(positions: list[int], *, tagged: bool) -> Callable[[list[Any]], Any]:
    """A function from a decoded row to the requested values, in order (None for -1)."""
    if not positions:
        return lambda values: ()
    getter = itemgetter(*positions)
    single = len(positions) == 1

    def pick(values: list[Any]) -> Any:
        if tagged:
            values = [_decode_value(v) if isinstance(v, dict) else v for v in values]
        values.append(None)
        picked = getter(values)
        return (picked,) if single else picked

    return pick
