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

__all__ = [
    "DataFrameSource",
    "Entity",
    "FeatureCatalog",
    "FeatureDefinitionError",
    "FeatureRef",
    "FeatureSource",
    "FeatureView",
    "OnDemandFeature",
    "ParquetSource",
    "SnapshotSource",
]
