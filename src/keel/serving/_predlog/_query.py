"""SQL over a prediction log: the Parquet parts and the entries still in segments, as one.

    table = query("SELECT endpoint, count(*) AS n FROM predictions GROUP BY endpoint", log_dir)
    record = prediction_with_feedback(prediction_id, log_dir)

Two DuckDB views, ``predictions`` and ``feedback`` (columns in :mod:`._tables`), read the
Parquet parts with hive partitioning (so ``WHERE date = ...`` or ``endpoint = ...`` skips whole
directories) plus every entry of every segment, open or closed, that is not yet in a Parquet
part: an answered prediction can be queried at once. A segment being compacted at that very
moment may briefly show an entry from both its segment and its new part (the part appeared
between the two reads); the next query sees it once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from keel.errors import LogQueryError
from keel.serving._predlog._compact import part_path
from keel.serving._predlog._entry import FEEDBACK, KINDS, PREDICTIONS, prediction_id_date
from keel.serving._predlog._segments import SegmentReader, list_segments
from keel.serving._predlog._tables import PARTITION_COLUMNS, Partitioner, full_schema, to_table

_JSON_COLUMNS = {PREDICTIONS: ("inputs", "prediction", "probabilities"), FEEDBACK: ("value",)}


class LogReader:
    """Queries over one prediction log directory; each call reads the log as it is then.

    reader = LogReader(settings.project_path(settings.serving.prediction_log_dir))
    reader.query("SELECT * FROM predictions WHERE endpoint = ? LIMIT 5", ["churn"])
    reader.prediction_with_feedback("0190a5c2-...")
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def query(self, sql: str, parameters: Sequence[Any] | None = None) -> pa.Table:
        """The result of ``sql`` (DuckDB dialect; ``?`` placeholders take ``parameters``).
        Raises :class:`~keel.errors.LogQueryError` when DuckDB rejects it."""
        with self._connect() as connection:
            return _run(connection, sql, parameters)

    def prediction_with_feedback(self, prediction_id: str) -> dict[str, Any] | None:
        """The prediction with this id, the shadow versions' answers to the same row and the
        feedback attached to it (oldest first), JSON columns decoded: ``{"prediction": {...},
        "shadows": [{...}, ...], "feedback": [{...}, ...]}``; None when the log has no such
        prediction. (A shadow's answer carries the id of the primary's, with ``shadow`` true.)"""
        # Ids are UUIDv7, so the id tells which date partitions can hold the entry; a day of
        # slack either side covers a clock read just before or after midnight.
        day = prediction_id_date(prediction_id)
        near, after, bounds = "", "", []
        if day is not None:
            near, after = " AND date BETWEEN ? AND ?", " AND date >= ?"
            bounds = [day - dt.timedelta(days=1), day + dt.timedelta(days=1)]
        with self._connect() as connection:
            found = _run(
                connection,
                f"SELECT * FROM predictions WHERE prediction_id = ?{near} ORDER BY shadow, time",
                [prediction_id, *bounds],
            )
            rows = found.to_pylist()
            if not rows or rows[0]["shadow"]:
                return None
            feedback = _run(
                connection,
                f"SELECT * FROM feedback WHERE prediction_id = ?{after} ORDER BY time",
                [prediction_id, *bounds[:1]],
            )
        return {
            "prediction": _decoded(PREDICTIONS, rows[0]),
            "shadows": [_decoded(PREDICTIONS, row) for row in rows[1:] if row["shadow"]],
            "feedback": [_decoded(FEEDBACK, row) for row in feedback.to_pylist()],
        }

    def _connect(self) -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect()
        try:
            for kind in KINDS:
                self._create_view(connection, kind)
        except BaseException:
            connection.close()
            raise
        return connection

    def _create_view(self, connection: duckdb.DuckDBPyConnection, kind: str) -> None:
        schema = full_schema(kind)
        columns = ", ".join(f'"{name}"' for name in schema.names)
        connection.register(f"_fresh_{kind}", self._fresh(kind))
        fresh = f"SELECT {columns} FROM _fresh_{kind}"
        root = self.directory / kind
        if not root.is_dir() or next(root.rglob("*.parquet"), None) is None:
            connection.execute(f"CREATE VIEW {kind} AS {fresh}")
            return
        pattern = str(root / "**" / "*.parquet").replace("'", "''")
        types = ", ".join(f"'{name}': '{_SQL_TYPES[t]}'" for name, t in PARTITION_COLUMNS[kind])
        parquet = (
            f"SELECT {columns} FROM read_parquet('{pattern}', hive_partitioning = true, "
            f"union_by_name = true, hive_types = {{{types}}})"
        )
        connection.execute(f"CREATE VIEW {kind} AS {parquet} UNION ALL {fresh}")

    def _fresh(self, kind: str) -> pa.Table:
        """Entries of ``kind`` still in segments and not yet in their Parquet part."""
        records: list[dict[str, Any]] = []
        where = Partitioner(kind)
        for path, name in list_segments(self.directory, kind):
            try:
                rows = list(SegmentReader(path))
            except FileNotFoundError:  # compacted since it was listed: its parts have it
                continue
            compacted: dict[str, bool] = {}
            for row in rows:
                partition = where(row)
                if partition is None:
                    continue
                if partition not in compacted:
                    compacted[partition] = part_path(self.directory, partition, name).exists()
                if not compacted[partition]:
                    records.append(row)
        return to_table(kind, records, partitions=True)


_SQL_TYPES = {pa.string(): "VARCHAR", pa.date32(): "DATE"}


def _run(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: Sequence[Any] | None
) -> pa.Table:
    try:
        relation = connection.sql(sql, params=list(parameters) if parameters else None)
        return pa.table({}) if relation is None else relation.to_arrow_table()
    except duckdb.Error as error:
        raise LogQueryError(str(error)) from None


def _decoded(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    for column in _JSON_COLUMNS[kind]:
        if isinstance(row.get(column), str):
            row[column] = orjson.loads(row[column])
    return row


def query(sql: str, log_dir: str | Path, parameters: Sequence[Any] | None = None) -> pa.Table:
    """``sql`` over the log in ``log_dir`` (see :class:`LogReader`)."""
    return LogReader(log_dir).query(sql, parameters)


def prediction_with_feedback(prediction_id: str, log_dir: str | Path) -> dict[str, Any] | None:
    """One prediction and its feedback from the log in ``log_dir`` (see :class:`LogReader`)."""
    return LogReader(log_dir).prediction_with_feedback(prediction_id)
