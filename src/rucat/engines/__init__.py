"""Engine types: how to launch each kind of engine and which confs Rucat owns."""
