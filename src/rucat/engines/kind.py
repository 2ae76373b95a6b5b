"""The engine-kind seam: what a platform needs to know about a kind of engine.

A platform knows how to run processes or pods; an engine kind (Spark today)
knows what to run. They meet here, so that adding an engine kind is one
module in ``engines/`` and adding a platform one package in ``platforms/``:

- versions: which versions a platform offers, from what the platform has
  installed (homes on disk, images) and whether the kind's own bundled
  installation is usable there;
- confs: those the kind always owns (its endpoint, its identity); a platform
  adds its own in its offer (``platforms/<name>/offer.py``);
- validation of a create request against a platform's versions and policy;
- a launch description (`Launch`) built for a `Site`: argv (never a shell
  line), environment, private files (properties, tokens), and the ports to
  discover with how to find each;
- a readiness probe: a real call to the engine's endpoint, not a TCP check.

Everything here is pure data and Protocols; the Spark implementation is
``engines/spark.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Protocol

from rucat.domain.engine import CreateEngineRequest, Engine, EngineId, EngineType
from rucat.domain.errors import PlatformRejected
from rucat.domain.policy import Policy


@dataclass(frozen=True)
class PrivateFile:
    """A file only the engine's user may read (0600 on disk, a Secret key in a pod):
    confs and tokens that must appear on no command line."""

    #: Relative to `Site.files_dir`.
    path: PurePath
    text: str


@dataclass(frozen=True)
class Link:
    """A symbolic link the platform makes in the engine's folder (process platforms)."""

    #: Relative to `Site.files_dir`.
    path: PurePath
    target: Path


@dataclass(frozen=True)
class PortRule:
    """How a platform learns one port of the engine: `fixed`, or the first match of
    one of `patterns` (group 1 is the port) in the engine's log since it started.

    The first mention wins: later lines may come from user code. Port 0 is never a
    bound port (an older server may echo the configured 0)."""

    #: What the port serves ("connect" is the endpoint clients use).
    name: str
    patterns: tuple[re.Pattern[str], ...] = ()
    fixed: int | None = None

    def find(self, log_text: str) -> int | None:
        """The port, or None while the log does not name it yet."""
        if self.fixed is not None:
            return self.fixed
        for pattern in self.patterns:
            for found in pattern.finditer(log_text):
                if int(found.group(1)) != 0:
                    return int(found.group(1))
        return None


#: The name of the port clients connect to; every launch has one.
CONNECT = "connect"
#: The name of the port of the engine's web UI, when it has one.
UI = "ui"


def ui_path(engine_id: EngineId) -> str:
    """The path under which Rucat serves an engine's web UI (server/sparkui.py); the
    engine kind tells the engine (Spark: ``spark.ui.proxyBase``) so its links work."""
    return f"/engine/{engine_id}/sparkui"


@dataclass(frozen=True)
class Launch:
    """What a platform runs for one engine, built by its kind for a `Site`."""

    #: The command, an argv list; its files are under `Site.files_dir`.
    argv: tuple[str, ...]
    #: The whole environment of the process (process platforms); {} for images.
    env: Mapping[str, str]
    #: Folders emptied and made private before the files and links are written.
    fresh_dirs: tuple[PurePath, ...]
    files: tuple[PrivateFile, ...]
    links: tuple[Link, ...]
    #: The ports to discover, `CONNECT` among them.
    ports: tuple[PortRule, ...]

    def port_rule(self, name: str) -> PortRule:
        return port_rule(self.ports, name)

    def file(self, path: PurePath | str) -> PrivateFile:
        """The private file at `path`; raises PlatformRejected when there is none."""
        for private in self.files:
            if private.path == PurePath(path):
                return private
        raise PlatformRejected(f"the engine's launch has no file {str(path)!r}")


def port_rule(rules: tuple[PortRule, ...], name: str) -> PortRule:
    """The rule of port `name`; raises PlatformRejected when the kind has none."""
    for rule in rules:
        if rule.name == name:
            return rule
    raise PlatformRejected(f"the engine opens no {name!r} port")


@dataclass(frozen=True)
class Site:
    """Where a platform runs one engine, as far as its kind needs to know.

    The platform fills it from its config; the kind turns it into a `Launch`.
    """

    #: The platform's name, for messages ("Spark 2.4 is not available on ...").
    platform: str
    #: The cluster manager the engine registers with (``local[*]``, ``spark://...``).
    master: str
    #: Where the engine finds its private files (its folder, or a mount in a pod).
    files_dir: PurePath
    #: Installations on this machine: version -> home (the kind's bundled one aside).
    homes: Mapping[str, str] = field(default_factory=dict)
    #: The one home to use (an image's); None: picked by version from `homes`.
    home: PurePath | None = None
    #: The home is on this machine: the kind may read its defaults and conf dir.
    local_install: bool = True
    #: The address the endpoint binds; None: the platform's confs say.
    address: str | None = None
    #: The endpoint's port; 0 lets the engine pick a free one and log it.
    connect_port: int = 0
    #: Confs the platform owns (none secret): they win over every other conf.
    platform_confs: Mapping[str, str] = field(default_factory=dict)
    #: Confs under the user's (a platform's defaults).
    defaults: Mapping[str, str] = field(default_factory=dict)
    #: The user's confs go in the private properties file (else they are argv pairs).
    user_confs_private: bool = True
    #: Arguments the platform adds to the command (``--deploy-mode client``).
    extra_args: tuple[str, ...] = ()
    #: The environment the process starts from (process platforms).
    base_env: Mapping[str, str] = field(default_factory=dict)
    #: A Java runtime to use instead of the environment's.
    java_home: str | None = None
    #: The name of the properties file under `files_dir`.
    properties_file: str = "engine.properties"


class EngineKind(Protocol):
    """One kind of engine (Spark): everything platforms need to run it.

    Pure apart from `launch` (which may read the installation's defaults from
    disk) and `probe` (a network call)."""

    #: The engine type of requests and engines this kind runs.
    engine_type: EngineType

    def versions(self, *, installed: Mapping[str, str], bundled: bool) -> list[str]:
        """The versions offered, oldest first: `installed` (version -> home or
        image) and, when `bundled`, the kind's own installation's."""
        ...

    def reserved_confs(self) -> frozenset[str]:
        """Conf keys the kind sets itself on every platform (endpoint, identity)."""
        ...

    def validate(
        self, request: CreateEngineRequest, *, platform: str, versions: list[str], policy: Policy
    ) -> CreateEngineRequest:
        """The request to store (its confs as `policy` settles them); raises
        InvalidRequest naming what is wrong. Pure."""
        ...

    def check_installations(self, *, homes: Mapping[str, str], bundled: bool, where: str) -> None:
        """Raise ConfigError, naming `where` (a config path), when an installation
        on this machine cannot run engines."""
        ...

    def port_rules(self, *, site: Site) -> tuple[PortRule, ...]:
        """The ports a launch at `site` opens and how to find each (as in `launch`)."""
        ...

    def launch(self, *, engine: Engine, site: Site) -> Launch:
        """What to run for `engine` at `site`; raises PlatformRejected (version
        not installed there) or ConfigError (unreadable installation)."""
        ...

    def application_name(self, engine_id: EngineId) -> str:
        """The name the engine registers under with its cluster manager."""
        ...

    async def probe(
        self, *, engine_id: EngineId, target: str, token: str | None, timeout: float
    ) -> str:
        """Ask the engine at `target` (``host:port``) for its version: it is ready
        when this answers. Raises EngineUnreachable (not yet, or no longer) and
        EngineRefused (it refused the token)."""
        ...

    async def warm_up(
        self, *, engine_id: EngineId, target: str, token: str | None, timeout: float
    ) -> None:
        """Run one trivial query on the ready engine at `target`, so the first user
        query does not pay for the engine's cold start. Raises EngineUnreachable
        (it did not answer or failed) and EngineRefused (it refused the token)."""
        ...

    def load_probe(self) -> None:
        """Import what `probe` needs. Blocking: platforms call it in a thread when
        they start, so the first probe does not import in the event loop."""
        ...
