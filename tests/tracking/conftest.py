"""Fixtures shared by the tracking tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from keel import Settings, Workspace
from keel.config import TrackingSettings

MakeWorkspace = Callable[..., Workspace]


@pytest.fixture
def tracking_workspace(settings: Settings) -> Iterator[MakeWorkspace]:
    """Open a workspace on the test's database with other ``[tracking]`` settings:
    ``tracking_workspace(metric_batch_size=100, metric_flush_seconds=3600)``."""
    opened: list[Workspace] = []

    def make(**tracking: Any) -> Workspace:
        changed = settings.model_copy(update={"tracking": TrackingSettings(**tracking)})
        workspace = Workspace(changed)
        opened.append(workspace)
        return workspace

    yield make
    for workspace in opened:
        workspace.close()
