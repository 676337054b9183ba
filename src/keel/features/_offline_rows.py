"""One feature view's rows as DuckDB reads them, shared by both join engines of ``_offline``.

A Parquet source without a transformation is scanned straight from the file; any other view goes
through ``read_view`` and is registered as an Arrow table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from keel.errors import FeatureDefinitionError, FeatureStoreError
from keel.features._definitions import FeatureView
from keel.features._sources import SnapshotResolver, read_view, source_path
from keel.features._time import NaiveRule, to_utc

# join-key kinds that can be compared, with the type both sides are cast to
KEY_TYPES = {
    "integer": (pa.int64(), "BIGINT"),
    "float": (pa.float64(), "DOUBLE"),
    "string": (pa.string(), "VARCHAR"),
    "boolean": (pa.bool_(), "BOOLEAN"),
}


def quote(name: str) -> str:
    """``name`` as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Rows:
    """One view's rows as DuckDB reads them: a Parquet scan or a registered Arrow table."""

    view: FeatureView
    features: list[str]
    source: str  # the FROM clause
    params: dict[str, str]
    schema: Any  # pa.Schema of the source
    table: Any = None  # the Arrow table when the rows are in memory

    def key_kind(self, key: str) -> str:
        return kind(self.schema.field(key).type)

    def scan(self, connection: duckdb.DuckDBPyConnection, select: str) -> Any:
        return connection.sql(f"SELECT {select} FROM {self.source}", params=self.params or None)


def open_rows(
    connection: duckdb.DuckDBPyConnection,
    number: int,
    view: FeatureView,
    features: list[str],
    naive: NaiveRule,
    resolve_snapshot: SnapshotResolver | None,
) -> Rows:
    """The rows of ``view`` for ``features``, with their columns and time zone checked
    (``number`` names the Arrow table registered for a view that is not scanned from Parquet)."""
    path = source_path(view, resolve_snapshot)
    columns = [*view.join_keys, view.timestamp_column, *features]
    if path is None or view.transformation is not None:
        frame = read_view(view, naive=naive, resolve_snapshot=resolve_snapshot)
        try:
            table = pa.Table.from_pandas(frame[columns], preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError) as error:
            raise FeatureDefinitionError(
                f"feature view '{view.name}': its rows cannot be joined ({error}); give each "
                "column one type"
            ) from error
        connection.register(f"__keel_view_{number}", table)
        return Rows(view, features, f"__keel_view_{number}", {}, table.schema, table)
    rows = Rows(view, features, "read_parquet($path)", {"path": path}, None)
    try:
        rows.schema = rows.scan(connection, "*").limit(0).to_arrow_table().schema
    except duckdb.Error as error:
        raise FeatureStoreError(
            f"feature view '{view.name}': cannot read {path}: {error}"
        ) from error
    missing = [c for c in columns if c not in rows.schema.names]
    if missing:
        raise FeatureDefinitionError(
            f"feature view '{view.name}': the source {path} has no column(s) "
            f"{', '.join(missing)} (columns: {', '.join(rows.schema.names)})"
        )
    # an empty column of the source's type, so the one time-zone rule refuses what it refuses
    stamps = pa.schema([rows.schema.field(view.timestamp_column)]).empty_table().to_pandas()
    to_utc(stamps[view.timestamp_column], view.timestamp_column, naive)
    return rows


def kind(arrow_type: Any) -> str:
    """How a join key of ``arrow_type`` compares: a key of ``KEY_TYPES``, "null", or the type."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_null(arrow_type):
        return "null"
    return str(arrow_type)
