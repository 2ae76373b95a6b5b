"""What the Local platform offers: Spark from the installed pyspark and `spark_homes`.

Local engines run as Rucat's own OS user on Rucat's host, and a user's Python
UDF runs there anyway: a conf cannot grant more than the code already has.
The default policy refuses only what would hide secrets less
(``spark.redaction.*``: the Spark UI shows the engine's token without it) and
allows the rest. Rucat chooses where the driver binds and advertises.
"""

from __future__ import annotations

from rucat.config import LocalPlatformConfig
from rucat.domain.policy import Action, Rule
from rucat.engines.kind import EngineKind
from rucat.engines.spark import SPARK
from rucat.engines.spark_policy import rules
from rucat.platforms.offer import PlatformOffer, offer_of

NAME = "Local"

#: The engine kind this platform runs.
KIND: EngineKind = SPARK

#: Confs the Local platform sets on top of the engine kind's.
#: The UI binds a free port (0) that is read from the log like the Connect port.
RESERVED = frozenset({"spark.driver.host", "spark.driver.bindAddress", "spark.ui.port"})


def default_rules() -> list[Rule]:
    origin = f"the {NAME} default policy"
    return rules(origin, ("spark.redaction.*", Action.deny), ("*", Action.allow))


def local_offer(config: LocalPlatformConfig) -> PlatformOffer:
    return offer_of(
        NAME,
        KIND,
        versions=KIND.versions(installed=config.spark_homes, bundled=True),
        reserved=RESERVED,
        default_rules=default_rules(),
    )
