"""Online serving: endpoints bound to deployment revisions, the request path, the prediction log.

Importing this package is cheap: the ASGI app and uvicorn are only imported by ``keel serve``
and by :func:`serving_app`'s module.
"""

from keel.serving._batching import BatcherStats, BatchRecord, MicroBatcher
from keel.serving._deployments import DeploymentStore, Endpoint, Revision
from keel.serving._policy import Arm, DefaultPrediction, PinnedModel, TrafficPolicy

__all__ = [
    "Arm",
    "BatchRecord",
    "BatcherStats",
    "DefaultPrediction",
    "DeploymentStore",
    "Endpoint",
    "MicroBatcher",
    "PinnedModel",
    "Revision",
    "TrafficPolicy",
]
