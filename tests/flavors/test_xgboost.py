from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import xgboost

from keel.errors import FlavorUnavailable, ModelLoadError
from keel.flavors import LoadedModel, load_model, save_model
from keel.flavors.xgboost import XGBoostFlavor

Data = tuple[pd.DataFrame, pd.Series]


class ThresholdClassifier(xgboost.XGBClassifier):
    """A user subclass: the native format cannot rebuild it, so it is pickled."""


def round_trip(model: object) -> LoadedModel:
    saved = save_model(model)
    assert saved.flavor == "xgboost"
    return load_model(saved.flavor, saved.data, saved.library_versions)


@pytest.fixture(scope="module")
def classifier(cancer: Data) -> xgboost.XGBClassifier:
    features, target = cancer
    return xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(features, target)


def test_classifier_round_trip_keeps_predictions_and_probabilities(
    classifier: xgboost.XGBClassifier, cancer: Data
) -> None:
    features, _ = cancer

    loaded = round_trip(classifier)

    assert type(loaded.model) is xgboost.XGBClassifier
    np.testing.assert_array_equal(loaded.predict(features), classifier.predict(features))
    np.testing.assert_array_equal(
        loaded.predict_proba(features), classifier.predict_proba(features)
    )


def test_classifier_exposes_plain_python_classes(classifier: xgboost.XGBClassifier) -> None:
    loaded = round_trip(classifier)

    assert loaded.is_classifier
    assert loaded.classes == [0, 1]
    assert all(type(label) is int for label in loaded.classes)


def test_regressor_round_trip_keeps_predictions_and_has_no_classes(diabetes: Data) -> None:
    features, target = diabetes
    model = xgboost.XGBRegressor(n_estimators=5, max_depth=2).fit(features, target)

    loaded = round_trip(model)

    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    assert loaded.classes is None
    assert loaded.predict_proba(features) is None


def test_booster_round_trip_predicts_on_a_frame(cancer: Data) -> None:
    features, target = cancer
    params = {"objective": "binary:logistic", "max_depth": 2}
    booster = xgboost.train(params, xgboost.DMatrix(features, target), num_boost_round=5)

    loaded = round_trip(booster)

    expected = booster.predict(xgboost.DMatrix(features))
    np.testing.assert_array_equal(loaded.predict(features), expected)
    assert loaded.predict_proba(features) is None
    assert not loaded.is_classifier


def test_wrapper_is_saved_in_the_native_ubjson_format(classifier: xgboost.XGBClassifier) -> None:
    data = XGBoostFlavor().serialize(classifier)

    header, _, payload = data.partition(b"\n")
    assert header == b"keel-xgboost/sklearn-ubj/1 XGBClassifier"
    assert payload == bytes(classifier.get_booster().save_raw("ubj"))


def test_user_subclass_round_trips_as_a_pickle(cancer: Data) -> None:
    features, target = cancer
    model = ThresholdClassifier(n_estimators=3, max_depth=2).fit(features, target)

    saved = save_model(model)
    loaded = load_model(saved.flavor, saved.data, saved.library_versions)

    assert saved.data.startswith(b"keel-xgboost/sklearn-pickle/1\n")
    assert type(loaded.model) is ThresholdClassifier
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        b"keel-xgboost/booster-ubj/1\nnot a model",
        b"keel-xgboost/sklearn-ubj/1 XGBClassifier\nnot a model",
        b"keel-xgboost/sklearn-ubj/1 DMatrix\n",
    ],
    ids=["no-header", "bad-booster", "bad-wrapper", "class-not-allowed"],
)
def test_garbage_bytes_raise_model_load_error(data: bytes) -> None:
    with pytest.raises(ModelLoadError, match="could not load the xgboost model"):
        XGBoostFlavor().deserialize(data)


def test_nothing_is_handled_when_xgboost_is_not_imported(
    classifier: xgboost.XGBClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)

    assert not XGBoostFlavor().handles(classifier)


def test_loading_without_xgboost_installed_raises_flavor_unavailable(
    classifier: xgboost.XGBClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = XGBoostFlavor().serialize(classifier)
    # A None entry in sys.modules makes `import xgboost` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "xgboost", None)

    with pytest.raises(FlavorUnavailable, match=r"pip install 'keel-ml\[xgboost\]'"):
        XGBoostFlavor().deserialize(data)


def test_library_versions_pin_the_installed_xgboost_distribution() -> None:
    versions = XGBoostFlavor().library_versions()

    installed = {name: version for name, version in versions.items() if name.startswith("xgb")}
    assert list(installed.values()) == [xgboost.__version__]
