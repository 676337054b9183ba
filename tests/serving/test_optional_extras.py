"""The server runs with the base install: optional extras (redis-py, psycopg, ...) are only
imported when a configuration asks for them (found when `keel demo` failed on a fresh install)."""

from __future__ import annotations

import subprocess
import sys

BLOCKED = ("redis", "redis.asyncio", "psycopg", "lightgbm", "xgboost")

CHILD = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # as if not installed
import keel.cli._serve, keel.cli._keys, keel.serving._app, keel.serving._server
from keel.errors import ConfigError
from keel.serving._ratelimit import RedisLimiter
try:
    RedisLimiter("redis://127.0.0.1:1/0")
except ConfigError as error:
    print(error)
"""


def test_the_server_imports_without_the_optional_extras() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    assert "pip install 'keel-ml[redis]'" in done.stdout
