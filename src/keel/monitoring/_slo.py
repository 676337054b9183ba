"""Service-level objectives from keel's own serving metrics: error budget and burn rates.

    tracker = SloTracker(store, settings.monitoring)
    tracker.scrape()                       # GET each target's /metrics, store its counters
    tracker.status("churn")                # budget remaining, burn rate per window pair
    tracker.record_results()               # the same as monitor results (monitor "slo")

**Samples.** A scrape stores, per endpoint and target, three cumulative counters in
``slo_samples``: ``requests`` (the sum of ``keel_requests_total`` over every label), ``errors``
(those with a 5xx ``code``) and ``slow`` (requests minus the latency histogram's cumulative
bucket at ``le`` = the SLO's threshold, so the threshold must be one of the bucket bounds).

**Increases.** What happened over a window is the increase of each counter from the last sample
at or before the window's start to the last sample in it; a counter lower than the sample
before was reset (the server restarted), and its new value is all of the increase since.
Targets of one endpoint are added up.

**Burn rate** over a window = (bad / requests) / (1 - objective): 1 spends the budget exactly
over the SLO window. A pair (long, short) is *burning* when both exceed its factor - the long
window says it matters, the short one that it is still happening (so the alert resolves soon
after the problem stops). **Budget remaining** = 1 - bad / ((1 - objective) x requests) over
the SLO window (negative: overspent).

Results (``monitor_results``, monitor ``slo``, subject ``availability`` or ``latency``):
statistic ``budget_remaining`` (status ``ok`` / ``exhausted``) and one per burn-rate pair named
after it (``page_1h``...): value = the smaller of the two burn rates, threshold = the factor,
status ``burning`` / ``ok``, rows = requests in the short window; ``not_enough_data`` without
requests. The built-in ``slo_page`` / ``slo_ticket`` rules alert on them.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from keel._monitoring_settings import MonitoringSettings, SLOSettings
from keel.errors import ConfigError, MonitoringError
from keel.serving._metrics import LATENCY_BUCKETS
from keel.store import MetadataStore, insert_ignore
from keel.store import _tables as t

REQUESTS, DURATION = "keel_requests", "keel_request_duration_seconds"
AVAILABILITY, LATENCY = "availability", "latency"
_DAY = 86400.0


@dataclass(frozen=True)
class Counters:
    requests: float = 0.0
    errors: float = 0.0
    slow: float = 0.0


@dataclass(frozen=True)
class BurnRate:
    name: str
    severity: str
    factor: float
    long_seconds: float
    short_seconds: float
    long_burn: float | None
    short_burn: float | None
    short_requests: float

    @property
    def burning(self) -> bool:
        return (
            self.long_burn is not None
            and self.short_burn is not None
            and min(self.long_burn, self.short_burn) > self.factor
        )


@dataclass(frozen=True)
class SloStatus:
    """One objective of one endpoint at time ``at``."""

    endpoint: str
    objective: str
    target: float
    window_days: float
    at: float
    requests: float
    bad: float
    budget_remaining: float | None
    burn_rates: list[BurnRate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for burn, rate in zip(values["burn_rates"], self.burn_rates, strict=True):
            burn["burning"] = rate.burning
        return values


def check_threshold(ms: float, key: str) -> float:
    """The latency threshold in seconds, if it is a bound of keel's latency histogram."""
    seconds = ms / 1000
    for bound in LATENCY_BUCKETS:
        if math.isclose(bound, seconds, rel_tol=1e-9):
            return bound
    at = bisect.bisect(LATENCY_BUCKETS, seconds)
    near = [f"{b * 1000:g}" for b in LATENCY_BUCKETS[max(at - 1, 0) : at + 1]]
    raise ConfigError(
        f"{ms:g} ms is not a bound of keel's latency histogram; the nearest are "
        f"{' and '.join(near)} ms (all: {', '.join(f'{b * 1000:g}' for b in LATENCY_BUCKETS)})",
        key=key,
    )


def parse_counters(text: str, thresholds: dict[str, float]) -> dict[str, Counters]:
    """Per endpoint named in ``thresholds`` (endpoint -> seconds): its cumulative counters in
    one /metrics exposition."""
    requests: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    fast: dict[str, float] = defaultdict(float)
    # By sample name, not family: how a counter's family is named (with or without _total)
    # depends on the exposition's TYPE line, which differs between client versions.
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            endpoint = sample.labels.get("endpoint", "")
            if endpoint not in thresholds:
                continue
            if sample.name == f"{REQUESTS}_total":
                requests[endpoint] += sample.value
                if sample.labels.get("code", "").startswith("5"):
                    errors[endpoint] += sample.value
            elif sample.name == f"{DURATION}_bucket" and math.isclose(
                float(sample.labels["le"]), thresholds[endpoint], rel_tol=1e-9
            ):
                fast[endpoint] += sample.value
    return {
        name: Counters(requests[name], errors[name], max(requests[name] - fast[name], 0.0))
        for name in thresholds
        if name in requests
    }


def increase(values: Sequence[float]) -> float:
    """How much a counter grew over consecutive samples (a drop is a reset)."""
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after - before if after >= before else after
    return total


class SloTracker:
    """Scrapes serving metrics, keeps their counters, and judges each endpoint's SLOs."""

    def __init__(
        self,
        store: MetadataStore,
        settings: MonitoringSettings,
        *,
        clock: Callable[[], float] = time.time,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.slos = {slo.endpoint: slo for slo in settings.slos}
        self.thresholds = {
            slo.endpoint: check_threshold(
                slo.latency_threshold_ms, f"monitoring.slos.{n}.latency_threshold_ms"
            )
            for n, slo in enumerate(settings.slos)
        }
        self._clock = clock
        self._timeout = timeout_seconds

    # -- samples ---------------------------------------------------------------------------------

    def scrape(self, targets: Iterable[str] | None = None) -> dict[str, str | None]:
        """Fetch and record each target (default: the configured ones); per target, None when
        it was recorded, else why not (one unreachable server does not stop the others)."""
        outcome: dict[str, str | None] = {}
        for url in self.settings.scrape_targets if targets is None else targets:
            try:
                with urllib.request.urlopen(url, timeout=self._timeout) as response:
                    text = response.read().decode()
            except (OSError, ValueError) as error:
                outcome[url] = f"{type(error).__name__}: {error}"
                continue
            self.record(url, text)
            outcome[url] = None
        return outcome

    def record(self, target: str, text: str, *, at: float | None = None) -> dict[str, Counters]:
        """Store the counters of one /metrics exposition of ``target``."""
        try:
            found = parse_counters(text, self.thresholds)
        except ValueError as error:  # prometheus_client's parser
            raise MonitoringError(
                f"{target} did not answer Prometheus text ({error})",
                fix="check that the scrape target is a keel server's /metrics URL",
            ) from None
        when = self._clock() if at is None else at
        rows = [
            {"endpoint": endpoint, "target": target, "at": when, **asdict(counters),
             "latency_threshold_ms": self.slos[endpoint].latency_threshold_ms}
            for endpoint, counters in found.items()
        ]  # fmt: skip
        with self.store.write() as connection:
            insert_ignore(connection, t.slo_samples, rows)
        return found

    def counters(self, endpoint: str, start: float, end: float) -> Counters:
        """The increase of each counter over (start, end], added up over targets."""
        s = t.slo_samples
        threshold = self.slos[endpoint].latency_threshold_ms
        mine = (s.c.endpoint == endpoint) & (s.c.latency_threshold_ms == threshold)
        baseline = (
            sa.select(s.c.target, sa.func.max(s.c.at).label("at"))
            .where(mine, s.c.at <= start)
            .group_by(s.c.target)
            .subquery()
        )
        since = sa.func.coalesce(baseline.c.at, start)
        query = (
            sa.select(s.c.target, s.c.requests, s.c.errors, s.c.slow)
            .outerjoin(baseline, baseline.c.target == s.c.target)
            .where(mine, s.c.at >= since, s.c.at <= end)
            .order_by(s.c.target, s.c.at, s.c.id)
        )
        series: dict[str, list[Any]] = defaultdict(list)
        with self.store.read() as connection:
            for row in connection.execute(query):
                series[row.target].append(row)
        totals = [0.0, 0.0, 0.0]
        for rows in series.values():
            for n, name in enumerate(("requests", "errors", "slow")):
                totals[n] += increase([getattr(row, name) for row in rows])
        return Counters(*totals)

    # -- objectives ------------------------------------------------------------------------------

    def status(self, endpoint: str | None = None, *, at: float | None = None) -> list[SloStatus]:
        """Every objective of ``endpoint`` (default: every endpoint with SLOs) at ``at``."""
        when = self._clock() if at is None else at
        if endpoint is not None and endpoint not in self.slos:
            raise MonitoringError(
                f"endpoint '{endpoint}' has no SLO",
                fix="declare one under [[monitoring.slos]] in keel.toml",
            )
        chosen = [self.slos[endpoint]] if endpoint else list(self.slos.values())
        return [status for slo in chosen for status in self._judge(slo, when)]

    def _judge(self, slo: SLOSettings, at: float) -> list[SloStatus]:
        objectives = [(AVAILABILITY, slo.availability), (LATENCY, slo.latency)]
        cache: dict[float, Counters] = {}

        def over(seconds: float) -> Counters:
            if seconds not in cache:
                cache[seconds] = self.counters(slo.endpoint, at - seconds, at)
            return cache[seconds]

        found = []
        for objective, target in objectives:
            if target is None:
                continue
            allowed = 1 - target

            def bad(counters: Counters, objective: str = objective) -> float:
                return counters.errors if objective == AVAILABILITY else counters.slow

            def burn(seconds: float, allowed: float = allowed, bad: Any = bad) -> float | None:
                counters = over(seconds)
                return bad(counters) / counters.requests / allowed if counters.requests else None

            whole = over(slo.window_days * _DAY)
            remaining = 1 - bad(whole) / (allowed * whole.requests) if whole.requests else None
            rates = [
                BurnRate(w.name, w.severity, w.factor, w.long_seconds, w.short_seconds,
                         burn(w.long_seconds), burn(w.short_seconds),
                         over(w.short_seconds).requests)
                for w in self.settings.burn_rates
            ]  # fmt: skip
            found.append(
                SloStatus(slo.endpoint, objective, target, slo.window_days, at,
                          whole.requests, bad(whole), remaining, rates)
            )  # fmt: skip
        return found

    def record_results(self, *, at: float | None = None) -> list[SloStatus]:
        """Write every objective's budget and burn rates as monitor results (monitor "slo")."""
        found = self.status(at=at)
        rows = [row for status in found for row in _result_rows(status)]
        with self.store.write() as connection:
            insert_ignore(connection, t.monitor_results, rows)
        return found


def _result_rows(status: SloStatus) -> list[dict[str, Any]]:
    common = {"endpoint": status.endpoint, "monitor": "slo", "subject": status.objective,
              "model_version": 0, "p_value": None, "computed_at": status.at,
              "window_end": status.at}  # fmt: skip
    budget = status.budget_remaining
    rows = [
        {**common, "window_start": status.at - status.window_days * _DAY,
         "statistic": "budget_remaining", "value": budget, "threshold": 0.0,
         "status": "not_enough_data" if budget is None else "ok" if budget > 0 else "exhausted",
         "rows": int(status.requests), "details": {"target": status.target, "bad": status.bad}}
    ]  # fmt: skip
    for rate in status.burn_rates:
        known = rate.long_burn is not None and rate.short_burn is not None
        value = min(rate.long_burn or 0.0, rate.short_burn or 0.0) if known else None
        rows.append(
            {**common, "window_start": status.at - rate.long_seconds, "statistic": rate.name,
             "value": value, "threshold": rate.factor,
             "status": "burning" if rate.burning else "ok" if known else "not_enough_data",
             "rows": int(rate.short_requests), "details": asdict(rate)}
        )  # fmt: skip
    return rows
