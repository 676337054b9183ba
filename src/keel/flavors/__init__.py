"""Save / load / predict adapters, one module per model family.

``flavor_for(model)`` picks the flavor that saves a model; ``get_flavor(name)`` finds the one
that loads it. The name → class map is explicit and the modules import their libraries lazily,
so a missing optional library only matters when its flavor is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from keel.errors import FlavorError, UnsupportedModel
from keel.flavors._base import Flavor, KeelVersionWarning, LoadedModel, SavedModel
from keel.flavors._base import warn_on_version_drift as _warn_on_version_drift

# Priority order matters: the library-specific flavors come before sklearn because
# LightGBM's and XGBoost's estimators are also scikit-learn estimators; pyfunc is the catch-all.
_FLAVORS: dict[str, str] = {
    "lightgbm": "keel.flavors.lightgbm:LightGBMFlavor",
    "xgboost": "keel.flavors.xgboost:XGBoostFlavor",
    "sklearn": "keel.flavors.sklearn:SklearnFlavor",
    "pyfunc": "keel.flavors.pyfunc:PyFuncFlavor",
}

__all__ = [
    "Flavor",
    "KeelVersionWarning",
    "LoadedModel",
    "SavedModel",
    "flavor_for",
    "flavor_names",
    "get_flavor",
    "load_model",
    "save_model",
]


def flavor_names() -> list[str]:
    return list(_FLAVORS)


def get_flavor(name: str) -> Flavor:
    """The flavor registered under ``name``."""
    try:
        target = _FLAVORS[name]
    except KeyError:
        raise FlavorError(
            f"unknown flavor '{name}'; known flavors: {', '.join(sorted(_FLAVORS))}"
        ) from None
    module_name, class_name = target.split(":")
    flavor_class: type[Flavor] = getattr(importlib.import_module(module_name), class_name)
    return flavor_class()


def flavor_for(model: object) -> Flavor:
    """The first flavor, in priority order, that can save ``model``."""
    for name in _FLAVORS:
        flavor = get_flavor(name)
        if flavor.handles(model):
            return flavor
    raise UnsupportedModel(type(model).__qualname__, _FLAVORS)


def save_model(model: Any, flavor: str | None = None) -> SavedModel:
    """Serialise ``model`` with the named flavor, or the first one that handles it."""
    chosen = get_flavor(flavor) if flavor else flavor_for(model)
    if flavor and not chosen.handles(model):
        raise UnsupportedModel(f"{type(model).__qualname__} with the {flavor} flavor", _FLAVORS)
    return SavedModel(
        flavor=chosen.name, data=chosen.serialize(model), library_versions=chosen.library_versions()
    )


def load_model(flavor: str, data: bytes, library_versions: dict[str, str]) -> LoadedModel:
    """Rebuild a model from verified bytes; warns when library versions differ from the saved."""
    chosen = get_flavor(flavor)
    _warn_on_version_drift(chosen, library_versions)
    return LoadedModel(
        flavor=chosen, model=chosen.deserialize(data), library_versions=library_versions
    )
