"""Shared fixtures: every metadata-backed test runs against SQLite and PostgreSQL, every
online-store test against SQLite and Redis.

PostgreSQL tests use a database created for this test session and a fresh schema per test;
Redis tests use the database in KEEL_TEST_REDIS_URL (default 127.0.0.1:6379/14) with a key
prefix of their own, removed afterwards. When a server does not answer its tests are skipped
with the reason, unless KEEL_REQUIRE_SERVICES=1 (set by .ci/run), in which case they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import psycopg
import pytest
import redis
from psycopg import sql

from keel import Settings, Workspace

# CI shares two cores with services and, in development, with other jobs: timing-based
# hypothesis checks (per-example deadlines, "too slow" data generation) fail there without
# anything being wrong. Properties are still checked on fresh random examples every run.
hypothesis.settings.register_profile(
    "keel", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("keel")

POSTGRES_ADMIN_URL = os.environ.get(
    "KEEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("KEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
REQUIRE_SERVICES = os.environ.get("KEEL_REQUIRE_SERVICES") == "1"
BACKENDS = ["sqlite", "postgresql"]


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (KEEL_REQUIRE_SERVICES=1, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a database created for this test session and dropped after it."""
    name = f"keel_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        _unavailable(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {error}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _fresh_schema_url(database_url: str) -> str:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return f"{database_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A metadata database URL with nothing in it, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"
    return _fresh_schema_url(request.getfixturevalue("postgres_database"))


@pytest.fixture
def settings(metadata_url: str, tmp_path: Path) -> Settings:
    project = tmp_path / "project"
    project.mkdir()
    return Settings.load(
        project,
        metadata_url=metadata_url,
        artifacts_url=str(tmp_path / "artifacts"),
        actor="tester",
    )


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    with Workspace(settings) as ws:
        yield ws


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The Redis test database URL, once it has answered a PING."""
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        _unavailable(f"Redis is not reachable at {REDIS_TEST_URL}: {error}")
    finally:
        client.close()
    return REDIS_TEST_URL


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A Redis online-store URL with a key prefix no other test uses; its keys are removed
    afterwards."""
    prefix = f"keeltest{uuid.uuid4().hex[:12]}"
    yield f"{redis_server}?prefix={prefix}"
    client = redis.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()
