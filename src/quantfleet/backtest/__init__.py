"""Layer 2: one backtest job type and the one worker function every research driver maps."""

from quantfleet.backtest.job import (
           BacktestJob,
           JobBatch,
           JobResult,
           evaluate,
           evaluate_jobs,
)
from quantfleet.backtest.terms import Costs, Terms
from quantfleet.backtest.walk import Walk, WalkResult

__all__ = ["BacktestJob", "Costs", "JobBatch", "JobResult", "Terms", "Walk", "WalkResult",
           "evaluate", "evaluate_jobs"]
