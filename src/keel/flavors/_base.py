"""The flavor contract: how keel saves, loads and calls one family of models."""

from __future__ import annotations

import functools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from keel.errors import ModelLoadError


class KeelVersionWarning(UserWarning):
    """A model is loaded under library versions other than the ones it was saved with."""


class Flavor(ABC):
    """Save / load / predict adapter for one family of models.

    A flavor turns a fitted model into bytes (one artifact file, content-addressed by the
    artifact store) and back, and calls it on a pandas DataFrame. Adding a flavor means adding
    one module that subclasses this and one line in ``keel.flavors._FLAVORS``.

        flavor = SklearnFlavor()
        data = flavor.serialize(model)          # bytes -> artifact store
        model = flavor.deserialize(data)        # only ever called on verified bytes
        flavor.predict(model, frame)
    """

    #: short name recorded with every model version ("sklearn", "lightgbm", ...)
    name: ClassVar[str]
    #: distributions whose installed versions are pinned in the model's requirements,
    #: the first one being the library the flavor is about
    packages: ClassVar[tuple[str, ...]]

    @abstractmethod
    def handles(self, model: object) -> bool:
        """True when this flavor can save ``model``. Called in priority order by ``flavor_for``."""

    @abstractmethod
    def serialize(self, model: Any) -> bytes:
        """Return the model as bytes. Must not mutate the model."""

    @abstractmethod
    def deserialize(self, data: bytes) -> Any:
        """Rebuild a model from bytes written by ``serialize``.

        Called only after the artifact store verified the bytes against their sha256, so a
        tampered file never reaches a deserialiser that can execute code.
        """

    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        """Predictions for every row of ``frame`` (one value per row, or one row per row).
        The default calls ``model.predict(frame)``."""
        return np.asarray(model.predict(frame))

    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray[Any, Any] | None:
        """Class probabilities (rows x classes) for classifiers, ``None`` for other models.
        The default calls ``model.predict_proba(frame)`` when the model has one."""
        predict_proba = getattr(model, "predict_proba", None)
        if not callable(predict_proba):
            return None
        return np.asarray(predict_proba(frame))

    def classes(self, model: Any) -> list[Any] | None:
        """Class labels in ``predict_proba`` column order for classifiers, else ``None``.
        The default reads ``classes_`` from models that have ``predict_proba``."""
        if not callable(getattr(model, "predict_proba", None)):
            return None
        return labels_of(model)

    def array_model(self, model: Any, columns: list[str]) -> Any | None:
        """A model that takes a float NumPy matrix whose columns are ``columns`` (in that
        order) and answers exactly as ``model`` does on the equivalent frame, or None when the
        flavor cannot provide one. Serving uses it for all-float signatures: building and
        checking a DataFrame costs several times the prediction itself for small batches.
        Callers must check the two agree before relying on it (see ``keel.serving``)."""
        return None

    def library_versions(self) -> dict[str, str]:
        """Installed versions of :attr:`packages` (those that are installed)."""
        versions: dict[str, str] = {}
        for package in self.packages:
            version = installed_version(package)
            if version is not None:
                versions[package] = version
        return versions


def labels_of(model: Any) -> list[Any] | None:
    """``model.classes_`` as plain Python values, or None when the model has none."""
    labels = getattr(model, "classes_", None)
    if labels is None:
        return None
    classes: list[Any] = np.asarray(labels).tolist()
    return classes


@functools.cache
def installed_version(package: str) -> str | None:
    """The installed version of a distribution, or None. Cached for the process: looking it up
    scans every installed distribution (milliseconds), and model loads check it every time."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def load_failure(flavor: str, exc: BaseException) -> ModelLoadError:
    """Translate a library or unpickling exception into :class:`ModelLoadError`.

    Keeps the exception type and the first line of its message: native libraries (xgboost,
    lightgbm) append C++ stack traces that say nothing to the person loading the model.
    """
    first_line = str(exc).strip().partition("\n")[0]
    reason = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return ModelLoadError(flavor, reason)


@dataclass(frozen=True)
class SavedModel:
    """A serialised model and what is needed to load it again."""

    flavor: str
    data: bytes
    library_versions: dict[str, str]

    @property
    def requirements(self) -> list[str]:
        """Pinned requirement lines (``package==version``), ready for requirements.txt."""
        return [f"{package}=={version}" for package, version in self.library_versions.items()]


@dataclass
class LoadedModel:
    """A model ready to predict, whatever its flavor."""

    flavor: Flavor
    model: Any
    library_versions: dict[str, str] = field(default_factory=dict)
    #: prepares every frame before the model sees it; the registry sets it to refuse frames that
    #: no longer match the version's signature and to put the columns in signature order
    conform: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    @property
    def flavor_name(self) -> str:
        return self.flavor.name

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def classes(self) -> list[Any] | None:
        return self.flavor.classes(self.model)

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return self.flavor.predict(self.model, self._conformed(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any] | None:
        return self.flavor.predict_proba(self.model, self._conformed(frame))

    def _conformed(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame if self.conform is None else self.conform(frame)


def warn_on_version_drift(flavor: Flavor, recorded: dict[str, str]) -> None:
    """Warn (KeelVersionWarning) for each package whose installed version differs from
    the version the model was saved with, naming both versions."""
    installed = flavor.library_versions()
    for package, saved_with in recorded.items():
        now = installed.get(package)
        if now is not None and now != saved_with:
            warnings.warn(
                f"{flavor.name} model was saved with {package}=={saved_with} "
                f"but {package}=={now} is installed; predictions may differ",
                KeelVersionWarning,
                stacklevel=3,
            )
