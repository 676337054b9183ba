"""A real ``keel serve`` in a child process, for the tests that need one (crash, disk full).

    with ServerProcess(settings, env={"KEEL_SERVING__FSYNC": "never"}) as server:
        server.wait_ready()
        httpx.post(f"{server.url}/v1/endpoints/churn/predict", json={"inputs": ROW})
        server.kill()                 # SIGKILL to the process started here, then reaped
    server.output                     # everything it printed (stdout and stderr)

The server runs in a session of its own and is only ever signalled through the PID this object
started (``kill`` signals that session's process group); leaving the ``with`` block kills and
reaps it if it still runs. Its output goes to a pipe drained by a thread, not to a file: a test
that lowers the server's RLIMIT_FSIZE must not also stop it from printing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx
import pandas as pd
from sklearn.linear_model import LogisticRegression

from keel import Settings, Workspace

ROW = {"age": 0.3, "income": 1.5, "visits": 2}


def deploy_churn(workspace: Workspace) -> None:
    """Endpoint ``churn`` serving a LogisticRegression (labels 0/1) on age, income, visits."""
    frame = pd.DataFrame(
        {
            "age": [0.1, -1.2, 0.7, 1.5, -0.3, -0.8],
            "income": [1, 0, 2, 1, 0, 3.0],
            "visits": [1, 4, 2, 0, 3, 5],
        }
    )
    model = LogisticRegression().fit(frame, [1, 0, 1, 1, 0, 0])
    workspace.registry.register("churn", model, input_example=frame)
    workspace.deployments.create_endpoint("churn", "models:/churn/1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``keel serve --endpoint churn`` for the project of ``settings``, on a free port.

    ``args`` are added to the command (``--tls-certfile ...``); with TLS, ``scheme`` is
    "https" and ``verify`` is what :meth:`wait_ready` verifies the server with (and, for
    mutual TLS, presents a client certificate from). With ``workers`` above 1 :attr:`pid` is
    uvicorn's supervisor, and :meth:`kill` reaches the workers through its process group.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        workers: int = 1,
        scheme: str = "http",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
        keel = Path(sys.executable).with_name("keel")  # the console script next to this Python
        command = [str(keel), "--dir", str(settings.project_dir), "serve"]
        environment = {
            **os.environ,
            "KEEL_METADATA_URL": settings.metadata_url,
            "KEEL_ARTIFACTS_URL": settings.artifacts_url,
            **(env or {}),
        }
        self._lines: list[str] = []
        self.process = subprocess.Popen(
            [
                *command,
                *("--host", "127.0.0.1", "--port", str(self.port)),
                *("--workers", str(workers), "--endpoint", "churn"),
                *args,
            ],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal meant for the test run does not reach it
        )
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line.decode(errors="replace"))

    @property
    def output(self) -> str:
        """What the server printed so far."""
        return "".join(self._lines)

    def wait_for_output(self, text: str, timeout: float = 10) -> None:
        """Return once the server has printed ``text`` (its output is read by a thread, so a
        line printed just now may not be in :attr:`output` yet); fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline:
                raise AssertionError(f"keel serve did not print {text!r}:\n{self.output}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 60) -> None:
        """Return once ``/readyz`` answers 200 (the startup replay of the log is done by then);
        fail with the server's output if it exits or takes longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=5, verify=self.verify)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"keel serve exited {self.process.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"keel serve was not ready in {timeout}s:\n{self.output}")
            time.sleep(0.1)

    def kill(self) -> int:
        """SIGKILL the server (by the PID started here) and reap it; its exit status. The
        signal goes to its process group, the session started for it, so nothing it may have
        started survives; until it is reaped, that group id cannot belong to anyone else."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        return self._reap()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (uvicorn's graceful shutdown), SIGKILL after ``timeout``; the exit status."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"keel serve ignored SIGTERM:\n{self.output}") from None
        return self._reap()

    def _reap(self) -> int:
        returncode = self.process.wait(30)
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
