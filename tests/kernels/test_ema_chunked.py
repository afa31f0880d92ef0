"""ema_cross's per-chunk EMA tables (strategies/trend.py: ``_ema_chunks`` / ``_ema_group``)
against ``ema`` over the whole series, bit for bit, and the fast path built on them against the
per-bar kernel where the chunking matters (windows longer than a chunk or than the data, a start
past the first chunk, any combo order)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.kernels.fastpath import FP_CHUNK
from quantfleet.kernels.indicators import ema, unique_windows
from quantfleet.strategies import get
from quantfleet.strategies.trend import (
    _EMA_GROUP,
    _ema_chunk_all,
    _ema_chunks,
    _ema_cross_order,
    _ema_group,
)
from tests import reference as ref
from tests.kernels.test_fastpath import _check, _close, _market


def _series(rng: np.random.Generator, n: int, nans: bool, flat: bool) -> np.ndarray:
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    if flat and n > 4:
        for a in rng.integers(0, n - 2, size=max(1, n // 30)):
            close[a:a + int(rng.integers(2, 40))] = close[a]
    if nans and n > 1:
        close[rng.integers(0, n, size=max(1, n // 100))] = np.nan
    return close


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.one_of(st.integers(1, 60), st.integers(61, 5000)),
    windows=st.lists(st.one_of(st.integers(-1, 12), st.integers(13, 3000),
                               st.floats(0.0, 40.0, allow_nan=False)),
                     min_size=1, max_size=20, unique=True),
    chunks=st.lists(st.sampled_from([1, 3, 8, 100, 777, FP_CHUNK - 1, FP_CHUNK]),
                    min_size=1, max_size=4),
    nans=st.booleans(),
    flat=st.booleans(),
)
def test_chunked_table_is_the_ema_of_each_window_bit_for_bit(seed, n, windows, chunks, nans,
                                                              flat):
    """Rows advanced group by group over chunks of any size up to FP_CHUNK (so chunk ends fall
    anywhere: before, at and after a row's seed bar), groups in any order within a chunk: every
    value is ``ema``'s, and ``ema`` is the definition (SMA seed, alpha = 2 / (w + 1))."""
    rng = np.random.default_rng(seed)
    close = _series(rng, n, nans, flat)
    uniq = np.unique(np.array(windows, dtype=np.float64))
    rows = rng.permutation(uniq.size).astype(np.int64)
    em = _ema_chunks(close, uniq, rows)
    order, table = em[4], em[5]
    assert order.size % _EMA_GROUP == 0
    got = np.full((uniq.size, n), -1.0)
    c0 = 0
    i = 0
    while c0 < n:
        c1 = min(n, c0 + chunks[i % len(chunks)])
        for g in rng.permutation(np.arange(0, order.size, _EMA_GROUP)):
            _ema_group(close, em, int(g), c0, c1)
        got[:, c0:c1] = table[:uniq.size, :c1 - c0]
        c0 = c1
        i += 1
    for j, w in enumerate(uniq):
        np.testing.assert_array_equal(got[j], ema(close, int(w)), err_msg=f"window {w}")
        want = ref.ema(close, int(w)) if int(w) >= 1 else np.full(n, np.nan)
        np.testing.assert_allclose(got[j], want, rtol=1e-12, equal_nan=True)


def test_rows_left_out_are_nan_and_padding_fills_the_last_group():
    close = np.linspace(1.0, 2.0, 50)
    uniq = np.array([0.0, 3.0, 7.0, 51.0, 60.0])
    em = _ema_chunks(close, uniq, np.arange(5, dtype=np.int64))
    order, table = em[4], em[5]
    assert list(order[:2]) == [1, 2]  # windows 0, 51 and 60: no value on 50 bars
    assert order.size == _EMA_GROUP and set(order[2:]) == set(range(5, 5 + _EMA_GROUP - 2))
    _ema_chunk_all(close, em, 0, 50)
    for j in (0, 3, 4):
        assert np.isnan(table[j]).all()
    np.testing.assert_array_equal(table[1, :50], ema(close, 3))
    np.testing.assert_array_equal(table[2, :50], ema(close, 7))


def test_combo_order_groups_the_role_with_more_windows_and_lists_rows_by_first_use():
    params = np.array([[5.0, 20.0], [7.0, 20.0], [5.0, 24.0], [7.0, 28.0], [5.0, 28.0]])
    uniq, idx = unique_windows(np.concatenate((params[:, 0], params[:, 1])))
    combos, rows = _ema_cross_order(idx, params.shape[0])
    # slow (3 windows) over fast (2): by slow, then fast
    assert [tuple(params[c]) for c in combos] == [
        (5.0, 20.0), (7.0, 20.0), (5.0, 24.0), (5.0, 28.0), (7.0, 28.0)]
    assert [uniq[j] for j in rows] == [5.0, 20.0, 7.0, 24.0, 28.0]
    swapped = params[:, ::-1].copy()
    uniq, idx = unique_windows(np.concatenate((swapped[:, 0], swapped[:, 1])))
    combos, _ = _ema_cross_order(idx, swapped.shape[0])
    assert [tuple(swapped[c]) for c in combos] == [
        (20.0, 5.0), (20.0, 7.0), (24.0, 5.0), (28.0, 5.0), (28.0, 7.0)]


def test_fast_path_across_chunks_with_long_windows_and_a_late_start():
    """Windows longer than a chunk (their seed inside a later chunk) and than the data, and a
    start past the first chunks (the rows advanced over the warm-up bars first)."""
    rng = np.random.default_rng(21)
    n = 3 * FP_CHUNK + 123
    market = _market(_close(rng, n, 0.01, True, True), rng)
    params = np.array([[1.0, 2.0], [3.0, 2500.0], [2100.0, 2300.0], [5.0, n + 1.0],
                       [40.0, 41.0], [2049.0, 4100.0], [12.0, 26.0], [2.0, 3.0], [9.0, 20.0]])
    for start in (0, 1, FP_CHUNK + 5, 2 * FP_CHUNK):
        for long_short, fee in ((False, 0.0), (True, 0.001)):
            _check("ema_cross", market, params, fee, long_short, start, 16)


def test_fast_path_results_do_not_depend_on_the_combo_order():
    rng = np.random.default_rng(4)
    market = _market(_close(rng, 5000, 0.02, False, True), rng)
    strat = get("ema_cross")
    params = strat.space.sample(rng, 60)
    perm = rng.permutation(params.shape[0])
    a = strat.run_asset_blocks(market, 0, params, 8, long_short=True, fee_rate=0.0005)
    b = strat.run_asset_blocks(market, 0, params[perm], 8, long_short=True, fee_rate=0.0005)
    np.testing.assert_array_equal(a[0][perm], b[0])
    for x, y in zip(a[1:4], b[1:4], strict=True):
        np.testing.assert_array_equal(x[:, perm], y)
