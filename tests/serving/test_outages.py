"""Outages and faults under load, through a real ``keel serve`` (issue 6, "Bad input and faults").

Each test runs 8 clients against the server for a few seconds (tests/serving/_load.py) while it
breaks something, and counts what every request got:

* Redis (the prediction cache and the shared rate limits) killed and restarted: no request
  fails, ``/readyz`` and the log show the cache bypassed, cache hits resume after the restart.
* The metadata database (a private PostgreSQL) stopped for longer than the API keys' cache
  lasts: no request fails, keys verified before keep working, ``/readyz`` shows the revision
  watcher's degradation; once the database is back a deployment change is picked up.
* ``kill -9`` of one of two workers: only the requests in flight on it get no answer, the
  other keeps serving, and every prediction answered 200 is in the log.
* SIGTERM: the requests in flight are answered, every 200 is in the log, the server exits 0.

The services stopped here are private ones started by the test (tests/serving/_services.py),
never the shared Redis and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from keel import Settings, Workspace
from keel.errors import InvalidApiKey, MetadataStoreUnavailable
from keel.serving._keys import KeyStore
from keel.serving._predlog import Compactor, LogReader
from keel.serving._ratelimit import RedisLimiter
from keel.serving._server import serving_app

from ._load import Load, wait_until
from ._server_process import ServerProcess, deploy_churn
from ._services import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.slow

FRAME = pd.DataFrame(
    {
        "age": [0.1, -1.2, 0.7, 1.5, -0.3, -0.8],
        "income": [1, 0, 2, 1, 0, 3.0],
        "visits": [1, 4, 2, 0, 3, 5],
    }
)
SLOW_SECONDS = 0.1
# A request counts as sent before an event when it started this long before it: the client
# thread may need that long to put it on the wire on a busy two-core machine.
MARGIN = 0.05


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """SQLite unless a test brings its own database (the outage test stops a private one)."""
    return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"


def _readyz(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/readyz", timeout=5)
    assert response.status_code == 200, response.text  # degraded, never unready
    detail: dict[str, Any] = response.json()
    return detail


def _metric(server: ServerProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _logged_ids(settings: Settings) -> set[str]:
    """Every prediction id in the log, once the segments left behind are compacted."""
    log_dir = settings.project_path(settings.serving.prediction_log_dir)
    assert Compactor(log_dir).run_once().errors == 0
    rows = LogReader(log_dir).query("SELECT prediction_id FROM predictions").to_pylist()
    return {row["prediction_id"] for row in rows}


def _stop(server: ServerProcess) -> None:
    """SIGTERM, and the server's graceful shutdown ran and exited 0."""
    assert server.stop() == 0, server.output
    assert "Application shutdown complete" in server.output, server.output


def _report(name: str, load: Load) -> None:
    print(f"\n{name}: {load.summary()}")  # measured figures, shown with pytest -s


# -- Redis -----------------------------------------------------------------------------------------


def test_redis_killed_and_restarted_under_load_fails_no_request(
    workspace: Workspace, settings: Settings
) -> None:
    """The cache and the rate limits both live in the Redis that goes away; auth is on."""
    deploy_churn(workspace)
    workspace.deployments.set("churn", cache=True)
    _, secret = workspace.keys.create("load", ["predict"], rate_per_second=1e6, burst=1_000_000)
    hits = {"name": "keel_cache_lookups_total", "endpoint": "churn", "result": "hit"}

    with PrivateRedis() as redis:
        env = {
            "KEEL_SERVING__CACHE_URL": redis.url,
            "KEEL_SERVING__RATELIMIT_URL": redis.url,
            "KEEL_SERVING__AUTH": "on",
            "KEEL_SERVING__FSYNC": "never",
        }
        with ServerProcess(settings, env=env) as server:
            server.wait_ready()
            with Load(server.url, headers={"Authorization": f"Bearer {secret}"}) as load:
                wait_until(lambda: _metric(server, **hits) > 50, "the cache answers")

                redis.stop()
                wait_until(
                    lambda: _readyz(server)["cache"]["reachable"] is False,
                    "/readyz shows the cache unreachable",
                )
                time.sleep(0.3)  # lookups that started before the failure have been counted
                hits_down = _metric(server, **hits)
                time.sleep(1.5)
                assert _metric(server, **hits) == hits_down  # bypassed: no lookups at all
                down = _readyz(server)["cache"]
                up = {"name": "keel_dependency_up"}
                cache_down = _metric(server, **up, dependency="cache")
                limiter_down = _metric(server, **up, dependency="ratelimit")

                redis.start()  # same port, empty
                wait_until(lambda: _readyz(server)["cache"]["reachable"], "the cache is used again")
                wait_until(lambda: _metric(server, **hits) > hits_down + 50, "hits resume")
                cache_up = _metric(server, **up, dependency="cache")
            _stop(server)

    _report("redis outage", load)
    assert load.failures == [], load.summary()
    assert (cache_down, limiter_down, cache_up) == (0, 0, 1)  # keel_dependency_up
    assert len(load.answers) >= 200, "the load hardly ran"
    assert down["reachable"] is False
    assert down["bypassed"] > 0
    assert "Connection refused" in down["last_error"]  # what the reconnecting probe met
    output = server.output
    assert f"prediction cache {redis.url}: " in output
    assert "bypassing it" in output
    assert "is reachable again; using it" in output
    assert "rate limiter: Redis failed" in output
    assert "rate limiter: Redis answers again" in output


def test_the_shared_rate_limiter_says_when_it_limits_in_process() -> None:
    """What ``/readyz`` would show of the rate limits (the limiter's side of the outage)."""
    with PrivateRedis() as redis:
        limiter = RedisLimiter(redis.url, retry_interval=0.0)
        try:
            assert limiter.take("k", 100, 10).allowed
            assert limiter.status()["reachable"] is True
            redis.stop()
            assert limiter.take("k", 100, 10).allowed  # answered by the in-process buckets
            status = limiter.status()
            assert (status["reachable"], status["fallbacks"]) == (False, 1)
            assert "ConnectionError" in status["last_error"]
            redis.start()
            assert limiter.take("k", 100, 10).allowed
            assert limiter.status()["reachable"] is True
            assert limiter.status()["url"] == redis.url
        finally:
            limiter.close()


# -- the metadata database -------------------------------------------------------------------------


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


@pytest.fixture
def pg_settings(postgres: PrivatePostgres, tmp_path: Path) -> Settings:
    """A project whose metadata database is the private PostgreSQL (migrated)."""
    project = tmp_path / "pg-project"
    project.mkdir()
    settings = Settings.load(
        project, metadata_url=postgres.url, artifacts_url=str(tmp_path / "pg-artifacts")
    )
    Workspace(settings).close()  # creates the schema
    return settings


def test_the_metadata_database_stopped_under_load_fails_no_request(
    postgres: PrivatePostgres, pg_settings: Settings
) -> None:
    """Longer than the API keys' 5 s cache: keys verified before the outage keep working."""
    settings = pg_settings
    with Workspace(settings) as workspace:
        deploy_churn(workspace)
        other = LogisticRegression().fit(FRAME, [0, 1, 0, 0, 1, 1])
        workspace.registry.register("churn", other, input_example=FRAME)  # version 2
        _, secret = workspace.keys.create("load", ["predict"])
    env = {
        "KEEL_SERVING__AUTH": "on",
        "KEEL_SERVING__REVISION_POLL_SECONDS": "0.2",
        "KEEL_SERVING__FSYNC": "never",
    }

    def watched() -> dict[str, Any]:
        revisions: dict[str, Any] = _readyz(server)["revisions"]["churn"]
        return revisions

    with ServerProcess(settings, env=env) as server:
        server.wait_ready()
        with Load(server.url, headers={"X-API-Key": secret}) as load:
            time.sleep(1.0)
            postgres.stop()
            stopped = time.monotonic()
            degraded = wait_until(lambda: (w := watched())["error"] and w, "/readyz shows it")
            metadata = {"name": "keel_dependency_up", "dependency": "metadata"}
            metadata_down = _metric(server, **metadata)
            time.sleep(max(0.0, stopped + 6.5 - time.monotonic()))  # past the keys' cache
            during = load.between(stopped, time.monotonic())
            postgres.start()
            wait_until(lambda: watched()["error"] is None, "the watcher recovers", timeout=10)
            metadata_up = _metric(server, **metadata)

            with Workspace(settings) as workspace:
                workspace.deployments.set("churn", model_uri="models:/churn/2")
            wait_until(lambda: watched()["revision"] == 2, "the change is picked up", timeout=10)
            switched = time.monotonic()
            time.sleep(1.0)
        _stop(server)

    _report("database outage", load)
    assert load.failures == [], load.summary()
    assert (metadata_down, metadata_up) == (0, 1)  # keel_dependency_up
    assert len(during) >= 100, "the load hardly ran while the database was down"
    assert "cannot read the live revision" in degraded["error"]
    assert degraded["revision"] == 1
    after = [answer.version for answer in load.answers if answer.started > switched]
    assert after, "nothing was answered after the switch"
    assert set(after) == {2}
    output = server.output
    assert "the metadata store answers again" in output
    assert "API keys: the metadata database fails" in output
    assert "API keys: the metadata database answers again" in output


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_verified_before_a_database_outage_keep_working_through_it(
    postgres: PrivatePostgres, pg_settings: Settings
) -> None:
    """Only those: a key never verified, revoked, or verified too long ago is not let in."""
    clock = _Clock()
    with Workspace(pg_settings) as workspace:
        keys = KeyStore(workspace.store, "tester", cache_ttl=5, max_stale=60, clock=clock)
        secrets = {name: workspace.keys.create(name, ["predict"])[1] for name in "abcd"}
        for name in "abc":
            keys.authenticate(secrets[name])
        workspace.keys.revoke("b", reason="leaked")  # elsewhere: this store still has it
        clock.now += 6
        with pytest.raises(InvalidApiKey):
            keys.authenticate(secrets["b"])  # the database said revoked: forgotten

        postgres.stop()
        assert keys.authenticate(secrets["a"]).name == "a"  # the database failed: from memory
        assert keys.cached(secrets["c"]) is not None  # no I/O until the retry interval passes
        for name in "bd":  # revoked before the outage; never verified
            with pytest.raises(MetadataStoreUnavailable):
                keys.authenticate(secrets[name])
        status = keys.status()
        assert status["database_reachable"] is False
        assert "cannot connect" in status["last_error"]
        assert status["stale_answers"] == 2
        clock.now += 60
        with pytest.raises(MetadataStoreUnavailable):
            keys.authenticate(secrets["a"])  # verified more than max_stale ago

        postgres.start()
        assert keys.authenticate(secrets["a"]).name == "a"
        assert keys.status()["database_reachable"] is True


def test_a_switch_the_database_failed_is_retried_at_the_next_poll(
    pg_settings: Settings, postgres: PrivatePostgres
) -> None:
    """A revision that failed to load waits ``retry_seconds``; one whose load failed because
    the database went away is not at fault, and is switched to once the database answers."""

    async def scenario() -> None:
        with Workspace(pg_settings) as workspace:
            deploy_churn(workspace)
            other = LogisticRegression().fit(FRAME, [0, 1, 0, 0, 1, 1])
            workspace.registry.register("churn", other, input_example=FRAME)
            app = serving_app(workspace)
            await app.startup()
            try:
                watcher = app.watcher
                assert watcher is not None
                workspace.deployments.set("churn", model_uri="models:/churn/2")
                real = watcher._deployments
                # the revision is read, then the database goes before the model's row is
                watcher._deployments = _ReadThenStop(real, postgres)  # type: ignore[assignment]
                await watcher.poll()
                status = watcher.status()["churn"]
                assert (status["revision"], status["switches"]) == (1, 0)
                assert "cannot load revision 2: MetadataStoreUnavailable" in status["error"]

                postgres.start()
                watcher._deployments = real
                await watcher.poll()  # not held back for retry_seconds (30 s)
                status = watcher.status()["churn"]
                assert (status["revision"], status["error"]) == (2, None)
            finally:
                await app.shutdown()

    asyncio.run(scenario())


class _ReadThenStop:
    """The deployment store, stopping the database right after it answered a poll."""

    def __init__(self, real: Any, postgres: PrivatePostgres) -> None:
        self.real = real
        self.postgres = postgres

    def changed_since(self, name: str, revision: int) -> Any:
        answer = self.real.changed_since(name, revision)
        self.postgres.stop()
        return answer


# -- worker processes ------------------------------------------------------------------------------


def _worker_pids(server: ServerProcess) -> set[int]:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return {
        int(sample.labels["pid"])
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "keel_model_load_seconds" and "pid" in sample.labels
    }


def test_kill_9_of_one_worker_under_load_loses_nothing_answered(
    workspace: Workspace, settings: Settings
) -> None:
    """A new connection per request, so both workers answer; the kill cuts only the requests
    the killed worker had accepted."""
    deploy_churn(workspace)
    env = {"KEEL_SERVING__FSYNC": "never"}
    with ServerProcess(settings, workers=2, env=env) as server:
        server.wait_ready()
        workers = wait_until(
            lambda: len(pids := _worker_pids(server)) == 2 and pids, "both workers serve", 60
        )
        victim = min(workers)
        with Load(server.url, keepalive=False) as load:
            time.sleep(1.5)
            os.kill(victim, signal.SIGKILL)  # a worker of the server started here
            killed = time.monotonic()
            time.sleep(2.5)
        assert server.stop() == 0, server.output

    _report("kill -9 of one worker", load)
    assert {status for status in load.statuses if status is not None} == {200}
    for failure in load.failures:  # only requests in flight when the worker died
        assert failure.started < killed + MARGIN < failure.ended + 2 * MARGIN, failure
    assert len(load.failures) <= load.clients
    assert len([a for a in load.answers if a.started > killed + 1 and a.status == 200]) > 50
    log_dir = settings.project_path(settings.serving.prediction_log_dir)
    logged = _logged_ids(settings)
    assert load.answered_ids <= logged, len(load.answered_ids - logged)
    writers = {int(part.stem.split("-")[2]) for part in log_dir.rglob("part-*.parquet")}
    assert victim in writers  # the killed worker had answered predictions, all logged


# -- SIGTERM ---------------------------------------------------------------------------------------


def _slow_model() -> Any:
    """A regressor taking SLOW_SECONDS a call (a local class: cloudpickle stores it by value)."""

    class Slow:
        def predict(self, frame: Any) -> Any:
            time.sleep(SLOW_SECONDS)
            return np.zeros(len(frame))

    return Slow()


def test_sigterm_under_load_answers_the_requests_in_flight_and_logs_them(
    workspace: Workspace, settings: Settings
) -> None:
    workspace.registry.register("churn", _slow_model(), input_example=FRAME)
    workspace.deployments.create_endpoint("churn", "models:/churn/1")
    with ServerProcess(settings, env={"KEEL_SERVING__FSYNC": "never"}) as server:
        server.wait_ready()
        with Load(server.url) as load:
            time.sleep(1.5)
            signalled = time.monotonic()
            code = server.stop()

    _report("SIGTERM under load", load)
    assert code in (0, -signal.SIGTERM), server.output
    assert "Application shutdown complete" in server.output
    sent_before = [a for a in load.answers if a.started < signalled - MARGIN]
    assert [a for a in sent_before if a.status != 200] == []
    in_flight = [a for a in load.answers if a.started < signalled < a.ended and a.status == 200]
    assert len(in_flight) >= load.clients // 2, "SIGTERM found few requests in flight"
    assert load.answered_ids <= _logged_ids(settings)


def test_sigterm_exits_0(workspace: Workspace, settings: Settings) -> None:
    deploy_churn(workspace)
    with ServerProcess(settings) as server:
        server.wait_ready()
        assert server.stop() == 0, server.output
