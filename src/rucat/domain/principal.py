"""Who makes a request: the principal every auth provider derives from credentials.

REST and the Spark Connect proxy both authenticate to one of these, and every
access decision (ownership, grants, admin, quotas) is made on it. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    """A caller: a user name, its groups, and whether it is an admin."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False


#: Every caller of a server without an auth provider (the seed's open mode).
ANONYMOUS_ADMIN = Principal(name="anonymous", admin=True)
