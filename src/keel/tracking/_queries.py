"""Reading runs back: get, list, search by experiment / tag / metric threshold, compare."""

from __future__ import annotations

import operator
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.errors import ExperimentNotFound, KeelError, RunNotFound
from keel.store import MetadataStore
from keel.store import _tables as t
from keel.tracking._run import RUNNING

#: computed when a run is read: recorded as running, but its process on this host is gone
LOST = "lost"

_COMPARATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_FILTER = re.compile(r"^\s*([^<>=!\s]+)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+|nan|inf)\s*$")


@dataclass(frozen=True)
class MetricFilter:
    """``accuracy >= 0.9`` on the last logged value of a metric."""

    key: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> MetricFilter:
        match = _FILTER.match(text)
        if match is None:
            raise KeelError(
                f"'{text}' is not a metric filter; write KEY OP NUMBER, e.g. 'accuracy>=0.9' "
                f"(operators: {' '.join(_COMPARATORS)})"
            )
        key, op, number = match.groups()
        try:
            return cls(key=key, op=op, value=float(number))
        except ValueError:
            raise KeelError(f"'{number}' in '{text}' is not a number") from None


@dataclass(frozen=True)
class RunRecord:
    """Everything recorded about one run."""

    id: str
    experiment: str
    name: str
    status: str
    actor: str
    started_at: float
    ended_at: float | None
    error: str | None
    code_commit: str | None
    code_dirty_hash: str | None
    environment: dict[str, Any]
    seeds: dict[str, Any]
    resources: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MetricPoint:
    step: int
    value: float
    timestamp: float


@dataclass(frozen=True)
class RunComparison:
    """Runs side by side: one row per param or metric, one column per run."""

    run_ids: list[str]
    params: dict[str, list[str | None]]
    metrics: dict[str, list[float | None]]

    def differing_params(self) -> dict[str, list[str | None]]:
        return {k: v for k, v in self.params.items() if len(set(v)) > 1}


class RunQueries:
    """Read-only access to recorded runs.

    runs = workspace.runs
    runs.search(experiment="churn", tags={"team": "risk"}, metrics=["auc>=0.8"])
    runs.compare([a.id, b.id]).differing_params()
    """

    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def get(self, run_id: str) -> RunRecord:
        with self._store.read() as connection:
            records = self._load(connection, _runs_query().where(t.runs.c.id == run_id))
        if not records:
            raise RunNotFound(run_id)
        return records[0]

    def search(
        self,
        experiment: str | None = None,
        tags: dict[str, str] | None = None,
        metrics: Sequence[str | MetricFilter] = (),
        status: str | None = None,
        order_by: str | None = None,
        ascending: bool = False,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs matching every condition, newest first (or by the last value of ``order_by``).

        ``metrics`` are thresholds on each metric's last logged value: ``"accuracy>=0.9"``.
        """
        filters = [m if isinstance(m, MetricFilter) else MetricFilter.parse(m) for m in metrics]
        query = _runs_query()
        with self._store.read() as connection:
            if experiment is not None:
                experiment_id = connection.execute(
                    sa.select(t.experiments.c.id).where(t.experiments.c.name == experiment)
                ).scalar()
                if experiment_id is None:
                    raise ExperimentNotFound(experiment)
                query = query.where(t.runs.c.experiment_id == experiment_id)
            # "lost" is decided when a run is read (its process is gone), not stored: search
            # the stored "running" runs and keep those whose computed status matches.
            computed = status in (RUNNING, LOST)
            if status is not None:
                query = query.where(t.runs.c.status == (RUNNING if computed else status))
            for index, (key, value) in enumerate((tags or {}).items()):
                tag = t.run_tags.alias(f"tag_{index}")
                query = query.join(
                    tag,
                    sa.and_(
                        tag.c.run_id == t.runs.c.id, tag.c.key == key, tag.c.value == str(value)
                    ),
                )
            for index, condition in enumerate(filters):
                metric = t.run_latest_metrics.alias(f"metric_{index}")
                compare = _COMPARATORS[condition.op]
                query = query.join(
                    metric,
                    sa.and_(
                        metric.c.run_id == t.runs.c.id,
                        metric.c.key == condition.key,
                        compare(metric.c.value, condition.value),
                    ),
                )
            if order_by is not None:
                sort = t.run_latest_metrics.alias("sort_metric")
                query = query.outerjoin(
                    sort, sa.and_(sort.c.run_id == t.runs.c.id, sort.c.key == order_by)
                )
                direction = sort.c.value.asc() if ascending else sort.c.value.desc()
                query = query.order_by(direction.nulls_last(), t.runs.c.started_at.desc())
            else:
                query = query.order_by(t.runs.c.started_at.desc())
            if limit is not None and not computed:
                query = query.limit(limit)
            records = self._load(connection, query)
        if computed:
            records = [r for r in records if r.status == status][:limit]
        return records

    def list_runs(self, experiment: str | None = None, limit: int | None = 50) -> list[RunRecord]:
        return self.search(experiment=experiment, limit=limit)

    def experiments(self) -> list[str]:
        with self._store.read() as connection:
            return list(
                connection.execute(
                    sa.select(t.experiments.c.name).order_by(t.experiments.c.name)
                ).scalars()
            )

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every value logged for ``key`` in step order."""
        self.get(run_id)
        with self._store.read() as connection:
            rows = connection.execute(
                sa.select(t.run_metrics.c.step, t.run_metrics.c.value, t.run_metrics.c.timestamp)
                .where(t.run_metrics.c.run_id == run_id, t.run_metrics.c.key == key)
                .order_by(t.run_metrics.c.step, t.run_metrics.c.timestamp, t.run_metrics.c.id)
            ).all()
        return [MetricPoint(step=r.step, value=r.value, timestamp=r.timestamp) for r in rows]

    def compare(self, run_ids: Sequence[str]) -> RunComparison:
        """Params and last metric values of several runs side by side."""
        records = [self.get(run_id) for run_id in run_ids]
        param_keys = sorted({k for r in records for k in r.params})
        metric_keys = sorted({k for r in records for k in r.metrics})
        return RunComparison(
            run_ids=[r.id for r in records],
            params={k: [r.params.get(k) for r in records] for k in param_keys},
            metrics={k: [r.metrics.get(k) for r in records] for k in metric_keys},
        )

    # -- loading ---------------------------------------------------------------------------------

    def _load(self, connection: Connection, query: sa.Select[Any]) -> list[RunRecord]:
        rows = connection.execute(query).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        params = _grouped(connection, t.run_params, ids, lambda r: (r.key, r.value))
        tags = _grouped(connection, t.run_tags, ids, lambda r: (r.key, r.value))
        metrics = _grouped(connection, t.run_latest_metrics, ids, lambda r: (r.key, r.value))
        artifacts = _grouped(
            connection,
            t.run_artifacts,
            ids,
            lambda r: (r.name, {"digest": r.digest, "kind": r.kind, **(r.details or {})}),
        )
        inputs = _grouped(
            connection,
            t.run_inputs,
            ids,
            lambda r: (
                r.name,
                {
                    "fingerprint": r.fingerprint,
                    "source": r.source,
                    "num_rows": r.num_rows,
                    "columns": r.columns,
                },
            ),
        )
        return [
            RunRecord(
                id=row.id,
                experiment=row.experiment,
                name=row.name,
                status=_effective_status(row.status, row.hostname, row.pid),
                actor=row.actor,
                started_at=row.started_at,
                ended_at=row.ended_at,
                error=row.error,
                code_commit=row.code_commit,
                code_dirty_hash=row.code_dirty_hash,
                environment=row.environment or {},
                seeds=row.seeds or {},
                resources=row.resources or {},
                params=params.get(row.id, {}),
                tags=tags.get(row.id, {}),
                metrics=metrics.get(row.id, {}),
                artifacts=artifacts.get(row.id, {}),
                inputs=inputs.get(row.id, {}),
            )
            for row in rows
        ]


def _runs_query() -> sa.Select[Any]:
    return sa.select(t.runs, t.experiments.c.name.label("experiment")).join(
        t.experiments, t.experiments.c.id == t.runs.c.experiment_id
    )


def _grouped(
    connection: Connection,
    table: sa.Table,
    run_ids: Iterable[str],
    item: Callable[[Any], tuple[str, Any]],
) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for row in connection.execute(sa.select(table).where(table.c.run_id.in_(list(run_ids)))):
        key, value = item(row)
        grouped.setdefault(row.run_id, {})[key] = value
    return grouped


def _effective_status(status: str, hostname: str | None, pid: int | None) -> str:
    """A run recorded as running whose process on this host is gone crashed without a word
    (SIGKILL, power loss): show it as ``lost`` rather than running forever."""
    if status != RUNNING or hostname != socket.gethostname() or pid is None:
        return status
    return status if psutil.pid_exists(pid) else LOST
