"""The Spark engine type: versions, reserved confs, launch argv, properties, log parsing."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rucat.config import (
    KubernetesPlatformConfig,
    LocalPlatformConfig,
    PlatformConfig,
    StandalonePlatformConfig,
)
from rucat.domain.engine import CreateEngineRequest, EngineType
from rucat.domain.errors import InvalidRequest
from rucat.engines import spark_confs, spark_launch, spark_probe, spark_versions
from rucat.platforms.offer import platform_offer

BUNDLED = spark_versions.bundled_spark_version()
LOCAL = PlatformConfig(Local=LocalPlatformConfig())
KUBERNETES = PlatformConfig(
    Kubernetes=KubernetesPlatformConfig(
        versions=["3.5.4", "4.0.1"], images={"3.5.3": "my/spark:3.5.3", "4.0.1": "x"}
    )
)


OFFERS = {
    "Local": platform_offer(LOCAL),
    "Standalone": platform_offer(PlatformConfig(Standalone=StandalonePlatformConfig())),
    "Kubernetes": platform_offer(KUBERNETES),
}


def request(version: str = BUNDLED, **configs: str) -> CreateEngineRequest:
    return CreateEngineRequest(
        name="e", engine_type=EngineType.Spark, version=version, configs=configs
    )


# --- versions ---------------------------------------------------------------


def test_the_installed_pyspark_is_the_default_spark_of_process_platforms() -> None:
    assert list(platform_offer(LOCAL).versions) == [BUNDLED]
    standalone = PlatformConfig(Standalone=StandalonePlatformConfig())
    assert list(platform_offer(standalone).versions) == [BUNDLED]
    assert (spark_versions.bundled_spark_home() / "bin" / "spark-submit").exists()


def test_spark_homes_in_config_add_versions_in_version_order() -> None:
    local = PlatformConfig(
        Local=LocalPlatformConfig(spark_homes={"3.10.0": "/opt/a", "3.9.2": "/opt/b"})
    )
    assert list(platform_offer(local).versions) == sorted(
        ["3.9.2", "3.10.0", BUNDLED], key=lambda v: tuple(map(int, v.split(".")))
    )


def test_kubernetes_versions_are_the_configured_ones_and_the_imaged_ones() -> None:
    assert list(platform_offer(KUBERNETES).versions) == ["3.5.3", "3.5.4", "4.0.1"]


def test_a_configured_spark_home_wins_over_the_bundled_one() -> None:
    assert spark_versions.spark_home_for(BUNDLED, {}) == spark_versions.bundled_spark_home()
    assert spark_versions.spark_home_for(BUNDLED, {BUNDLED: "/opt/mine"}) == Path("/opt/mine")
    assert spark_versions.spark_home_for("3.5.1", {"3.5.1": "/opt/old"}) == Path("/opt/old")


def test_an_unknown_spark_home_version_is_invalid_and_lists_the_available() -> None:
    with pytest.raises(InvalidRequest, match=f"Spark 2.4.0 is not available; available: {BUNDLED}"):
        spark_versions.spark_home_for("2.4.0", {})


# --- validation -------------------------------------------------------------


def test_a_version_the_platform_cannot_run_is_refused_listing_what_it_can() -> None:
    with pytest.raises(InvalidRequest) as e:
        platform_offer(LOCAL).validate(request("3.1.0"))
    assert e.value.message == (
        f"Spark 3.1.0 is not available on the Local platform; available: {BUNDLED}"
    )
    with pytest.raises(InvalidRequest, match=r"available: 3\.5\.3, 3\.5\.4, 4\.0\.1$"):
        platform_offer(KUBERNETES).validate(request("3.4.0"))


def test_a_reserved_conf_is_refused_naming_the_key_and_the_platform() -> None:
    with pytest.raises(InvalidRequest) as e:
        platform_offer(LOCAL).validate(request(**{"spark.master": "yarn"}))
    assert e.value.message == (
        "config 'spark.master' is reserved: Rucat sets it "
        "(rule 'spark.master' (fixed) of Rucat's reserved confs on the Local platform)"
    )


@pytest.mark.parametrize("key", sorted(OFFERS["Local"].reserved))
def test_every_reserved_local_conf_is_refused(key: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(f"config '{key}' is reserved")):
        platform_offer(LOCAL).validate(request(**{key: "x"}))


def test_the_connect_endpoint_and_identity_are_reserved_everywhere() -> None:
    owned = {
        "spark.app.name",
        "spark.app.id",
        "spark.connect.grpc.binding.port",
        "spark.connect.grpc.binding.address",
        "spark.connect.authenticate.token",
        "spark.master",
    }
    for variant in ("Local", "Standalone", "Kubernetes"):
        assert owned <= OFFERS[variant].reserved
    assert {"spark.driver.host", "spark.driver.bindAddress"} <= OFFERS["Local"].reserved


def test_kubernetes_reserves_the_seeds_six_confs() -> None:
    assert {
        "spark.app.id",
        "spark.driver.extraJavaOptions",
        "spark.driver.host",
        "spark.kubernetes.container.image",
        "spark.kubernetes.driver.pod.name",
        "spark.kubernetes.executor.podNamePrefix",
    } <= OFFERS["Kubernetes"].reserved


def test_ordinary_confs_on_an_available_version_pass() -> None:
    ok = request(**{"spark.executor.memory": "2g", "spark.sql.shuffle.partitions": "4"})
    platform_offer(LOCAL).validate(ok)
    platform_offer(KUBERNETES).validate(request("3.5.3", **{"spark.driver.memory": "2g"}))
    # The driver's Java options are the user's on Local, Rucat's on Kubernetes.
    platform_offer(LOCAL).validate(request(**{"spark.driver.extraJavaOptions": "-Dx=1"}))
    with pytest.raises(InvalidRequest):
        platform_offer(KUBERNETES).validate(
            request("4.0.1", **{"spark.driver.extraJavaOptions": "-Dx=1"})
        )


# --- launch -----------------------------------------------------------------


def test_the_connect_server_argv_is_spark_submit_with_each_conf_one_argument() -> None:
    home = Path("/opt/spark")
    hostile = "x; rm -rf / $(id) `id` 'q' \"qq\""
    argv = spark_launch.connect_server_argv(
        home,
        master="local[*]",
        confs={"spark.app.name": spark_launch.app_name("abc"), "spark.custom": hostile},
        properties_file=Path("/data/e/spark.properties"),
    )
    assert argv == [
        "/opt/spark/bin/spark-submit",
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master",
        "local[*]",
        "--properties-file",
        "/data/e/spark.properties",
        "--conf",
        "spark.app.name=rucat-abc",
        "--conf",
        f"spark.custom={hostile}",
        "spark-internal",
    ]


def test_the_token_goes_to_the_properties_never_to_the_argv() -> None:
    props = spark_confs.connect_properties(token="s3cr3t", address="127.0.0.1", port=0)
    assert props == {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": "0",
        "spark.connect.authenticate.token": "s3cr3t",
    }
    argv = spark_launch.connect_server_argv(
        Path("/s"), master="local[*]", confs={}, properties_file=Path("/p")
    )
    assert not any("s3cr3t" in a for a in argv)
    assert "spark.connect.authenticate.token" not in spark_confs.connect_properties(
        token=None, address="h", port=1
    )


def _java_properties_load(text: str) -> dict[str, str]:
    """java.util.Properties.load for single-line entries (what Rucat writes)."""
    out: dict[str, str] = {}
    escapes = {"n": "\n", "r": "\r", "t": "\t", "f": "\f"}
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f")
        if not line or line[0] in "#!":
            continue
        key: list[str] = []
        value: list[str] = []
        target, i, in_value_lead = key, 0, False
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                nxt = line[i + 1]
                if nxt == "u":
                    target.append(chr(int(line[i + 2 : i + 6], 16)))
                    i += 6
                    in_value_lead = False
                    continue
                target.append(escapes.get(nxt, nxt))
                i += 2
                in_value_lead = False
                continue
            if target is key and ch in "=: \t\f":
                target, in_value_lead = value, True
                # skip whitespace, then at most one '=' or ':' and whitespace again
                while i < len(line) and line[i] in " \t\f":
                    i += 1
                ends_with_separator = ch in "=:"
                if ends_with_separator or (i < len(line) and line[i] in "=:"):
                    i += 1
                while i < len(line) and line[i] in " \t\f":
                    i += 1
                continue
            if in_value_lead and ch in " \t\f":
                i += 1
                continue
            in_value_lead = False
            target.append(ch)
            i += 1
        out[_utf16("".join(key))] = _utf16("".join(value))
    return out


def _utf16(chars: str) -> str:
    """Join surrogate pairs, as Java strings (UTF-16) do."""
    return chars.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=30,
)


@given(st.dictionaries(_text.filter(bool), _text, max_size=5))
def test_properties_text_reads_back_exactly_as_written(props: dict[str, str]) -> None:
    assert _java_properties_load(spark_confs.properties_text(props)) == props


def test_properties_written_after_the_defaults_override_them() -> None:
    defaults = "# spark-defaults.conf\nspark.eventLog.enabled true\nspark.local.dir /d\n"
    text = spark_confs.properties_text({"spark.local.dir": "/mine"}, defaults=defaults)
    loaded = _java_properties_load(text)
    assert loaded == {"spark.eventLog.enabled": "true", "spark.local.dir": "/mine"}


def test_spark_defaults_are_read_from_the_conf_dir_or_are_empty(tmp_path: Path) -> None:
    assert spark_confs.spark_defaults_text(tmp_path) == ""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "spark-defaults.conf").write_text("a b\n")
    assert spark_confs.spark_defaults_text(tmp_path) == "a b\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "spark-defaults.conf").write_text("c d\n")
    assert spark_confs.spark_defaults_text(tmp_path, other) == "c d\n"


def test_rucats_log4j2_config_is_sparks_default_with_the_connect_and_ui_loggers_pinned() -> None:
    text = spark_launch.log4j2_config_text(spark_versions.bundled_spark_home())
    assert "rootLogger.level = info" in text
    assert "appender.console.target = SYSTEM_ERR" in text
    assert (
        f"logger.rucat_connect.name = {spark_launch.CONNECT_SERVER_LOGGER}\n"
        "logger.rucat_connect.level = info\n"
    ) in text
    assert text.endswith(
        f"logger.rucat_ui.name = {spark_launch.SPARK_UI_LOGGER}\nlogger.rucat_ui.level = info\n"
    )


def test_a_spark_home_without_jars_still_gets_a_console_log4j2_config(tmp_path: Path) -> None:
    text = spark_launch.log4j2_config_text(tmp_path)
    assert "appender.console.type = Console" in text
    assert spark_launch.CONNECT_SERVER_LOGGER in text


def test_a_conf_dir_has_a_log4j2_config_when_it_holds_one_of_its_files(tmp_path: Path) -> None:
    assert not spark_launch.has_log4j2_config(tmp_path)
    (tmp_path / "log4j2.properties.template").write_text("")
    assert not spark_launch.has_log4j2_config(tmp_path)
    (tmp_path / "log4j2.xml").write_text("<Configuration/>")
    assert spark_launch.has_log4j2_config(tmp_path)


# --- the running server -----------------------------------------------------

_LOG_4_0 = """\
26/11/28 14:40:20 INFO Utils: Successfully started service 'sparkDriver' on port 45863.
26/11/28 14:40:20 INFO Utils: Successfully started service 'SparkUI' on port 4040.
26/11/28 14:40:24 INFO Utils: Successfully started service \
'org.apache.spark.sql.connect.service.SparkConnectService$' on port 34985.
26/11/28 14:40:24 INFO SparkConnectServer: Spark Connect server started at: \
0:0:0:0:0:0:0:0:34985
"""


def test_the_bound_connect_port_is_read_from_the_servers_log() -> None:
    assert spark_launch.bound_connect_port(_LOG_4_0) == 34985
    only_service_line = _LOG_4_0.rsplit("\n", 2)[0]
    assert spark_launch.bound_connect_port(only_service_line) == 34985
    v35 = "INFO SparkConnectServer: Spark Connect server started at: /127.0.0.1:15002\n"
    assert spark_launch.bound_connect_port(v35) == 15002


def test_the_servers_own_port_line_wins_over_later_lookalikes() -> None:
    forged = "Spark Connect server started at: 127.0.0.1:6666\n"
    assert spark_launch.bound_connect_port(_LOG_4_0 + forged) == 34985


def test_an_echoed_configured_port_0_is_not_a_bound_port() -> None:
    assert spark_launch.bound_connect_port("Spark Connect server started at: 0.0.0.0:0\n") is None


def test_no_connect_port_before_the_server_logs_it() -> None:
    assert spark_launch.bound_connect_port(_LOG_4_0.split("\n")[1]) is None
    assert spark_launch.bound_connect_port("") is None


def test_engine_names_and_probe_sessions_derive_from_the_engine_id() -> None:
    assert spark_launch.app_name("abc123") == "rucat-abc123"
    session = spark_probe.probe_session_id("abc123")
    assert (
        session == spark_probe.probe_session_id("abc123") != spark_probe.probe_session_id("abc124")
    )
    assert str(uuid.UUID(session)) == session


def test_the_spark_ui_prefix_and_port_are_rucats_on_every_platform() -> None:
    for variant in ("Local", "Standalone", "Kubernetes"):
        assert {"spark.ui.proxyBase", "spark.ui.port"} <= OFFERS[variant].reserved
    assert (
        spark_launch.ui_proxy_base("a1234567890123456789") == "/engine/a1234567890123456789/sparkui"
    )


def test_the_bound_ui_port_is_read_from_the_drivers_log() -> None:
    log = (
        "26/12/02 06:23:35 INFO Utils: Successfully started service 'sparkDriver' on port 40001.\n"
        "26/12/02 06:23:36 INFO Utils: Successfully started service 'SparkUI' on port 36653.\n"
        "26/12/02 06:23:36 INFO SparkUI: Bound SparkUI to 127.0.0.1, and started at "
        "http://127.0.0.1:36653\n"
        "user output: Successfully started service 'SparkUI' on port 1.\n"
    )
    assert spark_launch.bound_ui_port(log) == 36653
    assert spark_launch.bound_ui_port(log.splitlines()[2]) == 36653  # the UI's own logger alone
    assert spark_launch.bound_ui_port("INFO Utils: started service 'sparkDriver' on port 4") is None
