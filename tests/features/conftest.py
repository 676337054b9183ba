"""Small feature definitions shared by the feature-store tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from keel.data import Field, infer_dtype
from keel.features import DataFrameSource, Entity, FeatureView

MakeView = Callable[..., FeatureView]


@pytest.fixture
def make_view() -> MakeView:
    """Build a customer feature view over ``rows``, a frame with ``customer_id``,
    ``event_time`` and feature columns (their types inferred):
    ``make_view(rows, name="spend", ttl=timedelta(days=30), source=..., transformation=...)``."""

    def make(
        rows: pd.DataFrame,
        *,
        name: str = "spend",
        keys: tuple[str, ...] = ("customer_id",),
        ttl: timedelta = timedelta(days=30),
        features: tuple[Field, ...] | None = None,
        **options: Any,
    ) -> FeatureView:
        if features is None:
            features = tuple(
                Field(str(c), infer_dtype(rows[c]), nullable=True)
                for c in rows.columns
                if c not in (*keys, "event_time")
            )
        return FeatureView(
            name=name,
            entities=(Entity("customer" if keys == ("customer_id",) else name, keys),),
            source=options.pop("source", DataFrameSource(rows)),
            timestamp_column="event_time",
            ttl=ttl,
            features=features,
            **options,
        )

    return make
