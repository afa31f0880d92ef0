"""The per-bar tail and the accumulator under it, against the slow reference of
docs/conventions.md (``tests.reference.book_metrics``), on random position paths and returns."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from quantfleet.errors import QuantfleetError
from quantfleet.kernels.metrics import (
    LOWER_IS_BETTER,
    METRIC_NAMES,
    N_METRICS,
    RETURN_METRIC_NAMES,
    acc_finish,
    acc_flat,
    acc_init,
    acc_step,
    bar_returns,
    check_metric,
    evaluate_positions,
    metric_sign,
    metrics_from_returns,
    tail_finish,
    tail_flat,
    tail_init,
    tail_step,
)
from tests import reference as ref


@njit
def _run_tail(pos, r, fee_rate, ppy, flat, returns_out):
    out = np.empty(N_METRICS)
    tail = tail_flat(tail_init(), flat)
    for t in range(pos.shape[0]):
        tail = tail_step(tail, pos[t], r[t], fee_rate, returns_out, 0, t)
    tail_finish(tail, ppy, out)
    return out


@njit
def _run_acc(pos, r, fee_rate, ppy, flat):
    out = np.empty(N_METRICS)
    st = acc_flat(acc_init(), flat)
    prev = 0.0
    for t in range(pos.shape[0]):
        st = acc_step(st, prev, pos[t], r[t], fee_rate)
        prev = pos[t]
    acc_finish(st, ppy, out)
    return out


def _tail(pos, r, fee_rate, ppy, flat=0.0):
    """Metrics and stored per-bar (returns, positions) through the tail, and metrics without."""
    pos = np.asarray(pos, float)
    r = np.asarray(r, float)
    stores = np.full((1, 2, pos.size), np.nan)
    with_stores = _run_tail(pos, r, fee_rate, ppy, float(flat), stores)
    without = _run_tail(pos, r, fee_rate, ppy, float(flat), None)
    return with_stores, without, stores[0]


def _assert_rows(got, want: dict):
    assert set(want) == set(METRIC_NAMES)
    for i, name in enumerate(METRIC_NAMES):
        g, w = float(got[i]), float(want[name])
        if math.isnan(w):
            assert math.isnan(g), f"{name}: got {g}, want nan"
        elif math.isinf(w):
            assert g == w, f"{name}: got {g}, want {w}"
        else:
            assert g == pytest.approx(w, rel=1e-9, abs=1e-12), f"{name}: got {g}, want {w}"


def _positions(rng, n, kind, p_flat, p_keep):
    """A position path with regimes: each bar keeps the previous target with probability
    ``p_keep``, else draws a new one (flat with probability ``p_flat``)."""
    pos = np.zeros(n)
    cur = 0.0
    for t in range(n):
        if rng.random() >= p_keep:
            if rng.random() < p_flat:
                cur = 0.0
            elif kind == "long":
                cur = 1.0
            elif kind == "long_short":
                cur = float(rng.choice([-1.0, 1.0]))
            else:  # fractional and leveraged, both sides
                cur = float(rng.uniform(0.05, 2.0) * rng.choice([-1.0, 1.0]))
        pos[t] = cur
    return pos


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    kind=st.sampled_from(["long", "long_short", "fractional"]),
    p_flat=st.sampled_from([0.0, 0.3, 0.7]),
    p_keep=st.sampled_from([0.0, 0.8, 0.97]),
    fee_rate=st.sampled_from([0.0, 1e-4, 1e-3, 0.02]),
    ppy=st.sampled_from([252.0, 365.0, 8760.0]),
    vol=st.sampled_from([0.001, 0.02, 0.2]),
)
def test_tail_matches_reference(seed, n, kind, p_flat, p_keep, fee_rate, ppy, vol):
    rng = np.random.default_rng(seed)
    pos = _positions(rng, n, kind, p_flat, p_keep)
    r = rng.normal(0.0, vol, n)
    want, rb = ref.book_metrics(pos, r, fee_rate, ppy)
    got, got_bare, stores = _tail(pos, r, fee_rate, ppy)
    _assert_rows(got, want)
    np.testing.assert_array_equal(got_bare, got)  # the stores change nothing else
    np.testing.assert_allclose(stores[0], rb, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(stores[1], pos)
    # the accumulator driven directly (acc_init/acc_step/acc_finish) gives the same row
    np.testing.assert_array_equal(_run_acc(pos, r, fee_rate, ppy, 0.0), got)
    # and the return metrics of the stored returns agree with the running sums
    from_returns = metrics_from_returns(stores[0], ppy)
    for i, name in enumerate(RETURN_METRIC_NAMES):
        assert from_returns[i] == pytest.approx(got[METRIC_NAMES.index(name)], rel=1e-9, abs=1e-12,
                                                nan_ok=True), name


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 120), k=st.integers(0, 40),
       fee_rate=st.sampled_from([0.0, 1e-3]))
def test_flat_bars_count_as_zero_return_bars(seed, n, k, fee_rate):
    # tail_flat(k) is k bars flat before and after: same row as stepping through them
    rng = np.random.default_rng(seed)
    pos = _positions(rng, n, "long_short", 0.3, 0.8)
    r = rng.normal(0.0, 0.02, n)
    skipped = _run_tail(pos, r, fee_rate, 252.0, float(k), None)
    stepped = _run_tail(np.concatenate([np.zeros(k), pos]), np.concatenate([rng.normal(0, 0.02, k), r]),
                        fee_rate, 252.0, 0.0, None)
    np.testing.assert_array_equal(skipped, stepped)
    want, _ = ref.book_metrics(np.concatenate([np.zeros(k), pos]), np.concatenate([np.zeros(k), r]),
                               fee_rate, 252.0)
    _assert_rows(skipped, want)
    np.testing.assert_array_equal(_run_acc(pos, r, fee_rate, 252.0, float(-3)),
                                  _run_acc(pos, r, fee_rate, 252.0, 0.0))  # negative k: no bars


def test_evaluate_positions_is_the_tail_on_close_to_close_returns():
    rng = np.random.default_rng(5)
    close = ref.random_close(rng, 400)
    pos = np.stack([_positions(rng, 400, kind, 0.3, 0.9) for kind in ("long", "long_short", "fractional")])
    out = np.empty((3, N_METRICS))
    rets = np.zeros((3, 2, 400))
    evaluate_positions(close, pos, 1e-3, 252.0, 37, out, rets)
    bare = np.empty((3, N_METRICS))
    evaluate_positions(close, pos, 1e-3, 252.0, 37, bare, None)
    np.testing.assert_array_equal(bare, out)
    r = bar_returns(close)
    for c in range(3):
        # bars before start are not counted and the book is flat at start
        want, rb = ref.book_metrics(pos[c, 37:], np.concatenate([[0.0], r[38:]]), 1e-3, 252.0)
        _assert_rows(out[c], want)
        np.testing.assert_allclose(rets[c, 0, 37:], rb, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(rets[c, 1, 37:], pos[c, 37:])


def _row(got) -> dict:
    return dict(zip(METRIC_NAMES, (float(v) for v in got), strict=True))


def test_no_bars():
    got, _, _ = _tail(np.zeros(0), np.zeros(0), 1e-3, 252.0)
    m = _row(got)
    assert m["total_return"] == 0.0 and m["max_drawdown"] == 0.0
    assert m["n_trades"] == 0.0 and m["turnover"] == 0.0
    for name in ("cagr", "sharpe", "sortino", "calmar", "win_rate", "exposure"):
        assert math.isnan(m[name]), name


def test_all_flat_is_no_trade():
    r = np.random.default_rng(0).normal(0, 0.02, 50)
    got, _, stores = _tail(np.zeros(50), r, 1e-3, 252.0)
    m = _row(got)
    assert (m["total_return"], m["cagr"], m["max_drawdown"], m["n_trades"], m["exposure"],
            m["turnover"]) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for name in ("sharpe", "sortino", "calmar", "win_rate"):  # no variance, no closed trade
        assert math.isnan(m[name]), name
    np.testing.assert_array_equal(stores[0], 0.0)
    _assert_rows(got, ref.book_metrics(np.zeros(50), r, 1e-3, 252.0)[0])


def test_single_bar_entry_pays_the_fee_only():
    got, _, stores = _tail([1.0], [0.05], 1e-3, 252.0)  # the first bar's return is never earned
    m = _row(got)
    assert stores[0, 0] == pytest.approx(-1e-3)
    assert m["total_return"] == pytest.approx(-1e-3)
    assert math.isnan(m["sharpe"])  # one bar: no sample std
    assert m["sortino"] == pytest.approx(-math.sqrt(252.0))
    assert (m["n_trades"], m["exposure"], m["turnover"]) == (1.0, 1.0, 1.0)
    assert math.isnan(m["win_rate"])  # open at the end: an entry, not a closed trade
    _assert_rows(got, ref.book_metrics([1.0], [0.05], 1e-3, 252.0)[0])


def test_round_trip_and_flip_trade_accounting():
    # long over a +10% bar, flip short over a -10% bar (a win each), then flat
    pos = [1.0, -1.0, 0.0]
    r = [0.0, 0.10, -0.10]
    f = 0.01
    m = _row(_tail(pos, r, f, 252.0)[0])
    assert (m["n_trades"], m["win_rate"], m["turnover"]) == (2.0, 1.0, 4.0)
    eq = (1 - f) * 1.1 * (1 - 2 * f) * 1.1 * (1 - f)
    assert m["total_return"] == pytest.approx(eq - 1.0, rel=1e-12)
    _assert_rows(_tail(pos, r, f, 252.0)[0], ref.book_metrics(pos, r, f, 252.0)[0])


def test_a_fee_can_turn_a_winner_into_a_loss():
    # +0.05% over the bar, 0.1% in fees per side: the trade loses
    m = _row(_tail([1.0, 0.0], [0.0, 0.0005], 1e-3, 252.0)[0])
    assert (m["n_trades"], m["win_rate"]) == (1.0, 0.0)
    m = _row(_tail([1.0, 0.0], [0.0, 0.0005], 0.0, 252.0)[0])
    assert m["win_rate"] == 1.0


def test_only_up_bars_give_infinite_sortino():
    r = np.array([0.0, 0.01, 0.02, 0.005])
    got, _, _ = _tail(np.ones(4), r, 0.0, 252.0)
    assert _row(got)["sortino"] == np.inf
    _assert_rows(got, ref.book_metrics(np.ones(4), r, 0.0, 252.0)[0])


def test_drawdown_counts_from_the_starting_equity():
    # equity never exceeds 1: the drawdown is measured from 1, not from the first bar
    r = np.array([0.0, -0.1, 0.05, -0.2])
    m = _row(_tail(np.ones(4), r, 0.0, 252.0)[0])
    assert m["max_drawdown"] == pytest.approx(1.0 - 0.9 * 1.05 * 0.8)
    assert m["calmar"] == pytest.approx(m["cagr"] / m["max_drawdown"])


def test_wiped_out_equity_has_cagr_minus_one():
    pos = np.array([2.0, 0.0, 0.0])  # 2x long over a -60% bar
    r = np.array([0.0, -0.6, 0.1])
    got, _, _ = _tail(pos, r, 0.0, 252.0)
    m = _row(got)
    assert m["total_return"] == pytest.approx(-1.2)
    assert m["cagr"] == -1.0
    assert m["max_drawdown"] == pytest.approx(1.2)
    _assert_rows(got, ref.book_metrics(pos, r, 0.0, 252.0)[0])


def test_resizing_a_position_is_not_a_trade():
    # fractional sizing: 0.5 -> 1.5 -> 0.2 keeps one long trade, but every change pays the fee
    pos = [0.5, 1.5, 0.2, 0.0]
    r = [0.0, 0.01, -0.02, 0.03]
    got, _, _ = _tail(pos, r, 1e-3, 252.0)
    m = _row(got)
    assert m["n_trades"] == 1.0 and m["turnover"] == pytest.approx(0.5 + 1.0 + 1.3 + 0.2)
    _assert_rows(got, ref.book_metrics(pos, r, 1e-3, 252.0)[0])


def test_metric_directions_are_defined_once():
    assert LOWER_IS_BETTER <= set(METRIC_NAMES)
    assert LOWER_IS_BETTER == {"max_drawdown", "turnover"}
    for name in METRIC_NAMES:
        assert metric_sign(name) == (-1.0 if name in LOWER_IS_BETTER else 1.0)
        assert check_metric(name) == name
    assert N_METRICS == len(METRIC_NAMES)
    assert set(RETURN_METRIC_NAMES) <= set(METRIC_NAMES)


def test_unknown_metric_error_names_the_choices():
    with pytest.raises(QuantfleetError, match=r"unknown metric 'sharp' \(did you mean 'sharpe'.*; "
                                              r"choose one of total_return, cagr"):
        check_metric("sharp")
    with pytest.raises(QuantfleetError, match="choose one of total_return, sharpe$"):
        check_metric("cagr", ("total_return", "sharpe"))
