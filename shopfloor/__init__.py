"""Shop-floor constraint monitor: the parts every folder shares (contract, store, settings, stack, CLI)."""

__version__ = "0.1.0"
