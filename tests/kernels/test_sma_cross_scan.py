"""sma_cross's packed-rule scan (strategies/trend.py: ``_sma_cross_changes``, the rule 64 bars to
a word's bits, change bars from the set bits) against the rule bar by bar in numpy, and the fast
path built on it against the per-bar kernel where the chunking matters (windows longer than a
chunk or than the data, starts at and next to chunk boundaries, long and long/short)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quantfleet.kernels.fastpath import FP_CHUNK
from quantfleet.strategies.trend import _sma_cross_changes
from tests.kernels.test_fastpath import _check, _close, _market


def _series(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """``walk``: a random walk; ``flat``: with stretches where the close repeats; ``zigzag``:
    up and down on alternate bars (SMA(1) vs SMA(2) flips every bar: 64 changes a word)."""
    if kind == "zigzag":
        return 100.0 + np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * rng.uniform(0.5, 2.0, n)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    if kind == "flat" and n > 4:
        for a in rng.integers(0, n - 2, size=max(1, n // 30)):
            close[a:a + int(rng.integers(2, 80))] = close[a]
    return close


def _reference(close, fw, sw, t0, c1, prev, low_pos):
    """The change bars of [t0, c1) and the positions taken, from sma_cross_kernel's rule on each
    bar (numpy, elementwise: the same IEEE operations) and the position before each bar."""
    cs = np.concatenate(([0.0], np.cumsum(close)))
    t = np.arange(t0, c1)
    hi = cs[t + 1]
    pos = np.where((hi - cs[t + 1 - fw]) * float(sw) > (hi - cs[t + 1 - sw]) * float(fw),
                   1.0, low_pos)
    before = np.concatenate(([prev], pos[:-1]))
    where = np.flatnonzero(pos != before)
    return t[where], pos[where]


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.one_of(st.integers(1, 200), st.integers(201, 3 * FP_CHUNK)),
    fw=st.one_of(st.integers(1, 12), st.integers(13, FP_CHUNK + 300)),
    sw=st.one_of(st.integers(1, 12), st.integers(13, FP_CHUNK + 300)),
    kind=st.sampled_from(["walk", "flat", "zigzag"]),
    prev=st.sampled_from([0.0, 1.0, -1.0]),
    low_pos=st.sampled_from([0.0, -1.0]),
    data=st.data(),
)
def test_packed_scan_finds_the_bars_where_the_rule_changes_position(seed, n, fw, sw, kind, prev,
                                                                    low_pos, data):
    """Any stretch [t0, c1) of up to a chunk after the warm-up (its length any remainder mod 64,
    its start anywhere), any windows (fast above or below slow, longer than a chunk)."""
    rng = np.random.default_rng(seed)
    close = _series(rng, n, kind)
    warm = max(fw, sw) - 1
    assume(warm < n)
    t0 = data.draw(st.integers(warm, n - 1), label="t0")
    c1 = data.draw(st.integers(t0 + 1, min(n, t0 + FP_CHUNK)), label="c1")
    cs = np.empty(n + 1)
    cs[0] = 0.0
    cs[1:] = np.cumsum(close)  # sequential sums, as the kernel's loop adds them
    ct = np.full(c1 - t0, -7, dtype=np.int64)
    cp = np.full(c1 - t0, 7.0)
    words = np.zeros((c1 - t0 + 63) // 64, dtype=np.uint64)
    k = _sma_cross_changes(cs, fw, sw, t0, c1, prev, low_pos, ct, cp, words)
    want_t, want_p = _reference(close, fw, sw, t0, c1, prev, low_pos)
    np.testing.assert_array_equal(ct[:k], want_t)
    np.testing.assert_array_equal(cp[:k], want_p)


def test_every_bar_changing_fills_whole_words():
    """SMA(1) vs SMA(2) on a zigzag: the position flips on every bar of several full words and a
    partial one."""
    close = 100.0 + np.where(np.arange(1000) % 2 == 0, 1.0, -1.0)
    cs = np.concatenate(([0.0], np.cumsum(close)))
    ct = np.empty(999, dtype=np.int64)
    cp = np.empty(999)
    k = _sma_cross_changes(cs, 1, 2, 1, 1000, 1.0, -1.0, ct, cp, np.zeros(16, dtype=np.uint64))
    assert k == 999
    np.testing.assert_array_equal(ct[:k], np.arange(1, 1000))
    np.testing.assert_array_equal(cp[:k], np.where(np.arange(1, 1000) % 2 == 0, 1.0, -1.0))
    # an empty stretch (the warm-up reaches past the chunk): no change
    assert _sma_cross_changes(cs, 1, 2, 500, 500, 1.0, -1.0, ct, cp, np.zeros(1, np.uint64)) == 0
    assert _sma_cross_changes(cs, 1, 2, 501, 500, 1.0, -1.0, ct, cp, np.zeros(1, np.uint64)) == 0


@pytest.mark.parametrize("kind", ["walk", "zigzag"])
def test_fast_path_across_chunks_with_long_windows_and_starts_at_chunk_boundaries(kind):
    """Windows longer than a chunk (the first decision inside a later chunk) and than the data,
    starts at, just before and just after chunk boundaries; long and long/short."""
    rng = np.random.default_rng(11)
    n = 3 * FP_CHUNK + 123
    close = _close(rng, n, 0.01, True, True) if kind == "walk" else _series(rng, n, kind)
    market = _market(close, rng)
    params = np.array([[1.0, 2.0], [3.0, 2500.0], [2100.0, 2300.0], [5.0, n + 1.0],
                       [40.0, 41.0], [2049.0, 4100.0], [12.0, 26.0], [2.0, 3.0], [9.0, 20.0],
                       [30.0, 7.0], [FP_CHUNK + 1.0, FP_CHUNK + 65.0]])
    for start in (0, 1, FP_CHUNK - 1, FP_CHUNK, FP_CHUNK + 1, 2 * FP_CHUNK, n - 1):
        for long_short, fee in ((False, 0.0), (True, 0.001)):
            _check("sma_cross", market, params, fee, long_short, start, 16)
