from __future__ import annotations

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    return frame, target


@pytest.fixture(scope="session")
def iris_model(iris: tuple[pd.DataFrame, pd.Series]) -> LogisticRegression:
    frame, target = iris
    return LogisticRegression(max_iter=300).fit(frame, target)


@pytest.fixture(scope="session")
def other_iris_model(iris: tuple[pd.DataFrame, pd.Series]) -> LogisticRegression:
    frame, target = iris
    return LogisticRegression(max_iter=300, C=0.01).fit(frame, target)
