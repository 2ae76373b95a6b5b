"""The seed's SurrealDB config runs Rucat end to end on the embedded engine.

The seed's file names a SurrealDB server (`rucat-surrealdb:8000`); none runs
here, so the same file with its `uri` pointed at an embedded `surrealkv://`
database drives `rucat up` through a whole engine lifecycle.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from rucat.engines.spark_versions import bundled_spark_version
from tests.support import require_java
from tests.support.processes import engine_jvms, rucat_up, wait_state

pytestmark = [pytest.mark.java, pytest.mark.timeout(420)]


def test_the_seed_config_on_embedded_surrealdb_starts_stops_and_deletes_an_engine(
    tmp_path: Path,
) -> None:
    require_java()
    seed = {
        "auth_provider": {
            "StaticAuthProviderConfig": {
                "username": "admin",
                "password": "admin",
                "bearer_token": "admin",
            }
        },
        "database": {
            "Surreal": {
                "credentials": {"username": "admin", "password": "admin"},
                "uri": f"surrealkv://{tmp_path / 'surreal'}",
            }
        },
        "check_interval_secs": 1,
    }
    with (
        rucat_up(tmp_path, seed) as (_process, url, _connect_port),
        httpx.Client(base_url=url, timeout=30, auth=("admin", "admin")) as client,
    ):
        assert httpx.get(f"{url}/engines").status_code == 401
        body = {"name": "seed", "engine_type": "Spark", "version": bundled_spark_version()}
        engine_id = client.post("/engine", json=body).json()["id"]
        info = wait_state(client, engine_id, {"Running", "ErrorClean"}, 240)
        assert info["state"] == "Running", info
        assert len(engine_jvms(engine_id)) == 1

        assert client.post(f"/engine/{engine_id}/stop").status_code == 200
        wait_state(client, engine_id, {"Terminated"}, 120)
        assert engine_jvms(engine_id) == []
        assert client.delete(f"/engine/{engine_id}").status_code == 200
        assert client.get(f"/engine/{engine_id}").status_code == 404
