"""The Platform Protocol: where engines run.

Platform actions are idempotent and resource names derive from the engine id,
so a retried start adopts what a dead monitor created instead of starting a
second engine. One contract suite (tests/contract/test_platform_contract.py)
runs against every implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from rucat.config import PlatformConfig
from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import ConfigError
from rucat.domain.observation import Absent, Failed, Observation, Pending, Ready, Unknown

__all__ = [
    "Absent",
    "Failed",
    "Observation",
    "Pending",
    "Platform",
    "Ready",
    "Unknown",
    "open_platform",
]


class Platform(Protocol):
    #: The platform's name as recorded on engines ("Local", "Kubernetes", ...).
    name: str

    async def check(self) -> None:
        """Raise ConfigError with what to do when the platform cannot run engines
        at all (no Java, no API server). Called once when a monitor starts."""
        ...

    async def start(self, *, engine: Engine) -> None:
        """Create the engine's resources; a no-op if they already exist."""
        ...

    async def inspect(self, *, engine: Engine) -> Observation: ...

    async def stop(self, *, engine: Engine) -> None:
        """Remove the engine's running resources; fine when they are absent."""
        ...

    async def forget(self, *, engine: Engine) -> None:
        """Remove what stays after stop (logs, working dirs). Called on DELETE."""
        ...

    def changes(self) -> AsyncIterator[EngineId]:
        """Ids of engines whose resources changed (process exit, pod event)."""
        ...

    async def logs(self, *, engine: Engine, tail: int | None = None) -> str:
        """The engine's log (its last `tail` lines); '' when there is none.

        Bounded whatever the log: at most its last `files.TAIL_MAX_BYTES`, a
        longer line cut with `files.cut_marker`, a whole log cut short starting
        with `files.left_out_marker`. Never blocks the event loop."""
        ...

    async def ui_port(self, *, engine: Engine) -> int | None:
        """The port of a Running engine's Spark UI on the host of its recorded
        endpoint; None when it has none (spark.ui.enabled=false, or not bound
        yet). Cheap enough to call per request (the server's Spark UI proxy does)."""
        ...

    async def close(self) -> None: ...


def open_platform(config: PlatformConfig, *, data_dir: Path) -> Platform:
    """The configured platform; raises ConfigError."""
    if config.Local is not None:
        from rucat.platforms.local.platform import LocalPlatform

        return LocalPlatform(config.Local, data_dir=data_dir)
    if config.Standalone is not None:
        from rucat.platforms.standalone import StandalonePlatform

        return StandalonePlatform(config.Standalone, data_dir=data_dir)
    if config.Kubernetes is not None:
        try:
            from rucat.platforms.kubernetes.platform import KubernetesPlatform
        except ImportError as e:
            raise ConfigError("the Kubernetes platform is not available in this build") from e
        return KubernetesPlatform(config.Kubernetes)
    raise ConfigError("platform: no variant given")
