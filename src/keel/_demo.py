"""The quickstart behind ``keel demo``: two tracked runs, two registered versions, a champion.

Everything here goes through the public workspace API, so the demo doubles as a worked example:

    with keel.open_workspace("demo-project") as ws:
        result = run_demo(ws, report=print)
        ws.registry.load(f"models:/{result.model_name}@champion")

It uses the breast-cancer data set shipped with scikit-learn (no download) and takes a few
seconds on a laptop. Running it again in the same project adds two more versions and moves the
aliases to the new pair, so it is safe to repeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from keel._demo_data import TARGET, DemoData, prepare, serve_from_online_store
from keel._workspace import Workspace
from keel.registry import APPROVED, ModelVersion
from keel.tracking import LoggedModel, Run

EXPERIMENT = "keel-demo"
MODEL_NAME = "breast-cancer"
METRIC = "roc_auc"
SEED = 42
# The four-eyes rule (registry.require_distinct_approver) forbids the registrant to approve
# their own version. The demo plays both roles, so with the rule on it approves as this second
# actor; the audit log then shows honestly who did what.
REVIEWER = "keel-demo-reviewer"
SERVED_PATIENTS = [1, 20, 21]

Report = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    """What one run of the quickstart produced."""

    experiment: str
    model_name: str
    run_ids: tuple[str, ...]
    """The two tracked runs, in training order (logistic regression, then boosting)."""
    versions: tuple[int, ...]
    """The versions registered from those runs, in the same order."""
    scores: dict[int, float]
    """Validation ``metric`` of each registered version."""
    metric: str
    champion: int
    """The version approved and aliased ``champion`` (the better one by ``metric``)."""
    challenger: int
    """The other version, aliased ``challenger``."""
    approver: str
    wall_time_seconds: float
    snapshot: str
    """Fingerprint of the snapshot of the validated measurements."""
    quarantined: int
    """Delivered rows that broke the schema and went to the quarantine file."""
    features: tuple[str, ...]
    """What the models were trained on, from the feature store."""
    database: str
    """The metadata database (URL without password)."""
    artifacts: str
    """The artifact store root."""

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.model_name}/{self.champion}"


def run_demo(workspace: Workspace, report: Report) -> DemoResult:
    """Train, track, register and promote two models in ``workspace``; ``report`` receives one
    line per step, for people to read."""
    started = time.perf_counter()
    split = prepare(workspace, report, seed=SEED)
    trained = [
        _train(workspace, split, report, "logistic-regression", _fit_logistic_regression),
        _train(workspace, split, report, "gradient-boosting", _fit_gradient_boosting),
    ]
    registered: list[tuple[ModelVersion, float]] = []
    for logged, score, title in trained:
        version = workspace.registry.register(
            MODEL_NAME,
            logged,
            description=f"{title} on the breast-cancer data set (keel demo)",
            features=workspace.features.lineage(split.features),
        )
        report(
            f"registered {version.uri} (semver {version.semver}, {version.status}) "
            f"from run {logged.run_id}"
        )
        registered.append((version, score))

    # max() keeps the first of equal scores: on a tie the simpler model wins.
    champion, champion_score = max(registered, key=lambda pair: pair[1])
    challenger, challenger_score = next(pair for pair in registered if pair[0] is not champion)
    approver = REVIEWER if workspace.settings.registry.require_distinct_approver else None
    reason = (
        f"best validation {METRIC} of the demo pair: version {champion.version} "
        f"{champion_score:.4f} vs version {challenger.version} {challenger_score:.4f}"
    )
    workspace.registry.transition(
        MODEL_NAME, champion.version, APPROVED, reason=reason, actor=approver
    )
    report(f"approved version {champion.version}: {reason}")
    for alias, target in (("champion", champion), ("challenger", challenger)):
        workspace.registry.set_alias(
            MODEL_NAME, alias, target.version, reason=f"keel demo: {reason}", actor=approver
        )
        report(f"alias {alias} -> version {target.version}")
    serve_from_online_store(workspace, f"models:/{MODEL_NAME}@champion", SERVED_PATIENTS, report)

    return DemoResult(
        experiment=EXPERIMENT,
        model_name=MODEL_NAME,
        run_ids=tuple(logged.run_id for logged, _, _ in trained),
        versions=tuple(version.version for version, _ in registered),
        scores={version.version: score for version, score in registered},
        metric=METRIC,
        champion=champion.version,
        challenger=challenger.version,
        approver=approver or workspace.settings.actor,
        wall_time_seconds=time.perf_counter() - started,
        snapshot=split.snapshot.fingerprint,
        quarantined=split.quarantined,
        features=tuple(split.features),
        database=workspace.store.display_url,
        artifacts=workspace.settings.resolved_artifacts_url(),
    )


# A fit function trains on the split, logs its curve to the run and returns the fitted model.
_Fit = Callable[[Run, DemoData], Any]


def _train(
    workspace: Workspace, split: DemoData, report: Report, kind: str, fit: _Fit
) -> tuple[LoggedModel, float, str]:
    title = kind.replace("-", " ")
    with workspace.start_run(EXPERIMENT, name=kind, seed=SEED, tags={"demo": "quickstart"}) as run:
        run.set_tag("model_family", kind)
        run.log_input(split.snapshot, name="measurements")
        run.log_input(split.train.assign(**{TARGET: split.y_train}), name="train")
        # A snapshot, so monitoring can compare live predictions with the model's on it.
        run.log_input(split.validation_snapshot, name="validation")
        model = fit(run, split)
        metrics = _validation_metrics(model, split)
        run.log_metrics(metrics)
        logged = run.log_model(model, input_example=split.train)
    summary = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())
    report(f"run {run.id} ({title}): {summary}")
    return logged, metrics[METRIC], title


def _fit_logistic_regression(run: Run, split: DemoData) -> Any:
    """Scaled logistic regression; its curve is a learning curve: validation log loss as the
    training set grows (step = number of training rows)."""
    params = {"C": 1.0, "max_iter": 1000}
    run.log_params({"model": "StandardScaler + LogisticRegression", **params})

    def make() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(**params))

    # train_test_split shuffled the rows, so each prefix is a random sample of the training set.
    for fraction in (0.1, 0.25, 0.5, 0.75):
        rows = int(len(split.train) * fraction)
        partial = make().fit(split.train.iloc[:rows], split.y_train.iloc[:rows])
        loss = _log_loss(split.y_valid, partial.predict_proba(split.valid)[:, 1])
        run.log_metric("learning_curve_log_loss", loss, step=rows)
    model = make().fit(split.train, split.y_train)
    loss = _log_loss(split.y_valid, model.predict_proba(split.valid)[:, 1])
    run.log_metric("learning_curve_log_loss", loss, step=len(split.train))
    return model


def _fit_gradient_boosting(run: Run, split: DemoData) -> Any:
    """Histogram gradient boosting; its curve is the validation log loss after each boosting
    iteration (step = iteration)."""
    params = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15}
    run.log_params({"model": "HistGradientBoostingClassifier", **params})
    model = HistGradientBoostingClassifier(**params, early_stopping=False, random_state=SEED)
    model.fit(split.train, split.y_train)
    for iteration, proba in enumerate(model.staged_predict_proba(split.valid), start=1):
        run.log_metric("iteration_log_loss", _log_loss(split.y_valid, proba[:, 1]), step=iteration)
    return model


def _validation_metrics(model: Any, split: DemoData) -> dict[str, float]:

    proba = model.predict_proba(split.valid)[:, 1]
    predicted = (proba >= 0.5).astype(int)
    return {
        "accuracy": float(accuracy_score(split.y_valid, predicted)),
        "roc_auc": float(roc_auc_score(split.y_valid, proba)),
        "f1": float(f1_score(split.y_valid, predicted)),
        "log_loss": _log_loss(split.y_valid, proba),
    }


def _log_loss(truth: pd.Series[Any], proba: Any) -> float:
    """Binary log loss; sklearn's validates its inputs on every call, which dominates the time
    of a 100-point curve."""
    p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
    y = truth.to_numpy(dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
