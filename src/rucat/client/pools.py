"""Warm pools as the SDK sees them: GET /pools and the shape of its answer.

Shared by the sync and async clients, like `_core`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from rucat.client._core import Call, json_of
from rucat.client.errors import UnexpectedResponse

__all__ = ["PoolInfo", "list_call", "read_list"]


@dataclass(frozen=True)
class PoolInfo:
    """One warm pool: its profile, bounds, engines idle and starting, and the server's
    hand-outs and misses since it started."""

    name: str
    engine_type: str
    version: str
    configs: dict[str, str] = field(default_factory=dict)
    min_idle: int = 0
    max_idle: int = 0
    idle: int = 0
    warm: int = 0
    starting: int = 0
    hand_outs: int = 0
    misses: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "engine_type": self.engine_type,
            "version": self.version,
            "configs": dict(self.configs),
            "min_idle": self.min_idle,
            "max_idle": self.max_idle,
            "idle": self.idle,
            "warm": self.warm,
            "starting": self.starting,
            "hand_outs": self.hand_outs,
            "misses": self.misses,
        }


_COUNTS = ("min_idle", "max_idle", "idle", "warm", "starting", "hand_outs", "misses")


def list_call() -> Call:
    return Call("GET", "/pools")


def parse_pool(body: object) -> PoolInfo:
    if not isinstance(body, Mapping):
        raise UnexpectedResponse(f"pool is not a JSON object: {body!r}")
    texts = {k: body.get(k) for k in ("name", "engine_type", "version")}
    counts = {k: body.get(k) for k in _COUNTS}
    configs = body.get("configs")
    if (
        not all(isinstance(v, str) for v in texts.values())
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values())
        or not isinstance(configs, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in configs.items())
    ):
        raise UnexpectedResponse(f"GET /pools answered an unexpected pool: {body!r}")
    return PoolInfo(
        name=str(texts["name"]),
        engine_type=str(texts["engine_type"]),
        version=str(texts["version"]),
        configs=dict(configs),
        **{k: int(v) for k, v in counts.items()},  # type: ignore[arg-type]
    )


def read_list(response: httpx.Response) -> list[PoolInfo]:
    body = json_of(response)
    if not isinstance(body, list):
        raise UnexpectedResponse(f"GET /pools answered {body!r}, not a list")
    return [parse_pool(item) for item in body]
