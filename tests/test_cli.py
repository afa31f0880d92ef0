"""The CLI end to end in subprocesses: output shapes, bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests import reference as ref


@pytest.fixture(autouse=True, scope="module")
def _store_in_tmp(tmp_path_factory):
    """Commands record their runs in $QUANTFLEET_STORE: a temp folder, never ./lakehouse."""
    import os

    old = os.environ.get("QUANTFLEET_STORE")
    os.environ["QUANTFLEET_STORE"] = str(tmp_path_factory.mktemp("clistore") / "lake")
    yield
    if old is None:
        os.environ.pop("QUANTFLEET_STORE")
    else:
        os.environ["QUANTFLEET_STORE"] = old


def qf(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "quantfleet.cli", *args], capture_output=True,
                       text=True, timeout=300)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory) -> str:
    rng = np.random.default_rng(5)
    d = ref.random_ohlcv(rng, 400)
    df = pd.DataFrame({"Date": pd.date_range("2018-01-01", periods=400, freq="B"),
                       **{k.capitalize(): v for k, v in d.items()}})
    path = tmp_path_factory.mktemp("cli") / "ACME.csv"
    df.to_csv(path, index=False)
    return str(path)


def test_backtest_json_matches_reference(csv_path):
    out = json.loads(qf("backtest", csv_path, "--strategy", "sma_cross", "--param", "fast=5",
                        "--param", "slow=20", "--fee-bps", "7", "--slippage-bps", "3",
                        "--periods-per-year", "252", "--json").stdout)
    assert out["strategy"] == "sma_cross" and out["asset"] == "ACME" and out["bars"] == 400
    assert out["params"] == {"fast": 5, "slow": 20}
    close = pd.read_csv(csv_path)["Close"].to_numpy()
    f, s = ref.sma(close, 5), ref.sma(close, 20)
    pos = np.where(f > s, 1.0, 0.0)
    pos[np.isnan(s)] = 0.0
    want = ref.metrics(close, pos, 0.001, 252.0)
    for k, v in want.items():
        assert out[k] == pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True) or (
            out[k] is None and np.isnan(v)), k


def test_sweep_json_and_parquet(csv_path, tmp_path):
    out_file = tmp_path / "s.parquet"
    res = json.loads(qf("sweep", csv_path, "--strategy", "sma_cross", "--grid", "fast=5:49:2",
                        "--grid", "slow=20,40,60", "--top", "3", "--out", str(out_file),
                        "--json").stdout)
    # fast 5..49 step 2 is 23 values; with slow in {20, 40, 60} and fast < slow
    n_ok = sum(1 for f in range(5, 50, 2) for s in (20, 40, 60) if f < s)
    assert res["combos"] == n_ok and res["skipped"] == 23 * 3 - n_ok
    assert len(res["top"]) == 3
    assert pd.read_parquet(out_file).shape[0] == n_ok


def test_strategies_json_lists_at_least_15():
    rows = json.loads(qf("strategies", "--json").stdout)
    names = {r["name"] for r in rows}
    assert len(rows) >= 15 and "sma_cross" in names


def test_data_info(csv_path):
    out = json.loads(qf("data", "info", csv_path, "--json").stdout)
    assert out["bars"] == 400 and out["assets"] == ["ACME"]


@pytest.mark.parametrize("args, message", [
    (["backtest", "{csv}", "--strategy", "sma_crss"], "unknown strategy 'sma_crss' (did you mean 'sma_cross'"),
    (["backtest", "{csv}", "--strategy", "sma_cross", "--param", "fats=3"], "unknown parameter 'fats' (did you mean 'fast'?)"),
    (["backtest", "{csv}", "--strategy", "sma_cross", "--param", "fast=30", "--param", "slow=20"], "constraint fast < slow violated"),
    (["backtest", "{csv}", "--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=500"], "slow=500 needs more than 500 bars but the data has 400"),
    (["backtest", "{csv}", "--strategy", "sma_cross", "--param", "fast"], "expected KEY=VALUE"),
    (["backtest", "{csv}", "--strategy", "sma_cross", "--param", "fast=abc"], "'abc' is not a number"),
    (["backtest", "{csv}", "--strategy", "sma_cross", "--fee-bps", "-5"], "fee_bps must be in [0, 10000)"),
    (["backtest", "{csv}", "--strategy", "sma_cross", "--asset", "ACNE"], "unknown asset 'ACNE' (did you mean 'ACME'?)"),
    (["backtest", "/nonexistent/prices.csv", "--strategy", "sma_cross"], "/nonexistent/prices.csv"),
    (["sweep", "{csv}", "--strategy", "sma_cross", "--grid", "fast=9:5"], "stop 5 is below start 9"),
    (["sweep", "{csv}", "--strategy", "sma_cross", "--metric", "sharp"], "unknown metric 'sharp'"),
    (["sweep", "{csv}", "--strategy", "funding_carry"], "needs a 'funding_rate' column"),
    (["backtest", "{csv}", "--strategy", "sma_cross", "--periods-per-year", "0"], "--periods-per-year must be > 0"),
])
def test_bad_input_one_line_exit_2(csv_path, args, message):
    p = qf(*[a.replace("{csv}", csv_path) for a in args], ok=False)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_store_flag_records_outputs_and_lineage(csv_path, tmp_path):
    lake = tmp_path / "lake"
    res = json.loads(qf("tournament", csv_path, "--strategies", "sma_cross,rsi", "--windows",
                        "3", "--max-combos", "4", "--executor", "serial", "--store", str(lake),
                        "--json").stdout)
    from quantfleet.store import Store

    store = Store.open(str(lake))
    m = store.get_run(res["run_id"])
    assert m.status == "succeeded" and m.command == "tournament"
    outs = m.outputs
    assert {"results", "leaderboard", "oos_returns"} <= set(outs)
    assert m.artifacts[outs["leaderboard"]]["kind"] == "leaderboard"
    assert m.artifacts[outs["results"]]["kind"] == "tournament_results"
    assert store.get_table(outs["results"]).num_rows == res["rows"]
    assert "market" in json.dumps(store.lineage(outs["leaderboard"]))


def test_every_research_command_records_its_run_and_json_names_it(csv_path, tmp_path):
    import os

    from quantfleet.store import Store

    lake = os.environ["QUANTFLEET_STORE"]
    cmds = {
        "backtest": ["backtest", csv_path, "--strategy", "sma_cross", "--param", "fast=5",
                     "--param", "slow=20"],
        "sweep": ["sweep", csv_path, "--strategy", "sma_cross", "--grid", "fast=5,10",
                  "--grid", "slow=20,30"],
        "evolve": ["evolve", csv_path, "--strategies", "sma_cross", "--population", "6",
                   "--generations", "2"],
        "portfolio": ["portfolio", "sp500", "--assets", "AAPL,AMD,KO", "--profiles",
                      "equal_weight", "--train", "252", "--test", "126", "--executor",
                      "serial"],
    }
    kinds = {"backtest": "backtest_results", "sweep": "sweep_results", "evolve": "evolution",
             "portfolio": "weights"}
    st = Store.open(lake)
    for name, argv in cmds.items():
        doc = json.loads(qf(*argv, "--json").stdout)
        m = st.get_run(doc["run_id"])
        assert m.command == name and m.status == "succeeded", name
        assert m.output(kinds[name]) and m.output("spans") and m.output("run_summary"), name
        if name == "portfolio":  # each profile's bootstrap intervals, in --json
            c = doc["confidence"]["equal_weight"]
            assert c["sharpe"] == pytest.approx(doc["metrics"][0]["sharpe"])
            assert c["sharpe_ci"][0] <= c["sharpe"] <= c["sharpe_ci"][1]
            assert (c["n_boot"], c["seed"], c["level"]) == (1000, 0, 0.95)
    # --no-store: nothing recorded, no run_id
    before = st.run_ids()
    doc = json.loads(qf(*cmds["sweep"], "--no-store", "--json").stdout)
    assert "run_id" not in doc and st.run_ids() == before


def test_any_commands_run_is_found_by_report_runs_profile_cost_and_query(csv_path, tmp_path):
    lake = str(tmp_path / "lake")
    run_id = json.loads(qf("tournament", csv_path, "--strategies", "sma_cross,rsi",
                           "--windows", "3", "--max-combos", "4", "--executor", "serial",
                           "--store", lake, "--json").stdout)["run_id"]
    rows = json.loads(qf("query", "--store", lake, "--json", "select strategy, asset, "
                         "oos_sharpe, run_id from leaderboard order by oos_sharpe desc "
                         "limit 5").stdout)
    assert rows and {r["run_id"] for r in rows} == {run_id}
    prefix = run_id[:15]
    assert json.loads(qf("runs", "show", prefix, "--store", lake, "--json").stdout)[
        "run_id"] == run_id
    assert json.loads(qf("profile", prefix, "--store", lake, "--json").stdout)[
        "run_id"] == run_id
    assert json.loads(qf("cost", "latest", "--store", lake, "--json").stdout)[
        "run_id"] == run_id
    out = tmp_path / "r.html"
    rep = json.loads(qf("report", prefix, "--store", lake, "--out", str(out), "--json").stdout)
    assert rep["run_id"] == run_id and 'id="leaderboard"' in out.read_text(encoding="utf-8")


def test_a_one_combo_sweep_exits_0():
    p = qf("sweep", "sp500", "--strategy", "sma_cross", "--grid", "fast=5", "--grid",
           "slow=20", "--asset", "AAPL", "--json", ok=False)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["combos"] == 1 and doc["run_id"]
    assert doc["overfit"]["pbo"] is None
    assert "PBO n/a: it needs at least 2 trials" in doc["overfit"]["verdict"]


def test_tournament_and_sweep_show_the_winners_deflation_and_buy_and_hold(csv_path):
    args = ("tournament", csv_path, "--strategies", "sma_cross,bollinger", "--windows", "3",
            "--max-combos", "4", "--executor", "serial")
    doc = json.loads(qf(*args, "--json").stdout)
    of = doc["overfit"]
    assert of["n_pairs"] == 2 and of["n_trials"] > 0
    assert f"as the best of {of['n_trials']:,} trials (2 strategy × asset pairs" in of["verdict"]
    row = doc["leaderboard"][0]
    assert {"pair_dsr", "pair_pbo", "pair_verdict", "bh_total_return", "bh_sharpe",
            "excess_total_return", "excess_sharpe"} <= set(row)
    assert row["excess_sharpe"] == pytest.approx(row["oos_sharpe"] - row["bh_sharpe"])
    # the run records the winner's figures in its stage summary
    import os

    from quantfleet.pipeline.run_record import load_run
    from quantfleet.store import Store

    run = load_run(Store.open(os.environ["QUANTFLEET_STORE"]), doc["run_id"])
    rec = run.summary["stages"]["tournament"]["summary"]["overfit"]
    assert rec["n_trials"] == of["n_trials"] and rec["verdict"] == of["verdict"]
    # how sure: the winner's bootstrap intervals and permutation p, in --json and the record
    conf = doc["confidence"]
    assert (conf["strategy"], conf["asset"]) == (row["strategy"], row["asset"])
    assert conf["sharpe"] == pytest.approx(row["oos_sharpe"])
    assert conf["n_pairs"] == 2 and (conf["n_boot"], conf["n_perm"]) == (1000, 500)
    assert 0 < conf["p_value"] <= 1 and conf["sharpe_ci"][0] <= conf["sharpe_ci"][1]
    assert run.summary["stages"]["tournament"]["summary"]["confidence"] == conf
    from quantfleet.store.catalog import Catalog

    with Catalog(os.environ["QUANTFLEET_STORE"]) as cat:
        cat.refresh()
        (rec_c,) = cat.rows("select * from tournament_confidence where run_id = ?",
                            [doc["run_id"]])
    assert (rec_c["strategy"], rec_c["n_pairs"], rec_c["seed"]) == (conf["strategy"], 2, 0)
    assert rec_c["sharpe_ci_lo"] == pytest.approx(conf["sharpe_ci"][0])
    assert rec_c["p_value"] == pytest.approx(conf["p_value"])
    text = qf(*args, "--no-store").stdout
    assert f"winner {of['strategy']}/{of['asset']}: DSR" in text
    assert (f"How sure ({conf['strategy']}/{conf['asset']}: out of sample): Sharpe 95 % CI "
            f"[{conf['sharpe_ci'][0]:.2f}, {conf['sharpe_ci'][1]:.2f}]") in text
    assert f"permutation p = {conf['p_value']:.3f} over 2 pairs" in text
    other = json.loads(qf(*args, "--no-store", "--json", "--confidence-seed", "3").stdout)
    assert other["confidence"]["seed"] == 3
    assert other["confidence"]["sharpe_ci"] != conf["sharpe_ci"]
    assert json.loads(qf(*args, "--no-store", "--json", "--no-confidence").stdout)[
        "confidence"] is None
    assert "bh_* = buy-and-hold of the row's asset over the same bars" in text
    top = json.loads(qf("sweep", csv_path, "--strategy", "sma_cross", "--grid", "fast=5,10",
                        "--grid", "slow=20,40", "--no-store", "--json").stdout)["top"]
    assert all(r["excess_sharpe"] == pytest.approx(r["sharpe"] - r["bh_sharpe"]) for r in top)


def test_auto_runs_a_small_tournament_serially_and_says_why(csv_path):
    doc = json.loads(qf("tournament", csv_path, "--strategies", "sma_cross,rsi", "--windows",
                        "3", "--max-combos", "4", "--executor", "auto", "--no-store",
                        "--json").stdout)
    assert doc["executor"] == "serial"
    assert "s of estimated work (2 items" in doc["executor_reason"]
    assert "under 2 s" in doc["executor_reason"]
    text = qf("tournament", csv_path, "--strategies", "sma_cross,rsi", "--windows", "3",
              "--max-combos", "4", "--executor", "auto", "--no-store").stdout
    assert "on serial (auto: ~" in text


@pytest.mark.parametrize("args, message", [
    (["submt"], "error: unknown command 'submt' for quantfleet; did you mean 'submit'?"),
    (["jobs", "stauts", "x"], "unknown command 'stauts' for quantfleet jobs; did you mean 'status'"),
    (["sweeep", "sp500"], "did you mean 'sweep'"),
    (["runs", "shwo", "latest"], "unknown command 'shwo' for quantfleet runs; did you mean 'show'?"),
    (["sweep", "sp500", "--strategy", "sma_cross", "--bogus"], "No such option: --bogus"),
    (["sweep", "--strategy", "sma_cross"], "Missing argument 'data'"),
    (["sweep", "sp500", "--strategy", "sma_cross", "--top", "x"], "Invalid value for '--top'"),
    (["report"], "Missing argument 'run'"),
])
def test_usage_errors_are_one_line_exit_2(args, message):
    p = qf(*args, ok=False)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert lines[0].startswith("error: ")


def test_unprintable_bytes_are_never_echoed():
    from quantfleet.cli import one_line

    assert one_line("bad\x00\x1b[31mname\nline two") == "bad\\x00\\x1b[31mname line two"
    p = qf("backtest", "sp500", "--strategy", "sma\x1b[2Jcross", ok=False)
    assert p.returncode == 2 and "\x1b" not in p.stderr and "\\x1b" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_tournament_grid_flags_choose_the_combos(csv_path, tmp_path):
    out = tmp_path / "t"
    res = json.loads(qf("tournament", csv_path, "--strategies", "sma_cross,bollinger",
                        "--windows", "2", "--grid", "fast=5:15:5", "--grid", "slow=10,40",
                        "--max-combos", "4", "--executor", "serial", "--out", str(out),
                        "--json").stdout)
    assert {r["strategy"] for r in res["leaderboard"]} == {"sma_cross", "bollinger"}
    rows = pd.read_parquet(out / "results.parquet")
    sma = rows[rows["strategy"] == "sma_cross"]
    # the grid's combos with fast < slow (10/10 and 15/10 skipped), the same in every window
    want = {json.dumps({"fast": f, "slow": s}, sort_keys=True)
            for f in (5, 10, 15) for s in (10, 40) if f < s}
    assert set(sma["params"]) == want and len(sma) == len(want) * 2
    # bollinger has neither key: its coarse --max-combos grid
    assert rows[rows["strategy"] == "bollinger"]["combo"].nunique() <= 4
    # the run records the grid in its config and its stage settings
    import os

    from quantfleet.store import Store

    m = Store.open(os.environ["QUANTFLEET_STORE"]).get_run(res["run_id"])
    assert m.config["tournament"]["grid"] == {"fast": [5, 10, 15], "slow": [10, 40]}
    step = next(s for s in m.steps if s["step"] == "tournament")
    assert step["settings"]["tournament"]["grid"] == {"fast": [5, 10, 15], "slow": [10, 40]}


# bad --grid values both tournament and evolve refuse in one line
BAD_GRIDS = [
    (["--grid", "slwo=20,40"], "grid key 'slwo' is not a parameter of any selected strategy "
                               "(did you mean 'slow'?); sma_cross has fast, slow; rsi has "
                               "window, lower, upper"),
    (["--grid", "fast=9:5"], "--grid fast: stop 5 is below start 9"),
    (["--grid", "fast=500"], "fast=500 needs more than 500 bars but the data has 400"),
]


@pytest.mark.parametrize("args, message", BAD_GRIDS)
def test_tournament_bad_grid_one_line_exit_2(csv_path, args, message):
    p = qf("tournament", csv_path, "--strategies", "sma_cross,rsi", "--windows", "2",
           "--executor", "serial", "--no-store", *args, ok=False)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_evolve_grid_flags_restrict_the_search(csv_path, tmp_path):
    ck = tmp_path / "ck"
    res = json.loads(qf("evolve", csv_path, "--strategies", "sma_cross,rsi", "--population", "12",
                        "--generations", "3", "--grid", "fast=5:15:5", "--grid", "slow=20,40",
                        "--grid", "window=7,14", "--resume", str(ck), "--executor", "serial",
                        "--json").stdout)
    trials = [t for t, _ in json.loads((ck / "evolve.json").read_text())["searcher"]["history"]]
    assert len(trials) == 36
    for t in trials:
        if t["strategy"] == "sma_cross":
            assert t["params"][0] in (5, 10, 15) and t["params"][1] in (20, 40)
        else:
            assert t["params"][0] in (7, 14)
    import os

    from quantfleet.store import Store

    m = Store.open(os.environ["QUANTFLEET_STORE"]).get_run(res["run_id"])
    want = {"fast": [5, 10, 15], "slow": [20, 40], "window": [7, 14]}
    assert m.config["evolution"]["grid"] == want
    step = next(s for s in m.steps if s["step"] == "evolution")
    assert step["settings"]["evolution"]["grid"] == want
    # the same checkpoint with another grid: refused in one line, exit 2
    p = qf("evolve", csv_path, "--strategies", "sma_cross,rsi", "--population", "12",
           "--generations", "3", "--grid", "fast=5:15:5", "--resume", str(ck),
           "--executor", "serial", "--no-store", ok=False)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "(parameter spaces (grid) differ)" in p.stderr and "Traceback" not in p.stderr


def test_a_recorded_evolve_keeps_its_checkpoint_in_its_store(csv_path, tmp_path):
    store = tmp_path / "lake"
    args = ("evolve", csv_path, "--strategies", "sma_cross", "--population", "8",
            "--generations", "2", "--executor", "serial", "--store", str(store), "--json")
    first = json.loads(qf(*args).stdout)
    saved = list((store / "checkpoints" / "evolution").glob("*/evolve.json"))
    assert len(saved) == 1
    assert json.loads(saved[0].read_text())["searcher"]["history"]
    again = json.loads(qf(*args).stdout)  # the same run again: resumed from the store
    assert again["history"] == first["history"] and again["winners"] == first["winners"]
    assert len(list((store / "checkpoints" / "evolution").glob("*/evolve.json"))) == 1
    # --no-store keeps no checkpoint
    qf(*args[:-3], "--no-store")
    assert len(list((store / "checkpoints" / "evolution").glob("*/evolve.json"))) == 1


def test_evolve_resume_on_other_data_is_refused(csv_path, tmp_path):
    ck = tmp_path / "ck"
    args = ["--strategies", "sma_cross", "--population", "8", "--generations", "2",
            "--resume", str(ck), "--executor", "serial", "--no-store"]
    qf("evolve", csv_path, *args)
    other = tmp_path / "ACME.csv"
    df = pd.read_csv(csv_path)
    df.loc[300:, ["Open", "High", "Low", "Close"]] *= 1.1
    df.to_csv(other, index=False)
    p = qf("evolve", str(other), *args, ok=False)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "made with other settings (data differ)" in p.stderr
    assert "another checkpoint directory (or remove it)" in p.stderr
    qf("evolve", csv_path, *args)  # the same data: resumes


@pytest.mark.parametrize("args, message", [
    *BAD_GRIDS,
    (["--grid", "fast=50,60", "--grid", "slow=20,30"],
     "sma_cross: no parameter set in the grid satisfies fast < slow"),
])
def test_evolve_bad_grid_one_line_exit_2(csv_path, args, message):
    p = qf("evolve", csv_path, "--strategies", "sma_cross,rsi", "--population", "8",
           "--generations", "1", "--executor", "serial", "--no-store", *args, ok=False)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_a_table_too_wide_for_the_terminal_leaves_whole_columns_out(monkeypatch, capsys):
    from quantfleet.commands.options import print_rows

    monkeypatch.setenv("COLUMNS", "60")
    rows = [{"asset": "AAPL", **{f"metric_{i}": 1234.5678 + i for i in range(12)}}]
    print_rows(rows, title="wide")
    out = capsys.readouterr().out
    assert "…" not in out  # no cell is cut
    assert "metric_0" in out and "1235" in out
    assert "not shown (60 columns wide): " in out and "metric_11" in out.split("not shown")[1]
    # columns asked for first are kept first, in the table's own order
    print_rows(rows, title="wide", first=("metric_11",))
    out = capsys.readouterr().out
    head = out.split("not shown")[0]
    assert "metric_11" in head and head.index("metric_0") < head.index("metric_11")
