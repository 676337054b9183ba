"""The resilience part of ``keel demo``: a canary arm, a shadow comparison, a fallback taking over.

    shown = show_resilience(workspace, server.url, report)   # the demo server is running

Each step is a deployment change made through the metadata store, as an operator would make it
(``keel endpoints set``); the running server picks every revision up on its own (its revision
watcher) and the demo waits until ``/readyz`` shows it live before sending traffic:

1. **Canary**: the champion gets 90 % of the patients and the challenger 10 %, chosen by the
   request's ``patient_id`` (the endpoint's routing field), so a patient asked about twice is
   answered by the same model twice.
2. **Shadow**: the champion answers alone while the challenger gets a copy of every request in
   the background; the server's metrics count how often the two disagree.
3. **Fallback**: the primary becomes a copy of the champion with a fault switch (a file; see
   :class:`FaultInjected`), the challenger its fallback. With the switch on, every request is
   still answered, by the fallback: first because the primary raises, then because its circuit
   breaker opened. With the switch off, the breaker's half-open probe finds the primary healed
   and it answers again.

At the end the endpoint serves the champion alone again, as before the demo's resilience steps.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from keel._demo import MODEL_NAME
from keel._demo_data import Report, measurements
from keel._demo_http import get_json, post_json
from keel._workspace import Workspace
from keel.errors import ServingError
from keel.serving import Revision

ENDPOINT = MODEL_NAME
FAULTY_MODEL = f"{MODEL_NAME}-faulty"
CANARY_PATIENTS = range(1, 61)
SHADOW_PATIENTS = list(range(100, 140))
FAULTY_REQUESTS = 30
PREDICT_PATH = f"/v1/endpoints/{ENDPOINT}/predict"


class FaultInjected(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted classifier that raises while ``fault_file`` exists: the demo's way of making a
    primary fail on demand, and heal, without touching the server."""

    def __init__(self, model: Any = None, fault_file: str = "") -> None:
        self.model = model
        self.fault_file = fault_file

    @property
    def classes_(self) -> Any:
        return self.model.classes_

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict(self, frame: Any) -> Any:
        self._check()
        return self.model.predict(frame)

    def predict_proba(self, frame: Any) -> Any:
        self._check()
        return self.model.predict_proba(frame)

    def _check(self) -> None:
        if Path(self.fault_file).exists():
            raise RuntimeError(f"injected fault (keel demo): delete {self.fault_file} to heal")


@dataclass(frozen=True)
class Resilience:
    """What the resilience steps saw."""

    canary: dict[int, int]
    """Patients answered by each model version during the canary."""
    canary_sticky: bool
    """Whether every patient asked twice was answered by the same version twice."""
    shadow_compared: int
    shadow_disagreements: int
    fallback_reasons: dict[str, int]
    """Why the fallback answered, for each request sent while the primary was failing."""
    healed_after_seconds: float
    """From switching the fault off to the primary answering again (its breaker closed)."""


def show_resilience(workspace: Workspace, url: str, report: Report) -> Resilience:
    """Run the three steps against the demo server at ``url`` (see the module doc)."""
    registry, deployments = workspace.registry, workspace.deployments
    champion = registry.resolve(f"models:/{MODEL_NAME}@champion")
    challenger = registry.resolve(f"models:/{MODEL_NAME}@challenger")
    why = "keel demo: "

    live(url, deployments.set(
        ENDPOINT, arms=[(champion.uri, 90), (challenger.uri, 10)], routing_field="patient_id",
        reason=why + "10% canary of the challenger",
    ))  # fmt: skip
    answered: dict[int, int] = {}
    sticky = True
    for patient in CANARY_PATIENTS:
        first = _version(url, patient)
        sticky = sticky and _version(url, patient) == first
        answered[patient] = first
    canary = dict(collections.Counter(answered.values()))
    report(
        f"canary 90/10 by patient_id: {canary.get(champion.version, 0)} of "
        f"{len(answered)} patients answered by the champion (version {champion.version}), "
        f"{canary.get(challenger.version, 0)} by the challenger (version "
        f"{challenger.version}); every patient asked twice got the same model twice: {sticky}"
    )

    live(url, deployments.set(
        ENDPOINT, arms=[], routing_field=None, shadows=[challenger.uri],
        reason=why + "shadow the challenger",
    ))  # fmt: skip
    post_json(url + PREDICT_PATH, {"inputs": [{"patient_id": p} for p in SHADOW_PATIENTS]})
    compared, disagreed = _shadow_counts(url, challenger.uri, len(SHADOW_PATIENTS))
    report(
        f"shadow: the challenger answered a copy of {compared} patients in the background "
        f"(logged under the champion's prediction ids, never returned) and disagreed with the "
        f"champion on {disagreed}"
    )

    fault = workspace.settings.project_path(".keel") / "demo-fault"
    fault.parent.mkdir(parents=True, exist_ok=True)
    faulty = registry.register(
        FAULTY_MODEL,
        FaultInjected(registry.load(champion.uri).model, str(fault)),
        input_example=_example(list(champion.signature.inputs.names)),
        features=champion.features,
        description="the champion with a fault switch (keel demo)",
    )
    live(url, deployments.set(
        ENDPOINT, model_uri=faulty.uri, shadows=[], fallback=challenger.uri,
        reason=why + "a primary that can be made to fail, the challenger as its fallback",
    ))  # fmt: skip
    fault.touch()
    try:
        reasons = collections.Counter(
            str(_answer(url, patient).get("fallback")) for patient in range(1, FAULTY_REQUESTS + 1)
        )
    finally:
        fault.unlink(missing_ok=True)
    healed = _heal(url)
    report(
        f"fallback: with {FAULTY_MODEL} failing, {sum(reasons.values())} of {FAULTY_REQUESTS} "
        f"requests were still answered, by the challenger ("
        + ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        + f"); fault removed: its circuit breaker closed again after {healed:.1f} s"
    )

    live(url, deployments.set(
        ENDPOINT, model_uri=f"models:/{MODEL_NAME}@champion", fallback=None,
        reason=why + "back to the champion alone",
    ))  # fmt: skip
    return Resilience(canary, sticky, compared, disagreed, dict(reasons), healed)


def live(url: str, revision: Revision, timeout: float = 60.0) -> None:
    """Wait until the server at ``url`` serves ``revision`` of the endpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        endpoint = get_json(url + "/readyz", allow_error=True)["endpoints"][ENDPOINT]
        if endpoint["ready"] and endpoint["revision"] == revision.number:
            return
        time.sleep(0.1)
    raise ServingError(
        f"the demo server did not switch to revision {revision.number} of endpoint "
        f"'{ENDPOINT}' within {timeout:.0f} s: see its log"
    )


def _answer(url: str, patient: int) -> dict[str, Any]:
    answer: dict[str, Any] = post_json(url + PREDICT_PATH, {"inputs": {"patient_id": patient}})
    return answer


def _version(url: str, patient: int) -> int:
    version: int = _answer(url, patient)["model"]["version"]
    return version


def _shadow_counts(url: str, model_uri: str, rows: int, timeout: float = 30.0) -> tuple[int, int]:
    """The shadow's compared rows and disagreements once it has compared ``rows`` rows."""
    deadline = time.monotonic() + timeout
    while True:
        text = get_json(url + "/metrics", text=True)
        compared = _counter(text, "keel_shadow_compared_rows_total", model_uri)
        if compared >= rows or time.monotonic() > deadline:
            return compared, _counter(text, "keel_shadow_disagreements_total", model_uri)
        time.sleep(0.1)


def _counter(text: str, name: str, model_uri: str) -> int:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'model="{model_uri}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def _heal(url: str, timeout: float = 60.0) -> float:
    """Seconds until the primary answers a request again (no fallback)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if "fallback" not in _answer(url, 1):
            return time.monotonic() - started
        time.sleep(0.25)
    raise ServingError(f"the demo's primary did not recover within {timeout:.0f} s")


def _example(columns: list[str]) -> pd.DataFrame:
    """Model inputs of the demo's patients (stored measurements and the on-demand ratio)."""
    frame, _ = measurements()
    frame = frame.iloc[:569].copy()  # not the two broken rows
    frame["radius_ratio"] = frame["worst_radius"] / frame["mean_radius"]  # as the demo's
    example: pd.DataFrame = frame[columns]  # on-demand feature computes it
    return example
