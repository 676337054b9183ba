"""HTTP serving throughput and latency: a server on core 1, wrk on core 0.

    .venv/bin/python bench/serving.py [--duration 10] [--warmup 2] [--connections 1 16]
                                      [--models logistic hist_gradient_boosting]
                                      [--servers thin keel] [--repeat 3]

For each server in :data:`SERVERS` and each model of serving_models.py, :func:`measure` starts
the server pinned to core 1 (``taskset -c 1``) on a free port, waits until it answers the
request, warms it up, runs ``wrk -t1 -cN -dDs --latency`` pinned to core 0 with
bench/wrk_post.lua posting one fixed JSON record, stops the server by its PID, and reports
req/s, p50 and p99 as wrk printed them. Non-2xx answers and socket errors are counted, not
hidden. Needs ``wrk`` (Debian: apt-get install wrk) and uvicorn[standard].

``keel-all`` turns on issue 6's request-path pieces (cache, a 90/10 split, API keys and rate
limits); ``keel-cache``, ``keel-auth`` and ``keel-arms`` one each. With ``--varied`` every
request carries another body (bench/wrk_post_varied.lua), so the cache misses and pays its
whole cost (without it, ``keel-cache`` answers every request from the cache: the hit path), and
the summary gives each variant / keel.

Runs are interleaved (for each model and connection count: thin, keel, thin, keel, ...;
``--repeat`` rounds) so a machine that slows down mid-run slows both servers alike; the summary
gives each server's median and keel's ratio to thin.

A server is a function ``(model name, model pickle, work dir) -> (command, url path)``: the
thin baseline (bench/thin_server.py) is one; add another to :data:`SERVERS` to measure it with
the same harness, the same body and the same pinning.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _common import machine
from serving_models import FEATURES, MODELS, build_models, fit, request_body, training_data

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "wrk_post.lua"
VARIED_LUA = BENCH / "wrk_post_varied.lua"
SERVER_CORE = "1"
LOAD_CORE = "0"

Server = Callable[[str, Path, Path], tuple[list[str], str]]
"""(model name, model pickle, work dir) -> (server command with "{port}", url path)."""

API_KEYS: dict[str, str] = {}
"""The API key a server that checks keys was given (by its command's project directory)."""


@dataclass(frozen=True)
class Result:
    connections: int
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    """Non-2xx answers plus socket errors (connect, read, write, timeout)."""
    cpu_us: float = float("nan")
    """The server's CPU time (user + system, every process of its group) per request over the
    measured run: on its one pinned core, the cost throughput is the inverse of."""


def thin(model: str, pickle_path: Path, workdir: Path) -> tuple[list[str], str]:
    command = [sys.executable, str(BENCH / "thin_server.py"), "--model", str(pickle_path)]
    return [*command, "--port", "{port}"], "/"


def keel(
    model: str,
    pickle_path: Path,
    workdir: Path,
    *,
    cache: bool = False,
    auth: bool = False,
    arms: bool = False,
    everything: bool = False,
) -> tuple[list[str], str]:
    """``keel serve`` with everything on: signature validation, metrics, the prediction log
    (fsync "interval"), the deployment lookup. LogisticRegression is served without batching,
    HistGradientBoosting with micro-batching (max batch 32), as the issue's targets ask."""
    import pandas as pd

    from keel import Settings, Workspace

    cache, auth, arms = cache or everything, auth or everything, arms or everything
    pieces = [name for name, on in (("cache", cache), ("auth", auth), ("arms", arms)) if on]
    project = workdir / "-".join(["keel", model, *pieces])
    project.mkdir(exist_ok=True)
    toml = "[tracking]\ncapture_packages = false\n"
    if auth:
        toml += '[serving]\nauth = "on"\n'
    (project / "keel.toml").write_text(toml)
    fitted = fit(model, feature_names=True)
    x, _ = training_data()
    example = pd.DataFrame(x[:100], columns=FEATURES)
    batching = {"max_batch_size": 32} if model == "hist_gradient_boosting" else {}
    with Workspace(Settings.load(project)) as workspace:
        version = workspace.registry.register(model, fitted, input_example=example)
        split: list[tuple[str, float]] = []
        if arms:  # a 90/10 split between two versions of the model
            canary = workspace.registry.register(model, fitted, input_example=example)
            split = [(version.uri, 90), (canary.uri, 10)]
        if auth:
            _, secret = workspace.keys.create(
                "bench", ["predict"], rate_per_second=1e9, burst=10**9
            )
            API_KEYS[str(project)] = secret
        workspace.deployments.create_endpoint(
            "bench",
            version.uri,
            max_batch_wait_ms=2.0 if batching else 0.0,
            cache=cache,
            arms=split,
            **batching,
        )
    keel_command = str(Path(sys.executable).with_name("keel"))
    return (
        [keel_command, "--dir", str(project), "serve", "--port", "{port}"],
        "/v1/endpoints/bench/predict",
    )


def keel_cache_hits(model: str, pickle_path: Path, workdir: Path) -> tuple[list[str], str]:
    """keel with the endpoint's prediction cache on (in memory): wrk posts one fixed record,
    so every request after the first is a cache hit: the hit path's throughput."""
    return keel(model, pickle_path, workdir, cache=True)


def keel_everything(model: str, pickle_path: Path, workdir: Path) -> tuple[list[str], str]:
    """keel with issue 6's request-path pieces on: the prediction cache (in memory), a 90/10
    traffic split by routing key, API keys checked and rate-limited (in memory) on every
    request; the circuit breaker is always on. Compare it with ``keel`` under ``--varied``
    bodies, so the cache misses (its full cost) instead of answering every request."""
    return keel(model, pickle_path, workdir, everything=True)


def keel_auth(model: str, pickle_path: Path, workdir: Path) -> tuple[list[str], str]:
    """keel with API keys checked and rate-limited (in memory) on every request."""
    return keel(model, pickle_path, workdir, auth=True)


def keel_arms(model: str, pickle_path: Path, workdir: Path) -> tuple[list[str], str]:
    """keel with a 90/10 split of two versions of the model, by routing key."""
    return keel(model, pickle_path, workdir, arms=True)


def keel_arms_auth(model: str, pickle_path: Path, workdir: Path) -> tuple[list[str], str]:
    """keel-all without the cache: what every request pays whatever it asks (a 90/10 split,
    API keys and rate limits, the breaker)."""
    return keel(model, pickle_path, workdir, arms=True, auth=True)


SERVERS: dict[str, Server] = {
    "thin": thin,
    "keel": keel,
    "keel-cache": keel_cache_hits,
    "keel-auth": keel_auth,
    "keel-arms": keel_arms,
    "keel-arms-auth": keel_arms_auth,
    "keel-all": keel_everything,
}


def api_key(command: Sequence[str]) -> str | None:
    """The API key of a server command's project, when it checks keys."""
    if "--dir" not in command:
        return None
    return API_KEYS.get(command[list(command).index("--dir") + 1])


def measure(
    server_cmd: Sequence[str],
    body: bytes,
    connections: int,
    *,
    path: str = "/",
    duration: int = 10,
    warmup: int = 2,
    varied: bool = False,
    repeat_share: float = 0.0,
) -> Result:
    """Start ``server_cmd`` ("{port}" filled in) on core 1, load it with wrk from core 0
    (``varied``: a different body on every request but a ``repeat_share`` of them, which
    repeat one record; see bench/wrk_post_varied.lua)."""
    port = free_port()
    key = api_key(server_cmd)
    with serving([arg.format(port=port) for arg in server_cmd], port, body, path, key) as pid:
        url = f"http://127.0.0.1:{port}{path}"
        # The fixed script sends no API key: a server that needs one gets the varied script
        # told to repeat the body every time, so --varied alone decides the bodies.
        script = VARIED_LUA if varied or key else LUA
        share = repeat_share if varied else 1.0
        extra = [key or "", f"{share:g}"] if script == VARIED_LUA else []
        with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
            body_file.write(body)
            body_file.flush()
            if warmup > 0:
                wrk(url, [body_file.name, *extra], connections, warmup, script)
            cpu_before = group_cpu_seconds(pid)
            output = wrk(url, [body_file.name, *extra], connections, duration, script)
            cpu = group_cpu_seconds(pid) - cpu_before
    result = parse_wrk(output, connections)
    return dataclasses.replace(result, cpu_us=cpu / max(result.requests, 1) * 1e6)


def group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds of every live process in process group ``group`` (the
    server and any worker it started), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:  # fields after the name: state, ppid, pgrp, ...
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wrk(url: str, args: list[str], connections: int, seconds: int, script: Path = LUA) -> str:
    command = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--latency", "-s", str(script), url, "--", *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return done.stdout


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(output: str, connections: int) -> Result:
    def number(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {pattern!r} in wrk output:\n{output}")
        return match

    def percentile(p: int) -> float:
        match = number(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$")
        return float(match[1]) * _UNITS[match[2]]

    errors = 0
    if non_2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(non_2xx[1])
    if sockets := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                            r"timeout (\d+)", output):  # fmt: skip
        errors += sum(int(count) for count in sockets.groups())
    return Result(
        connections=connections,
        requests=int(number(r"(\d+) requests in")[1]),
        requests_per_second=float(number(r"Requests/sec:\s+([\d.]+)")[1]),
        p50_ms=percentile(50),
        p99_ms=percentile(99),
        errors=errors,
    )


@contextmanager
def serving(
    command: list[str], port: int, body: bytes, path: str, key: str | None = None
) -> Iterator[int]:
    """Run ``command`` on the server core until the block ends; yields its PID."""
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group, so worker processes it starts go with it
    )
    try:
        wait_until_answering(process, port, body, path, key)
        yield process.pid
    finally:
        stop(process)


def wait_until_answering(
    process: subprocess.Popen[bytes],
    port: int,
    body: bytes,
    path: str,
    key: str | None = None,
    timeout: float = 60,
) -> None:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{stderr}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            answer = response.read()
            connection.close()
        except OSError:
            time.sleep(0.1)
            continue
        if response.status != 200:
            raise RuntimeError(f"server answered {response.status}: {answer[:500]!r}")
        return
    raise RuntimeError(f"server did not answer on port {port} within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this harness started
            process.wait()
    if process.stderr:
        process.stderr.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--servers", nargs="+", choices=sorted(SERVERS), default=["thin", "keel"])
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds per case")
    parser.add_argument(
        "--varied",
        action="store_true",
        help="a different body on every request (a cache then misses)",
    )
    parser.add_argument(
        "--repeat-share",
        type=float,
        default=0.0,
        help="with --varied, the share of requests that repeat one record (a cache answers "
        "them): 0.1 is a 10 %% hit rate",
    )
    args = parser.parse_args()
    if not 0.0 <= args.repeat_share <= 1.0:
        parser.error("--repeat-share is a share of requests, between 0 and 1")
    print(machine())
    script = "wrk_post_varied.lua" if args.varied else "wrk_post.lua"
    if args.varied and args.repeat_share:
        script += f" (a share of {args.repeat_share:g} repeating one record)"
    print(
        f"server: taskset -c {SERVER_CORE}; load: taskset -c {LOAD_CORE} wrk -t1 -cN "
        f"-d{args.duration}s --latency -s bench/{script} (after {args.warmup} s warm-up)"
    )
    body = request_body()
    print(
        f"{'server':<15}{'model':<24}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'cpu µs/req':>12}"
    )
    results: dict[tuple[str, str, int], list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="keel-bench-serving-") as tmp:
        workdir = Path(tmp)
        pickles = build_models(workdir)
        for model in args.models:
            commands = {
                server: SERVERS[server](model, pickles[model], workdir) for server in args.servers
            }
            for connections in args.connections:
                for _ in range(args.repeat):
                    for server, (command, path) in commands.items():
                        result = measure(
                            command,
                            body,
                            connections,
                            path=path,
                            duration=args.duration,
                            warmup=args.warmup,
                            varied=args.varied,
                            repeat_share=args.repeat_share,
                        )
                        results.setdefault((server, model, connections), []).append(result)
                        errors = f"  ({result.errors} errors)" if result.errors else ""
                        print(
                            f"{server:<15}{model:<24}{connections:>6}"
                            f"{result.requests_per_second:>10,.0f}"
                            f"{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
                            f"{result.cpu_us:>12.1f}{errors}",
                            flush=True,
                        )
    summarize(results)


def summarize(results: dict[tuple[str, str, int], list[Result]]) -> None:
    """Medians per server and case: keel's throughput and p50/p99 ratios to thin, and each
    keel variant's (cache, auth, arms, all of them) to keel, with the server CPU time per
    request each adds."""
    print("\nmedians (req/s, p50 ms, p99 ms, server CPU µs per request) and keel / thin, "
          "keel-* / keel")  # fmt: skip
    for (server, model, connections), runs in sorted(results.items()):
        if server == "thin":
            continue
        rps, p50, p99, cpu = _medians(runs)
        line = (
            f"{model:<24}{connections:>3} conns  {server:<14} {rps:>7,.0f} {p50:.2f} {p99:.2f} "
            f"{cpu:6.1f}"
        )
        base = "thin" if server == "keel" else "keel"
        base_runs = results.get((base, model, connections))
        if base_runs:
            base_rps, base_p50, base_p99, base_cpu = _medians(base_runs)
            line += (
                f"  vs {base}: req/s x{rps / base_rps:.2f}  p50 x{p50 / base_p50:.2f}  "
                f"p99 x{p99 / base_p99:.2f}  cpu {cpu - base_cpu:+.1f} µs"
            )
        print(line)


def _medians(runs: list[Result]) -> tuple[float, float, float, float]:
    return (
        statistics.median(r.requests_per_second for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        statistics.median(r.cpu_us for r in runs),
    )


if __name__ == "__main__":
    main()
