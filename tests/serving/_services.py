"""A Redis server and a PostgreSQL cluster of the test's own, so a test can stop and restart
them (the shared services on the usual ports must never be touched).

    with PrivateRedis() as redis:           # redis-server on a free port, no persistence
        redis.url                           # redis://127.0.0.1:PORT/0
        redis.stop(); redis.start()         # by the PID started here; same port, empty again

    with PrivatePostgres() as postgres:     # initdb into a temporary directory, trust auth
        postgres.url                        # postgresql://postgres@127.0.0.1:PORT/postgres
        postgres.stop(); postgres.start()   # immediate shutdown; crash recovery on start

Both run as children started here, in sessions of their own, stopped by their PIDs. As root,
PostgreSQL (which refuses to run as root) runs as the ``postgres`` user through ``setpriv``,
which execs it, so the PID started is the postmaster's. A test that needs them skips when the
binaries are missing unless KEEL_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import abc
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import psycopg
import pytest
import redis

from ._server_process import free_port

REQUIRE_SERVICES = os.environ.get("KEEL_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (KEEL_REQUIRE_SERVICES=1, so this is a failure, not a skip)")
    pytest.skip(reason)


class _Child(abc.ABC):
    """A service process started here: stopped by its PID, reaped, never left running; its
    files in :attr:`directory`, removed when the ``with`` block ends."""

    process: subprocess.Popen[bytes] | None = None
    name = "service"
    directory: Path

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _spawn(self, command: list[str], log: Path) -> None:
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _signal(self, signum: int, timeout: float = 20) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def _wait(self, ready: object, log: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{log.read_text(errors='replace')}")
            with contextlib.suppress(Exception):
                if ready():  # type: ignore[operator]
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)


class PrivateRedis(_Child):
    name = "redis-server"

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed: the Redis outage test needs its own")
        assert binary is not None
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = Path(tempfile.mkdtemp(prefix="keel-redis-"))
        self.log = self.directory / "redis.log"

    def start(self) -> None:
        arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        arguments += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory)]
        self._spawn([self.binary, *arguments], self.log)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            self._wait(client.ping, self.log)
        finally:
            client.close()

    def stop(self) -> None:
        self._signal(signal.SIGKILL)  # gone at once, connections cut mid-command


class PrivatePostgres(_Child):
    name = "postgres"

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = found[-1] if found else shutil.which("initdb")
        if initdb is None:
            unavailable("PostgreSQL's initdb is not installed: the database outage test needs it")
        assert initdb is not None
        self.bin = Path(initdb).parent
        self.user: list[str] = []
        self.directory = Path(tempfile.mkdtemp(prefix="keel-postgres-"))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.directory)
                unavailable("running as root and there is no 'postgres' user to run PostgreSQL")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self.user = [
                "setpriv",
                f"--reuid={account.pw_uid}",
                f"--regid={account.pw_gid}",
                "--clear-groups",
            ]
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        options = ["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"]
        initialised = subprocess.run(
            [*self.user, str(self.bin / "initdb"), "-D", str(self.data), *options],
            capture_output=True,
            text=True,
            check=False,
        )
        if initialised.returncode != 0:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise AssertionError(f"initdb failed:\n{initialised.stdout}{initialised.stderr}")
        self.log.touch()
        if self.user:
            os.chown(self.log, account.pw_uid, account.pw_gid)

    def start(self) -> None:
        options = ["-p", str(self.port), "-k", str(self.directory)]
        options += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        options += ["-c", "full_page_writes=off", "-c", "max_connections=40"]
        command = [*self.user, str(self.bin / "postgres"), "-D", str(self.data), *options]
        self._spawn(command, self.log)

        def ready() -> bool:
            with psycopg.connect(self.url, connect_timeout=1) as connection:
                connection.execute("SELECT 1")
            return True

        self._wait(ready, self.log)

    def stop(self) -> None:
        """Immediate shutdown (SIGQUIT): every connection is cut, nothing is flushed."""
        self._signal(signal.SIGQUIT)
