"""What Rucat keeps on disk is its owner's only, whatever the umask.

The SQLite database (with its WAL and SHM files) holds every engine's token;
engine logs and properties files may hold secrets. Another OS user on the
machine must not read any of it, nor an engine's confs from its command line.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rucat.config import DatabaseConfig, LocalPlatformConfig, SqliteConfig
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.platforms import Failed
from rucat.platforms.local import process as proc
from rucat.platforms.local.platform import LocalPlatform
from rucat.store import open_store
from tests.support import eventually
from tests.support.fake_spark import FAKE_VERSION, make_fake_spark_home

SECRET = "s3cr3t-value-in-a-conf"


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def engine(**configs: str) -> Engine:
    request = CreateEngineRequest(
        name="t", engine_type=EngineType.Spark, version=FAKE_VERSION, configs=configs
    )
    return new_engine(request, platform="Local", now=datetime.now(UTC))


def platform_on(data_dir: Path, tmp_path: Path) -> LocalPlatform:
    config = LocalPlatformConfig(spark_homes={FAKE_VERSION: str(make_fake_spark_home(tmp_path))})
    return LocalPlatform(config, data_dir=data_dir)


def cmdline_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def group_pids(data_dir: Path, e: Engine) -> list[int]:
    import json

    run = json.loads((data_dir / "engines" / e.id / "run.json").read_text())
    return [m.pid for m in proc.group_members(run["pid"], run["start_time"])]


@pytest.mark.usefixtures("umask_000")
async def test_under_umask_000_the_data_dir_is_0700_and_every_file_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(data_dir / "rucat.db"))))
    platform = platform_on(data_dir, tmp_path)
    e = engine(**{"rucat.test.mode": "exit:3", "spark.hadoop.fs.s3a.secret.key": SECRET})
    try:
        await store.add(engine=e, actor="test")  # the WAL and SHM files exist once written
        await platform.start(engine=e)

        async def failed() -> Failed | None:
            seen = await platform.inspect(engine=e)
            return seen if isinstance(seen, Failed) else None

        exited = await eventually(failed, timeout=30, what="the engine's exit")
        assert "exited with status 3" in exited.reason  # its conf arrived
        folder = data_dir / "engines" / e.id
        assert {p.name for p in data_dir.iterdir()} >= {"rucat.db", "rucat.db-wal", "rucat.db-shm"}
        assert {p.name for p in folder.iterdir()} >= {"engine.log", "spark.properties", "exit.json"}
        for path in (data_dir, data_dir / "engines", folder, *folder.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                assert mode(path) == 0o700, path
        for path in (*data_dir.glob("rucat.db*"), *folder.iterdir()):
            if path.is_file() and not path.is_symlink():
                assert mode(path) == 0o600, path
    finally:
        await platform.forget(engine=e)
        await store.close()


async def test_a_data_dir_left_wider_is_tightened_at_start_and_the_change_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    folder = data_dir / "engines" / "old-engine"
    folder.mkdir(parents=True)
    for path in (data_dir, data_dir / "engines", folder):
        path.chmod(0o755)
    for name in ("engine.log", "spark.properties"):
        (folder / name).write_text("old")
        (folder / name).chmod(0o644)
    for name in ("rucat.db", "rucat.db-wal", "rucat.db-shm"):
        (data_dir / name).touch(0o644)
    with caplog.at_level(logging.WARNING):
        store = await open_store(
            DatabaseConfig(Sqlite=SqliteConfig(path=str(data_dir / "rucat.db")))
        )
        await store.close()
        await platform_on(data_dir, tmp_path).check()
    for path in (data_dir, data_dir / "engines", folder):
        assert mode(path) == 0o700
        assert f"made {path} private: mode 755 -> 700" in caplog.text
    for path in (folder / "engine.log", folder / "spark.properties", data_dir / "rucat.db"):
        assert mode(path) == 0o600
        assert f"made {path} private: mode 644 -> 600" in caplog.text


async def test_user_confs_reach_the_engine_through_its_properties_file_not_its_argv(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    platform = platform_on(data_dir, tmp_path)
    e = engine(**{"rucat.test.mode": "stubborn", "spark.hadoop.fs.s3a.secret.key": SECRET})
    try:
        await platform.start(engine=e)

        async def child_started() -> bool:  # the stubborn mode's child: the conf arrived
            return len(group_pids(data_dir, e)) >= 3

        await eventually(child_started, timeout=30, what="the stubborn engine's child")
        for pid in group_pids(data_dir, e):
            cmdline = cmdline_of(pid)
            assert SECRET.encode() not in cmdline
            assert b"rucat.test.mode" not in cmdline
            assert b"spark.hadoop.fs.s3a.secret.key" not in cmdline
        properties = (data_dir / "engines" / e.id / "spark.properties").read_text()
        assert SECRET in properties
        assert "rucat.test.mode=stubborn" in properties
    finally:
        await platform.forget(engine=e)
