"""A monitored endpoint with a history worth reporting on: steady hours, then a shift."""

from __future__ import annotations

import pandas as pd

from keel import Workspace
from keel.monitoring import DEFAULT_RULES, AlertEvaluator, MonitorRunner, Windows
from monitoring.test_runner import HOUR, T0, training_frame, write_labels, write_traffic

STEADY_HOURS = 5
SHIFTED_HOURS = 3


def shifted_frame(rows: int, seed: int) -> pd.DataFrame:
    """``age`` moved up by 8 years; ``plan`` leans to "pro"; ``income`` unchanged."""
    frame = training_frame(rows, seed=seed)
    frame["age"] += 8
    frame.loc[: rows // 3, "plan"] = "pro"
    return frame


def monitored_history(workspace: Workspace) -> float:
    """Writes the traffic and labels of ``STEADY_HOURS`` steady then ``SHIFTED_HOURS`` shifted
    hours of the "churn" endpoint, computes its windows and evaluates the built-in alert rules;
    returns the end of the last window."""
    hours = [training_frame(1_000, seed=10 + h) for h in range(STEADY_HOURS)]
    hours += [shifted_frame(1_000, seed=20 + h) for h in range(SHIFTED_HOURS)]
    write_traffic(workspace, hours)
    for hour, frame in enumerate(hours):
        write_labels(workspace, hour, list(frame["age"] > 40))
    end = T0 + len(hours) * HOUR
    MonitorRunner(workspace, windows=Windows(seconds=HOUR), min_labels=100).run(
        "churn", now=end + 120
    )
    AlertEvaluator(
        workspace.store, DEFAULT_RULES, actor="watcher", clock=lambda: end + 60
    ).evaluate(endpoint="churn")
    return end
