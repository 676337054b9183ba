"""Online serving: endpoints bound to deployment revisions, the request path, the prediction log."""

from keel.serving._deployments import DeploymentStore, Endpoint, Revision
from keel.serving._policy import Arm, DefaultPrediction, PinnedModel, TrafficPolicy

__all__ = [
    "Arm",
    "DefaultPrediction",
    "DeploymentStore",
    "Endpoint",
    "PinnedModel",
    "Revision",
    "TrafficPolicy",
]
