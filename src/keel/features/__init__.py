"""The feature store: definitions written once, a point-in-time correct offline join, online
stores, and a skew check between the two."""

from keel.errors import FeatureDefinitionError
from keel.features._definitions import (
    DataFrameSource,
    Entity,
    FeatureCatalog,
    FeatureRef,
    FeatureSource,
    FeatureView,
    OnDemandFeature,
    ParquetSource,
    SnapshotSource,
)
from keel.features._materialize import MaterializeResult, materialize, materialize_incremental
from keel.features._offline import get_training_frame
from keel.features._online import LookupLog, OnlineResult, get_online_features, read_lookups
from keel.features._registry import AppliedView, FeatureRegistry, ViewVersion
from keel.features._skew import FeatureSkew, SkewReport, check_skew
from keel.features._store import FeatureStore

__all__ = [
    "AppliedView",
    "DataFrameSource",
    "Entity",
    "FeatureCatalog",
    "FeatureDefinitionError",
    "FeatureRef",
    "FeatureRegistry",
    "FeatureSkew",
    "FeatureSource",
    "FeatureStore",
    "FeatureView",
    "LookupLog",
    "MaterializeResult",
    "OnDemandFeature",
    "OnlineResult",
    "ParquetSource",
    "SkewReport",
    "SnapshotSource",
    "ViewVersion",
    "check_skew",
    "get_online_features",
    "get_training_frame",
    "materialize",
    "materialize_incremental",
    "read_lookups",
]
