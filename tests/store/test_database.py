"""Transactions, SQLite settings and error translation of the metadata store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from keel.errors import MetadataStoreError
from keel.store import MetadataStore
from keel.store import _tables as t


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(metadata_url)
    store.migrate()
    yield store
    store.close()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'x.db'}")
    with store.read() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_sqlite_creates_the_directory_of_its_file(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'deep' / 'er' / 'x.db'}")
    store.migrate()
    store.close()
    assert (tmp_path / "deep" / "er" / "x.db").exists()


def test_a_failed_write_block_leaves_nothing_behind(store: MetadataStore) -> None:
    def crash_midway() -> None:
        with store.write() as connection:
            connection.execute(t.experiments.insert().values(name="half", created_at=1.0))
            raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        crash_midway()
    with store.read() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(t.experiments)).scalar() == 0
        )


def test_a_constraint_violation_becomes_a_metadata_store_error(store: MetadataStore) -> None:
    with pytest.raises(MetadataStoreError, match="metadata database"), store.write() as connection:
        connection.execute(
            t.runs.insert().values(
                id="x",
                experiment_id=12345,
                name="orphan",
                status="running",
                actor="a",
                started_at=1.0,
            )
        )


def test_concurrent_writers_queue_instead_of_failing(store: MetadataStore) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for index in range(25):
                with store.write() as connection:
                    count = connection.execute(
                        sa.select(sa.func.count()).select_from(t.experiments)
                    ).scalar_one()
                    connection.execute(
                        t.experiments.insert().values(
                            name=f"w{worker}-{index}-{count}", created_at=1.0
                        )
                    )
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.read() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(t.experiments)).scalar()
            == 100
        )


def test_the_display_url_hides_the_password() -> None:
    store = MetadataStore("postgresql://keel:s3cret@db.example:5432/keel")
    assert "s3cret" not in store.display_url
    store.close()


def test_errors_show_the_url_as_the_user_wrote_it() -> None:
    store = MetadataStore("postgresql://postgres@127.0.0.1:1/keel")
    assert store.display_url == "postgresql://postgres@127.0.0.1:1/keel"
    store.close()
