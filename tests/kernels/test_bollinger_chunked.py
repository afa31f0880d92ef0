"""bollinger's fast path: the window-by-window per-chunk SMA / population-std rows (the path for
closes the vector lanes do not take) against the whole-series ``sma`` / ``rolling_pstd`` bit
for bit (and against their definition), the exact division, and the fast path against the
per-bar kernel when one window has many k values (bit rows of slots past the first six).
The vector lanes: tests/kernels/test_bollinger_lanes.py."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.kernels.fastpath import FP_CHUNK
from quantfleet.kernels.indicators import rolling_pstd, sma
from quantfleet.strategies.reversion import _bollinger_chunk_tables
from tests.kernels.test_fastpath import _check, _close, _market


def chunked(close: np.ndarray, wins: np.ndarray, chunk: int, group: int):
    """The rows of every window, built ``chunk`` bars and ``group`` windows at a time (the
    state carried from chunk to chunk), stitched into (windows, bars) tables."""
    n = close.size
    g_n = wins.size
    st_ = np.zeros((g_n, 3))
    mid = np.full((g_n, n), -1.0)
    sd = np.full((g_n, n), -1.0)
    m = np.full((group, chunk + 3), -2.0)
    s = np.full((group, chunk + 3), -2.0)
    scratch = np.full((3, group, chunk + 3), -2.0)
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        for g0 in range(0, g_n, group):
            g1 = min(g_n, g0 + group)
            _bollinger_chunk_tables(close, wins[g0:g1], st_[g0:g1], c0, c1, m, s, scratch)
            mid[g0:g1, c0:c1] = m[:g1 - g0, :c1 - c0]
            sd[g0:g1, c0:c1] = s[:g1 - g0, :c1 - c0]
    return mid, sd


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), flat=st.booleans(),
       nans=st.integers(0, 3), scale=st.sampled_from([1e-3, 1.0, 1e6]),
       windows=st.lists(st.integers(0, 450), min_size=1, max_size=12, unique=True),
       chunk=st.sampled_from([1, 2, 7, 16, 64, 333, FP_CHUNK]), group=st.integers(1, 9))
def test_chunked_rows_are_sma_and_rolling_pstd_bit_for_bit(seed, n, flat, nans, scale, windows,
                                                           chunk, group):
    """Windows under 17 bars (two passes every bar), from 17 (sliding, recomputed every w
    bars), longer than the data, 0; flat stretches (a std of exactly 0), NaN closes, chunks of
    one bar up to FP_CHUNK, in any window order."""
    rng = np.random.default_rng(seed)
    close = scale * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    if flat and n > 4:
        a = int(rng.integers(0, n - 2))
        close[a:a + int(rng.integers(2, 60))] = close[a]
    for i in rng.integers(0, n, nans):
        close[i] = np.nan
    wins = np.array(windows, dtype=np.float64)
    mid, sd = chunked(close, wins, chunk, group)
    for g, w in enumerate(windows):
        np.testing.assert_array_equal(mid[g], sma(close, w))
        np.testing.assert_array_equal(sd[g], rolling_pstd(close, w))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300),
       windows=st.lists(st.integers(1, 80), min_size=1, max_size=6, unique=True))
def test_chunked_rows_are_the_mean_and_std_of_the_last_w_bars(seed, n, windows):
    """The definition: mean and ddof=0 std of the last w closes, NaN before bar w - 1."""
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0.0, 0.01, n)))
    mid, sd = chunked(close, np.array(windows, dtype=np.float64), 64, 4)
    for g, w in enumerate(windows):
        for t in range(n):
            if t < w - 1:
                assert np.isnan(mid[g, t]) and np.isnan(sd[g, t])
            else:
                x = close[t - w + 1:t + 1]
                assert abs(mid[g, t] - x.mean()) <= 1e-9 * x.mean()
                assert abs(sd[g, t] - x.std()) <= 1e-7 * x.mean()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000), long_short=st.booleans(),
       start=st.integers(0, 300), flat=st.booleans())
def test_fast_path_with_many_k_per_window(seed, n, long_short, start, flat):
    """Up to 15 k values (repeats too) on each of a few windows: combos of one window share its
    rows and exit flags over several flag passes; each agrees with the per-bar kernel."""
    rng = np.random.default_rng(seed)
    market = _market(_close(rng, n, 0.02, False, flat), rng)
    rows = []
    for w in rng.choice([2, 5, 16, 17, 40, n + 3], size=3, replace=False):
        for k in rng.choice([0.0, 0.5, 1.0, 1.3, 2.0, 3.0], size=int(rng.integers(1, 16))):
            rows.append((float(w), float(k)))
    params = np.array(rows)[rng.permutation(len(rows))]
    _check("bollinger", market, params, 0.0005, long_short, start, 4)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), w=st.integers(1, 10**6), root=st.booleans(),
       kind=st.sampled_from(["normal", "bits", "multiple", "special"]))
def test_divide_is_the_division_bit_for_bit(seed, w, root, kind):
    """The multiply-and-correct division: every bit of ``a / w`` (and ``sqrt(a / w)``), on
    values of every exponent (random bit patterns: subnormals, huge values, the fallback row),
    exact multiples of w (ties and exact quotients), zeros of both signs, NaN and inf."""
    from quantfleet.strategies.reversion import _divide

    rng = np.random.default_rng(seed)
    if kind == "normal":
        a = rng.normal(0.0, 1.0, 5000) * 10.0 ** float(rng.integers(-40, 40))
    elif kind == "bits":
        a = rng.integers(0, 2**63, 5000, dtype=np.int64).view(np.float64)
        a = a[np.isfinite(a)] * rng.choice([-1.0, 1.0], a.size)[np.isfinite(a)]
    elif kind == "multiple":
        a = np.round(rng.normal(0.0, 1e6, 5000)) * w + rng.choice([0.0, 0.5, -0.5], 5000)
    else:
        a = rng.choice([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, 1e-310, 3.0], 200)
    if root:
        a = np.abs(a)
    with np.errstate(invalid="ignore"):
        ref = np.sqrt(a / w) if root else a / w
    got = a.copy()
    _divide(got, w, root)
    np.testing.assert_array_equal(got.view(np.int64)[~np.isnan(ref)],
                                  ref.view(np.int64)[~np.isnan(ref)])
    assert np.isnan(got[np.isnan(ref)]).all()
