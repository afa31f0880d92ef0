"""Layer 0: numba kernels (indicators, fused backtests, metrics). numpy and numba only."""

from quantfleet.kernels.metrics import METRIC_NAMES, N_METRICS, bar_returns, evaluate_positions

__all__ = ["METRIC_NAMES", "N_METRICS", "bar_returns", "evaluate_positions"]
