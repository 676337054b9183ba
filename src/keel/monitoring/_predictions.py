"""Prediction drift: the model's outputs in a window against its outputs on reference data.

The reference outputs are the model version's own answers on its validation data (the run's
input named ``validation``, ``valid``, ``val``, ``test`` or ``holdout``; else its training
snapshot), a seeded sample of at most ``sample_rows`` rows, predicted once per runner and model
version. Compared columns, exact (raw against raw):

- ``prediction``: the predicted label (classifiers, as the log's ``prediction_label`` writes it)
  or value (regressors);
- ``score``: a binary classifier's probability of its positive class (the last of its classes,
  scikit-learn's convention); ``confidence``: a multiclass classifier's highest probability.

A shift in ``score`` or ``confidence`` with steady inputs is often the first sign a model is
unsure of new data; a shift in ``prediction`` is what downstream consumers see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from keel.flavors import LoadedModel
from keel.serving._predlog._tables import label_text

MONITOR = "prediction_drift"
#: run inputs tried first, in order, for the reference outputs
VALIDATION_INPUTS = ("validation", "valid", "val", "test", "holdout")
DEFAULT_SAMPLE_ROWS = 50_000


def pick_validation_input(inputs: dict[str, str]) -> list[str]:
    """The fingerprints of a version's inputs, validation-like names first."""
    named = [inputs[name] for name in VALIDATION_INPUTS if name in inputs]
    return named + [fingerprint for fingerprint in inputs.values() if fingerprint not in named]


def reference_outputs(
    model: LoadedModel,
    data: pd.DataFrame,
    input_names: Sequence[str],
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """The columns compared (see the module doc) from ``model``'s answers on ``data``."""
    if len(data) > sample_rows:
        data = data.sample(n=sample_rows, random_state=seed)
    features = data[list(input_names)]
    classes = model.classes
    predicted = model.predict(features)
    if classes is None:
        return pd.DataFrame({"prediction": np.asarray(predicted, dtype="float64")})
    outputs: dict[str, Any] = {"prediction": [label_text(_plain(v)) for v in predicted]}
    probabilities = model.predict_proba(features)
    if probabilities is not None:
        outputs.update(_scores(np.asarray(probabilities, dtype="float64"), len(classes)))
    return pd.DataFrame(outputs)


def window_outputs(predictions: pa.Table, classes: Sequence[Any] | None) -> pd.DataFrame:
    """The same columns from a window's logged predictions (``p0``... per class)."""
    if classes is None:
        return pd.DataFrame(
            {"prediction": predictions.column("prediction_number").to_numpy(zero_copy_only=False)}
        )
    outputs: dict[str, Any] = {"prediction": predictions.column("prediction_label").to_pylist()}
    names = [f"p{i}" for i in range(len(classes))]
    if names and all(name in predictions.column_names for name in names):
        matrix = np.column_stack(
            [predictions.column(n).to_numpy(zero_copy_only=False) for n in names]
        ).astype("float64")
        outputs.update(_scores(matrix, len(classes)))
    return pd.DataFrame(outputs)


def _scores(probabilities: np.ndarray[Any, Any], classes: int) -> dict[str, Any]:
    if classes == 2:
        return {"score": probabilities[:, 1]}
    return {"confidence": np.nanmax(probabilities, axis=1) if len(probabilities) else []}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
