"""The metadata database: tables, migrations and transactions."""

from keel.store._database import MetadataStore, now
from keel.store._tables import metadata
from keel.store._upsert import insert_ignore, upsert

__all__ = ["MetadataStore", "insert_ignore", "metadata", "now", "upsert"]
