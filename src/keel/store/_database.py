"""The metadata database: one engine, transactions, migrations and error translation."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from keel.errors import MetadataStoreError, MetadataStoreUnavailable, MigrationError

_MIGRATIONS = str(Path(__file__).with_name("migrations"))
# How long a SQLite writer waits for another process's write to finish before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _engine_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    config.attributes["connection"] = connection
    return config


class MetadataStore:
    """Runs, registry and audit records in SQLite (embedded) or PostgreSQL.

        store = MetadataStore("sqlite:////tmp/keel.db")
        store.migrate()                      # bring the schema to head; safe to call often
        with store.write() as conn:          # one transaction; serialised between writers
            conn.execute(...)

    SQLite runs in WAL mode with a busy timeout, and write transactions start with
    ``BEGIN IMMEDIATE`` so concurrent writers from several processes queue instead of failing
    on a lock upgrade. Driver errors leave this class as :class:`MetadataStoreError`.
    """

    def __init__(self, url: str) -> None:
        self._url = _engine_url(url)
        self.display_url = make_url(url).render_as_string(hide_password=True)
        self.dialect = self._url.get_backend_name()
        self._engine = self._create_engine()

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            database = self._url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                self._url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            event.listen(engine, "connect", _configure_sqlite_connection)
            event.listen(engine, "begin", _begin_sqlite_transaction)
            return engine
        return sa.create_engine(self._url, pool_pre_ping=True, connect_args={"connect_timeout": 5})

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a read transaction (a consistent snapshot on both backends)."""
        with self._translated(), self._engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction, committed when the block ends and rolled back on error."""
        engine = self._engine.execution_options(keel_write=True)
        with self._translated(), engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except exc.OperationalError as error:
            if _is_connection_failure(error):
                raise MetadataStoreUnavailable(self.display_url, _reason(error)) from error
            raise MetadataStoreError(
                f"metadata database {self.display_url} failed: {_reason(error)}"
            ) from error
        except (exc.InterfaceError, exc.DBAPIError) as error:
            raise MetadataStoreError(
                f"metadata database {self.display_url} failed: {_reason(error)}"
            ) from error

    # -- schema --------------------------------------------------------------------------------

    def current_revision(self) -> str | None:
        with self.read() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head_revision() -> str:
        return _head_revision()

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (default: the newest). Cheap when already there;
        safe when several processes do it at once (they serialise on a lock)."""
        target = self.head_revision() if revision == "head" else revision
        try:
            current = self.current_revision()
            if current == target:
                return
            if current is not None and current not in _known_revisions():
                raise MigrationError(
                    self.display_url,
                    f"its schema is at revision {current}, which this version of keel does not "
                    "know; it was written by a newer keel, so upgrade keel-ml",
                )
            # One transaction around every step, opened here: Alembic commits after each
            # migration on SQLite (it treats its DDL as non-transactional), which would let a
            # second process waiting on the write lock start from a half-migrated schema.
            with (
                self._translated(),
                self._engine.execution_options(keel_write=True).connect() as connection,
                connection.begin(),
            ):
                command.upgrade(_alembic_config(connection), revision)
        except (MetadataStoreUnavailable, MigrationError):
            raise
        except MetadataStoreError as error:
            raise MigrationError(self.display_url, str(error)) from error
        except Exception as error:  # alembic raises its own CommandError and friends
            raise MigrationError(self.display_url, f"{type(error).__name__}: {error}") from error

    def close(self) -> None:
        self._engine.dispose()


# The migration scripts ship with the package and cannot change while it runs; parsing them
# once per process keeps opening a workspace (which checks the schema revision) cheap.
@functools.cache
def _head_revision() -> str:
    head = ScriptDirectory(_MIGRATIONS).get_current_head()
    assert head is not None, "keel ships at least one migration"
    return head


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in ScriptDirectory(_MIGRATIONS).walk_revisions())


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to the "begin" listener below (pysqlite's own is broken for this).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _enable_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _enable_wal(cursor: Any) -> None:
    # Switching a fresh file to WAL needs an exclusive lock, and SQLite answers "database is
    # locked" at once, without its busy handler, while another process holds a write lock on the
    # file (several processes opening a new workspace together). Wait for that writer the way the
    # busy timeout would have.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _begin_sqlite_transaction(connection: Connection) -> None:
    if connection.get_execution_options().get("keel_write"):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def _is_connection_failure(error: exc.OperationalError) -> bool:
    if error.connection_invalidated:
        return True
    text = str(error.orig).lower()
    return any(
        marker in text
        for marker in (
            "connection refused",
            "could not connect",
            "connection failed",
            "unable to open database",
            "does not exist",
            "timeout expired",
            "server closed the connection",
            "could not translate host name",
            "name or service not known",
        )
    )


def _reason(error: exc.DBAPIError) -> str:
    text = str(error.orig) if error.orig is not None else str(error)
    return " ".join(text.split())[:300]


def now() -> float:
    """The clock every metadata timestamp comes from (epoch seconds)."""
    return time.time()
