"""Signal replay: cached member series, single members equal to their own kernels bit for bit
(funding included), ensembles equal to a slow reference, a weight search that never reads its
held-out bars."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from quantfleet.data.market import MarketData
from quantfleet.data.synthetic import gbm
from quantfleet.errors import QuantfleetError, StrategyError
from quantfleet.research.overfit import deflated_sharpe, return_moments
from quantfleet.research.replay import (
    Member,
    SignalBook,
    parse_member,
    replay_weights,
    search_weights,
    split_bar,
)
from quantfleet.strategies import get
from quantfleet.strategies.registry import names
from tests import reference as ref


@pytest.fixture(scope="module")
def market() -> MarketData:
    rng = np.random.default_rng(17)
    close = np.stack([ref.random_close(rng, 500) for _ in range(2)])
    ts = (np.datetime64("2016-01-01") + np.arange(500)).astype("datetime64[ns]")
    return MarketData(ts, ("U", "V"), close, source="test")


@pytest.fixture(scope="module")
def perp() -> MarketData:
    """OHLCV with a funding_rate column: every strategy can run on it."""
    return gbm(bars=700, assets=2, seed=5, vol=0.6, funding=1)


MEMBERS = ["sma_cross:fast=5,slow=30", "rsi:window=10,lower=35,upper=65", "sma_trend:window=40"]


def _member(name: str) -> Member:
    s = get(name)
    return Member(name, s.space.validate({}))


@pytest.mark.parametrize("long_short", [False, True])
@pytest.mark.parametrize("name", names())
def test_single_member_replays_to_its_own_kernel_bit_for_bit(perp, name, long_short):
    mb = _member(name)
    book = SignalBook.build(perp, [mb], fee_rate=0.001, long_short=long_short)
    got = book.evaluate(np.array([[1.0]]))
    # the per-bar kernel (a fast path, kernels/fastpath.py, agrees with it to rounding)
    s = dataclasses.replace(get(name), fast=None)
    for a in range(perp.n_assets):
        want = s.run_asset(perp, a, s.space.to_array([mb.params]), fee_rate=0.001,
                           long_short=long_short, start=book.start)[0]
        np.testing.assert_array_equal(got[a], want)


def test_funding_carry_replay_earns_funding(perp):
    """The issue's case: identical positions, but close-to-close alone misses the funding."""
    mb = Member("funding_carry", {"window": 14, "threshold": 0.0001})
    book = SignalBook.build(perp, [mb], fee_rate=0.001, long_short=True, start=0)
    s = get("funding_carry")
    own = s.run_asset(perp, 0, s.space.to_array([mb.params]), fee_rate=0.001, long_short=True)[0]
    got = book.evaluate(np.array([[1.0]]))[0]
    np.testing.assert_array_equal(got, own)
    close_only = ref.metrics(perp.close[0], book.positions[0, 0], 0.001, book.ppy)
    assert abs(close_only["total_return"] - own[0, 0]) > 0.01  # funding matters here


def _slow_book(perp, members, w, fee_rate, long_short, start, a):
    """Per-bar book returns the obvious way: Σ_i w_i · pos_i[t-1] · r_i[t] with r_i the
    close-to-close return, minus funding for funding_carry; fee on the netted position's change."""
    close = perp.close[a]
    r = np.concatenate([[0.0], close[1:] / close[:-1] - 1.0])
    f = np.nan_to_num(perp.field("funding_rate")[a])
    pos = []
    for mb in members:
        s = get(mb.strategy)
        _, _, p = s.run_asset(perp, a, s.space.to_array([mb.params]), long_short=long_short,
                              start=start, positions=True)
        pos.append(p[0])
    n = len(close) - start
    rb = np.empty(n)
    prev_net = 0.0
    for t in range(n):
        pnl = 0.0
        for wi, mb, p in zip(w, members, pos, strict=True):
            held = p[t - 1] if t > 0 else 0.0
            ri = r[start + t] - (f[start + t] if mb.strategy == "funding_carry" else 0.0)
            pnl += wi * held * ri
        net = sum(wi * p[t] for wi, p in zip(w, pos, strict=True))
        rb[t] = (1.0 + pnl) * (1.0 - fee_rate * abs(net - prev_net)) - 1.0
        prev_net = net
    return rb, sum(wi * p for wi, p in zip(w, pos, strict=True))


def test_ensemble_with_funding_member_matches_slow_reference(perp):
    members = [parse_member("funding_carry:window=10,threshold=0.00005"),
               parse_member("sma_cross:fast=5,slow=30"), parse_member("rsi:window=10")]
    book = SignalBook.build(perp, members, fee_rate=0.0005, long_short=True)
    w = np.array([[0.5, 0.3, 0.2], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    got, rets = book.evaluate(w, returns=True)
    for a in range(perp.n_assets):
        for c in range(w.shape[0]):
            rb, net = _slow_book(perp, members, w[c], 0.0005, True, book.start, a)
            # ≤ 1e-12, not bitwise: the kernel adds each member's own (1 + pos·r) - 1, the
            # reference multiplies pos·r directly; they differ in the last bits
            np.testing.assert_allclose(rets[a, c], rb, rtol=1e-12, atol=1e-15)
            eq = np.cumprod(1.0 + rb)
            assert got[a, c, 0] == pytest.approx(eq[-1] - 1.0, rel=1e-12, abs=1e-14)
            sd = np.std(rb, ddof=1)
            assert got[a, c, 2] == pytest.approx(rb.mean() / sd * np.sqrt(book.ppy), rel=1e-9)
            dd = float(np.max(1.0 - eq / np.maximum.accumulate(np.maximum(eq, 1.0))))
            assert got[a, c, 4] == pytest.approx(dd, rel=1e-9, abs=1e-14)
            prev = np.concatenate([[0.0], net[:-1]])
            assert got[a, c, 9] == pytest.approx(np.abs(net - prev).sum(), rel=1e-12)
            assert got[a, c, 8] == pytest.approx(np.mean(net != 0), rel=1e-12)


def test_ensemble_matches_reference_of_netted_positions(market):
    members = [parse_member(m) for m in MEMBERS]
    book = SignalBook.build(market, members, fee_rate=0.0005, ppy=252.0)
    w = np.array([[0.5, 0.3, 0.2], [0.0, 0.0, 1.0]])
    got = book.evaluate(w)
    for a in range(2):
        close = market.close[a]
        pos = []
        for mb in members:
            s = get(mb.strategy)
            _, _, p = s.run_asset(market, a, s.space.to_array([mb.params]), positions=True)
            pos.append(p[0])
        for c in range(2):
            combined = sum(wi * p for wi, p in zip(w[c], pos, strict=True))
            ref.assert_metrics_close(got[a, c], ref.metrics(close, combined, 0.0005, 252.0,
                                                            start=book.start))


def test_search_is_deterministic_and_beats_or_matches_members(market):
    book = SignalBook.build(market, [parse_member(m) for m in MEMBERS], ppy=252.0)
    a = search_weights(book, candidates=200, seed=3, batch=50)
    b = search_weights(book, candidates=200, seed=3, batch=50)
    np.testing.assert_array_equal(a.best_weights, b.best_weights)
    assert a.best_weights.sum() == pytest.approx(1.0) and (a.best_weights >= 0).all()
    corners = replay_weights(book, np.eye(3), bars=(book.start, a.split))[:, 2]
    assert a.best_metrics["sharpe"] >= np.nanmax(corners) - 0.05


def test_search_picks_in_sample_and_reports_out_of_sample_and_dsr(market):
    book = SignalBook.build(market, [parse_member(m) for m in MEMBERS], ppy=252.0)
    res = search_weights(book, candidates=120, seed=1, batch=40, train_frac=0.6, method="random")
    n = market.n_bars
    assert res.split == book.start + round(0.6 * (n - book.start)) == split_bar(book, 0.6)
    assert res.candidates == 120 and res.train_frac == 0.6
    w = res.best_weights[None, :]
    is_m = replay_weights(book, w, bars=(book.start, res.split))[0]
    oos_m = replay_weights(book, w, bars=(res.split, n))[0]
    assert res.best_metrics["sharpe"] == is_m[2] and res.oos_metrics["sharpe"] == oos_m[2]
    # the OOS part is a fresh book entering flat at the split
    _, rets = book.evaluate(w, bars=(res.split, n), returns=True)
    assert rets.shape == (2, 1, n - res.split)
    # DSR by hand, per asset: N = every candidate, V over their in-sample Sharpes (per bar)
    rng = np.random.default_rng(1)
    cand = rng.dirichlet(np.ones(3), size=120)  # method="random" draws exactly these
    sr_all = book.evaluate(cand, bars=(book.start, res.split))[:, :, 2] / np.sqrt(252.0)
    _, is_rets = book.evaluate(w, bars=(book.start, res.split), returns=True)
    want = []
    for a in range(2):
        var = np.var(sr_all[a][np.isfinite(sr_all[a])], ddof=1)
        assert res.var_trials[a] == pytest.approx(var, rel=1e-12)
        sr, nb, sk, ku = return_moments(is_rets[a, 0])
        want.append(deflated_sharpe(sr, nb, sk, ku, 120, var))
    np.testing.assert_allclose(res.dsr_assets, want, rtol=1e-12)
    assert res.dsr == pytest.approx(np.mean(want), rel=1e-12)
    assert 0.0 <= res.dsr <= 1.0


@pytest.mark.parametrize("method", ["random", "genetic"])
def test_held_out_bars_never_influence_the_choice(market, method):
    members = [parse_member(m) for m in MEMBERS]
    book = SignalBook.build(market, members, fee_rate=0.001, ppy=252.0)
    res = search_weights(book, candidates=150, seed=4, batch=50, method=method)
    # perturb every held-out bar (a different random walk after the split)
    rng = np.random.default_rng(99)
    close = market.close.copy()
    s = res.split
    tail = np.cumprod(np.exp(rng.normal(0.0, 0.05, close[:, s:].shape)), axis=1)
    close[:, s:] = close[:, s - 1:s] * tail
    other = MarketData(market.timestamps, market.assets, close, source="test-perturbed")
    book2 = SignalBook.build(other, members, fee_rate=0.001, ppy=252.0)
    res2 = search_weights(book2, candidates=150, seed=4, batch=50, method=method)
    assert res2.split == s
    np.testing.assert_array_equal(res.best_weights, res2.best_weights)
    assert res.top == res2.top and res.best_metrics == res2.best_metrics
    np.testing.assert_array_equal(res.dsr_assets, res2.dsr_assets)
    assert res.oos_metrics != res2.oos_metrics  # the held-out part did change


def test_member_errors(market):
    with pytest.raises(StrategyError, match="unknown strategy 'sma_crss'"):
        parse_member("sma_crss:fast=3")
    with pytest.raises(StrategyError, match="expected NAME:KEY=VALUE"):
        parse_member("sma_cross:fast")
    book = SignalBook.build(market, [parse_member(MEMBERS[0])])
    with pytest.raises(QuantfleetError, match=r"train_frac must be in \(0, 1\)"):
        search_weights(book, candidates=10, train_frac=1.0)
    with pytest.raises(QuantfleetError, match="outside the book"):
        book.evaluate(np.array([[1.0]]), bars=(0, 10))
