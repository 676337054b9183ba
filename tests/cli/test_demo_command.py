"""``keel demo``: the quickstart from the command line, its endpoint, and ``--serve``."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from typer.testing import CliRunner, Result

from keel import Settings, open_workspace
from keel._demo_server import SERVER_LOG, free_port
from keel._demo_serving import BATCH_PATIENTS, ENDPOINT, SINGLE_PATIENT, V2_PATIENTS
from keel.cli import app
from keel.serving._predlog import LogReader

from .conftest import Keel, write_config

CALLS = 1 + len(BATCH_PATIENTS) + len(V2_PATIENTS)
WITH_FEEDBACK = 1 + len(BATCH_PATIENTS)


@dataclass(frozen=True)
class DemoRuns:
    project: Path
    first: Result
    second: Result


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    """``keel demo`` run twice in a directory that starts empty: the module's tests share the
    pair, as each run trains, serves and calls a model."""
    project = tmp_path_factory.mktemp("demo") / "fresh"
    runner = CliRunner()
    results = [runner.invoke(app, ["--dir", str(project), "demo"]) for _ in range(2)]
    for result in results:
        assert result.exit_code == 0, f"{result.stderr}{result.exception}"
    return DemoRuns(project, *results)


def _champion(result: Result) -> int:
    [version] = re.findall(r"^• alias champion -> version (\d+)$", result.stdout, re.MULTILINE)
    return int(version)


def _server_pid(result: Result) -> int:
    [pid] = re.findall(r"^• started `keel serve` \(pid (\d+)\)", result.stdout, re.MULTILINE)
    return int(pid)


def _curl_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]


def _curl_request(line: str) -> tuple[str, dict[str, str], Any]:
    """The URL, headers and JSON body of a printed curl command (which has exactly those)."""
    args = shlex.split(line)
    assert args[:2] == ["curl", "-s"]
    assert args[3::2] == ["-H", "-d"], args
    name, value = args[4].split(": ")
    return args[2], {name: value}, json.loads(args[6])


def test_demo_in_an_empty_directory_writes_keel_toml_and_prints_next_steps(
    demo: DemoRuns,
) -> None:
    project, output = demo.project, demo.first.stdout

    assert Settings.load(project).metadata_url == "sqlite:///.keel/keel.db"
    assert f"wrote {project / 'keel.toml'}" in output
    assert "registered models:/breast-cancer/2" in output
    assert "alias champion -> version" in output
    for command in (
        "runs list --experiment keel-demo",
        "models show breast-cancer",
        "models card models:/breast-cancer@champion",
        f"endpoints history {ENDPOINT}",
        "log show ",
        "log query ",
    ):
        assert f"keel --dir {project} {command}" in output
    assert f"keel --dir {project} serve --endpoint {ENDPOINT}" in output
    assert str(project / ".keel" / "keel.db") in output
    assert str(project / ".keel" / "artifacts") in output


def test_demo_twice_adds_versions_3_and_4_and_moves_champion(demo: DemoRuns) -> None:
    keel = Keel(CliRunner(), demo.project)

    versions = keel.json("models", "show", "breast-cancer")
    assert [v["version"] for v in versions] == [1, 2, 3, 4]
    last_two = {v["version"]: v["metrics"]["roc_auc"] for v in versions[2:]}
    best = max(sorted(last_two), key=lambda version: last_two[version])
    champion = keel.json("models", "show", "models:/breast-cancer@champion")
    challenger = keel.json("models", "show", "models:/breast-cancer@challenger")
    assert champion["version"] == best == _champion(demo.second)
    assert champion["status"] == "approved"
    assert challenger["version"] == ({3, 4} - {best}).pop()


def test_demo_serves_the_champion_and_logs_its_predictions_with_feedback(
    demo: DemoRuns,
) -> None:
    with open_workspace(demo.project) as workspace:
        revisions = workspace.deployments.history(ENDPOINT)
        log_dir = workspace.settings.project_path(workspace.settings.serving.prediction_log_dir)
    # created by the first run, re-pinned to the new champion by the second; each run then
    # makes four changes of its own (canary, shadow, fallback, back to the champion alone)
    assert [r.number for r in revisions] == list(range(1, 11))
    assert [r.action for r in revisions] == ["create"] + ["set"] * 9
    deployed = [r for r in revisions if r.number in (1, 6)]
    assert [r.reason for r in deployed] == [
        "keel demo: serve the champion",
        "keel demo: serve the new champion",
    ]
    assert [r.policy.primary.version for r in deployed] == [
        _champion(demo.first),
        _champion(demo.second),
    ]
    logged = LogReader(log_dir).query(
        "SELECT p.model_version, p.revision, f.value AS feedback FROM predictions p "
        "LEFT JOIN feedback f USING (prediction_id) WHERE p.revision IN (1, 6) ORDER BY p.time"
    )
    rows = logged.to_pylist()
    assert len(rows) == 2 * CALLS
    assert {(row["model_version"], row["revision"]) for row in rows[CALLS:]} == {
        (_champion(demo.second), 6)
    }
    assert sum(row["feedback"] is not None for row in rows) == 2 * WITH_FEEDBACK
    assert not list((log_dir / "segments").glob("*")), "the demo compacts the log"

    output = demo.second.stdout
    assert f"endpoint {ENDPOINT} revision 6 serves models:/breast-cancer/" in output
    assert f"POST /v1/endpoints/{ENDPOINT}/predict, one record: patient {SINGLE_PATIENT} " in output
    assert f"POST /v1/endpoints/{ENDPOINT}/predict, {len(BATCH_PATIENTS)} records: " in output
    assert f"POST /v2/models/{ENDPOINT}/infer, one [2] INT64 patient_id tensor: " in output
    assert f"{WITH_FEEDBACK} diagnoses attached to their prediction ids" in output
    table = output[output.index("Logged predictions and their feedback") :]
    table = table[: table.index("done in")]
    # patient 1 is malignant: predicted so and confirmed by its feedback; V2 rows have none
    assert re.search(r"│ native +│ 1 +│ breast-cancer v\d +│ 17\.99 .*│ 1 +│ malignant = 1 ", table)
    assert len(re.findall(r"│ V2 +│ .* │ — +│", table)) == len(V2_PATIENTS)
    server_log = (demo.project / SERVER_LOG).read_text()
    assert "Application shutdown complete" in server_log
    for result in (demo.first, demo.second):
        assert not psutil.pid_exists(_server_pid(result))


def test_demo_prints_curl_commands_with_real_bodies_for_the_configured_server(
    demo: DemoRuns,
) -> None:
    native, v2, feedback = (_curl_request(line) for line in _curl_lines(demo.second.stdout))

    with open_workspace(demo.project) as workspace:
        log_dir = workspace.settings.project_path(workspace.settings.serving.prediction_log_dir)
    url = "http://127.0.0.1:8080"  # keel serve's defaults, which keel.toml keeps
    assert native[0] == f"{url}/v1/endpoints/{ENDPOINT}/predict"
    assert native[1] == {"content-type": "application/json"}
    # the endpoint looks features up: a request is the patient's id, nothing else
    assert native[2] == {"inputs": {"patient_id": SINGLE_PATIENT}}
    assert v2[0] == f"{url}/v2/models/{ENDPOINT}/infer"
    [tensor] = v2[2]["inputs"]
    assert tensor == {
        "name": "patient_id",
        "shape": [1],
        "datatype": "INT64",
        "data": [SINGLE_PATIENT],
    }
    assert feedback[0] == f"{url}/v1/endpoints/{ENDPOINT}/feedback"
    pending = feedback[2]["feedback"]["prediction_id"]
    found = LogReader(log_dir).prediction_with_feedback(pending)
    assert found is not None, "the feedback command names a logged prediction"
    assert found["feedback"] == []


def test_demo_serve_answers_the_printed_curl_commands_and_exits_0_on_sigterm(
    tmp_path: Path,
) -> None:
    project = tmp_path / "served"
    write_config(project, f"sqlite:///{tmp_path / 'meta' / 'keel.db'}", tmp_path / "artifacts")
    port = free_port()
    keel = Path(sys.executable).with_name("keel")  # the console script next to this Python
    process = subprocess.Popen(
        [str(keel), "--dir", str(project), "demo", "--serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "press Ctrl-C to stop" in line:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    children: list[psutil.Process] = []
    try:
        assert serving.wait(timeout=180), "".join(lines)
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) == 1, children
        curls = _curl_lines("".join(lines))
        assert [_curl_request(line)[0] for line in curls] == [
            f"http://127.0.0.1:{port}/v1/endpoints/{ENDPOINT}/predict",
            f"http://127.0.0.1:{port}/v2/models/{ENDPOINT}/infer",
            f"http://127.0.0.1:{port}/v1/endpoints/{ENDPOINT}/feedback",
        ]
        native, v2, feedback = (_run_curl(line) for line in curls)
        [prediction] = native["predictions"]
        assert prediction["prediction"] == 1
        outputs = {output["name"]: output["data"] for output in v2["outputs"]}
        assert outputs["predict"] == [1]
        assert feedback == {"endpoint": ENDPOINT, "accepted": 1}

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for child in children:
            if child.is_running():
                child.kill()
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, "the demo stopped its server"
    assert "stopped the server" in "".join(lines)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/readyz")


def _run_curl(line: str) -> Any:
    """Run a printed curl command as a user would (with httpx where curl is not installed)."""
    if shutil.which("curl"):
        done = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    url, headers, body = _curl_request(line)
    response = httpx.post(url, headers=headers, content=json.dumps(body))
    assert response.status_code == 200, response.text
    return response.json()


def test_demo_shows_a_sticky_canary_a_shadow_and_a_fallback_taking_over(demo: DemoRuns) -> None:
    out = demo.second.stdout
    [canary] = re.findall(r"^• canary 90/10 by patient_id: (\d+) of 60 .* (\d+) by the challenger"
                          r".* same model twice: (\w+)$", out, re.MULTILINE)  # fmt: skip
    [shadow] = re.findall(r"^• shadow: the challenger answered a copy of (\d+) patients", out,
                          re.MULTILINE)  # fmt: skip
    [fallback] = re.findall(r"^• fallback: .* (\d+) of 30 requests were still answered, by the "
                            r"challenger \((.*)\); fault removed", out, re.MULTILINE)  # fmt: skip

    champion, challenger, sticky = canary
    assert int(champion) + int(challenger) == 60
    assert 0 < int(challenger) < int(champion)  # about 10 %: 6 expected
    assert sticky == "True"
    assert shadow == "40"
    assert fallback[0] == "30"
    reasons = dict(part.split(" ")[::-1] for part in fallback[1].split(", "))
    assert set(reasons) == {"model_error", "breaker_open"}  # the breaker opened
    keel = Keel(CliRunner(), demo.project)
    endpoint = keel.json("endpoints", "show", ENDPOINT)
    policy = endpoint["revision"]["policy"]
    assert policy["primary"]["name"] == "breast-cancer"  # back to the champion alone
    assert (policy["arms"], policy["shadows"], policy["fallback"]) == ([], [], None)
    with open_workspace(demo.project) as workspace:
        logged = (
            LogReader(workspace.settings.project_path(".keel/predictions"))
            .query("SELECT count(*) AS n FROM predictions WHERE shadow")
            .to_pylist()
        )
    assert logged[0]["n"] >= 40


def test_demo_shows_shifted_traffic_detected_as_drift_and_alerted(demo: DemoRuns) -> None:
    for result in (demo.first, demo.second):
        verdicts = re.findall(r"^• monitor window of 300 answers: (\w+)", result.stdout, re.M)
        assert verdicts == ["no_drift", "drift"]  # the first hospital, then the second
    [fired] = re.findall(r"^• the alert rules fired (\d+) alert", demo.first.stdout, re.M)
    keel = Keel(CliRunner(), demo.project)
    alerts = keel.json("alerts", "list", "--state", "firing")
    assert len(alerts) == int(fired)
    drifted = {alert["subject"] for alert in alerts if alert["rule"] == "drift"}
    sizes = {f"{kind}_{size}" for kind in ("mean", "worst") for size in ("radius", "area")}
    assert drifted >= sizes  # what the second hospital's scanner changed
    assert all(any(s in c for s in ("radius", "perimeter", "area")) for c in drifted)
    assert any(alert["rule"] == "prediction_drift" for alert in alerts)
    evidence = next(a for a in alerts if a["subject"] == "mean_radius")["evidence"]
    assert evidence["statistic"] == "ks"
    assert evidence["top_drifting_columns"]
    [written] = re.findall(r"^• monitoring report written to (\S+)", demo.first.stdout, re.M)
    page = Path(written).read_text(encoding="utf-8")
    assert "mean_radius" in page
    assert "<script" not in page
