"""Train/serve skew check: recompute logged online lookups offline and compare, per feature.

For every sampled online lookup row (see ``LookupLog``) and every view it read, the offline join
is asked for the same entity **as of the event timestamp of the row the online store returned**.
That pins the comparison to one source row, so a mismatch means the two paths computed different
values from the same data (a transformation changed, materialization wrote something else, a
type was mangled), not that one side was fresher than the other. Online rows the offline source
no longer has are counted as ``missing_offline``. On-demand outputs are recomputed with the
current function from the logged inputs and compared with what was served.

Numbers are equal when ``math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)``; nulls equal
nulls; everything else compares with ``==``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from keel.features._definitions import FeatureCatalog, FeatureRef
from keel.features._offline import get_training_frame
from keel.features._sources import SnapshotResolver
from keel.features._time import NaiveRule

_EXAMPLES = 5
_TIME = "__keel_skew_ts"


@dataclass
class FeatureSkew:
    """How one feature's served values compare with the offline recomputation."""

    feature: str
    tolerance: float = field(default=1e-9, repr=False)
    checked: int = 0
    mismatches: int = 0
    missing_offline: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.checked if self.checked else 0.0

    def add(self, entity: dict[str, Any], online: Any, offline: Any, found: bool) -> None:
        self.checked += 1
        if not found:
            self.missing_offline += 1
            return
        if _same(online, offline, self.tolerance):
            return
        self.mismatches += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append({"entity": entity, "online": online, "offline": offline})


@dataclass(frozen=True)
class SkewReport:
    lookup_rows: int
    features: list[FeatureSkew]

    @property
    def ok(self) -> bool:
        return all(f.mismatches == 0 for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lookup_rows": self.lookup_rows,
            "ok": self.ok,
            "features": [
                {
                    "feature": f.feature,
                    "checked": f.checked,
                    "mismatches": f.mismatches,
                    "mismatch_rate": f.mismatch_rate,
                    "missing_offline": f.missing_offline,
                    "examples": f.examples,
                }
                for f in self.features
            ],
        }


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _same(online: Any, offline: Any, tolerance: float) -> bool:
    if _missing(online) or _missing(offline):
        return _missing(online) and _missing(offline)
    if isinstance(online, int | float) and isinstance(offline, int | float):
        return math.isclose(float(online), float(offline), rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(offline, pd.Timestamp):
        return bool(offline == pd.Timestamp(online))
    return bool(online == offline)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def check_skew(
    lookups: pd.DataFrame,
    catalog: FeatureCatalog,
    *,
    sample: int | None = 1000,
    tolerance: float = 1e-9,
    naive: NaiveRule = "reject",
    resolve_snapshot: SnapshotResolver | None = None,
    seed: int = 0,
) -> SkewReport:
    """Compare up to ``sample`` logged lookup rows (``read_lookups``) with the offline path."""
    if sample is not None and len(lookups) > sample:
        lookups = lookups.sample(n=sample, random_state=seed)
    lookups = lookups.reset_index(drop=True)
    report: dict[str, FeatureSkew] = {}
    view_columns = [c for c in lookups.columns if c.startswith("features.") and ":" in c]
    by_view: dict[str, list[FeatureRef]] = {}
    for column in view_columns:
        ref = FeatureRef.parse(column.removeprefix("features."))
        if ref.view in catalog.views:
            by_view.setdefault(ref.view, []).append(ref)
    for view_name, refs in by_view.items():
        view = catalog.view(view_name)
        stamp_column = f"event_timestamps.{view_name}"
        if stamp_column not in lookups.columns:
            continue
        served = lookups[lookups[stamp_column].notna()]
        if served.empty:
            continue
        labels = pd.DataFrame({key: served[f"entity.{key}"].tolist() for key in view.join_keys})
        labels[_TIME] = pd.to_datetime(served[stamp_column], utc=True).reset_index(drop=True)
        offline = get_training_frame(
            labels,
            [str(ref) for ref in refs],
            catalog,
            timestamp_column=_TIME,
            naive=naive,
            resolve_snapshot=resolve_snapshot,
        )
        found = offline[f"{view_name}__found"].to_numpy()
        for ref in refs:
            skew = report.setdefault(str(ref), FeatureSkew(str(ref), tolerance=tolerance))
            online_values = served[f"features.{ref}"].tolist()
            offline_values = offline[ref.feature].tolist()
            for index in range(len(served)):
                entity = {key: _plain(labels[key].iloc[index]) for key in view.join_keys}
                skew.add(
                    entity, online_values[index], _plain(offline_values[index]), bool(found[index])
                )
    _check_on_demand(lookups, catalog, report, tolerance)
    return SkewReport(
        lookup_rows=len(lookups), features=sorted(report.values(), key=lambda f: f.feature)
    )


def _check_on_demand(
    lookups: pd.DataFrame, catalog: FeatureCatalog, report: dict[str, FeatureSkew], tolerance: float
) -> None:
    """Recompute each logged on-demand output from its logged inputs with today's function."""
    for feature in catalog.on_demand.values():
        outputs = [o.name for o in feature.outputs if f"features.{o.name}" in lookups.columns]
        if not outputs:
            continue
        inputs: dict[str, Any] = {}
        for name in feature.request_fields:
            inputs[name] = lookups.get(f"request.{name}", lookups.get(f"entity.{name}"))
        for ref in feature.view_inputs:
            inputs[ref.feature] = lookups.get(f"features.{ref}")
        if any(value is None for value in inputs.values()):
            continue
        rows = lookups[[f"features.{o}" for o in outputs]].notna().any(axis=1)
        frame = pd.DataFrame({k: v[rows].to_numpy() for k, v in inputs.items()})
        recomputed = feature.apply(frame)
        for output in outputs:
            skew = report.setdefault(output, FeatureSkew(output, tolerance=tolerance))
            served = lookups.loc[rows, f"features.{output}"].tolist()
            for index, value in enumerate(recomputed[output].tolist()):
                skew.add({"row": index}, served[index], _plain(value), True)
