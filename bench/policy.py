"""Benchmark (not a test): the CPU cost of the engine conf policy and of redaction.

Prints, each as microseconds per call and as a ratio to a baseline measured in
the same run:

* checking 20 ordinary confs against the Kubernetes default policy (about
  70 glob rules, first match decides), against the old check (a set lookup
  per key among the reserved confs);
* building an engine's info with 20 confs, redacted (regex per key and
  value), against copying the dict;
* redacting a 1 MiB Spark log (with Spark's usual class names, a few secret
  lines), against one `str.replace` over it.

    uv run python bench/policy.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from rucat.config import KubernetesPlatformConfig, PlatformConfig
from rucat.domain.redaction import redact_configs, redact_text
from rucat.platforms.offer import platform_offer

CONFS = {
    **{f"spark.sql.conf{i}": "true" for i in range(12)},
    "spark.executor.memory": "8g",
    "spark.executor.cores": "4",
    "spark.executor.instances": "20",
    "spark.driver.memory": "4g",
    "spark.dynamicAllocation.enabled": "true",
    "spark.hadoop.fs.s3a.endpoint": "http://minio:9000",
    "spark.hadoop.fs.s3a.access.key": "AKIAIOSFODNN7EXAMPLE",
    "spark.hadoop.fs.s3a.secret.key": "wJalrXUtnFEMI-K7MDENG",
}
_LINE = (
    "26/12/02 01:00:00 INFO HadoopDelegationTokenManager: Attempting to load user's ticket "
    "cache, stage 3 task 17 finished in 12 ms on 10.0.0.7 (executor 2) (17/200)\n"
)
LOG = _LINE * ((1 << 20) // len(_LINE)) + "spark.hadoop.fs.s3a.secret.key=wJalrXUtnFEMI-K7MDENG\n"


def per_call(fn: Callable[[], object], rounds: int) -> float:
    """Best of three runs, in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    offer = platform_offer(PlatformConfig(Kubernetes=KubernetesPlatformConfig()))
    policy = offer.policy()
    reserved = offer.reserved

    def old_check() -> object:
        return [key for key in sorted(CONFS) if key in reserved]

    rows = [
        (
            "policy check, 20 confs",
            per_call(lambda: policy.settled(CONFS), rounds),
            per_call(old_check, rounds),
        ),
        (
            "engine info configs, 20 confs",
            per_call(lambda: redact_configs(CONFS), rounds),
            per_call(lambda: dict(CONFS), rounds),
        ),
        (
            "redact a 1 MiB log",
            per_call(lambda: redact_text(LOG, ("wJalrXUtnFEMI-K7MDENG",)), max(1, rounds // 200)),
            per_call(lambda: LOG.replace("wJalrXUtnFEMI-K7MDENG", "x"), max(1, rounds // 200)),
        ),
    ]
    print(f"{'what':32} {'µs/call':>10} {'baseline µs':>12} {'ratio':>8}")
    for what, cost, base in rows:
        print(f"{what:32} {cost:10.1f} {base:12.1f} {cost / base:8.1f}")


if __name__ == "__main__":
    main()
