"""Who may do what to an engine: owner, grants and admins, as pure decisions.

Permissions follow the Databricks clusters model. Levels are ordered
none < attach < manage. The owner and every admin have manage; anyone else
has the highest level granted to their user name or to one of their groups.
`attach` is enough to read an engine (info, events, logs) and to connect to it
through the proxy; `manage` adds stop, restart, delete and permissions.

A principal with no level on an engine must learn nothing about it: callers
answer `Hide` exactly as they answer an unknown id. `Forbid` (403) is only for
a principal who can already see the engine.

Rows created before engines had owners have `owner=None`: only admins see them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rucat.domain.errors import InvalidRequest
from rucat.domain.principal import Principal
from rucat.domain.text import check_label


class AccessLevel(enum.IntEnum):
    """How much a principal may do to one engine; ordered."""

    NONE = 0
    ATTACH = 1
    MANAGE = 2

    @property
    def label(self) -> str:
        """The name users read and write ("none", "attach", "manage")."""
        return self.name.lower()


#: Levels a grant may give (a grant of "none" would mean nothing).
GRANTABLE: dict[str, AccessLevel] = {"attach": AccessLevel.ATTACH, "manage": AccessLevel.MANAGE}


class GranteeKind(enum.StrEnum):
    user = "user"
    group = "group"


@dataclass(frozen=True)
class Grant:
    """One entry of an engine's permissions: `kind` `name` has `level`."""

    kind: GranteeKind
    name: str
    level: AccessLevel

    def to_json(self) -> dict[str, str]:
        """The API's shape: ``{"user": "bob", "level": "attach"}``."""
        return {self.kind.value: self.name, "level": self.level.label}


class EngineAction(enum.StrEnum):
    """What a user does to one engine, on REST or through the proxy."""

    GET = "get"
    EVENTS = "events"
    LOGS = "logs"
    CONNECT = "connect"
    STOP = "stop"
    RESTART = "restart"
    DELETE = "delete"
    PERMISSIONS = "permissions"
    SPARK_UI = "spark_ui"


#: The level each action needs.
REQUIRED_LEVEL: dict[EngineAction, AccessLevel] = {
    EngineAction.GET: AccessLevel.ATTACH,
    EngineAction.EVENTS: AccessLevel.ATTACH,
    EngineAction.LOGS: AccessLevel.ATTACH,
    EngineAction.CONNECT: AccessLevel.ATTACH,
    EngineAction.STOP: AccessLevel.MANAGE,
    EngineAction.RESTART: AccessLevel.MANAGE,
    EngineAction.DELETE: AccessLevel.MANAGE,
    EngineAction.PERMISSIONS: AccessLevel.MANAGE,
    EngineAction.SPARK_UI: AccessLevel.ATTACH,
}


def level_of(principal: Principal, *, owner: str | None, grants: Iterable[Grant]) -> AccessLevel:
    """The principal's level on an engine with this owner and these grants."""
    if principal.admin or (owner is not None and owner == principal.name):
        return AccessLevel.MANAGE
    level = AccessLevel.NONE
    for grant in grants:
        applies = (grant.kind is GranteeKind.user and grant.name == principal.name) or (
            grant.kind is GranteeKind.group and grant.name in principal.groups
        )
        if applies and grant.level > level:
            level = grant.level
    return level


@dataclass(frozen=True)
class Allow:
    level: AccessLevel


@dataclass(frozen=True)
class Hide:
    """Answer exactly as for an engine that does not exist."""


@dataclass(frozen=True)
class Forbid:
    """The principal sees the engine but may not do this (403); `reason` names the level."""

    reason: str


AccessDecision = Allow | Hide | Forbid


def decide_access(
    principal: Principal, action: EngineAction, *, owner: str | None, grants: Iterable[Grant]
) -> AccessDecision:
    """May `principal` do `action` to an engine with this owner and grants?"""
    level = level_of(principal, owner=owner, grants=grants)
    if level is AccessLevel.NONE:
        return Hide()
    needed = REQUIRED_LEVEL[action]
    if level < needed:
        return Forbid(
            f"{action.value} needs the {needed.label} level on this engine; "
            f"{principal.name} has {level.label}"
        )
    return Allow(level)


@dataclass(frozen=True)
class VisibleTo:
    """The engines a non-admin principal may see: owned by `user`, or granted to
    `user` or to one of `groups` (any grant is at least attach). Stores apply it
    in their list query, so paging and filters keep working."""

    user: str
    groups: frozenset[str]


def visibility(principal: Principal) -> VisibleTo | None:
    """The list filter for `principal`; None (everything) for admins."""
    if principal.admin:
        return None
    return VisibleTo(user=principal.name, groups=principal.groups)


# --- grants as users write them ------------------------------------------------

#: Largest number of grants on one engine.
MAX_GRANTS = 100
MAX_GRANTEE_LENGTH = 255
#: Characters a user or group name may not hold: ':' and '=' (the CLI's
#: user:bob=attach syntax) and control characters.
_BAD_GRANTEE_CHARS = re.compile(r"[:=\x00-\x1f\x7f-\x9f]")


def validate_grantee(name: object) -> str:
    """A user or group name as a grant may name it; InvalidRequest says what is wrong."""
    if not isinstance(name, str) or not name:
        raise InvalidRequest("a grantee name must be a non-empty string")
    if len(name) > MAX_GRANTEE_LENGTH:
        raise InvalidRequest(
            f"grantee name is {len(name)} characters long; at most {MAX_GRANTEE_LENGTH}"
        )
    if name != name.strip():
        raise InvalidRequest(f"grantee name {name!r} must not start or end with whitespace")
    if _BAD_GRANTEE_CHARS.search(name):
        raise InvalidRequest(
            f"grantee name {name!r} must not contain ':', '=' or control characters"
        )
    check_label(f"grantee name {name!r}", name)  # format characters: look-alike names
    return name


def grant_from_json(entry: Mapping[str, Any], *, where: str = "grant") -> Grant:
    """One grant from ``{"user"|"group": name, "level": "attach"|"manage"}``."""
    if not isinstance(entry, Mapping):
        raise InvalidRequest(f"{where} must be an object with 'user' or 'group' and 'level'")
    unknown = sorted(set(entry) - {"user", "group", "level"})
    if unknown:
        raise InvalidRequest(f"{where}: unknown key {unknown[0]!r}")
    kinds = [kind for kind in GranteeKind if kind.value in entry]
    if len(kinds) != 1:
        raise InvalidRequest(f"{where} must name exactly one of 'user' or 'group'")
    kind = kinds[0]
    name = entry[kind.value]
    try:
        validate_grantee(name)
    except InvalidRequest as e:
        raise InvalidRequest(f"{where}.{kind.value}: {e.message}") from e
    level = entry.get("level")
    if not isinstance(level, str) or level not in GRANTABLE:
        raise InvalidRequest(
            f"{where}.level must be one of {', '.join(sorted(GRANTABLE))}, got {level!r}"
        )
    return Grant(kind=kind, name=name, level=GRANTABLE[level])


def validate_grants(grants: Sequence[Grant]) -> tuple[Grant, ...]:
    """The grants, checked: at most MAX_GRANTS, each grantee at most once."""
    if len(grants) > MAX_GRANTS:
        raise InvalidRequest(f"{len(grants)} grants given; at most {MAX_GRANTS}")
    seen: set[tuple[GranteeKind, str]] = set()
    for i, grant in enumerate(grants):
        key = (grant.kind, grant.name)
        if key in seen:
            raise InvalidRequest(
                f"grants[{i}]: {grant.kind.value} {grant.name!r} is named more than once"
            )
        seen.add(key)
    return tuple(grants)


def grants_from_json(entries: Sequence[Any]) -> tuple[Grant, ...]:
    """The API's grants list, validated; InvalidRequest names the bad entry."""
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise InvalidRequest("grants must be a list")
    return validate_grants(
        [grant_from_json(entry, where=f"grants[{i}]") for i, entry in enumerate(entries)]
    )
