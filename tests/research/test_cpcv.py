"""Combinatorial purged cross-validation: splits, purge and embargo, paths, PBO."""

from __future__ import annotations

import json
import math
from itertools import combinations

import numpy as np
import pytest

from quantfleet.backtest.terms import Costs, Execution
from quantfleet.errors import QuantfleetError
from quantfleet.research.cpcv import Cpcv, cpcv_pair, cpcv_paths, cpcv_splits, group_bounds
from quantfleet.research.tournament import tournament
from tests import reference as ref


@pytest.mark.parametrize(("n", "k", "emb"), [(6, 2, 5), (5, 1, 0), (4, 3, 2), (7, 3, 11)])
def test_splits_purge_and_embargo_by_construction(n, k, emb):
    lo, hi = 40, 40 + 503
    cv = Cpcv(n, k, emb)
    b = group_bounds(lo, hi, n) - lo
    assert b[0, 0] == 0 and b[-1, 1] == hi - lo and (b[1:, 0] == b[:-1, 1]).all()
    splits = cpcv_splits(lo, hi, cv)
    assert len(splits) == math.comb(n, k) == cv.n_splits
    assert [s["test_groups"] for s in splits] == list(combinations(range(n), k))
    for s in splits:
        train, test = s["train"], s["test"]
        assert not (train & test).any()  # no overlap
        for g in range(n):
            a, z = b[g]
            assert test[a:z].all() == (g in s["test_groups"])
        for g in s["test_groups"]:
            a, z = b[g]
            assert a == 0 or not train[a - 1]  # purged: its label is the test's first bar
            assert not train[z:z + emb].any()  # no training bar within the embargo
        # everything else trains: a bar is dropped only as test, purge or embargo
        dropped = test.copy()
        for g in s["test_groups"]:
            a, z = b[g]
            dropped[max(a - 1, 0)] |= a > 0
            dropped[z:z + emb] = True
        np.testing.assert_array_equal(train, ~dropped)


@pytest.mark.parametrize(("n", "k"), [(6, 2), (5, 1), (4, 3), (7, 3), (6, 5)])
def test_paths_cover_every_group_once_and_there_are_phi_of_them(n, k):
    a = cpcv_paths(n, k)
    phi = math.comb(n, k) * k // n
    assert phi == Cpcv(n, k).n_paths == math.comb(n - 1, k - 1)
    assert a.shape == (math.comb(n, k), n)
    for p in range(phi):
        # path p takes each group from exactly one split, and that split tests the group
        assert ((a == p).sum(axis=0) == 1).all()
    assert ((a >= 0) == np.array([[g in tg for g in range(n)]
                                  for tg in combinations(range(n), k)])).all()


def _sharpe(r, ppy):
    sd = np.std(r, ddof=1)
    return np.mean(r) / sd * np.sqrt(ppy) if sd > 0 else np.nan


def _flat_booked(close, pos, fee, a, z):
    """Bars [a, z) booked on their own from the close and positions (entering flat at a)."""
    return ref.equity_returns(close[:z], pos[:z], fee, start=a)


def _cpcv_by_hand(close, positions, n, k, emb, fee, ppy):
    """CPCV and CSCV-style PBO from the definitions, one combo and split at a time."""
    bars = close.shape[0]
    edges = [g * bars // n for g in range(n + 1)]
    splits = list(combinations(range(n), k))
    logits, chosen = [], []
    path_of = {}
    seen = [0] * n
    paths = np.zeros((math.comb(n - 1, k - 1), bars))
    for tg in splits:
        train = np.ones(bars, dtype=bool)
        for g in tg:
            train[edges[g]:edges[g + 1]] = False
            if edges[g] > 0:
                train[edges[g] - 1] = False
            train[edges[g + 1]:edges[g + 1] + emb] = False
        runs, t = [], 0
        while t < bars:
            if train[t]:
                u = t
                while u < bars and train[u]:
                    u += 1
                runs.append((t, u))
                t = u
            else:
                t += 1
        is_s = [_sharpe(np.concatenate([_flat_booked(close, p, fee, a, z) for a, z in runs]), ppy)
                for p in positions]
        oos = [_sharpe(np.concatenate([_flat_booked(close, p, fee, edges[g], edges[g + 1])
                                       for g in tg]), ppy) for p in positions]
        best = int(np.nanargmax(is_s))
        chosen.append(best)
        v = np.array([x if np.isfinite(x) else -np.inf for x in oos])
        rank = (v < v[best]).sum() + ((v == v[best]).sum() + 1) / 2
        w = rank / (len(positions) + 1)
        logits.append(math.log(w / (1 - w)))
        for g in tg:
            path_of[(seen[g], g)] = best
            paths[seen[g], edges[g]:edges[g + 1]] = _flat_booked(
                close, positions[best], fee, edges[g], edges[g + 1])
            seen[g] += 1
    pbo = float(np.mean(np.array(logits) <= 0))
    return pbo, np.array(logits), np.array(chosen), paths


def _earned(close, pos):
    r = np.concatenate([[0.0], close[1:] / close[:-1] - 1.0])
    return np.concatenate([[0.0], pos[:-1]]) * r


def test_cpcv_pbo_equals_the_cscv_pbo_computed_by_hand_on_a_small_case():
    rng = np.random.default_rng(3)
    close = ref.random_close(rng, 120, 0.02)
    # four combos: always long, flat-and-long halves, and two random position series
    pos = np.stack([np.ones(120), np.r_[np.zeros(60), np.ones(60)],
                    rng.choice([-1.0, 0.0, 1.0], 120), rng.choice([0.0, 1.0], 120)])
    earned = np.stack([_earned(close, p) for p in pos])
    for n, k, emb in ((4, 2, 3), (5, 2, 0), (6, 3, 2)):
        got = cpcv_pair(pos, earned, Cpcv(n, k, emb), "sharpe", 1e-3, 252.0)
        pbo, logits, chosen, paths = _cpcv_by_hand(close, pos, n, k, emb, 1e-3, 252.0)
        assert got["pbo"] == pbo
        np.testing.assert_array_equal(got["chosen"], chosen)
        np.testing.assert_allclose(got["logits"], logits, rtol=1e-12)
        np.testing.assert_allclose(got["path_returns"], paths, rtol=0, atol=1e-14)


def test_a_pbo_of_one_when_the_in_sample_winner_always_loses_out_of_sample():
    # combo 0 earns in group 0 and loses in group 1, combo 1 the reverse: with N=2, k=1 each
    # split trains on one group and tests on the other, where its winner is the worse combo
    close = np.r_[np.linspace(100, 120, 50), np.linspace(120, 100, 50)]
    close = close * (1 + 0.001 * np.sin(np.arange(100)))
    pos = np.stack([np.ones(100), -np.ones(100)])
    earned = np.stack([_earned(close, p) for p in pos])
    got = cpcv_pair(pos, earned, Cpcv(2, 1, 0), "sharpe", 0.0, 252.0)
    assert got["pbo"] == 1.0 and list(got["chosen"]) == [1, 0]
    assert np.allclose(got["logits"], math.log((1 / 3) / (2 / 3)))


def test_tournament_cpcv_equals_the_reference_and_is_identical_across_executors():
    from quantfleet.compute import ProcessExecutor, SerialExecutor

    market = ref.random_market(7, 400, ("X", "Y"), 0.015, "2012-01-02")
    grids = {"sma_cross": {"fast": [3, 8], "slow": [20, 40]}}
    kw = dict(train=150, test=50, grids=grids, costs=Costs(fee_bps=5), ppy=252.0,
              cv=Cpcv(5, 2, 3), confidence=False)
    res = tournament(market, ["sma_cross"], executor=SerialExecutor(), **kw)
    par = tournament(market, ["sma_cross"], executor=ProcessExecutor(workers=2), **kw)
    assert res.cpcv.to_json() == par.cpcv.to_json()
    assert res.cpcv_paths.to_json() == par.cpcv_paths.to_json()
    assert len(res.cpcv) == 2 and len(res.cpcv_paths) == 2 * math.comb(4, 1)
    combos = [json.loads(p) for p in res.table.to_pandas().query("window == 0")["params"][:4]]
    for i, asset in enumerate(market.assets):
        close = market.close[market.asset_index(asset)]
        pos = np.stack([sma_pos(close, p) for p in combos])
        pbo, _, _, paths = _cpcv_by_hand(close, pos, 5, 2, 3, 5e-4, 252.0)
        row = res.cpcv.iloc[i]
        assert row["asset"] == asset and row["paths"] == 4 and row["splits"] == 10
        assert row["pbo"] == pbo
        sh = [_sharpe(p, 252.0) for p in paths]
        got = res.cpcv_paths[res.cpcv_paths["asset"] == asset]["sharpe"].to_numpy()
        np.testing.assert_allclose(got, sh, rtol=1e-9)
        assert np.isclose(row["sharpe_mean"], np.mean(sh), rtol=1e-12)
        assert np.isclose(row["sharpe_median"], np.median(sh), rtol=1e-12)
    # walk-forward only: no CPCV tables
    assert tournament(market, ["sma_cross"], **{**kw, "cv": None}).cpcv is None


def sma_pos(close, p):
    f, s = ref.sma(close, p["fast"]), ref.sma(close, p["slow"])
    pos = np.where(f > s, 1.0, 0.0)
    pos[np.isnan(s)] = 0.0
    return pos


def test_cpcv_errors():
    market = ref.random_market(7, 200, ("X",), 0.015, "2012-01-02")
    with pytest.raises(QuantfleetError, match="test_groups"):
        Cpcv(4, 4)
    with pytest.raises(QuantfleetError, match="groups"):
        Cpcv(1, 1)
    with pytest.raises(QuantfleetError, match="embargo"):
        Cpcv(4, 2, -1)
    with pytest.raises(QuantfleetError, match=r"C\(20, 10\) = 184,756 splits, more than 5,000"):
        Cpcv(20, 10)
    kw = dict(train=100, test=50, n_windows=None, max_combos=4, confidence=False)
    with pytest.raises(QuantfleetError, match="metric 'turnover' with cv"):
        tournament(market, ["sma_cross"], metric="turnover", cv=Cpcv(), **kw)
    with pytest.raises(QuantfleetError, match="default execution"):
        tournament(market, ["sma_cross"], execution=Execution(fill="next_open"), cv=Cpcv(), **kw)
    with pytest.raises(QuantfleetError, match="cannot make 300 groups"):  # 200 bars
        tournament(market, ["sma_cross"], cv=Cpcv(300, 1), **kw)


def _qf(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "quantfleet.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_cpcv_json_catalog_report_and_errors(tmp_path):
    import pandas as pd

    from quantfleet.data import load
    from quantfleet.store.catalog import Catalog

    rng = np.random.default_rng(5)
    d = ref.random_ohlcv(rng, 400)
    csv = tmp_path / "ACME.csv"
    pd.DataFrame({"Date": pd.date_range("2018-01-01", periods=400, freq="B"),
                  **{k.capitalize(): v for k, v in d.items()}}).to_csv(csv, index=False)
    store = str(tmp_path / "lake")
    args = ("tournament", str(csv), "--strategies", "sma_cross", "--windows", "3",
            "--max-combos", "4", "--executor", "serial", "--no-confidence", "--store", store)
    p = _qf(*args, "--cv", "cpcv", "--groups", "6", "--test-groups", "2", "--embargo", "5",
            "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    c = doc["cpcv"]
    assert (c["groups"], c["test_groups"], c["embargo"], c["splits"], c["paths"]) == (6, 2, 5,
                                                                                      15, 5)
    (pair,) = c["pairs"]
    assert (pair["strategy"], pair["asset"]) == ("sma_cross", "ACME")
    # what the library computes in process with the same settings
    res = tournament(load(str(csv)), ["sma_cross"], n_windows=3, max_combos=4,
                     cv=Cpcv(6, 2, 5), confidence=False)
    want = res.cpcv.iloc[0]
    assert pair["pbo"] == want["pbo"] and pair["sharpe_mean"] == want["sharpe_mean"]
    assert pair["path_sharpe"] == res.cpcv_paths["sharpe"].tolist()
    with Catalog(store) as cat:
        cat.refresh()
        rows = cat.rows("select path, sharpe from tournament_cpcv_paths where run_id = ? "
                        "order by path", [doc["run_id"]])
        (summ,) = cat.rows("select pbo, paths from tournament_cpcv where run_id = ?",
                           [doc["run_id"]])
    assert [r["path"] for r in rows] == list(range(5))
    assert [r["sharpe"] for r in rows] == pair["path_sharpe"]
    assert (summ["pbo"], summ["paths"]) == (pair["pbo"], 5)
    out = tmp_path / "r.html"
    assert _qf("report", doc["run_id"], "--store", store, "--out", str(out)).returncode == 0
    html = out.read_text()
    assert "Combinatorial purged cross-validation" in html
    assert "6 groups, 2 tested per split, embargo 5 bars: 15 splits, 5 out-of-sample" in html
    # walk-forward stays the default: no cpcv block
    plain = json.loads(_qf(*args, "--json").stdout)
    assert "cpcv" not in plain
    # the text output names the settings
    text = _qf(*args, "--cv", "cpcv", "--groups", "4").stdout
    assert "CPCV: 4 groups, 2 tested per split, embargo 0 bars: 6 splits, 3" in text
    for bad, message in ((("--cv", "kfold"), "--cv must be walk or cpcv"),
                         (("--cv", "cpcv", "--groups", "3", "--test-groups", "3"),
                          "test_groups = 3 must be below groups = 3"),
                         (("--cv", "cpcv", "--metric", "turnover"), "metric 'turnover' with cv"),
                         (("--cv", "cpcv", "--fill", "next_open"), "default execution")):
        p = _qf(*args, *bad)
        assert p.returncode == 2, (p.stdout, p.stderr)
        assert message in p.stderr and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_config_keys(tmp_path):
    from quantfleet.errors import ConfigError
    from quantfleet.pipeline.config import PipelineConfig, load_config
    from quantfleet.pipeline.stages import _cpcv

    assert PipelineConfig().tournament.cv == "walk" and _cpcv(PipelineConfig().tournament) is None
    p = tmp_path / "c.toml"
    p.write_text("[tournament]\ncv = 'cpcv'\ngroups = 8\ntest_groups = 3\nembargo = 4\n")
    assert _cpcv(load_config(p).tournament) == Cpcv(8, 3, 4)
    for text, message in (("cv = 'kfold'", "tournament.cv: Input should be 'walk' or 'cpcv'"),
                          ("cv = 'cpcv'\ngroups = 4\ntest_groups = 4",
                           "test_groups = 4 must be below groups = 4"),
                          ("embargo = -1", "tournament.embargo: Input should be greater"),
                          ("cv = 'cpcv'\ngroups = 20\ntest_groups = 10",
                           "184,756 splits, more than 5,000")):
        p.write_text(f"[tournament]\n{text}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(p)


def test_a_shard_tournament_gives_the_in_memory_cpcv(tmp_path):
    import pandas as pd

    from quantfleet.data import load
    from quantfleet.store import Store
    from quantfleet.store.datasets import clear_process_cache, open_dataset, put_dataset

    market = load("synthetic:gbm?bars=600&assets=2&seed=11")
    kw = dict(n_windows=3, grid={"fast": [5, 10], "slow": [20, 40]}, cv=Cpcv(5, 2, 2),
              confidence=False)
    mem = tournament(market, ["sma_cross"], **kw)
    st = Store.open(tmp_path / "store")
    ref_ = put_dataset(st, market, name="g")["reference"]
    clear_process_cache()
    shard = tournament(open_dataset(st, ref_), ["sma_cross"], **kw)
    pd.testing.assert_frame_equal(mem.cpcv, shard.cpcv)
    pd.testing.assert_frame_equal(mem.cpcv_paths, shard.cpcv_paths)
    assert len(mem.cpcv_paths) == 2 * 4
