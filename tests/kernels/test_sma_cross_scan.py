"""sma_cross's packed rule (strategies/trend.py: ``_sma_cross_words``, the rule 64 bars to a
word's bits) against the rule bar by bar in numpy, and the fast path built on it against the
per-bar kernel where the chunking matters (windows longer than a chunk or than the data, starts
at and next to chunk boundaries, long and long/short)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quantfleet.kernels.fastpath import FP_CHUNK
from quantfleet.strategies.trend import _sma_cross_words
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


def _reference(close, fw, sw, t0, c1):
    """sma_cross_kernel's rule on each bar of [t0, c1) (numpy, elementwise: the same IEEE
    operations)."""
    cs = np.concatenate(([0.0], np.cumsum(close)))
    t = np.arange(t0, c1)
    hi = cs[t + 1]
    return (hi - cs[t + 1 - fw]) * float(sw) > (hi - cs[t + 1 - sw]) * float(fw)


def _bits(words: np.ndarray, m: int) -> np.ndarray:
    """The first ``m`` bits of ``words``, bit i of word j as element 64 j + i."""
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:m].astype(bool)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.one_of(st.integers(1, 200), st.integers(201, 3 * FP_CHUNK)),
    fw=st.one_of(st.integers(1, 12), st.integers(13, FP_CHUNK + 300)),
    sw=st.one_of(st.integers(1, 12), st.integers(13, FP_CHUNK + 300)),
    kind=st.sampled_from(["walk", "flat", "zigzag"]),
    data=st.data(),
)
def test_packed_rule_is_the_rule_bar_by_bar(seed, n, fw, sw, kind, data):
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
    words = np.zeros((c1 - t0 + 63) // 64, dtype=np.uint64)
    m = _sma_cross_words(cs, fw, sw, t0, c1, words)
    assert m == c1 - t0
    np.testing.assert_array_equal(_bits(words, m), _reference(close, fw, sw, t0, c1))


def test_every_bar_changing_fills_whole_words():
    """SMA(1) vs SMA(2) on a zigzag: the rule flips on every bar of several full words and a
    partial one."""
    close = 100.0 + np.where(np.arange(1000) % 2 == 0, 1.0, -1.0)
    cs = np.concatenate(([0.0], np.cumsum(close)))
    words = np.zeros(16, dtype=np.uint64)
    assert _sma_cross_words(cs, 1, 2, 1, 1000, words) == 999
    np.testing.assert_array_equal(_bits(words, 999), np.arange(1, 1000) % 2 == 0)
    # an empty stretch (the warm-up reaches past the chunk): no bar
    assert _sma_cross_words(cs, 1, 2, 500, 500, words) == 0
    assert _sma_cross_words(cs, 1, 2, 501, 500, words) == 0


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
