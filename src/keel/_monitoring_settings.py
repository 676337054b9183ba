"""The ``[monitoring]`` section of keel.toml: alert rules, sinks, actions, SLOs, scrape targets.

Kept apart from :mod:`keel.config` (which holds it as ``Settings.monitoring``) because the
alert rule model is also the runtime rule: :class:`keel.monitoring.AlertRule` is this class.
It imports nothing but pydantic, so reading settings never loads the monitoring stack.

    [monitoring]
    scrape_targets = ["http://127.0.0.1:8080/metrics"]

    [[monitoring.rules]]                  # overrides the built-in rule of the same name
    name = "drift"
    monitor = "drift"
    min_samples = 500
    for_seconds = 3600

    [[monitoring.sinks]]
    kind = "webhook"
    url = "https://hooks.example.com/keel"

    [[monitoring.slos]]
    endpoint = "churn"
    availability = 0.999
    latency = 0.95
    latency_threshold_ms = 100
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Comparison = Literal["above", "below", "status"]
Severity = Literal["info", "ticket", "warning", "page", "critical"]


class ActionSettings(BaseModel):
    """What an alert runs once when it fires: a command or a Python callable (one of the two).

    The command gets the alert as JSON on stdin and ``KEEL_ALERT_ID``, ``KEEL_ALERT_RULE``,
    ``KEEL_ALERT_ENDPOINT``, ``KEEL_ALERT_SUBJECT``, ``KEEL_ALERT_SEVERITY`` in its
    environment; the callable ("package.module:function") is called with the alert's dict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: tuple[str, ...] | None = None
    """argv of the command (no shell): ["keel", "pipeline", "retrain", "churn"]."""
    callable: str | None = None
    """Dotted path "module:function"."""
    timeout_seconds: float = Field(600.0, gt=0)
    """A command still running then is killed, and the action recorded as failed."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ActionSettings:
        if (self.command is None) == (self.callable is None):
            raise ValueError("an action needs exactly one of command or callable")
        if self.command is not None and not self.command:
            raise ValueError("an action's command needs at least the program to run")
        if self.callable is not None and ":" not in self.callable:
            raise ValueError(f"callable '{self.callable}' must read 'module:function'")
        return self


class AlertRule(BaseModel):
    """When monitor results become an alert.

        AlertRule(name="psi-high", monitor="drift", statistic="psi", comparison="above",
                  threshold=0.25, min_samples=500, for_seconds=3600, severity="warning")

    A rule matches results by ``monitor`` and by the globs ``statistic``, ``subject`` and
    ``endpoint`` (several globs may be joined with ``|``). Its condition, per result:
    ``status``: the result's status matches ``status`` (how the drift monitors say a column
    drifted, after their multiple-testing correction; ``clear_status`` says it cleared);
    ``above`` / ``below``: the result's
    ``field`` (value or p_value) is above / below ``threshold`` or, without one, the result's
    own threshold moved by the relative ``margin`` (e.g. realised accuracy below the version's
    validation accuracy by 5 %: ``below``, margin 0.05).

    A result with fewer than ``min_samples`` rows, or whose status is ``not_enough_data``,
    neither fires nor resolves anything. The condition must hold over results spanning
    ``for_seconds`` before the alert fires; after an alert resolves, the same rule, endpoint
    and subject do not fire again for ``cooldown_seconds``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=255)
    monitor: str = Field(min_length=1)
    statistic: str = "*"
    subject: str = "*"
    endpoint: str = "*"
    comparison: Comparison = "status"
    field: Literal["value", "p_value"] = "value"
    threshold: float | None = None
    margin: float = Field(0.0, ge=0)
    status: str = "drift"
    """With comparison "status": the result statuses (globs joined by |) that hold."""
    clear_status: str = "ok|no_drift|none"
    """With comparison "status": the statuses that say the condition cleared; any other
    (not_computed, missing_in_current, ...) is judged like not enough data."""
    min_samples: int = Field(0, ge=0)
    for_seconds: float = Field(0.0, ge=0)
    cooldown_seconds: float = Field(0.0, ge=0)
    severity: Severity = "warning"
    summary: str | None = None
    """A one-line text for people; {endpoint}, {subject}, {statistic}, {value} are filled in."""
    action: ActionSettings | None = None
    enabled: bool = True
    """False turns a rule off (the way to switch off a built-in rule)."""


class SinkSettings(BaseModel):
    """Where alerts are sent when they fire and when they resolve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["log", "webhook"]
    name: str | None = None
    """How alert events name the sink (default: the kind, or the webhook's URL)."""
    url: str | None = None
    """The webhook's URL (http:// or https://)."""
    attempts: int = Field(5, ge=1, le=20)
    """Webhook deliveries tried before giving up (each failure is recorded)."""
    backoff_seconds: float = Field(0.5, ge=0)
    """First retry delay, doubled after each failure, with up to 50 % random jitter."""
    timeout_seconds: float = Field(5.0, gt=0)
    """One attempt's connect/read timeout."""
    deadline_seconds: float = Field(15.0, gt=0)
    """The longest one delivery (all its attempts) may hold up an evaluation."""
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _webhook_url(self) -> SinkSettings:
        if self.kind == "webhook" and not (self.url or "").startswith(("http://", "https://")):
            raise ValueError("a webhook sink needs an http:// or https:// url")
        return self


class BurnRateWindow(BaseModel):
    """One multi-window burn-rate alert: fires when the error budget burns faster than
    ``factor`` times the sustainable rate over both ``long_seconds`` and ``short_seconds``.
    The name's prefix is its severity: ``page_*`` windows are read by the built-in
    ``slo_page`` rule, ``ticket_*`` ones by ``slo_ticket``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^(page|ticket)_[a-z0-9_]{1,25}$")
    factor: float = Field(gt=0)
    long_seconds: float = Field(gt=0)
    short_seconds: float = Field(gt=0)

    @property
    def severity(self) -> str:
        return self.name.split("_", 1)[0]

    @model_validator(mode="after")
    def _short_within_long(self) -> BurnRateWindow:
        if self.short_seconds >= self.long_seconds:
            raise ValueError("short_seconds must be shorter than long_seconds")
        return self


# The Google SRE workbook's recommendation ("Alerting on SLOs", table 5-8) for a 30-day SLO.
DEFAULT_BURN_RATES: tuple[BurnRateWindow, ...] = (
    BurnRateWindow(name="page_1h", factor=14.4, long_seconds=3600, short_seconds=300),
    BurnRateWindow(name="page_6h", factor=6, long_seconds=6 * 3600, short_seconds=1800),
    BurnRateWindow(name="ticket_1d", factor=3, long_seconds=86400, short_seconds=7200),
    BurnRateWindow(name="ticket_3d", factor=1, long_seconds=3 * 86400, short_seconds=6 * 3600),
)


class SLOSettings(BaseModel):
    """Service-level objectives of one endpoint, from keel's own serving metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = Field(min_length=1)
    availability: float | None = Field(0.999, gt=0, lt=1)
    """Share of requests answered without a server error (5xx); none: no such SLO."""
    latency: float | None = Field(None, gt=0, lt=1)
    """Share of requests answered within latency_threshold_ms; none: no such SLO."""
    latency_threshold_ms: float = Field(100.0, gt=0)
    """Must be a bound of keel's latency histogram (1, 2, 5, 10, 20, 50, 100, 200, 500 ms...)."""
    window_days: float = Field(30.0, gt=0)


class MonitoringSettings(BaseModel):
    """Windows and their statistics; alerts, their sinks and actions; service-level
    objectives."""

    model_config = ConfigDict(extra="forbid")

    window: str = "1h"
    """Tumbling windows of this duration (90s, 30m, 1h, 1d), unless window_rows is set."""
    window_rows: int | None = Field(None, ge=1)
    """Windows of this many answers instead of a duration."""
    lateness_seconds: float = Field(60.0, ge=0)
    """A time window is computed once this long has passed since its end."""
    min_rows: int = Field(1000, ge=1)
    """Windows with fewer rows are "not enough data" for drift: neither drift nor no drift."""
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    """Multiple-testing correction over a window's p-values (Benjamini-Hochberg by default)."""
    alpha: float = Field(0.05, gt=0, lt=1)
    label_name: str = "label"
    """The feedback name that carries ground-truth labels (unnamed feedback counts too)."""
    min_labels: int = Field(100, ge=1)
    """Labelled rows needed before realised performance is judged."""
    label_horizon_days: float = Field(7.0, ge=0)
    """How long after a window ends its performance is recomputed as labels arrive."""
    default_rules: bool = True
    """Evaluate the built-in rules (a rule in `rules` with the same name replaces one)."""
    rules: tuple[AlertRule, ...] = ()
    sinks: tuple[SinkSettings, ...] = (SinkSettings(kind="log"),)
    slos: tuple[SLOSettings, ...] = ()
    burn_rates: tuple[BurnRateWindow, ...] = DEFAULT_BURN_RATES
    scrape_targets: tuple[str, ...] = ()
    """/metrics URLs of the servers whose counters SLOs are computed from."""
    notify_deadline_seconds: float = Field(20.0, gt=0)
    """The longest an evaluation waits for its notifications (slow sinks finish later)."""

    @field_validator("window")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: tuple[AlertRule, ...]) -> tuple[AlertRule, ...]:
        names = [rule.name for rule in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique: {', '.join(repeated)} repeated")
        return value

    @field_validator("slos")
    @classmethod
    def _one_slo_per_endpoint(cls, value: tuple[SLOSettings, ...]) -> tuple[SLOSettings, ...]:
        endpoints = [slo.endpoint for slo in value]
        repeated = sorted({name for name in endpoints if endpoints.count(name) > 1})
        if repeated:
            raise ValueError(f"one SLO entry per endpoint: {', '.join(repeated)} repeated")
        return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``1h``, ``1.5d`` or a plain number of seconds; ValueError
    (with what to write instead) for anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None or float(match[1]) <= 0:
        raise ValueError(
            f"'{text}' is not a duration: give a positive number with s, m, h or d (90s, 1h)"
        )
    return float(match[1]) * _UNITS[match[2] or "s"]
