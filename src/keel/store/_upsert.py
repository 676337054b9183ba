"""Dialect-aware INSERT ... ON CONFLICT, the one place keel needs backend-specific SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def _insert(connection: Connection, table: sa.Table) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignore(connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, skipping any whose primary key already exists."""
    if rows:
        connection.execute(_insert(connection, table).on_conflict_do_nothing(), list(rows))


def upsert(
    connection: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    update: Sequence[str],
    only_if: Any = None,
) -> None:
    """Insert rows or, on a primary-key conflict, overwrite the ``update`` columns.

    ``only_if`` is a callable ``(table, excluded) -> condition`` restricting which conflicting
    rows are overwritten (e.g. keep the newer of two values)."""
    if not rows:
        return
    statement = _insert(connection, table)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[column.name for column in table.primary_key.columns],
        set_={name: excluded[name] for name in update},
        where=only_if(table, excluded) if only_if is not None else None,
    )
    connection.execute(statement, list(rows))
