"""EndpointRuntime: where its model calls run (the loop's thread only when cheap and safe)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Workspace
from keel.serving._runtime import EndpointRuntime

ROW = {"age": 0.3, "income": 1.5}


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


@pytest.fixture
def registered(workspace: Workspace) -> Workspace:
    frame = pd.DataFrame({"age": [0.1, -1.2, 0.7, 1.5], "income": [1, 0, 2, 1.0]})
    model = LogisticRegression().fit(frame, [1, 0, 1, 0])
    workspace.registry.register("churn", model, input_example=frame)
    return workspace


def _inline_batches(workspace: Workspace, endpoint: str, requests: int) -> int:
    runtime = EndpointRuntime(
        workspace.deployments.get(endpoint), workspace.registry, inline_below_ms=50
    )
    runtime.load()

    async def main() -> int:
        for _ in range(requests):
            [result] = await runtime.predict([ROW])
            assert result.probabilities is not None
        stats = runtime.batcher_stats
        assert stats is not None
        await runtime.aclose()
        return stats.inline_batches

    return asyncio.run(main())


def test_cheap_calls_of_an_endpoint_run_on_the_loop_thread(registered: Workspace) -> None:
    registered.deployments.create_endpoint("churn", "models:/churn/1", max_batch_wait_ms=0)

    assert _inline_batches(registered, "churn", 10) == 9  # the first call's cost is unknown


def test_an_endpoint_with_a_timeout_never_runs_its_model_on_the_loop_thread(
    registered: Workspace,
) -> None:
    # the timeout could not cut short a call that holds the event loop
    registered.deployments.create_endpoint("churn", "models:/churn/1", timeout_ms=1000)

    assert _inline_batches(registered, "churn", 10) == 0
