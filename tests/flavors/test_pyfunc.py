from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.errors import ModelLoadError
from keel.flavors import LoadedModel, load_model, save_model
from keel.flavors.pyfunc import PyFuncFlavor


class Threshold:
    """A hand-written classifier: predict, predict_proba and classes_."""

    classes_ = np.array(["low", "high"])

    def __init__(self, column: str, cut: float) -> None:
        self.column = column
        self.cut = cut

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return np.where(frame[self.column] > self.cut, "high", "low")

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        high = (frame[self.column] > self.cut).to_numpy(dtype=float)
        return np.column_stack([1 - high, high])


class Doubler:
    def predict(self, frame: pd.DataFrame) -> list[float]:
        return (frame["x"] * 2).tolist()


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [0.5, 1.5, 2.5]})


def round_trip(model: object) -> LoadedModel:
    saved = save_model(model)
    assert saved.flavor == "pyfunc"
    return load_model(saved.flavor, saved.data, saved.library_versions)


def test_plain_object_round_trip_keeps_predictions(frame: pd.DataFrame) -> None:
    loaded = round_trip(Doubler())

    np.testing.assert_array_equal(loaded.predict(frame), [1.0, 3.0, 5.0])


def test_predictions_are_numpy_arrays(frame: pd.DataFrame) -> None:
    loaded = round_trip(Doubler())

    assert isinstance(loaded.predict(frame), np.ndarray)


def test_object_without_predict_proba_is_not_a_classifier(frame: pd.DataFrame) -> None:
    loaded = round_trip(Doubler())

    assert loaded.predict_proba(frame) is None
    assert loaded.classes is None
    assert not loaded.is_classifier


def test_classifier_exposes_probabilities_and_plain_python_classes(frame: pd.DataFrame) -> None:
    model = Threshold("x", 1.0)

    loaded = round_trip(model)

    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    assert loaded.classes == ["low", "high"]
    assert all(type(label) is str for label in loaded.classes)


def test_class_defined_inside_a_function_round_trips(frame: pd.DataFrame) -> None:
    # Not importable by name, so plain pickle fails on it; cloudpickle saves it by value.
    class Offset:
        def predict(self, frame: pd.DataFrame) -> pd.Series:
            return frame["x"] + 1

    loaded = round_trip(Offset())

    np.testing.assert_array_equal(loaded.predict(frame), [1.5, 2.5, 3.5])


def test_object_with_callable_predict_is_handled() -> None:
    assert PyFuncFlavor().handles(Doubler())


def test_object_whose_predict_is_not_callable_is_not_handled() -> None:
    class NotAModel:
        predict = "yes"

    assert not PyFuncFlavor().handles(NotAModel())


def test_class_itself_is_not_handled() -> None:
    assert not PyFuncFlavor().handles(Doubler)


def test_garbage_bytes_raise_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="could not load the pyfunc model"):
        PyFuncFlavor().deserialize(b"garbage")


def test_library_versions_pin_cloudpickle() -> None:
    assert "cloudpickle" in PyFuncFlavor().library_versions()
