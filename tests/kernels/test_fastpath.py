"""The fast path (kernels/fastpath.py) against the per-bar kernels it replaces, and its
primitives against slow numpy references written from their definitions.

Agreement is to rounding, measured on each metric's own scale (docs/conventions.md, "Fast
path"): trade counts, exposure and turnover exactly; total_return, cagr and max_drawdown to
1e-12 of the equity (1 + |value|); Sharpe and Sortino to 1e-12 of the magnitudes their sums are
made of; per-block means and M2 to 1e-12 of the block's terms.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.backtest.blocks import block_stats
from quantfleet.backtest.job import run_blocks
from quantfleet.data.market import MarketData
from quantfleet.kernels.fastpath import (
    FP_CHUNK,
    fp_chunk,
    fp_prefix,
    fp_prepare,
    rmq_minmax,
)
from quantfleet.strategies import get

FAST = ("sma_cross", "ema_cross", "sma_trend", "bollinger", "donchian", "rsi", "stochastic",
        "ichimoku", "vwap_reversion", "nw_envelope", "atr_stop")
TOL = 1e-12
PPY = 252.0


# -- data ---------------------------------------------------------------------------------------

def _close(rng: np.random.Generator, n: int, vol: float, jumps: bool, flat: bool) -> np.ndarray:
    """A random walk; ``jumps``: a few bars move 30-120 % (a short's equity can go <= 0 on one);
    ``flat``: stretches where the close repeats exactly."""
    r = rng.normal(0.0, vol, n)
    if jumps and n > 3:
        at = rng.integers(1, n, size=max(1, n // 50))
        r[at] = rng.choice([-0.5, 0.3, 0.8], size=at.size)
    close = 100.0 * np.exp(np.cumsum(r))
    if flat and n > 10:
        for a in rng.integers(0, n - 5, size=max(1, n // 40)):
            close[a:a + int(rng.integers(2, 20))] = close[a]
    return close


def _market(close: np.ndarray, rng: np.random.Generator) -> MarketData:
    n = close.size
    ts = (np.datetime64("2020-01-01") + np.arange(n)).astype("datetime64[ns]")
    spread = np.abs(rng.normal(0.0, 0.01, n))
    return MarketData(ts, ("X",), close[None, :], high=(close * (1 + spread))[None, :],
                      low=(close * (1 - spread))[None, :],
                      volume=rng.uniform(1e3, 1e5, n)[None, :])


def _params(name: str, rng: np.random.Generator, n: int, k: int = 10) -> np.ndarray:
    big = max(n + 5, 3)  # windows longer than the data: combos that never trade

    def w(lo: int = 1) -> int:
        return int(rng.choice([rng.integers(lo, 12), rng.integers(lo, 60), big]))

    rows = []
    for _ in range(k):
        if name in ("sma_cross", "ema_cross"):
            f = w(1)
            rows.append((f, f + w(1)))
        elif name == "sma_trend":
            rows.append((w(2),))
        elif name in ("bollinger", "vwap_reversion"):
            rows.append((w(2), float(rng.choice([0.0, 0.5, 1.3, 2.0, 3.0]))))
        elif name == "donchian":
            x = w(1)
            rows.append((x + int(rng.integers(0, 20)), x))
        elif name == "rsi":
            lo = float(rng.uniform(10, 50))
            rows.append((w(2), lo, lo + float(rng.uniform(0, 40))))
        elif name == "stochastic":
            lo = float(rng.uniform(10, 50))
            rows.append((w(1), w(2), lo, lo + float(rng.uniform(0, 40))))
        elif name == "ichimoku":
            a = w(1)
            b = a + w(1)
            rows.append((a, b, b + w(1)))
        elif name == "nw_envelope":
            win = w(2)
            rows.append((float(rng.uniform(0.1, win)), float(rng.uniform(0, 4)), win))
        else:  # atr_stop
            rows.append((w(2), w(1), float(rng.uniform(0, 5))))
    return np.array(rows, dtype=float)


# -- comparison ---------------------------------------------------------------------------------

def _assert_agree(fast: np.ndarray, ref: np.ndarray, rets: np.ndarray, ppy: float) -> None:
    """One combo's metric row: fast vs per-bar, each metric on its own scale."""
    def close(i: int, scale: float) -> None:
        a, b = fast[i], ref[i]
        if np.isnan(b) or np.isinf(b):
            assert (np.isnan(a) and np.isnan(b)) or a == b, (i, a, b)
            return
        assert abs(a - b) <= TOL * scale, (i, a, b, scale)

    for i in (6, 8, 9):  # trades, exposure, turnover: exactly (NaN exposure with no bars)
        assert fast[i] == ref[i] or (np.isnan(fast[i]) and np.isnan(ref[i])), (i, fast, ref)
    close(7, 1.0)
    close(0, 1.0 + abs(ref[0]))
    close(1, 1.0 + abs(ref[1]))
    close(4, 1.0 + abs(ref[4]))  # 1 - eq/peak: to 1e-12 of the equity's scale, as total return
    close(5, (1.0 + abs(ref[1])) / ref[4] if ref[4] > 0 else 1.0)
    n = rets.size
    if n:
        mabs = np.mean(np.abs(rets))
        sd = np.std(rets, ddof=1) if n > 1 else 0.0
        s2 = np.sum(rets * rets)
        m2 = np.sum((rets - rets.mean()) ** 2)
        dsd = math.sqrt(np.sum(np.minimum(rets, 0.0) ** 2) / n)
        root = math.sqrt(ppy)
        close(2, root * mabs / sd + abs(ref[2]) * s2 / m2 if sd > 0 and m2 > 0 else 1.0)
        close(3, root * mabs / dsd + abs(ref[3]) if dsd > 0 else 1.0)


def _assert_blocks(got, rets: np.ndarray, n_splits: int) -> None:
    _, count, mean, m2, bars = got
    ref = block_stats(rets, n_splits)
    assert bars == ref.bars
    np.testing.assert_array_equal(count, ref.count)
    if ref.block == 0:
        return
    d = ref.rows_dropped
    blocks = rets[:, d:d + ref.block * n_splits].reshape(rets.shape[0], n_splits, ref.block)
    scale_mean = np.abs(blocks).mean(axis=2).T + np.abs(ref.mean)
    scale_m2 = (blocks * blocks).sum(axis=2).T
    assert np.all(np.abs(mean - ref.mean) <= TOL * scale_mean + 1e-300)
    assert np.all(np.abs(m2 - ref.m2) <= TOL * scale_m2 + 1e-300)


def _check(name: str, market: MarketData, params: np.ndarray, fee_rate: float, long_short: bool,
           start: int, n_splits: int, ppy: float = PPY) -> None:
    strat = get(name)
    kw = {"fee_rate": fee_rate, "ppy": ppy, "long_short": long_short, "start": start}
    ref, rets = strat.run_asset(market, 0, params, returns=True, **kw)
    got = strat.run_asset_blocks(market, 0, params, n_splits, **kw)
    assert got is not None
    for c in range(params.shape[0]):
        _assert_agree(got[0][c], ref[c], rets[c], ppy)
    _assert_blocks(got, rets, n_splits)
    # run_asset without series takes the fast path (no blocks: the sums are not split)
    np.testing.assert_array_equal(strat.run_asset(market, 0, params, **kw)[0],
                                  strat.run_asset_blocks(market, 0, params, 0, **kw)[0])


# -- every fast strategy vs its per-bar kernel, random data ---------------------------------------

@pytest.mark.parametrize("name", FAST)
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    vol=st.sampled_from([0.002, 0.02, 0.08]),
    jumps=st.booleans(),
    flat=st.booleans(),
    fee_bps=st.sampled_from([0.0, 5.0, 25.0]),
    long_short=st.booleans(),
    start=st.integers(0, 60),
    n_splits=st.sampled_from([1, 4, 16]),
)
def test_fast_path_matches_per_bar_kernel(name, seed, n, vol, jumps, flat, fee_bps, long_short,
                                          start, n_splits):
    rng = np.random.default_rng(seed)
    market = _market(_close(rng, n, vol, jumps, flat), rng)
    _check(name, market, _params(name, rng, n), fee_bps / 1e4, long_short, start, n_splits)


@pytest.mark.parametrize("name", FAST)
def test_fast_path_long_data_crosses_chunks(name):
    """Several chunks of bars and range-query blocks: held stretches crossing both."""
    rng = np.random.default_rng(7)
    market = _market(_close(rng, 9000, 0.01, True, True), rng)
    params = get(name).space.sample(np.random.default_rng(1), 12)
    for long_short, fee in ((False, 0.0), (True, 0.001)):
        _check(name, market, params, fee, long_short, 500, 16)


# -- bundled data -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FAST)
def test_fast_path_on_bundled_data(name):
    from quantfleet.data import load

    market = load("sp500_ohlcv")
    params = get(name).space.sample(np.random.default_rng(3), 40)
    for long_short in (False, True):
        for fee in (0.0, 0.0005):
            _check(name, market, params, fee, long_short, 250, 16, ppy=market.periods_per_year)


# -- dispatch -------------------------------------------------------------------------------------

def test_run_blocks_uses_the_fast_path_and_agrees_with_the_per_bar_reduction():
    rng = np.random.default_rng(11)
    market = _market(_close(rng, 700, 0.02, False, False), rng)
    strat = get("sma_cross")
    params = strat.space.sample(rng, 30)
    kw = {"fee_rate": 0.001, "ppy": PPY, "long_short": True, "start": 40, "stop": 650,
          "warm_from": None}
    m_fast, b_fast = run_blocks(strat, market, 0, params, 8, 7, **kw)
    m_slow, b_slow = run_blocks(dataclasses.replace(strat, fast=None), market, 0, params, 8, 7,
                                **kw)
    assert b_fast.bars == b_slow.bars == 610
    np.testing.assert_array_equal(b_fast.count, b_slow.count)
    np.testing.assert_allclose(b_fast.mean, b_slow.mean, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(b_fast.m2, b_slow.m2, rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(m_fast[:, 6], m_slow[:, 6])
    np.testing.assert_allclose(m_fast, m_slow, rtol=1e-10, atol=1e-12)


def test_a_gap_in_the_closes_falls_back_to_the_per_bar_kernel():
    rng = np.random.default_rng(5)
    close = _close(rng, 300, 0.02, False, False)
    close[150] = np.nan
    market = _market(close, rng)
    strat = get("sma_cross")
    params = np.array([[5.0, 20.0], [10.0, 50.0]])
    assert strat.run_asset_blocks(market, 0, params, 4) is None
    slow = dataclasses.replace(strat, fast=None)
    np.testing.assert_array_equal(strat.run_asset(market, 0, params)[0],
                                  slow.run_asset(market, 0, params)[0])


# -- primitives vs numpy references ---------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), start=st.integers(0, 50))
def test_fp_prefix_is_the_exactly_rounded_running_sum(seed, n, start):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n) * 10.0 ** rng.integers(-8, 8, n)
    p = fp_prefix(x, start)
    assert p.shape == (n + 1, 2)
    for i in range(n + 1):
        exact = math.fsum(x[start:i]) if i > start else 0.0
        assert p[i, 0] == exact  # hi is the sum rounded once
        assert abs(p[i, 0] + p[i, 1] - exact) <= abs(exact) * 1e-15 + 1e-300


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000), long_short=st.booleans())
def test_chunk_tables_and_range_minmax(seed, n, long_short):
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.05, n)))
    c0 = int(rng.integers(0, n))
    c1 = int(rng.integers(c0 + 1, min(n, c0 + FP_CHUNK) + 1))
    m = c1 - c0
    fp = fp_prepare(close, long_short)
    fp_chunk(fp, c0, c1)
    _, T, V, SP, LG, info = fp
    assert tuple(info) == (c0, c1, 1.0)
    r = np.r_[0.0, close[1:] / close[:-1] - 1.0]
    np.testing.assert_array_equal(V[0, :m], close[c0:c1])
    for side, sg in ((0, 1.0), (1, -1.0))[: 2 if long_short else 1]:
        g = (1.0 + sg * r[c0:c1]) - 1.0
        for i in (0, m // 3, m):
            seg = g[:i]
            for col, vals in ((0, seg), (2, seg * seg), (4, np.where(seg < 0, seg * seg, 0.0))):
                got = T[i, 1 + 6 * side + col] + T[i, 2 + 6 * side + col]
                assert abs(got - math.fsum(vals)) <= 1e-15 * np.abs(vals).sum() + 1e-300
        if side == 1:
            logs = [math.fsum(np.log1p(-r[c0:c0 + i + 1])) for i in range(m)]
            np.testing.assert_allclose(V[1, :m], logs, rtol=0, atol=1e-13)
        for _ in range(30):
            a = int(rng.integers(0, m))
            b = int(rng.integers(a + 1, m + 1))
            mn, mx = rmq_minmax(SP, LG, side, a, b)
            assert mn == V[side, a:b].min() and mx == V[side, a:b].max()
