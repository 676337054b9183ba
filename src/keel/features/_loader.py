"""Loading a project's feature definitions from its Python module (``features.py``)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import sys
from pathlib import Path

from keel.errors import FeatureDefinitionError
from keel.features._definitions import (
    Entity,
    FeatureCatalog,
    FeatureView,
    OnDemandFeature,
    ParquetSource,
)


def load_definitions(path: Path) -> FeatureCatalog:
    """Import the module at ``path`` and collect every Entity, FeatureView and OnDemandFeature
    defined at its top level. The module is imported under a name derived from its path, so two
    projects' ``features.py`` never shadow each other."""
    if not path.is_file():
        raise FeatureDefinitionError(
            f"no feature definitions at {path} (set [features] definitions in keel.toml, "
            "or create the module)"
        )
    module_name = "keel_features_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FeatureDefinitionError(f"{path} is not an importable Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before running so dataclasses and pickling inside the module can find it.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except FeatureDefinitionError:
        raise
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise FeatureDefinitionError(
            f"importing {path} failed: {type(error).__name__}: {error}"
        ) from error
    base_dir = str(path.resolve().parent)
    return FeatureCatalog.of(
        _anchored(value, base_dir)
        for value in vars(module).values()
        if isinstance(value, Entity | FeatureView | OnDemandFeature)
    )


def _anchored(
    item: Entity | FeatureView | OnDemandFeature, base_dir: str
) -> Entity | FeatureView | OnDemandFeature:
    """The view with a relative Parquet path resolved against the module's directory."""
    if (
        isinstance(item, FeatureView)
        and isinstance(item.source, ParquetSource)
        and item.source.base_dir is None
    ):
        return dataclasses.replace(item, source=dataclasses.replace(item.source, base_dir=base_dir))
    return item
