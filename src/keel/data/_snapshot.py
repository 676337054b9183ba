"""Snapshots: immutable Parquet data sets identified by a fingerprint of their content.

A snapshot is written once and never changed. Its data is one Parquet file in the
content-addressed artifact store; its row in the metadata store holds the fingerprint, the
schema, the column profile (the reference monitoring compares live traffic against) and the
lineage: where the data came from (``sources``), which snapshots it was derived from
(``parents``) and the code that produced it (git commit + hash of uncommitted changes).

**What the fingerprint covers.** It is the content hash (:func:`keel._packaging.fingerprint`)
of the frame :meth:`SnapshotStore.load` returns: column names, types and every value, **in row
order** (row order is part of the content: sorted and unsorted copies of the same rows are two
snapshots). Parquet encoding details (compression, row groups, page sizes) do not enter it, so
it is also what ``Run.log_input`` records for the loaded frame. A DataFrame's index is not data:
named index levels become columns, an unnamed index is dropped.

**Bytes.** The Parquet file is written with fixed options and no timestamps, so the same data
gives the same bytes (for the same pyarrow and pandas versions) and is stored once.
"""

from __future__ import annotations

import builtins
import io
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from keel.artifacts import ArtifactRef, ArtifactStore
from keel.data._profile import Profile, profile
from keel.data._profile_diff import ProfileDiff, profile_diff
from keel.data._schema import Schema, SchemaDiff
from keel.errors import (
    DataError,
    SnapshotNotFound,
)
from keel.store import MetadataStore, insert_ignore, now
from keel.store import _tables as t

#: the shortest fingerprint prefix accepted as a reference
MIN_PREFIX = 8
MAX_NAME_LENGTH = 255  # the width of snapshots.name
# Fixed writer options: the same table always encodes to the same bytes.
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "version": "2.6",
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 1 << 20,
    "data_page_size": 1 << 20,
    "store_schema": True,
}
_HEX = re.compile(r"^[0-9a-f]+$")

#: what can be snapshotted: a frame, an Arrow table, or a path to read
Data: TypeAlias = pd.DataFrame | pa.Table | str | os.PathLike[str]


@dataclass(frozen=True)
class Snapshot:
    """One immutable data set: where its Parquet bytes are and what they hold.

    snap = workspace.snapshots.create(train_df, name="churn-train")
    snap.fingerprint, snap.num_rows, snap.schema.names, snap.profile["age"].mean
    """

    fingerprint: str
    name: str
    artifact: ArtifactRef
    num_rows: int
    schema: Schema
    profile: Profile
    lineage: dict[str, Any]
    created_at: float
    created_by: str

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "artifact": {"digest": self.artifact.digest, "size": self.artifact.size},
            "num_rows": self.num_rows,
            "schema": self.schema.to_dict(),
            "profile": self.profile.to_dict(),
            "lineage": self.lineage,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class SnapshotDiff:
    """What changed from snapshot ``a`` to snapshot ``b``: columns and their profiles."""

    a: Snapshot
    b: Snapshot
    schema: SchemaDiff
    profile: ProfileDiff

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.fingerprint,
            "b": self.b.fingerprint,
            "schema": {
                "added": [f.to_dict() for f in self.schema.added],
                "removed": [f.to_dict() for f in self.schema.removed],
                "retyped": [
                    {"old": old.to_dict(), "new": new.to_dict()} for old, new in self.schema.retyped
                ],
            },
            "profile": self.profile.to_dict(),
        }


class SnapshotStore:
    """Create, find, load and compare snapshots.

        snapshots = workspace.snapshots
        snap = snapshots.create("data/train.parquet", name="churn-train")
        frame = snapshots.load("churn-train")          # the latest snapshot of that name
        snapshots.diff(old.fingerprint, snap.fingerprint).profile["age"].psi

    References (``ref``) are a full fingerprint, a name (its newest snapshot) or a fingerprint
    prefix of at least 8 characters, tried in that order.
    """

    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactStore,
        actor: str,
        *,
        code_dir: Path | None = None,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._actor = actor
        self._code_dir = code_dir

    # -- creating --------------------------------------------------------------------------------

    def create(
        self,
        data: Data,
        name: str,
        *,
        parents: Iterable[str] = (),
        sources: Sequence[str] | None = None,
        code_dir: str | os.PathLike[str] | None = None,
    ) -> Snapshot:
        """Snapshot ``data`` (a DataFrame, an Arrow table, or the path of a Parquet file, a CSV
        file or a directory of Parquet files) under ``name``.

        ``parents`` are references to the snapshots this data was derived from (each must
        exist); ``sources`` default to the paths read; the code version is read from the git
        tree holding ``code_dir`` (default: the project directory). Snapshotting data that is
        already snapshotted under the same name returns that snapshot unchanged; under another
        name it is refused (one fingerprint, one snapshot)."""
        # imported here, not at the top: keel._packaging and keel.tracking import keel.data,
        # whose package exports this module
        from keel._packaging import fingerprint
        from keel.tracking._capture import code_version
        from keel.tracking._run import record_artifact

        _check_name(name)
        parent_fingerprints = [self.get(ref).fingerprint for ref in parents]
        table, read_paths = _read(data)
        recorded_sources = list(sources) if sources is not None else read_paths
        with tempfile.TemporaryDirectory(prefix="keel-snapshot-") as scratch:
            parquet = Path(scratch) / "data.parquet"
            _write_parquet(table, parquet)
            del table
            # The fingerprint is taken from the frame as it reads back, so it is exactly the
            # fingerprint of what load() returns.
            frame = pq.read_table(parquet).to_pandas()
            digest = fingerprint(frame)
            existing = self._find(digest)
            if existing is not None:
                return _same_name(existing, name)
            ref = self._artifacts.put_file(parquet)
        lineage = {
            "sources": recorded_sources,
            "parents": parent_fingerprints,
            "code": asdict(code_version(Path(code_dir or self._code_dir or Path.cwd()))),
        }
        row = {
            "fingerprint": digest,
            "name": name,
            "artifact_digest": ref.digest,
            "num_rows": len(frame),
            "schema": Schema.from_frame(frame).to_dict(),
            "profile": profile(frame).to_dict(),
            "lineage": lineage,
            "created_at": now(),
            "created_by": self._actor,
        }
        with self._store.write() as connection:
            record_artifact(connection, ref)
            insert_ignore(connection, t.snapshots, [row])
            stored = _select().where(t.snapshots.c.fingerprint == digest)
            found = connection.execute(stored).mappings().one()
        # another writer may have stored the same data first: theirs stands
        return _same_name(_from_row(found), name)

    # -- finding ---------------------------------------------------------------------------------

    def get(self, ref: str) -> Snapshot:
        """The snapshot with this fingerprint, name (the newest) or fingerprint prefix."""
        with self._store.read() as connection:
            row = _resolve(connection, ref)
        return _from_row(row)

    def list(self, name: str | None = None) -> builtins.list[Snapshot]:
        """Snapshots, newest first; only those named ``name`` when given."""
        query = _select()
        if name is not None:
            query = query.where(t.snapshots.c.name == name)
        query = query.order_by(t.snapshots.c.created_at.desc(), t.snapshots.c.fingerprint)
        with self._store.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [_from_row(row) for row in rows]

    def _find(self, digest: str) -> Snapshot | None:
        with self._store.read() as connection:
            query = _select().where(t.snapshots.c.fingerprint == digest)
            row = connection.execute(query).mappings().one_or_none()
        return _from_row(row) if row is not None else None

    # -- reading ---------------------------------------------------------------------------------

    def load(self, ref: str | Snapshot) -> pd.DataFrame:
        """The snapshot's data, after checking its bytes against the recorded sha256."""
        snapshot = ref if isinstance(ref, Snapshot) else self.get(ref)
        data = self._artifacts.get_bytes(snapshot.artifact.digest, size=snapshot.artifact.size)
        frame: pd.DataFrame = pq.read_table(io.BytesIO(data)).to_pandas()
        return frame

    def path(self, ref: str | Snapshot) -> str:
        """A local path of the snapshot's verified Parquet file, for DuckDB and other readers.

        For a local artifact store it is the stored file itself (hashed before it is handed
        out); otherwise a verified copy in a cache directory under the system temp dir. Treat
        the file as read-only."""
        snapshot = ref if isinstance(ref, Snapshot) else self.get(ref)
        artifact = snapshot.artifact
        return str(self._artifacts.verified_path(artifact.digest, size=artifact.size))

    # -- comparing -------------------------------------------------------------------------------

    def diff(self, a: str | Snapshot, b: str | Snapshot) -> SnapshotDiff:
        """Schema and profile changes from ``a`` to ``b``. ``b``'s numeric columns are re-binned
        into ``a``'s histogram edges (reading ``b``'s data), so their PSI can be reported."""
        old = a if isinstance(a, Snapshot) else self.get(a)
        new = b if isinstance(b, Snapshot) else self.get(b)
        shared = [
            c.name
            for c in new.profile
            if c.is_numeric and c.name in old.profile and old.profile[c.name].histogram
        ]
        new_profile = new.profile
        if shared:
            columns = pq.read_table(self.path(new), columns=shared).to_pandas()
            rebinned = profile(columns, reference=old.profile)
            new_profile = Profile(
                num_rows=new.profile.num_rows,
                columns=tuple(
                    rebinned[c.name] if c.name in shared else c for c in new.profile.columns
                ),
            )
        return SnapshotDiff(
            a=old,
            b=new,
            schema=old.schema.diff(new.schema),
            profile=profile_diff(old.profile, new_profile),
        )


# -- reading the input -----------------------------------------------------------------------------


def read_data(data: Data) -> pa.Table:
    """A frame, an Arrow table, or a Parquet/CSV file or directory of Parquet files, read the
    way a snapshot reads it (index levels as columns, text column names)."""
    return _read(data)[0]


def _read(data: Data) -> tuple[pa.Table, list[str]]:
    """The input as a normalised Arrow table, and the paths it was read from."""
    if isinstance(data, pd.DataFrame):
        return _from_frame(data), []
    if isinstance(data, pa.Table):
        return _from_frame(data.to_pandas()), []
    if not isinstance(data, str | os.PathLike):
        raise DataError(
            f"cannot snapshot a {type(data).__name__}: give a pandas DataFrame, a pyarrow "
            "Table, or the path of a Parquet file, a CSV file or a directory of Parquet files"
        )
    path = Path(data)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if not files:
            raise DataError(f"cannot snapshot {path}: the directory holds no .parquet files")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"cannot snapshot {path}: no such file or directory")
    tables = [_read_file(file) for file in files]
    try:
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except pa.ArrowInvalid as error:
        raise DataError(f"the Parquet files in {path} do not share one schema: {error}") from None
    return _from_frame(table.to_pandas()), [str(file.resolve()) for file in files]


def _read_file(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pq.read_table(path)
        if suffix == ".csv":
            return pyarrow.csv.read_csv(path)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    raise DataError(f"cannot snapshot {path}: only .parquet, .pq and .csv files are read")


def _from_frame(frame: pd.DataFrame) -> pa.Table:
    """A frame without its index (named index levels become columns) and with text column
    names, as an Arrow table."""
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    if isinstance(frame.columns, pd.MultiIndex):
        raise DataError("cannot snapshot a frame with multi-level column names; flatten them")
    names = [str(name) for name in frame.columns]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DataError(f"cannot snapshot a frame with duplicate columns: {', '.join(duplicated)}")
    frame = frame.set_axis(names, axis="columns")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise DataError(f"cannot store this frame as Parquet: {error}") from None


def _write_parquet(table: pa.Table, path: Path) -> None:
    try:
        pq.write_table(table, path, **_PARQUET_OPTIONS)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"cannot write the snapshot as Parquet: {error}") from None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise DataError(
            f"snapshot name {name!r} is not usable: names are non-empty strings of at most "
            f"{MAX_NAME_LENGTH} characters"
        )


def _same_name(snapshot: Snapshot, name: str) -> Snapshot:
    if snapshot.name != name:
        raise DataError(
            f"this data is already snapshot {snapshot.fingerprint[:12]} named "
            f"'{snapshot.name}'; use that snapshot (a fingerprint names one snapshot)"
        )
    return snapshot


# -- rows ------------------------------------------------------------------------------------------


def _select() -> sa.Select[Any]:
    return sa.select(t.snapshots, t.artifacts.c.size.label("artifact_size")).join(
        t.artifacts, t.artifacts.c.digest == t.snapshots.c.artifact_digest
    )


def _resolve(connection: Connection, ref: str) -> RowMapping:
    query = _select()
    exact = connection.execute(query.where(t.snapshots.c.fingerprint == ref)).mappings().first()
    if exact is not None:
        return exact
    newest = (
        connection.execute(
            query.where(t.snapshots.c.name == ref)
            .order_by(t.snapshots.c.created_at.desc(), t.snapshots.c.fingerprint)
            .limit(1)
        )
        .mappings()
        .first()
    )
    if newest is not None:
        return newest
    if len(ref) >= MIN_PREFIX and _HEX.match(ref):
        matches = (
            connection.execute(query.where(t.snapshots.c.fingerprint.startswith(ref)).limit(2))
            .mappings()
            .all()
        )
        if len(matches) > 1:
            raise DataError(f"fingerprint prefix '{ref}' matches several snapshots; give more")
        if matches:
            return matches[0]
    raise SnapshotNotFound(ref)


def _from_row(row: RowMapping) -> Snapshot:
    return Snapshot(
        fingerprint=row["fingerprint"],
        name=row["name"],
        artifact=ArtifactRef(digest=row["artifact_digest"], size=int(row["artifact_size"])),
        num_rows=int(row["num_rows"]),
        schema=Schema.from_dict(row["schema"]),
        profile=Profile.from_dict(row["profile"]),
        lineage=dict(row["lineage"]),
        created_at=float(row["created_at"]),
        created_by=row["created_by"],
    )
