"""Evolution on explicit grids, and checkpoints that hold what they were computed from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.research.evolve import data_fingerprint, evolve
from tests import reference as ref

FAST = list(range(5, 55, 5))
SLOW = [20, 50, 100]
def _same(a, b) -> bool:  # NaN-aware equality of winner rows
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture(scope="module")
def market() -> MarketData:
    return ref.random_market(8, 600, ("A", "B"), 0.012, "2011-01-03")

def test_every_candidate_lies_in_the_grid(market, tmp_path):
    res = evolve(market, ["sma_cross", "rsi"], population=16, generations=4, seed=3,
                 grid={"fast": [5, 10, 15, 20, 25, 30, 35, 40, 45, 50], "slow": SLOW},
                 grids={"rsi": {"window": [7, 14, 21], "lower": [25.0, 30.0]}},
                 checkpoint_dir=tmp_path, top=3)
    state = json.loads((tmp_path / "evolve.json").read_text())["searcher"]
    trials = [t for t, _ in state["history"]]
    assert len(trials) == 16 * 4 and {t["strategy"] for t in trials} == {"sma_cross", "rsi"}
    for t in trials:
        if t["strategy"] == "sma_cross":
            fast, slow = t["params"]
            assert fast in FAST and slow in SLOW and fast < slow
        else:
            window, lower, upper = t["params"]
            assert window in (7, 14, 21) and lower in (25.0, 30.0) and 60.0 <= upper <= 90.0
    for w in res.winners:
        if w["strategy"] == "sma_cross":
            assert w["params"]["fast"] in FAST and w["params"]["slow"] in SLOW
def test_unknown_grid_key_names_the_strategies_and_their_parameters(market):
    with pytest.raises(QuantfleetError, match=r"grid key 'windw' is not a parameter of any "
                                              r"selected strategy.*sma_cross has fast, slow"):
        evolve(market, ["sma_cross", "rsi"], population=8, generations=1, grid={"windw": [5]})
def test_no_grid_is_the_unrestricted_search(market):
    a = evolve(market, ["sma_cross"], population=8, generations=2, seed=1)
    b = evolve(market, ["sma_cross"], population=8, generations=2, seed=1, grid={}, grids={})
    assert _same(a.winners, b.winners) and a.history[-1]["best"] == b.history[-1]["best"]
def test_data_fingerprint_sees_every_price():
    rng = np.random.default_rng(1)
    close = np.stack([ref.random_close(rng, 50, 0.01)])
    ts = (np.datetime64("2020-01-01") + np.arange(50)).astype("datetime64[ns]")
    a = MarketData(ts, ("A",), close)
    assert data_fingerprint(a) == data_fingerprint(MarketData(ts, ("A",), close.copy()))
    moved = close.copy()
    moved[0, 17] *= 1.0001
    assert data_fingerprint(a) != data_fingerprint(MarketData(ts, ("A",), moved))
    assert data_fingerprint(a) != data_fingerprint(MarketData(ts, ("B",), close))
def test_resume_on_changed_data_is_refused(market, tmp_path):
    kw = dict(population=8, generations=2, seed=4, checkpoint_dir=tmp_path)
    first = evolve(market, ["sma_cross"], **kw)
    close = market.close.copy()
    close[:, 300:] *= 1.05
    other = MarketData(market.timestamps, market.assets, close, source="test")
    with pytest.raises(QuantfleetError, match=r"the checkpoint there was made with other "
                                              r"settings \(data differ\); resume only with the "
                                              r"same data.*another checkpoint directory"):
        evolve(other, ["sma_cross"], **kw)
    again = evolve(market, ["sma_cross"], **kw)  # same data and settings: served from it
    assert _same(again.winners, first.winners)
def test_resume_with_another_grid_is_refused(market, tmp_path):
    kw = dict(population=8, generations=2, seed=4, checkpoint_dir=tmp_path)
    evolve(market, ["sma_cross"], grid={"slow": SLOW}, **kw)
    with pytest.raises(QuantfleetError, match=r"\(parameter spaces \(grid\) differ\)"):
        evolve(market, ["sma_cross"], grid={"slow": [20, 50]}, **kw)
    with pytest.raises(QuantfleetError, match=r"\(parameter spaces \(grid\) differ\)"):
        evolve(market, ["sma_cross"], **kw)
def test_a_checkpoint_without_its_record_is_refused(market, tmp_path):
    evolve(market, ["sma_cross"], population=8, generations=1, checkpoint_dir=tmp_path)
    (tmp_path / "evolve.config.json").unlink()
    with pytest.raises(QuantfleetError, match=r"records nothing of the data and settings.*"
                                              r"remove it or use another directory"):
        evolve(market, ["sma_cross"], population=8, generations=1, checkpoint_dir=tmp_path)


def test_the_grid_reaches_the_ray_coordinator(market, ray_executor):
    """With Ray the searcher lives in an actor, rebuilt from its state: the restricted spaces
    travel with it, so the evolution is the serial one."""
    kw = dict(population=8, generations=2, seed=5, grid={"fast": [5, 10, 15], "slow": SLOW})
    want = evolve(market, ["sma_cross"], **kw)
    got = evolve(market, ["sma_cross"], executor=ray_executor, **kw)
    assert _same(got.winners, want.winners)
    assert all(w["params"]["fast"] in (5, 10, 15) and w["params"]["slow"] in SLOW
               for w in got.winners)
