"""Layer 0: numba kernels (indicators, fused backtests, metrics). numpy and numba only."""

from quantfleet.kernels.metrics import (
    LOWER_IS_BETTER,
    METRIC_NAMES,
    N_METRICS,
    bar_returns,
    check_metric,
    evaluate_positions,
    metric_sign,
)

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "N_METRICS",
    "bar_returns",
    "check_metric",
    "evaluate_positions",
    "metric_sign",
]
