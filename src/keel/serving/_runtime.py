"""One endpoint's model, ready to answer: loaded, verified, validated against, micro-batched.

    runtime = EndpointRuntime(endpoint, registry)
    runtime.load()                                   # at startup, off the event loop
    problems = runtime.validate(records)             # [(row, RecordProblem), ...]
    rows = await runtime.predict(records)            # one RowResult per record
    await runtime.aclose()

A request's records travel as one item of the :class:`MicroBatcher` (counting for as many rows
as it has), so concurrent requests are stacked into one frame and one model call, run on the
batcher's thread (or, for a batch measured to be cheaper than the trip to that thread, on the
event loop's: ``inline_below_ms``, see :mod:`keel.serving._batching`). Transports (the native
JSON API, the Open Inference Protocol) parse their payloads into records and call the same two
methods.

Classifiers are called once per batch, with ``predict_proba``: each row's prediction is the
label of its highest probability (what ``predict`` answers for scikit-learn, LightGBM and
XGBoost classifiers), so a batch costs one model call instead of two.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from keel.data import RecordValidator
from keel.errors import ServingError
from keel.serving._batching import BatcherStats, BatchRecord, MicroBatcher
from keel.serving._breaker import CircuitBreaker, Transition
from keel.serving._cache_keys import CacheKeys
from keel.serving._features import FeatureSetupError, FeatureStep
from keel.serving._frames import checked_array_model, column, plain
from keel.serving._pii import InputRedactor, PiiMode
from keel.serving._policy import DefaultPrediction, PinnedModel
from keel.serving._routing import ArmRouter
from keel.serving._rows import Record as Record
from keel.serving._rows import RowProblem as RowProblem
from keel.serving._rows import RowResult as RowResult
from keel.serving._rows import run_with_features, split_by_item
from keel.serving._shadow import ShadowMirror

if TYPE_CHECKING:
    from keel.data import Schema
    from keel.features import FeatureStore
    from keel.flavors import LoadedModel
    from keel.registry import ModelVersion, Registry
    from keel.serving._deployments import Endpoint, Revision


logger = logging.getLogger(__name__)

INLINE_BELOW_MS = 0.5
"""Default of ``[serving] inline_below_ms``: about what parsing a 100 kB JSON body costs, which
the event loop does anyway; a thread round trip costs ≈0.25 ms on a busy core."""


SHADOW_TIMEOUT_MS = 10_000
"""How long a shadow may take for one request when the endpoint sets no ``timeout_ms``."""


class ModelNotReady(ServingError):
    """The endpoint's model is not loaded (still loading, or loading failed)."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"the model of endpoint '{endpoint}' is not ready: {reason}")


class EndpointRuntime:
    """The loaded primary model of one endpoint and the micro-batcher in front of it.

    Args:
        endpoint: the endpoint and its live revision (its policy gives the model and the
            batching options).
        registry: where the pinned version is loaded from (its sha256 checked).
        max_queue: requests waiting for a batch before new ones are refused (503).
        observer: called on the event loop after every batch (the server feeds metrics).
        inline_below_ms: batches expected to take less than this run on the event loop's
            thread (``[serving] inline_below_ms``); 0 sends every batch to the batcher's thread.
        features: the project's feature store, needed by an endpoint whose policy has
            ``features`` on (requests then carry entity keys; see :mod:`._features`).
        breaker_options: keyword arguments of the primary's :class:`CircuitBreaker`.
        on_breaker_transition: called with each change of the breaker's state.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        registry: Registry,
        *,
        max_queue: int = 1024,
        observer: Callable[[BatchRecord], None] | None = None,
        inline_below_ms: float = INLINE_BELOW_MS,
        features: FeatureStore | None = None,
        breaker_options: Mapping[str, Any] | None = None,
        on_breaker_transition: Callable[[Transition], None] | None = None,
        pii_mode: PiiMode = "tokenize",
        pii_key: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        self.revision = endpoint.revision.number
        self.policy = endpoint.policy
        self._registry = registry
        self._max_queue = max_queue
        self._observer = observer
        self._inline_below_ms = inline_below_ms
        self._feature_store = features
        self._breaker_options = dict(breaker_options or {})
        self._on_breaker_transition = on_breaker_transition
        self._pii = (pii_mode, pii_key)
        self.redactor: InputRedactor | None = None
        """Set at load when a served signature marks fields sensitive: what the prediction
        log gets of a request's inputs (tokens, or nothing, for those fields)."""
        self.breaker: CircuitBreaker | None = None
        """The primary's circuit breaker (set at load)."""
        self.fallback: EndpointRuntime | DefaultPrediction | None = None
        """What answers when the primary cannot (set at load): a loaded runtime of the fallback
        model version, the policy's default prediction, or None."""
        self.fallback_error: str | None = None
        """Why the fallback model could not be loaded (the primary serves regardless)."""
        self.cache_keys: CacheKeys | None = None
        """The prediction-cache keys of the loaded version's records (set at load)."""
        self.router: ArmRouter | None = None
        """With weighted arms: picks an arm per request (set at load)."""
        self.arm_runtimes: list[EndpointRuntime] = []
        """The arms' loaded runtimes, in the policy's order (set at load)."""
        self.shadows: ShadowMirror | None = None
        """With shadow versions: mirrors each answered request to them (set at load)."""
        self.shadow_errors: dict[str, str] = {}
        """Why each shadow version that could not be loaded failed (the primary serves)."""
        self.feature_step: FeatureStep | None = None
        """Set at load on a features endpoint: what requests carry, and the lookup."""
        self.model_version: ModelVersion | None = None
        self.load_seconds: float | None = None
        self.error: str | None = None
        """Why loading failed (None when it did not, or has not been tried)."""
        self._model: LoadedModel | None = None
        self._validator: RecordValidator | None = None
        self._batcher: MicroBatcher[list[Record], list[RowResult]] | None = None
        self._columns: tuple[tuple[str, str], ...] = ()
        self._names: list[str] = []
        self._all_float = False
        self._labels: list[Any] | None = None
        self._label_keys: list[str] = []
        # The flavor's model for float matrices, when it answers exactly as on frames.
        self._array_model: Any | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._batcher is not None

    @property
    def schema(self) -> Schema:
        if self.model_version is None:
            raise ModelNotReady(self.name, self.error or "not loaded yet")
        return self.model_version.signature.inputs

    @property
    def batcher_stats(self) -> BatcherStats | None:
        """The micro-batcher's counters and queue (None until the model is loaded)."""
        return None if self._batcher is None else self._batcher.stats

    @property
    def request_names(self) -> list[str]:
        """The fields a request record carries: the signature's columns, or on a features
        endpoint the entity keys, request fields and the inputs the store does not provide."""
        step = self.feature_step
        if step is not None:
            return [*step.keys, *step.request_fields, *step.request_schema.names]
        return self.schema.names

    @property
    def labels(self) -> list[Any] | None:
        """A classifier's class labels (in probability order); None for a regressor."""
        return self._labels

    def load(self) -> None:
        """Load the pinned primary version (blocking: call it off the event loop, at startup).
        A failure is kept in :attr:`error` and re-raised; the endpoint then stays not ready."""
        primary = self.policy.primary
        started = time.perf_counter()
        try:
            version = self._registry.get_version(primary.name, primary.version)
            step = self._feature_step(version) if self.policy.features else None
            model = self._registry.load_version(version)
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
            raise
        self.load_seconds = time.perf_counter() - started
        self.model_version = version
        self._model = model
        self.feature_step = step
        schema = version.signature.inputs
        self._validator = RecordValidator(schema)
        self._columns = tuple((field.name, field.dtype) for field in schema.fields)
        self._names = [name for name, _ in self._columns]
        self._all_float = all(dtype == "float" for _, dtype in self._columns)
        self._array_model = checked_array_model(model, self._names) if self._all_float else None
        labels = model.classes
        if labels is not None:
            self._labels = [plain(label) for label in labels]
            self._label_keys = [str(label) for label in self._labels]
        self.cache_keys = CacheKeys(primary.name, primary.version, self._names)
        self.breaker = CircuitBreaker(
            f"{self.name}/{primary.name}/{primary.version}",
            **self._breaker_options,
            on_transition=self._on_breaker_transition,
        )
        self.fallback = self._load_fallback()
        self.arm_runtimes = [self._load_arm(arm.model) for arm in self.policy.arms]
        self.router = ArmRouter(self.policy.arms, salt=self.name) if self.policy.arms else None
        self.shadows = self._load_shadows()
        try:
            self.redactor = self._redactor(schema)
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
            raise
        self._batcher = MicroBatcher(
            self._run_batch,
            name=f"{self.name}/{primary.name}/{primary.version}",
            max_batch_size=self.policy.max_batch_size,
            max_batch_wait_ms=self.policy.max_batch_wait_ms,
            max_queue=self._max_queue,
            item_size=len,
            observer=self._observer,
            # A feature lookup is network I/O, and a call on the loop's thread cannot be cut
            # short by the endpoint's timeout: neither ever runs there.
            inline_below_ms=(
                0
                if step is not None or self.policy.timeout_ms is not None
                else self._inline_below_ms
            ),
        )
        self.error = None

    def _sub_runtime(
        self, model: PinnedModel, *, counted: bool = True, inline: bool = True
    ) -> EndpointRuntime:
        """A runtime of this endpoint's revision serving ``model`` alone (an arm, a fallback)."""
        policy = dataclasses.replace(self.policy, primary=model, fallback=None, shadows=(), arms=())
        revision = dataclasses.replace(self.endpoint.revision, policy=policy)
        return EndpointRuntime(
            dataclasses.replace(self.endpoint, revision=revision),
            self._registry,
            max_queue=self._max_queue,
            observer=self._observer if counted else None,
            inline_below_ms=self._inline_below_ms if inline else 0,
            features=self._feature_store,
            breaker_options=self._breaker_options,
            pii_mode=self._pii[0],
            pii_key=self._pii[1],
        )

    def _load_arm(self, model: PinnedModel) -> EndpointRuntime:
        """An arm's runtime, loaded, sharing this runtime's fallback (an arm that cannot load
        keeps the whole endpoint not ready: its share of traffic would have nowhere to go)."""
        if model == self.policy.primary:
            return self
        runtime = self._sub_runtime(model)
        try:
            runtime.load()
        except Exception as error:
            self.error = f"arm {model.pinned_uri}: {type(error).__name__}: {error}"
            raise
        runtime.fallback = self.fallback
        return runtime

    def _redactor(self, schema: Schema) -> InputRedactor | None:
        """One for every version the endpoint's requests reach (primary, arms, fallback,
        shadows): a field one of them marks sensitive is never logged in clear by any."""
        schemas = [schema, *(arm.schema for arm in self.arm_runtimes if arm is not self)]
        if isinstance(self.fallback, EndpointRuntime):
            schemas.append(self.fallback.schema)
        if self.shadows is not None:
            schemas += [shadow.schema for shadow in self.shadows.shadows]
        mode, key = self._pii
        return InputRedactor.from_schemas(
            schemas, mode=mode, key=key, what=f"endpoint '{self.name}'"
        )

    def _load_shadows(self) -> ShadowMirror | None:
        """The policy's shadow versions, loaded; one that fails to load is reported in
        :attr:`shadow_errors` and left out (a shadow never keeps the endpoint from serving)."""
        loaded: list[EndpointRuntime] = []
        self.shadow_errors = {}
        for model in self.policy.shadows:
            # Not counted as the endpoint's batches, and never inline on the event loop: a
            # shadow's model call must not delay the requests being answered.
            runtime = self._sub_runtime(model, counted=False, inline=False)
            try:
                runtime.load()
            except Exception as error:
                self.shadow_errors[model.pinned_uri] = f"{type(error).__name__}: {error}"
                logger.error("endpoint '%s': shadow %s failed to load: %s", self.name, model, error)
                continue
            loaded.append(runtime)
        if not loaded:
            return None
        timeout_ms = self.policy.timeout_ms or SHADOW_TIMEOUT_MS
        return ShadowMirror(self.name, loaded, timeout_ms=timeout_ms)

    def _load_fallback(self) -> EndpointRuntime | DefaultPrediction | None:
        """The policy's fallback, ready to answer; a fallback model that fails to load is
        reported (:attr:`fallback_error`) and left out: the primary serves regardless."""
        fallback = self.policy.fallback
        if not isinstance(fallback, PinnedModel):
            return fallback
        runtime = self._sub_runtime(fallback, counted=False)  # not the endpoint's batches
        try:
            runtime.load()
        except Exception as error:
            self.fallback_error = f"{fallback.pinned_uri}: {type(error).__name__}: {error}"
            logger.error("endpoint '%s': the fallback failed to load: %s", self.name, error)
            return None
        self.fallback_error = None
        return runtime

    def _feature_step(self, version: ModelVersion) -> FeatureStep:
        if self._feature_store is None:
            raise FeatureSetupError(
                f"endpoint '{self.name}' looks features up, but the server has no feature store"
            )
        return FeatureStep(version, self._feature_store)

    def adopt(self, revision: Revision) -> None:
        """Serve ``revision``, a newer revision with exactly this runtime's policy (a rollback
        to it), without loading anything again."""
        if revision.policy != self.policy:
            raise ValueError(
                f"revision {revision.number} of endpoint '{self.name}' has another policy"
            )
        self.endpoint = dataclasses.replace(self.endpoint, revision=revision)
        self.revision = revision.number

    async def aclose(self) -> None:
        """Finish what is queued, then stop the batcher's thread (and the fallback's, the
        arms' and, once what they were asked is answered and logged, the shadows')."""
        if self._batcher is not None:
            await self._batcher.aclose()
        for arm in self.arm_runtimes:
            if arm is not self:
                arm.fallback = None  # shared with this runtime, closed below
                await arm.aclose()
        if isinstance(self.fallback, EndpointRuntime):
            await self.fallback.aclose()
        if self.shadows is not None:
            await self.shadows.aclose()

    # -- the request path --------------------------------------------------------------------

    def validate(self, records: Sequence[Any]) -> list[RowProblem]:
        """Every problem of every record against the signature; [] when all are valid."""
        validator = self._validator
        if validator is None:
            raise ModelNotReady(self.name, self.error or "not loaded yet")
        check = validator.validate if self.feature_step is None else self.feature_step.validate
        problems: list[RowProblem] = []
        for row, record in enumerate(records):
            for problem in check(record):
                problems.append(RowProblem(row, problem))
        return problems

    async def predict(self, records: list[Record]) -> list[RowResult]:
        """The model's answer for each (already validated) record, in order. Raises
        :class:`~keel.serving._batching.Overloaded` when the queue is full."""
        batcher = self._batcher
        if batcher is None:
            raise ModelNotReady(self.name, self.error or "not loaded yet")
        return await batcher.submit(records)

    # -- on the batcher's thread -------------------------------------------------------------

    def _run_batch(self, items: list[list[Record]]) -> Sequence[list[RowResult] | Exception]:
        """Every request of the batch in one model call. When that call raises, each request
        is tried alone, so a model that fails on some inputs fails only the requests carrying
        them, not the others it happened to be batched with."""
        records = items[0] if len(items) == 1 else [r for item in items for r in item]
        if self.feature_step is not None:
            return run_with_features(items, records, self.feature_step, self._predict)
        try:
            return split_by_item(items, self._predict(records))
        except Exception:
            if len(items) == 1:
                raise
        return [self._alone(item) for item in items]

    def _alone(self, item: list[Record]) -> list[RowResult] | Exception:
        try:
            return self._predict(item)
        except Exception as error:
            return error

    def _predict(self, records: list[Record]) -> list[RowResult]:
        """The model's answer for each record (complete model inputs, in order)."""
        model = self._model
        assert model is not None
        results: list[RowResult]
        # The flavor is called directly, not through LoadedModel.predict*: those conform the
        # frame to the signature (Schema.from_frame + diff, ~2 ms a call), which _frame already
        # guarantees for records that passed the RecordValidator.
        flavor = model.flavor
        frame: Any
        if self._array_model is not None:  # ~7x cheaper than a 1-row DataFrame (measured)
            estimator = self._array_model
            frame = self._matrix(records)
        else:
            estimator = model.model
            frame = self._frame(records)
        if self._labels is not None:
            proba = flavor.predict_proba(estimator, frame)
            if proba is None:  # a classifier without probabilities
                predicted = np.asarray(flavor.predict(estimator, frame)).tolist()
                results = [RowResult(plain(p), None) for p in predicted]
            else:
                results = self._classified(np.asarray(proba, dtype=np.float64))
        else:
            predicted = np.asarray(flavor.predict(estimator, frame)).tolist()
            results = [RowResult(p, None) for p in predicted]
        return results

    def _classified(self, proba: np.ndarray[Any, Any]) -> list[RowResult]:
        labels, keys = self._labels, self._label_keys
        assert labels is not None
        best = proba.argmax(axis=1).tolist()
        return [
            RowResult(labels[index], dict(zip(keys, row, strict=True)))
            for index, row in zip(best, proba.tolist(), strict=True)
        ]

    def _matrix(self, records: list[Record]) -> np.ndarray[Any, Any]:
        """All-float records as one matrix in signature column order (None becomes NaN)."""
        names = self._names
        return np.array([[r.get(n) for n in names] for r in records], dtype=np.float64)

    def _frame(self, records: list[Record]) -> pd.DataFrame:
        """The records as one frame: every signature column, in signature order, typed as the
        signature says (validated records only, so the conversions cannot fail)."""
        if self._all_float:  # one 2-D block: several times faster than a dict of columns
            return pd.DataFrame(self._matrix(records), columns=self._names, copy=False)
        data: dict[str, Any] = {}
        for name, dtype in self._columns:
            values = [record.get(name) for record in records]
            data[name] = column(values, dtype)
        return pd.DataFrame(data, copy=False)
