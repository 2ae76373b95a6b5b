"""The state monitor: reconciles the store with the platforms."""
