from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from keel.errors import ModelLoadError
from keel.flavors import LoadedModel, load_model, save_model
from keel.flavors.sklearn import SklearnFlavor

Data = tuple[pd.DataFrame, pd.Series]


def round_trip(model: object) -> LoadedModel:
    saved = save_model(model)
    assert saved.flavor == "sklearn"
    return load_model(saved.flavor, saved.data, saved.library_versions)


def test_classifier_round_trip_keeps_predictions_and_probabilities(cancer: Data) -> None:
    features, target = cancer
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)
    model.fit(features, target)

    loaded = round_trip(model)

    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))


def test_regressor_round_trip_keeps_predictions(diabetes: Data) -> None:
    features, target = diabetes
    model = RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0)
    model.fit(features, target)

    loaded = round_trip(model)

    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))


def test_scaler_and_logistic_regression_pipeline_round_trip(cancer: Data) -> None:
    features, target = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(features, target)

    loaded = round_trip(model)

    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    assert loaded.classes == [0, 1]


def test_column_transformer_pipeline_on_mixed_columns_round_trip(cancer: Data) -> None:
    features, target = cancer
    frame = features[["mean radius", "mean texture", "mean smoothness"]].copy()
    frame["size"] = pd.cut(
        features["mean area"], bins=[0, 500, 1000, np.inf], labels=["small", "medium", "large"]
    ).astype(str)
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), ["mean radius", "mean texture", "mean smoothness"]),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), ["size"]),
        ]
    )
    model = Pipeline([("preprocess", preprocess), ("classify", LogisticRegression())])
    model.fit(frame, target)

    loaded = round_trip(model)

    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_classifier_classes_are_plain_python_values(cancer: Data) -> None:
    features, target = cancer
    labels = target.map({0: "malignant", 1: "benign"})
    model = RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0)
    model.fit(features, labels)

    loaded = round_trip(model)

    assert loaded.is_classifier
    assert loaded.classes == ["benign", "malignant"]
    assert all(type(label) is str for label in loaded.classes)


def test_regressor_has_no_classes_and_no_probabilities(diabetes: Data) -> None:
    features, target = diabetes
    model = RandomForestRegressor(n_estimators=3, max_depth=2, random_state=0)
    model.fit(features, target)

    loaded = round_trip(model)

    assert loaded.classes is None
    assert not loaded.is_classifier
    assert loaded.predict_proba(features) is None


def test_pipeline_whose_last_step_lacks_predict_proba_has_no_probabilities(cancer: Data) -> None:
    features, target = cancer
    model = make_pipeline(StandardScaler(), LinearSVC())
    model.fit(features, target)

    loaded = round_trip(model)

    assert loaded.predict_proba(features) is None
    assert loaded.classes == [0, 1]


def test_transformer_without_predict_is_not_handled() -> None:
    assert not SklearnFlavor().handles(StandardScaler())


def test_garbage_bytes_raise_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="could not load the sklearn model"):
        SklearnFlavor().deserialize(b"this is not a pickle")


def test_library_versions_pin_scikit_learn_and_numpy() -> None:
    versions = SklearnFlavor().library_versions()

    assert {"scikit-learn", "numpy", "scipy", "joblib"} <= versions.keys()


# -- the matrix model serving uses for all-float signatures ---------------------------------------


def test_the_array_model_answers_on_a_matrix_as_the_model_does_on_the_frame(cancer: Data) -> None:
    frame, target = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(frame, target)
    fast = SklearnFlavor().array_model(model, list(frame.columns))
    assert fast is not None
    np.testing.assert_allclose(
        fast.predict_proba(frame.to_numpy()), model.predict_proba(frame), rtol=0, atol=1e-12
    )
    assert hasattr(model, "feature_names_in_")  # the original is left as it was


def test_no_array_model_when_columns_differ_or_are_selected_by_name(cancer: Data) -> None:
    frame, target = cancer
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, target)
    assert SklearnFlavor().array_model(model, list(reversed(frame.columns))) is None
    by_name = make_pipeline(
        ColumnTransformer([("scaled", StandardScaler(), list(frame.columns))]),
        RandomForestClassifier(n_estimators=5, random_state=0),
    ).fit(frame, target)
    assert SklearnFlavor().array_model(by_name, list(frame.columns)) is None
    unnamed = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame.to_numpy(), target)
    assert SklearnFlavor().array_model(unnamed, list(frame.columns)) is None
