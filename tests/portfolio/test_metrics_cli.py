"""metrics_from_returns against a slow reference, and the portfolio CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quantfleet.cli import main
from quantfleet.kernels.metrics import RETURN_METRIC_NAMES, metrics_from_returns


def _reference(r: np.ndarray, ppy: float) -> dict:
    n = len(r)
    eq = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:]
    maxdd = float(np.max(1.0 - eq / peak))
    cagr = eq[-1] ** (ppy / n) - 1.0 if eq[-1] > 0 else -1.0
    sd = np.std(r, ddof=1)
    dsd = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    sortino = np.mean(r) / dsd * np.sqrt(ppy) if dsd > 0 else (np.inf if np.mean(r) > 0 else np.nan)
    return {"total_return": eq[-1] - 1.0, "cagr": cagr,
            "sharpe": np.mean(r) / sd * np.sqrt(ppy) if sd > 0 else np.nan,
            "sortino": sortino, "max_drawdown": maxdd,
            "calmar": cagr / maxdd if maxdd > 0 else np.nan}


@pytest.mark.parametrize("seed", range(5))
def test_metrics_from_returns_matches_reference(seed):
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0004, 0.012, size=int(rng.integers(2, 600)))
    got = dict(zip(RETURN_METRIC_NAMES, metrics_from_returns(r, 252.0), strict=True))
    ref = _reference(r, 252.0)
    for k in RETURN_METRIC_NAMES:
        assert got[k] == pytest.approx(ref[k], rel=1e-10, abs=1e-12), k


def test_metrics_edge_cases():
    up = metrics_from_returns(np.array([0.01, 0.02]), 252.0)
    assert up[3] == np.inf and up[4] == 0.0 and np.isnan(up[5])
    flat = metrics_from_returns(np.zeros(3), 252.0)
    assert np.isnan(flat[2]) and np.isnan(flat[3])
    empty = metrics_from_returns(np.zeros(0), 252.0)
    assert empty[0] == 0.0 and np.isnan(empty[1])


def test_cli_portfolio_json(capsys):
    main(["portfolio", "sp500", "--assets", "AAPL,AMD,BAC,BBY", "--profiles",
          "hrp,equal_weight", "--train", "252", "--test", "2000", "--fee-bps", "5",
          "--executor", "serial", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["windows"] == 4 and d["kind"] == "assets" and d["executor"] == "serial"
    assert [m["profile"] for m in d["metrics"]] == ["hrp", "equal_weight"]
    assert d["timing"][0]["windows"] == 4


@pytest.mark.parametrize("args, msg", [
    (["--profiles", "hrp,max_sharp"], "unknown portfolio profile 'max_sharp'"),
    (["--train", "9000"], "cannot hold one window"),
    (["--covariance", "lw"], "unknown covariance 'lw'"),
    (["--kind", "strategies"], "no such file"),
])
def test_cli_portfolio_bad_input(capsys, args, msg):
    with pytest.raises(SystemExit) as e:
        main(["portfolio", "sp500", "--executor", "serial", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and msg in err and "\n" not in err


def test_cli_portfolio_winners_and_buy_and_hold(capsys):
    main(["portfolio", "sp500", "--assets", "AAPL,AMD,BAC,BBY,KO", "--profiles",
          "hrp,equal_weight", "--train", "252", "--test", "1000", "--winners", "2",
          "--fee-bps", "5", "--executor", "serial", "--no-store", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["selection"] == ("members chosen per window from the 5 columns by train-window "
                              "Sharpe (top 2)")
    assert d["buy_and_hold"].startswith("equal-weight buy-and-hold of 5 asset(s)")
    for m in d["metrics"]:
        assert m["excess_sharpe"] == pytest.approx(m["sharpe"] - m["bh_sharpe"])
        assert m["excess_total_return"] == pytest.approx(m["total_return"]
                                                         - m["bh_total_return"])
    assert d["metrics"][0]["bh_sharpe"] == d["metrics"][1]["bh_sharpe"]  # the same bars
    main(["portfolio", "sp500", "--assets", "AAPL,AMD,BAC,BBY,KO", "--profiles", "hrp",
          "--train", "252", "--test", "1000", "--winners", "2", "--executor", "serial",
          "--no-store"])
    out = capsys.readouterr().out
    assert "Members chosen per window from the 5 columns" in out
    assert "Against buy-and-hold over the same bars" in out and "Buy-and-hold: equal-weight" in out


def test_cli_portfolio_bad_winners(capsys):
    with pytest.raises(SystemExit) as e:
        main(["portfolio", "sp500", "--winners", "0", "--executor", "serial", "--no-store"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "portfolio.winners" in err and "\n" not in err


def test_cli_portfolio_prices_give_the_strategies_their_buy_and_hold(capsys, tmp_path, sp500):
    from quantfleet.portfolio import from_assets

    assets = from_assets(sp500, ["AAPL", "AMD", "KO"]).returns.iloc[:800]
    path = tmp_path / "oos_returns.parquet"
    assets.rename(columns=lambda a: f"hold/{a}").to_parquet(path)
    args = ["portfolio", str(path), "--profiles", "equal_weight", "--train", "252", "--test",
            "100", "--winners", "2", "--executor", "serial", "--no-store", "--json"]
    main(args)
    assert np.isnan(json.loads(capsys.readouterr().out)["metrics"][0]["bh_sharpe"] or np.nan)
    main([*args, "--prices", "sp500"])
    d = json.loads(capsys.readouterr().out)
    oos = assets.to_numpy()[252:252 + 5 * 100]  # 5 windows of 100 bars after 252 train bars
    wealth = np.mean(np.prod(1.0 + oos, axis=0))  # equal money in each, never traded
    assert d["metrics"][0]["bh_total_return"] == pytest.approx(wealth - 1.0, rel=1e-10)
    assert d["buy_and_hold"].startswith("equal-weight buy-and-hold of 3 asset(s) (AAPL, AMD, KO)")
