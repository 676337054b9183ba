"""The durable prediction log: every answered prediction and every piece of feedback.

    log = PredictionLog.from_settings(settings)
    await log.append([PredictionEntry(prediction_id=new_prediction_id(), ...)])
    log.close()
    Compactor(log.directory).run_once()                  # segments -> Parquet, exactly once
    query("SELECT count(*) FROM predictions", log.directory)

Layout of a log directory::

    segments/<kind>-<start ns>-<pid>-<n>.log                     JSON lines, append-only
    predictions/endpoint=<name>/date=YYYY-MM-DD/part-<segment id>.parquet
    feedback/date=YYYY-MM-DD/part-<segment id>.parquet

Nothing here knows about HTTP: the server appends entries on its request path, runs the
compactor in the background, and reports :meth:`PredictionLog.status` in ``/readyz``.
"""

from keel.serving._predlog._compact import CompactionResult, Compactor
from keel.serving._predlog._entry import (
    FeedbackEntry,
    LogEntry,
    PredictionEntry,
    new_prediction_id,
    new_prediction_ids,
)
from keel.serving._predlog._query import LogReader, prediction_with_feedback, query
from keel.serving._predlog._writer import FsyncPolicy, PredictionLog

__all__ = [
    "CompactionResult",
    "Compactor",
    "FeedbackEntry",
    "FsyncPolicy",
    "LogEntry",
    "LogReader",
    "PredictionEntry",
    "PredictionLog",
    "new_prediction_id",
    "new_prediction_ids",
    "prediction_with_feedback",
    "query",
]
