"""SLOs: counters scraped from keel's own metrics, error budget and burn rates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keel._monitoring_settings import MonitoringSettings, SLOSettings
from keel.errors import ConfigError, MonitoringError
from keel.monitoring._alert_rules import DEFAULT_RULES
from keel.monitoring._alerts import AlertEvaluator
from keel.monitoring._slo import Counters, SloStatus, SloTracker, increase, parse_counters
from keel.serving._metrics import ServingMetrics
from keel.store import MetadataStore

from .alert_helpers import Clock

T0 = 1_700_000_000.0
SLO = SLOSettings(endpoint="churn", availability=0.999, latency=0.95, latency_threshold_ms=100)


def tracker(store: MetadataStore, *slos: SLOSettings, clock: Clock | None = None) -> SloTracker:
    settings = MonitoringSettings(slos=slos or (SLO,))
    return SloTracker(store, settings, clock=clock or Clock(T0))


def put(store: MetadataStore, at: float, requests: float, errors: float, slow: float = 0.0,
        target: str = "a") -> None:  # fmt: skip
    """A sample as a scrape would store it."""
    text = exposition(requests, errors, slow)
    tracker(store).record(target, text, at=at)


def exposition(requests: float, errors: float, slow: float) -> str:
    ok = requests - errors
    fast = requests - slow
    churn = 'endpoint="churn",model_version="1"'
    return (
        "# TYPE keel_requests counter\n"
        f'keel_requests_total{{endpoint="churn",model_version="1",api="v1",code="200"}} {ok}\n'
        f'keel_requests_total{{endpoint="churn",model_version="1",api="v1",code="503"}} {errors}\n'
        f'keel_requests_total{{endpoint="other",model_version="1",api="v1",code="500"}} 99\n'
        "# TYPE keel_request_duration_seconds histogram\n"
        f'keel_request_duration_seconds_bucket{{{churn},le="0.1"}} {fast}\n'
        f'keel_request_duration_seconds_bucket{{{churn},le="+Inf"}} {requests}\n'
        f"keel_request_duration_seconds_count{{{churn}}} {requests}\n"
        f"keel_request_duration_seconds_sum{{{churn}}} 1.0\n"
    )  # fmt: skip


def by_name(status: SloStatus) -> dict[str, Any]:
    return {rate.name: rate for rate in status.burn_rates}


def test_burn_rates_and_budget_match_hand_computed_numbers(metadata_store: MetadataStore) -> None:
    put(metadata_store, T0, 0, 0, 0)
    put(metadata_store, T0 + 3300, 1000, 10, 20)
    put(metadata_store, T0 + 3600, 2000, 60, 100)

    availability, latency = tracker(metadata_store).status("churn", at=T0 + 3600)

    # 1 h: 60 errors / 2000 = 3 % = 30x the 0.1 % allowed; 5 m: 50 / 1000 = 5 % = 50x
    page = by_name(availability)["page_1h"]
    assert (page.long_burn, page.short_burn) == (pytest.approx(30), pytest.approx(50))
    assert page.burning
    # 3 d / 6 h: the same samples (nothing older): 30x and 30x, above 1x
    assert by_name(availability)["ticket_3d"].short_burn == pytest.approx(30)
    assert availability.budget_remaining == pytest.approx(1 - 60 / (0.001 * 2000))
    # latency: 100 slow / 2000 = 5 % of a 5 % budget (1x) over 1 h; 80 / 1000 = 1.6x over 5 m
    slow = by_name(latency)["page_1h"]
    assert (slow.long_burn, slow.short_burn) == (pytest.approx(1.0), pytest.approx(1.6))
    assert not slow.burning
    assert latency.budget_remaining == pytest.approx(0.0)


def test_a_counter_that_went_down_was_reset(metadata_store: MetadataStore) -> None:
    put(metadata_store, T0, 100, 1)
    put(metadata_store, T0 + 60, 150, 2)
    put(metadata_store, T0 + 120, 20, 1)  # the server restarted
    put(metadata_store, T0 + 180, 50, 1)

    counters = tracker(metadata_store).counters("churn", T0, T0 + 180)

    assert counters == Counters(requests=50 + 20 + 30, errors=1 + 1 + 0, slow=0)
    assert increase([5, 3, 4]) == 3 + 1


def test_the_window_starts_from_the_last_sample_before_it(metadata_store: MetadataStore) -> None:
    put(metadata_store, T0, 1000, 10)
    put(metadata_store, T0 + 600, 1500, 10)
    put(metadata_store, T0 + 1200, 1600, 12)

    # (T0 + 700, T0 + 1200]: from the sample at T0 + 600 to the one at T0 + 1200
    assert tracker(metadata_store).counters("churn", T0 + 700, T0 + 1200) == Counters(100, 2, 0)


def test_targets_of_one_endpoint_add_up(metadata_store: MetadataStore) -> None:
    for target, scale in (("a", 1), ("b", 3)):
        put(metadata_store, T0, 0, 0, target=target)
        put(metadata_store, T0 + 60, 1000 * scale, 10 * scale, target=target)

    assert tracker(metadata_store).counters("churn", T0, T0 + 60) == Counters(4000, 40, 0)


def test_budget_remaining_over_the_slo_window(metadata_store: MetadataStore) -> None:
    slo = SLOSettings(endpoint="churn", availability=0.99, window_days=7)
    put(metadata_store, T0 - 9 * 86400, 0, 0)  # before the window: not counted
    put(metadata_store, T0 - 8 * 86400, 5000, 100)  # the last one before it: the baseline
    put(metadata_store, T0, 10000, 125)

    [status] = tracker(metadata_store, slo).status(at=T0)

    # from 5000/100 to 10000/125: 25 errors of the 1 % x 5000 = 50 allowed
    assert (status.requests, status.bad) == (5000, 25)
    assert status.budget_remaining == pytest.approx(0.5)


def test_no_requests_is_not_enough_data(metadata_store: MetadataStore) -> None:
    [availability, _] = tracker(metadata_store).status(at=T0)
    assert availability.budget_remaining is None
    assert by_name(availability)["page_1h"].long_burn is None


def test_a_latency_threshold_off_the_histogram_names_the_nearest_bounds(
    metadata_store: MetadataStore,
) -> None:
    slo = SLOSettings(endpoint="churn", latency=0.95, latency_threshold_ms=75)
    with pytest.raises(ConfigError, match=r"slos.0.latency_threshold_ms.*75 ms.*50 and 100 ms"):
        tracker(metadata_store, slo)


def test_an_endpoint_without_slo_is_refused(metadata_store: MetadataStore) -> None:
    with pytest.raises(MonitoringError, match="'nope' has no SLO"):
        tracker(metadata_store).status("nope")


def test_counters_are_read_from_a_real_serving_exposition() -> None:
    metrics = ServingMetrics()
    for code, seconds in ((200, 0.01), (200, 0.3), (500, 0.05), (200, 0.1)):
        metrics.request("churn", "1", "v1", code, seconds)

    found = parse_counters(metrics.exposition().decode(), {"churn": 0.1})

    # 0.3 s is the one request slower than 100 ms (le is inclusive: 0.1 s is within)
    assert found == {"churn": Counters(requests=4, errors=1, slow=1)}


@pytest.fixture
def metrics_server() -> Iterator[str]:
    body = exposition(500, 5, 7).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_scraping_records_each_reachable_target(
    metadata_store: MetadataStore, metrics_server: str
) -> None:
    outcome = tracker(metadata_store).scrape([metrics_server, "http://127.0.0.1:1/metrics"])

    assert outcome[metrics_server] is None
    assert "Connection refused" in str(outcome["http://127.0.0.1:1/metrics"])
    put(metadata_store, T0 - 60, 0, 0, target=metrics_server)
    assert tracker(metadata_store).counters("churn", T0 - 120, T0) == Counters(500, 5, 7)


def test_a_fast_burn_pages_through_the_alert_rules_and_resolves_once_it_stops(
    metadata_store: MetadataStore,
) -> None:
    clock = Clock(T0 + 3600)
    rules = [rule for rule in DEFAULT_RULES if rule.monitor == "slo"]
    put(metadata_store, T0, 0, 0)
    put(metadata_store, T0 + 3300, 1000, 30)
    put(metadata_store, T0 + 3600, 2000, 60)
    tracker(metadata_store, clock=clock).record_results()

    evaluator = AlertEvaluator(metadata_store, rules, actor="slo", clock=clock)
    fired = evaluator.evaluate().fired
    assert {(a.rule, a.subject, a.severity) for a in fired} == {
        ("slo_page", "availability", "page"), ("slo_ticket", "availability", "ticket"),
    }  # fmt: skip
    page = next(a for a in fired if a.rule == "slo_page")
    assert page.evidence["statistic"] in {"page_1h", "page_6h"}

    clock.now = T0 + 4200  # ten clean minutes: the 5 m and 30 m windows see no more errors
    put(metadata_store, T0 + 3900, 3000, 60)
    put(metadata_store, T0 + 4200, 4000, 60)
    tracker(metadata_store, clock=clock).record_results()
    resolved = evaluator.evaluate().resolved
    assert "slo_page" in {alert.rule for alert in resolved}
