"""The serving half of ``keel demo``: the champion behind an endpoint, called over HTTP.

    with serve_demo(workspace, report=print) as served:  # deploy, start, call, give feedback
        served.rows            # the predictions as the log holds them, joined with feedback
        served.server.wait()   # with keep_running=True: serve until Ctrl-C

The endpoint is pinned to whatever ``champion`` points at and looks features up: the champion
was trained through the feature store, so a request carries only a patient id and the server
fetches the patient's measurements from the online store (and computes the on-demand ratio with
the training code). The server is ``keel serve`` in a child process (:mod:`keel._demo_server`),
and the requests are what any client would send: a record and a batch to keel's JSON API, a
``patient_id`` tensor to the Open Inference Protocol (V2), then the patients' diagnoses as
feedback on some of the prediction ids.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from keel._demo import MODEL_NAME
from keel._demo_data import TARGET, Report, diagnoses
from keel._demo_http import post_json
from keel._demo_monitoring import Monitored, show_monitoring
from keel._demo_resilience import Resilience, show_resilience
from keel._demo_server import DemoServer
from keel._workspace import Workspace
from keel.config import Settings
from keel.errors import EndpointExists
from keel.serving import Revision
from keel.serving._predlog import Compactor, LogReader

ENDPOINT = MODEL_NAME
CHAMPION_URI = f"models:/{MODEL_NAME}@champion"
SINGLE_PATIENT = 1
BATCH_PATIENTS = [20, 21, 22]
V2_PATIENTS = [23, 24]
ENTITY_KEY = "patient_id"
NATIVE_PATH = f"/v1/endpoints/{ENDPOINT}/predict"
V2_PATH = f"/v2/models/{ENDPOINT}/infer"
FEEDBACK_PATH = f"/v1/endpoints/{ENDPOINT}/feedback"

Record = dict[str, int]


@dataclass(frozen=True)
class Call:
    """One prediction the demo asked the server for."""

    prediction_id: str
    patient: int
    api: str
    """The request that answered it: "native", "native batch" or "V2"."""
    diagnosis: int
    feedback: bool
    """Whether the demo attached the diagnosis to it as feedback."""


@dataclass(frozen=True)
class ServedDemo:
    """What the serving half of the demo did."""

    revision: Revision
    """The endpoint's live revision, pinned to the champion."""
    server: DemoServer
    calls: tuple[Call, ...]
    rows: list[dict[str, Any]]
    """The calls' predictions read back from the prediction log, oldest first, with the model,
    the input ``mean_radius``, ``prediction``, ``p_malignant`` and ``feedback`` (None if none)."""
    example: Record
    """The single patient's request record (its id): the body of the curl commands."""
    resilience: Resilience
    """What the canary, shadow and fallback steps saw (see :mod:`keel._demo_resilience`)."""
    monitoring: Monitored
    """The drift windows and alerts of the shifted traffic (see :mod:`keel._demo_monitoring`)."""


@contextmanager
def serve_demo(
    workspace: Workspace, report: Report, *, port: int | None = None, keep_running: bool = False
) -> Iterator[ServedDemo]:
    """Point the demo endpoint at the champion, start ``keel serve`` for it on ``port`` (None:
    a free one), send it requests and feedback, and read the predictions back from the log.

    Unless ``keep_running``, the server is stopped and the log compacted into Parquet before
    the ``with`` block runs; either way the server is stopped when the block ends."""
    revision = deploy_champion(workspace, report)
    settings = workspace.settings
    log_dir = settings.project_path(settings.serving.prediction_log_dir)
    with DemoServer(settings, ENDPOINT, port=port) as server:
        report(f"started `keel serve` (pid {server.pid}) at {server.url}, log {server.log_path}")
        calls, example = call_endpoint(workspace, server.url, report)
        resilience = show_resilience(workspace, server.url, report)
        monitoring = show_monitoring(workspace, server.url, report)
        if not keep_running:
            server.stop()
            compacted = Compactor(log_dir).run_once()
            report(
                f"stopped the server; compacted {compacted.segments} prediction-log "
                f"segment(s) into Parquet under {log_dir}"
            )
        rows = logged_predictions(LogReader(log_dir), [call.prediction_id for call in calls])
        yield ServedDemo(revision, server, tuple(calls), rows, example, resilience, monitoring)


def deploy_champion(workspace: Workspace, report: Report) -> Revision:
    """Create the demo endpoint serving the champion, or, on a re-run, re-pin it to the version
    the alias points at now (a new revision)."""
    deployments = workspace.deployments
    try:
        revision = deployments.create_endpoint(
            ENDPOINT,
            CHAMPION_URI,
            description="the breast-cancer champion (keel demo)",
            reason="keel demo: serve the champion",
            features=True,
        )
    except EndpointExists:
        revision = deployments.set(
            ENDPOINT,
            model_uri=CHAMPION_URI,
            reason="keel demo: serve the new champion",
            features=True,
        )
    report(
        f"endpoint {ENDPOINT} revision {revision.number} serves "
        f"{revision.policy.primary.pinned_uri} (pinned from {CHAMPION_URI})"
    )
    return revision


def call_endpoint(workspace: Workspace, url: str, report: Report) -> tuple[list[Call], Record]:
    """Score patients by id over both APIs (the server looks their features up), then attach
    the diagnoses of the native ones as feedback; returns the calls and the single patient's
    record."""
    patients = [SINGLE_PATIENT, *BATCH_PATIENTS, *V2_PATIENTS]
    records: dict[int, Record] = {patient: {ENTITY_KEY: patient} for patient in patients}
    truth = dict(zip(patients, diagnoses(patients), strict=True))
    calls: list[Call] = []
    for api, chosen in (
        ("native", [SINGLE_PATIENT]),
        ("native batch", BATCH_PATIENTS),
        ("V2", V2_PATIENTS),
    ):
        rows = [records[patient] for patient in chosen]
        if api == "V2":
            path, what = V2_PATH, f"one [{len(rows)}] INT64 {ENTITY_KEY} tensor"
            scores = _v2_scores(post_json(url + path, v2_body(rows)))
        else:
            single = len(rows) == 1
            path, what = NATIVE_PATH, "one record" if single else f"{len(rows)} records"
            scores = _native_scores(post_json(url + path, {"inputs": rows[0] if single else rows}))
        listing = ", ".join(
            f"patient {patient} p(malignant) {p:.3f}"
            for patient, (_, p) in zip(chosen, scores, strict=True)
        )
        report(f"POST {path}, {what}: {listing}")
        calls += [
            Call(prediction_id, patient, api, truth[patient], feedback=api != "V2")
            for patient, (prediction_id, _) in zip(chosen, scores, strict=True)
        ]
    feedback = [
        {"prediction_id": call.prediction_id, "value": call.diagnosis, "name": TARGET}
        for call in calls
        if call.feedback
    ]
    answer = post_json(url + FEEDBACK_PATH, {"feedback": feedback})
    report(
        f"POST {FEEDBACK_PATH}: {answer['accepted']} diagnoses attached to their prediction ids "
        f"({len(calls) - len(feedback)} predictions left without)"
    )
    return calls, records[SINGLE_PATIENT]


def v2_body(records: list[Record]) -> dict[str, Any]:
    """An Open Inference Protocol request: the records' patient ids as one [N] INT64 tensor."""
    return {
        "inputs": [
            {
                "name": ENTITY_KEY,
                "shape": [len(records)],
                "datatype": "INT64",
                "data": [record[ENTITY_KEY] for record in records],
            }
        ]
    }


def logged_predictions(reader: LogReader, prediction_ids: list[str]) -> list[dict[str, Any]]:
    """The predictions with these ids as the log holds them, oldest first, each joined with its
    feedback (see :attr:`ServedDemo.rows`)."""
    placeholders = ", ".join("?" for _ in prediction_ids)
    table = reader.query(
        "SELECT p.prediction_id, p.model, p.model_version, p.revision, "
        "CAST(p.inputs->>'$.mean_radius' AS DOUBLE) AS mean_radius, p.prediction, "
        """CAST(p.probabilities->>'$."1"' AS DOUBLE) AS p_malignant, """
        "f.name AS feedback_name, f.value AS feedback "
        "FROM predictions p LEFT JOIN feedback f ON f.prediction_id = p.prediction_id "
        f"WHERE p.prediction_id IN ({placeholders}) ORDER BY p.time, p.prediction_id",
        prediction_ids,
    )
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def curl_commands(url: str, served: ServedDemo) -> list[tuple[str, str]]:
    """Shell commands calling the endpoint at ``url``, each with what it does: keel's JSON API
    and V2 with the demo's single record, then feedback on a prediction that has none yet."""
    header = shlex.quote("content-type: application/json")

    def curl(path: str, body: dict[str, Any]) -> str:
        return f"curl -s {url}{path} -H {header} -d {shlex.quote(json.dumps(body))}"

    first = served.calls[0]
    pending = next(call for call in served.calls if not call.feedback)
    feedback = {"prediction_id": pending.prediction_id, "value": pending.diagnosis, "name": TARGET}
    return [
        (
            curl(NATIVE_PATH, {"inputs": served.example}),
            f"keel's JSON API: patient {first.patient}'s record",
        ),
        (
            curl(V2_PATH, v2_body([served.example])),
            "Open Inference Protocol (V2): the same patient as a [1] INT64 patient_id tensor",
        ),
        (
            curl(FEEDBACK_PATH, {"feedback": feedback}),
            f"feedback: patient {pending.patient}'s diagnosis on its {pending.api} prediction",
        ),
    ]


def configured_url(settings: Settings) -> str:
    """Where ``keel serve`` listens by the settings, as a client on this machine calls it."""
    host = settings.serving.host
    if host in ("", "0.0.0.0", "::"):  # every interface: loopback among them
        host = "127.0.0.1"
    return f"http://{host}:{settings.serving.port}"


def _native_scores(answer: Any) -> list[tuple[str, float]]:
    """(prediction id, probability of malignancy) of each row of a native answer."""
    return [(row["prediction_id"], row["probabilities"]["1"]) for row in answer["predictions"]]


def _v2_scores(answer: Any) -> list[tuple[str, float]]:
    """The same from a V2 answer, whose predict_proba columns are in class-label order:
    malignant (1) is the last."""
    outputs = {output["name"]: output for output in answer["outputs"]}
    proba = outputs["predict_proba"]
    width = proba["shape"][1]
    ids: list[str] = outputs["prediction_id"]["data"]
    return [(id_, proba["data"][row * width + width - 1]) for row, id_ in enumerate(ids)]
