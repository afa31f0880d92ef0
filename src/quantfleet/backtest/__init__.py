"""Layer 2: one backtest job type and the one worker function every research driver maps."""

from quantfleet.backtest.job import (
           BacktestJob,
           JobBatch,
           JobResult,
           Select,
           evaluate,
           evaluate_jobs,
)
from quantfleet.backtest.terms import Costs, Terms

__all__ = ["BacktestJob", "Costs", "JobBatch", "JobResult", "Select", "Terms", "evaluate",
           "evaluate_jobs"]
