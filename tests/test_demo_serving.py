"""The serving half of the quickstart (``keel._demo_serving``) and its server process."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from keel import Settings, Workspace
from keel._demo import run_demo
from keel._demo_server import SERVER_LOG, DemoServer, settings_environment
from keel._demo_serving import NATIVE_PATH, serve_demo
from keel.errors import ServingError
from keel.serving._predlog import LogReader


def _quiet(_: str) -> None:
    pass


def test_serve_demo_serves_from_the_workspace_settings_not_keel_toml(
    metadata_url: str, tmp_path: Path
) -> None:
    # No keel.toml: the server process only knows these settings from what the demo hands it.
    settings = Settings.load(
        tmp_path / "project",
        metadata_url=metadata_url,
        artifacts_url=str(tmp_path / "artifacts"),
        actor="tester",
        tracking={"capture_packages": False},
        serving={"prediction_log_dir": "elsewhere/log"},
    )
    steps: list[str] = []
    with Workspace(settings) as workspace:
        result = run_demo(workspace, _quiet)
        with serve_demo(workspace, steps.append, keep_running=True) as served:
            server = psutil.Process(served.server.pid)
            extra = httpx.post(
                served.server.url + NATIVE_PATH, json={"inputs": [served.example] * 2}
            )
            assert extra.status_code == 200, extra.text

    assert served.revision.policy.primary.version == result.champion
    assert [call.api for call in served.calls] == ["native"] + ["native batch"] * 3 + ["V2"] * 2
    assert [row["prediction_id"] for row in served.rows] == [c.prediction_id for c in served.calls]
    assert [row["feedback"] is not None for row in served.rows] == [
        c.feedback for c in served.calls
    ]
    assert {row["model_version"] for row in served.rows} == {result.champion}
    assert not any(step.startswith("stopped the server") for step in steps)
    log = LogReader(tmp_path / "project" / "elsewhere" / "log")
    # the demo's calls, and the two extra rows after its canary, shadow and fallback steps,
    # answered by the champion alone again
    ids = [c.prediction_id for c in served.calls]
    ids += [row["prediction_id"] for row in extra.json()["predictions"]]
    found = log.query(
        "SELECT model, model_version FROM predictions WHERE prediction_id IN "
        f"({', '.join('?' for _ in ids)}) AND NOT shadow",
        ids,
    ).to_pylist()
    assert found == [{"model": "breast-cancer", "model_version": result.champion}] * 8
    assert not server.is_running(), "the server stops when the block ends"


@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_a_server_that_exits_before_it_is_ready_is_an_error_naming_its_log(
    workspace: Workspace,
) -> None:
    log = workspace.settings.project_path(SERVER_LOG)

    with (
        pytest.raises(ServingError, match="exited with code 1 before it was ready") as caught,
        DemoServer(workspace.settings, "no-such-endpoint"),
    ):
        pass

    assert str(log) in str(caught.value)
    assert "no endpoint named 'no-such-endpoint'" in str(caught.value)


def test_settings_environment_gives_a_child_the_same_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keel.toml").write_text('actor = "from-the-file"\n', encoding="utf-8")
    settings = Settings.load(
        tmp_path,
        metadata_url="sqlite:///elsewhere.db",
        features={"online_url": "redis://cache:6379/2"},
        serving={"port": 9001, "fsync": "always"},
    )
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)

    assert Settings.load(tmp_path) == settings
