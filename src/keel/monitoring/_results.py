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

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MonitorResult:
        """A result from a ``monitor_results`` row (or a dict shaped like one)."""
        return cls(
            endpoint=row["endpoint"],
            window_start=row["window_start"],
            window_end=row["window_end"],
            monitor=row["monitor"],
            subject=row["subject"],
            statistic=row["statistic"],
            status=row["status"],
            rows=int(row["rows"]),
            value=row.get("value"),
            p_value=row.get("p_value"),
            threshold=row.get("threshold"),
            model_version=int(row.get("model_version") or 0),
            details=row.get("details") or {},
        )


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

    def computed(self, endpoint: str) -> dict[tuple[float, float], float]:
        """When each window of ``endpoint`` already computed was last computed, by its
        (start, end)."""
        windows = t.monitor_windows
        with self.store.read() as connection:
            rows = connection.execute(
                sa.select(
                    windows.c.window_start, windows.c.window_end, windows.c.computed_at
                ).where(windows.c.endpoint == endpoint)
            )
            return {(row.window_start, row.window_end): row.computed_at for row in rows}

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
        at: float | None = None,
    ) -> None:
        """Record the window and its results, replacing what an earlier run saved for it;
        ``at`` is when it was computed (default: now)."""
        at = now() if at is None else at
        values = [_row(r, at) for r in results]
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

    def replace(
        self,
        endpoint: str,
        start: float,
        end: float,
        *,
        monitors: Iterable[str],
        results: Iterable[MonitorResult],
        at: float | None = None,
    ) -> None:
        """Replace the results of ``monitors`` for a window already saved (labels that arrived
        later), leaving its other results alone."""
        at = now() if at is None else at
        names = list(monitors)
        values = [_row(r, at) for r in results]
        r, w = t.monitor_results, t.monitor_windows
        with self.store.write() as connection:
            connection.execute(
                r.delete().where(
                    r.c.endpoint == endpoint,
                    r.c.window_start == start,
                    r.c.window_end == end,
                    r.c.monitor.in_(names),
                )
            )
            if values:
                connection.execute(r.insert(), values)
            connection.execute(
                w.update()
                .where(w.c.endpoint == endpoint, w.c.window_start == start, w.c.window_end == end)
                .values(computed_at=at)
            )

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
        return [MonitorResult.from_row(dict(row)) for row in rows]

    def frame(self, endpoint: str | None = None, **filters: Any) -> pd.DataFrame:
        """:meth:`query` as a DataFrame (one row per result; ``details`` as dicts)."""
        found = self.query(endpoint, **filters)
        columns = list(MonitorResult.__dataclass_fields__)
        return pd.DataFrame([r.to_dict() for r in found], columns=columns)


def _row(result: MonitorResult, at: float) -> dict[str, Any]:
    return {
        "endpoint": result.endpoint,
        "window_start": result.window_start,
        "window_end": result.window_end,
        "monitor": result.monitor,
        "subject": result.subject,
        "model_version": result.model_version,
        "statistic": result.statistic,
        "value": result.value,
        "p_value": result.p_value,
        "threshold": result.threshold,
        "status": result.status,
        "rows": result.rows,
        "details": dict(result.details),
        "computed_at": at,
    }
