"""The quickstart (``keel._demo.run_demo``) on each metadata backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel import Settings, Workspace
from keel._demo import EXPERIMENT, METRIC, MODEL_NAME, REVIEWER, DemoResult, run_demo
from keel._demo_data import FEATURES
from keel.registry import APPROVED, CANDIDATE

sqlite_only = pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)


def _workspace(metadata_url: str, tmp_path: Path, **overrides: object) -> Workspace:
    return Workspace(
        Settings.load(
            tmp_path / "project",
            metadata_url=metadata_url,
            artifacts_url=str(tmp_path / "artifacts"),
            actor="tester",
            tracking={"capture_packages": False},
            **overrides,
        )
    )


@pytest.fixture
def demo_workspace(metadata_url: str, tmp_path: Path) -> Iterator[Workspace]:
    with _workspace(metadata_url, tmp_path) as ws:
        yield ws


def _quiet(_: str) -> None:
    pass


def _best(result: DemoResult) -> int:
    # the demo's rule: the higher score wins; on a tie the earlier (simpler) version
    return max(result.versions, key=lambda version: result.scores[version])


def test_run_demo_approves_the_better_version_by_roc_auc(demo_workspace: Workspace) -> None:
    result = run_demo(demo_workspace, _quiet)

    registry = demo_workspace.registry
    assert result.versions == (1, 2)
    assert result.metric == METRIC == "roc_auc"
    assert result.champion == _best(result)
    assert {result.champion, result.challenger} == {1, 2}
    assert registry.resolve(f"models:/{MODEL_NAME}@champion").version == result.champion
    assert registry.resolve(f"models:/{MODEL_NAME}@challenger").version == result.challenger
    assert registry.get_version(MODEL_NAME, result.champion).status == APPROVED
    assert registry.get_version(MODEL_NAME, result.challenger).status == CANDIDATE
    for version in result.versions:
        recorded = registry.get_version(MODEL_NAME, version).metrics[METRIC]
        assert recorded == pytest.approx(result.scores[version])
        assert 0.9 < recorded <= 1.0


def test_run_demo_twice_adds_versions_3_and_4_and_moves_the_aliases(
    demo_workspace: Workspace,
) -> None:
    first = run_demo(demo_workspace, _quiet)
    second = run_demo(demo_workspace, _quiet)

    registry = demo_workspace.registry
    assert second.versions == (3, 4)
    assert [v.version for v in registry.list_versions(MODEL_NAME)] == [1, 2, 3, 4]
    assert registry.resolve(f"models:/{MODEL_NAME}@champion").version == second.champion
    assert registry.resolve(f"models:/{MODEL_NAME}@challenger").version == second.challenger
    assert second.champion == _best(second)
    assert set(first.run_ids).isdisjoint(second.run_ids)


def test_run_demo_audits_the_approval_with_both_scores(demo_workspace: Workspace) -> None:
    result = run_demo(demo_workspace, _quiet)

    entries = demo_workspace.registry.audit_log(MODEL_NAME)
    assert [(e.entity_key, e.action) for e in entries] == [
        (f"{MODEL_NAME}/1", "register"),
        (f"{MODEL_NAME}/2", "register"),
        (f"{MODEL_NAME}/{result.champion}", "transition"),
        (f"{MODEL_NAME}@champion", "move"),
        (f"{MODEL_NAME}@challenger", "move"),
    ]
    approval = entries[2]
    assert (approval.from_value, approval.to_value) == (CANDIDATE, APPROVED)
    assert approval.actor == "tester"
    assert approval.reason is not None
    for version, score in result.scores.items():
        assert f"version {version} {score:.4f}" in approval.reason


def test_run_demo_tracks_params_curves_inputs_and_models(demo_workspace: Workspace) -> None:
    result = run_demo(demo_workspace, _quiet)

    runs = demo_workspace.runs
    assert [r.id for r in runs.search(experiment=EXPERIMENT)] == list(reversed(result.run_ids))
    for run_id in result.run_ids:
        run = runs.get(run_id)
        assert run.status == "finished"
        assert set(run.metrics) >= {"accuracy", "roc_auc", "f1", "log_loss"}
        assert set(run.inputs) == {"measurements", "train", "validation"}
        assert run.inputs["train"]["num_rows"] + run.inputs["validation"]["num_rows"] == 569
        assert run.artifacts["model"]["flavor"] == "sklearn"
        assert run.seeds["seed"] == 42
        assert "model" in run.params
    boosting = runs.metric_history(result.run_ids[1], "iteration_log_loss")
    assert [p.step for p in boosting] == list(range(1, len(boosting) + 1))
    assert len(boosting) > 10
    learning = runs.metric_history(result.run_ids[0], "learning_curve_log_loss")
    assert [p.step for p in learning] == sorted(p.step for p in learning)
    assert len(learning) >= 3


@sqlite_only
def test_run_demo_champion_loads_and_predicts(demo_workspace: Workspace) -> None:
    run_demo(demo_workspace, _quiet)

    online = demo_workspace.features.get_online_features(
        [{"patient_id": p} for p in (1, 2, 3, 4, 5)], list(FEATURES)
    )
    model = demo_workspace.registry.load(f"models:/{MODEL_NAME}@champion")
    assert len(model.predict(online.frame)) == 5


def test_run_demo_under_the_four_eyes_rule_approves_as_the_reviewer(
    metadata_url: str, tmp_path: Path
) -> None:
    with _workspace(
        metadata_url, tmp_path, registry={"require_distinct_approver": True}
    ) as workspace:
        result = run_demo(workspace, _quiet)

        approval = [e for e in workspace.registry.audit_log(MODEL_NAME) if e.action == "transition"]
    assert result.approver == REVIEWER
    assert [e.actor for e in approval] == [REVIEWER]


@sqlite_only
def test_run_demo_reports_each_step_and_where_things_are(
    demo_workspace: Workspace, tmp_path: Path
) -> None:
    steps: list[str] = []

    result = run_demo(demo_workspace, steps.append)

    assert steps[0].startswith("validated 571 delivered rows against their schema: 2 broken")
    assert steps[1].startswith("snapshot breast-cancer-measurements ")
    assert any(step.startswith("feature view tumor v1: point-in-time join") for step in steps)
    assert sum(step.startswith("run ") for step in steps) == 2
    assert sum(step.startswith("registered models:/breast-cancer/") for step in steps) == 2
    assert any(step.startswith(f"approved version {result.champion}") for step in steps)
    assert steps[-4:-2] == [
        f"alias champion -> version {result.champion}",
        f"alias challenger -> version {result.challenger}",
    ]
    assert steps[-2].startswith("materialized tumor into the online store")
    assert steps[-1].startswith("scored from online features with models:/breast-cancer@champion")
    assert result.quarantined == 2
    assert result.features == tuple(FEATURES)
    assert result.database.endswith("keel.db")
    assert result.artifacts == str(tmp_path / "artifacts")
    assert 0 < result.wall_time_seconds < 60


@sqlite_only
def test_run_demo_leaves_a_skew_free_feature_store_and_model_lineage(
    demo_workspace: Workspace,
) -> None:
    result = run_demo(demo_workspace, _quiet)

    report = demo_workspace.features.skew()
    assert report.lookup_rows == 3
    assert report.ok
    assert {f.feature for f in report.features} >= {"tumor:mean_radius", "radius_ratio"}
    champion = demo_workspace.registry.get_version(MODEL_NAME, result.champion)
    assert {"feature": "tumor:mean_radius", "view": "tumor", "view_version": 1} in (
        champion.features
    )
    assert champion.inputs["measurements"] == result.snapshot
