"""What the request path passes around: records, each row's result or problem, and how a
micro-batch of requests is cut back into them (also when features are looked up first)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.data._record import RecordProblem
from keel.errors import FeatureStoreError
from keel.serving._features import FeatureStep, OnDemandFailed

if TYPE_CHECKING:
    from keel.serving._pii import InputRedactor

Record = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RowResult:
    """The model's answer for one row: a label or value, and a classifier's probabilities;
    on a features endpoint, also the model input the request was completed into."""

    prediction: Any
    probabilities: dict[str, float] | None
    inputs: dict[str, Any] | None = None
    fallback: str | None = None
    """Why the endpoint's fallback answered instead of the primary (None: the primary did)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A problem of one record of a request (``row`` is its position in the request)."""

    row: int
    problem: RecordProblem


def run_with_features(
    items: list[list[Record]],
    records: list[Record],
    step: FeatureStep,
    predict: Callable[[list[Record]], list[RowResult]],
) -> list[list[RowResult] | Exception]:
    """One lookup for the whole batch; a request whose rows lack required features fails
    alone (:class:`MissingFeatures`), the others are predicted together."""
    try:
        completed, missing = step.complete(records)
    except FeatureStoreError:
        raise  # the store itself failed: every request of the batch
    except Exception as error:  # an on-demand function refused some request's fields
        if len(items) == 1:
            return [OnDemandFailed(error)]
        # Find which requests: each alone (only on this error path).
        return [run_with_features([item], item, step, predict)[0] for item in items]
    failed: dict[int, Exception] = {}
    if missing is not None:
        bad_rows = {row for row, _, _ in missing.problems}
        start = 0
        for index, item in enumerate(items):
            rows = range(start, start + len(item))
            if bad_rows.intersection(rows):
                failed[index] = type(missing)(
                    [(r - start, f, why) for r, f, why in missing.problems if r in rows]
                )
            start += len(item)
    kept = [item for index, item in enumerate(items) if index not in failed]
    inputs: list[Record] = []
    start = 0
    for index, item in enumerate(items):
        if index not in failed:
            inputs += completed[start : start + len(item)]
        start += len(item)
    predicted = predict(inputs) if inputs else []
    results = [
        RowResult(result.prediction, result.probabilities, dict(row))
        for result, row in zip(predicted, inputs, strict=True)
    ]
    answers = iter(split_by_item(kept, results))
    return [failed[index] if index in failed else next(answers) for index in range(len(items))]


def split_by_item(items: list[list[Record]], results: list[RowResult]) -> list[list[RowResult]]:
    """A batch's results cut back into its requests (``items``), in order."""
    if len(items) == 1:
        return [results]
    split: list[list[RowResult]] = []
    start = 0
    for item in items:
        split.append(results[start : start + len(item)])
        start += len(item)
    return split


def logged_inputs(
    record: Record, result: RowResult, redactor: InputRedactor | None
) -> Mapping[str, Any]:
    """What the prediction log holds of a row's inputs: the record (completed with looked-up
    features), sensitive fields tokenized or dropped."""
    inputs = record if result.inputs is None else {**record, **result.inputs}
    return inputs if redactor is None else redactor.redact(inputs)
