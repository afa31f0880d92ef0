"""Layer 3: research drivers (sweeps, tournaments, evolution, overfitting statistics)."""

__all__: list[str] = []  # the modules are the public surface; nothing is re-exported
