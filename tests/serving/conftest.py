"""Shared by the serving tests: the async tests run on asyncio (anyio's pytest plugin), and a
project on SQLite for tests whose subject is not the metadata backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keel import Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sqlite_settings(tmp_path: Path, **serving: Any) -> Settings:
    """A project under ``tmp_path`` on SQLite, with ``serving`` settings."""
    project = tmp_path / "project"
    project.mkdir()
    return Settings.load(
        project,
        metadata_url=f"sqlite:///{tmp_path / 'meta' / 'keel.db'}",
        artifacts_url=str(tmp_path / "artifacts"),
        actor="tester",
        serving=serving,
    )
