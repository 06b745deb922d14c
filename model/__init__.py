"""RM-Depth networks, geometry and losses: pure PyTorch, no I/O, nothing distributed (see style.md)."""
