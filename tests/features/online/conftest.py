"""Online-store fixtures: every contract test runs on SQLite and on the real Redis server
(``redis_url`` in tests/conftest.py: its own key prefix, removed afterwards; skipped with the
reason when Redis does not answer, unless KEEL_REQUIRE_SERVICES=1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keel.features.online import OnlineStore, open_online_store

STORES = ["sqlite", "redis"]


@pytest.fixture(params=STORES)
def online_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    """An empty online store, on SQLite and on Redis."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'online.db'}"
    else:
        url = request.getfixturevalue("redis_url")
    with open_online_store(url) as store:
        yield store


@pytest.fixture
def reopen(online_store: OnlineStore) -> Iterator[Callable[[], OnlineStore]]:
    """Opens another store object on the same data, with nothing cached (as a new process)."""
    opened: list[OnlineStore] = []

    def _open() -> OnlineStore:
        # test URLs carry no password, so the store's display URL is its full URL
        store = open_online_store(online_store.url)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()
