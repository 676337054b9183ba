"""What a run records about itself without being asked: code, environment, seeds, resources."""

from __future__ import annotations

import hashlib
import os
import platform
import random
import resource
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

_GIT_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class CodeVersion:
    """The git commit a run's code came from and a hash of uncommitted changes (None if clean)."""

    commit: str | None
    dirty_hash: str | None


def _git(directory: Path, *args: str) -> bytes | None:
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=directory,
            capture_output=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout if completed.returncode == 0 else None


def code_version(directory: Path) -> CodeVersion:
    """Commit and dirty-diff hash of the git tree holding ``directory`` (None outside git)."""
    top = _git(directory, "rev-parse", "--show-toplevel")
    head = _git(directory, "rev-parse", "HEAD")
    if top is None or head is None:
        return CodeVersion(commit=None, dirty_hash=None)
    # Everything from the top of the tree: paths come back relative to it, and a change
    # anywhere in the repository counts, not only under ``directory``.
    root = Path(top.decode().strip())
    diff = _git(root, "diff", "HEAD", "--binary") or b""
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z") or b""
    if not diff and not untracked:
        return CodeVersion(commit=head.decode().strip(), dirty_hash=None)
    digest = hashlib.sha256(diff)
    for name in sorted(filter(None, untracked.split(b"\0"))):
        digest.update(b"\0untracked\0" + name + b"\0")
        try:
            digest.update((root / name.decode()).read_bytes())
        except OSError:
            continue  # vanished or unreadable: its name still counts
    return CodeVersion(commit=head.decode().strip(), dirty_hash=digest.hexdigest())


def environment(capture_packages: bool) -> dict[str, Any]:
    """Interpreter, platform and (optionally) every installed distribution's version."""
    packages: dict[str, str] = {}
    if capture_packages:
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name:
                packages[name.lower()] = dist.version
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "packages": dict(sorted(packages.items())),
    }


def apply_seed(seed: int | None) -> dict[str, Any]:
    """Seed Python's and NumPy's global generators (choosing a seed if none is given) and
    return what was set, so the run can be replayed."""
    chosen = secrets.randbits(32) if seed is None else seed
    random.seed(chosen)
    np.random.seed(chosen % 2**32)
    return {
        "seed": chosen,
        "python_random": chosen,
        "numpy_global": chosen % 2**32,
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
    }


class ResourceMeter:
    """Wall time, CPU time (this process and its waited-for children) and peak memory."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = self._cpu_seconds()

    @staticmethod
    def _cpu_seconds() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def read(self) -> dict[str, float | int]:
        # ru_maxrss is the process's high-water mark (KiB on Linux, bytes on macOS): for a run
        # that is not the first thing in its process it includes what came before.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_bytes = peak if sys.platform == "darwin" else peak * 1024
        return {
            "wall_seconds": round(time.perf_counter() - self._wall, 6),
            "cpu_seconds": round(self._cpu_seconds() - self._cpu, 6),
            "peak_rss_bytes": int(peak_bytes),
        }
