"""Per-block return statistics (what PBO needs of each trial) against a per-block loop."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.backtest.blocks import BlockStats, block_stats
from quantfleet.errors import QuantfleetError


def _returns(seed: int, n: int, t: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0003, 0.01, (n, t)) + 5.0  # an offset: M2 must not lose it to cancellation
    x[rng.random((n, t)) < 0.05] = np.nan
    x[rng.random((n, t)) < 0.01] = np.inf
    x[rng.random((n, t)) < 0.01] = -np.inf
    x[2] = np.nan  # a trial without data
    x[3, 3:28] = np.nan  # block 0 of trial 3 without data
    return x


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_block_stats_against_a_per_block_loop(layout):
    x = _returns(5, 7, 203)  # (trials, bars): the kernels' layout
    if layout == "F":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.stack([x, -x], axis=1)[:, 0, :]  # like run_asset's rets[:, 0, k:]
    b = block_stats(x, 8)
    assert (b.n_splits, b.n_trials, b.bars, b.block, b.rows_dropped) == (8, 7, 203, 25, 3)
    for j in range(7):
        for k in range(8):
            r = x[j, 3 + 25 * k: 3 + 25 * (k + 1)]
            r = r[np.isfinite(r)]
            assert b.count[k, j] == r.size
            mu = r.mean() if r.size else 0.0
            assert b.mean[k, j] == pytest.approx(mu, rel=1e-14, abs=0.0)
            assert b.m2[k, j] == pytest.approx(((r - mu) ** 2).sum(), rel=1e-9, abs=1e-30)
    assert (b.count[:, 2] == 0).all() and (b.mean[:, 2] == 0).all() and b.count[0, 3] == 0
    # each trial is reduced on its own: the same bits alone, in any group, in any layout
    alone = BlockStats.concat([block_stats(x[j:j + 1], 8) for j in range(7)])
    ref = block_stats(np.ascontiguousarray(x), 8)
    for f in ("count", "mean", "m2"):
        assert getattr(alone, f).tobytes() == getattr(b, f).tobytes()
        assert getattr(ref, f).tobytes() == getattr(b, f).tobytes()


def test_too_short_series_and_no_trials():
    b = block_stats(np.ones((3, 10)), 16)
    assert b.block == 0 and b.rows_dropped == 10 and (b.count == 0).all()
    assert block_stats(np.empty((0, 50)), 4).n_trials == 0


def test_block_stats_errors_name_the_fix():
    with pytest.raises(QuantfleetError, match=r"2-D \(trials, bars\)"):
        block_stats(np.zeros(10), 2)
    with pytest.raises(QuantfleetError, match="n_splits must be an int >= 1"):
        block_stats(np.zeros((2, 10)), 0)
    with pytest.raises(QuantfleetError, match="one shape"):
        BlockStats(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 2)), 10)
    with pytest.raises(QuantfleetError, match="cut differently"):
        BlockStats.concat([block_stats(np.zeros((1, 100)), 4), block_stats(np.zeros((1, 99)), 4)])
    with pytest.raises(QuantfleetError, match="at least one part"):
        BlockStats.concat([])
