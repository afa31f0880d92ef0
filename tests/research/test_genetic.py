"""The genetic searcher: one generation without any executor, determinism, resume, evolve."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.research.evolve import evolve
from quantfleet.research.genetic import GeneticSearcher
from quantfleet.research.searcher import run_search
from quantfleet.strategies import get
from tests import reference as ref


def _toy_fitness(trials):
    # a smooth bowl with its top at fast=20, slow=120 (sma_cross) and window=14 (rsi)
    out = []
    for t in trials:
        p = t.params_dict()
        if t.strategy == "sma_cross":
            out.append(-abs(p["fast"] - 20) - abs(p["slow"] - 120) / 4)
        else:
            out.append(-abs(p["window"] - 14) - 5.0)
    return out


def test_one_generation_respects_bounds_types_constraints_and_elitism():
    g = GeneticSearcher(["sma_cross", "rsi"], population=40, generations=3, seed=5, elite=3)
    first = g.suggest()
    assert len(first) == 40 and len({t.id for t in first}) == 40
    fit = _toy_fitness(first)
    g.observe(first, fit)
    nxt = g.suggest()
    assert len(nxt) == 40 and all(t.generation == 1 for t in nxt)
    ranked = sorted(zip(first, fit, strict=True), key=lambda tf: -tf[1])[:3]
    assert [(t.strategy, t.params) for t, _ in ranked] == [(t.strategy, t.params) for t in nxt[:3]]
    for t in nxt:
        space = get(t.strategy).space
        assert space.feasible(np.array([t.params]))[0]
        for d, v in zip(space.dims, t.params, strict=True):
            assert d.low <= v <= d.high
            if d.kind == "int":
                assert float(v).is_integer() and (v - d.low) % d.step == 0


def test_same_seed_same_history_and_it_converges():
    def run(seed):
        g = GeneticSearcher(["sma_cross", "rsi"], population=40, generations=15, seed=seed)
        while not g.done:
            trials = g.suggest()
            g.observe(trials, _toy_fitness(trials))
        return g

    a, b = run(11), run(11)
    assert [(t.strategy, t.params, f) for t, f in a.history] == \
        [(t.strategy, t.params, f) for t, f in b.history]
    assert run(12).history != a.history
    # the optimum (0 at fast=20, slow=120) lies in the smaller-scoring species at first; with
    # species kept alive the GA finds it or its neighbours (median over seeds)
    bests = [run(seed).best() for seed in range(5)]
    assert all(t.strategy == "sma_cross" for t, _ in bests)
    assert np.median([f for _, f in bests]) >= -0.5


def test_state_round_trip_continues_identically():
    g = GeneticSearcher(["sma_cross"], population=12, generations=6, seed=2)
    for _ in range(2):
        trials = g.suggest()
        g.observe(trials, _toy_fitness(trials))
    clone = GeneticSearcher.from_state(json.loads(json.dumps(g.state())))
    for s in (g, clone):
        while not s.done:
            trials = s.suggest()
            s.observe(trials, _toy_fitness(trials))
    assert [(t.params, f) for t, f in g.history] == [(t.params, f) for t, f in clone.history]


def test_bad_settings():
    with pytest.raises(QuantfleetError, match=r"population must be >= 4 \(got 2\)"):
        GeneticSearcher(["sma_cross"], population=2)
    with pytest.raises(QuantfleetError, match=r"mutation must be in \[0, 1\] \(got 1.5\)"):
        GeneticSearcher(["sma_cross"], mutation=1.5)


@pytest.fixture(scope="module")
def market() -> MarketData:
    rng = np.random.default_rng(8)
    close = np.stack([ref.random_close(rng, 800, 0.012) for _ in range(3)])
    ts = (np.datetime64("2011-01-03") + np.arange(800)).astype("datetime64[ns]")
    return MarketData(ts, ("A", "B", "C"), close, source="test")


def test_resume_after_interruption_equals_uninterrupted(market, tmp_path):
    def searcher():
        return GeneticSearcher(["sma_cross", "ema_cross"], population=16, generations=5, seed=4)

    full = run_search(searcher(), market, stop=560)

    class Killed(Exception):
        pass

    def kill_after_gen_2(rec):
        if rec["round"] == 2:
            raise Killed

    ck = tmp_path / "ga.json"
    with pytest.raises(Killed):
        run_search(searcher(), market, stop=560, checkpoint=ck, on_round=kill_after_gen_2)
    resumed = run_search(searcher(), market, stop=560, checkpoint=ck)
    assert resumed.state["history"] == full.state["history"]
    assert [h["best"] for h in resumed.history] == [h["best"] for h in full.history]


def test_evolve_checks_winners_out_of_sample(market, tmp_path):
    res = evolve(market, ["sma_cross", "rsi"], population=12, generations=3, seed=9,
                 train_frac=0.7, checkpoint_dir=tmp_path, top=3)
    assert res.split == 560 and 1 <= len(res.winners) <= 3
    w = res.winners[0]
    strat = get(w["strategy"])
    params = strat.space.to_array([w["params"]])
    warm = strat.min_bars({d.name: getattr(d, "high", 1) for d in strat.space.dims})
    oos = [strat.run_asset(market, a, params, start=560, warm_from=560 - warm,
                           ppy=market.periods_per_year)[0][0, 2] for a in range(3)]
    assert w["oos_sharpe"] == pytest.approx(np.mean(oos), rel=1e-12)
    assert 0.0 <= res.overfit["dsr"] <= 1.0
    assert len(res.history) == 3
    with pytest.raises(QuantfleetError, match="made with other settings \\(population differ\\)"):
        evolve(market, ["sma_cross", "rsi"], population=14, generations=3, seed=9,
               checkpoint_dir=tmp_path)


def test_evolution_dsr_counts_each_distinct_evaluation_once_and_never_a_failed_one(market):
    # a history with a repeat (served from the cache) and a failed evaluation (FALLBACK_FITNESS):
    # N = the 3 distinct trials with a finite fitness; V over the same 3 (the in-sample Sharpe of
    # each one's equal-weight book over the assets), from the definition
    from quantfleet.backtest.terms import Terms
    from quantfleet.research.evolve import _winner_dsr
    from quantfleet.research.overfit import deflated_sharpe, return_moments
    from quantfleet.research.searcher import FALLBACK_FITNESS, SearchResult, Trial

    split = 400
    ok = [(5.0, 20.0), (10.0, 40.0), (3.0, 15.0)]
    hist = [(Trial(0, "sma_cross", ok[0]), 0.4), (Trial(1, "sma_cross", ok[1]), 0.1),
            (Trial(2, "sma_cross", (8.0, 30.0)), FALLBACK_FITNESS),
            (Trial(3, "sma_cross", ok[0], 1), 0.4), (Trial(4, "sma_cross", ok[2], 1), -0.2)]
    res = SearchResult(best=[], history=[{}, {}], n_evaluations=4, n_failed=1, n_cached=1,
                       state={"history": [({"id": t.id, "strategy": t.strategy,
                                            "params": list(t.params), "generation": t.generation},
                                           f) for t, f in hist]})
    winners = [{"strategy": "sma_cross", "params": {"fast": 5, "slow": 20}}]
    rows = list(range(market.n_assets))
    of = _winner_dsr(winners, market, rows, split, Terms(fee_rate=1e-3, ppy=252.0), res)

    def book(fast, slow):
        per_asset = []
        for a in rows:
            c = market.close[a, :split]
            f, s = ref.sma(c, int(fast)), ref.sma(c, int(slow))
            pos = np.where(f > s, 1.0, 0.0)
            pos[np.isnan(s)] = 0.0
            per_asset.append(ref.equity_returns(c, pos, 1e-3))
        return np.mean(per_asset, axis=0)

    srs = [return_moments(book(*p))[0] for p in ok]
    sr, n, skew, kurt = return_moments(book(5, 20))
    v = np.var(srs, ddof=1)
    assert (of["n_trials"], of["n_repeats"], of["n_failed"]) == (3, 1, 1)
    assert of["var_trials"] == pytest.approx(v, rel=1e-9)
    assert of["dsr"] == pytest.approx(deflated_sharpe(sr, n, skew, kurt, 3, v), rel=1e-9)
    assert of["selected_among"] == ("distinct parameter sets of sma_cross evaluated over 2 "
                                    "generations; 1 repeat not counted again; 1 failed "
                                    "evaluation left out")
    assert "as the best of 3 trials (distinct parameter sets of sma_cross" in of["verdict"]
