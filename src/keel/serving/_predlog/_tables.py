"""Decoded log entries as Arrow tables, and where each one's Parquet part lives.

Compaction and queries over not-yet-compacted segments both go through :func:`to_table`, so
fresh entries and Parquet files always have the same columns and types.

``predictions`` columns::

    prediction_id      VARCHAR    UUIDv7 text
    time               TIMESTAMPTZ (ns, UTC)
    endpoint           VARCHAR    \\  hive partition columns: taken from the directory names
    date               DATE       /  endpoint=<url-quoted name>/date=YYYY-MM-DD (UTC)
    model              VARCHAR
    model_version      BIGINT
    revision           BIGINT     deployment revision that answered
    latency_ms         DOUBLE
    arm, fallback      VARCHAR    traffic-split arm; why a fallback answered (NULL: it did not)
    cache_hit, shadow  BOOLEAN
    inputs             VARCHAR    JSON object: field -> value
    prediction         VARCHAR    JSON value as the model returned it
    probabilities      VARCHAR    JSON object or array, NULL for non-classifiers
    prediction_number  DOUBLE     the prediction when it is a number (or a boolean, as 0/1)
    prediction_label   VARCHAR    the prediction when it is a string, integer or boolean

``feedback`` columns: ``prediction_id``, ``time``, ``date`` (partition), ``endpoint``, ``name``,
``value`` (JSON text), ``value_number`` and ``value_label`` (promoted like the prediction).
JSON columns read with DuckDB's JSON functions: ``inputs->>'$.age'``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import orjson
import pyarrow as pa

from keel.serving._predlog._entry import FEEDBACK, PREDICTIONS

_TIME = pa.timestamp("ns", tz="UTC")
_NS_PER_DAY = 86_400 * 10**9
_EPOCH = dt.date(1970, 1, 1)

PREDICTION_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("time", _TIME),
        ("model", pa.string()),
        ("model_version", pa.int64()),
        ("revision", pa.int64()),
        ("latency_ms", pa.float64()),
        ("arm", pa.string()),
        ("cache_hit", pa.bool_()),
        ("fallback", pa.string()),
        ("shadow", pa.bool_()),
        ("inputs", pa.string()),
        ("prediction", pa.string()),
        ("probabilities", pa.string()),
        ("prediction_number", pa.float64()),
        ("prediction_label", pa.string()),
    ]
)
FEEDBACK_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("time", _TIME),
        ("endpoint", pa.string()),
        ("name", pa.string()),
        ("value", pa.string()),
        ("value_number", pa.float64()),
        ("value_label", pa.string()),
    ]
)
SCHEMAS = {PREDICTIONS: PREDICTION_SCHEMA, FEEDBACK: FEEDBACK_SCHEMA}
PARTITION_COLUMNS = {
    PREDICTIONS: [("endpoint", pa.string()), ("date", pa.date32())],
    FEEDBACK: [("date", pa.date32())],
}


def full_schema(kind: str) -> pa.Schema:
    """The columns a query sees: the id and time, the partition columns, then the rest."""
    fields = list(SCHEMAS[kind])
    partitions = [pa.field(name, type_) for name, type_ in PARTITION_COLUMNS[kind]]
    named = {field.name for field in partitions}
    return pa.schema(fields[:2] + partitions + [f for f in fields[2:] if f.name not in named])


class Partitioner:
    """Where each record's Parquet part lives, relative to the log directory:
    ``predictions/endpoint=<url-quoted name>/date=<UTC day>`` or ``feedback/date=<UTC day>``.
    None for a record without a string id or a 64-bit integer time (it is not an entry)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._days: dict[int, str] = {}

    def __call__(self, record: dict[str, Any]) -> str | None:
        stamp = _int(record.get("time"))
        if stamp is None or not isinstance(record.get("prediction_id"), str):
            return None
        number = stamp // _NS_PER_DAY
        day = self._days.get(number)
        if day is None:
            day = self._days[number] = (_EPOCH + dt.timedelta(days=number)).isoformat()
        if self.kind == PREDICTIONS:
            endpoint = quote(_text(record.get("endpoint")) or "", safe="")
            return f"{PREDICTIONS}/endpoint={endpoint}/date={day}"
        return f"{FEEDBACK}/date={day}"


def partition(kind: str, records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Valid records grouped by the directory of their Parquet part (see :class:`Partitioner`)."""
    where = Partitioner(kind)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        directory = where(record)
        if directory is not None:
            groups[directory].append(record)
    return dict(groups)


def to_table(kind: str, records: list[dict[str, Any]], *, partitions: bool = False) -> pa.Table:
    """``records`` (valid ones, see :class:`Partitioner`) as a table of the kind's file schema;
    with ``partitions``, the partition columns too (as a query sees them)."""
    schema = full_schema(kind) if partitions else SCHEMAS[kind]
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    convert = _PREDICTION if kind == PREDICTIONS else _FEEDBACK
    for record in records:
        for name, values in columns.items():
            values.append(convert[name](record))
    return pa.table({name: pa.array(columns[name], schema.field(name).type) for name in columns})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def label_text(value: Any) -> str | None:
    """A prediction or label as the log's ``*_label`` columns hold it (None: not a label)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else None


def _date(record: dict[str, Any]) -> dt.date:
    return _EPOCH + dt.timedelta(days=record["time"] // _NS_PER_DAY)


_Column = Callable[[dict[str, Any]], Any]
_PREDICTION: dict[str, _Column] = {
    "prediction_id": lambda r: r["prediction_id"],
    "time": lambda r: r["time"],
    "endpoint": lambda r: _text(r.get("endpoint")) or "",
    "date": _date,
    "model": lambda r: _text(r.get("model")),
    "model_version": lambda r: _int(r.get("model_version")),
    "revision": lambda r: _int(r.get("revision")),
    "latency_ms": lambda r: _number(r.get("latency_ms")),
    "arm": lambda r: _text(r.get("arm")),
    "cache_hit": lambda r: _flag(r.get("cache_hit")),
    "fallback": lambda r: _text(r.get("fallback")),
    "shadow": lambda r: bool(r.get("shadow")),
    "inputs": lambda r: _json(r.get("inputs")),
    "prediction": lambda r: _json(r.get("prediction")),
    "probabilities": lambda r: _json(r.get("probabilities")),
    "prediction_number": lambda r: _number(r.get("prediction")),
    "prediction_label": lambda r: label_text(r.get("prediction")),
}
_FEEDBACK: dict[str, _Column] = {
    "prediction_id": lambda r: r["prediction_id"],
    "time": lambda r: r["time"],
    "date": _date,
    "endpoint": lambda r: _text(r.get("endpoint")),
    "name": lambda r: _text(r.get("name")),
    "value": lambda r: _json(r.get("value")),
    "value_number": lambda r: _number(r.get("value")),
    "value_label": lambda r: label_text(r.get("value")),
}
