"""Alerting built from the ``[monitoring]`` settings: the one place its objects are assembled.

evaluator = alert_evaluator(workspace.store, settings.monitoring, settings.actor)
evaluator.evaluate()
slo_tracker(workspace.store, settings.monitoring).record_results()
"""

from __future__ import annotations

from keel._monitoring_settings import MonitoringSettings
from keel.monitoring._alert_rules import effective_rules
from keel.monitoring._alerts import AlertEvaluator
from keel.monitoring._sinks import Notifier, build_sinks
from keel.monitoring._slo import SloTracker
from keel.store import MetadataStore


def alert_evaluator(
    store: MetadataStore, settings: MonitoringSettings, actor: str
) -> AlertEvaluator:
    """The evaluator of the configured rules (with the built-in ones unless turned off),
    notifying the configured sinks."""
    rules = effective_rules(settings.rules, defaults=settings.default_rules)
    sinks = build_sinks(settings.sinks)
    notifier = Notifier(store, sinks, deadline=settings.notify_deadline_seconds)
    return AlertEvaluator(store, rules, actor=actor, notifier=notifier)


def slo_tracker(store: MetadataStore, settings: MonitoringSettings) -> SloTracker:
    return SloTracker(store, settings)
