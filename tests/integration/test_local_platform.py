"""The Local platform's own promises, beyond the shared platform contract.

Most tests run a stand-in `spark-submit` (a small Python script named as a
SPARK_HOME in config) so they can make an engine exit, ignore SIGTERM or
lose its supervisor in milliseconds; these are real processes, signals and
files. One test starts a real Spark Connect server to check that its token
stays out of every command line and environment, and what a `kill -9` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rucat.config import LocalPlatformConfig
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import ConfigError, EngineRefused, EngineUnreachable
from rucat.engines import spark_launch, spark_probe, spark_versions
from rucat.platforms import Absent, Failed, Pending, Ready, files
from rucat.platforms.local import process as proc
from rucat.platforms.local import watcher as local_watcher
from rucat.platforms.local.platform import LocalPlatform
from tests.support import eventually, require_java
from tests.support.fake_spark import FAKE_VERSION, make_fake_spark_home
from tests.support.platforms import is_process, local_client_url, local_server_pids
from tests.support.proc import pids_where


@pytest.fixture
def fake_home(tmp_path: Path) -> Path:
    return make_fake_spark_home(tmp_path)


def make_platform(data_dir: Path, fake_home: Path, grace: float = 5.0) -> LocalPlatform:
    config = LocalPlatformConfig(spark_homes={FAKE_VERSION: str(fake_home)}, stop_grace_secs=grace)
    return LocalPlatform(config, data_dir=data_dir)


def engine(version: str = FAKE_VERSION, **configs: str) -> Engine:
    request = CreateEngineRequest(
        name="t", engine_type=EngineType.Spark, version=version, configs=configs
    )
    return new_engine(request, platform="Local", now=datetime.now(UTC))


def run_file(data_dir: Path, e: Engine) -> dict[str, int]:
    data: dict[str, int] = json.loads((data_dir / "engines" / e.id / "run.json").read_text())
    return data


def group_of(data_dir: Path, e: Engine) -> list[proc.ProcStat]:
    run = run_file(data_dir, e)
    return proc.group_members(run["pid"], run["start_time"])


def processes_naming(e: Engine, *, supervisors: bool = False) -> list[int]:
    """Live engine processes (or their supervisors) whose command line carries the
    engine's app name."""
    marker = f"spark.app.name={spark_launch.app_name(e.id)}".encode()
    return pids_where(
        lambda args: (
            marker in args and any(a.endswith(b"_supervise.py") for a in args) == supervisors
        )
    )


def groups_naming(e: Engine, *, supervisors: bool = False) -> set[int]:
    """Process groups of `processes_naming`: a child between fork and exec still
    shows its parent's command line, but never has a group of its own."""
    stats = (proc.read_stat(pid) for pid in processes_naming(e, supervisors=supervisors))
    return {s.pgrp for s in stats if s is not None}


def described(pids: list[int]) -> str:
    """pid, group, state and argv of each process, for a failure message."""
    lines = []
    for pid in pids:
        stat = proc.read_stat(pid)
        with contextlib.suppress(OSError):
            argv = proc_file(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace")
            lines.append(f"{pid} {stat}: {argv[:300]}")
    return "\n".join(lines)


def proc_file(pid: int, what: str) -> bytes:
    return Path(f"/proc/{pid}/{what}").read_bytes()


async def running(e: Engine) -> list[int]:
    return processes_naming(e)


async def no_supervisor(e: Engine) -> bool:
    return not processes_naming(e, supervisors=True)


async def wait_for(platform: LocalPlatform, e: Engine, kind: type, timeout: float = 30.0) -> object:
    async def probe() -> object:
        seen = await platform.inspect(engine=e)
        return seen if isinstance(seen, kind) else None

    return await eventually(probe, timeout=timeout, what=kind.__name__)


# --- check ------------------------------------------------------------------


async def test_check_names_a_java_home_without_java(tmp_path: Path) -> None:
    platform = LocalPlatform(LocalPlatformConfig(java_home=str(tmp_path)), data_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"platform\.Local\.java_home: .* has no bin/java"):
        await platform.check()


async def test_check_says_how_to_get_java_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    platform = LocalPlatform(LocalPlatformConfig(), data_dir=tmp_path)
    with pytest.raises(ConfigError) as e:
        await platform.check()
    assert e.value.message == (
        "no Java runtime found: install openjdk-17-jre-headless or set platform.Local.java_home"
    )


async def test_check_names_a_java_home_from_the_environment_without_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    platform = LocalPlatform(LocalPlatformConfig(), data_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^JAVA_HOME=.*no-jdk has no bin/java"):
        await platform.check()


async def test_check_names_a_spark_home_without_spark_submit(tmp_path: Path) -> None:
    require_java()
    config = LocalPlatformConfig(spark_homes={"3.5.1": str(tmp_path / "nowhere")})
    platform = LocalPlatform(config, data_dir=tmp_path)
    with pytest.raises(
        ConfigError, match=r"spark_homes\.3\.5\.1: .*nowhere has no bin/spark-submit"
    ):
        await platform.check()


async def test_check_passes_with_java_and_spark_homes(tmp_path: Path, fake_home: Path) -> None:
    require_java()
    await make_platform(tmp_path, fake_home).check()


# --- the process group ------------------------------------------------------


async def test_an_engine_is_ready_once_its_connect_server_answers_with_the_engines_token(
    tmp_path: Path, fake_home: Path
) -> None:
    platform, e = make_platform(tmp_path, fake_home), engine()
    try:
        await platform.start(engine=e)
        ready = await wait_for(platform, e, Ready)
        assert isinstance(ready, Ready)
        target = ready.endpoint.removeprefix("sc://")
        assert e.connect_token is not None
        version = await spark_probe.connect_version(target, token=e.connect_token, timeout=10)
        assert version == "9.9.9"
        for wrong in ("not-the-token", None):  # as Spark's server: refused, not unavailable
            with pytest.raises(EngineRefused, match="Invalid authentication token"):
                await spark_probe.connect_version(target, token=wrong, timeout=10)
    finally:
        await platform.forget(engine=e)
    assert processes_naming(e) == []


async def test_an_open_port_without_spark_connect_is_pending_not_ready(
    tmp_path: Path, fake_home: Path
) -> None:
    platform, e = make_platform(tmp_path, fake_home), engine(**{"rucat.test.mode": "tcp"})
    try:
        await platform.start(engine=e)

        async def port_found() -> Pending | None:
            seen = await platform.inspect(engine=e)
            assert isinstance(seen, Pending), seen
            return seen if "does not answer" in seen.detail else None

        await eventually(port_found, timeout=30, what="the logged port")
        port = json.loads((tmp_path / "engines" / e.id / "run.json").read_text())["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the port is open, and still the engine is not Ready
        assert isinstance(await platform.inspect(engine=e), Pending)
    finally:
        await platform.forget(engine=e)


async def test_a_relative_data_dir_works_from_the_engines_own_folder(
    tmp_path: Path, fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    platform = make_platform(Path("relative-data"), fake_home)
    e = engine(**{"rucat.test.mode": "exit:4"})
    try:
        await platform.start(engine=e)
        failed = await wait_for(platform, e, Failed)
        assert isinstance(failed, Failed)
        assert "exited with status 4" in failed.reason  # the exit file was found
    finally:
        await platform.forget(engine=e)
    assert list((tmp_path / "relative-data" / "engines").iterdir()) == []


async def test_an_engine_that_exits_is_failed_with_its_status_and_last_log_lines(
    tmp_path: Path, fake_home: Path
) -> None:
    platform, e = make_platform(tmp_path, fake_home), engine(**{"rucat.test.mode": "exit:3"})
    try:
        await platform.start(engine=e)
        failed = await wait_for(platform, e, Failed)
        assert isinstance(failed, Failed)
        assert failed.reason.startswith("the Spark Connect server exited with status 3")
        assert "fake: giving up" in failed.reason
        assert "fake: giving up" in await platform.logs(engine=e, tail=5)
    finally:
        await platform.forget(engine=e)


async def test_stop_kills_the_whole_group_when_it_ignores_sigterm(
    tmp_path: Path, fake_home: Path
) -> None:
    platform = make_platform(tmp_path, fake_home, grace=0.5)
    e = engine(**{"rucat.test.mode": "stubborn"})
    await platform.start(engine=e)
    await wait_for(platform, e, Pending)

    async def with_grandchild() -> list[proc.ProcStat] | None:
        members = group_of(tmp_path, e)
        return members if len(members) >= 3 else None  # supervisor, script, its child

    members = await eventually(with_grandchild, timeout=30, what="the fake's child")
    await platform.stop(engine=e)
    assert all(not is_process(m.pid, m.start_time) for m in members)
    assert await platform.inspect(engine=e) == Absent()
    await platform.forget(engine=e)


async def test_a_reused_pid_is_never_taken_for_the_engine(tmp_path: Path, fake_home: Path) -> None:
    platform, e = make_platform(tmp_path, fake_home), engine()
    folder = tmp_path / "engines" / e.id
    folder.mkdir(parents=True)
    me = proc.read_stat(os.getpid())
    assert me is not None
    # A run.json naming a live process (this test) that started at another time.
    stale = {
        "pid": os.getpid(),
        "start_time": me.start_time - 1,
        "created_at": "2026-01-01T00:00:00+00:00",
        "log_offset": 0,
        "host": "127.0.0.1",
        "port": None,
    }
    (folder / "run.json").write_text(json.dumps(stale))
    assert isinstance(await platform.inspect(engine=e), Failed)
    try:
        await platform.start(engine=e)  # not adopted: a new engine starts
        assert run_file(tmp_path, e)["pid"] != os.getpid()
        assert len(groups_naming(e, supervisors=True)) == 1
    finally:
        await platform.forget(engine=e)  # and this test process survives the stop


async def test_concurrent_starts_from_two_monitors_start_one_engine(
    tmp_path: Path, fake_home: Path
) -> None:
    first, second, e = (
        make_platform(tmp_path, fake_home),
        make_platform(tmp_path, fake_home),
        engine(),
    )
    try:
        await asyncio.gather(first.start(engine=e), second.start(engine=e), first.start(engine=e))
        supervisors = groups_naming(e, supervisors=True)
        assert len(supervisors) == 1, described(processes_naming(e, supervisors=True))
        await eventually(lambda: running(e), timeout=30, what="the fake engine")
        assert len(groups_naming(e)) == 1
    finally:
        await first.forget(engine=e)
    assert processes_naming(e) == []


async def test_a_start_that_cannot_record_its_process_ends_it_and_fails(
    tmp_path: Path, fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine whose run record cannot be written could never be adopted or
    stopped, and each retry of the monitor would start one more: none is left."""
    platform, e = make_platform(tmp_path, fake_home), engine()

    def disk_full(path: Path, text: str) -> None:  # the OS's answer, not Rucat's
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(files, "write_atomically", disk_full)
    with pytest.raises(OSError):
        await platform.start(engine=e)
    with pytest.raises(OSError):
        await platform.start(engine=e)
    assert groups_naming(e, supervisors=True) == set()
    assert processes_naming(e) == []


async def test_an_engine_whose_supervisor_died_is_still_adopted_and_stopped(
    tmp_path: Path, fake_home: Path
) -> None:
    # A port that never answers: the engine stays Pending, whoever looks.
    platform, e = make_platform(tmp_path, fake_home), engine(**{"rucat.test.mode": "tcp"})
    await platform.start(engine=e)
    await eventually(lambda: running(e), timeout=30, what="the fake engine")
    supervisor = run_file(tmp_path, e)["pid"]
    os.kill(supervisor, signal.SIGKILL)
    await eventually(lambda: no_supervisor(e), timeout=10, what="the supervisor's death")
    later = make_platform(tmp_path, fake_home)  # as a restarted monitor would
    assert isinstance(await later.inspect(engine=e), Pending)
    await later.start(engine=e)
    assert processes_naming(e, supervisors=True) == []  # adopted, not started again
    assert len(groups_naming(e)) == 1
    await later.stop(engine=e)
    assert processes_naming(e) == []
    assert await later.inspect(engine=e) == Absent()
    await later.forget(engine=e)


async def test_changes_reports_an_exit_to_a_platform_that_did_not_start_the_engine(
    tmp_path: Path, fake_home: Path
) -> None:
    starter, e = make_platform(tmp_path, fake_home), engine(**{"rucat.test.mode": "stubborn"})
    await starter.start(engine=e)
    watcher = make_platform(tmp_path, fake_home)
    changes = watcher.changes()
    try:
        next_change = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(1.5)
        assert not next_change.done()  # a live engine is no change
        for member in group_of(tmp_path, e):
            os.kill(member.pid, signal.SIGKILL)
        assert await asyncio.wait_for(next_change, timeout=30) == e.id
        assert isinstance(await watcher.inspect(engine=e), Failed)
    finally:
        await changes.aclose()  # type: ignore[attr-defined]
        await watcher.close()
        await starter.forget(engine=e)


async def test_an_engine_that_answers_is_reported_while_another_ones_probe_hangs(
    tmp_path: Path, fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A silent port holds a gRPC probe about 20 s (gRPC gives up on the handshake
    # then; the deadline is longer): the ready engine is not kept waiting.
    monkeypatch.setattr(local_watcher, "WATCH_PROBE_TIMEOUT", 60.0)
    platform = make_platform(tmp_path, fake_home)
    silent, ready = engine(**{"rucat.test.mode": "tcp"}), engine()
    changes = platform.changes()
    try:
        next_change = asyncio.ensure_future(anext(changes))
        await platform.start(engine=silent)

        async def silent_port_found() -> int | None:
            return run_file(tmp_path, silent).get("port")  # the watcher's probe then starts

        await eventually(silent_port_found, timeout=30, what="the silent engine's port")
        await platform.start(engine=ready)

        async def answers() -> bool:
            port = run_file(tmp_path, ready).get("port")
            if port is None:
                return False
            try:
                await spark_probe.connect_version(
                    f"127.0.0.1:{port}", token=ready.connect_token, timeout=5
                )
            except EngineUnreachable:
                return False
            return True

        await eventually(answers, timeout=60, what="the ready engine's answer")
        assert await asyncio.wait_for(next_change, timeout=10) == ready.id
    finally:
        await changes.aclose()  # type: ignore[attr-defined]
        await platform.forget(engine=silent)
        await platform.forget(engine=ready)
        await platform.close()


async def test_the_engine_gets_no_rucat_settings_from_the_environment(
    tmp_path: Path, fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUCAT_DATABASE__POSTGRES__URI", "postgresql://u:secret@h/db")
    platform, e = make_platform(tmp_path, fake_home), engine()
    try:
        await platform.start(engine=e)
        await eventually(lambda: running(e), timeout=30, what="the fake engine")
        for pid in processes_naming(e):
            assert b"RUCAT_" not in proc_file(pid, "environ")
    finally:
        await platform.forget(engine=e)


async def test_spark_defaults_of_the_spark_home_reach_the_engine_below_rucats_confs(
    tmp_path: Path, fake_home: Path
) -> None:
    (fake_home / "conf").mkdir()
    (fake_home / "conf" / "spark-defaults.conf").write_text(
        "spark.eventLog.enabled true\nspark.connect.grpc.binding.port 15002\n"
    )
    platform, e = make_platform(tmp_path, fake_home), engine()
    try:
        await platform.start(engine=e)
        text = (tmp_path / "engines" / e.id / "spark.properties").read_text()
        assert "spark.eventLog.enabled true" in text
        # Later lines win in a properties file: Rucat's port comes after the default.
        assert text.index("binding.port 15002") < text.index("spark.connect.grpc.binding.port=0")
    finally:
        await platform.forget(engine=e)


async def test_a_conf_dir_without_log4j2_config_gets_rucats_beside_its_own_files(
    tmp_path: Path, fake_home: Path
) -> None:
    (fake_home / "conf").mkdir()
    (fake_home / "conf" / "hive-site.xml").write_text("<configuration/>")
    platform, e = make_platform(tmp_path, fake_home), engine()
    ours = tmp_path / "engines" / e.id / "conf"
    try:
        await platform.start(engine=e)

        async def conf_dir_logged() -> bool:
            return f"SPARK_CONF_DIR={ours}\n" in await platform.logs(engine=e)

        await eventually(conf_dir_logged, timeout=30, what="the fake's SPARK_CONF_DIR")
        assert (ours / "hive-site.xml").resolve() == fake_home / "conf" / "hive-site.xml"
        log4j2 = (ours / "log4j2.properties").read_text()
        assert f"logger.rucat_connect.name = {spark_launch.CONNECT_SERVER_LOGGER}" in log4j2
    finally:
        await platform.forget(engine=e)


async def test_a_conf_dir_with_its_own_log4j2_config_is_used_as_it_is(
    tmp_path: Path, fake_home: Path
) -> None:
    (fake_home / "conf").mkdir()
    (fake_home / "conf" / "log4j2.properties").write_text("rootLogger.level = warn\n")
    platform, e = make_platform(tmp_path, fake_home), engine()
    try:
        await platform.start(engine=e)

        async def conf_dir_logged() -> bool:
            return "SPARK_CONF_DIR=\n" in await platform.logs(engine=e)

        await eventually(conf_dir_logged, timeout=30, what="the fake's empty SPARK_CONF_DIR")
        assert not (tmp_path / "engines" / e.id / "conf").exists()
    finally:
        await platform.forget(engine=e)


# --- process and file helpers -----------------------------------------------


def test_a_process_name_with_parentheses_and_spaces_is_parsed(tmp_path: Path) -> None:
    odd = tmp_path / "a) b (c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import time; time.sleep(30)"])
    try:
        seen = proc.read_stat(child.pid)
        assert seen is not None
        assert seen.comm == "a) b (c"
        assert seen.pgrp == os.getpgrp()
        assert seen.running
        assert is_process(child.pid, seen.start_time)
        assert not is_process(child.pid, seen.start_time + 1)
    finally:
        child.kill()
        child.wait()
    assert proc.read_stat(child.pid) is None


def test_log_tails_count_lines_from_the_end_and_from_a_runs_offset(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    assert files.tail(log, 5) == ""
    first_run = "".join(f"old {i}\n" for i in range(3))
    log.write_text(first_run + "".join(f"line {i}\n" for i in range(20000)) + "no newline")
    assert files.tail(log, 2) == "line 19999\nno newline"
    assert files.tail(log, 0) == ""
    assert files.tail(log, 10**6, start=len(first_run)).startswith("line 0\n")
    assert files.tail(log, 10**6).startswith("old 0\n")


def test_a_private_file_is_owner_only_even_when_it_existed_wider(tmp_path: Path) -> None:
    path = tmp_path / "spark.properties"
    path.write_text("old")
    path.chmod(0o644)
    files.write_private(path, "secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "secret"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        files.write_private(link, "secret")
    assert not (tmp_path / "elsewhere").exists()


# --- a real Spark Connect server ---------------------------------------------


@pytest.mark.java
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_quiet_real_engine_runs_udfs_hides_its_token_and_reports_kill_9(
    tmp_path: Path,
) -> None:
    require_java()
    platform = LocalPlatform(LocalPlatformConfig(), data_dir=tmp_path)
    # A quiet root log level must not hide the line that names the Connect port.
    e = engine(
        spark_versions.bundled_spark_version(),
        **{"spark.executor.memory": "512m", "spark.log.level": "WARN"},
    )
    token = e.connect_token
    assert token
    folder = tmp_path / "engines" / e.id
    try:
        await platform.start(engine=e)
        ready = await wait_for(platform, e, Ready, timeout=180)
        assert isinstance(ready, Ready)

        props = folder / "spark.properties"
        assert stat.S_IMODE(props.stat().st_mode) == 0o600
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert token in props.read_text()
        members = group_of(tmp_path, e)
        assert local_server_pids(e)[0] in {m.pid for m in members}
        for member in members:
            for what in ("cmdline", "environ"):
                assert token.encode() not in proc_file(member.pid, what)
            assert b"spark.log.level" not in proc_file(member.pid, "cmdline")  # a user conf
        logs = await platform.logs(engine=e)
        assert token not in logs
        # WARN took effect: user confs reach Spark through the properties file.
        assert "INFO Utils: Successfully started service" not in logs

        def query() -> tuple[list[tuple[int]], list[tuple[int]]]:
            from pyspark.sql import SparkSession
            from pyspark.sql.functions import udf

            session = SparkSession.builder.remote(local_client_url(ready.endpoint, token)).create()
            try:
                plus_one = udf(lambda x: x + 1, "long")  # runs in a Python worker of the engine
                counted = session.sql("select count(*) from range(1000)").collect()
                mapped = session.range(3).select(plus_one("id")).collect()
                return [tuple(r) for r in counted], [tuple(r) for r in mapped]
            finally:
                session.stop()

        assert await asyncio.to_thread(query) == ([(1000,)], [(1,), (2,), (3,)])

        for pid in local_server_pids(e):
            os.kill(pid, signal.SIGKILL)
        failed = await wait_for(platform, e, Failed)
        assert isinstance(failed, Failed)
        assert failed.reason.startswith(
            "the Spark Connect server was killed by signal 9 (SIGKILL); last log lines:\n"
        )
        assert "rucat: engine process" in failed.reason  # the log's tail follows

        await platform.stop(engine=e)
        assert not props.exists()  # the token does not outlive the run
        assert await platform.inspect(engine=e) == Absent()
    finally:
        await platform.forget(engine=e)
    assert not folder.exists()
