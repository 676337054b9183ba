"""The online-store contract and the factory that opens a store by URL.

An online store keeps, per feature view and entity key, the latest materialized row: its event
timestamp and its feature values. Serving reads many entities at once; materialization writes
many rows at once. How both stores (SQLite, Redis) encode keys and rows is in ``_codec``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from keel.errors import FeatureStoreError

#: Entity keys given to a store: one tuple per entity, or a frame with one column per key part.
EntityKeys = Sequence[tuple[Any, ...]] | pd.DataFrame

#: "No event timestamp" in an int64 array of nanoseconds (the same sentinel pandas uses for NaT).
NO_TIME = np.iinfo(np.int64).min


@dataclass(frozen=True)
class OnlineRows:
    """What one :meth:`OnlineStore.read` returned, aligned with the entity keys asked for.

        rows = store.read("customer_spend", [(1,), (2,)], ["spend_7d"])
        rows.columns["spend_7d"]      # [10.5, None]   (None: entity 2 has no row)
        rows.found                    # array([ True, False])
        rows.event_timestamps         # Series of datetime64[ns, UTC], NaT where not found

    Values keep the type they were written with; no TTL has been applied.
    """

    features: tuple[str, ...]
    columns: dict[str, list[Any]]
    """Feature name → one value per entity key (None where the entity has no row)."""
    event_ns: np.ndarray[Any, np.dtype[np.int64]]
    """Event timestamp of each entity's row in ns since the epoch (UTC), ``NO_TIME`` if none."""
    found: np.ndarray[Any, np.dtype[np.bool_]]

    def __len__(self) -> int:
        return len(self.found)

    @property
    def event_timestamps(self) -> pd.Series[Any]:
        stamps = self.event_ns.view("datetime64[ns]")
        return pd.Series(stamps).dt.tz_localize("UTC")

    def row(self, index: int) -> dict[str, Any]:
        """The values of one entity, by feature name."""
        return {name: self.columns[name][index] for name in self.features}


class OnlineStore(ABC):
    """Latest feature rows per (view, entity key), written by materialization and read by
    serving. Implementations: :class:`SQLiteOnlineStore` (embedded default) and
    :class:`RedisOnlineStore`; open one by URL with :func:`open_online_store`.

        with open_online_store("sqlite:///.keel/online.db") as store:
            store.write("spend", [(1,), (2,)], timestamps, {"spend_7d": [10.5, 3.0]})
            rows = store.read("spend", [(1,), (2,), (3,)], ["spend_7d"])

    Every method translates the backend's errors: a store that cannot be reached raises
    :class:`~keel.errors.OnlineStoreUnavailable`, any other failure a
    :class:`~keel.errors.FeatureStoreError` naming the store.
    """

    #: The store's URL without any password: what watermarks and logs name it by.
    url: str

    @abstractmethod
    def write(
        self,
        view: str,
        keys: EntityKeys,
        event_timestamps: Any,
        values: Mapping[str, Any],
    ) -> int:
        """Upsert one row per entity key; return how many stored rows were inserted or replaced.

        Called by materialization with chunks of rows (at most one row per key per call).
        ``event_timestamps`` are time-zone-aware (a naive timestamp raises
        :class:`~keel.errors.TimestampError`); ``values`` maps each feature name to one value
        per key. A row replaces the stored row of its key only if its event timestamp is the
        same or newer: an older row never overwrites a newer one, whatever the order of calls,
        so re-running a materialization is idempotent and out-of-order windows are safe.
        """

    @abstractmethod
    def read(self, view: str, entity_keys: EntityKeys, features: Sequence[str]) -> OnlineRows:
        """The stored rows of ``entity_keys`` (all of them in one round trip), restricted to
        ``features``, in the order asked.

        Called on the request path. An entity with no row gets ``found=False`` and None values;
        a feature its row was written without gets None. Values come back with the type they
        were written with; no TTL is applied here (the caller knows the lookup time).
        """

    @abstractmethod
    def delete_view(self, view: str) -> int:
        """Remove every row of ``view`` (e.g. before re-materializing from scratch); return how
        many stored keys were removed."""

    @abstractmethod
    def ping(self) -> None:
        """Raise :class:`~keel.errors.OnlineStoreUnavailable` if the store cannot be reached
        now (a readiness check for servers); return None otherwise."""

    @abstractmethod
    def close(self) -> None:
        """Release connections. The store must not be used afterwards; closing twice is fine."""

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


# -- the factory -----------------------------------------------------------------------------------


def _open_sqlite(url: str) -> OnlineStore:
    from keel.features.online._sqlite import SQLiteOnlineStore

    return SQLiteOnlineStore(url)


def _open_redis(url: str) -> OnlineStore:
    try:
        from keel.features.online._redis import RedisOnlineStore
    except ImportError as error:  # only the redis package itself is optional
        raise FeatureStoreError(
            f"the online store {display_url(url)} needs the 'redis' package, which is not "
            f"installed (pip install 'keel-ml[redis]'): {error}"
        ) from error
    return RedisOnlineStore(url)


_STORES: dict[str, Callable[[str], OnlineStore]] = {
    "sqlite": _open_sqlite,
    "redis": _open_redis,
    "rediss": _open_redis,
}


def open_online_store(url: str) -> OnlineStore:
    """The online store at ``url``: ``sqlite:///PATH`` or ``redis://[:PASSWORD@]HOST:PORT/DB``
    (``rediss://`` for TLS; add ``?prefix=NAME`` to keep several projects in one database).
    Redis is imported only when a Redis URL is opened."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    try:
        opener = _STORES[scheme]
    except KeyError:
        raise FeatureStoreError(
            f"'{display_url(url)}' is not an online store URL; use sqlite:///PATH or "
            "redis://HOST:PORT/DB"
        ) from None
    return opener(url)


def display_url(url: str) -> str:
    """``url`` without its password (what watermarks, logs and errors show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc))
