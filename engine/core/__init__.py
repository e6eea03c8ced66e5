"""What every part of the engine shares: the input error types, the one device choice, and the
progress / cancel callback types of long computations."""
