"""bollinger's eight-lane chunk tables (``_boll_lanes``): each lane's SMA / population-std rows
against the whole-series ``sma`` / ``rolling_pstd`` bit for bit, chunk by chunk with the state
carried, on closes the vector path takes and on closes it leaves to the window-by-window path
(NaN, zero, negative, infinite, huge, tiny); their bit rows against ``band_step`` itself; and the
fast path against the per-bar kernel on a grid of consecutive windows over several chunks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.kernels.fastpath import FP_CHUNK
from quantfleet.kernels.indicators import rolling_pstd, sma
from quantfleet.strategies.reversion import (
    _BOLL_WORDS,
    _LANES,
    _boll_inputs,
    _boll_lanes,
    _boll_lanes_vec,
    band_step,
)
from tests.kernels.test_fastpath import _check, _close, _market


def _lanes(close, wins, ks, long_short, chunk):
    """Every window's rows (windows, bars) and bit rows (windows, slots + 2, bars) as bool,
    built ``chunk`` bars and eight windows (one call) at a time, the state carried (the short
    exit row: long/short only)."""
    n = close.size
    nw = wins.size
    nk = ks.shape[1]
    pad, closep, bad = _boll_inputs(close, wins)
    mid = np.full((nw, n), -1.0)
    sd = np.full((nw, n), -1.0)
    rows = np.zeros((nw, nk + 2, n), dtype=bool)
    states = [np.zeros((min(_LANES, nw - g0), 3)) for g0 in range(0, nw, _LANES)]
    m = np.full(_LANES * FP_CHUNK + 8, -2.0)
    s = m.copy()
    kfin = bool(np.isfinite(ks).all())
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        nc = c1 - c0
        for q, g0 in enumerate(range(0, nw, _LANES)):
            g1 = min(nw, g0 + _LANES)
            kl = np.zeros(_LANES * nk)
            for g in range(_LANES):
                kl[g::_LANES] = ks[min(g0 + g, g1 - 1)]
            bits = np.full(_LANES * _BOLL_WORDS * (nk + 2), 0xA5A5A5A5A5A5A5A5, dtype=np.uint64)
            _boll_lanes(close, closep, pad, bad, wins[g0:g1], states[q], c0, c1, kl, nk,
                        long_short, kfin, True, m, s, bits, np.full(_LANES * FP_CHUNK + 8, -3.0),
                        np.full(_LANES * FP_CHUNK + 8, -3.0), np.full((2, FP_CHUNK + 32), -3.0),
                        np.full((_LANES, FP_CHUNK + 24), -3.0),
                        np.full((_LANES, FP_CHUNK + 24), -3.0),
                        np.full((3, _LANES, FP_CHUNK + 24), -3.0))
            b = bits.reshape(nk + 2, _BOLL_WORDS, _LANES)
            for g in range(g1 - g0):
                mid[g0 + g, c0:c1] = m[g:_LANES * nc:_LANES]
                sd[g0 + g, c0:c1] = s[g:_LANES * nc:_LANES]
                for r in range(nk + 2):
                    words = np.ascontiguousarray(b[r, :(nc + 63) // 64, g])
                    flags = np.unpackbits(words.view(np.uint8), bitorder="little")
                    assert not flags[nc:].any(), "bits past the chunk's end"
                    rows[g0 + g, r, c0:c1] = flags[:nc].astype(bool)
    return mid, sd, rows


def _assert_rows(close, wins, ks, long_short, chunk):
    mid, sd, rows = _lanes(close, wins, ks, long_short, chunk)
    nk = ks.shape[1]
    for g, w in enumerate(wins):
        ref_m = sma(close, int(w))
        ref_s = rolling_pstd(close, int(w))
        np.testing.assert_array_equal(mid[g], ref_m)
        np.testing.assert_array_equal(sd[g], ref_s)
        with np.errstate(invalid="ignore", over="ignore"):
            for t in range(close.size):
                x, mi, sv = close[t], ref_m[t], ref_s[t]
                for j in range(nk):
                    k = ks[g, j]
                    lo, up = mi - k * sv, mi + k * sv
                    assert rows[g, j, t] == (band_step(0.0, x, lo, mi, up, long_short) != 0.0)
                    if band_step(1.0, x, lo, mi, up, long_short) != 1.0:
                        assert rows[g, nk, t], (g, t, "long exit")
                    if long_short and band_step(-1.0, x, lo, mi, up, long_short) != -1.0:
                        assert rows[g, nk + 1, t], (g, t, "short exit")


def _windows(draw_list, consecutive):
    wins = np.array(draw_list, dtype=np.float64)
    if consecutive:  # the vector lanes' one-load path: eight consecutive windows, descending
        wins = np.arange(consecutive + 7, consecutive - 1, -1, dtype=np.float64)
    return wins


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), flat=st.booleans(),
       scale=st.sampled_from([1e-3, 1.0, 1e6, 2.0 ** 190]),
       windows=st.lists(st.integers(1, 450), min_size=1, max_size=12, unique=True),
       consecutive=st.sampled_from([0, 0, 1, 10, 17, 40]), nk=st.integers(1, 8),
       long_short=st.booleans(), chunk=st.sampled_from([1, 7, 64, 100, 333, FP_CHUNK]))
def test_lanes_on_in_range_closes(seed, n, flat, scale, windows, consecutive, nk, long_short,
                                  chunk):
    """Positive closes within [2**-200, 2**200] (the vector path): windows under 17 bars (two
    passes every bar), from 17 (sliding, recomputed every w bars), longer than the data,
    consecutive (one load a bar) or not, partial groups, flat stretches (a std of exactly 0),
    chunks of one bar up to FP_CHUNK; k slots past six (the second pass of bit rows)."""
    rng = np.random.default_rng(seed)
    close = scale * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    if flat and n > 4:
        a = int(rng.integers(0, n - 2))
        close[a:a + int(rng.integers(2, 60))] = close[a]
    wins = _windows(windows, consecutive)
    ks = rng.choice([0.0, 0.5, 1.0, 1.3, 2.0, 3.0], size=(wins.size, nk))
    _assert_rows(close, wins, ks, long_short, chunk)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300),
       special=st.sampled_from([np.nan, 0.0, -5.0, np.inf, -np.inf, 1e300, 1e-300, 2.0 ** 201]),
       count=st.integers(1, 3), windows=st.lists(st.integers(0, 120), min_size=1, max_size=10,
                                                 unique=True),
       kinf=st.booleans(), long_short=st.booleans(), chunk=st.sampled_from([5, 64, FP_CHUNK]))
def test_lanes_on_other_closes(seed, n, special, count, windows, kinf, long_short, chunk):
    """Closes outside the vector path's range (NaN, zero, negative, inf, huge, tiny) in some
    chunks, windows of 0 bars, an infinite k: the window-by-window rows in those chunks, the
    vector lanes in the others, the state carried between them; the same bits."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    close[rng.integers(0, n, count)] = special
    wins = np.array(windows, dtype=np.float64)
    ks = rng.choice([0.0, 0.5, 2.0, 3.0], size=(wins.size, 3))
    if kinf:
        ks[rng.integers(0, wins.size), rng.integers(0, 3)] = np.inf
    _assert_rows(close, wins, ks, long_short, chunk)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 600),
       windows=st.lists(st.integers(1, 200), min_size=1, max_size=8, unique=True))
def test_vector_path_is_taken_on_in_range_closes(seed, n, windows):
    """On positive closes within range the vector lanes build the rows (no fallback)."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, n)))
    wins = np.array(windows, dtype=np.float64)
    pad, closep, _ = _boll_inputs(close, wins)
    wl = np.array([int(wins[min(g, wins.size - 1)]) for g in range(_LANES)], dtype=np.int64)
    state = np.zeros((wins.size, 3))
    m = np.empty(_LANES * FP_CHUNK + 8)
    bits = np.zeros(_LANES * _BOLL_WORDS * 3, dtype=np.uint64)
    for c0 in range(0, n, 128):
        c1 = min(n, c0 + 128)
        assert _boll_lanes_vec(close, closep, pad, wl, wins.size, state, c0, c1,
                               np.ones(_LANES), 1, False, True, True, m, m.copy(), bits, m.copy(),
                               m.copy(), np.empty((2, FP_CHUNK + 32)))
        for g, w in enumerate(windows):
            np.testing.assert_array_equal(m[g:_LANES * (c1 - c0):_LANES], sma(close, w)[c0:c1])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2000, 7000), long_short=st.booleans(),
       start=st.integers(0, 3000), lo=st.integers(2, 30))
def test_fast_path_on_a_grid_of_consecutive_windows(seed, n, long_short, start, lo):
    """The sweep's shape: consecutive windows (groups of eight, one load a bar, a partial last
    group) x five k values, over several chunks; every combo agrees with the per-bar kernel."""
    rng = np.random.default_rng(seed)
    market = _market(_close(rng, n, 0.01, False, True), rng)
    params = np.array([(float(w), k) for w in range(lo, lo + 19)
                       for k in (1.0, 1.5, 2.0, 2.5, 3.0)])
    _check("bollinger", market, params, 0.0005, long_short, start, 16)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000), long_short=st.booleans(),
       start=st.integers(0, 300), case=st.sampled_from(["huge", "tiny", "cross", "negative_k",
                                                        "inf_k"]))
def test_fast_path_off_the_vector_lanes(seed, n, long_short, start, case):
    """Closes the vector lanes leave to the window-by-window rows (all above 2**200 or below
    2**-200, or a walk around 2**200: every chunk from its first close above), a negative or an
    infinite k (bit rows that are not the rule: the exact band_step on every marked bar): the
    same decisions as the per-bar kernel."""
    rng = np.random.default_rng(seed)
    close = _close(rng, n, 0.02, False, True)
    if case == "huge":
        close = close * 1e250
    elif case == "tiny":
        close = close * 1e-250
    elif case == "cross":
        close = close / close[0] * 2.0 ** 199.7
    market = _market(close, rng)
    rows = [(float(w), float(k)) for w in rng.choice([2, 5, 16, 17, 40, n + 3], size=4)
            for k in rng.choice([0.0, 0.5, 2.0, 3.0], size=2)]
    if case == "negative_k":
        rows += [(10.0, -0.5), (30.0, -2.0)]
    elif case == "inf_k":
        rows += [(10.0, np.inf), (30.0, 1.0)]
    _check("bollinger", market, np.array(rows), 0.0005, long_short, start, 4)
