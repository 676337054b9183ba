"""The LightGBM flavor: native ``Booster`` objects and the scikit-learn wrappers.

Artifact format: one ASCII header line, then the payload.

* ``keel-lightgbm/booster-text/1\\n`` + the Booster's native text model (``model_to_string``,
  UTF-8). LightGBM reads this format across versions, so a Booster artifact stays portable.
* ``keel-lightgbm/sklearn-pickle/1\\n`` + a pickle (protocol 5) of the ``LGBMModel`` subclass
  (``LGBMClassifier``, ``LGBMRegressor``, ...). Pickling keeps the wrapper's label encoding and
  parameters; the Booster inside pickles itself as the same native text model.

lightgbm is imported lazily: it is an optional extra (``keel-ml[lightgbm]``).
"""

from __future__ import annotations

import pickle
import sys
from types import ModuleType
from typing import Any, ClassVar

from keel.errors import FlavorUnavailable, ModelLoadError
from keel.flavors._base import Flavor, load_failure

_BOOSTER_HEADER = b"keel-lightgbm/booster-text/1"
_SKLEARN_HEADER = b"keel-lightgbm/sklearn-pickle/1"


def _import_lightgbm() -> ModuleType:
    try:
        import lightgbm
    except ImportError as exc:
        raise FlavorUnavailable("lightgbm", "lightgbm", "lightgbm") from exc
    return lightgbm


class LightGBMFlavor(Flavor):
    """Saves ``lightgbm.Booster`` and ``LGBMModel`` subclasses.

    A Booster predicts exactly what ``Booster.predict`` returns (probabilities for a binary
    objective) and has no ``predict_proba``; ``LGBMClassifier`` has both, and its classes:

        flavor = LightGBMFlavor()
        classifier = flavor.deserialize(flavor.serialize(classifier))
        flavor.classes(classifier)   # [0, 1]
    """

    name: ClassVar[str] = "lightgbm"
    packages: ClassVar[tuple[str, ...]] = ("lightgbm", "numpy")

    def handles(self, model: object) -> bool:
        # A LightGBM model can only exist once lightgbm is imported, so this never imports it
        # (and never fails when it is not installed).
        lightgbm = sys.modules.get("lightgbm")
        if lightgbm is None:
            return False
        return isinstance(model, lightgbm.Booster | lightgbm.LGBMModel)

    def serialize(self, model: Any) -> bytes:
        lightgbm = _import_lightgbm()
        if isinstance(model, lightgbm.Booster):
            text: str = model.model_to_string()
            return _BOOSTER_HEADER + b"\n" + text.encode("utf-8")
        return _SKLEARN_HEADER + b"\n" + pickle.dumps(model, protocol=5)

    def deserialize(self, data: bytes) -> Any:
        lightgbm = _import_lightgbm()
        header, _, payload = data.partition(b"\n")
        try:
            if header == _BOOSTER_HEADER:
                return lightgbm.Booster(model_str=payload.decode("utf-8"))
            if header == _SKLEARN_HEADER:
                return pickle.loads(payload)
        except Exception as exc:
            raise load_failure(self.name, exc) from exc
        raise ModelLoadError(self.name, "not a keel LightGBM artifact (unknown header)")
