"""Monitor results in the metadata store: one row per statistic, subject and window.

    results = ResultStore(workspace.store)
    results.save(endpoint, start, end, rows=5_000, status="computed", results=[...])
    results.query("churn", monitor="drift", since=time.time() - 86_400)   # oldest first
    results.frame("churn")                                                # as a DataFrame

A window is saved with its results in one transaction, so a run that stops half-way leaves no
half-saved window; saving a window again (a forced re-run) replaces its results. The
``monitor_windows`` row is what makes ``keel monitor run`` idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

from keel.store import MetadataStore, now
from keel.store import _tables as t


@dataclass(frozen=True)
class MonitorResult:
    """One statistic of one monitor over one window (``model_version`` 0: all versions)."""

    endpoint: str
    window_start: float
    window_end: float
    monitor: str
    subject: str
    statistic: str
    status: str
    rows: int
    value: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    model_version: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "details": dict(self.details)}


def result_maker(
    endpoint: str, start: float, end: float, monitor: str
) -> Callable[..., MonitorResult]:
    """``MonitorResult`` with the window and monitor filled in: ``make(subject, statistic,
    status, rows, value=..., ...)``."""

    def make(subject: str, statistic: str, status: str, rows: int, **values: Any) -> MonitorResult:
        return MonitorResult(
            endpoint, start, end, monitor, subject, statistic, status, rows, **values
        )

    return make


class ResultStore:
    """Reads and writes ``monitor_windows`` and ``monitor_results``."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def computed(self, endpoint: str) -> set[tuple[float, float]]:
        """The (start, end) of every window of ``endpoint`` already computed."""
        with self.store.read() as connection:
            rows = connection.execute(
                sa.select(t.monitor_windows.c.window_start, t.monitor_windows.c.window_end).where(
                    t.monitor_windows.c.endpoint == endpoint
                )
            )
            return {(row.window_start, row.window_end) for row in rows}

    def window_sizes(self, endpoint: str, before: float, limit: int) -> list[int]:
        """Rows of the last ``limit`` windows of ``endpoint`` that ended by ``before``."""
        windows = t.monitor_windows
        with self.store.read() as connection:
            rows = connection.execute(
                sa.select(windows.c.rows)
                .where(windows.c.endpoint == endpoint, windows.c.window_end <= before)
                .order_by(windows.c.window_end.desc())
                .limit(limit)
            )
            return [int(row.rows) for row in rows]

    def save(
        self,
        endpoint: str,
        start: float,
        end: float,
        *,
        rows: int,
        status: str,
        results: Iterable[MonitorResult],
    ) -> None:
        """Record the window and its results, replacing what an earlier run saved for it."""
        at = now()
        values = [
            {
                "endpoint": r.endpoint,
                "window_start": r.window_start,
                "window_end": r.window_end,
                "monitor": r.monitor,
                "subject": r.subject,
                "model_version": r.model_version,
                "statistic": r.statistic,
                "value": r.value,
                "p_value": r.p_value,
                "threshold": r.threshold,
                "status": r.status,
                "rows": r.rows,
                "details": dict(r.details),
                "computed_at": at,
            }
            for r in results
        ]
        same_window = (
            (t.monitor_windows.c.endpoint == endpoint)
            & (t.monitor_windows.c.window_start == start)
            & (t.monitor_windows.c.window_end == end)
        )
        with self.store.write() as connection:
            connection.execute(
                t.monitor_results.delete().where(
                    t.monitor_results.c.endpoint == endpoint,
                    t.monitor_results.c.window_start == start,
                    t.monitor_results.c.window_end == end,
                )
            )
            connection.execute(t.monitor_windows.delete().where(same_window))
            connection.execute(
                t.monitor_windows.insert().values(
                    endpoint=endpoint,
                    window_start=start,
                    window_end=end,
                    rows=rows,
                    status=status,
                    computed_at=at,
                )
            )
            if values:
                connection.execute(t.monitor_results.insert(), values)

    def query(
        self,
        endpoint: str | None = None,
        *,
        monitor: str | None = None,
        subject: str | None = None,
        statistic: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[MonitorResult]:
        """Results matching every filter given, oldest window first (``since``/``until`` bound
        the window's end)."""
        r = t.monitor_results
        query = sa.select(r).order_by(r.c.window_end, r.c.endpoint, r.c.monitor, r.c.subject)
        for column, wanted in (
            (r.c.endpoint, endpoint),
            (r.c.monitor, monitor),
            (r.c.subject, subject),
            (r.c.statistic, statistic),
        ):
            if wanted is not None:
                query = query.where(column == wanted)
        if since is not None:
            query = query.where(r.c.window_end >= since)
        if until is not None:
            query = query.where(r.c.window_end <= until)
        with self.store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            MonitorResult(
                endpoint=row["endpoint"],
                window_start=row["window_start"],
                window_end=row["window_end"],
                monitor=row["monitor"],
                subject=row["subject"],
                statistic=row["statistic"],
                status=row["status"],
                rows=int(row["rows"]),
                value=row["value"],
                p_value=row["p_value"],
                threshold=row["threshold"],
                model_version=int(row["model_version"]),
                details=row["details"] or {},
            )
            for row in rows
        ]

    def frame(self, endpoint: str | None = None, **filters: Any) -> pd.DataFrame:
        """:meth:`query` as a DataFrame (one row per result; ``details`` as dicts)."""
        found = self.query(endpoint, **filters)
        columns = list(MonitorResult.__dataclass_fields__)
        return pd.DataFrame([r.to_dict() for r in found], columns=columns)
