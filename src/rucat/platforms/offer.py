"""What a configured platform offers: its engine kind, versions, reserved confs, policy.

Read from config only (no platform is contacted), so the server and the CLI
can list versions and refuse a bad request with 400 before anything is
stored. Each platform builds its offer in ``platforms/<name>/offer.py``;
`platform_offer` is the one place that picks it by config variant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rucat.config import EnginePolicyConfig, PlatformConfig
from rucat.domain.engine import CreateEngineRequest
from rucat.domain.errors import ConfigError
from rucat.domain.policy import Action, Policy, Rule, policy_of
from rucat.engines.kind import EngineKind

RESERVED_ORIGIN = "Rucat's reserved confs"


@dataclass(frozen=True)
class PlatformOffer:
    """One platform's terms for one engine kind."""

    #: The platform's name as recorded on engines ("Local", ...).
    platform: str
    kind: EngineKind
    #: Oldest first.
    versions: tuple[str, ...]
    #: The kind's own reserved confs and the platform's.
    reserved: frozenset[str]
    #: The platform's built-in default policy (without the reserved layer).
    default_rules: tuple[Rule, ...]

    def policy(self, config: EnginePolicyConfig | None = None) -> Policy:
        """The effective policy, in order: the reserved confs (``fixed``, no value:
        the launcher sets them; they hold in every mode), the operator's
        ``engine_policy.rules``, then the platform's default rules unless
        ``engine_policy.mode`` is ``replace``. Keys no rule matches are refused."""
        config = config or EnginePolicyConfig()
        origin = f"{RESERVED_ORIGIN} on the {self.platform} platform"
        fixed = [Rule(key, Action.fixed, origin=origin) for key in sorted(self.reserved)]
        layers: list[Iterable[Rule]] = [fixed, config.domain_rules()]
        if config.mode == "extend":
            layers.append(self.default_rules)
        return policy_of(*layers)

    def validate(
        self, request: CreateEngineRequest, *, policy: Policy | None = None
    ) -> CreateEngineRequest:
        """The request to store; raises InvalidRequest. `policy` None: the default's."""
        return self.kind.validate(
            request,
            platform=self.platform,
            versions=list(self.versions),
            policy=policy if policy is not None else self.policy(),
        )


def offer_of(
    platform: str,
    kind: EngineKind,
    *,
    versions: Iterable[str],
    reserved: Iterable[str],
    default_rules: Iterable[Rule],
) -> PlatformOffer:
    """An offer whose reserved confs are the kind's plus the platform's `reserved`."""
    return PlatformOffer(
        platform=platform,
        kind=kind,
        versions=tuple(versions),
        reserved=kind.reserved_confs() | frozenset(reserved),
        default_rules=tuple(default_rules),
    )


def platform_offer(config: PlatformConfig) -> PlatformOffer:
    """The offer of the configured platform; raises ConfigError."""
    if config.Local is not None:
        from rucat.platforms.local.offer import local_offer

        return local_offer(config.Local)
    if config.Standalone is not None:
        from rucat.platforms.standalone.offer import standalone_offer

        return standalone_offer(config.Standalone)
    if config.Kubernetes is not None:
        from rucat.platforms.kubernetes.offer import kubernetes_offer

        return kubernetes_offer(config.Kubernetes)
    raise ConfigError("platform: no variant given")
