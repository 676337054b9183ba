"""``keel monitor report ENDPOINT --out FILE`` on the ``monitor`` group."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keel import Workspace
from keel.cli import _monitor, _monitor_report
from keel.cli._context import CliState
from keel.errors import EndpointNotFound, MonitoringError
from monitoring.report_helpers import monitored_history
from monitoring.test_runner import endpoint as endpoint  # the fixture, re-exported


def monitor_group() -> typer.Typer:
    # The group as keel builds it, with the report command added the way _app will add it.
    group = _monitor.build()
    _monitor_report.add_commands(group)
    return group


def report(project: Path, *args: str) -> object:
    return CliRunner().invoke(monitor_group(), ["report", *args], obj=CliState(project_dir=project))


@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_report_writes_one_html_file(
    project: Path, workspace: Workspace, endpoint: str, tmp_path: Path
) -> None:
    monitored_history(workspace)
    out = tmp_path / "report.html"
    result = report(project, endpoint, "--out", str(out), "--last", "3h")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "3 windows, latest: drift" in result.output  # type: ignore[attr-defined]
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "Monitoring report · churn" in page


@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_an_unknown_endpoint_or_a_bad_duration_is_a_keel_error(
    project: Path, workspace: Workspace, tmp_path: Path
) -> None:
    out = str(tmp_path / "r.html")
    unknown = report(project, "nobody", "--out", out)
    assert isinstance(unknown.exception, EndpointNotFound)  # type: ignore[attr-defined]
    bad = report(project, "nobody", "--out", out, "--last", "1w")
    assert isinstance(bad.exception, MonitoringError)  # type: ignore[attr-defined]
    assert not Path(out).exists()
