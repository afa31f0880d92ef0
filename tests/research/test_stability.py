"""Parameter stability: maps over the two most important parameters and the plateau drop."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from quantfleet.research.stability import (
    CLIFF_DROP,
    chosen_combo,
    combo_metric,
    important_dims,
    plateau_drop,
    stability_map,
    stability_table,
    strategy_stability,
)
from tests import reference as ref

# --- slow references, from the definitions in docs/overfit.md ("Parameter stability") ---


def ref_score(oos):
    """Mean over windows of each combo's metric, NaN windows skipped."""
    out = []
    for c in range(len(oos[0])):
        vals = [oos[w][c] for w in range(len(oos)) if math.isfinite(oos[w][c])]
        out.append(sum(vals) / len(vals) if vals else math.nan)
    return out


def ref_marginal(params, score, d, v):
    vals = [s for p, s in zip(params, score, strict=True) if p[d] == v and math.isfinite(s)]
    return sum(vals) / len(vals) if vals else math.nan


def ref_important(params, score):
    imp = []
    for d in range(len(params[0])):
        levels = sorted({p[d] for p in params})
        if len(levels) < 2:
            continue
        means = [m for m in (ref_marginal(params, score, d, v) for v in levels) if math.isfinite(m)]
        imp.append((-(max(means) - min(means)) if means else 0.0, d))
    return [d for _, d in sorted(imp)[:2]]


def ref_map(params, score, d1, d2):
    l1, l2 = sorted({p[d1] for p in params}), sorted({p[d2] for p in params})
    out = np.full((len(l1), len(l2)), np.nan)
    for i, a in enumerate(l1):
        for j, b in enumerate(l2):
            vals = [s for p, s in zip(params, score, strict=True)
                    if p[d1] == a and p[d2] == b and math.isfinite(s)]
            if vals:
                out[i, j] = sum(vals) / len(vals)
    return out


def ref_drop(params, score, chosen, sign=1.0):
    levels = [sorted({p[d] for p in params}) for d in range(len(params[0]))]
    step = [[levels[d].index(p[d]) for d in range(len(p))] for p in params]
    near = [score[c] for c in range(len(params)) if c != chosen and math.isfinite(score[c])
            and all(abs(step[c][d] - step[chosen][d]) <= 1 for d in range(len(levels)))]
    fin = [s for s in score if math.isfinite(s)]
    mu = sum(fin) / len(fin)
    sd = math.sqrt(sum((s - mu) ** 2 for s in fin) / len(fin))
    if not near:
        return math.nan
    diff = sign * (score[chosen] - sum(near) / len(near))
    return 0.0 if sd == 0 else diff / sd


def _grid(*axes):
    return np.array(list(itertools.product(*axes)), dtype=np.float64)


# --- the functions against the references ---


def test_score_map_importance_and_drop_match_the_references_on_a_hand_made_grid():
    rng = np.random.default_rng(4)
    # an irregular coarse grid: unevenly spaced values, a dimension that barely matters, and
    # some combos missing (a constraint / a subsampled grid): steps are over values present
    params = _grid([5, 10, 30], [20, 50, 100, 200], [0.1, 0.2])
    params = params[[i for i in range(len(params)) if i % 7 != 3]]
    n_c = len(params)
    oos = rng.normal(0.0, 0.2, (5, n_c)) + 0.5 * np.log(params[:, 1])[None, :]
    oos[1, 2] = np.nan
    oos[:, 4] = np.nan  # a combo with no finite window
    score = combo_metric(oos)
    np.testing.assert_allclose(score, ref_score(oos.tolist()), rtol=1e-12, equal_nan=True)
    pl = params.tolist()
    sl = score.tolist()
    dims = important_dims(params, score)
    assert dims == ref_important(pl, sl) and dims[0] == 1
    vals, m = stability_map(params, score, dims)
    np.testing.assert_allclose(m, ref_map(pl, sl, *dims), rtol=1e-12, equal_nan=True)
    assert [v.tolist() for v in vals] == [sorted({p[d] for p in pl}) for d in dims]
    for chosen in range(n_c):
        for metric, sign in (("sharpe", 1.0), ("max_drawdown", -1.0)):
            got, n = plateau_drop(params, score, chosen, metric)
            want = ref_drop(pl, sl, chosen, sign) if math.isfinite(sl[chosen]) else math.nan
            if math.isnan(want):
                assert math.isnan(got)
            else:
                assert got == pytest.approx(want, rel=1e-12, abs=1e-15) and n > 0


def test_chosen_combo_is_the_most_frequent_pick_ties_to_the_lowest_index():
    assert chosen_combo(np.array([3, 1, 3, 1, 2]), 5) == 1
    assert chosen_combo(np.array([-1, 4, 4, 0]), 5) == 4
    assert chosen_combo(np.array([-1, -1]), 5) == -1


def test_a_plateau_is_stable_and_a_spike_on_a_cliff_edge_is_flagged():
    params = _grid(range(6), range(6))
    x, y = params[:, 0], params[:, 1]
    # a smooth hill: the top's neighbours score almost as well
    hill = 1.0 - 0.05 * ((x - 3) ** 2 + (y - 3) ** 2)
    top = int(np.argmax(hill))
    drop, n = plateau_drop(params, hill, top)
    assert n == 8 and 0.0 < drop < CLIFF_DROP
    # one combo great, its neighbours bad (a cliff right next to it), the rest middling
    spike = np.full(len(params), 0.3)
    peak = int(np.flatnonzero((x == 2) & (y == 4))[0])
    near = (np.abs(x - 2) <= 1) & (np.abs(y - 4) <= 1)
    spike[near] = -0.5
    spike[peak] = 1.5
    drop_s, n_s = plateau_drop(params, spike, peak)
    assert n_s == 8 and drop_s > CLIFF_DROP
    # scale-free: the same surfaces scaled and shifted give the same drops
    assert plateau_drop(params, 3.0 * hill - 7.0, top)[0] == pytest.approx(drop, rel=1e-12)
    assert plateau_drop(params, 0.1 * spike + 2.0, peak)[0] == pytest.approx(drop_s, rel=1e-12)
    # the strategy block: one asset's hill, another's spike, averaged
    b = strategy_stability("s", ["a", "b"], params, [hill], [np.array([top, top, 0])])
    assert b["stable"] is True and b["chosen"] == top and b["params"] == ["a", "b"]
    b = strategy_stability("s", ["a", "b"], params, [spike], [np.array([peak])])
    assert b["stable"] is False and b["chosen_params"] == {"a": 2.0, "b": 4.0}
    tbl = stability_table([b])
    assert len(tbl) == 36 and tbl["chosen"].sum() == 1
    assert tbl.loc[tbl["chosen"], "score"].item() == 1.5


def test_a_one_parameter_strategy_gets_a_profile_and_a_flat_grid_no_map():
    params = _grid([1, 2, 3, 4], [7])  # the second dimension has one value
    score = np.array([0.1, 0.4, 0.5, 0.45])
    b = strategy_stability("s", ["w", "k"], params, [score], [np.array([2, 2])])
    assert b["params"] == ["w"] and b["map"] == pytest.approx(score.tolist())
    assert b["plateau_drop"] == pytest.approx(ref_drop(params.tolist(), score.tolist(), 2))
    tbl = stability_table([b])
    assert tbl["param2"].isna().all() and len(tbl) == 4
    one = strategy_stability("s", ["w"], np.array([[3.0]]), [np.array([0.2])], [np.array([0])])
    assert one["params"] == [] and math.isnan(one["plateau_drop"]) and one["stable"] is None


# --- on the tournament ---


KW = {"n_windows": 4, "max_combos": 12, "ppy": 252.0}


@pytest.fixture(scope="module")
def market():
    return ref.random_market(11, 700, ("X", "Y"), 0.015, "2012-01-02")


def test_the_tournament_blocks_are_the_references_from_its_result_rows(market):
    from quantfleet.research.tournament import tournament
    from quantfleet.strategies import get

    res = tournament(market, ["sma_cross", "rsi"], **KW)
    t = res.table.to_pandas()
    assert [b["strategy"] for b in res.stability] == ["sma_cross", "rsi"]
    board = res.leaderboard.set_index(["strategy", "asset"])
    for b in res.stability:
        rows = t[t["strategy"] == b["strategy"]]
        names = list(get(b["strategy"]).space.names)
        combos = rows.drop_duplicates("combo").sort_values("combo")
        params = [[json.loads(p)[n] for n in names] for p in combos["params"]]
        pair_scores = []
        for asset, g in rows.groupby("asset"):
            oos = g.pivot(index="window", columns="combo", values="oos_sharpe").to_numpy()
            s = ref_score(oos.tolist())
            pair_scores.append(s)
            picks = g.loc[g["selected"], "combo"].to_numpy()
            counts = np.bincount(picks, minlength=len(params))
            want = ref_drop(params, s, int(np.argmax(counts)))
            got = board.loc[(b["strategy"], asset), "plateau_drop"]
            assert got == pytest.approx(want, rel=1e-9)
            assert board.loc[(b["strategy"], asset), "stable"] == (want <= CLIFF_DROP)
        score = ref_score(pair_scores)
        picks = rows.loc[rows["selected"], "combo"].to_numpy()
        chosen = int(np.argmax(np.bincount(picks, minlength=len(params))))
        assert b["chosen"] == chosen
        assert b["plateau_drop"] == pytest.approx(ref_drop(params, score, chosen), rel=1e-9)
        dims = ref_important(params, score)
        assert b["params"] == [names[d] for d in dims]
        np.testing.assert_allclose(np.array(b["map"], dtype=float), ref_map(params, score, *dims),
                                   rtol=1e-9, equal_nan=True)


def test_stability_is_identical_on_serial_and_process_executors(market):
    from quantfleet.compute import ProcessExecutor, SerialExecutor
    from quantfleet.research.tournament import tournament

    serial = tournament(market, ["sma_cross", "rsi"], executor=SerialExecutor(), **KW)
    with ProcessExecutor(workers=2) as ex:
        procs = tournament(market, ["sma_cross", "rsi"], executor=ex,
                           map_options={"chunk_size": 1}, **KW)
    assert json.dumps(serial.stability) == json.dumps(procs.stability)
    cols = ["strategy", "asset", "plateau_drop", "stable"]
    assert serial.leaderboard[cols].equals(procs.leaderboard[cols])


def test_the_cli_shows_the_blocks_in_json_text_and_the_catalog_view(tmp_path):
    import subprocess
    import sys

    import pandas as pd

    from quantfleet.research.stability import stability_line
    from quantfleet.store.catalog import Catalog

    rng = np.random.default_rng(5)
    d = ref.random_ohlcv(rng, 400)
    csv = tmp_path / "ACME.csv"
    pd.DataFrame({"Date": pd.date_range("2018-01-01", periods=400, freq="B"),
                  **{k.capitalize(): v for k, v in d.items()}}).to_csv(csv, index=False)
    lake = str(tmp_path / "lake")
    args = [sys.executable, "-m", "quantfleet.cli", "tournament", str(csv), "--strategies",
            "sma_cross,rsi", "--windows", "3", "--max-combos", "8", "--executor", "serial"]

    def run(*more):
        p = subprocess.run([*args, *more], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout

    doc = json.loads(run("--store", lake, "--json"))
    blocks = doc["stability"]
    assert [b["strategy"] for b in blocks] == ["sma_cross", "rsi"]
    for b in blocks:
        assert len(b["params"]) == 2 and np.array(b["map"], dtype=float).shape == tuple(
            len(v) for v in b["values"])
    assert {"plateau_drop", "stable"} <= set(doc["leaderboard"][0])
    with Catalog(lake) as cat:
        cat.refresh()
        rows = cat.rows("select * from tournament_stability where run_id = ? "
                        "order by strategy, value1, value2", [doc["run_id"]])
    assert len(rows) == sum(len(b["values"][0]) * len(b["values"][1]) for b in blocks)
    for b in blocks:
        mine = [r for r in rows if r["strategy"] == b["strategy"]]
        cells = {(r["value1"], r["value2"]): r["score"] for r in mine}
        for i, v1 in enumerate(b["values"][0]):
            for j, v2 in enumerate(b["values"][1]):
                want = b["map"][i][j]
                assert (cells[(v1, v2)] is None) if want is None else (
                    cells[(v1, v2)] == pytest.approx(want))
    # the report: a heatmap per strategy under the leaderboard, its line and the column
    html_out = tmp_path / "r.html"
    p = subprocess.run([sys.executable, "-m", "quantfleet.cli", "report", doc["run_id"],
                        "--store", lake, "--out", str(html_out)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    page = html_out.read_text(encoding="utf-8")
    assert 'id="stability"' in page and "<th>plateau drop</th>" in page
    for b in blocks:
        assert f'id="fig-stability-{b["strategy"]}-' in page
        n_cells = sum(v is not None for row in b["map"] for v in row)
        assert f'data-series="{n_cells}"' in page
    text = run("--no-store")
    for b in blocks:
        line = stability_line({**b, "plateau_drop": (math.nan if b["plateau_drop"] is None
                                                     else b["plateau_drop"])})
        assert line in text


def test_the_heatmap_marks_the_chosen_cell_and_labels_true_values():
    from quantfleet.report.plots import stability

    b = {"strategy": "s", "metric": "sharpe", "params": ["a", "b"],
         "values": [[1.0, 2.0], [10.0, 20.0, 30.0]],
         "map": [[-0.5, None, 0.25], [1.5, 0.0, -1.25]],
         "chosen_params": {"a": 2.0, "b": 10.0, "c": 7.0}}
    fig = stability(b)
    assert fig.series == 5 and fig.svg.count("<rect") == 6
    assert "● 1.50" in fig.svg and fig.svg.count("●") == 1
    assert "a=1 / b=30: 0.25" in fig.svg and "a=2 / b=30: -1.25" in fig.svg
    assert "#f5f5f5" in fig.svg  # the empty cell
    prof = stability({**b, "params": ["a"], "values": [[1.0, 2.0]], "map": [0.5, None],
                      "chosen_params": {"a": 1.0}})
    assert prof.series == 1 and "● 0.50" in prof.svg
    assert stability({**b, "params": [], "values": [], "map": []}).svg == ""
