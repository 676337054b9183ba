"""The model registry: versions, lifecycle, aliases, audit log, model cards, export."""

from keel.registry._export import load_export
from keel.registry._lifecycle import APPROVED, ARCHIVED, CANDIDATE, STATUSES, TRANSITIONS
from keel.registry._models import AuditEntry, ModelRef, ModelVersion, RegisteredModel
from keel.registry._registry import Registry

__all__ = [
    "APPROVED",
    "ARCHIVED",
    "CANDIDATE",
    "STATUSES",
    "TRANSITIONS",
    "AuditEntry",
    "ModelRef",
    "ModelVersion",
    "RegisteredModel",
    "Registry",
    "load_export",
]
