"""The engine model: what a user asks for and what Rucat records about it.

Validation rules for user input live here as pure functions so that every
entry point (REST, SDK, CLI, tests) applies the same ones.
"""

from __future__ import annotations

import enum
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from rucat.domain.access import Grant
from rucat.domain.errors import InvalidRequest
from rucat.domain.state import EngineState
from rucat.domain.text import check_label, has_lone_surrogate

EngineId = str

#: Ids are lowercase letters and digits only: safe in URLs and in Kubernetes
#: resource names (DNS-1123), and they start with a letter.
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_LENGTH = 20
_ID_RE = re.compile(r"^[a-z][a-z0-9]{%d}$" % (_ID_LENGTH - 1))

MAX_NAME_LENGTH = 255
_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){0,3}$")


class EngineType(enum.StrEnum):
    Spark = "Spark"


def new_engine_id() -> EngineId:
    """An unguessable id: 1 letter + 19 letters/digits (~98 bits of entropy)."""
    first = secrets.choice(string.ascii_lowercase)
    return first + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH - 1))


def is_engine_id(value: str) -> bool:
    return _ID_RE.fullmatch(value) is not None


def new_secret_token() -> str:
    return secrets.token_urlsafe(32)


def validate_name(name: str) -> str:
    if not name or not name.strip():
        raise InvalidRequest("name must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"name is {len(name)} characters long; at most {MAX_NAME_LENGTH}")
    check_label("name", name)
    return name


def validate_version(version: str) -> str:
    if not _VERSION_RE.fullmatch(version):
        raise InvalidRequest(f"version {version!r} is not a plain dotted version such as '4.0.1'")
    return version


def validate_configs(configs: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in configs.items():
        if not key:
            raise InvalidRequest("config keys must be non-empty")
        if "=" in key or any(c.isspace() for c in key):
            raise InvalidRequest(f"config key {key!r} must not contain '=' or whitespace")
        check_label(f"config key {key!r}", key)
        if not isinstance(value, str):
            raise InvalidRequest(f"config {key!r} must be a string")
        if "\x00" in value or "\n" in value or "\r" in value:
            raise InvalidRequest(f"config {key!r} must not contain NUL or line breaks")
        if has_lone_surrogate(value):
            raise InvalidRequest(f"config {key!r} must not contain lone surrogates (not UTF-8)")
        out[key] = value
    return out


@dataclass(frozen=True)
class CreateEngineRequest:
    name: str
    engine_type: EngineType
    version: str
    configs: dict[str, str] = field(default_factory=dict)
    #: Minutes without Spark Connect activity before the engine is stopped; 0:
    #: never; None: the configured default (see domain/activity.py).
    auto_stop_minutes: float | None = None

    def __post_init__(self) -> None:
        validate_name(self.name)
        validate_version(self.version)
        validate_configs(self.configs)


@dataclass(frozen=True)
class Engine:
    """One engine as stored. `revision` is the compare-and-set token.

    `connect_token` is the engine's own Spark Connect secret: it is stored,
    handed to the platform, and never returned by the API or logged.

    `owner` is the name of the principal that created it (None for engines
    created before Rucat recorded owners: only admins see those); `grants` are
    the further principals that may attach to or manage it (domain/access.py).
    Both are written by the same compare-and-set as everything else.
    """

    id: EngineId
    name: str
    engine_type: EngineType
    version: str
    configs: dict[str, str]
    state: EngineState
    platform: str
    create_time: datetime
    update_time: datetime
    next_update_time: datetime
    revision: int = 0
    message: str | None = None
    endpoint: str | None = None
    lease_owner: str | None = None
    last_activity_time: datetime | None = None
    #: Minutes without Spark Connect activity before the monitor stops it; 0 or
    #: None (engines stored before auto-stop existed): never.
    auto_stop_minutes: float | None = None
    connect_token: str | None = field(default=None, repr=False)
    saved_logs: str | None = field(default=None, repr=False)
    owner: str | None = None
    grants: tuple[Grant, ...] = ()
    #: The warm pool that owns the engine while it waits idle to be handed out
    #: (domain/pool.py); None for every other engine, and for good once handed out.
    pool: str | None = None


@dataclass(frozen=True)
class EngineEvent:
    """One recorded transition of an engine."""

    engine_id: EngineId
    time: datetime
    from_state: EngineState | None
    to_state: EngineState
    message: str | None
    actor: str


def new_engine(
    request: CreateEngineRequest,
    *,
    platform: str,
    now: datetime,
    engine_id: EngineId | None = None,
    owner: str | None = None,
    auto_stop_minutes: float | None = None,
    pool: str | None = None,
) -> Engine:
    """The stored form of a fresh engine: WaitToStart, due at once, with its own token.

    `auto_stop_minutes` is the resolved value (request or default); None
    keeps the request's own.
    """
    return Engine(
        id=engine_id or new_engine_id(),
        name=request.name,
        engine_type=request.engine_type,
        version=request.version,
        configs=dict(request.configs),
        state=EngineState.WaitToStart,
        platform=platform,
        create_time=now,
        update_time=now,
        next_update_time=now,
        auto_stop_minutes=(
            auto_stop_minutes if auto_stop_minutes is not None else request.auto_stop_minutes
        ),
        connect_token=new_secret_token(),
        owner=owner,
        pool=pool,
    )
