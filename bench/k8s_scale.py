"""Scale of the Kubernetes platform: 1,000 engines on the fake API server.

Prints two figures (issue 5, item 9):

0. The platform alone: 1,000 start() calls at once (bounded concurrency) and
   the time until inspect() says Ready for all (skip with --skip-burst).
1. Time until 1,000 engines created at once are all Running, driven through
   the real monitor (reconciler) with a SQLite store, against the fake API
   server (tests/support/fake_kube.py) running as its own process with an
   automatic kubelet that marks each driver pod Ready shortly after creation.
2. CPU of this process (the monitor) at steady state with 1,000 Running
   engines, as a percentage of one core, measured with getrusage over
   --steady-secs:
   a. the monitor as configured (re-inspects Running engines every
      --resync seconds, polls the store every --check-interval seconds);
   b. the platform alone, inspecting each of the 1,000 engines every
      --check-interval seconds the way a monitor would.
   Target: under 1 % of a core for 1,000 idle engines.

The fake API server's own CPU is not counted (it is another process).

Run:  uv run python bench/k8s_scale.py [--engines 1000] [--steady-secs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rucat.config import (
    DatabaseConfig,
    KubernetesPlatformConfig,
    PlatformConfig,
    RucatConfig,
    SqliteConfig,
)
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.observation import Ready
from rucat.domain.state import EngineState
from rucat.monitor.runner import build_monitor
from rucat.platforms.kubernetes.platform import KubernetesPlatform
from rucat.store import open_store

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_fake(kubeconfig: Path, auto_kubelet: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.fake_kube",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            NAMESPACE,
            "--auto-kubelet",
            str(auto_kubelet),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url:
        raise SystemExit("the fake API server did not start")
    print(f"fake API server: {url} (pid {proc.pid}, auto-kubelet {auto_kubelet}s)")
    return proc


async def steady_cpu(seconds: float) -> tuple[float, float]:
    """CPU seconds this process used over `seconds` of wall time, and the wall time."""
    wall0, cpu0 = time.monotonic(), cpu_seconds()
    await asyncio.sleep(seconds)
    return cpu_seconds() - cpu0, time.monotonic() - wall0


async def platform_burst(args: argparse.Namespace) -> None:
    """The platform alone: start() every engine at once (bounded), until all Ready."""
    work = Path(tempfile.mkdtemp(prefix="rucat-k8s-burst-"))
    fake = start_fake(work / "kubeconfig", args.auto_kubelet)
    platform = KubernetesPlatform(
        KubernetesPlatformConfig(namespace=NAMESPACE, kubeconfig=str(work / "kubeconfig"))
    )
    try:
        request = CreateEngineRequest(name="burst", engine_type=EngineType.Spark, version="4.0.1")
        engines = [
            new_engine(request, platform="Kubernetes", now=datetime.now(UTC))
            for _ in range(args.engines)
        ]
        gate = asyncio.Semaphore(args.concurrency)

        async def start(engine: Engine) -> None:
            async with gate:
                await platform.start(engine=engine)

        t0, cpu0 = time.monotonic(), cpu_seconds()
        await asyncio.gather(*(start(e) for e in engines))
        started = time.monotonic() - t0
        waiting = list(engines)
        while waiting:
            await asyncio.sleep(0.2)
            waiting = [
                e for e in waiting if not isinstance(await platform.inspect(engine=e), Ready)
            ]
            if time.monotonic() - t0 > args.deadline:
                raise SystemExit(f"{len(waiting)} engines not Ready after {args.deadline}s")
        ready, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
        print(
            f"platform alone: {args.engines} start() calls ({args.concurrency} at a time) took "
            f"{started:.1f}s; all inspect() Ready after {ready:.1f}s; {cpu:.1f} CPU s"
        )
    finally:
        await platform.close()
        fake.terminate()
        fake.wait(timeout=30)


async def run(args: argparse.Namespace) -> None:
    if not args.skip_burst:
        await platform_burst(args)
    work = Path(tempfile.mkdtemp(prefix="rucat-k8s-scale-"))
    kubeconfig = work / "kubeconfig"
    fake = start_fake(kubeconfig, args.auto_kubelet)
    k8s = KubernetesPlatformConfig(namespace=NAMESPACE, kubeconfig=str(kubeconfig))
    config = RucatConfig(
        database=DatabaseConfig(Sqlite=SqliteConfig(path=str(work / "rucat.db"))),
        platform=PlatformConfig(Kubernetes=k8s),
        check_interval_secs=args.check_interval,
        resync_interval_secs=args.resync,
        start_timeout_secs=600,
        max_concurrency=args.concurrency,
    )
    store = await open_store(config.database)
    platform = KubernetesPlatform(k8s)
    monitor = build_monitor(config, store=store, platform=platform)
    # The burst of creations lands in the store first (as 1,000 POST /engine
    # would); then the monitor starts and finds them all due at once.
    t_add = time.monotonic()
    for i in range(args.engines):
        request = CreateEngineRequest(
            name=f"bench-{i}", engine_type=EngineType.Spark, version="4.0.1"
        )
        engine = new_engine(request, platform="Kubernetes", now=datetime.now(UTC))
        await store.add(engine=engine, actor="bench")
    added = time.monotonic() - t_add
    t0 = time.monotonic()
    running_task = asyncio.create_task(monitor.run())
    try:
        # --- 1. 1,000 engines at once, until all are Running ---------------------
        running = 0
        while running < args.engines:
            await asyncio.sleep(0.5)
            running = len(await store.list(states=[EngineState.Running]))
            if running_task.done():
                running_task.result()
            if time.monotonic() - t0 > args.deadline:
                raise SystemExit(f"only {running}/{args.engines} Running after {args.deadline}s")
        all_running = time.monotonic() - t0
        errors = await store.list(states=[s for s in EngineState if s.name.startswith("Error")])
        print(
            f"{args.engines} engines: stored in {added:.1f}s; all Running "
            f"{all_running:.1f}s after the monitor started (max_concurrency="
            f"{args.concurrency}, pods Ready {args.auto_kubelet:g}s after creation); "
            f"{len(errors)} in error states"
        )
        print(f"pod watch: {platform.watch_stats}")

        # --- 2a. the monitor at steady state -------------------------------------
        await asyncio.sleep(args.settle)
        used, wall = await steady_cpu(args.steady_secs)
        print(
            f"steady state, monitor (store poll every {args.check_interval:g}s, re-inspect "
            f"Running every {args.resync:g}s): {used:.3f} CPU s over {wall:.1f}s = "
            f"{100 * used / wall:.2f}% of one core"
        )
    finally:
        running_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running_task

    # --- 2b. the platform alone, inspecting every engine every interval -----------
    try:
        engines = await store.list(states=[EngineState.Running])
        await asyncio.sleep(args.settle)
        stop_at = time.monotonic() + args.steady_secs
        inspections = not_ready = 0
        wall0, cpu0 = time.monotonic(), cpu_seconds()
        while time.monotonic() < stop_at:
            tick = time.monotonic()
            for engine in engines:
                if not isinstance(await platform.inspect(engine=engine), Ready):
                    not_ready += 1
                inspections += 1
            await asyncio.sleep(max(0.0, args.check_interval - (time.monotonic() - tick)))
        used, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        print(
            f"steady state, platform alone ({inspections} inspections of {len(engines)} "
            f"Ready engines, one round every {args.check_interval:g}s, {not_ready} not Ready): "
            f"{used:.3f} CPU s over {wall:.1f}s = {100 * used / wall:.2f}% of one core"
        )
        print(f"pod watch: {platform.watch_stats}")
    finally:
        await platform.close()
        await store.close()
        fake.terminate()
        fake.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engines", type=int, default=1000)
    parser.add_argument("--steady-secs", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=3.0, help="wait before measuring")
    parser.add_argument("--check-interval", type=float, default=5.0)
    parser.add_argument("--resync", type=float, default=300.0, help="resync_interval_secs")
    parser.add_argument("--concurrency", type=int, default=32, help="max_concurrency")
    parser.add_argument("--auto-kubelet", type=float, default=0.5, help="pod Ready after (s)")
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument(
        "--skip-burst", action="store_true", help="skip the platform-only start burst"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
