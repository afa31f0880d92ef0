"""Execution options on the CLI end to end (subprocesses): backtest against the slow
reference, a sweep searching stop_loss, bad input -> one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests import reference as ref


def qf(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "quantfleet.cli", *args], capture_output=True,
                       text=True, timeout=300)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory) -> str:
    rng = np.random.default_rng(8)
    d = ref.random_ohlcv(rng, 400)
    df = pd.DataFrame({"Date": pd.date_range("2018-01-01", periods=400, freq="B"),
                       **{k.capitalize(): v for k, v in d.items()}})
    path = tmp_path_factory.mktemp("cliex") / "ACME.csv"
    df.to_csv(path, index=False)
    return str(path)


def test_backtest_with_execution_matches_reference(csv_path):
    out = json.loads(qf("backtest", csv_path, "-s", "sma_cross", "-p", "fast=5", "-p", "slow=20",
                        "--fee-bps", "10", "--periods-per-year", "252", "--fill", "next_open",
                        "--stop-loss", "0.03", "--take-profit", "0.05", "--no-store",
                        "--json").stdout)
    assert out["execution"]["fill"] == "next_open" and out["execution"]["stop_loss"] == 0.03
    df = pd.read_csv(csv_path)
    o, h, lo, c = (df[k].to_numpy() for k in ("Open", "High", "Low", "Close"))
    f, s = ref.sma(c, 5), ref.sma(c, 20)
    pos = np.where(f > s, 1.0, 0.0)
    pos[np.isnan(s)] = 0.0
    want, _, _ = ref.execute_reference(o, h, lo, c, pos, 0.001, 252.0, fill="next_open",
                                       stop_loss=0.03, take_profit=0.05)
    for k, v in want.items():
        assert out[k] == pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True) or (
            out[k] is None and np.isnan(v)), k


@pytest.mark.parametrize(("args", "msg"), [
    (["--stop-loss", "0"], "execution stop_loss must be a number in (0, 1)"),
    (["--fill", "open"], "execution fill must be one of close, next_open"),
    (["--vol-window", "1"], "execution vol_window must be a whole number of bars >= 2"),
])
def test_bad_execution_flags_exit_2(csv_path, args, msg):
    p = qf("backtest", csv_path, "-s", "sma_cross", "--no-store", *args, ok=False)
    assert p.returncode == 2
    assert msg in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_sweep_searches_stop_loss_like_a_parameter(csv_path):
    res = json.loads(qf("sweep", csv_path, "-s", "sma_cross", "--grid", "fast=5,8",
                        "--grid", "slow=20", "--grid", "stop_loss=0.02:0.06:0.02",
                        "--periods-per-year", "252", "--fee-bps", "5", "--top", "6",
                        "--no-store", "--json").stdout)
    assert res["combos"] == 6 and len(res["top"]) == 6
    assert sorted((r["fast"], r["stop_loss"]) for r in res["top"]) == [
        (f, s) for f in (5, 8) for s in (0.02, 0.04, 0.06)]
    df = pd.read_csv(csv_path)
    o, h, lo, c = (df[k].to_numpy() for k in ("Open", "High", "Low", "Close"))
    for r in res["top"]:
        f, s = ref.sma(c, r["fast"]), ref.sma(c, 20)
        pos = np.where(f > s, 1.0, 0.0)
        pos[np.isnan(s)] = 0.0
        want, _, _ = ref.execute_reference(o, h, lo, c, pos, 5e-4, 252.0,
                                           stop_loss=r["stop_loss"])
        assert r["sharpe"] == pytest.approx(want["sharpe"], rel=1e-9)
        assert r["total_return"] == pytest.approx(want["total_return"], rel=1e-9, abs=1e-12)
    # the options differ, so do the results (the stops are hit on this data)
    assert len({round(r["total_return"], 12) for r in res["top"]}) > 2


def test_execution_table_in_a_config():
    from quantfleet.errors import ConfigError
    from quantfleet.pipeline.config import validate_config

    cfg = validate_config({"execution": {"fill": "next_open", "stop_loss": 0.04}}, "t.toml")
    ex = cfg.execution.build()
    assert ex.fill == "next_open" and ex.stop_loss == 0.04 and not ex.is_default
    assert validate_config({}, "t.toml").execution.build().is_default
    with pytest.raises(ConfigError, match="execution.*take_profit must be a number"):
        validate_config({"execution": {"take_profit": -0.1}}, "t.toml")
    with pytest.raises(ConfigError, match="unknown key 'execution.stop_los'"):
        validate_config({"execution": {"stop_los": 0.1}}, "t.toml")


def test_tournament_and_evolve_take_the_flags(csv_path):
    out = json.loads(qf("tournament", csv_path, "--strategies", "sma_cross", "--windows", "2",
                        "--max-combos", "4", "--trailing-stop", "0.03", "--grid",
                        "stop_loss=0.02,0.05", "--no-store", "--json").stdout)
    assert out["execution"]["trailing_stop"] == 0.03 and out["failed"] == 0
    one = json.loads(qf("tournament", csv_path, "--strategies", "sma_cross", "--windows", "2",
                        "--max-combos", "4", "--no-store", "--json").stdout)
    assert out["rows"] == 2 * one["rows"]  # every combo under each of the 2 stops
    assert out["leaderboard"][0]["oos_sharpe"] != one["leaderboard"][0]["oos_sharpe"]
    ev = json.loads(qf("evolve", csv_path, "--strategies", "sma_cross", "--population", "6",
                       "--generations", "2", "--fill", "next_open", "--grid",
                       "take_profit=0.03,0.06", "--no-store", "--json").stdout)
    assert ev["execution"]["fill"] == "next_open"
    assert all(w["params"]["take_profit"] in (0.03, 0.06) for w in ev["winners"])


@pytest.mark.parametrize("cmd", [
    ["sweep", "sp500", "--strategy", "rsi", "--asset", "AAPL", "--grid", "stop_loss=0.05,0.1"],
    ["tournament", "sp500", "--strategies", "rsi", "--assets", "AAPL", "--windows", "3",
     "--max-combos", "4", "--grid", "stop_loss=0.05,0.1", "--executor", "serial"],
])
def test_stops_on_close_only_data_are_one_line_and_exit_2(cmd, tmp_path):
    # every chunk / pair fails in its worker on the same bad input: the command says why
    p = qf(*cmd, "--store", str(tmp_path / "lake"), ok=False)
    assert p.returncode == 2
    err = p.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "stop_loss / take_profit / trailing_stop need the 'open', 'high', 'low'" in err
