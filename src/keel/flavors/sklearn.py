"""The scikit-learn flavor: any fitted estimator with ``predict``, pipelines included.

Artifact format: a pickle (protocol 5) of the estimator, one of the two ways scikit-learn
documents for persisting models (joblib's file format gains nothing for bytes kept in memory).
Pickles are tied to the scikit-learn version they were written with, which is why the flavor
pins scikit-learn and the libraries its estimators are built on (numpy, scipy, joblib), and why
loading warns on version drift.
"""

from __future__ import annotations

import copy
import pickle
import sys
from typing import Any, ClassVar

from keel.flavors._base import Flavor, labels_of, load_failure


class SklearnFlavor(Flavor):
    """Saves scikit-learn estimators, including ``Pipeline`` and ``ColumnTransformer`` chains.

    Any fitted ``BaseEstimator`` with a ``predict`` method qualifies:

        flavor = SklearnFlavor()
        model = flavor.deserialize(flavor.serialize(pipeline))
        flavor.predict_proba(model, frame)   # None when the last step has no predict_proba
    """

    name: ClassVar[str] = "sklearn"
    packages: ClassVar[tuple[str, ...]] = ("scikit-learn", "numpy", "scipy", "joblib")

    def handles(self, model: object) -> bool:
        # An estimator can only exist once sklearn is imported: checking sys.modules first keeps
        # flavor_for from importing scikit-learn for models of other libraries.
        if "sklearn" not in sys.modules:
            return False
        from sklearn.base import BaseEstimator

        # A transformer on its own (no predict) cannot serve predictions.
        return isinstance(model, BaseEstimator) and callable(getattr(model, "predict", None))

    def serialize(self, model: Any) -> bytes:
        return pickle.dumps(model, protocol=5)

    def deserialize(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise load_failure(self.name, exc) from exc

    def classes(self, model: Any) -> list[Any] | None:
        from sklearn.base import is_classifier

        return labels_of(model) if is_classifier(model) else None

    def array_model(self, model: Any, columns: list[str]) -> Any | None:
        """A copy of ``model`` without the feature names it was fitted with, when those are
        exactly ``columns`` and nothing in it selects columns by name (a ColumnTransformer):
        such a copy computes the same thing from a matrix in that column order, without
        scikit-learn's per-call DataFrame checks."""
        names = getattr(model, "feature_names_in_", None)
        if names is None or list(names) != columns or _selects_by_name(model):
            return None
        stripped = copy.deepcopy(model)
        for estimator in _estimators(stripped):
            if "feature_names_in_" in vars(estimator):  # pipelines only delegate to a step
                del estimator.feature_names_in_
        return stripped


def _estimators(model: Any) -> list[Any]:
    """``model`` and, for pipelines, every step (recursively)."""
    found = [model]
    for _, step in getattr(model, "steps", []):
        found += _estimators(step)
    return found


def _selects_by_name(model: Any) -> bool:
    return any(hasattr(estimator, "transformers") for estimator in _estimators(model))
