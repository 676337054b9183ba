"""Several processes registering and moving aliases at once lose and duplicate nothing."""

from __future__ import annotations

import itertools
import multiprocessing
import time

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel import Settings, Workspace
from keel.errors import AliasConflict

WORKERS = 4
PER_WORKER = 5


def _settings(metadata_url: str, artifacts: str, project: str) -> Settings:
    return Settings.load(project, metadata_url=metadata_url, artifacts_url=artifacts, actor="w")


def _register_many(metadata_url: str, artifacts: str, project: str, start: float) -> None:
    from sklearn.datasets import load_iris

    frame, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=300).fit(frame, target)
    with Workspace(_settings(metadata_url, artifacts, project)) as workspace:
        while time.time() < start:
            time.sleep(0.001)
        for _ in range(PER_WORKER):
            workspace.registry.register("race", model, input_example=frame)


def _move_alias(
    metadata_url: str, artifacts: str, project: str, start: float, target: int, result: object
) -> None:
    with Workspace(_settings(metadata_url, artifacts, project)) as workspace:
        while time.time() < start:
            time.sleep(0.001)
        try:
            workspace.registry.set_alias("race", "champion", target, expected=1)
            result.put(("moved", target))  # type: ignore[attr-defined]
        except AliasConflict as conflict:
            result.put(("conflict", str(conflict)))  # type: ignore[attr-defined]


def _spawn(target: object, args_list: list[tuple[object, ...]]) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=args) for args in args_list]  # type: ignore[arg-type]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * len(processes)


@pytest.mark.slow
def test_concurrent_registrations_get_gapless_unique_versions(
    settings: Settings, metadata_url: str
) -> None:
    with Workspace(settings):
        pass  # migrate before the race so the workers race on registration only
    start = time.time() + 2.0
    args = (metadata_url, settings.artifacts_url, str(settings.project_dir), start)
    _spawn(_register_many, [args] * WORKERS)
    with Workspace(settings) as workspace:
        versions = [v.version for v in workspace.registry.list_versions("race")]
        registrations = [e for e in workspace.registry.audit_log("race") if e.action == "register"]
    assert versions == list(range(1, WORKERS * PER_WORKER + 1))
    assert len(registrations) == WORKERS * PER_WORKER


@pytest.mark.slow
def test_concurrent_alias_moves_with_the_same_expectation_let_exactly_one_win(
    workspace: Workspace,
    settings: Settings,
    metadata_url: str,
    iris: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
) -> None:
    for _ in range(3):
        workspace.registry.register("race", iris_model, input_example=iris[0])
    workspace.registry.set_alias("race", "champion", 1)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start = time.time() + 2.0
    base = (metadata_url, settings.artifacts_url, str(settings.project_dir), start)
    processes = [
        context.Process(target=_move_alias, args=(*base, target, results)) for target in (2, 3)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    moved = [o for o in outcomes if o[0] == "moved"]
    conflicts = [o for o in outcomes if o[0] == "conflict"]
    assert len(moved) == 1
    assert len(conflicts) == 1
    assert "someone else moved it" in conflicts[0][1]
    winner = moved[0][1]
    assert workspace.registry.resolve("models:/race@champion").version == winner
    moves = [e for e in workspace.registry.audit_log("race") if e.entity == "alias"]
    assert [(m.from_value, m.to_value) for m in moves] == [(None, "1"), ("1", str(winner))]


def test_successive_alias_moves_form_an_unbroken_audit_chain(
    workspace: Workspace,
    iris: tuple[pd.DataFrame, pd.Series],
    iris_model: LogisticRegression,
) -> None:
    """Without an expectation the last writer wins, and each move records where it came from."""
    for _ in range(3):
        workspace.registry.register("race", iris_model, input_example=iris[0])
    for target in (1, 2, 3, 2):
        workspace.registry.set_alias("race", "champion", target)
    moves = [e for e in workspace.registry.audit_log("race") if e.entity == "alias"]
    for before, after in itertools.pairwise(moves):
        assert after.from_value == before.to_value
    assert workspace.registry.resolve("models:/race@champion").version == 2
