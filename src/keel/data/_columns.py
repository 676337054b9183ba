"""Reading one column of a pandas DataFrame or an Arrow Table into arrays the rules can test.

    raw = raw_column(frame, position)
    column = read(raw, field, len(frame))   # a Column, or why the storage cannot hold the type

Every column is read once, as a whole: NumPy arrays for numbers, booleans and timestamps (int64
since the epoch, UTC), Arrow string arrays for text, and a dictionary plus codes for categories.
An object column holding values of mixed types is the one slower path: it is classified with
``Series.map(type)`` and the values of the wrong type become ``dtype`` failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from keel.data._schema import Field

Mask = NDArray[np.bool_]

# What Arrow raises when data cannot be converted or computed on as asked.
ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)
# Nanoseconds per unit of the time units a time column is kept in.
NS_PER = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_NUMBERS: set[type] = {int, float} | {
    t for t in set(np.sctypeDict.values()) if issubclass(t, np.integer | np.floating)
}
_FLOATS = {t for t in _NUMBERS if issubclass(t, float | np.floating)}
_PY_TYPES: dict[str, set[type]] = {
    "int": _NUMBERS,
    "bool": {bool, np.bool_},
    "string": {str, np.str_},
    "timestamp": {datetime, pd.Timestamp, np.datetime64},
}
_PY_TYPES["float"] = _PY_TYPES["int"]
_PY_TYPES["category"] = _PY_TYPES["string"]
# The storage kinds (Column.kind) that can hold each keel dtype.
_ACCEPTS = {
    "int": {"int", "float"},
    "float": {"int", "float"},
    "bool": {"bool"},
    "string": {"text"},
    "category": {"text"},
    "timestamp": {"time"},
}


@dataclass
class Column:
    """One column in a form the rules can read.

    ``kind`` is the storage: ``int``/``float``/``bool`` (``values`` holds numbers), ``time``
    (``values`` holds int64 in ``unit`` since the epoch, UTC), ``text`` (``text`` holds an Arrow
    string array, or ``dictionary`` + ``codes`` with -1 for null) or ``null`` (no values).
    """

    kind: str
    size: int
    null: Mask | None = None
    wrong: Mask | None = None
    values: NDArray[Any] | None = None
    unit: str = "ns"
    text: Any = None
    dictionary: Any = None
    codes: NDArray[np.integer[Any]] | None = None


def raw_column(data: pd.DataFrame | pa.Table, position: int) -> pd.Series[Any] | pa.ChunkedArray:
    """The column at ``position`` as its container holds it (by position: names may repeat)."""
    if isinstance(data, pd.DataFrame):
        return data.iloc[:, position]
    return data.column(position)


def take(raw: pd.Series[Any] | pa.ChunkedArray, idx: NDArray[np.intp]) -> list[Any]:
    """The values at positions ``idx``, as Python objects (the examples of a report)."""
    if isinstance(raw, pd.Series):
        return list(raw.iloc[idx].tolist())
    return [raw[int(i)].as_py() for i in idx]  # a handful of examples, whatever the type


def read(raw: pd.Series[Any] | pa.ChunkedArray, field: Field, size: int) -> Column | str:
    """``raw`` as a :class:`Column`, or why its storage cannot hold ``field``'s type."""
    # pandas cannot tell NaN from a missing value: NaN is one, unless the field accepts NaN.
    nan_is_null = not field.allow_nan
    if isinstance(raw, pd.Series):
        dtype = raw.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iufbM":
            column = _from_numpy(raw.to_numpy(), size, nan_is_null)
        elif isinstance(dtype, pd.DatetimeTZDtype):
            column = _from_numpy(raw.dt.tz_convert(None).to_numpy(), size, nan_is_null)
        elif isinstance(dtype, pd.CategoricalDtype):
            categories = dtype.categories
            if len(categories) and pd.api.types.infer_dtype(categories) != "string":
                return f"holds non-string categories ({categories.dtype}), not {field.dtype}"
            codes = raw.cat.codes.to_numpy()
            null = codes < 0
            column = Column(
                "text",
                size,
                null=null if null.any() else None,
                dictionary=pa.array(np.asarray(categories, dtype=object), type=pa.string()),
                codes=codes,
            )
        else:
            try:
                arrow = pa.array(raw, from_pandas=True)
            except ARROW_ERRORS:
                if dtype != np.dtype(object):
                    return f"holds {dtype}, not {field.dtype} values"
                return _from_mixed(raw, field, size)
            column = _from_arrow(arrow, size)
    else:
        column = _from_arrow(raw, size)
    if (
        isinstance(column, Column)
        and column.kind != "null"
        and column.kind not in _ACCEPTS[field.dtype]
    ):
        return f"holds {_storage(raw)}, not {field.dtype} values"
    return column


def _storage(raw: pd.Series[Any] | pa.ChunkedArray) -> str:
    return str(raw.dtype) if isinstance(raw, pd.Series) else str(raw.type)


def _from_numpy(values: NDArray[Any], size: int, nan_is_null: bool) -> Column | str:
    kind = values.dtype.kind
    if kind == "b":
        return Column("bool", size, values=values)
    if kind in "iu":
        return Column("int", size, values=values)
    if kind == "f":
        if not nan_is_null:
            return Column("float", size, values=values)
        null = np.isnan(values)
        return Column("float", size, null=null if null.any() else None, values=values)
    unit, _ = np.datetime_data(values.dtype)
    null = np.isnat(values)
    if unit not in NS_PER:
        values, unit = values.astype("datetime64[ns]"), "ns"
    return Column(
        "time", size, null=null if null.any() else None, values=values.view("int64"), unit=unit
    )


def _from_arrow(arrow: pa.Array | pa.ChunkedArray, size: int) -> Column | str:
    if isinstance(arrow, pa.ChunkedArray):
        if pa.types.is_dictionary(arrow.type) and arrow.num_chunks != 1:
            arrow = arrow.cast(arrow.type.value_type)
        arrow = arrow.combine_chunks() if arrow.num_chunks != 1 else arrow.chunk(0)
    kind_of = arrow.type
    null = arrow.is_null().to_numpy(zero_copy_only=False) if arrow.null_count else None
    if pa.types.is_null(kind_of):
        return Column("null", size, null=np.ones(size, dtype=bool))
    if pa.types.is_dictionary(kind_of):
        if not is_text(kind_of.value_type):
            return f"holds non-string categories ({kind_of.value_type})"
        codes = pc.fill_null(arrow.indices.cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
        return Column("text", size, null=null, dictionary=arrow.dictionary, codes=codes)
    if is_text(kind_of):
        if pa.types.is_string_view(kind_of):  # few compute kernels take views
            arrow = arrow.cast(pa.large_string())
        return Column("text", size, null=null, text=arrow)
    if pa.types.is_timestamp(kind_of):
        arrow, unit = arrow.cast(pa.int64()), kind_of.unit
        return Column("time", size, null=null, values=_filled(arrow, 0), unit=unit)
    for kind, test in (
        ("bool", pa.types.is_boolean),
        ("int", pa.types.is_integer),
        ("float", pa.types.is_floating),
    ):
        if test(kind_of):
            fill = False if kind == "bool" else 0
            values = _filled(arrow, fill)
            if kind == "float" and values.dtype != np.float64:
                values = values.astype(np.float64)
            return Column(kind, size, null=null, values=values)
    return f"holds {kind_of}, which no keel dtype reads"


def is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _filled(arrow: pa.Array, fill: object) -> NDArray[Any]:
    if arrow.null_count:
        arrow = pc.fill_null(arrow, fill)
    return np.asarray(arrow.to_numpy(zero_copy_only=False))


def _from_mixed(raw: pd.Series[Any], field: Field, size: int) -> Column:
    """An object column of mixed types: values of the field's Python types are read, the others
    are ``dtype`` failures."""
    types = raw.map(type)
    null = raw.isna().to_numpy()
    if field.allow_nan:  # NaN is a value of this field, not a missing one
        null &= ~types.isin(_FLOATS).to_numpy()
    ok = types.isin(_PY_TYPES[field.dtype]).to_numpy() & ~null
    wrong = ~ok & ~null
    clean = raw.where(ok, None)
    base = Column("null", size, null=null if null.any() else None, wrong=wrong)
    if field.dtype in ("int", "float"):
        base.kind, base.values = "float", pd.to_numeric(clean, errors="coerce").to_numpy(np.float64)
    elif field.dtype == "bool":
        base.kind, base.values = "bool", clean.to_numpy(dtype=bool, na_value=False)
    elif field.dtype == "timestamp":
        stamps = pd.to_datetime(clean, utc=True).dt.tz_convert(None).to_numpy()
        base.kind, base.unit = "time", np.datetime_data(stamps.dtype)[0]
        base.values = stamps.view("int64")
    else:
        base.kind, base.text = "text", pa.array(clean, from_pandas=True, type=pa.large_string())
    return base
