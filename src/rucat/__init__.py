"""Rucat: a control plane for big-data engines (Spark Connect today)."""

__version__ = "0.1.0"
