"""Layer 2: one backtest job type and the one worker function every research driver maps."""

from quantfleet.backtest.blocks import BlockStats, block_stats
from quantfleet.backtest.job import (
           BacktestJob,
           JobBatch,
           JobResult,
           Select,
           evaluate,
           evaluate_jobs,
)
from quantfleet.backtest.terms import Costs, Terms

__all__ = ["BacktestJob", "BlockStats", "Costs", "JobBatch", "JobResult", "Select", "Terms",
           "block_stats", "evaluate", "evaluate_jobs"]
