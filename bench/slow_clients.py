"""Benchmark (not a test): /health from a new connection while half-open ones are held.

Starts ``rucat server`` (SQLite) in a process with a 256-file limit, as in
issue 10's report, and times ``GET /health`` on a fresh connection: first with
no other client (the baseline), then while 500 connections that never finish
their request head are held open. Each figure is the median of a few tries in
the same run; the ratio is held over baseline. Target (issue 10): under 1 s
beside 500 half-open connections. Also prints how many accept failures
(EMFILE) the server logged.

    uv run python bench/slow_clients.py [--half-open 500] [--tries 5]
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.support (free ports)

from tests.support import free_port  # noqa: E402

RUCAT = str(Path(sys.executable).parent / "rucat")
SERVER_FILE_LIMIT = 256
UNFINISHED_HEAD = b"GET /engines HTTP/1.1\r\nHost: localhost\r\nX-Slow: "


def _health_seconds(url: str) -> float:
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:  # a new connection each time
        response = client.get(f"{url}/health")
    response.raise_for_status()
    return time.perf_counter() - started


def _raise_own_file_limit(needed: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half-open", type=int, default=500)
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    _raise_own_file_limit(args.half_open + 200)

    tmp = Path(tempfile.mkdtemp(prefix="rucat-bench-slow-"))
    port = free_port()
    config = tmp / "server.json"
    config.write_text(
        json.dumps(
            {
                "database": {"Sqlite": {"path": str(tmp / "rucat.db")}},
                "data_dir": str(tmp / "data"),
                "connect_port": None,
            }
        )
    )
    limited = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({SERVER_FILE_LIMIT}, {SERVER_FILE_LIMIT})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    argv = [sys.executable, "-c", limited, RUCAT, "server", "--config-path", str(config)]
    argv += ["--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUCAT_")}
    log = tmp / "server.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 300
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
                try:
                    _health_seconds(url)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            baseline = statistics.median(_health_seconds(url) for _ in range(args.tries))
            held: list[float] = []
            for _ in range(args.tries):
                sockets = []
                try:
                    for _ in range(args.half_open):
                        s = socket.create_connection(("127.0.0.1", port), timeout=30)
                        s.sendall(UNFINISHED_HEAD)
                        sockets.append(s)
                    held.append(_health_seconds(url))
                finally:
                    for s in sockets:
                        s.close()
                time.sleep(0.5)  # let the server close its side
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    failures = len(re.findall("cannot accept connections", text))
    failures += sum(int(n) for n in re.findall(r"\((\d+) more since the last report\)", text))
    figure = statistics.median(held)
    verdict = "meets" if figure < 1.0 else "misses"
    print(
        f"/health on a new connection, median of {args.tries}, server file limit "
        f"{SERVER_FILE_LIMIT}, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}):"
    )
    print(f"  alone:                           {baseline * 1000:8.1f} ms")
    print(
        f"  beside {args.half_open} half-open connections: {figure * 1000:8.1f} ms  "
        f"(ratio {figure / baseline:.1f}; {verdict} the 1 s target; "
        f"tries {', '.join(f'{h:.2f}' for h in held)} s)"
    )
    print(f"  accept failures (EMFILE) logged: {failures}")


if __name__ == "__main__":
    main()
