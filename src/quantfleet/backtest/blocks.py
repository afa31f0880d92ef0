"""Per-block return statistics: what CSCV (the probability of backtest overfitting) needs of each
trial, in O(trials × blocks) memory instead of O(trials × bars).

CSCV (``research.overfit.pbo``) cuts a series of T bars into S equal contiguous blocks (the first
``T mod S`` bars in none) and scores every trial on unions of S/2 blocks. A trial's mean and
Sharpe ratio on any union follow exactly from its per-block count of finite bars, mean and M2
(sum of squared deviations from the block mean), combined with Chan et al.'s formulas; so a
worker can reduce each trial's per-bar returns to a :class:`BlockStats` and discard them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quantfleet.errors import QuantfleetError
from quantfleet.kernels.blocks import block_moments

__all__ = ["BLOCK_BATCH_BYTES", "BlockStats", "block_stats"]

BLOCK_BATCH_BYTES = 16 << 20
"""The largest per-bar buffer ``backtest.job.evaluate`` lets a job with ``blocks`` allocate: the
kernel runs on sub-batches of combos of at most this many bytes of per-bar returns and
positions, each reduced to blocks and dropped, so memory stays bounded whatever the number of
combos."""


@dataclass(frozen=True, eq=False)
class BlockStats:
    """Each trial's returns cut into S equal contiguous blocks.

    count, mean, m2 : float64 (S, trials) — per block and trial the number of finite bars,
        their mean and their M2 (sum of squared deviations from that mean); mean and m2 are 0
        where count is 0. NaN and ±inf returns are missing bars (in no count).
    bars : T, the length of the series the blocks were cut from; the first ``T mod S`` bars
        (``rows_dropped``) are in no block, block ``b`` is bars
        ``[rows_dropped + b·block, rows_dropped + (b+1)·block)``.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    bars: int

    def __post_init__(self) -> None:
        shapes = {np.shape(self.count), np.shape(self.mean), np.shape(self.m2)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise QuantfleetError(f"BlockStats: count, mean and m2 must be arrays of one shape "
                                  f"(blocks, trials), got {sorted(shapes)}")

    @property
    def n_splits(self) -> int:
        """S, the number of blocks."""
        return int(self.count.shape[0])

    @property
    def n_trials(self) -> int:
        return int(self.count.shape[1])

    @property
    def block(self) -> int:
        """Bars per block: ``bars // S``."""
        return self.bars // self.n_splits

    @property
    def rows_dropped(self) -> int:
        """``bars mod S``: the first bars, in no block."""
        return self.bars - self.block * self.n_splits

    @classmethod
    def concat(cls, parts: Sequence[BlockStats]) -> BlockStats:
        """The trials of ``parts`` side by side (same S and bars: blocks of one series)."""
        parts = list(parts)
        if not parts:
            raise QuantfleetError("BlockStats.concat needs at least one part")
        bad = {(p.n_splits, p.bars) for p in parts} - {(parts[0].n_splits, parts[0].bars)}
        if bad:
            raise QuantfleetError(f"BlockStats.concat: parts cut differently (S, bars): "
                                  f"{(parts[0].n_splits, parts[0].bars)} and {sorted(bad)}; "
                                  "concatenate only blocks of one series")
        return cls(np.concatenate([p.count for p in parts], axis=1),
                   np.concatenate([p.mean for p in parts], axis=1),
                   np.concatenate([p.m2 for p in parts], axis=1), parts[0].bars)


def block_stats(returns: np.ndarray, n_splits: int) -> BlockStats:
    """Reduce per-bar returns, (trials, bars) — one row per trial, the kernels' layout — to
    :class:`BlockStats` of ``n_splits`` blocks.

    Each trial's row is reduced on its own (``kernels.blocks.block_moments``: two passes over
    its bars, no copy), so the statistics of a trial do not depend on which other trials it was
    reduced with, bit for bit.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2:
        raise QuantfleetError(f"block_stats: returns must be 2-D (trials, bars), got shape "
                              f"{r.shape}")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 1:
        raise QuantfleetError(f"block_stats: n_splits must be an int >= 1, got {n_splits!r}")
    s = int(n_splits)
    n, t = r.shape
    block = t // s
    count = np.zeros((s, n))
    mean = np.zeros((s, n))
    m2 = np.zeros((s, n))
    if block > 0 and n > 0:
        block_moments(r, t - block * s, block, count, mean, m2)
    return BlockStats(count, mean, m2, t)
