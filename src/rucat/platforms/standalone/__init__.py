"""The Spark standalone platform: drivers on this host, executors on a standalone cluster.

- ``platform.py``  the Platform: drivers supervised like the Local platform's, plus the master
- ``master.py``    the master's web UI: its JSON (applications, workers) and its Spark version
- ``status.py``    pure decisions: driver + master -> Observation, version checks, failure text
"""

from rucat.platforms.standalone.platform import StandalonePlatform

__all__ = ["StandalonePlatform"]
