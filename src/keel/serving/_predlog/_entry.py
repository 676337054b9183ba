"""What the prediction log records, and how one entry becomes one line.

    entry = PredictionEntry(
        prediction_id=new_prediction_id(), endpoint="churn", model="churn", model_version=3,
        inputs={"age": 41, "plan": "pro"}, prediction=1, probabilities={"0": 0.2, "1": 0.8},
        latency_ms=1.7,
    )
    line = encode(entry)                  # b'{"prediction_id":"0190...","time":...}\\n'

The encoding is JSON lines (orjson): one entry per line, never a raw newline inside one, so a
line is complete exactly when it ends in ``\\n``. A write cut short by a crash leaves a last
line without its newline, which readers skip; nothing after it is ever appended to the same
segment (a writer always starts a new segment, and truncates back on a failed write), so a torn
tail cannot poison the entries around it. JSON lines were chosen over binary frames with a CRC
because the segments then stay readable with ``tail``/``jq`` and the torn-write guarantee is
the same; a CRC would only add protection against bit rot of the kernel's page cache.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
KINDS = (PREDICTIONS, FEEDBACK)

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_RAND_BITS = (1 << 62) - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionEntry:
    """One answered prediction (one row of a request).

    ``inputs`` maps each field to the value the model saw; ``prediction`` is the model's answer
    for the row (a label, a number, or any JSON value) and ``probabilities`` the class
    probabilities of a classifier (by label, or a list). The flags say how the answer was
    produced: ``arm`` (traffic-split arm), ``cache_hit``, ``fallback`` (why a fallback answered,
    None when the primary did) and ``shadow`` (a shadow model's answer, not sent to the client).
    """

    KIND: ClassVar[str] = PREDICTIONS

    prediction_id: str
    endpoint: str
    model: str
    model_version: int | None
    inputs: Mapping[str, Any]
    prediction: Any
    probabilities: Mapping[str, float] | Sequence[float] | None = None
    latency_ms: float | None = None
    revision: int | None = None
    time: int = field(default_factory=time.time_ns)
    """Epoch nanoseconds (UTC) when the prediction was made."""
    arm: str | None = None
    cache_hit: bool | None = None
    fallback: str | None = None
    shadow: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackEntry:
    """An outcome attached to a prediction later: a ground-truth label or any JSON value.

    ``name`` says what ``value`` is when an endpoint receives several kinds of feedback
    (``"label"``, ``"revenue"``...); None for the plain label.
    """

    KIND: ClassVar[str] = FEEDBACK

    prediction_id: str
    value: Any
    name: str | None = None
    endpoint: str | None = None
    time: int = field(default_factory=time.time_ns)
    """Epoch nanoseconds (UTC) when the feedback was received."""


LogEntry = PredictionEntry | FeedbackEntry


def encode(entry: LogEntry) -> bytes:
    """``entry`` as one JSON line (with its newline). NaN and infinities become null; values
    JSON cannot hold (timestamps, decimals, numpy scalars, sets...) are written as text.

    Raises ``TypeError`` (orjson's ``JSONEncodeError``) for what cannot be written at all, e.g.
    an integer wider than 64 bits."""
    return orjson.dumps(entry, default=_json_default, option=_OPTIONS)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date):  # datetime subclasses such as pandas.Timestamp
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    item = getattr(value, "item", None)  # numpy / pandas scalars orjson does not know
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


def new_prediction_id() -> str:
    """A UUIDv7 (RFC 9562) as text: millisecond time, then sub-millisecond time and 62 random
    bits, so ids sort by the time they were made and never collide across processes."""
    return new_prediction_ids(1)[0]


def new_prediction_ids(count: int) -> list[str]:
    """``count`` UUIDv7 ids made now (one clock read, one read of the OS random source)."""
    now = time.time_ns()
    millis, rest = divmod(now, 1_000_000)
    high = (millis << 80) | (0x7 << 76) | ((rest * 4096 // 1_000_000) << 64) | (0b10 << 62)
    noise = os.urandom(8 * count)
    ids = []
    for index in range(count):
        low = int.from_bytes(noise[8 * index : 8 * index + 8], "big") & _RAND_BITS
        text = f"{high | low:032x}"
        ids.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return ids


def prediction_id_date(prediction_id: str) -> dt.date | None:
    """The UTC date a UUIDv7 prediction id was made on; None for ids of another form."""
    text = prediction_id.replace("-", "")
    if len(text) != 32 or text[12] != "7":
        return None
    try:
        millis = int(text[:12], 16)
    except ValueError:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).date()
