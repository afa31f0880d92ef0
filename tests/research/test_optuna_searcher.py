"""Optuna's samplers as searchers: same trials on every executor, resume, constraints, failures,
the missing-optuna error and the CLI path (``evolve --searcher optuna:*``)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quantfleet.compute import ProcessExecutor
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.research.evolve import evolve
from quantfleet.research.searcher import FALLBACK_FITNESS, run_search
from quantfleet.strategies import get
from quantfleet.strategies.space import Constraint, Int, ParamSpace
from tests import reference as ref

pytest.importorskip("optuna")  # the [search] extra; the missing-optuna path is tested below
from quantfleet.research.optuna_search import SAMPLERS, OptunaSearcher  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _toy_fitness(trials):
    # a bowl with its top at fast=20, slow=120 (sma_cross) and window=14 (rsi)
    out = []
    for t in trials:
        p = t.params_dict()
        if t.strategy == "sma_cross":
            out.append(-abs(p["fast"] - 20) - abs(p["slow"] - 120) / 4)
        else:
            out.append(-abs(p["window"] - 14) - 5.0)
    return out


def _drive(s, rounds_before_restore=None):
    """Ask/tell to the end; after ``rounds_before_restore`` rounds, continue from a JSON
    round trip of the state (what a checkpoint holds)."""
    r = 0
    while not s.done:
        trials = s.suggest()
        s.observe(trials, _toy_fitness(trials))
        r += 1
        if r == rounds_before_restore:
            s = OptunaSearcher.from_state(json.loads(json.dumps(s.state())))
    return [(t.id, t.strategy, t.params, t.generation, f) for t, f in s.history]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_seeded_resumable_and_it_learns(sampler):
    make = lambda seed: OptunaSearcher(["sma_cross", "rsi"], sampler, n_trials=48, seed=seed,  # noqa: E731
                                       batch=12)
    a = _drive(make(3))
    assert len(a) == 48 and [t[0] for t in a] == list(range(48))
    assert [t[3] for t in a] == [i // 12 for i in range(48)]  # round = generation
    # the budget is dealt to the strategies in turn
    assert [t[1] for t in a] == ["sma_cross", "rsi"] * 24
    assert _drive(make(3)) == a
    assert _drive(make(4)) != a
    # a resume (state -> JSON -> fresh studies) suggests exactly what an uninterrupted run does
    assert _drive(make(3), rounds_before_restore=1) == a
    assert _drive(make(3), rounds_before_restore=3) == a
    for _, s, p, _, _ in a:
        space = get(s).space
        assert space.feasible(np.array([p]))[0]
        for d, v in zip(space.dims, p, strict=True):
            assert d.low <= v <= d.high
            if d.kind == "int":
                assert float(v).is_integer()


def test_model_based_samplers_beat_their_own_first_round():
    # not a tuning claim: TPE and CMA-ES use what they are told, so over 6 rounds the best
    # sma_cross point gets closer to the bowl's top than the first (random) round's
    for sampler in ("tpe", "cmaes"):
        s = OptunaSearcher(["sma_cross"], sampler, n_trials=120, seed=1, batch=20)
        first = None
        while not s.done:
            trials = s.suggest()
            fit = _toy_fitness(trials)
            first = max(fit) if first is None else first
            s.observe(trials, fit)
        assert s.best()[1] > first, sampler


def test_infeasible_proposals_are_pruned_and_never_suggested():
    # fast in 30..50, slow in 20..60, fast < slow: most of the box is infeasible
    space = ParamSpace((Int("fast", 30, 50), Int("slow", 20, 60)),
                       (Constraint("fast", "<", "slow"),), "sma_cross")
    for max_resample in (50, 0):  # 0: every infeasible proposal is replaced at once
        s = OptunaSearcher(["sma_cross"], "tpe", n_trials=40, seed=2, batch=10,
                           spaces={"sma_cross": space}, max_resample=max_resample)
        while not s.done:
            trials = s.suggest()
            assert space.feasible(np.array([t.params for t in trials])).all()
            s.observe(trials, _toy_fitness(trials))
        states = [t.state.name for t in s._studies["sma_cross"].trials]
        assert states.count("COMPLETE") == 40
        assert "PRUNED" in states  # proposals that broke fast < slow, told as pruned
        # the resumed searcher replays the pruned trials too
        clone = OptunaSearcher.from_state(json.loads(json.dumps(s.state())))
        assert [t.state.name for t in clone._studies["sma_cross"].trials] == states


def test_failed_evaluations_are_told_as_failed():
    s = OptunaSearcher(["sma_cross"], "tpe", n_trials=8, seed=0, batch=4)
    trials = s.suggest()
    s.observe(trials, [FALLBACK_FITNESS, 0.5, float("nan"), 0.1])
    states = [t.state.name for t in s._studies["sma_cross"].trials]
    assert states == ["FAIL", "COMPLETE", "FAIL", "COMPLETE"]
    assert s.best()[1] == 0.5


def test_bad_settings_are_one_line_errors():
    with pytest.raises(QuantfleetError, match="optuna:bogus: unknown sampler; use one of"):
        OptunaSearcher(["sma_cross"], "bogus")
    with pytest.raises(QuantfleetError, match="searcher 'optuna:x': unknown; use one of"):
        evolve(_market(), ["sma_cross"], searcher="optuna:x")
    with pytest.raises(QuantfleetError, match="mutation: genetic-algorithm option"):
        evolve(_market(), ["sma_cross"], searcher="optuna:tpe", mutation=0.3)


def _market() -> MarketData:
    rng = np.random.default_rng(31)
    close = np.stack([ref.random_close(rng, 500, 0.015) for _ in range(2)])
    ts = (np.datetime64("2013-01-01") + np.arange(500)).astype("datetime64[ns]")
    return MarketData(ts, ("AA", "BB"), close, source="test")


@pytest.fixture(scope="module")
def market() -> MarketData:
    return _market()


@pytest.fixture(scope="module")
def procs():
    ex = ProcessExecutor(workers=2)
    yield ex
    ex.close()


def _strip(history):
    return [{k: v for k, v in h.items() if k not in ("wall_s", "cpu_s")} for h in history]


def test_same_trials_on_serial_processes_and_ray(market, procs, ray_executor):
    kw = dict(population=10, generations=3, seed=5, searcher="optuna:tpe")
    want = evolve(market, ["sma_cross", "rsi"], **kw)
    assert want.config["searcher"] == "optuna:tpe"
    of = want.overfit
    assert of["n_trials"] + of["n_repeats"] + of["n_failed"] == 30 and of["n_trials"] >= 10
    for ex in (procs, ray_executor):  # Ray: the loop runs in the coordinator actor
        got = evolve(market, ["sma_cross", "rsi"], executor=ex, **kw)
        assert json.dumps(got.winners) == json.dumps(want.winners), ex.name
        assert _strip(got.history) == _strip(want.history), ex.name
        assert got.overfit["n_trials"] == want.overfit["n_trials"]


def test_run_search_resumes_from_its_checkpoint_as_if_uninterrupted(market, tmp_path):
    def make():
        return OptunaSearcher(["sma_cross", "rsi"], "cmaes", n_trials=30, seed=9, batch=10)

    full = run_search(make(), market)

    class Stop(Exception):
        pass

    def stop_in_second(rec):  # on_round runs before the round's checkpoint is written
        if rec["round"] == 1:
            raise Stop

    ck = tmp_path / "search.json"
    with pytest.raises(Stop):
        run_search(make(), market, checkpoint=ck, on_round=stop_in_second)
    assert json.loads(ck.read_text())["searcher"]["next_id"] == 10
    resumed = run_search(make(), market, checkpoint=ck)
    assert resumed.state["history"] == full.state["history"]
    assert _strip(resumed.history) == _strip(full.history)
    # pickled as its state (how the Ray coordinator receives it): the same searcher
    clone = pickle.loads(pickle.dumps(OptunaSearcher.from_state(full.state)))
    assert clone.state() == OptunaSearcher.from_state(full.state).state()


# optuna unimportable in a subprocess: the searcher and the CLI say what to install, in one line
BLOCK = """
import sys
sys.modules["optuna"] = None
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
                          timeout=300)


def test_missing_optuna_is_a_one_line_error():
    res = _run("from quantfleet.research.optuna_search import OptunaSearcher\n"
               "try:\n    OptunaSearcher(['sma_cross'])\n"
               "except Exception as e:\n    print(type(e).__name__, e)")
    assert res.stdout.strip() == ("ConfigError the Optuna searchers need optuna: pip install "
                                  "'quantfleet[search]' (or use --searcher genetic|random|grid)")
    res = _run("sys.argv = ['quantfleet', 'evolve', 'synthetic:gbm?bars=300&assets=1&seed=3', "
               "'--strategies', 'sma_cross', '--searcher', 'optuna:tpe', '--no-store']\n"
               "from quantfleet.cli import main\nmain()")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: the Optuna searchers need optuna: pip install 'quantfleet[search]' (or use "
        "--searcher genetic|random|grid)"]


def test_cli_evolve_with_an_optuna_searcher(tmp_path):
    args = [sys.executable, "-m", "quantfleet.cli", "evolve",
            "synthetic:gbm?bars=400&assets=2&seed=3", "--strategies", "sma_cross,rsi",
            "--searcher", "optuna:nsgaii", "--population", "6", "--generations", "2",
            "--seed", "4", "--no-store", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    runs = [subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env=env) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    out = [json.loads(r.stdout) for r in runs]
    assert out[0]["searcher"] == "optuna:nsgaii"
    assert out[0]["evaluations"] + out[0]["cached"] == 12 and len(out[0]["history"]) == 2
    # the DSR counts every distinct parameter set proposed (a repeat once, a failure never)
    of = out[0]["overfit"]
    assert of["n_trials"] + of["n_repeats"] + of["n_failed"] == 12 and of["n_trials"] >= 6
    assert out[0]["winners"] == out[1]["winners"]


def test_every_searcher_keeps_to_the_grid_and_the_budget(market):
    grid = {"fast": [5, 10, 15], "slow": [10, 30, 60]}  # fast < slow: 7 feasible combos
    allowed = {(f, s) for f in grid["fast"] for s in grid["slow"] if f < s}
    res = evolve(market, ["sma_cross"], searcher="grid", grid=grid, population=3,
                 generations=1, top=10)
    assert res.n_evaluations == 7 and len(res.history) == 3  # the whole grid, 3 a round
    assert {(w["params"]["fast"], w["params"]["slow"]) for w in res.winners} == allowed
    for searcher in ("random", "optuna:tpe", "optuna:cmaes", "optuna:nsgaii", "optuna:random"):
        res = evolve(market, ["sma_cross"], searcher=searcher, grid=grid, population=4,
                     generations=2, top=10)
        assert res.n_evaluations + res.n_cached == 8 and len(res.history) == 2, searcher
        assert {(w["params"]["fast"], w["params"]["slow"]) for w in res.winners} <= allowed


def test_a_checkpoint_is_resumed_only_by_the_searcher_that_wrote_it(market, tmp_path):
    kw = dict(population=6, generations=2, seed=1, checkpoint_dir=tmp_path)
    first = evolve(market, ["sma_cross"], searcher="optuna:tpe", **kw)
    again = evolve(market, ["sma_cross"], searcher="optuna:tpe", **kw)  # served from it
    assert json.dumps(again.winners) == json.dumps(first.winners)
    assert _strip(again.history) == _strip(first.history)
    for other in ("genetic", "optuna:cmaes"):
        with pytest.raises(QuantfleetError, match=r"other settings \(searcher differ\)"):
            evolve(market, ["sma_cross"], searcher=other, **kw)
