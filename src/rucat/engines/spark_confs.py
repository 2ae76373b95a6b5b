"""The Spark confs Rucat owns, the check of a request's, and the properties file they go in.

The functions that validate a request are pure (they read their arguments,
never a platform), so the server can refuse a bad engine with 400 before
anything is stored. A platform's offer adds the confs it reserves itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from rucat.domain.engine import CreateEngineRequest, EngineType
from rucat.domain.errors import ConfigError, InvalidRequest
from rucat.domain.policy import Policy

#: Keys Rucat sets itself on every platform: the connect endpoint (port,
#: address, token), the application's identity and its cluster manager. A
#: platform's offer adds its own (where the driver binds, what names its pods).
RESERVED_CONFS = frozenset(
    {
        "spark.app.name",
        "spark.app.id",
        "spark.connect.grpc.binding.port",
        "spark.connect.grpc.binding.address",
        "spark.connect.grpc.binding.host",  # newer Sparks' name for the address
        "spark.connect.authenticate.token",
        "spark.master",
        "spark.submit.deployMode",
        # The Spark UI is served under Rucat's /engine/<id>/sparkui/ (server/sparkui.py).
        "spark.ui.proxyBase",
    }
)


def validate_request(
    request: CreateEngineRequest, *, platform: str, versions: list[str], policy: Policy
) -> CreateEngineRequest:
    """Refuse a Spark engine `platform` cannot run; raises InvalidRequest.

    Returns the request to store: its confs as `policy` settles them.
    Pure: reads its arguments only, never contacts the platform.
    """
    if request.engine_type is not EngineType.Spark:
        raise InvalidRequest(f"engine type {request.engine_type} is not Spark")
    if request.version not in versions:
        raise InvalidRequest(
            f"Spark {request.version} is not available on the {platform} platform; "
            f"available: {', '.join(versions)}"
        )
    settled = policy.settled(request.configs)
    return request if settled == request.configs else replace(request, configs=settled)


def connect_properties(*, token: str | None, address: str, port: int) -> dict[str, str]:
    """The confs that define the engine's Spark Connect endpoint.

    `port` 0 lets the server pick a free port; it logs the one it bound (see
    `bound_connect_port`). The token belongs in a properties file readable by
    the engine's user only, never on a command line. Spark 3.5's Connect server
    has no token option and ignores it: such engines are unprotected.
    """
    props = {
        "spark.connect.grpc.binding.address": address,
        "spark.connect.grpc.binding.port": str(port),
    }
    if token is not None:
        props["spark.connect.authenticate.token"] = token
    return props


def _escape_properties(text: str, *, key: bool) -> str:
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\f":
            out.append("\\f")
        elif ch in "=:#!" or (ch == " " and (key or i == 0)):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            # \uXXXX takes UTF-16 code units: characters beyond U+FFFF take two.
            units = ch.encode("utf-16-be")
            for j in range(0, len(units), 2):
                out.append("\\u%04x" % int.from_bytes(units[j : j + 2], "big"))
        else:
            out.append(ch)
    return "".join(out)


def properties_text(properties: Mapping[str, str], *, defaults: str = "") -> str:
    """A Java properties file: `defaults` (raw text, e.g. spark-defaults.conf) then
    `properties`, which win because later keys override earlier ones."""
    lines = [defaults.rstrip("\n")] if defaults.strip() else []
    lines.append("# written by Rucat")
    for key, value in properties.items():
        lines.append(f"{_escape_properties(key, key=True)}={_escape_properties(value, key=False)}")
    return "\n".join(lines) + "\n"


def spark_defaults_text(spark_home: Path, conf_dir: Path | None = None) -> str:
    """The text of spark-defaults.conf that spark-submit would have read, or ''.

    Passing --properties-file makes spark-submit skip spark-defaults.conf, so
    platforms prepend it to their own properties file.
    """
    path = (conf_dir or spark_home / "conf") / "spark-defaults.conf"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e
