"""keel's own JSON API: ``/v1/endpoints/{name}/predict`` and ``/v1/endpoints/{name}/feedback``.

Predict takes ``{"inputs": ...}`` in one of three forms:

* one record: ``{"inputs": {"age": 41, "plan": "pro"}}``;
* a list of records: ``{"inputs": [{"age": 41, ...}, {"age": 17, ...}]}``;
* columns: ``{"inputs": {"age": [41, 17], "plan": ["pro", "free"]}}``.

A mapping is read as columns when every value in it is a list and the lists have one length;
otherwise it is one record. No signature type holds a list, so a record never has list values
and the two forms cannot be confused (a mapping mixing lists and scalars is one record, whose
list values then fail validation by name).

The answer carries one entry per row, in order::

    {"endpoint": "churn", "model": {"name": "churn", "version": 3},
     "predictions": [{"prediction_id": "0190...", "prediction": 1,
                      "probabilities": {"0": 0.2, "1": 0.8}}]}

Feedback takes ``{"feedback": [{"prediction_id": "...", "value": ..., "name"?: "..."}]}`` (or
a single object) and answers ``{"endpoint": ..., "accepted": n}`` once it is logged.
"""

from __future__ import annotations

from typing import Any

from keel.serving._dataplane import Dataplane, Problem
from keel.serving._predlog import FeedbackEntry
from keel.serving._runtime import EndpointRuntime, Record

_FEEDBACK_KEYS = frozenset({"prediction_id", "value", "name"})
MAX_ID_LENGTH = 128


async def predict(
    dataplane: Dataplane, runtime: EndpointRuntime, payload: Any, routing_key: str | None = None
) -> dict[str, Any]:
    records = parse_inputs(payload)
    scored = await dataplane.predict(runtime, records, routing_key)
    name, version = scored[0].model
    answer: dict[str, Any] = {
        "endpoint": runtime.name,
        "model": {"name": name, "version": version},
        "predictions": [
            {
                "prediction_id": row.prediction_id,
                "prediction": row.result.prediction,
                "probabilities": row.result.probabilities,
            }
            for row in scored
        ],
    }
    fallback = scored[0].result.fallback
    if fallback is not None:  # the whole request was answered by the fallback, and why
        answer["fallback"] = fallback
    return answer


def parse_inputs(payload: Any) -> list[Record]:
    """The records of a predict body, in order (see the module doc for the three forms)."""
    if not isinstance(payload, dict):
        raise Problem(422, "invalid_body", f"the body must be a JSON object, not {_kind(payload)}")
    if "inputs" not in payload:
        raise Problem(422, "invalid_body", "the body has no 'inputs' field")
    if len(payload) > 1:
        extra = ", ".join(sorted(repr(k) for k in payload if k != "inputs"))
        raise Problem(422, "invalid_body", f"unknown field(s) in the body: {extra}")
    inputs = payload["inputs"]
    if isinstance(inputs, list):
        return inputs
    if not isinstance(inputs, dict):
        raise Problem(
            422,
            "invalid_body",
            f"'inputs' must be a record, a list of records or columns, not {_kind(inputs)}",
        )
    if not inputs or not all(type(value) is list for value in inputs.values()):
        return [inputs]
    lengths = {len(value) for value in inputs.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{name}: {len(value)}" for name, value in inputs.items())
        raise Problem(
            422, "invalid_body", f"columnar 'inputs' need lists of one length, got {sizes}"
        )
    names = list(inputs)
    columns = list(inputs.values())
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


async def feedback(dataplane: Dataplane, runtime: EndpointRuntime, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or set(payload) != {"feedback"}:
        raise Problem(
            422, "invalid_body", 'the body must be {"feedback": [{"prediction_id", "value"}]}'
        )
    items = payload["feedback"]
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise Problem(
            422, "invalid_body", f"'feedback' must be an object or a list, not {_kind(items)}"
        )
    if not items:
        raise Problem(422, "empty_batch", "'feedback' holds no entries: send at least one")
    problems: list[dict[str, Any]] = []
    entries: list[FeedbackEntry] = []
    for row, item in enumerate(items):
        found = _feedback_problems(item)
        if found:
            problems += [{"row": row, "field": f, "message": m} for f, m in found]
            continue
        entries.append(
            FeedbackEntry(
                prediction_id=item["prediction_id"],
                value=item["value"],
                name=item.get("name"),
                endpoint=runtime.name,
            )
        )
    if problems:
        raise Problem(
            422,
            "invalid_input",
            "invalid feedback: "
            + "; ".join(f"row {p['row']}: {p['field']}: {p['message']}" for p in problems[:20]),
            problems,
        )
    await dataplane.feedback(entries)
    return {"endpoint": runtime.name, "accepted": len(entries)}


def _feedback_problems(item: Any) -> list[tuple[str, str]]:
    if not isinstance(item, dict):
        return [("", f"a feedback entry is an object, not {_kind(item)}")]
    found: list[tuple[str, str]] = []
    prediction_id = item.get("prediction_id")
    if not isinstance(prediction_id, str) or not 0 < len(prediction_id) <= MAX_ID_LENGTH:
        found.append(("prediction_id", f"must be a prediction id string, not {prediction_id!r}"))
    if "value" not in item:
        found.append(("value", "is missing"))
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        found.append(("name", f"must be a string, not {name!r}"))
    found += [(str(k), "is not a feedback field") for k in item if k not in _FEEDBACK_KEYS]
    return found


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )
