"""Fixtures of the monitoring tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keel.store import MetadataStore


@pytest.fixture
def metadata_store(metadata_url: str) -> Iterator[MetadataStore]:
    """A migrated, empty metadata store on each backend in turn."""
    store = MetadataStore(metadata_url)
    store.migrate()
    yield store
    store.close()
