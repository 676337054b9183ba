"""What a run records about itself: code version, environment, seeds and resources."""

from __future__ import annotations

import platform
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from keel import Workspace
from keel.tracking._capture import ResourceMeter, apply_seed, code_version, environment

MakeWorkspace = Callable[..., Workspace]


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=30
    )
    return completed.stdout.strip()


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Git ignores the user's and the system's configuration and never looks above tmp_path."""
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


@pytest.fixture
def repo(tmp_path: Path, git_env: None) -> Path:
    """A git repository with one commit: train.py and src/model.py."""
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q")
    git(root, "config", "user.email", "tester@example.com")
    git(root, "config", "user.name", "Tester")
    git(root, "config", "commit.gpgsign", "false")
    (root / "train.py").write_text("print('train')\n", encoding="utf-8")
    (root / "src" / "model.py").write_text("MODEL = 1\n", encoding="utf-8")
    (root / ".gitignore").write_text("*.log\n", encoding="utf-8")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


# -- code version ----------------------------------------------------------------------------------


def test_clean_checkout_records_the_commit_and_no_dirty_hash(repo: Path) -> None:
    version = code_version(repo)

    assert (version.commit, version.dirty_hash) == (git(repo, "rev-parse", "HEAD"), None)


def test_modifying_a_tracked_file_gives_a_dirty_hash(repo: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n", encoding="utf-8")

    version = code_version(repo)

    assert version.commit == git(repo, "rev-parse", "HEAD")
    assert version.dirty_hash is not None
    assert len(version.dirty_hash) == 64


def test_the_same_modification_gives_the_same_dirty_hash(repo: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n", encoding="utf-8")

    assert code_version(repo).dirty_hash == code_version(repo).dirty_hash


def test_a_different_modification_gives_a_different_dirty_hash(repo: Path) -> None:
    (repo / "train.py").write_text("print('one')\n", encoding="utf-8")
    first = code_version(repo).dirty_hash
    (repo / "train.py").write_text("print('two')\n", encoding="utf-8")

    assert code_version(repo).dirty_hash != first


def test_a_staged_change_counts_as_dirty(repo: Path) -> None:
    (repo / "train.py").write_text("print('staged')\n", encoding="utf-8")
    git(repo, "add", "train.py")

    assert code_version(repo).dirty_hash is not None


def test_an_untracked_file_makes_a_clean_tree_dirty(repo: Path) -> None:
    (repo / "features.py").write_text("X = 1\n", encoding="utf-8")

    assert code_version(repo).dirty_hash is not None


def test_an_untracked_file_changes_the_dirty_hash_of_a_modified_tree(repo: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n", encoding="utf-8")
    modified_only = code_version(repo).dirty_hash
    (repo / "features.py").write_text("X = 1\n", encoding="utf-8")

    assert code_version(repo).dirty_hash != modified_only


def test_the_content_of_an_untracked_file_changes_the_dirty_hash(repo: Path) -> None:
    (repo / "features.py").write_text("X = 1\n", encoding="utf-8")
    first = code_version(repo).dirty_hash
    (repo / "features.py").write_text("X = 2\n", encoding="utf-8")

    assert code_version(repo).dirty_hash != first


def test_an_ignored_file_does_not_make_the_tree_dirty(repo: Path) -> None:
    (repo / "train.log").write_text("epoch 1\n", encoding="utf-8")

    assert code_version(repo).dirty_hash is None


def test_a_subdirectory_of_a_clean_checkout_records_the_commit(repo: Path) -> None:
    version = code_version(repo / "src")

    assert (version.commit, version.dirty_hash) == (git(repo, "rev-parse", "HEAD"), None)


def test_a_tracked_change_elsewhere_in_the_repository_makes_a_subdirectory_dirty(
    repo: Path,
) -> None:
    (repo / "train.py").write_text("print('changed')\n", encoding="utf-8")

    assert code_version(repo / "src").dirty_hash == code_version(repo).dirty_hash


def test_the_content_of_an_untracked_file_counts_when_reading_from_a_subdirectory(
    repo: Path,
) -> None:
    (repo / "src" / "features.py").write_text("X = 1\n", encoding="utf-8")
    first = code_version(repo / "src").dirty_hash
    (repo / "src" / "features.py").write_text("X = 2\n", encoding="utf-8")

    assert code_version(repo / "src").dirty_hash != first


def test_an_untracked_file_elsewhere_in_the_repository_makes_a_subdirectory_dirty(
    repo: Path,
) -> None:
    (repo / "features.py").write_text("X = 1\n", encoding="utf-8")

    assert code_version(repo / "src").dirty_hash is not None


def test_outside_git_commit_and_dirty_hash_are_none(tmp_path: Path, git_env: None) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "train.py").write_text("print('train')\n", encoding="utf-8")

    version = code_version(plain)

    assert (version.commit, version.dirty_hash) == (None, None)


def test_run_records_the_code_version_of_its_code_dir(workspace: Workspace, repo: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n", encoding="utf-8")
    with workspace.start_run(code_dir=repo) as run:
        pass

    record = workspace.runs.get(run.id)

    assert record.code_commit == git(repo, "rev-parse", "HEAD")
    assert record.code_dirty_hash == code_version(repo).dirty_hash


def test_run_outside_git_records_no_code_version(
    workspace: Workspace, tmp_path: Path, git_env: None
) -> None:
    with workspace.start_run(code_dir=tmp_path) as run:
        pass

    record = workspace.runs.get(run.id)

    assert (record.code_commit, record.code_dirty_hash) == (None, None)


# -- environment -----------------------------------------------------------------------------------


def test_environment_lists_installed_packages_with_their_versions() -> None:
    packages = environment(capture_packages=True)["packages"]

    assert packages["numpy"] == np.__version__
    assert "pandas" in packages


def test_environment_without_package_capture_has_no_packages() -> None:
    captured = environment(capture_packages=False)

    assert captured["packages"] == {}
    assert captured["python"] == platform.python_version()
    assert captured["executable"] == sys.executable


def test_run_records_its_environment(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        pass

    captured = workspace.runs.get(run.id).environment

    assert captured["python"] == platform.python_version()
    assert captured["packages"]["numpy"] == np.__version__


def test_run_records_no_packages_when_capture_is_off(tracking_workspace: MakeWorkspace) -> None:
    workspace = tracking_workspace(capture_packages=False)
    with workspace.start_run() as run:
        pass

    assert workspace.runs.get(run.id).environment["packages"] == {}


# -- seeds -----------------------------------------------------------------------------------------


def draws() -> tuple[list[float], list[float]]:
    return [float(x) for x in np.random.rand(5)], [random.random() for _ in range(5)]


def test_the_same_seed_gives_the_same_random_sequences() -> None:
    apply_seed(42)
    first = draws()
    apply_seed(42)

    assert draws() == first


def test_different_seeds_give_different_random_sequences() -> None:
    apply_seed(1)
    first = draws()
    apply_seed(2)

    assert draws() != first


def test_apply_seed_records_the_seed_it_set() -> None:
    seeds = apply_seed(42)

    assert (seeds["seed"], seeds["python_random"], seeds["numpy_global"]) == (42, 42, 42)


def test_without_a_seed_one_is_drawn_recorded_and_replays_the_sequences() -> None:
    seeds = apply_seed(None)
    first = draws()
    apply_seed(seeds["seed"])

    assert isinstance(seeds["seed"], int)
    assert draws() == first


def test_run_started_with_a_seed_records_it(workspace: Workspace) -> None:
    with workspace.start_run(seed=7) as run:
        pass

    assert run.seed == 7
    assert workspace.runs.get(run.id).seeds["seed"] == 7


def test_run_started_with_a_seed_seeds_the_global_generators(workspace: Workspace) -> None:
    with workspace.start_run(seed=7):
        inside = draws()
    apply_seed(7)

    assert draws() == inside


def test_run_started_without_a_seed_records_the_one_it_drew(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        inside = draws()
    apply_seed(workspace.runs.get(run.id).seeds["seed"])

    assert draws() == inside


# -- resources -------------------------------------------------------------------------------------


def test_resource_meter_counts_cpu_time_of_waited_for_child_processes() -> None:
    meter = ResourceMeter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass",
        ],
        check=True,
        timeout=60,
    )

    assert meter.read()["cpu_seconds"] > 0.2


def test_resource_meter_measures_wall_time_from_its_creation() -> None:
    meter = ResourceMeter()
    subprocess.run([sys.executable, "-c", "import time; time.sleep(0.2)"], check=True, timeout=60)

    assert 0.2 <= meter.read()["wall_seconds"] < 30
