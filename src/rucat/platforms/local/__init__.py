"""The Local platform: engines as supervised processes on this machine."""

from rucat.platforms.local.platform import LocalPlatform

__all__ = ["LocalPlatform"]
