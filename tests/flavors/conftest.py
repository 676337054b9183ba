"""Small real data sets shipped with scikit-learn (no download), shared by the flavor tests."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes


@pytest.fixture(scope="session")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    """Binary classification: 569 rows, 30 numeric features, labels 0/1."""
    features, target = load_breast_cancer(as_frame=True, return_X_y=True)
    return features, target


@pytest.fixture(scope="session")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    """Regression: 442 rows, 10 numeric features."""
    features, target = load_diabetes(as_frame=True, return_X_y=True)
    return features, target
