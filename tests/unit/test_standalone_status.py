"""A standalone engine's observation joins its driver's and the master's, with the reason.

The master documents below are shaped as a Spark 4.0.1 master's ``/json/``
recorded on a real cluster (trimmed to the fields Rucat reads, plus one
unknown field to show it is ignored).
"""

from __future__ import annotations

from typing import Any

import pytest

from rucat.domain.observation import Absent, Failed, Observation, Pending, Ready, Unknown
from rucat.platforms.standalone.master import (
    Application,
    MasterView,
    parse_master,
    parse_version,
)
from rucat.platforms.standalone.status import (
    MasterTrouble,
    explain_driver_failure,
    main_exception,
    observe,
    version_mismatch,
)

APP = "rucat-abc"
WEB = "http://m:8080"
EP = "sc://127.0.0.1:40001"


def app(
    state: str = "RUNNING",
    *,
    id_: str = "app-2-0001",
    name: str = APP,
    cores: int = 1,
    start: int = 2,
) -> dict[str, Any]:
    return {
        "id": id_,
        "starttime": start,
        "name": name,
        "cores": cores,
        "user": "root",
        "memoryperexecutor": 512,
        "state": state,
        "duration": 25876,
    }


def master_json(
    *, status: str = "ALIVE", active: list[Any] | None = None, completed: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "url": "spark://m:7077",
        "workers": [
            {
                "id": "worker-1",
                "host": "127.0.0.1",
                "port": 37457,
                "webuiaddress": "http://127.0.0.1:40967",
                "cores": 1,
                "coresused": 1,
                "state": "ALIVE",
                "lastheartbeat": 1796170039994,
            }
        ],
        "aliveworkers": 1,
        "activeapps": active or [],
        "completedapps": completed or [],
        "status": status,
    }


def view(**kwargs: Any) -> MasterView:
    return parse_master(master_json(**kwargs))


def test_the_masters_json_parses_into_applications_and_workers() -> None:
    seen = view(active=[app()], completed=[app("FINISHED", id_="app-1-0000", start=1)])
    assert seen.status == "ALIVE"
    assert seen.active == (Application("app-2-0001", APP, "RUNNING", 1, 2),)
    assert seen.completed[0].state == "FINISHED"
    assert seen.workers[0].web_url == "http://127.0.0.1:40967"
    assert seen.workers[0].cores_used == 1


@pytest.mark.parametrize("document", [[], "x", {"workers": []}], ids=["list", "text", "no-status"])
def test_something_else_than_a_masters_json_is_refused(document: Any) -> None:
    with pytest.raises(ValueError, match="not a Spark master"):
        parse_master(document)


def test_the_newest_active_application_of_a_name_is_the_engines() -> None:
    seen = view(active=[app(id_="old", start=1), app(id_="new", start=5), app(name="other")])
    found = seen.active_app(APP)
    assert found is not None and found.id == "new"
    assert seen.active_app("rucat-nobody") is None


def test_the_masters_version_is_read_from_its_page_header() -> None:
    html = '<span class="version" style="margin-right: 15px;">4.0.1</span>'
    assert parse_version(f"<html><body>{html}</body></html>") == "4.0.1"
    assert parse_version("<html>no version here</html>") is None


LOST = MasterTrouble("refuses connections (All connection attempts failed)", lost=True)
SLOW = MasterTrouble("did not answer within 5.0s", lost=False)
AT = f"the standalone master at {WEB}"

CASES: list[tuple[str, Observation, MasterView | MasterTrouble, Observation]] = [
    ("no-driver-is-absent-whatever-the-master", Absent(), LOST, Absent()),
    (
        "a-dead-driver-says-why-itself",
        Failed("exited with status 1"),
        view(),
        Failed("exited with status 1"),
    ),
    (
        "an-unknown-driver-stays-unknown",
        Unknown("unreadable run.json"),
        view(),
        Unknown("unreadable run.json"),
    ),
    ("answering-and-listed-is-ready", Ready(EP), view(active=[app()]), Ready(EP)),
    (
        "answering-and-waiting-for-cores-is-ready",
        Ready(EP),
        view(active=[app("WAITING", cores=0)]),
        Ready(EP),
    ),
    (
        "starting-and-not-registered-is-pending",
        Pending("no port yet"),
        view(),
        Pending("no port yet; the driver has not registered with the master yet"),
    ),
    (
        "starting-and-registered-says-the-application",
        Pending(""),
        view(active=[app()]),
        Pending("application app-2-0001 is RUNNING on the master with 1 cores granted"),
    ),
    (
        "a-lost-master-fails-a-running-engine",
        Ready(EP),
        LOST,
        Failed(f"{AT} {LOST.reason}"),
    ),
    (
        "a-lost-master-fails-a-starting-engine",
        Pending(""),
        LOST,
        Failed(f"{AT} {LOST.reason}"),
    ),
    ("a-slow-master-is-unknown", Ready(EP), SLOW, Unknown(f"{AT} {SLOW.reason}")),
    (
        "a-standby-master-is-unknown",
        Ready(EP),
        view(status="STANDBY"),
        Unknown(f"{AT} is STANDBY, not ALIVE"),
    ),
    (
        "answering-but-ended-on-the-master-fails-naming-the-application",
        Ready(EP),
        view(completed=[app("KILLED")]),
        Failed(
            f"the Spark Connect server answers but the standalone master at {WEB} lists no "
            f"active application {APP} (its last one, app-2-0001, is KILLED): the master "
            "ended or lost it"
        ),
    ),
    (
        "answering-but-unknown-to-the-master-fails",
        Ready(EP),
        view(active=[app(name="rucat-other")]),
        Failed(
            f"the Spark Connect server answers but the standalone master at {WEB} lists no "
            f"active application {APP}: the master ended or lost it"
        ),
    ),
]


@pytest.mark.parametrize(
    ("driver", "master", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_engine_is_what_driver_and_master_say_together(
    driver: Observation, master: MasterView | MasterTrouble, expected: Observation
) -> None:
    assert observe(driver, master, app_name=APP, master_web_url=WEB) == expected


@pytest.mark.parametrize(
    ("engine", "master", "mismatch"),
    [
        ("4.0.1", "4.0.1", False),
        ("4.0.1", "4.0.0", False),
        ("3.5.3", "4.0.1", True),
        ("4.1.0", "4.0.1", True),
        ("4.0.1", None, False),
    ],
    ids=["same", "same-feature-release", "older-major", "newer-minor", "master-shows-none"],
)
def test_a_driver_must_run_the_masters_feature_release(
    engine: str, master: str | None, mismatch: bool
) -> None:
    assert version_mismatch(engine, master) is mismatch


def test_a_serialisation_mismatch_in_the_driver_log_names_both_versions() -> None:
    reason = (
        "the Spark Connect server exited with status 1; last log lines:\n"
        "java.io.InvalidClassException: org.apache.spark.deploy.ApplicationDescription; "
        "local class incompatible: stream classdesc serialVersionUID = 1, local class ..."
    )
    explained = explain_driver_failure(
        reason, engine_version="3.5.3", master_url="spark://m:7077", master_version="4.0.1"
    )
    assert explained.startswith(
        "the driver runs Spark 3.5.3 and the standalone master at spark://m:7077 runs "
        "Spark 4.0.1: their messages are incompatible; "
    )
    assert explained.endswith(reason)


@pytest.mark.parametrize(
    ("engine", "master", "hint"),
    [
        ("4.0.1", "4.0.1", "(is it up and reachable from this host?)"),
        ("4.0.1", None, "(is it up and reachable from this host?)"),
        ("3.5.3", "4.0.1", "(the driver runs Spark 3.5.3 and the master runs Spark 4.0.1)"),
    ],
    ids=["same-version", "master-unknown", "other-version"],
)
def test_a_driver_that_could_not_register_says_so_first(
    engine: str, master: str | None, hint: str
) -> None:
    reason = "the Spark Connect server exited with status 1; last log lines:\n" + (
        "ERROR StandaloneSchedulerBackend: Application has been killed. "
        "Reason: All masters are unresponsive! Giving up."
    )
    explained = explain_driver_failure(
        reason, engine_version=engine, master_url="spark://m:7077", master_version=master
    )
    assert explained == (
        f"the driver could not register with the standalone master at spark://m:7077 {hint}; "
        f"{reason}"
    )


def test_other_driver_failures_are_left_as_they_are() -> None:
    reason = "the Spark Connect server exited with status 1; Invalid maximum heap size: -Xmx1z"
    assert (
        explain_driver_failure(
            reason, engine_version="4.0.1", master_url="spark://m:7077", master_version="4.0.1"
        )
        == reason
    )


CONF_FAILURE_LOG = """\
26/12/02 00:33:50 ERROR SparkContext: Error initializing SparkContext.
Exception in thread "main" org.apache.spark.SparkIllegalArgumentException: \
[INVALID_SPARK_CONFIG.INVALID_EXECUTOR_HEARTBEAT_INTERVAL] Invalid Spark config: The value of \
spark.network.timeout=1000ms must be greater than the value of \
spark.executor.heartbeatInterval=10000ms. SQLSTATE: 42616
\tat org.apache.spark.SparkException$.require(SparkException.scala:121)
\tat org.apache.spark.deploy.SparkSubmit.main(SparkSubmit.scala)
26/12/02 00:33:50 INFO ShutdownHookManager: Shutdown hook called
"""


def test_the_exception_that_ended_the_driver_is_read_from_its_log() -> None:
    found = main_exception(CONF_FAILURE_LOG)
    assert found is not None
    assert found.startswith("org.apache.spark.SparkIllegalArgumentException: ")
    assert found.endswith("spark.executor.heartbeatInterval=10000ms. SQLSTATE: 42616")
    assert main_exception("26/12/02 INFO all is well") is None


def test_a_driver_that_died_of_an_exception_says_it_first() -> None:
    reason = "the Spark Connect server exited with status 1; last log lines:\n\tat Main.main"
    explained = explain_driver_failure(
        reason,
        engine_version="4.0.1",
        master_url="spark://m:7077",
        master_version="4.0.1",
        log_text=CONF_FAILURE_LOG,
    )
    assert explained == f"the driver failed: {main_exception(CONF_FAILURE_LOG)}; {reason}"
