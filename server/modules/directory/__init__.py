"""名录库: the directory of inspection targets (mostly enterprises)."""
