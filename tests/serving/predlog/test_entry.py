"""Entries: time-ordered ids, one JSON line each."""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid

import numpy as np
import orjson

from keel.serving._predlog import new_prediction_id, new_prediction_ids
from keel.serving._predlog._entry import encode, prediction_id_date

from .conftest import feedback, prediction


def test_prediction_ids_are_uuid7_in_creation_order() -> None:
    ids = []
    for _ in range(5):
        ids += new_prediction_ids(3)
        time.sleep(0.002)

    assert ids[::3] == sorted(ids[::3])
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}


def test_prediction_id_tells_its_utc_date() -> None:
    assert prediction_id_date(new_prediction_id()) == dt.datetime.now(dt.UTC).date()
    assert prediction_id_date("not-a-uuid7") is None


def test_an_entry_is_one_line_whatever_its_values() -> None:
    entry = prediction(
        inputs={"note": "two\nlines", "score": math.nan, "n": np.int64(4), "x": np.float32(0.5)},
        probabilities=np.array([0.25, 0.75]),
    )

    line = encode(entry)

    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    decoded = orjson.loads(line)
    assert decoded["inputs"] == {"note": "two\nlines", "score": None, "n": 4, "x": 0.5}
    assert decoded["probabilities"] == [0.25, 0.75]
    assert decoded["prediction_id"] == entry.prediction_id
    assert decoded["shadow"] is False


def test_values_json_cannot_hold_are_written_as_text() -> None:
    moment = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)

    decoded = orjson.loads(encode(feedback("id-1", value={"at": moment, "tags": {"a"}})))

    assert decoded["value"] == {"at": "2026-01-31T12:00:00+00:00", "tags": ["a"]}
