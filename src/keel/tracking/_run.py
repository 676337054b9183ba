"""A training run: what it logs, buffered and written to the metadata store."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel._packaging import Signature, fingerprint, package_model
from keel.artifacts import ArtifactRef, ArtifactStore
from keel.config import TrackingSettings
from keel.data._snapshot import Snapshot
from keel.errors import KeelError, MetadataStoreUnavailable, RunNotActive, TrackingError
from keel.store import MetadataStore, insert_ignore, now, upsert
from keel.store import _tables as t
from keel.tracking._capture import ResourceMeter, apply_seed, code_version, environment

RUNNING, FINISHED, FAILED, KILLED = "running", "finished", "failed", "killed"
MAX_KEY_LENGTH = 255  # the width of the key columns of run_params, run_tags and run_metrics


@dataclass(frozen=True)
class LoggedModel:
    """A model saved by a run: where its bytes are and what it takes and gives."""

    run_id: str
    name: str
    flavor: str
    artifact: ArtifactRef
    library_versions: dict[str, str]
    signature: Signature

    @property
    def uri(self) -> str:
        return f"runs:/{self.run_id}/{self.name}"


def record_artifact(connection: Connection, ref: ArtifactRef) -> None:
    """Record an artifact's digest and size (idempotent: the same bytes are one artifact)."""
    insert_ignore(
        connection, t.artifacts, [{"digest": ref.digest, "size": ref.size, "created_at": now()}]
    )


class Run:
    """One training run. Use it as a context manager so it always ends with a status:

        with workspace.start_run(experiment="churn", params={"C": 1.0}) as run:
            run.log_metric("loss", 0.3, step=1)
            run.log_input(train_df, name="train")
            run.log_model(model, input_example=train_df)

    Metric values are buffered and written in batches (size and age limits come from
    ``[tracking]`` settings); everything else is written when it is logged. Leaving the block
    with an exception marks the run ``failed`` with the error; Ctrl-C marks it ``killed``.
    """

    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactStore,
        settings: TrackingSettings,
        *,
        experiment: str,
        name: str | None,
        actor: str,
        seed: int | None,
        code_dir: Path,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._settings = settings
        self.id = uuid.uuid4().hex
        self.experiment = experiment
        self.name = name or f"run-{self.id[:8]}"
        self.status = RUNNING
        self._meter = ResourceMeter()
        self._pending: list[dict[str, Any]] = []
        self._pending_since = 0.0
        self._steps: dict[str, int] = {}
        self._params: dict[str, str] = {}
        self._end_callbacks: list[Callable[[], None]] = []
        # Guards the metric buffer, shared with the thread that writes values past their age.
        self._lock = threading.Lock()
        self._stop_flusher = threading.Event()
        self._flusher: threading.Thread | None = None
        self.seeds = apply_seed(seed)
        code = code_version(code_dir)
        # gathered before the write transaction: scanning packages takes tens of milliseconds,
        # and on SQLite the transaction holds the database's write lock
        captured_environment = environment(settings.capture_packages)
        started = now()
        with store.write() as connection:
            experiment_id = _experiment_id(connection, experiment)
            connection.execute(
                t.runs.insert().values(
                    id=self.id,
                    experiment_id=experiment_id,
                    name=self.name,
                    status=RUNNING,
                    actor=actor,
                    started_at=started,
                    code_commit=code.commit,
                    code_dirty_hash=code.dirty_hash,
                    environment=captured_environment,
                    seeds=self.seeds,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                )
            )

    @property
    def seed(self) -> int:
        return int(self.seeds["seed"])

    def _check_active(self) -> None:
        if self.status != RUNNING:
            raise RunNotActive(self.id, self.status)

    # -- params and tags -------------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        """Record hyper-parameters. A param is set once: logging another value for it fails."""
        self._check_active()
        new: dict[str, str] = {}
        for key, value in params.items():
            _check_key("param", key)
            text = str(value)
            previous = self._params.get(key, new.get(key))
            if previous is not None and previous != text:
                raise TrackingError(
                    f"param '{key}' of run {self.id} is already '{previous}'; params are "
                    "immutable, log a metric or a tag for values that change"
                )
            new[key] = text
        rows = [{"run_id": self.id, "key": k, "value": v} for k, v in new.items()]
        with self._store.write() as connection:
            insert_ignore(connection, t.run_params, rows)
        self._params.update(new)  # only once they are stored

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set tags (mutable labels used to search runs)."""
        self._check_active()
        for key in tags:
            _check_key("tag", key)
        rows = [{"run_id": self.id, "key": k, "value": str(v)} for k, v in tags.items()]
        with self._store.write() as connection:
            upsert(connection, t.run_tags, rows, update=["value"])

    # -- metrics ---------------------------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Buffer one metric value. Without ``step``, steps count up per key from 0."""
        self._check_active()
        _check_key("metric", key)
        number = float(value)
        if not math.isfinite(number):
            raise TrackingError(f"metric '{key}' got {number}, which is not a finite number")
        if step is None:
            step = self._steps.get(key, -1) + 1
        self._steps[key] = max(step, self._steps.get(key, -1))
        row = {
            "run_id": self.id,
            "key": key,
            "value": number,
            "step": int(step),
            "timestamp": now() if timestamp is None else timestamp,
        }
        with self._lock:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.append(row)
            due = (
                len(self._pending) >= self._settings.metric_batch_size
                or time.monotonic() - self._pending_since >= self._settings.metric_flush_seconds
            )
        if due:
            self.flush()
        elif self._flusher is None:
            self._start_flusher()

    def _start_flusher(self) -> None:
        """Start the thread that writes buffered values once they reach the age limit, so a
        quiet run loses at most ``metric_flush_seconds`` of values if its process dies."""
        self._flusher = threading.Thread(
            target=self._flush_aged, name=f"keel-run-{self.id[:8]}-metrics", daemon=True
        )
        self._flusher.start()

    def _flush_aged(self) -> None:
        limit = self._settings.metric_flush_seconds
        while not self._stop_flusher.wait(max(limit / 4, 0.02)):
            with self._lock:
                aged = bool(self._pending) and time.monotonic() - self._pending_since >= limit
            if aged:
                # a failure keeps the values buffered; the next flush or end() retries them
                with contextlib.suppress(KeelError):
                    self.flush()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step=step)

    def flush(self) -> None:
        """Write buffered metric values now (also done on end and when the buffer fills)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        latest: dict[str, dict[str, Any]] = {}
        for row in batch:
            current = latest.get(row["key"])
            if current is None or (row["step"], row["timestamp"]) >= (
                current["step"],
                current["timestamp"],
            ):
                latest[row["key"]] = row
        try:
            with self._store.write() as connection:
                connection.execute(t.run_metrics.insert(), batch)
                upsert(
                    connection,
                    t.run_latest_metrics,
                    list(latest.values()),
                    update=["value", "step", "timestamp"],
                    only_if=lambda table, new: (
                        sa.tuple_(table.c.step, table.c.timestamp)
                        <= sa.tuple_(new.step, new.timestamp)
                    ),
                )
        except MetadataStoreUnavailable:
            with self._lock:  # keep them for the next attempt
                self._pending = batch + self._pending
                self._pending_since = time.monotonic()
            raise

    # -- artifacts, inputs, models ---------------------------------------------------------------

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> ArtifactRef:
        """Store a file in the artifact store and link it to this run under ``name``."""
        self._check_active()
        ref = self._artifacts.put_file(path)
        self._link_artifact(name or Path(path).name, ref, kind="file", details={})
        return ref

    def log_bytes(self, name: str, data: bytes) -> ArtifactRef:
        self._check_active()
        ref = self._artifacts.put_bytes(data)
        self._link_artifact(name, ref, kind="file", details={})
        return ref

    def _link_artifact(
        self, name: str, ref: ArtifactRef, kind: str, details: dict[str, Any]
    ) -> None:
        with self._store.write() as connection:
            record_artifact(connection, ref)
            upsert(
                connection,
                t.run_artifacts,
                [
                    {
                        "run_id": self.id,
                        "name": name,
                        "digest": ref.digest,
                        "kind": kind,
                        "details": details,
                    }
                ],
                update=["digest", "kind", "details"],
            )

    def log_input(
        self, data: pd.DataFrame | Snapshot | str | os.PathLike[str], name: str = "training"
    ) -> str:
        """Record the fingerprint of a data set this run read (a frame, a snapshot, or a file or
        directory); returns the fingerprint. A snapshot is recorded by its fingerprint, with
        ``snapshot:<name>`` as the source."""
        self._check_active()
        if isinstance(data, Snapshot):
            source, rows, columns = f"snapshot:{data.name}", data.num_rows, data.columns
            digest = data.fingerprint
        elif isinstance(data, pd.DataFrame):
            source, rows, columns = "dataframe", len(data), [str(c) for c in data.columns]
            digest = fingerprint(data)
        else:
            path = Path(data)
            if not path.exists():
                raise TrackingError(f"input '{name}': {path} does not exist")
            source, rows, columns = str(path.resolve()), None, None
            digest = fingerprint(path)
        with self._store.write() as connection:
            upsert(
                connection,
                t.run_inputs,
                [
                    {
                        "run_id": self.id,
                        "name": name,
                        "fingerprint": digest,
                        "source": source,
                        "num_rows": rows,
                        "columns": columns,
                    }
                ],
                update=["fingerprint", "source", "num_rows", "columns"],
            )
        return digest

    def log_model(
        self,
        model: Any,
        input_example: pd.DataFrame,
        name: str = "model",
        flavor: str | None = None,
    ) -> LoggedModel:
        """Save a fitted model with its flavor; its signature is inferred from
        ``input_example`` (the training inputs). Register it with ``registry.register``."""
        self._check_active()
        packaged = package_model(model, input_example, flavor)
        ref = self._artifacts.put_bytes(packaged.saved.data)
        details = {
            "flavor": packaged.saved.flavor,
            "library_versions": packaged.saved.library_versions,
            "signature": packaged.signature.to_dict(),
        }
        self._link_artifact(name, ref, kind="model", details=details)
        return LoggedModel(
            run_id=self.id,
            name=name,
            flavor=packaged.saved.flavor,
            artifact=ref,
            library_versions=packaged.saved.library_versions,
            signature=packaged.signature,
        )

    # -- ending ----------------------------------------------------------------------------------

    def on_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the run has ended (used to release what it was opened with)."""
        self._end_callbacks.append(callback)

    def end(self, status: str = FINISHED, error: str | None = None) -> None:
        """Flush what is buffered and record the final status and resource use."""
        if self.status != RUNNING:
            return
        self._stop_flusher.set()
        if self._flusher is not None:
            self._flusher.join()
        flush_error: KeelError | None = None
        try:
            self.flush()
        except KeelError as caught:  # still record the end; report the lost metrics below
            flush_error = caught
            lost = f"metrics could not be written: {caught}"
            status, error = FAILED, f"{error}\n{lost}" if error else lost
        self.status = status
        try:
            with self._store.write() as connection:
                connection.execute(
                    t.runs.update()
                    .where(t.runs.c.id == self.id)
                    .values(
                        status=status, ended_at=now(), error=error, resources=self._meter.read()
                    )
                )
        finally:
            for callback in self._end_callbacks:
                callback()
        if flush_error is not None:
            raise flush_error

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self.end(FINISHED)
        elif isinstance(exc, KeyboardInterrupt):
            self.end(KILLED, "interrupted (KeyboardInterrupt)")
        else:
            summary = f"{type(exc).__name__}: {exc}"
            trace = "".join(traceback.format_exception(exc_type, exc, tb)[-6:])
            self.end(FAILED, f"{summary}\n{trace}")


def _check_key(kind: str, key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise TrackingError(
            f"{kind} name {key!r} is not usable: names are non-empty strings of at most "
            f"{MAX_KEY_LENGTH} characters"
        )


def _experiment_id(connection: Connection, name: str) -> int:
    insert_ignore(connection, t.experiments, [{"name": name, "created_at": now()}])
    found = connection.execute(
        sa.select(t.experiments.c.id).where(t.experiments.c.name == name)
    ).scalar_one()
    return int(found)
