"""Turning a fitted model into what keel stores: flavor bytes plus a signature."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keel.data import Schema, infer_dtype
from keel.errors import KeelError
from keel.flavors import SavedModel, get_flavor, save_model

# Rows of the input example used to infer the output type.
_PROBE_ROWS = 5


@dataclass(frozen=True)
class Signature:
    """What a model takes and gives: input columns (a Schema) and its output.

    ``output`` holds ``dtype`` (keel type of one prediction), ``task`` (``classification`` or
    ``regression``) and ``classes`` (labels in probability-column order, classifiers only).
    """

    inputs: Schema
    output: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs.to_dict(), "output": dict(self.output)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls(inputs=Schema.from_dict(data["inputs"]), output=dict(data["output"]))

    def breaking_changes(self, new: Signature) -> list[str]:
        """Reasons a client of ``self`` would break against ``new`` (empty: compatible)."""
        problems = self.inputs.diff(new.inputs).breaking
        if self.output.get("task") != new.output.get("task"):
            problems.append(f"task changed {self.output.get('task')} -> {new.output.get('task')}")
        elif self.output.get("classes") != new.output.get("classes"):
            problems.append("the set of output classes changed")
        elif self.output.get("dtype") != new.output.get("dtype"):
            problems.append(
                f"output type changed {self.output.get('dtype')} -> {new.output.get('dtype')}"
            )
        return problems


@dataclass(frozen=True)
class PackagedModel:
    saved: SavedModel
    signature: Signature


def _python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def infer_signature(model: Any, flavor_name: str, input_example: pd.DataFrame) -> Signature:
    """Input schema from the example frame; output type from predicting a few of its rows."""
    if not isinstance(input_example, pd.DataFrame) or input_example.empty:
        raise KeelError(
            "input_example must be a non-empty pandas DataFrame of training inputs "
            "(it defines the model's signature)"
        )
    flavor = get_flavor(flavor_name)
    probe = input_example.head(_PROBE_ROWS)
    try:
        predictions = np.asarray(flavor.predict(model, probe))
    except Exception as error:
        raise KeelError(
            f"the model failed to predict on its input example ({type(error).__name__}: {error}); "
            "pass the frame the model was trained on"
        ) from error
    classes = flavor.classes(model)
    output_dtype = infer_dtype(pd.Series(predictions.reshape(len(probe), -1)[:, 0]))
    output: dict[str, Any] = {
        "dtype": output_dtype,
        "task": "classification" if classes is not None else "regression",
        "classes": [_python_value(c) for c in classes] if classes is not None else None,
        "shape": list(predictions.shape[1:]),
    }
    return Signature(inputs=Schema.from_frame(input_example), output=output)


def package_model(
    model: Any, input_example: pd.DataFrame, flavor: str | None = None
) -> PackagedModel:
    """Serialise ``model`` with its flavor and infer its signature from ``input_example``."""
    saved = save_model(model, flavor)
    return PackagedModel(saved=saved, signature=infer_signature(model, saved.flavor, input_example))


def fingerprint(data: pd.DataFrame | str | Path) -> str:
    """A content fingerprint (sha256 hex) of a frame or a file/directory: equal data, equal
    fingerprint; any changed value, column name or type changes it."""
    digest = hashlib.sha256()
    if isinstance(data, pd.DataFrame):
        digest.update(repr([(str(c), str(t)) for c, t in data.dtypes.items()]).encode())
        digest.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
        return digest.hexdigest()
    path = Path(data)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
