"""Online stores: the latest feature row per entity, for serving (SQLite embedded, Redis)."""

from keel.features.online._base import (
    EntityKeys,
    OnlineRows,
    OnlineStore,
    display_url,
    open_online_store,
)
from keel.features.online._codec import encode_key
from keel.features.online._sqlite import SQLiteOnlineStore

__all__ = [
    "EntityKeys",
    "OnlineRows",
    "OnlineStore",
    "SQLiteOnlineStore",
    "display_url",
    "encode_key",
    "open_online_store",
]
