"""The Users auth provider on a real `rucat server` process, hashes made by `rucat user`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.support import free_port
from tests.support.processes import RUCAT, rucat, write_config

SPARK = {"name": "mine", "engine_type": "Spark", "version": "4.0.1", "configs": {}}


def _hash(password: str) -> str:
    """`rucat user hash-password`, fed on stdin as a script would."""
    done = subprocess.run(
        [RUCAT, "user", "hash-password"],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert password not in done.stdout
    return done.stdout.strip()


def test_rucat_user_hash_password_refuses_an_empty_password() -> None:
    done = subprocess.run(
        [RUCAT, "user", "hash-password"], input="", capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "empty" in done.stderr


def test_users_sign_in_with_basic_and_writes_record_their_name(tmp_path: Path) -> None:
    users = [
        {"name": "alice", "password_hash": _hash("alice-pw"), "groups": ["analytics"]},
        {"name": "root", "password_hash": _hash("root-pw"), "admin": True},
    ]
    port = free_port()
    cfg = write_config(
        tmp_path / "config.json",
        auth_provider={"Users": {"users": users}},
        database={"Sqlite": {"path": str(tmp_path / "rucat.db")}},
        data_dir=str(tmp_path / "data"),
        connect_port=None,
    )
    argv = ("server", "--config-path", str(cfg), "--port", str(port))
    with rucat(*argv, tmp=tmp_path, name="server") as p:
        url = f"http://127.0.0.1:{port}"
        p.wait_http(url)
        alice = httpx.Client(base_url=url, auth=("alice", "alice-pw"), timeout=60)
        created = alice.post("/engine", json=SPARK)
        assert created.status_code == 200, created.text
        engine_id = created.json()["id"]
        assert alice.get(f"/engine/{engine_id}").status_code == 200  # remembered: no argon2
        events = alice.get(f"/engine/{engine_id}/events").json()
        assert events[0]["actor"] == "alice"

        for auth in (("alice", "root-pw"), ("mallory", "alice-pw"), ("root", "")):
            refused = httpx.get(f"{url}/engines", auth=auth, timeout=60)
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"].startswith('Basic realm="rucat"')
        bearer = httpx.get(f"{url}/engines", headers={"Authorization": "Bearer x"}, timeout=60)
        assert bearer.status_code == 401
        assert httpx.get(f"{url}/engines", auth=("root", "root-pw"), timeout=60).status_code == 200
    log = p.output()
    for secret in ("alice-pw", "root-pw"):
        assert secret not in log
