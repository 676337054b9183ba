"""Experiment tracking: runs, what they log, and reading them back."""

from keel.tracking._queries import (
    MetricFilter,
    MetricPoint,
    RunComparison,
    RunQueries,
    RunRecord,
)
from keel.tracking._run import FAILED, FINISHED, KILLED, RUNNING, LoggedModel, Run

__all__ = [
    "FAILED",
    "FINISHED",
    "KILLED",
    "RUNNING",
    "LoggedModel",
    "MetricFilter",
    "MetricPoint",
    "Run",
    "RunComparison",
    "RunQueries",
    "RunRecord",
]
