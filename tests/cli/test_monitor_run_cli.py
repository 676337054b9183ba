"""``keel monitor run | results | drift | watch`` through the command line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from keel import Workspace
from monitoring.test_runner import HOUR, training_frame, write_traffic
from monitoring.test_runner import endpoint as endpoint  # the fixture, re-exported

from .conftest import Keel, assert_one_line_error


def shifted(rows: int, seed: int) -> object:
    frame = training_frame(rows, seed=seed)
    frame["age"] += 8
    return frame


def test_run_computes_the_windows_then_fires_an_alert_for_the_drifted_one(
    keel: Keel, workspace: Workspace, endpoint: str
) -> None:
    start = (time.time() // HOUR - 4) * HOUR  # recent: alert rules look at recent windows
    write_traffic(workspace, [training_frame(2_000, seed=1), shifted(2_000, seed=2)], start)
    answer = keel.json("monitor", "run", "--window", "1h")
    assert [(w["start"] - start, w["verdict"]) for w in answer["windows"]][:2] == [
        (0.0, "no_drift"),
        (HOUR, "drift"),
    ]
    fired = answer["alerts"]["fired"]
    assert {alert["rule"] for alert in fired} >= {"drift"}
    assert any(alert["subject"] == "age" for alert in fired)
    assert keel.json("monitor", "run", "--window", "1h")["windows"] == []  # idempotent


def test_results_lists_what_a_run_stored(keel: Keel, workspace: Workspace, endpoint: str) -> None:
    write_traffic(workspace, [training_frame(1_500, seed=1)])
    keel.ok("monitor", "run", "--window", "1h", "--no-alerts")
    stored = keel.json("monitor", "results", endpoint, "--monitor", "drift", "--subject", "age")
    assert {row["statistic"] for row in stored} >= {"ks", "psi", "js", "wasserstein", "chi2"}
    text = keel.ok("monitor", "results", endpoint, "--monitor", "data_quality").stdout
    assert "null_rate" in text


def test_drift_compares_two_files_and_can_fail_on_drift(keel: Keel, tmp_path: Path) -> None:
    reference, current = tmp_path / "reference.parquet", tmp_path / "current.parquet"
    training_frame(3_000, seed=1).to_parquet(reference)
    shifted(3_000, seed=2).to_parquet(current)
    report = keel.json("monitor", "drift", str(reference), str(current))
    assert report["drifted_columns"] == ["age"]
    assert report["correction"] == "bh"
    failed = keel("monitor", "drift", str(reference), str(current), "--fail-on-drift")
    assert failed.exit_code == 1
    same = keel("monitor", "drift", str(reference), str(reference), "--fail-on-drift")
    assert same.exit_code == 0, same.output


def test_bad_options_are_one_line_errors(keel: Keel, endpoint: str, tmp_path: Path) -> None:
    assert_one_line_error(keel("monitor", "run", "--window", "1w"), "1w", "90s, 1h")
    assert_one_line_error(keel("monitor", "run", "--window", "1h", "--rows", "10"), "one of")
    assert_one_line_error(keel("monitor", "run", "--correction", "holm"), "bonferroni")
    assert_one_line_error(keel("monitor", "run", "nobody"), "nobody")
    data = tmp_path / "d.parquet"
    training_frame(10).to_parquet(data)
    assert_one_line_error(keel("monitor", "drift", str(data), "no-such-snapshot"), "snapshot")


def test_watch_serves_the_gauges_and_stops_on_sigterm(
    project: Path, workspace: Workspace, endpoint: str
) -> None:
    write_traffic(workspace, [training_frame(1_500, seed=1)])
    port = _free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("keel")), "--dir", str(project), "monitor", "watch",
         "--interval", "0.5", "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        sample = 'keel_monitor_drift_score{column="age",endpoint="churn",statistic="ks"}'
        text = _poll_metrics(port, sample, process)
        assert 'keel_monitor_window_rows{endpoint="churn"}' in text
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in out


def _poll_metrics(port: int, wanted: str, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"watch exited: {process.stderr.read() if process.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                text = answer.read().decode()
            if wanted in text:
                return text
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no {wanted} on /metrics within 60 s")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
