"""Endpoints whose model was trained through the feature store: requests carry entity keys and
request-time fields, the server looks the features up.

    step = FeatureStep(version, workspace.features)  # at load: checks the views' versions
    problems = step.validate(record)                # keys, request fields, other model inputs
    rows, missing = step.complete(records)           # one online lookup for the whole batch

The model's signature names what it was trained on. Of those columns, the ones the feature
store produces (view features under their bare names, on-demand outputs) are looked up; the
others must come with the request, validated against the signature as on any endpoint. A
request also carries the views' join keys and the on-demand features' request fields, and
nothing else: a column the store provides is refused in the request, so a client can never
score a row with features that differ from what the store serves (train/serve skew).

:meth:`FeatureStep.complete` calls :meth:`FeatureStore.get_online_features` once per micro-batch
(one round trip per view, whatever the number of rows), which applies TTLs and computes the
on-demand features with the same functions the training frame used, and samples lookups for
``keel features skew``. It is blocking I/O, so it runs on the batcher's thread, never inline.

A model version is served this way only if every view it was trained on is still defined as it
was then (same view version); otherwise the endpoint does not become ready and says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from keel.data import RecordValidator, Schema
from keel.data._record import RecordProblem
from keel.errors import ServingError

if TYPE_CHECKING:
    from keel.features import FeatureStore
    from keel.registry import ModelVersion

Record = Mapping[str, Any]


class FeatureSetupError(ServingError):
    """A features endpoint cannot serve its model version with the feature store as it is."""


class MissingFeatures(ServingError):
    """The feature store holds no (fresh) value for features the model cannot do without."""

    def __init__(self, problems: list[tuple[int, str, str]]) -> None:
        self.problems = problems
        """(row of the request, feature, why) for each missing value."""
        shown = "; ".join(f"row {row}: {feature}: {why}" for row, feature, why in problems[:20])
        super().__init__(f"the feature store has no value for required features: {shown}")


class OnDemandFailed(ServingError):
    """An on-demand feature's function raised on a request's fields: their declared types are
    not known, so what the function cannot take is the request's mistake (answered 422)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        super().__init__(
            "an on-demand feature could not be computed from this request's fields: "
            f"{type(error).__name__}: {error}"
        )


class FeatureStep:
    """The feature lookup of one endpoint's model version; see the module doc.

    Raises :class:`FeatureSetupError` when the version records no features, or a view it was
    trained on is no longer defined the same way (its current version differs).
    """

    def __init__(self, version: ModelVersion, features: FeatureStore) -> None:
        if not version.features:
            raise FeatureSetupError(
                f"model '{version.name}' version {version.version} was not trained through the "
                "feature store (it records no features): serve it with features off"
            )
        self._store = features
        self.references = [str(item["feature"]) for item in version.features]
        catalog = features.catalog
        for item in version.features:
            if "view" not in item:
                continue
            view_name = str(item["view"])
            try:
                current = features.registry.version_of(catalog.view(view_name))
            except Exception as error:  # not defined any more, or not applied
                raise FeatureSetupError(
                    f"model '{version.name}' version {version.version} needs feature view "
                    f"'{view_name}': {error}"
                ) from None
            if current != item["view_version"]:
                raise FeatureSetupError(
                    f"model '{version.name}' version {version.version} was trained on feature "
                    f"view '{view_name}' version {item['view_version']}, but its definition is "
                    f"now version {current}: serve a version trained on it, or restore the "
                    "definition and `keel features apply`"
                )
        view_refs, on_demand = catalog.resolve(self.references)
        provided: dict[str, str] = {ref.feature: f"view '{ref.view}'" for ref in view_refs}
        for feature in on_demand:
            for output in feature.outputs:
                provided[output.name] = f"on-demand feature '{feature.name}'"
        keys: dict[str, None] = {}
        for ref in view_refs:
            keys.update(dict.fromkeys(catalog.view(ref.view).join_keys))
        request_fields: dict[str, None] = {}
        for feature in on_demand:
            request_fields.update(dict.fromkeys(feature.request_fields))
        signature = version.signature.inputs
        self.signature = signature
        self.keys = tuple(keys)
        self.request_fields = tuple(name for name in request_fields if name not in keys)
        self.provided = provided
        """Signature columns the store produces, and where from."""
        carried = [field for field in signature.fields if field.name not in provided]
        self.request_schema = Schema(tuple(carried))
        """The model inputs a request must carry itself (validated against the signature)."""
        self._validator = RecordValidator(self.request_schema, extra="ignore")
        self._allowed = frozenset({*self.keys, *self.request_fields, *self.request_schema.names})
        self._looked_up = [name for name in signature.names if name in provided]
        self._required = frozenset(
            field.name
            for field in signature.fields
            if field.name in provided and not field.nullable
        )

    def validate(self, record: Any) -> list[RecordProblem]:
        """Every problem of one request record: join keys and request fields present (key
        parts int, str or bool, as the online store keys them), the other inputs valid against
        the signature, nothing else (a column the store provides is named as such)."""
        problems = self._validator.validate(record)
        if not isinstance(record, Mapping):
            return problems
        for key in self.keys:
            value = record.get(key)
            if value is None:
                problems.append(RecordProblem(key, "required", "the entity key is missing"))
            elif not isinstance(value, int | str | bool) and not _integral(value):
                problems.append(
                    RecordProblem(
                        key,
                        "dtype",
                        f"an entity key is an int, a string or a bool, not {value!r}",
                    )
                )
        for name in self.request_fields:
            value = record.get(name)
            if value is None:
                problems.append(
                    RecordProblem(name, "required", "an on-demand feature needs this field")
                )
            elif isinstance(value, list | dict):
                problems.append(
                    RecordProblem(name, "dtype", f"a request field is one value, not {value!r}")
                )
        for name in record:
            if name in self._allowed:
                continue
            source = self.provided.get(name)
            message = (
                f"{name!r} comes from the feature store ({source}): send only "
                f"{', '.join(self._expected())}"
                if source is not None
                else f"{name!r} is not a field of this endpoint's requests"
            )
            problems.append(RecordProblem(str(name), "extra", message))
        return problems

    def complete(
        self, records: Sequence[Record]
    ) -> tuple[list[dict[str, Any]], MissingFeatures | None]:
        """Each record with its looked-up features (the full model input, signature columns
        only), in one lookup; blocking. The second value reports rows whose required features
        the store does not hold (not materialized, or older than the view's TTL)."""
        result = self._store.get_online_features(list(records), self.references)
        frame = result.frame
        columns = {name: frame[name].tolist() for name in self._looked_up}
        names = self.signature.names
        rows: list[dict[str, Any]] = []
        missing: list[tuple[int, str, str]] = []
        for index, record in enumerate(records):
            row: dict[str, Any] = {}
            for name in names:
                if name in columns:
                    value = _plain(columns[name][index])
                    if value is None and name in self._required:
                        missing.append((index, name, self._why_missing(result, name, index)))
                    row[name] = value
                else:
                    row[name] = record.get(name)
            rows.append(row)
        return rows, (MissingFeatures(missing) if missing else None)

    def _why_missing(self, result: Any, name: str, index: int) -> str:
        source = self.provided[name]
        for view, fresh in result.freshness.items():
            if source == f"view '{view}'":
                if not fresh.found[index]:
                    return f"no row for this entity in {source} (not materialized?)"
                if not fresh.fresh[index]:
                    return f"the stored row of {source} is older than its TTL"
        return f"null from {source}"

    def _expected(self) -> list[str]:
        return [*self.keys, *self.request_fields, *self.request_schema.names]


def _integral(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _plain(value: Any) -> Any:
    """A looked-up value as the model frame and the log take it: NaN and pandas' missing
    markers become None, NumPy scalars Python values."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else value
