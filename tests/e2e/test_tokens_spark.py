"""A personal access token end to end: a real `rucat up`, a real Spark engine, stock pyspark.

alice signs in with HTTP Basic (the Users provider), which pyspark cannot
send; she makes a token, and that token creates her engine over REST and
opens a Spark Connect session through the proxy. Revoked, it is refused at
once on both paths; a token stored already expired is refused too.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from rucat.client import RucatClient, RucatClientError
from rucat.config import DatabaseConfig, SqliteConfig
from rucat.domain.principal import Principal
from rucat.domain.token import new_token
from rucat.engines.spark_versions import bundled_spark_version
from rucat.store import open_store
from tests.support import require_java
from tests.support.processes import RUCAT, kill_engines_under, rucat_up

VERSION = bundled_spark_version()


def _hash(password: str) -> str:
    done = subprocess.run(
        [RUCAT, "user", "hash-password"],
        input=password,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


async def _store_expired_token(database: Path) -> str:
    """A token of alice's that expired a minute ago, written straight into the store."""
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(database))))
    try:
        token, secret = new_token(
            Principal("alice", frozenset({"analytics"})),
            name="old",
            expires_in_days=1,
            now=datetime.now(UTC) - timedelta(days=1, minutes=1),
        )
        await store.add_token(token=token)
        return secret
    finally:
        await store.close()


def _refused(spark_call: object) -> str:
    """The error text of a Spark Connect call that must fail."""
    with pytest.raises(Exception) as caught:
        spark_call()  # type: ignore[operator]
    return str(caught.value)


@pytest.mark.java
@pytest.mark.timeout(900)
def test_a_token_creates_and_connects_to_an_engine_until_revoked(tmp_path: Path) -> None:
    require_java()
    users = [{"name": "alice", "password_hash": _hash("alice-pw"), "groups": ["analytics"]}]
    config = {"check_interval_secs": 0.5, "auth_provider": {"Users": {"users": users}}}
    engine_id = None
    with rucat_up(tmp_path, config) as (process, url, connect_port):
        with RucatClient(url, username="alice", password="alice-pw") as alice:
            created = alice.create_token("spark", expires_in_days=1)
        try:
            with RucatClient(url, token=created.token, connect_port=connect_port) as sdk:
                engine_id = sdk.create("with-a-token", VERSION)
                sdk.wait_until(engine_id, "Running", timeout=300)
                spark = sdk.spark_session(engine_id)
                try:
                    assert spark.sql("select 40 + 2 as answer").collect()[0]["answer"] == 42
                    events = sdk.events(engine_id)
                    assert events[0].actor == "alice"

                    sdk.revoke_token(created.id)
                    refused = _refused(lambda: spark.sql("select 1").collect())
                    assert "UNAUTHENTICATED" in refused or "invalid token" in refused, refused
                    with pytest.raises(RucatClientError):
                        sdk.get(engine_id)
                finally:
                    with contextlib.suppress(Exception):
                        spark.stop()

            expired = asyncio.run(_store_expired_token(tmp_path / "data" / "rucat.db"))
            response = httpx.get(
                f"{url}/engine/{engine_id}",
                headers={"Authorization": f"Bearer {expired}"},
                timeout=30,
            )
            assert response.status_code == 401
            assert "expired" in response.json()["detail"]
            # Straight to the proxy: the SDK's spark_session() would first ask REST for the
            # connect URL, which the expired token cannot read.
            from pyspark.sql import SparkSession

            late_url = (
                f"sc://localhost:{connect_port}/;token={expired};x-rucat-engine-id={engine_id}"
            )
            late_spark = SparkSession.builder.remote(late_url).create()
            try:
                refused = _refused(lambda: late_spark.sql("select 1").collect())
                assert "expired" in refused, refused
            finally:
                with contextlib.suppress(Exception):
                    late_spark.stop()
        finally:
            with RucatClient(url, username="alice", password="alice-pw") as alice:
                if engine_id is not None:
                    with contextlib.suppress(RucatClientError):
                        alice.stop(engine_id)
                        alice.wait_until(engine_id, "Terminated", timeout=120)
            kill_engines_under(tmp_path / "data")
        assert process.proc.poll() is None, process.output()[-3000:]
