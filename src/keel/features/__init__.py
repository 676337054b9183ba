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
from keel.features._lookups import LookupLog, read_lookups
from keel.features._materialize import (
    MaterializeResult,
    Watermark,
    materialize,
    materialize_incremental,
    read_watermark,
)
from keel.features._offline import get_training_frame
from keel.features._online import OnlineFeatures, OnlineResult, ViewFreshness, get_online_features
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
    "OnlineFeatures",
    "OnlineResult",
    "ParquetSource",
    "SkewReport",
    "SnapshotSource",
    "ViewFreshness",
    "ViewVersion",
    "Watermark",
    "check_skew",
    "get_online_features",
    "get_training_frame",
    "materialize",
    "materialize_incremental",
    "read_lookups",
    "read_watermark",
]
