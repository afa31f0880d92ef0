"""Layer 3: research drivers (sweeps, tournaments, evolution, overfitting statistics)."""
