"""A synthetic but realistic RunView: numbers of a tournament + evolution + portfolio run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantfleet.observe.cost import describe, load_catalog
from quantfleet.report import RunView

STRATEGIES = ("sma_cross", "rsi_reversion", "donchian_breakout", "bollinger_revert")
ASSETS = ("SPY", "QQQ", "GLD", "TLT", "EEM")
PROFILES = ("hrp", "max_sharpe", "min_variance", "risk_parity", "equal_weight")


def _sharpe(r: np.ndarray) -> float:
    sd = r.std(ddof=1)
    return float(r.mean() / sd * np.sqrt(252)) if sd > 0 else float("nan")


def _max_dd(r: np.ndarray) -> float:
    eq = np.cumprod(1 + r)
    return float(1 - (eq / np.maximum.accumulate(eq)).min())  # a loss, >= 0 (the pipeline's)


def realistic_view(seed: int = 11, *, odd_name: str | None = None) -> RunView:
    """All parts filled; ``odd_name`` (if given) replaces the first strategy's name."""
    rng = np.random.default_rng(seed)
    strategies = list(STRATEGIES)
    if odd_name is not None:
        strategies[0] = odd_name
    idx = pd.bdate_range("2021-01-04", periods=750)
    cols, series = [], []
    for s in strategies:
        for a in ASSETS:
            drift = rng.normal(0.0002, 0.0003)
            series.append(rng.normal(drift, 0.011, len(idx)))
            cols.append(f"{s}/{a}")
    oos = pd.DataFrame(np.column_stack(series), index=idx, columns=cols)
    oos.iloc[:5] = np.nan  # warm-up of the first window

    rows = []
    for c in cols:
        s, a = c.rsplit("/", 1)
        r = oos[c].dropna().to_numpy()
        dsr, pbo = float(rng.uniform(0.05, 0.999)), float(rng.uniform(0.02, 0.8))
        rows.append({"strategy": s, "asset": a, "windows": 12,
                     "oos_total_return": float(np.prod(1 + r) - 1), "oos_sharpe": _sharpe(r),
                     "oos_max_drawdown": _max_dd(r),
                     "mean_is_sharpe": _sharpe(r) + float(rng.uniform(0.2, 1.2)),
                     "mean_oos_sharpe": _sharpe(r) * 0.9, "pair_pbo": pbo, "pair_dsr": dsr,
                     "pair_verdict": ("unlikely luck" if dsr >= 0.95 else "inconclusive"
                                      if dsr >= 0.5 else "likely luck"),
                     "bh_total_return": 0.8, "bh_sharpe": 0.5,
                     "excess_total_return": float(np.prod(1 + r) - 1) - 0.8,
                     "excess_sharpe": _sharpe(r) - 0.5})
    leaderboard = (pd.DataFrame(rows).sort_values("oos_sharpe", ascending=False)
                   .reset_index(drop=True))

    history, best = [], -0.3
    for g in range(25):
        best = max(best, best + abs(rng.normal(0.08, 0.05)) * np.exp(-g / 10))
        mean = best - 0.6 * np.exp(-g / 12) - 0.15
        history.append({"round": g, "best": best, "mean": mean, "median": mean + 0.05,
                        "diversity": float(0.9 * np.exp(-g / 15) + 0.1), "evaluated": 64,
                        "failed": int(rng.integers(0, 3)), "wall_s": float(rng.uniform(0.8, 1.6))})
    winners = [{"strategy": s, "params": {"fast": int(rng.integers(3, 20)),
                                          "slow": int(rng.integers(30, 200))},
                "is_sharpe": float(rng.uniform(1, 2)), "oos_sharpe": float(rng.uniform(0, 1))}
               for s in strategies[:3]]

    starts = idx[252::21]
    weights = {}
    for p in PROFILES:
        w = rng.dirichlet(np.ones(len(ASSETS)) * (5 if p == "equal_weight" else 1),
                          size=len(starts))
        weights[p] = pd.DataFrame(w, index=pd.DatetimeIndex(starts, name="window_start"),
                                  columns=list(ASSETS))
    pret = pd.DataFrame(rng.normal(0.0003, 0.008, (len(idx) - 252, len(PROFILES))),
                        index=idx[252:], columns=list(PROFILES))
    bh = pd.Series(rng.normal(0.0004, 0.01, len(idx) - 252), index=idx[252:])
    metrics = pd.DataFrame(
        {"total_return": (1 + pret).prod() - 1, "cagr": (1 + pret).prod() ** (252 / len(pret)) - 1,
         "sharpe": pret.mean() / pret.std() * np.sqrt(252),
         "max_drawdown": [_max_dd(pret[c].to_numpy()) for c in pret],
         "turnover_per_year": rng.uniform(0.5, 4, len(PROFILES)),
         "costs": rng.uniform(0.001, 0.02, len(PROFILES)),
         "fallbacks": rng.integers(0, 3, len(PROFILES)),
         "bh_total_return": float((1 + bh).prod() - 1),
         "bh_sharpe": float(bh.mean() / bh.std() * np.sqrt(252))})
    metrics.index.name = "profile"
    metrics["excess_sharpe"] = metrics["sharpe"] - metrics["bh_sharpe"]
    pret["buy-and-hold"] = bh
    asset_returns = pd.DataFrame(rng.normal(0.0003, 0.012, (len(idx), len(ASSETS))), index=idx,
                                 columns=list(ASSETS))

    stages = ["load", "tournament", "overfit", "evolve", "portfolio", "report"]
    comps = ["io", "kernel", "serialize", "scheduler", "optimizer"]
    heat = pd.DataFrame(rng.gamma(1.5, 2.0, (len(stages), len(comps))), index=stages,
                        columns=comps)
    heat.loc["tournament", "kernel"] = 95.0
    heat.loc["load", "optimizer"] = np.nan
    util = pd.DataFrame(np.clip(rng.normal(0.8, 0.15, (8, 30)), 0, 1),
                        index=[f"node {i // 4} / worker {i % 4}" for i in range(8)],
                        columns=np.arange(30) * 5.0)
    workers = [{"name": f"node {i // 4} / worker {i % 4}", "node": f"{'ab' * 28}"[:56 - i],
                "worker": f"{'cd' * 28}"[:56 - i]} for i in range(8)]
    nodes = np.array([1, 2, 4, 8, 16])
    wall = 480 / nodes + 12 * np.log2(nodes)
    what_if = pd.DataFrame({"nodes": nodes, "instance": "c7i.4xlarge", "wall_s": wall,
                            "cost_usd": wall / 3600 * 0.714 * nodes,
                            "speedup": wall[0] / wall})

    lineage = [
        {"step": "load", "inputs": {"source": "sha256:" + "a1" * 32},
         "outputs": {"market": "sha256:" + "b2" * 32}, "settings": {"dataset": "sp500"}},
        {"step": "tournament", "inputs": {"market": "sha256:" + "b2" * 32},
         "outputs": {"results": "sha256:" + "c3" * 32, "oos_returns": "sha256:" + "d4" * 32},
         "settings": {"train": 252, "test": 63, "fee_bps": 5.0}},
        {"step": "portfolio", "inputs": {"oos_returns": "sha256:" + "d4" * 32},
         "outputs": {"weights": "sha256:" + "e5" * 32}, "settings": {"profiles": 5}},
    ]
    summary = {"name": "nightly tournament", "status": "completed",
               "created": "2025-03-01T02:00:00+00:00", "finished": "2025-03-01T02:13:41+00:00",
               "config": {"data": {"source": "sp500"}, "tournament": {"train": 252, "test": 63},
                          "executor": {"kind": "ray", "workers": 8}},
               "executor": "ray", "workers": 8, "data_source": "sp500",
               "store_url": "file:///var/lib/quantfleet/store", "code_version": "0.1.0+gbf10b30"}
    return RunView(
        run_id="run-2025-03-01-0200", summary=summary, lineage=lineage, leaderboard=leaderboard,
        oos_returns=oos, evolution_history=history, evolution_winners=winners,
        overfit={"dsr": 0.97, "pbo": 0.18, "n_trials": 994,
                 "verdict": "DSR 0.97: the winner's Sharpe is unlikely to be luck among 994 "
                            "trials; PBO 0.18: the in-sample winner usually holds up out of "
                            "sample"},
        portfolio_weights=weights, portfolio_returns=pret, portfolio_metrics=metrics,
        portfolio_notes=["members: members chosen per window from the 60 tournament pairs by "
                         "train-window Sharpe (top 10)",
                         "buy_and_hold: equal-weight buy-and-hold of 20 asset(s), bought at "
                         "the first out-of-sample bar (same fee), never rebalanced"],
        portfolio_members=pd.DataFrame({"column": cols[:4], "windows": [40, 31, 12, 3],
                                        "share": [40 / 55, 31 / 55, 12 / 55, 3 / 55]}),
        heatmap=heat, utilisation=util,
        bottlenecks=[{"title": "Kernel time", "value": 95.0,
                      "text": "tournament/kernel is 60% of all task time"},
                     {"title": "Idle workers", "value": 0.21,
                      "text": "workers waited on the scheduler 21% of the time"}],
        cost_what_if=what_if, asset_returns=asset_returns, workers=workers,
        cpcv=pd.DataFrame({"strategy": ["sma_cross", "rsi"], "asset": ["AAPL", "MSFT"],
                           "groups": 6, "test_groups": 2, "embargo": 5, "splits": 15,
                           "paths": 5, "pbo": [0.2, 0.6], "sharpe_mean": [0.9, -0.1],
                           "sharpe_std": [0.3, 0.4], "sharpe_min": [0.5, -0.7],
                           "sharpe_q05": [0.52, -0.66], "sharpe_median": [0.85, -0.05],
                           "sharpe_q95": [1.3, 0.4], "sharpe_max": [1.4, np.nan],
                           "share_negative": [0.0, 0.6]}),
        cost_assumptions=describe(load_catalog(), "c7i.4xlarge"),
        break_even={"nodes": 4, "wall_s": float(wall[2]), "cost_usd": float(wall[2] / 3600 *
                                                                             0.714 * 4),
                    "text": "Beyond 4 nodes each extra node costs more than the time it saves."},
        # the keys observe.speedup.explain_speedup writes (loss_seconds in worker-seconds)
        speedup={"baseline_label": "measured", "measured": True, "serial_s": 3400.0,
                 "wall_s": 821.0, "workers": 8, "speedup": 3400 / 821,
                 "efficiency": 3400 / 821 / 8, "loss": 1 - 3400 / 821 / 8,
                 "loss_seconds": {"serial": 960.0, "overhead": 760.0, "imbalance": 1044.0,
                                  "transfer": 404.0, "retries": 0.0, "work_inflation": 0.0},
                 "loss_parts": {"serial": 960.0 / 6568, "overhead": 760.0 / 6568,
                                "imbalance": 1044.0 / 6568, "transfer": 404.0 / 6568,
                                "retries": 0.0, "work_inflation": 0.0},
                 "notes": [], "text": "Speedup (measured baseline 56.7 min): 4.14× on 8 workers"},
    )
