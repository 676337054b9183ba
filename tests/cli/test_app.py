"""The root command: init, configuration errors, exit codes and the --debug / --actor options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from keel import Settings, cli
from keel._config_template import CONFIG_TEMPLATE
from keel.cli import app

from .conftest import Keel, assert_one_line_error

UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/x"


def test_init_writes_a_config_that_settings_load_accepts(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--dir", str(tmp_path), "init"])

    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "keel.toml").read_text() == CONFIG_TEMPLATE
    assert str(tmp_path / "keel.toml") in result.stdout
    assert Settings.load(tmp_path).metadata_url == "sqlite:///.keel/keel.db"


def test_init_refuses_to_overwrite_without_force(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text('actor = "someone"\n')

    result = runner.invoke(app, ["--dir", str(tmp_path), "init"])

    assert_one_line_error(result, str(tmp_path / "keel.toml"), "--force")
    assert (tmp_path / "keel.toml").read_text() == 'actor = "someone"\n'


def test_init_with_force_overwrites(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("not = [valid")

    result = runner.invoke(app, ["--dir", str(tmp_path), "init", "--force"])

    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "keel.toml").read_text() == CONFIG_TEMPLATE


def test_corrupt_config_is_one_line_naming_the_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("metadata_url = \n")

    result = runner.invoke(app, ["--dir", str(tmp_path), "runs", "list"])

    line = assert_one_line_error(result, str(tmp_path / "keel.toml"), "not valid TOML")
    assert "Traceback" not in line


def test_debug_shows_the_traceback_of_a_keel_error(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("metadata_url = \n")

    result = runner.invoke(app, ["--debug", "--dir", str(tmp_path), "runs", "list"])

    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "keel.errors.ConfigError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ")


def test_unknown_config_key_is_named(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text('metdata_url = "sqlite:///x.db"\n')

    result = runner.invoke(app, ["--dir", str(tmp_path), "models", "list"])

    assert_one_line_error(result, "'metdata_url'", "is not a keel setting")


def test_unreachable_database_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text(f'metadata_url = "{UNREACHABLE_DATABASE}"\n')

    result = runner.invoke(app, ["--dir", str(tmp_path), "runs", "list"])

    assert_one_line_error(result, "cannot connect to the metadata database", "127.0.0.1:1")


def test_usage_error_keeps_exit_code_two(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--dir", str(tmp_path), "runs", "show"])

    assert result.exit_code == 2
    assert "Missing argument" in result.stderr


def test_unknown_command_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--dir", str(tmp_path), "runs", "lst"])

    assert result.exit_code == 2
    assert "No such command" in result.stderr


def test_actor_option_is_recorded_in_the_audit_log(keel: Keel, churn: str) -> None:
    keel.ok("--actor", "alice", "models", "transition", churn, "1", "approved")

    entries = keel.json("models", "audit", churn, "--version", "1")
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("register", "tester"),
        ("transition", "alice"),
    ]


def test_console_script_reports_keel_errors_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("metadata_url = \n")

    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from keel.cli import main; main()",
            "--dir",
            str(tmp_path),
            "runs",
            "list",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert len(completed.stderr.splitlines()) == 1
    assert completed.stderr.startswith(f"error: {tmp_path / 'keel.toml'}: is not valid TOML")


def test_cli_exports_app_and_main_only() -> None:
    assert cli.__all__ == ["app", "main"]
