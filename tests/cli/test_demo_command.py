"""``keel demo``: the quickstart from the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from keel import Settings
from keel.cli import app

from .conftest import Keel


def test_demo_twice_adds_versions_3_and_4_and_moves_champion(keel: Keel) -> None:
    keel.ok("demo")
    keel.ok("demo")

    versions = keel.json("models", "show", "breast-cancer")
    assert [v["version"] for v in versions] == [1, 2, 3, 4]
    last_two = {v["version"]: v["metrics"]["roc_auc"] for v in versions[2:]}
    best = max(sorted(last_two), key=lambda version: last_two[version])
    champion = keel.json("models", "show", "models:/breast-cancer@champion")
    challenger = keel.json("models", "show", "models:/breast-cancer@challenger")
    assert champion["version"] == best
    assert champion["status"] == "approved"
    assert challenger["version"] == ({3, 4} - {best}).pop()


def test_demo_in_an_empty_directory_writes_keel_toml_and_prints_next_steps(
    runner: CliRunner, tmp_path: Path
) -> None:
    project = tmp_path / "fresh"

    result = runner.invoke(app, ["--dir", str(project), "demo"])

    assert result.exit_code == 0, result.stderr
    assert Settings.load(project).metadata_url == "sqlite:///.keel/keel.db"
    output = result.stdout
    assert f"wrote {project / 'keel.toml'}" in output
    assert "registered models:/breast-cancer/2" in output
    assert "alias champion -> version" in output
    for command in (
        "runs list --experiment keel-demo",
        "models show breast-cancer",
        "models card models:/breast-cancer@champion",
    ):
        assert f"keel --dir {project} {command}" in output
    assert str(project / ".keel" / "keel.db") in output
    assert str(project / ".keel" / "artifacts") in output
