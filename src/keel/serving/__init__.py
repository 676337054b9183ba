"""Online serving: endpoints bound to deployment revisions, the request path, the prediction log."""

from keel.serving._deployments import (
    Arm,
    DefaultPrediction,
    DeploymentStore,
    Endpoint,
    PinnedModel,
    Revision,
    TrafficPolicy,
)

__all__ = [
    "Arm",
    "DefaultPrediction",
    "DeploymentStore",
    "Endpoint",
    "PinnedModel",
    "Revision",
    "TrafficPolicy",
]
