"""What the Standalone platform offers: the Local platform's Spark versions, with the
defaults of a shared cluster.

Standalone executors run on a shared cluster's workers: the default policy is
an allowlist of what ordinary jobs need, with the standalone resource confs
(``spark.cores.max``, executor cores and memory) under caps. Rucat sets the
master, the app name and where the driver binds and listens.
"""

from __future__ import annotations

from rucat.config import StandalonePlatformConfig
from rucat.domain.policy import Action, Rule
from rucat.engines.kind import EngineKind
from rucat.engines.spark import SPARK
from rucat.engines.spark_policy import CODE, ORDINARY, resource_caps, rules
from rucat.platforms.offer import PlatformOffer, offer_of

NAME = "Standalone"

#: The engine kind this platform runs.
KIND: EngineKind = SPARK

#: Confs the Standalone platform sets on top of the engine kind's.
#: The UI binds a free port (0) that is read from the log like the Connect port.
RESERVED = frozenset({"spark.driver.host", "spark.driver.bindAddress", "spark.ui.port"})


def default_rules() -> list[Rule]:
    origin = f"the {NAME} default policy"
    return [
        *rules(
            origin,
            # Rucat places drivers: where they listen is its choice.
            ("spark.driver.port", Action.fixed),
            ("spark.driver.blockManager.port", Action.fixed),
            ("spark.blockManager.port", Action.fixed),
            ("spark.ui.port", Action.fixed),
            ("spark.standalone.*", Action.deny),
            ("spark.deploy.*", Action.deny),
            ("spark.worker.*", Action.deny),
            *CODE,
        ),
        Rule("spark.cores.max", Action.max, value="64", origin=origin),
        *resource_caps(origin),
        *rules(origin, *ORDINARY),
    ]


def standalone_offer(config: StandalonePlatformConfig) -> PlatformOffer:
    return offer_of(
        NAME,
        KIND,
        versions=KIND.versions(installed=config.spark_homes, bundled=True),
        reserved=RESERVED,
        default_rules=default_rules(),
    )
