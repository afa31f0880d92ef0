"""Signal replay: cached positions, ensembles equal to the reference, weight search."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.data.market import MarketData
from quantfleet.errors import StrategyError
from quantfleet.research.replay import SignalBook, parse_member, replay_weights, search_weights
from quantfleet.strategies import get
from tests import reference as ref


@pytest.fixture(scope="module")
def market() -> MarketData:
    rng = np.random.default_rng(17)
    close = np.stack([ref.random_close(rng, 500) for _ in range(2)])
    ts = (np.datetime64("2016-01-01") + np.arange(500)).astype("datetime64[ns]")
    return MarketData(ts, ("U", "V"), close, source="test")


MEMBERS = ["sma_cross:fast=5,slow=30", "rsi:window=10,lower=35,upper=65", "sma_trend:window=40"]


def test_single_member_replay_equals_the_strategy(market):
    book = SignalBook.build(market, [parse_member(MEMBERS[0])], fee_rate=0.001, ppy=252.0,
                            start=0)
    got = book.evaluate(np.array([[1.0]]))
    want = get("sma_cross").run(market, np.array([[5.0, 30.0]]), fee_rate=0.001, ppy=252.0)
    np.testing.assert_allclose(got[:, 0, :], want[:, 0, :], rtol=1e-12, equal_nan=True)


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
    corners = replay_weights(book, np.eye(3))[:, 2]
    assert a.best_metrics["sharpe"] >= np.nanmax(corners) - 0.05


def test_member_errors():
    with pytest.raises(StrategyError, match="unknown strategy 'sma_crss'"):
        parse_member("sma_crss:fast=3")
    with pytest.raises(StrategyError, match="expected NAME:KEY=VALUE"):
        parse_member("sma_cross:fast")
