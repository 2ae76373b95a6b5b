"""What a standalone engine is, from its driver's state and the master's (pure).

An engine on a standalone cluster is Running only when both sides agree: its
driver's Spark Connect server answers (the Local platform's observation of
the driver process) and the master lists the engine's application as active.
A client-mode driver whose master went away does not die ("waiting for
reconnection"), so the master's side is what fails such an engine.

The decisions are tables of cases (tests/unit/test_standalone_status.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rucat.domain.observation import Absent, Failed, Observation, Pending, Unknown
from rucat.platforms.standalone.master import Application, MasterView


@dataclass(frozen=True)
class MasterTrouble:
    """The master did not answer. `lost`: long enough, or refusing, to fail engines."""

    reason: str
    lost: bool


def observe(
    driver: Observation,
    master: MasterView | MasterTrouble,
    *,
    app_name: str,
    master_web_url: str,
) -> Observation:
    """The engine's observation from its driver's and the master's."""
    if isinstance(driver, Absent | Failed | Unknown):
        return driver  # nothing runs, or the driver's own failure says more
    where = f"the standalone master at {master_web_url}"
    if isinstance(master, MasterTrouble):
        if master.lost:
            return Failed(f"{where} {master.reason}")
        return Unknown(f"{where} {master.reason}")
    if master.status != "ALIVE":
        return Unknown(f"{where} is {master.status}, not ALIVE")
    app = master.active_app(app_name)
    if isinstance(driver, Pending):
        if app is None:
            waiting = "the driver has not registered with the master yet"
            return Pending(_join(driver.detail, waiting))
        return Pending(_join(driver.detail, _describe(app)))
    if app is None:
        last = master.last_completed(app_name)
        ended = f" (its last one, {last.id}, is {last.state})" if last else ""
        return Failed(
            f"the Spark Connect server answers but {where} lists no active application "
            f"{app_name}{ended}: the master ended or lost it"
        )
    return driver


def _describe(app: Application) -> str:
    return f"application {app.id} is {app.state} on the master with {app.cores} cores granted"


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second


def version_mismatch(engine_version: str, master_version: str | None) -> bool:
    """Whether a driver of `engine_version` cannot work with the master's version.

    Standalone RPC messages are Java-serialised classes of Spark's deploy
    package, compatible within a feature release: major.minor must match.
    An unknown master version (no version on its page) is not a mismatch.
    """
    if master_version is None:
        return False
    return engine_version.split(".")[:2] != master_version.split(".")[:2]


#: Driver log lines that mean the master would not (or could not) take the driver.
_REGISTRATION_FAILURES = (
    "All masters are unresponsive",
    "Failed to connect to master",
)
_SERIALIZATION_MISMATCH = "local class incompatible"
#: The JVM's line for an exception that ended the driver's main thread.
_MAIN_EXCEPTION = re.compile(r'^Exception in thread "main" (.+)$', re.MULTILINE)


def main_exception(log_text: str) -> str | None:
    """The last exception that ended a driver's main thread, from its log; None if none.

    A driver that fails in SparkContext's start-up (a bad conf) logs it first and
    then a long stack trace, so the last log lines of a failure reason miss it.
    """
    found = _MAIN_EXCEPTION.findall(log_text)
    return found[-1].strip() if found else None


def explain_driver_failure(
    reason: str,
    *,
    engine_version: str,
    master_url: str,
    master_version: str | None,
    log_text: str = "",
) -> str:
    """A driver's failure reason (which quotes its last log lines), with what its
    log says in front: about the master (a version mismatch names both versions),
    else the exception that ended the driver."""
    theirs = f"Spark {master_version}" if master_version else "an unknown Spark version"
    if _SERIALIZATION_MISMATCH in reason:
        return (
            f"the driver runs Spark {engine_version} and the standalone master at "
            f"{master_url} runs {theirs}: their messages are incompatible; {reason}"
        )
    if any(line in reason for line in _REGISTRATION_FAILURES):
        mismatch = version_mismatch(engine_version, master_version)
        hint = (
            f"the driver runs Spark {engine_version} and the master runs {theirs}"
            if mismatch
            else "is it up and reachable from this host?"
        )
        return (
            f"the driver could not register with the standalone master at {master_url} "
            f"({hint}); {reason}"
        )
    cause = main_exception(log_text)
    if cause is not None and cause not in reason:
        return f"the driver failed: {cause}; {reason}"
    return reason
