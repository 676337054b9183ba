"""The XGBoost flavor: native ``Booster`` objects and the scikit-learn wrappers.

Artifact format: one ASCII header line, then the payload.

* ``keel-xgboost/booster-ubj/1\\n`` + the Booster in XGBoost's native UBJSON model format
  (``save_raw("ubj")``), which XGBoost promises to load across versions.
* ``keel-xgboost/sklearn-ubj/1 CLASSNAME\\n`` + the wrapper's Booster in the same UBJSON format,
  for XGBoost's own wrappers (``XGBClassifier``, ``XGBRegressor``, ``XGBRanker``,
  ``XGBRFClassifier``, ``XGBRFRegressor``). Loading builds ``CLASSNAME()`` and calls its
  ``load_model``, which restores the booster, the objective and the number of classes; the
  wrapper's constructor hyper-parameters come back as defaults (the trained trees do not need
  them to predict).
* ``keel-xgboost/sklearn-pickle/1\\n`` + a pickle (protocol 5), for user subclasses of
  ``XGBModel`` that the native format cannot rebuild.

xgboost is imported lazily: it is an optional extra (``keel-ml[xgboost]``).
"""

from __future__ import annotations

import pickle
import sys
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from keel.errors import FlavorUnavailable, ModelLoadError
from keel.flavors._base import Flavor, load_failure

_BOOSTER_HEADER = b"keel-xgboost/booster-ubj/1"
_SKLEARN_HEADER = b"keel-xgboost/sklearn-ubj/1"
_PICKLE_HEADER = b"keel-xgboost/sklearn-pickle/1"
# Wrappers rebuilt from the native format: an allow-list, so the header cannot name any class.
_NATIVE_WRAPPERS = frozenset(
    {"XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor"}
)


def _import_xgboost() -> ModuleType:
    try:
        import xgboost
    except ImportError as exc:
        raise FlavorUnavailable("xgboost", "xgboost", "xgboost") from exc
    return xgboost


class XGBoostFlavor(Flavor):
    """Saves ``xgboost.Booster`` and ``XGBModel`` subclasses.

    A Booster predicts on a ``DMatrix`` built from the frame and has no ``predict_proba``;
    the classifier wrappers have both, and their classes:

        flavor = XGBoostFlavor()
        classifier = flavor.deserialize(flavor.serialize(classifier))
        flavor.classes(classifier)   # [0, 1]
    """

    name: ClassVar[str] = "xgboost"
    # XGBoost ships as "xgboost" or as the CPU-only "xgboost-cpu" distribution; only the
    # installed one is pinned (library_versions skips distributions that are not installed).
    packages: ClassVar[tuple[str, ...]] = ("xgboost", "xgboost-cpu", "numpy")

    def handles(self, model: object) -> bool:
        # An XGBoost model can only exist once xgboost is imported, so this never imports it.
        xgboost = sys.modules.get("xgboost")
        if xgboost is None:
            return False
        return isinstance(model, xgboost.Booster | xgboost.XGBModel)

    def serialize(self, model: Any) -> bytes:
        xgboost = _import_xgboost()
        if isinstance(model, xgboost.Booster):
            return _BOOSTER_HEADER + b"\n" + bytes(model.save_raw("ubj"))
        class_name: str = type(model).__name__
        if class_name in _NATIVE_WRAPPERS and type(model) is getattr(xgboost, class_name):
            header = _SKLEARN_HEADER + b" " + class_name.encode("ascii")
            return header + b"\n" + bytes(model.get_booster().save_raw("ubj"))
        return _PICKLE_HEADER + b"\n" + pickle.dumps(model, protocol=5)

    def deserialize(self, data: bytes) -> Any:
        xgboost = _import_xgboost()
        header, _, payload = data.partition(b"\n")
        kind, _, class_name = header.partition(b" ")
        try:
            if header == _BOOSTER_HEADER:
                booster = xgboost.Booster()
                booster.load_model(bytearray(payload))
                return booster
            if kind == _SKLEARN_HEADER and class_name.decode("ascii") in _NATIVE_WRAPPERS:
                wrapper = getattr(xgboost, class_name.decode("ascii"))()
                wrapper.load_model(bytearray(payload))
                return wrapper
            if header == _PICKLE_HEADER:
                return pickle.loads(payload)
        except Exception as exc:
            raise load_failure(self.name, exc) from exc
        raise ModelLoadError(self.name, "not a keel XGBoost artifact (unknown header)")

    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        xgboost = _import_xgboost()
        if isinstance(model, xgboost.Booster):
            # enable_categorical lets pandas category columns through, as in training.
            return np.asarray(model.predict(xgboost.DMatrix(frame, enable_categorical=True)))
        return np.asarray(model.predict(frame))
