"""One endpoint's window of live traffic, read from the prediction log with DuckDB.

    window = read_window(reader, "churn", start, end, {"age": "DOUBLE", "plan": "VARCHAR"})
    window.inputs          # pyarrow Table: one column per requested input, of its type
    window.invalid         # {"age": 3}: values present but not of the column's type
    window.rows

Only what a monitor needs is read: the window's date partitions (``date`` is a hive partition
column, so other days' files are never opened), the primary's answers (never a shadow's), and
each requested field pulled out of the ``inputs`` JSON and cast in the same query. A window is
``[start, end)`` in epoch seconds. A field missing from a record, or JSON ``null``, is a null;
a value that is present but cannot be cast to the column's type (text in a numeric column) is
a null too, and is counted in ``invalid`` (a data-quality finding, not a crash).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from keel.serving._predlog import LogReader

#: what a field is read as: a number, text, or a boolean (JSON true/false)
SqlType = Literal["DOUBLE", "VARCHAR", "BOOLEAN"]


@dataclass(frozen=True)
class LogWindow:
    """The inputs and outputs of the primary's answers in ``[start, end)``."""

    endpoint: str
    start: float
    end: float
    rows: int
    inputs: pa.Table
    predictions: pa.Table
    invalid: dict[str, int]


def read_window(
    reader: LogReader,
    endpoint: str,
    start: float,
    end: float,
    columns: Mapping[str, SqlType],
    classes: Sequence[Any] = (),
) -> LogWindow:
    """The window ``[start, end)`` of ``endpoint``: ``columns`` from the requests' inputs
    (read as their SQL type), and the predictions (``model_version``, ``prediction_number``,
    ``prediction_label``, and ``p0``, ``p1``... the probability of each of ``classes``, read
    from a probabilities object by label or from an array by position)."""
    # Each JSON document is parsed once: json_extract_string with a list of paths returns the
    # list of values (one call per field would parse the document once per field: 30 fields
    # made a 1 M-row window 30 parses a row, minutes instead of seconds).
    names = list(columns)
    fields = [_json_path(name) for name in names]
    labels = [_json_path(str(label)) for label in classes]
    positions = [f"'$[{i}]'" for i in range(len(classes))]
    inner = ", ".join(
        [
            f"json_extract_string(inputs, [{', '.join(fields)}]) AS v" if fields else "NULL AS v",
            f"json_extract_string(probabilities, [{', '.join(labels)}]) AS pl"
            if labels
            else "NULL AS pl",
            f"json_extract_string(probabilities, [{', '.join(positions)}]) AS pp"
            if positions
            else "NULL AS pp",
            "model_version, prediction_number, prediction_label, time, prediction_id",
        ]
    )
    selected = []
    for position, sql_type in enumerate(columns.values()):
        raw, cast = f"v[{position + 1}]", f"TRY_CAST(v[{position + 1}] AS {sql_type})"
        selected.append(f"{cast} AS c{position}")
        # present but not of the column's type: counted, read as null
        selected.append(f"({raw} IS NOT NULL AND {cast} IS NULL) AS bad{position}")
    # Servers key probabilities by str(label); older entries may hold a list by class order.
    scores = [
        f"coalesce(TRY_CAST(pl[{i + 1}] AS DOUBLE), TRY_CAST(pp[{i + 1}] AS DOUBLE)) AS p{i}"
        for i in range(len(classes))
    ]
    where = (
        "endpoint = ? AND NOT coalesce(shadow, false) AND time >= ? AND time < ? "
        "AND date BETWEEN ? AND ?"
    )
    bounds = [endpoint, _timestamp(start), _timestamp(end), _date(start), _date(end)]
    outputs = ["model_version", "prediction_number", "prediction_label", *scores]
    body = reader.query(
        f"SELECT {', '.join([*selected, *outputs])} "
        f"FROM (SELECT {inner} FROM predictions WHERE {where}) ORDER BY time, prediction_id",
        bounds,
    )
    counts = {
        name: int(pc.sum(body.column(f"bad{i}")).as_py() or 0) for i, name in enumerate(names)
    }
    inputs = pa.table({name: body.column(f"c{i}") for i, name in enumerate(names)})
    predictions = body.select(
        ["model_version", "prediction_number", "prediction_label"]
        + [f"p{i}" for i in range(len(classes))]
    )
    return LogWindow(endpoint, start, end, body.num_rows, inputs, predictions, counts)


def log_time_range(reader: LogReader, endpoint: str) -> tuple[float, float] | None:
    """The times of the first and last primary answers of ``endpoint`` (epoch seconds), None
    when the log holds none."""
    found = reader.query(
        "SELECT epoch_ns(min(time)) AS first, epoch_ns(max(time)) AS last FROM predictions "
        "WHERE endpoint = ? AND NOT coalesce(shadow, false)",
        [endpoint],
    )
    first, last = found.column("first")[0].as_py(), found.column("last")[0].as_py()
    if first is None or last is None:
        return None
    return first / 1e9, last / 1e9


def sql_type(dtype: str) -> SqlType:
    """What a column of keel type ``dtype`` is read from the log as."""
    if dtype in ("int", "float"):
        return "DOUBLE"
    if dtype == "bool":
        return "BOOLEAN"
    return "VARCHAR"


def _json_path(field: str) -> str:
    # A quoted member name, so dots, spaces and brackets in a field name are not path syntax.
    escaped = field.replace("\\", "\\\\").replace('"', '\\"').replace("'", "''")
    return f"'$.\"{escaped}\"'"


def _timestamp(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _date(seconds: float) -> dt.date:
    return _timestamp(seconds).date()
