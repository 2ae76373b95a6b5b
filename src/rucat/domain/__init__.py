"""The engine model and its state machine: pure data and functions, no I/O."""
