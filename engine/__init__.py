"""Training engine: the loop, checkpoints, validation and evaluation logic. No Ray here (see engine/runtime.py)."""
