"""`rucat token ...` against a real `rucat server` process with the seed's static provider."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner, Result

from rucat.cli import app
from tests.support import free_port
from tests.support.processes import rucat, write_config

ADMIN_TOKEN = "cli-admin-token"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("tokens")
    port = free_port()
    cfg = write_config(
        tmp / "config.json",
        auth_provider={"StaticAuthProviderConfig": {"bearer_token": ADMIN_TOKEN}},
        database={"Sqlite": {"path": str(tmp / "rucat.db")}},
        data_dir=str(tmp / "data"),
        connect_port=None,
    )
    with rucat("server", "--config-path", str(cfg), "--port", str(port), tmp=tmp, name="srv") as p:
        base = f"http://127.0.0.1:{port}"
        p.wait_http(base)
        yield base


def cli(url: str, token: str, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"RUCAT_URL": url, "RUCAT_TOKEN": token})


def test_a_token_made_with_the_cli_signs_in_until_revoked(url: str) -> None:
    made = cli(url, ADMIN_TOKEN, "token", "create", "laptop", "--expires-in-days", "7")
    assert made.exit_code == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("rucat_")
    assert "not shown again" in made.stderr

    listed = cli(url, secret, "token", "list", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert (entry["name"], entry["owner"]) == ("laptop", "admin")
    assert secret not in listed.stdout
    table = cli(url, ADMIN_TOKEN, "token", "list")
    assert entry["id"] in table.stdout

    assert cli(url, secret, "engine", "list").exit_code == 0
    revoked = cli(url, ADMIN_TOKEN, "token", "revoke", entry["id"])
    assert revoked.exit_code == 0, revoked.stderr
    assert revoked.stdout.strip() == f"{entry['id']}: revoked"
    refused = cli(url, secret, "engine", "list")
    assert refused.exit_code == 1
    assert "invalid" in refused.stderr


def test_bad_token_requests_exit_1_with_the_servers_detail(url: str) -> None:
    result = cli(url, ADMIN_TOKEN, "token", "create", "bad\x07name")
    assert result.exit_code == 1
    assert "name" in result.stderr
    gone = cli(url, ADMIN_TOKEN, "token", "revoke", "tok0000000000000000")
    assert gone.exit_code == 1
    assert "not found" in gone.stderr
