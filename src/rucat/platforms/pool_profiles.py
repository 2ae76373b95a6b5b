"""The configured warm pools as profiles: their confs settled by the platform's offer.

Servers and monitors both build the profiles here, so a pool engine is
stored with exactly the confs a cold create of the same request would get
(the platform's versions and engine policy, as `POST /engine` applies them),
and a create matches a pool by comparing like with like.
"""

from __future__ import annotations

import dataclasses
import logging

from rucat.config import RucatConfig
from rucat.domain.engine import EngineType
from rucat.domain.errors import InvalidRequest
from rucat.domain.policy import Policy
from rucat.domain.pool import PoolProfile
from rucat.platforms.offer import platform_offer

log = logging.getLogger("rucat.pools")


def pool_profiles(config: RucatConfig, *, policy: Policy | None = None) -> list[PoolProfile]:
    """The pools of `config` whose profile the platform runs and the policy allows.

    A pool the platform or policy refuses is left out with an error in the log
    (its creates start cold, and GET /pools does not show it).
    """
    offer = platform_offer(config.platform)
    policy = policy or offer.policy(config.engine_policy)
    profiles = []
    for pool in config.pools:
        profile = PoolProfile(
            name=pool.name,
            engine_type=EngineType(pool.engine_type),
            version=pool.version,
            configs=dict(pool.configs),
            min_idle=pool.min_idle,
            max_idle=pool.max_idle,
            platform=offer.platform,
        )
        try:
            settled = offer.validate(profile.request(), policy=policy)
        except InvalidRequest as e:
            log.error("pool %r is left out: %s", pool.name, e.message)
            continue
        profiles.append(dataclasses.replace(profile, configs=dict(settled.configs)))
    return profiles
