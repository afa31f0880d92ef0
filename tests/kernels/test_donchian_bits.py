"""donchian's fast path by channel ages and per-window bit rows (strategies/breakout.py) against
numpy references written from the definitions and, bit for bit, against the fast path on the
per-bar kernel's channel tables (the path it replaces, still taken when high or low has a NaN).

Data: random walks with flat stretches and prices on a coarse grid (closes equal to earlier
highs and lows: ties), or "wild" high/low unrelated to the close (high below low, closes
outside the bar's range); windows below 1, fractional, repeated once truncated, and longer than
the data; several chunks of FP_CHUNK bars.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.data.market import MarketData
from quantfleet.kernels.fastpath import FP_CHUNK
from quantfleet.kernels.indicators import unique_windows
from quantfleet.kernels.metrics import N_METRICS
from quantfleet.strategies import get
from quantfleet.strategies.breakout import (
    _breakout_ages,
    _channel_ages,
    _channel_bits,
    _channel_tables,
    _donchian_fast_bits,
    _donchian_fast_tables,
    donchian_fast,
)


def _ohlc(seed: int, n: int, grid: bool, flat: bool, wild: bool):
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    if flat and n > 10:
        for a in rng.integers(0, n - 5, size=max(1, n // 30)):
            close[a:a + int(rng.integers(2, 40))] = close[a]
    if wild:
        high = close * (1.0 + rng.normal(0.0, 0.01, n))
        low = close * (1.0 + rng.normal(0.0, 0.01, n))
    else:
        spread = np.abs(rng.normal(0.0, 0.005, n))
        high = close * (1.0 + spread)
        low = close * (1.0 - spread)
    if grid:
        close, high, low = (np.maximum(np.round(x * 2.0) / 2.0, 0.5) for x in (close, high, low))
    return high, low, close


def _windows(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    pick = [int(rng.integers(1, 12)), int(rng.integers(1, 80)), n, n + 1, n + 7,
            float(rng.uniform(1.0, 30.0)), 0.0, 0.5]
    return np.array([pick[int(rng.integers(0, len(pick)))] for _ in range(k)], dtype=np.float64)


def _ref_age(series: np.ndarray, x: float, t: int, above: bool) -> int:
    """t - the last s < t with series[s] >= x (above) / <= x (below); t + 1 if none."""
    hit = np.flatnonzero(series[:t] >= x) if above else np.flatnonzero(series[:t] <= x)
    return t - (int(hit[-1]) if hit.size else -1)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), cap=st.integers(1, 450),
       grid=st.booleans(), flat=st.booleans(), wild=st.booleans())
def test_breakout_ages_are_the_distance_to_the_last_bar_reaching_the_close(seed, n, cap, grid,
                                                                           flat, wild):
    high, low, close = _ohlc(seed, n, grid, flat, wild)
    up, dn = _breakout_ages(high, low, close, cap)
    for t in range(n):
        assert up[t] == min(_ref_age(high, close[t], t, True), cap)
        assert dn[t] == min(_ref_age(low, close[t], t, False), cap)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5000), grid=st.booleans(),
       flat=st.booleans(), wild=st.booleans(), k=st.integers(1, 8))
def test_channel_bits_are_the_channel_tests_of_every_window(seed, n, grid, flat, wild, k):
    """Bit i of a window's rows, chunk by chunk: close above the highest high / below the lowest
    low of the previous w bars (numpy, from the definition, and the per-bar kernel's tables);
    no bit before bar w or for a window below 1 bar."""
    high, low, close = _ohlc(seed, n, grid, flat, wild)
    rng = np.random.default_rng(seed)
    uniq = unique_windows(_windows(rng, n, k))[0]
    lo, rank, up, dn = _channel_ages(high, low, close, uniq)
    hh, ll = _channel_tables(high, low, uniq)
    want_u = np.zeros((uniq.size, n), dtype=bool)
    want_d = np.zeros((uniq.size, n), dtype=bool)
    for r, win in enumerate(uniq):
        w = int(win)
        if 1 <= w < n:
            hmax = np.lib.stride_tricks.sliding_window_view(high, w).max(axis=1)[:n - w]
            lmin = np.lib.stride_tricks.sliding_window_view(low, w).min(axis=1)[:n - w]
            want_u[r, w:] = close[w:] > hmax
            want_d[r, w:] = close[w:] < lmin
            # the per-bar kernel's comparisons on its own tables, from bar w
            np.testing.assert_array_equal(want_u[r, w:], close[w:] > hh[r, w - 1:n - 1])
            np.testing.assert_array_equal(want_d[r, w:], close[w:] < ll[r, w - 1:n - 1])
    rows = np.full((2 * uniq.size + 1, FP_CHUNK >> 6), 12345, dtype=np.uint64)  # stale bits
    for c0 in range(0, n, FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        _channel_bits(up, dn, lo, rank, c0, c1, rows)
        bits = np.unpackbits(rows.view(np.uint8), axis=1, bitorder="little")
        np.testing.assert_array_equal(bits[:uniq.size, :c1 - c0], want_u[:, c0:c1])
        np.testing.assert_array_equal(bits[uniq.size:2 * uniq.size, :c1 - c0], want_d[:, c0:c1])
        assert not bits[:, c1 - c0:].any() and not bits[2 * uniq.size].any()


def _run(fast, high, low, close, params, fee, long_short, start, n_splits):
    n = close.size
    bl = max(n - start, 0) // n_splits if n_splits else 0
    ns = n_splits if bl > 0 else 0
    blk = np.array([max(n - start, 0) % n_splits + start if ns else 0, bl, ns], dtype=np.int64)
    out = np.empty((params.shape[0], N_METRICS))
    bsum = np.zeros((max(ns, 1), params.shape[0]))
    bsq = np.zeros_like(bsum)
    fast(high, low, close, params, fee, 252.0, long_short, start, out, bsum, bsq, blk)
    return out, bsum, bsq


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 7000), grid=st.booleans(),
       flat=st.booleans(), wild=st.booleans(), long_short=st.booleans(),
       fee=st.sampled_from([0.0, 0.001]), start_frac=st.floats(0.0, 1.05),
       n_splits=st.sampled_from([0, 1, 7]))
def test_bits_path_books_what_the_table_path_books(seed, n, grid, flat, wild, long_short, fee,
                                                    start_frac, n_splits):
    """The same change bars for every combo, so the same booking: metrics and block sums equal
    to the last bit (start anywhere: in a later chunk, at a chunk's first bar, past the data)."""
    high, low, close = _ohlc(seed, n, grid, flat, wild)
    rng = np.random.default_rng(seed)
    params = np.stack([_windows(rng, n, 24), _windows(rng, n, 24)], axis=1)
    start = int(start_frac * n)
    if rng.random() < 0.2:
        start = FP_CHUNK * int(rng.integers(0, n // FP_CHUNK + 1))
    got = _run(_donchian_fast_bits, high, low, close, params, fee, long_short, start, n_splits)
    want = _run(_donchian_fast_tables, high, low, close, params, fee, long_short, start, n_splits)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000), where=st.sampled_from(
    ["high", "low", "both"]), long_short=st.booleans())
def test_a_nan_in_high_or_low_takes_the_table_path(seed, n, where, long_short):
    high, low, close = _ohlc(seed, n, True, True, False)
    rng = np.random.default_rng(seed)
    at = rng.integers(0, n, size=max(1, n // 100))
    if where in ("high", "both"):
        high[at] = np.nan
    if where in ("low", "both"):
        low[rng.integers(0, n, size=max(1, n // 100))] = np.nan
    params = np.stack([_windows(rng, n, 10), _windows(rng, n, 10)], axis=1)
    def public(high, low, close, *rest):  # the strategy's signature: open, volume, extra unused
        donchian_fast(close, high, low, close, close, close, *rest)

    got = _run(public, high, low, close, params, 0.001, long_short, n // 3, 4)
    want = _run(_donchian_fast_tables, high, low, close, params, 0.001, long_short, n // 3, 4)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_fast_path_with_nan_highs_keeps_the_per_bar_kernels_decisions():
    """NaN highs and lows (the per-bar kernel compares against its deque's tables as they are):
    the same trades, exposure and turnover as the per-bar kernel, through run_asset."""
    n = 5000
    high, low, close = _ohlc(3, n, True, True, False)
    rng = np.random.default_rng(3)
    high[rng.integers(0, n, 60)] = np.nan
    low[rng.integers(0, n, 60)] = np.nan
    ts = (np.datetime64("2020-01-01") + np.arange(n)).astype("datetime64[ns]")
    market = MarketData(ts, ("X",), close[None, :], high=high[None, :], low=low[None, :],
                        volume=np.ones((1, n)))
    params = np.array([[20.0, 10.0], [55.0, 20.0], [10.0, 5.0], [100.0, 50.0], [3.0, 3.0]])
    strat = get("donchian")
    for long_short in (False, True):
        fast, _ = strat.run_asset(market, 0, params, long_short=long_short, start=300)
        slow, _ = strat.run_asset(market, 0, params, long_short=long_short, start=300,
                                  returns=True)
        np.testing.assert_array_equal(fast[:, 6], slow[:, 6])  # trades
        np.testing.assert_array_equal(fast[:, 8:10], slow[:, 8:10])  # exposure, turnover
        assert (slow[:, 6] > 0).all()
