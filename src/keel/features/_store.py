"""The feature store of a project: its definitions, their versions, the offline and online paths.

fs = workspace.features
fs.apply()                                               # record features.py's definitions
train = fs.get_training_frame(labels, ["customer_spend:*", "basket_ratio"])
fs.materialize("customer_spend")                         # incremental from the watermark
fs.get_online_features([{"customer_id": 7}], ["customer_spend:spend_7d"]).frame
fs.skew().ok
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from keel.config import FeatureSettings
from keel.features._definitions import Entity, FeatureCatalog, FeatureView, OnDemandFeature
from keel.features._loader import load_definitions
from keel.features._lookups import LookupLog
from keel.features._lookups import read_lookups as _read_lookups
from keel.features._materialize import MaterializeResult, materialize, materialize_incremental
from keel.features._offline import get_training_frame
from keel.features._online import EntityRows, OnlineFeatures, OnlineResult, Request
from keel.features._registry import AppliedView, FeatureRegistry
from keel.features._skew import SkewReport, check_skew
from keel.features._sources import SnapshotResolver
from keel.features.online import OnlineStore, open_online_store
from keel.store import MetadataStore

Definition = Entity | FeatureView | OnDemandFeature

#: Resolved feature lists kept for online lookups; the least recently used is dropped beyond it.
LOOKUP_CACHE_SIZE = 64


class FeatureStore:
    """One project's feature store, built by the workspace from ``[features]`` settings.

    Definitions come from the project's definitions module (``features.py``) unless given with
    :meth:`use` or :meth:`apply`. The online store is opened on first use. Online lookups keep
    each requested feature list resolved (an :class:`OnlineFeatures` per list) until the
    definitions change or the store is closed.
    """

    def __init__(
        self,
        settings: FeatureSettings,
        *,
        definitions_path: Path,
        online_url: str,
        lookup_log_dir: Path,
        metadata: MetadataStore,
        actor: str,
        resolve_snapshot: SnapshotResolver | None,
    ) -> None:
        self._settings = settings
        self._definitions_path = definitions_path
        self._online_url = online_url
        self._lookup_log_dir = lookup_log_dir
        self._metadata = metadata
        self._resolve_snapshot = resolve_snapshot
        self.registry = FeatureRegistry(metadata, actor)
        self._catalog: FeatureCatalog | None = None
        self._online: OnlineStore | None = None
        self._lookup_log: LookupLog | None = None
        # One resolved lookup per tuple of requested features, least recently used first.
        self._lookups: dict[tuple[str, ...], OnlineFeatures] = {}
        self._lookups_lock = threading.Lock()

    # -- definitions -----------------------------------------------------------------------------

    @property
    def catalog(self) -> FeatureCatalog:
        if self._catalog is None:
            self._catalog = load_definitions(self._definitions_path)
        return self._catalog

    def use(self, definitions: Iterable[Definition] | FeatureCatalog) -> FeatureCatalog:
        """Work with these definitions instead of the project's definitions module."""
        self._catalog = (
            definitions
            if isinstance(definitions, FeatureCatalog)
            else FeatureCatalog.of(definitions)
        )
        self._forget_lookups()
        return self._catalog

    def apply(
        self, definitions: Iterable[Definition] | FeatureCatalog | None = None
    ) -> list[AppliedView]:
        """Record the definitions (new view versions where they changed) in the metadata store."""
        catalog = self.use(definitions) if definitions is not None else self.catalog
        return self.registry.apply(catalog)

    def lineage(self, features: Sequence[str]) -> list[dict[str, Any]]:
        """The features a model is trained on, with view versions, for ``registry.register``."""
        return self.registry.lineage(self.catalog, list(features))

    # -- offline ---------------------------------------------------------------------------------

    def get_training_frame(
        self,
        labels: pd.DataFrame,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_timestamp",
    ) -> pd.DataFrame:
        """Point-in-time correct features for each label row (see ``_offline``)."""
        return get_training_frame(
            labels,
            features,
            self.catalog,
            timestamp_column=timestamp_column,
            naive=self._settings.naive_timestamps,
            resolve_snapshot=self._resolve_snapshot,
        )

    # -- online ----------------------------------------------------------------------------------

    @property
    def online(self) -> OnlineStore:
        if self._online is None:
            self._online = open_online_store(self._online_url)
        return self._online

    def materialize(
        self,
        view: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        incremental: bool | None = None,
    ) -> MaterializeResult:
        """Write the latest row per entity into the online store: from the recorded watermark
        to ``end`` (incremental, the default when no ``start`` is given), or the window
        ``[start, end)``. The view must be applied in its current form."""
        definition = self.catalog.view(view)
        version = self.registry.version_of(definition)
        naive = self._settings.naive_timestamps
        if incremental or (incremental is None and start is None):
            return materialize_incremental(
                definition,
                version,
                self.online,
                self._metadata,
                end=end,
                naive=naive,
                resolve_snapshot=self._resolve_snapshot,
            )
        return materialize(
            definition,
            version,
            self.online,
            self._metadata,
            start=start,
            end=end,
            naive=naive,
            resolve_snapshot=self._resolve_snapshot,
        )

    @property
    def lookup_log(self) -> LookupLog:
        if self._lookup_log is None:
            self._lookup_log = LookupLog(self._lookup_log_dir, self._settings.lookup_sample_rate)
        return self._lookup_log

    def get_online_features(
        self,
        entity_rows: EntityRows,
        features: Sequence[str],
        *,
        request: Request | None = None,
        now: datetime | None = None,
        record: bool | None = None,
    ) -> OnlineResult:
        """Features for each entity row from the online store, one round trip per view;
        a sampled fraction of lookups is recorded for :meth:`skew` (``record=True`` records
        this one whatever the rate, ``record=False`` never)."""
        return self._lookup(features).get(entity_rows, request=request, now=now, record=record)

    def _lookup(self, features: Sequence[str]) -> OnlineFeatures:
        """The resolved lookup of ``features``, built on first use of that feature list."""
        key = tuple(features)
        with self._lookups_lock:
            lookup = self._lookups.pop(key, None)
            if lookup is not None:
                self._lookups[key] = lookup  # now the most recently used
                return lookup
        lookup = OnlineFeatures(
            self.catalog,
            self.online,
            key,
            log=self.lookup_log,
            naive=self._settings.naive_timestamps,
        )
        with self._lookups_lock:
            self._lookups[key] = lookup
            while len(self._lookups) > LOOKUP_CACHE_SIZE:
                del self._lookups[next(iter(self._lookups))]
        return lookup

    def _forget_lookups(self) -> None:
        """Drop resolved lookups: they hold the catalog, store and log they were built with."""
        with self._lookups_lock:
            self._lookups.clear()

    # -- skew ------------------------------------------------------------------------------------

    def read_lookups(self) -> pd.DataFrame:
        if self._lookup_log is not None:
            self._lookup_log.flush()
        return _read_lookups(self._lookup_log_dir)

    def skew(self, *, sample: int | None = 1000, tolerance: float = 1e-9) -> SkewReport:
        """Recompute a sample of recorded online lookups offline and compare, per feature."""
        return check_skew(
            self.read_lookups(),
            self.catalog,
            sample=sample,
            tolerance=tolerance,
            naive=self._settings.naive_timestamps,
            resolve_snapshot=self._resolve_snapshot,
        )

    def close(self) -> None:
        self._forget_lookups()
        if self._lookup_log is not None:
            self._lookup_log.close()
            self._lookup_log = None
        if self._online is not None:
            self._online.close()
            self._online = None
