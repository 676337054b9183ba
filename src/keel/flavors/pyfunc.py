"""The pyfunc flavor: the catch-all for any object with a ``predict(frame)`` method.

Artifact format: a cloudpickle (pickle protocol 5) of the object. cloudpickle pickles classes
defined in ``__main__``, in a notebook or inside a function by value, so a model written in a
script loads where that script is not importable. Code pickled by value needs the same Python
minor version to load, and cloudpickle itself is pinned with the model.
"""

from __future__ import annotations

from typing import Any, ClassVar

from keel.flavors._base import Flavor, labels_of, load_failure


class PyFuncFlavor(Flavor):
    """Saves any object with a callable ``predict`` (optionally ``predict_proba``, ``classes_``).

    The object is called as it is after loading; predictions are converted to numpy arrays:

        class Threshold:
            def predict(self, frame):
                return (frame["score"] > 0.5).to_numpy()

        flavor = PyFuncFlavor()
        model = flavor.deserialize(flavor.serialize(Threshold()))
    """

    name: ClassVar[str] = "pyfunc"
    packages: ClassVar[tuple[str, ...]] = ("cloudpickle", "numpy", "pandas")

    def handles(self, model: object) -> bool:
        # A class has a callable ``predict`` too, but only an instance can serve predictions.
        return not isinstance(model, type) and callable(getattr(model, "predict", None))

    def serialize(self, model: Any) -> bytes:
        import cloudpickle

        data: bytes = cloudpickle.dumps(model, protocol=5)
        return data

    def deserialize(self, data: bytes) -> Any:
        import cloudpickle

        try:
            return cloudpickle.loads(data)
        except Exception as exc:
            raise load_failure(self.name, exc) from exc

    def classes(self, model: Any) -> list[Any] | None:
        # A custom class says it is a classifier by having classes_, with or without probabilities.
        return labels_of(model)
