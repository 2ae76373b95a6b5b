"""What a platform can say about an engine's resources, as plain values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Absent:
    """No resource of the engine exists on the platform."""


@dataclass(frozen=True)
class Pending:
    """Resources exist but the endpoint does not accept Spark Connect calls yet."""

    detail: str = ""


@dataclass(frozen=True)
class Ready:
    """The engine answers Spark Connect calls at `endpoint` (``sc://host:port``)."""

    endpoint: str


@dataclass(frozen=True)
class Failed:
    """The engine's resources failed for good; `reason` says why."""

    reason: str


@dataclass(frozen=True)
class Unknown:
    """The platform could not tell (API unreachable); try again later."""

    reason: str


Observation = Absent | Pending | Ready | Failed | Unknown
