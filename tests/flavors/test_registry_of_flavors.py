"""The name → flavor map, flavor selection and the save / load entry points."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from importlib import metadata

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import keel.flavors
from keel.errors import FlavorError, UnsupportedModel
from keel.flavors import (
    KeelVersionWarning,
    flavor_for,
    flavor_names,
    get_flavor,
    load_model,
    save_model,
)

Data = tuple[pd.DataFrame, pd.Series]


class Plain:
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(frame))


@pytest.fixture(scope="module")
def forest(cancer: Data) -> RandomForestClassifier:
    features, target = cancer
    return RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(features, target)


@pytest.mark.parametrize(
    ("make_model", "expected"),
    [
        (lambda: lightgbm.LGBMClassifier(), "lightgbm"),
        (lambda: xgboost.XGBClassifier(), "xgboost"),
        (lambda: RandomForestClassifier(), "sklearn"),
        (lambda: make_pipeline(StandardScaler(), LogisticRegression()), "sklearn"),
        (lambda: Plain(), "pyfunc"),
    ],
    ids=["LGBMClassifier", "XGBClassifier", "RandomForest", "Pipeline", "plain-class"],
)
def test_flavor_for_picks_the_most_specific_flavor(
    make_model: Callable[[], object], expected: str
) -> None:
    assert flavor_for(make_model()).name == expected


def test_flavor_for_an_object_without_predict_raises_unsupported_model() -> None:
    with pytest.raises(UnsupportedModel, match="no flavor can save"):
        flavor_for(object())


def test_saving_with_a_flavor_that_does_not_handle_the_model_raises() -> None:
    with pytest.raises(UnsupportedModel, match="with the lightgbm flavor"):
        save_model(RandomForestRegressor(), flavor="lightgbm")


def test_get_flavor_of_an_unknown_name_raises_flavor_error() -> None:
    with pytest.raises(FlavorError, match="unknown flavor 'nope'; known flavors: lightgbm"):
        get_flavor("nope")


@pytest.mark.parametrize("name", flavor_names())
def test_every_registered_name_resolves_to_a_flavor_of_that_name(name: str) -> None:
    assert get_flavor(name).name == name


def test_requirements_are_pinned_package_lines(forest: RandomForestClassifier) -> None:
    saved = save_model(forest)

    assert f"scikit-learn=={metadata.version('scikit-learn')}" in saved.requirements
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[^=\s]+", line) for line in saved.requirements)
    assert len(saved.requirements) == len(saved.library_versions)


def test_loading_under_other_versions_warns_naming_both_versions(
    forest: RandomForestClassifier,
) -> None:
    saved = save_model(forest)
    installed = metadata.version("scikit-learn")
    recorded = {**saved.library_versions, "scikit-learn": "0.20.0"}

    expected = (
        rf"saved with scikit-learn==0\.20\.0 but scikit-learn=={re.escape(installed)} is installed"
    )
    with pytest.warns(KeelVersionWarning, match=expected):
        load_model(saved.flavor, saved.data, recorded)


def test_loading_under_the_saved_versions_does_not_warn(forest: RandomForestClassifier) -> None:
    saved = save_model(forest)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(saved.flavor, saved.data, saved.library_versions)


def test_loaded_model_reports_its_flavor_and_recorded_versions(
    forest: RandomForestClassifier,
) -> None:
    saved = save_model(forest)

    loaded = load_model(saved.flavor, saved.data, saved.library_versions)

    assert loaded.flavor_name == "sklearn"
    assert loaded.library_versions == saved.library_versions


def test_public_names_are_sorted() -> None:
    assert keel.flavors.__all__ == sorted(keel.flavors.__all__)
