"""Monitor results written straight into ``monitor_results``: the contract alerting reads."""

from __future__ import annotations

from typing import Any

from keel.store import MetadataStore
from keel.store import _tables as t

HOUR = 3600.0


def put_result(
    store: MetadataStore,
    *,
    start: float,
    end: float | None = None,
    endpoint: str = "churn",
    monitor: str = "drift",
    subject: str = "age",
    statistic: str = "ks",
    value: float | None = 0.3,
    p_value: float | None = 0.001,
    threshold: float | None = 0.05,
    status: str = "drift",
    rows: int = 1000,
    model_version: int = 0,
    details: dict[str, Any] | None = None,
) -> None:
    with store.write() as connection:
        connection.execute(
            t.monitor_results.insert().values(
                endpoint=endpoint,
                window_start=start,
                window_end=start + HOUR if end is None else end,
                monitor=monitor,
                subject=subject,
                model_version=model_version,
                statistic=statistic,
                value=value,
                p_value=p_value,
                threshold=threshold,
                status=status,
                rows=rows,
                details=details or {},
                computed_at=start,
            )
        )


def put_clean(store: MetadataStore, *, start: float, **fields: Any) -> None:
    """A result of the same series that says "no drift"."""
    put_result(store, start=start, value=0.01, p_value=0.8, status="ok", **fields)


class Clock:
    """The evaluator's time, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# What `remember` was called with: the target of the callable actions under test.
CALLS: list[dict[str, Any]] = []


def remember(alert: dict[str, Any]) -> str:
    CALLS.append(alert)
    return "retrain queued"


def explode(alert: dict[str, Any]) -> None:
    raise RuntimeError(f"cannot retrain {alert['endpoint']}")
