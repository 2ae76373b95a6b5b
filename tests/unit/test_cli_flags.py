"""Flags given to `rucat` commands are checked by the config models, like the file's keys.

A bad `--port` fails with the very message a bad "port" in the config file
gets, before anything opens a store or a socket.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rucat.cli import app
from rucat.config import load_config
from rucat.domain.errors import ConfigError


def _file_error(tmp_path: Path, key: str, value: object) -> str:
    """The item of the message a config file holding `key: value` fails with."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({key: value}), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.message.split(": ", 1)[1]


@pytest.mark.parametrize(
    ("argv", "key", "file_value"),
    [
        (["server", "--port", "-5"], "port", -5),
        (["server", "--port", "70000"], "port", 70000),
        (["server", "--port", "three"], "port", "three"),
        (["server", "--log-format", "xml"], "log_format", "xml"),
        (["monitor", "--log-format", "xml"], "log_format", "xml"),
        (["up", "--port", "-5"], "port", -5),
        (["up", "--log-format", "xml"], "log_format", "xml"),
    ],
    ids=[
        "a negative port",
        "a port above 65535",
        "a port that is not a number",
        "an unknown log format to server",
        "an unknown log format to monitor",
        "a negative port to up",
        "an unknown log format to up",
    ],
)
def test_a_bad_flag_fails_with_the_message_the_same_value_in_the_file_gets(
    tmp_path: Path, argv: list[str], key: str, file_value: object
) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"rucat: invalid command-line flag(s): {_file_error(tmp_path, key, file_value)}"
    )
    assert f"'{key}'" in result.stderr


def test_a_bad_flag_fails_even_when_the_file_and_the_environment_are_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"port": 3001}), encoding="utf-8")
    monkeypatch.setenv("RUCAT_PORT", "3002")
    result = CliRunner().invoke(app, ["server", "--config-path", str(path), "--port", "-1"])
    assert result.exit_code == 2
    assert "'port': Input should be greater than or equal to 0" in result.stderr


def test_flags_win_over_the_environment_and_the_file_and_keep_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps({"port": 3001, "database": {"Sqlite": {"path": "x.db"}}}), encoding="utf-8"
    )
    monkeypatch.setenv("RUCAT_HOST", "0.0.0.0")
    monkeypatch.setenv("RUCAT_PORT", "3002")
    config = load_config(
        path, host="::1", port="3003", log_format="json", data_dir=str(tmp_path / "d")
    )
    assert (config.host, config.port, config.log_format) == ("::1", 3003, "json")
    assert config.data_dir == str(tmp_path / "d")
    assert config.database.Sqlite is not None and config.database.Sqlite.path == "x.db"
    assert "database" in config.model_fields_set


def test_an_unknown_override_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown key 'prot'"):
        load_config(None, prot=1)
