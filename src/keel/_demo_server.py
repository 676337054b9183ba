"""``keel serve`` in a child process, for the demo: started, waited for, and always stopped.

    with DemoServer(workspace.settings, "breast-cancer") as server:
        urllib.request.urlopen(f"{server.url}/v1/endpoints/breast-cancer/predict", body)

The demo runs the server as a child process rather than uvicorn in a thread of its own: it is
exactly what a user runs (start-up, lifespan and signal handling included), its event loop and
model loading share nothing with the demo's code, and stopping it is one SIGTERM to one PID that
leaves nothing behind in the demo's process. The child is handed the workspace's settings as
``KEEL_*`` variables, so it opens the same metadata store, artifact store and prediction log
even when the workspace was built in Python with overrides rather than from keel.toml.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from types import FrameType, TracebackType
from typing import Any

from keel.config import ENV_PREFIX, Settings
from keel.errors import ServingError

SERVER_LOG = ".keel/demo-server.log"
"""The child's output, relative to the project; rewritten by each demo."""
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


class DemoServer:
    """``keel serve`` for one endpoint in a child process on a loopback port, for as long as
    the ``with`` block lasts.

        with DemoServer(settings, "breast-cancer", port=None) as server:   # None: a free port
            server.url, server.pid, server.log_path

    Entering starts the child (its output goes to ``log_path``) and returns once ``/readyz``
    answers 200, or raises :class:`ServingError` naming the log. Leaving, or :meth:`stop`,
    sends it SIGTERM and waits for it to exit, whatever ended the block. Meanwhile, in the main
    thread, SIGTERM to the demo raises KeyboardInterrupt as Ctrl-C does, so it stops the child
    too. The child runs in a session of its own: Ctrl-C at the terminal reaches the demo only,
    which then stops the child, once.
    """

    def __init__(self, settings: Settings, endpoint: str, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = settings.project_path(SERVER_LOG)
        self._settings = settings
        self._endpoint = endpoint
        self._process: subprocess.Popen[bytes] | None = None
        self._sigterm: Any = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServingError("the demo server has not been started")
        return self._process.pid

    def __enter__(self) -> DemoServer:
        self._trap_sigterm()
        try:
            self._start()
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def wait(self) -> None:
        """Serve in the foreground: block until Ctrl-C (or SIGTERM, in the main thread). Raises
        :class:`ServingError` if the server exits on its own first."""
        if self._process is None:
            raise ServingError("the demo server has not been started")
        try:
            code = self._process.wait()
        except KeyboardInterrupt:
            return
        raise ServingError(f"the demo server exited with code {code}; see its log {self.log_path}")

    def stop(self) -> None:
        """SIGTERM the child and wait for it (killing it after STOP_TIMEOUT_SECONDS, or at once
        on a second Ctrl-C); idempotent."""
        process = self._process
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                except KeyboardInterrupt:
                    process.kill()
                    process.wait()
                    raise
        finally:
            self._restore_sigterm()

    def _start(self) -> None:
        # The interpreter running the demo, rather than a `keel` script found on PATH, so the
        # child is this very keel whatever the installation looks like.
        command = [sys.executable, "-c", "from keel.cli import main; main()"]
        command += ["--dir", str(self._settings.project_dir), "serve"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        command += ["--endpoint", self._endpoint]
        environment = {**os.environ, **settings_environment(self._settings)}
        environment["PYTHONUNBUFFERED"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:  # the child holds its own copy of the handle
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not _ready(f"{self.url}/readyz"):
            code = self._process.poll()
            if code is not None:
                raise ServingError(
                    f"the demo server (`keel serve` on port {self.port}) exited with code {code} "
                    f"before it was ready; its log {self.log_path} ends with: {self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ServingError(
                    f"the demo server (`keel serve` on port {self.port}) did not answer /readyz "
                    f"with 200 within {READY_TIMEOUT_SECONDS:.0f}s; see its log {self.log_path}"
                )
            time.sleep(0.1)

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(unreadable)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(nothing)"

    def _trap_sigterm(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, _interrupt)

    def _restore_sigterm(self) -> None:
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None


def settings_environment(settings: Settings) -> dict[str, str]:
    """``settings`` as ``KEEL_*`` variables, which a child ``keel`` prefers to keel.toml (the
    project directory goes on its command line)."""
    values = settings.model_dump(mode="json", exclude={"project_dir"})
    return {
        f"{ENV_PREFIX}{name.upper()}": value if isinstance(value, str) else json.dumps(value)
        for name, value in values.items()
    }


def free_port() -> int:
    """A loopback port nobody listens on now. Another process could take it before the server
    binds it; the server then exits, and the demo says so and where the log is."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as error:  # 503 while the model loads
        error.close()
        return False
    except OSError:  # not listening yet
        return False
