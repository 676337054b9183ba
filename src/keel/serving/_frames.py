"""Request records as the model's input: typed columns, and NumPy scalars back as plain values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from keel.flavors import LoadedModel


def column(values: list[Any], dtype: str) -> Any:
    if dtype == "float":
        return np.array(values, dtype=np.float64)  # None becomes NaN
    if dtype == "int":
        if None in values:
            return pd.array(values, dtype="Int64")
        return np.array(values, dtype=np.int64)
    if dtype == "bool":
        if None in values:
            return pd.array(values, dtype="boolean")
        return np.array(values, dtype=bool)
    if dtype == "timestamp":
        return pd.to_datetime(values, utc=True, format="ISO8601")
    if dtype == "category":
        return pd.Categorical(values)
    return np.array(values, dtype=object)


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON can carry."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def checked_array_model(model: LoadedModel, names: list[str]) -> Any | None:
    """The flavor's matrix model, kept only if it gives the same answers as the frame path
    on probe rows built from the signature (so a wrong shortcut can never serve)."""
    candidate = model.flavor.array_model(model.model, names)
    if candidate is None:
        return None
    probe: Any = np.linspace(-1.0, 1.0, 4 * len(names)).reshape(4, len(names))
    frame = pd.DataFrame(probe, columns=names)
    flavor = model.flavor
    try:
        same = np.array_equal(
            np.asarray(flavor.predict(model.model, frame)),
            np.asarray(flavor.predict(candidate, probe)),
        )
        proba_frame = flavor.predict_proba(model.model, frame)
        if proba_frame is not None:
            proba_array = flavor.predict_proba(candidate, probe)
            same = same and proba_array is not None and np.allclose(proba_frame, proba_array)
    except Exception:  # any doubt: keep the frame path
        return None
    return candidate if same else None
