from __future__ import annotations

import sys

import lightgbm
import numpy as np
import pandas as pd
import pytest

from keel.errors import FlavorUnavailable, ModelLoadError
from keel.flavors import LoadedModel, load_model, save_model
from keel.flavors.lightgbm import LightGBMFlavor

Data = tuple[pd.DataFrame, pd.Series]


def round_trip(model: object) -> LoadedModel:
    saved = save_model(model)
    assert saved.flavor == "lightgbm"
    return load_model(saved.flavor, saved.data, saved.library_versions)


@pytest.fixture(scope="module")
def classifier(cancer: Data) -> lightgbm.LGBMClassifier:
    features, target = cancer
    return lightgbm.LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1).fit(features, target)


@pytest.fixture(scope="module")
def booster(cancer: Data) -> lightgbm.Booster:
    features, target = cancer
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1}
    return lightgbm.train(params, lightgbm.Dataset(features, target), num_boost_round=5)


def test_classifier_round_trip_keeps_predictions_and_probabilities(
    classifier: lightgbm.LGBMClassifier, cancer: Data
) -> None:
    features, _ = cancer

    loaded = round_trip(classifier)

    np.testing.assert_array_equal(loaded.predict(features), classifier.predict(features))
    np.testing.assert_array_equal(
        loaded.predict_proba(features), classifier.predict_proba(features)
    )


def test_classifier_exposes_plain_python_classes(classifier: lightgbm.LGBMClassifier) -> None:
    loaded = round_trip(classifier)

    assert loaded.is_classifier
    assert loaded.classes == [0, 1]
    assert all(type(label) is int for label in loaded.classes)


def test_regressor_round_trip_keeps_predictions_and_has_no_classes(diabetes: Data) -> None:
    features, target = diabetes
    model = lightgbm.LGBMRegressor(n_estimators=5, num_leaves=7, verbose=-1).fit(features, target)

    loaded = round_trip(model)

    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    assert loaded.classes is None
    assert loaded.predict_proba(features) is None


def test_booster_round_trip_returns_what_booster_predict_returns(
    booster: lightgbm.Booster, cancer: Data
) -> None:
    features, _ = cancer

    loaded = round_trip(booster)

    np.testing.assert_array_equal(loaded.predict(features), booster.predict(features))
    assert loaded.predict_proba(features) is None
    assert not loaded.is_classifier


def test_booster_is_saved_as_the_native_text_model(booster: lightgbm.Booster) -> None:
    data = LightGBMFlavor().serialize(booster)

    header, _, payload = data.partition(b"\n")
    assert header == b"keel-lightgbm/booster-text/1"
    assert payload.decode("utf-8") == booster.model_to_string()


def test_sklearn_wrapper_is_saved_as_a_pickle(classifier: lightgbm.LGBMClassifier) -> None:
    data = LightGBMFlavor().serialize(classifier)

    assert data.startswith(b"keel-lightgbm/sklearn-pickle/1\n")


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        b"keel-lightgbm/booster-text/1\nnot a model",
        b"keel-lightgbm/sklearn-pickle/1\nnot a pickle",
    ],
    ids=["no-header", "bad-booster", "bad-pickle"],
)
def test_garbage_bytes_raise_model_load_error(data: bytes) -> None:
    with pytest.raises(ModelLoadError, match="could not load the lightgbm model"):
        LightGBMFlavor().deserialize(data)


def test_nothing_is_handled_when_lightgbm_is_not_imported(
    classifier: lightgbm.LGBMClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)

    assert not LightGBMFlavor().handles(classifier)


def test_loading_without_lightgbm_installed_raises_flavor_unavailable(
    classifier: lightgbm.LGBMClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = LightGBMFlavor().serialize(classifier)
    # A None entry in sys.modules makes `import lightgbm` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "lightgbm", None)

    with pytest.raises(FlavorUnavailable, match=r"pip install 'keel-ml\[lightgbm\]'"):
        LightGBMFlavor().deserialize(data)


def test_library_versions_pin_lightgbm() -> None:
    versions = LightGBMFlavor().library_versions()

    assert versions["lightgbm"] == lightgbm.__version__
