"""Layer 2: one backtest job type and the one worker function every research driver maps."""

from quantfleet.backtest.blocks import BlockStats, block_stats
from quantfleet.backtest.job import BacktestJob, JobBatch, JobResult, evaluate, evaluate_jobs
from quantfleet.backtest.terms import Costs, Execution, Terms
from quantfleet.backtest.walk import Walk, WalkResult

__all__ = ["BacktestJob", "BlockStats", "Costs", "Execution", "JobBatch", "JobResult", "Terms", "Walk",
           "WalkResult", "block_stats", "evaluate", "evaluate_jobs"]
