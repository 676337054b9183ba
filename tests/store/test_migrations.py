"""The schema is created and changed only by migrations, safely and without losing data."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from keel.errors import MetadataStoreError, MetadataStoreUnavailable, MigrationError
from keel.store import MetadataStore, metadata
from keel.store import _tables as t


def test_a_new_database_is_migrated_to_head(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    assert store.current_revision() is None
    store.migrate()
    assert store.current_revision() == MetadataStore.head_revision()
    store.close()


def test_migrations_produce_exactly_the_declared_tables(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    store.migrate()
    with store.read() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    store.close()
    assert differences == []


def test_upgrade_from_the_first_migration_keeps_existing_runs(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    store.migrate("0001")
    assert store.current_revision() == "0001"
    with store.write() as connection:
        connection.execute(t.experiments.insert().values(id=1, name="old", created_at=1.0))
        connection.execute(
            t.runs.insert().values(
                id="r" * 32,
                experiment_id=1,
                name="before-upgrade",
                status="finished",
                actor="a",
                started_at=1.0,
            )
        )
        connection.execute(
            t.run_metrics.insert().values(
                run_id="r" * 32, key="m", value=0.5, step=0, timestamp=1.0
            )
        )
    store.migrate()
    assert store.current_revision() == MetadataStore.head_revision()
    with store.read() as connection:
        name = connection.execute(sa.select(t.runs.c.name)).scalar_one()
        value = connection.execute(sa.select(t.run_metrics.c.value)).scalar_one()
        registry_tables = connection.execute(
            sa.select(sa.func.count()).select_from(t.model_versions)
        )
        assert registry_tables.scalar_one() == 0
    store.close()
    assert (name, value) == ("before-upgrade", 0.5)


def test_migrating_twice_is_a_no_op(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    store.migrate()
    store.migrate()
    assert store.current_revision() == MetadataStore.head_revision()
    store.close()


def _migrate_in_child(url: str, start: float) -> None:
    while time.time() < start:
        time.sleep(0.001)
    MetadataStore(url).migrate()


def test_concurrent_first_use_from_several_processes_migrates_once(metadata_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = time.time() + 1.5
    children = [
        context.Process(target=_migrate_in_child, args=(metadata_url, start)) for _ in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0, 0]
    store = MetadataStore(metadata_url)
    assert store.current_revision() == MetadataStore.head_revision()
    store.close()


def test_a_new_sqlite_file_being_written_by_another_process_is_waited_for(
    tmp_path: Path,
) -> None:
    # SQLite refuses the switch to WAL at once, busy timeout or not, while another connection
    # holds a write lock on a file still in rollback-journal mode.
    path = tmp_path / "keel.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other_tool (x)")
    release = threading.Timer(0.5, writer.execute, args=("COMMIT",))
    release.start()
    store = MetadataStore(f"sqlite:///{path}")
    try:
        store.migrate()
        assert store.current_revision() == MetadataStore.head_revision()
    finally:
        release.join()
        writer.close()
        store.close()


def test_an_unreachable_server_is_reported_as_unavailable() -> None:
    store = MetadataStore("postgresql://postgres@127.0.0.1:1/keel")
    with pytest.raises(MetadataStoreUnavailable, match=r"127\.0\.0\.1:1/keel.*metadata_url"):
        store.migrate()


def test_an_unknown_target_revision_is_a_migration_error(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    with pytest.raises(MigrationError, match="cannot migrate"):
        store.migrate("9999")
    store.close()


def test_a_database_from_a_newer_keel_is_refused(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    store.migrate()
    with store.write() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(MigrationError, match="revision 9999.*newer keel"):
        store.migrate()
    store.close()


def test_the_audit_log_refuses_updates_and_deletes(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    store.migrate()
    with store.write() as connection:
        connection.execute(
            t.audit_log.insert().values(
                at=1.0, actor="a", entity="alias", entity_key="m@x", action="move"
            )
        )
    with pytest.raises(MetadataStoreError, match="append-only"), store.write() as connection:
        connection.execute(t.audit_log.update().values(actor="someone else"))
    with pytest.raises(MetadataStoreError, match="append-only"), store.write() as connection:
        connection.execute(t.audit_log.delete())
    with store.read() as connection:
        assert connection.execute(sa.select(t.audit_log.c.actor)).scalars().all() == ["a"]
    store.close()
