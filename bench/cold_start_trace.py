"""Where one cold start's time goes: a Rucat start phase by phase, beside a bare one.

Not a test: prints a trace. It runs `rucat up`'s server and monitor in this
process (SQLite in a temporary data dir, the Local platform, the default
config, no proxy) with Rucat's loggers at DEBUG, creates one engine over REST,
and prints when each step happened, in seconds after POST /engine:

- the monitor's claim, the supervisor's spawn, StartInProgress (store writes);
- when the Spark Connect port line appeared in the engine's log (an observer
  in this script tails it every 10 ms: that moment is the JVM's, not Rucat's);
- when Rucat found the port and each readiness probe and its outcome;
- Running written, and when a client polling GET /engine saw it.

Then the same for a bare spark-submit of the same command (as
bench/time_to_running.py's direct side: the port line, then the first
answered AnalyzePlan), so "port line -> answered" compares the two. Last,
two figures machine load does not change: the CPU time this process (server,
monitor, platform) spent during the start, and the CPU time of the engine's
processes (supervisor, spark-submit, the JVMs, reaped children included) up
to the moment it answered, beside the bare command's: what Rucat's launch
(its flags, files and environment) costs the JVM.

    uv run python bench/cold_start_trace.py
    uv run python bench/cold_start_trace.py --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _engine_start import create_engine, direct_argv, spawn_direct, wait_state

from rucat.config import RucatConfig
from rucat.domain.errors import EngineUnreachable
from rucat.engines.spark_launch import bound_connect_port
from rucat.engines.spark_probe import connect_version

#: How often the observer reads new bytes of an engine's log (seconds).
OBSERVE_SECS = 0.01


class Recorder(logging.Handler):
    """Keeps (time, logger, message) of every record, for the trace."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.created, record.name, record.getMessage()))


async def port_line_time(log_path: Path, offset: int = 0, *, deadline: float) -> float:
    """When the Spark Connect port line appears in `log_path` past `offset`."""
    seen = b""
    while time.time() < deadline:
        with contextlib.suppress(FileNotFoundError), log_path.open("rb") as f:
            f.seek(offset + len(seen))
            seen += f.read()
        if bound_connect_port(seen.decode("utf-8", "replace")) is not None:
            return time.time()
        await asyncio.sleep(OBSERVE_SECS)
    raise TimeoutError(f"no port line in {log_path}")


def group_cpu(pgid: int) -> float:
    """CPU seconds of process group `pgid`'s live members and their reaped children."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw.rpartition(")")[2].split()  # fields[0] is field 3 (state)
        if int(fields[2]) == pgid:
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


async def trace_rucat(workdir: Path) -> None:
    from rucat.cli.processes import run_up

    data = workdir / "data"
    config = RucatConfig.model_validate(
        {
            "data_dir": str(data),
            "port": 0,
            "connect_port": None,
            "database": {"Sqlite": {"path": str(data / "rucat.db")}},
        }
    )
    url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    up = asyncio.create_task(run_up(config, on_started=lambda u, _p: url.set_result(u)))
    recorder = Recorder()
    logging.getLogger("rucat").addHandler(recorder)
    logging.getLogger("rucat").setLevel(logging.DEBUG)
    try:
        base = await asyncio.wait_for(url, 60)
        # A blocking client in a thread: the server it polls runs on this event loop.
        with httpx.Client(base_url=base, timeout=30) as client:
            recorder.records.clear()
            cpu0, t0 = time.process_time(), time.time()
            engine_id = await asyncio.to_thread(create_engine, client)
            posted = time.time()
            log_path = data / "engines" / engine_id / "engine.log"
            observer = asyncio.create_task(port_line_time(log_path, deadline=t0 + 600))
            await asyncio.to_thread(wait_state, client, engine_id, "Running", poll=0.05)
            seen = time.time()
            run = json.loads((log_path.parent / "run.json").read_text())
            engine_cpu = group_cpu(run["pid"])
            cpu = time.process_time() - cpu0
            port_line = await observer
            records = [r for r in recorder.records if engine_id in r[2]]
            await asyncio.to_thread(client.post, f"/engine/{engine_id}/stop")
    finally:
        logging.getLogger("rucat").removeHandler(recorder)
        up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await up

    print(f"rucat: one start of engine {engine_id}, seconds after POST /engine")
    print(f"  {posted - t0:7.3f}  POST /engine answered")
    polls = 0
    for at, name, message in records:
        if name == "rucat.access":  # the client's own GET /engine polls
            polls += 1
        elif at <= seen + 0.5:
            print(f"  {at - t0:7.3f}  [{name}] {message.replace(engine_id, '<id>')}")
    print(f"  {port_line - t0:7.3f}  (observer) the port line appeared in engine.log")
    print(f"  {seen - t0:7.3f}  GET /engine/{{id}} said Running")
    print(f"  port line -> Running seen: {seen - port_line:.3f} s")
    print(f"  CPU time of this process during the start: {cpu:.3f} s ({polls} GET polls)")
    print(f"  CPU time of the engine's processes until Running: {engine_cpu:.2f} s")


async def trace_direct(workdir: Path) -> None:
    token = "trace-token"
    argv = direct_argv(workdir, token=token, app_name="trace-direct")
    log_path = workdir / "direct.log"
    t0 = time.time()
    proc = spawn_direct(argv, log_path)
    try:
        port_line = await port_line_time(log_path, deadline=t0 + 600)
        port = bound_connect_port(log_path.read_text(errors="replace"))
        probes = 0
        while True:
            probes += 1
            try:
                await connect_version(f"127.0.0.1:{port}", token=token, timeout=2)
                break
            except EngineUnreachable:
                await asyncio.sleep(0.05)
        answered = time.time()
        engine_cpu = group_cpu(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    print("direct: spark-submit of the same server, seconds after Popen")
    print(f"  {port_line - t0:7.3f}  the port line appeared in the log")
    print(f"  {answered - t0:7.3f}  AnalyzePlan answered ({probes} probe(s))")
    print(f"  port line -> answered: {answered - port_line:.3f} s")
    print(f"  CPU time of its processes until answered: {engine_cpu:.2f} s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-direct", action="store_true", help="trace Rucat's start only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rucat-trace-") as tmp:
        for _ in range(args.runs):
            await trace_rucat(Path(tmp))
            if not args.no_direct:
                await trace_direct(Path(tmp))
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
