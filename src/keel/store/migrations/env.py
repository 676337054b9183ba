"""Alembic environment: keel always hands Alembic an open connection (see keel.store)."""

from __future__ import annotations

from alembic import context

from keel.store._tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Two processes opening a fresh database at once: the second waits here, then finds
        # the schema already at head and does nothing.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7411530190)")
    context.run_migrations()
