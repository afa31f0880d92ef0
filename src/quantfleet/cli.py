"""The ``quantfleet`` command line: thin wrappers that parse flags and call the library.

Bad input prints one line on stderr and exits with code 2; no tracebacks.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from quantfleet.errors import QuantfleetError

app = typer.Typer(
    name="quantfleet",
    help="Trading-strategy research at scale: backtests, sweeps, tournaments, evolution, portfolios.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect market data sources.", no_args_is_help=True)
app.add_typer(data_app, name="data")

from quantfleet.cluster import app as cluster_app  # noqa: E402  (typer only; ray lazily)

app.add_typer(cluster_app, name="cluster")


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v


def _print_json(obj: Any) -> None:
    def clean(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return _jsonable(o)

    typer.echo(json.dumps(clean(obj), indent=2, default=str))


def _number(text: str, what: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        _fail(f"{what}: {text!r} is not a number")
        raise  # unreachable


def parse_params(items: list[str]) -> dict[str, int | float]:
    """``["fast=10", "slow=50"]`` -> ``{"fast": 10, "slow": 50}``."""
    out: dict[str, int | float] = {}
    for it in items:
        if "=" not in it:
            _fail(f"--param {it!r}: expected KEY=VALUE, e.g. --param fast=10")
        k, v = it.split("=", 1)
        out[k.strip()] = _number(v.strip(), f"--param {k.strip()}")
    return out


def parse_grid(items: list[str]) -> dict[str, list[int | float]]:
    """``K=START:STOP:STEP`` (inclusive) or ``K=v1,v2,...`` for each item."""
    grid: dict[str, list[int | float]] = {}
    for it in items:
        if "=" not in it:
            _fail(f"--grid {it!r}: expected K=START:STOP:STEP or K=v1,v2")
        k, v = (s.strip() for s in it.split("=", 1))
        if ":" in v:
            parts = v.split(":")
            if len(parts) not in (2, 3):
                _fail(f"--grid {it!r}: expected K=START:STOP:STEP (inclusive), e.g. fast=5:49:2")
            start, stop = (_number(p, f"--grid {k}") for p in parts[:2])
            step = _number(parts[2], f"--grid {k}") if len(parts) == 3 else 1
            if step <= 0:
                _fail(f"--grid {k}: step must be > 0 (got {step})")
            if stop < start:
                _fail(f"--grid {k}: stop {stop} is below start {start}")
            if all(isinstance(x, int) for x in (start, stop, step)):
                vals: list[int | float] = list(range(start, stop + 1, step))
            else:
                n = int(math.floor((stop - start) / step + 1e-9)) + 1
                vals = [round(start + i * step, 12) for i in range(n)]
        else:
            vals = [_number(x.strip(), f"--grid {k}") for x in v.split(",") if x.strip()]
        if not vals:
            _fail(f"--grid {k}: no values")
        grid[k] = vals
    return grid


def _load(source: str):
    from quantfleet.data import load

    return load(source)


@app.command()
def strategies(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the strategy seeds and their parameters."""
    from quantfleet.strategies import all_strategies

    rows = [
        {"name": s.name, "family": s.family, "description": s.description,
         "params": s.space.describe(), "constraints": [str(c) for c in s.space.constraints],
         "needs": list(s.needs) + list(s.extras)}
        for s in all_strategies()
    ]
    if as_json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(rows)} strategies")
    for col in ("name", "family", "parameters (search range, default)", "description"):
        t.add_column(col)
    for r in rows:
        ps = ", ".join(
            f"{p['name']}[{p['low']}..{p['high']}]={p['default']}" if "low" in p
            else f"{p['name']}{p['options']}={p['default']}" for p in r["params"]
        )
        if r["constraints"]:
            ps += "; " + ", ".join(r["constraints"])
        t.add_row(r["name"], r["family"], ps, r["description"])
    Console().print(t)


Fee = Annotated[float, typer.Option("--fee-bps", help="Fee per fill in basis points of traded value.")]
Slip = Annotated[float, typer.Option("--slippage-bps", help="Slippage per fill in basis points.")]
Ppy = Annotated[float | None, typer.Option("--periods-per-year", help="Bars per year (default: inferred from timestamps).")]
LongShort = Annotated[bool, typer.Option("--long-short", help="Allow short positions.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
def backtest(
    data: Annotated[str, typer.Argument(help="CSV/Parquet path, dataset name, or synthetic:gbm?...")],
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy name.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE, repeatable.")] = None,
    asset: Annotated[list[str] | None, typer.Option("--asset", "-a", help="Asset(s) to test (default: all).")] = None,
    fee_bps: Fee = 0.0,
    slippage_bps: Slip = 0.0,
    periods_per_year: Ppy = None,
    long_short: LongShort = False,
    as_json: AsJson = False,
) -> None:
    """Backtest one parameter set of one strategy."""
    import numpy as np

    from quantfleet.research.costs import Costs
    from quantfleet.research.sweep import _check_history
    from quantfleet.strategies import get

    strat = get(strategy)
    params = parse_params(param or [])
    market = _load(data)
    costs = Costs(fee_bps, slippage_bps)
    if periods_per_year is not None and periods_per_year <= 0:
        _fail(f"--periods-per-year must be > 0 (got {periods_per_year}); e.g. 252 for daily stocks")
    p = strat.space.validate(params, market.n_bars)
    rows = list(range(market.n_assets)) if not asset else [market.asset_index(a) for a in asset]
    _check_history(strat, market, rows, p)
    ppy = periods_per_year or market.periods_per_year
    arr = strat.space.to_array([p])
    results = []
    first = market.first_valid()
    for a in rows:
        m, _ = strat.run_asset(market, a, arr, fee_rate=costs.fee_rate, ppy=ppy, long_short=long_short)
        results.append({
            "strategy": strat.name, "asset": market.assets[a], "params": p,
            "bars": int(market.n_bars - first[a]), "periods_per_year": ppy,
            "fee_bps": fee_bps, "slippage_bps": slippage_bps, "long_short": long_short,
            **strat.metrics_dict(np.asarray(m[0])),
        })
    if as_json:
        _print_json(results[0] if len(results) == 1 else results)
        return
    _print_rows(results, title=f"{strat.name} {p}")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def _print_rows(rows: list[dict], title: str = "", skip: tuple[str, ...] = ("params", "strategy")) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        typer.echo("(no rows)")
        return
    t = Table(title=title)
    cols = [c for c in rows[0] if c not in skip]
    for c in cols:
        t.add_column(c, justify="right" if isinstance(rows[0][c], (int, float)) else "left")
    for r in rows:
        t.add_row(*[_fmt(r[c]) for c in cols])
    Console().print(t)


@app.command()
def sweep(
    data: Annotated[str, typer.Argument(help="CSV/Parquet path, dataset name, or synthetic:gbm?...")],
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy name.")],
    grid: Annotated[list[str] | None, typer.Option("--grid", "-g", help="K=START:STOP:STEP (inclusive) or K=v1,v2; repeatable. Missing params use the search range.")] = None,
    asset: Annotated[list[str] | None, typer.Option("--asset", "-a", help="Asset(s) (default: all).")] = None,
    fee_bps: Fee = 0.0,
    slippage_bps: Slip = 0.0,
    periods_per_year: Ppy = None,
    long_short: LongShort = False,
    metric: Annotated[str, typer.Option("--metric", help="Leaderboard metric.")] = "sharpe",
    top: Annotated[int, typer.Option("--top", help="Leaderboard rows.")] = 10,
    out: Annotated[Path | None, typer.Option("--out", help="Write every row to this Parquet file.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="serial|processes|ray|auto")] = "serial",
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel workers (default: CPUs).")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (default: embedded local Ray).")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Record inputs, outputs and a run manifest in this artifact store (path, file://, s3://, memory://).")] = None,
    as_json: AsJson = False,
) -> None:
    """Sweep a parameter grid of one strategy over every asset; print the leaderboard."""
    from quantfleet.research.costs import Costs
    from quantfleet.research.sweep import sweep as run_sweep

    if top < 1:
        _fail(f"--top must be >= 1 (got {top})")
    if out is not None and out.suffix != ".parquet":
        _fail(f"--out {out}: expected a .parquet file name")
    if periods_per_year is not None and periods_per_year <= 0:
        _fail(f"--periods-per-year must be > 0 (got {periods_per_year}); e.g. 252 for daily stocks")
    g = parse_grid(grid or [])
    market = _load(data)
    ex = _executor(executor, workers, ray_address)
    try:
        res = run_sweep(market, strategy, g, Costs(fee_bps, slippage_bps), executor=ex,
                        assets=asset, long_short=long_short, ppy=periods_per_year, out=out,
                        keep_table=out is None, metric=metric, top=top)
    finally:
        if ex is not None:
            ex.close()
    board = res.top.to_dict("records") if len(res.top) else []
    summary = {"strategy": res.strategy, "combos": res.n_combos, "skipped": res.n_skipped,
               "rows": res.n_rows, "failed": len(res.failed), "assets": len(res.assets),
               "metric": metric, "out": str(res.path) if res.path else None,
               "overfit": res.overfit}
    if store:
        summary["run_id"] = _record(store, "sweep", market,
                                    {"results": res.table if res.table is not None else res.path,
                                     "leaderboard": res.top},
                                    {"data": data, "strategy": strategy, "grid": g,
                                     "fee_bps": fee_bps, "slippage_bps": slippage_bps,
                                     "long_short": long_short, "metric": metric},
                                    {"combos": res.n_combos, "overfit": res.overfit}, ex)
    if as_json:
        _print_json({**summary, "top": board})
        return
    _print_rows(board, title=f"{res.strategy}: top {len(board)} by {metric}", skip=("strategy",))
    typer.echo(f"{res.n_combos} combos x {len(res.assets)} assets = {res.n_rows} backtests; "
               f"{res.n_skipped} combos skipped (constraint); {len(res.failed)} failed"
               + (f"; rows written to {res.path}" if res.path else ""))
    if res.overfit:
        typer.echo(f"winner on {res.overfit['asset']}: {res.overfit['verdict']}")


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [x.strip() for x in text.split(",") if x.strip()]


def _window_len(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text.strip()


@app.command()
def tournament(
    data: Annotated[str, typer.Argument(help="CSV/Parquet path, dataset name, or synthetic:gbm?...")],
    strategies: Annotated[str, typer.Option("--strategies", help="Comma-separated strategy names, or 'all'.")],
    assets: Annotated[str | None, typer.Option("--assets", help="Comma-separated assets (default: all).")] = None,
    train: Annotated[str | None, typer.Option("--train", help="Train length: bars (252) or a duration (2Y, 6M).")] = None,
    test: Annotated[str | None, typer.Option("--test", help="Test length: bars or a duration.")] = None,
    windows: Annotated[int | None, typer.Option("--windows", help="K equal windows (instead of --train/--test).")] = None,
    anchored: Annotated[bool, typer.Option("--anchored", help="Anchored (expanding) train windows.")] = False,
    metric: Annotated[str, typer.Option("--metric", help="In-sample selection metric.")] = "sharpe",
    max_combos: Annotated[int, typer.Option("--max-combos", help="Parameter sets per strategy (coarse grid).")] = 64,
    fee_bps: Fee = 0.0,
    slippage_bps: Slip = 0.0,
    periods_per_year: Ppy = None,
    long_short: LongShort = False,
    executor: Annotated[str, typer.Option("--executor", help="serial|processes|ray|auto")] = "auto",
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel workers (default: CPUs).")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (default: embedded local Ray).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for results.parquet, leaderboard.parquet, oos_returns.parquet.")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Checkpoint directory: finished chunks are kept there and skipped on a re-run.")] = None,
    baseline: Annotated[bool, typer.Option("--baseline", help="Also run a sample serially and report speedup and efficiency.")] = False,
    top: Annotated[int, typer.Option("--top", help="Leaderboard rows shown.")] = 15,
    store: Annotated[str | None, typer.Option("--store", help="Record inputs, outputs and a run manifest in this artifact store (path, file://, s3://, memory://).")] = None,
    as_json: AsJson = False,
) -> None:
    """Strategies x assets x walk-forward windows: pick in sample, score out of sample."""
    import time

    from quantfleet.research.costs import Costs
    from quantfleet.research.tournament import tournament as run_tournament
    from quantfleet.strategies import names

    names_ = names() if strategies.strip() == "all" else _split(strategies)
    if max_combos < 1:
        _fail(f"--max-combos must be >= 1 (got {max_combos})")
    market = _load(data)
    n_items = len(names_ or []) * (len(_split(assets) or market.assets))
    ex = _executor(executor, workers, ray_address, n_items_hint=n_items * 20)
    t0 = time.perf_counter()
    try:
        res = run_tournament(
            market, names_ or [], assets=_split(assets), train=_window_len(train),
            test=_window_len(test), n_windows=windows, anchored=anchored, metric=metric,
            max_combos=max_combos, costs=Costs(fee_bps, slippage_bps), long_short=long_short,
            ppy=periods_per_year, executor=ex, out=out, keep_table=out is None,
            baseline=baseline, checkpoint_dir=resume,
            # a rich progress bar (tasks, items/s, ETA) on an interactive terminal only
            map_options={"progress": sys.stderr.isatty() and not as_json},
        )
        wall = time.perf_counter() - t0
        speed = res.speedup
    finally:
        if ex is not None:
            ex.close()
    board = res.leaderboard.head(top).to_dict("records") if len(res.leaderboard) else []
    summary = {
        "strategies": names_, "assets": len(_split(assets) or market.assets),
        "windows": len(res.windows), "rows": res.n_rows, "backtests": res.n_backtests,
        "failed": len(res.failed), "wall_s": round(wall, 3),
        "executor": getattr(ex, "name", "serial"),
        "out": str(res.path) if res.path else None,
    }
    if speed is not None:
        summary["baseline"] = speed
    if store:
        outs = {"results": res.table if res.table is not None else res.path / "results.parquet",
                "leaderboard": res.leaderboard, "oos_returns": res.oos_returns.reset_index()}
        summary["run_id"] = _record(store, "tournament", market, outs,
                                    {"data": data, "strategies": names_, "assets": assets,
                                     "train": train, "test": test, "windows": windows,
                                     "anchored": anchored, "metric": metric,
                                     "max_combos": max_combos, "fee_bps": fee_bps,
                                     "slippage_bps": slippage_bps, "long_short": long_short},
                                    {"backtests": res.n_backtests, "failed": len(res.failed),
                                     "winner": board[0] if board else None}, ex,
                                    timing={"wall_s": wall, "baseline": speed})
    if as_json:
        _print_json({**summary, "leaderboard": board,
                     "failures": [str(f) for f in res.failed]})
        return
    _print_rows(board, title=f"Tournament leaderboard (out of sample, {len(res.windows)} windows)",
                skip=("verdict",))
    typer.echo(f"{res.n_backtests} backtests ({res.n_rows} rows) in {wall:.1f} s on "
               f"{summary['executor']}; {len(res.failed)} failed"
               + (f"; results in {res.path}" if res.path else ""))
    for f in res.failed[:5]:
        typer.echo(f"  failed: {f}", err=True)
    if board and "verdict" in board[0]:
        w = board[0]
        typer.echo(f"winner {w['strategy']}/{w['asset']}: {w['verdict']}")
    if speed is not None:
        typer.echo(f"baseline ({speed['baseline_kind']}): {speed['serial_s']:.2f} s serial -> "
                   f"speedup {speed['speedup']:.2f}x, efficiency {speed['efficiency']:.0%} "
                   f"on {speed['workers']} workers")


@app.command()
def evolve(
    data: Annotated[str, typer.Argument(help="CSV/Parquet path, dataset name, or synthetic:gbm?...")],
    strategies: Annotated[str, typer.Option("--strategies", help="Comma-separated strategy names (a mixed population), or 'all'.")],
    population: Annotated[int, typer.Option("--population", help="Individuals per generation.")] = 100,
    generations: Annotated[int, typer.Option("--generations", help="Generations.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="RNG seed: same seed, same evolution on every executor.")] = 0,
    metric: Annotated[str, typer.Option("--metric", help="Fitness metric (mean over assets, in sample).")] = "sharpe",
    train_frac: Annotated[float, typer.Option("--train-frac", help="Fraction of bars in sample; the rest checks the winners.")] = 0.7,
    assets: Annotated[str | None, typer.Option("--assets", help="Comma-separated assets (default: all).")] = None,
    mutation: Annotated[float, typer.Option("--mutation", help="Per-parameter mutation probability.")] = 0.25,
    crossover: Annotated[float, typer.Option("--crossover", help="Crossover probability.")] = 0.8,
    elite: Annotated[int, typer.Option("--elite", help="Elites kept per generation.")] = 2,
    immigrants: Annotated[float, typer.Option("--immigrants", help="Fraction of fresh random individuals per generation.")] = 0.1,
    fee_bps: Fee = 0.0,
    slippage_bps: Slip = 0.0,
    periods_per_year: Ppy = None,
    long_short: LongShort = False,
    executor: Annotated[str, typer.Option("--executor", help="serial|processes|ray|auto")] = "serial",
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel workers (default: CPUs).")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (default: embedded local Ray).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Checkpoint directory: written after every generation; an interrupted run resumes from it.")] = None,
    top: Annotated[int, typer.Option("--top", help="Winners checked out of sample.")] = 5,
    store: Annotated[str | None, typer.Option("--store", help="Record inputs, outputs and a run manifest in this artifact store (path, file://, s3://, memory://).")] = None,
    as_json: AsJson = False,
) -> None:
    """Evolve strategy parameters with a genetic algorithm; check the winners out of sample."""
    from quantfleet.research.costs import Costs
    from quantfleet.research.evolve import evolve as run_evolve
    from quantfleet.strategies import names

    names_ = names() if strategies.strip() == "all" else (_split(strategies) or [])
    market = _load(data)
    ex = _executor(executor, workers, ray_address)
    try:
        res = run_evolve(market, names_, population=population, generations=generations,
                         seed=seed, metric=metric, train_frac=train_frac,
                         costs=Costs(fee_bps, slippage_bps), long_short=long_short,
                         ppy=periods_per_year, assets=_split(assets), executor=ex,
                         checkpoint_dir=resume, top=top, mutation=mutation,
                         crossover=crossover, elite=elite, immigrants=immigrants)
    finally:
        if ex is not None:
            ex.close()
    summary = {"strategies": names_, "population": population, "generations": generations,
               "seed": seed, "evaluations": res.n_evaluations, "cached": res.n_cached,
               "failed": res.n_failed, "in_sample_bars": res.split,
               "executor": getattr(ex, "name", "serial"), "overfit": res.overfit}
    if store:
        summary["run_id"] = _record(store, "evolve", market,
                                    {"evolution": {"winners": res.winners,
                                                   "history": res.history}},
                                    {"data": data, **res.config},
                                    {"evaluations": res.n_evaluations, "overfit": res.overfit,
                                     "winner": res.winners[0] if res.winners else None}, ex)
    if as_json:
        _print_json({**summary, "winners": res.winners, "history": res.history})
        return
    shown = ("round", "evaluated", "failed", "best", "mean", "median", "diversity", "wall_s")
    _print_rows([{k: h[k] for k in shown} for h in res.history],
                title="Evolution history (fitness = mean in-sample " + metric + ")", skip=())
    rows = [{"strategy": w["strategy"],
             "params": " ".join(f"{k}={_fmt(v)}" for k, v in w["params"].items()),
             **{k: w[k] for k in w if k.startswith(("is_", "oos_")) and not k.startswith("oos_mean_")}}
            for w in res.winners]
    _print_rows(rows, title="Winners: in sample vs out of sample", skip=())
    typer.echo(f"{res.n_evaluations} evaluations ({res.n_cached} served from cache, "
               f"{res.n_failed} failed)")
    if res.overfit:
        typer.echo(res.overfit["verdict"])


@app.command()
def portfolio(
    data: Annotated[str, typer.Argument(help="Prices (dataset name, CSV/Parquet, synthetic:gbm?...) or a tournament's oos_returns.parquet / --out directory.")],
    profiles: Annotated[str, typer.Option("--profiles", help="Comma-separated: hrp, herc, max_sharpe, min_variance, risk_parity, max_diversification, inverse_volatility, equal_weight.")] = "hrp,max_sharpe,min_variance,risk_parity,equal_weight",
    kind: Annotated[str, typer.Option("--kind", help="auto|assets|strategies: what DATA holds.")] = "auto",
    assets: Annotated[str | None, typer.Option("--assets", help="Comma-separated assets or strategy/asset columns (default: all).")] = None,
    train: Annotated[int, typer.Option("--train", help="Train window in bars.")] = 252,
    test: Annotated[int, typer.Option("--test", help="Test (holding) window in bars.")] = 10,
    fee_bps: Annotated[float, typer.Option("--fee-bps", help="Cost per unit of traded weight at each rebalance, in basis points.")] = 0.0,
    fixed_weights: Annotated[bool, typer.Option("--fixed-weights", help="Trade back to target every bar instead of buy-and-hold inside the window.")] = False,
    covariance: Annotated[str, typer.Option("--covariance", help="empirical|ledoit_wolf|oas|shrunk|ew|gerber|denoise|detone")] = "empirical",
    linkage: Annotated[str, typer.Option("--linkage", help="Linkage of hrp/herc: ward|single|complete|average|...")] = "ward",
    risk_free_rate: Annotated[float, typer.Option("--risk-free-rate", help="Annual risk-free rate for max_sharpe.")] = 0.0,
    min_weight: Annotated[float, typer.Option("--min-weight", help="Lower bound per asset.")] = 0.0,
    max_weight: Annotated[float, typer.Option("--max-weight", help="Upper bound per asset.")] = 1.0,
    periods_per_year: Ppy = None,
    executor: Annotated[str, typer.Option("--executor", help="serial|processes|ray|auto")] = "auto",
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel workers (default: CPUs).")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (default: embedded local Ray).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for weights, returns, log, metrics, spans (Parquet) and run.json.")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Record inputs, outputs and a run manifest in this artifact store (path, file://, s3://, memory://).")] = None,
    as_json: AsJson = False,
) -> None:
    """Walk-forward portfolio optimization of several profiles, in parallel on the executor."""
    from quantfleet.portfolio import parse_profiles, rebalance, returns_matrix

    if periods_per_year is not None and periods_per_year <= 0:
        _fail(f"--periods-per-year must be > 0 (got {periods_per_year}); e.g. 252 for daily stocks")
    profs = parse_profiles(profiles, covariance=covariance, linkage=linkage,
                           risk_free_rate=risk_free_rate, min_weights=min_weight,
                           max_weights=max_weight)
    matrix = returns_matrix(data, _split(assets), kind=kind)
    n_windows = max(0, (len(matrix.returns) - train) // max(test, 1))
    ex = _executor(executor, workers, ray_address, n_items_hint=n_windows * len(profs),
                   item_cost_s=0.03)
    try:
        res = rebalance(matrix, profs, train=train, test=test, fee_bps=fee_bps,
                        drift=not fixed_weights, executor=ex, ppy=periods_per_year)
    finally:
        if ex is not None:
            ex.close()
    if out is not None:
        res.write(out)
    metrics = res.metrics.to_dict("records")
    timing = res.timing().to_dict("records")
    summary = {"source": matrix.provenance.get("source"), "kind": matrix.provenance.get("kind"),
               "columns": len(matrix.columns), "rows": len(matrix.returns), "train": train,
               "test": test, "windows": len(res.windows), "fee_bps": fee_bps,
               "drift": not fixed_weights, "executor": res.provenance["executor"],
               "wall_s": round(res.wall_s, 3), "out": str(out) if out else None}
    if store:
        summary["run_id"] = _record(store, "portfolio", None,
                                    {"returns_matrix": matrix.returns.reset_index(),
                                     "weights": res.weights_long(),
                                     "returns": res.returns.reset_index(),
                                     "metrics": res.metrics},
                                    {"data": data, **res.provenance},
                                    {"metrics": metrics}, ex, timing={"wall_s": res.wall_s})
    if as_json:
        _print_json({**summary, "metrics": metrics, "timing": timing,
                     "fallbacks": res.log[res.log["fallback"] != ""].to_dict("records")})
        return
    shown = ("profile", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
             "turnover_per_year", "costs", "fallbacks")
    _print_rows([{k: m[k] for k in shown} for m in metrics],
                title=f"Portfolio profiles, out of sample ({len(res.windows)} windows of "
                      f"{train}/{test} bars, fees {fee_bps} bps)", skip=())
    _print_rows(timing, title="Optimizer cost per window", skip=())
    n_fb = int((res.log["fallback"] != "").sum())
    typer.echo(f"{len(res.windows)} windows x {len(profs)} profiles in {res.wall_s:.1f} s on "
               f"{summary['executor']}; {n_fb} fits used a fallback"
               + (f"; results in {out}" if out else ""))


@app.command()
def profile(
    run: Annotated[str, typer.Argument(help="Run id (of 'quantfleet run') or a directory holding spans.parquet and run.json.")],
    top: Annotated[int, typer.Option("--top", help="Components shown in the heatmap.")] = 8,
    as_json: AsJson = False,
) -> None:
    """Where a run's time went: stage x component heatmap, bottlenecks, speedup."""
    from quantfleet.observe.heatmap import bottlenecks, format_profile, heatmap, utilisation
    from quantfleet.observe.speedup import explain_speedup, load_run

    if top < 1:
        _fail(f"--top must be >= 1 (got {top})")
    r = load_run(_run_dir(run))
    if not as_json:
        typer.echo(format_profile(r.spans, r.wall_s, r.workers, r.baseline, top=top,
                                  title=f"{run} ({r.executor or 'executor?'})"))
        return
    hm = heatmap(r.spans)
    sp = explain_speedup(r.spans, r.wall_s, r.workers, r.baseline)
    util = utilisation(r.spans, bins=1, wall_s=r.wall_s)
    _print_json({"run": str(run), "executor": r.executor, "wall_s": r.wall_s,
                 "workers": r.workers, "spans": len(r.spans),
                 "heatmap": {str(i): {str(c): float(v) for c, v in row.items()}
                             for i, row in hm.iterrows()},
                 "utilisation": {str(w): float(u) for w, u in util.iloc[:, 0].items()}
                 if not util.empty else {},
                 "bottlenecks": [f.to_dict() for f in bottlenecks(r.spans, r.wall_s, r.baseline,
                                                                  workers=r.workers)],
                 "speedup": {k: v for k, v in sp.items() if k != "text"}})


@app.command()
def cost(
    run: Annotated[str, typer.Argument(help="Run id (of 'quantfleet run') or a directory holding spans.parquet and run.json.")],
    instance: Annotated[str, typer.Option("--instance", help="Instance type from the catalog, e.g. c7i.2xlarge, c3-standard-8, F8s_v2.")] = "c7i.2xlarge",
    nodes: Annotated[int | None, typer.Option("--nodes", help="Node count (default: a table for 1, 2, 4, ..., 32).")] = None,
    spot: Annotated[bool, typer.Option("--spot", help="Spot prices instead of on-demand.")] = False,
    laptop_usd_per_h: Annotated[float, typer.Option("--laptop-usd-per-h", help="Cost of the local machine per hour (0: marginal).")] = 0.0,
    as_json: AsJson = False,
) -> None:
    """What the run would cost, and how long it would take, on N cloud nodes."""
    from quantfleet.observe import cost as qc
    from quantfleet.observe.speedup import load_run

    if nodes is not None and nodes < 1:
        _fail(f"--nodes must be >= 1 (got {nodes})")
    if laptop_usd_per_h < 0:
        _fail(f"--laptop-usd-per-h must be >= 0 (got {laptop_usd_per_h})")
    catalog = qc.load_catalog()
    inst = qc.get_instance(instance, catalog)
    r = load_run(_run_dir(run))
    inputs = qc.run_inputs(r.spans, r.wall_s, r.workers)
    counts = [nodes] if nodes is not None else list(qc.DEFAULT_NODES)
    table = qc.what_if(**inputs, instance=inst["name"], nodes=counts, spot=spot,
                    laptop_usd_per_h=laptop_usd_per_h, catalog=catalog)
    be = qc.break_even(**inputs, instance=inst["name"], nodes=counts, spot=spot,
                    laptop_usd_per_h=laptop_usd_per_h, catalog=catalog)
    prices = {k: catalog[k] for k in ("version", "date", "source")}
    if as_json:
        _print_json({"run": str(run), "inputs": inputs, "instance": inst, "spot": spot,
                     "catalog": prices, "table": table.to_dict("records"), "break_even": be})
        return
    shown = [{"nodes": "local" if t["nodes"] == 0 else t["nodes"], "workers": t["workers"],
              "wall_s": t["wall_s"], "speedup": t["speedup"], "billed_s": t["billed_s"],
              "cost_usd": t["cost_usd"]} for t in table.to_dict("records")]
    _print_rows(shown,
                title=f"{inst['name']} ({inst['vcpus']} vCPU, {inst.get('provider', '')} "
                      f"{'spot' if spot else 'on-demand'} ${table['usd_per_h'].iloc[-1]:.4g}/h)",
                skip=())
    if be["best_nodes"] is None:
        typer.echo("No node count is faster than the local run.")
    else:
        typer.echo(f"Most time saved per dollar: {be['best_nodes']} node(s), "
                   f"${be['best_usd_per_hour_saved']:.3g} per hour of waiting saved.")
    typer.echo(f"Prices: catalog v{catalog['version']} of {catalog['date']}, approximate "
               f"list prices (see quantfleet/observe/instances.json 'source').")


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="Run id (of 'quantfleet run'), its directory, or a directory written by RunView.save.")],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: RUN/report.html).")] = None,
    top: Annotated[int, typer.Option("--top", help="Equity curves of this many leaderboard rows.")] = 5,
    open_: Annotated[bool, typer.Option("--open", help="Open the report in the default web browser.")] = False,
    as_json: AsJson = False,
) -> None:
    """Build the run's HTML report: one self-contained file that opens offline."""
    from quantfleet.report import report_from_dir

    d = _run_dir(run)
    if (d / "view").is_dir() and not (d / "view.json").exists():
        d = d / "view"  # a pipeline run directory keeps its RunView in view/
        out = out or (d.parent / "report.html")
    if not (d / "view.json").exists():
        _fail(f"{run}: no view.json there; pass a run id, a run directory of "
              "'quantfleet run', or a directory written by RunView.save")
    run = str(d)
    if top < 1:
        _fail(f"--top must be >= 1 (got {top}); e.g. 5")
    path = report_from_dir(run, out, top=top).resolve()
    if as_json:
        _print_json({"run": run, "report": str(path), "bytes": path.stat().st_size})
    else:
        typer.echo(f"report written to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if open_:
        import webbrowser

        webbrowser.open(path.as_uri())


def _record(store: str, command: str, market: Any, outputs: dict[str, Any],
            config: dict[str, Any], metrics: dict[str, Any], ex: Any,
            timing: dict[str, Any] | None = None) -> str:
    """Put a command's outputs (and its input data) in the store with a run manifest."""
    from quantfleet.store import record_run

    inputs = {}
    if market is not None:
        from quantfleet.pipeline.stages import _market_table

        inputs["market"] = _market_table(market)
    m = record_run(store, command, outputs=outputs, inputs=inputs, config=config,
                   metrics=json.loads(json.dumps(metrics, default=str)), timing=timing,
                   executor={"name": getattr(ex, "name", "serial"),
                             "workers": getattr(ex, "workers", 1)})
    typer.echo(f"recorded run {m.run_id} in {store}", err=True)
    return m.run_id


def _run_dir(run: str) -> Path:
    """A run id (or unique prefix) of ``$QUANTFLEET_HOME/runs``, or a directory as given."""
    p = Path(run)
    if p.is_dir():
        return p
    from quantfleet.pipeline.flow import state_dir

    runs = state_dir() / "runs"
    if "/" in run or os.sep in run or run.startswith("."):
        _fail(f"{run}: no such directory (a run directory or a run id under {runs})")
    hits = sorted(runs.glob(f"{run}*")) if runs.is_dir() else []
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        _fail(f"run {run!r} is ambiguous: {', '.join(h.name for h in hits[:5])}")
    recent = sorted(runs.iterdir())[-3:] if runs.is_dir() else []
    _fail(f"{run}: no such directory, nor a run id under {runs}"
          + (f"; recent runs: {', '.join(r.name for r in recent)}" if recent else ""))
    raise AssertionError  # unreachable


runs_app = typer.Typer(help="Runs recorded in a store: list, show, diff.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
StoreUrl = Annotated[str | None, typer.Option("--store", envvar="QUANTFLEET_STORE", help="Store URL: a folder, file://..., s3://bucket/prefix (default ./lakehouse; env QUANTFLEET_STORE).")]


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


@runs_app.command("list")
def runs_list(store: StoreUrl = None, as_json: AsJson = False) -> None:
    """List the runs in a store, oldest first."""
    from quantfleet.store import Store

    runs = Store.open(store).list_runs()
    rows = [{"run_id": m.run_id, "command": m.command, "status": m.status, "created": m.created,
             "duration_s": m.duration_s, "git_commit": (m.code.get("git_commit") or "")[:10],
             "artifacts": len(m.artifacts)} for m in runs]
    if as_json:
        _print_json(rows)
        return
    _print_rows(rows, title=f"{len(rows)} runs in {Store.open(store).url}", skip=())


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="Run id, unique id prefix, or 'latest'.")],
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """Show one run's manifest: config, code, executor, steps and artifacts."""
    from quantfleet.store import Store

    m = Store.open(store).get_run(run)
    if as_json:
        _print_json(m.to_dict())
        return
    for k in ("run_id", "command", "status", "created", "finished", "duration_s", "error",
              "archived"):
        typer.echo(f"{k:>12}: {getattr(m, k)}")
    typer.echo(f"{'code':>12}: {m.code}")
    for k in ("config", "executor", "metrics", "timing"):
        for fk, v in _flat(getattr(m, k)).items():
            if fk:
                typer.echo(f"{k:>12}: {fk} = {_fmt(v)}")
    _print_rows([{"step": s["step"], "direction": d[:-1], "name": n, "hash": h[:16],
                  "kind": m.artifacts.get(h, {}).get("kind", ""),
                  "rows": m.artifacts.get(h, {}).get("rows")}
                 for s in m.steps for d in ("inputs", "outputs") for n, h in s[d].items()],
                title="Lineage", skip=())


@runs_app.command("diff")
def runs_diff(
    run_a: Annotated[str, typer.Argument(help="First run (id, prefix or 'latest').")],
    run_b: Annotated[str, typer.Argument(help="Second run.")],
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """Config and metric differences between two runs."""
    from quantfleet.store import Store

    st = Store.open(store)
    a, b = st.get_run(run_a), st.get_run(run_b)
    out: dict[str, Any] = {"a": a.run_id, "b": b.run_id}
    for part in ("config", "metrics"):
        fa, fb = _flat(a.to_dict()[part]), _flat(b.to_dict()[part])
        rows = []
        for k in sorted(set(fa) | set(fb)):
            va, vb = fa.get(k), fb.get(k)
            if k and va != vb:
                num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
                rows.append({"field": k, "a": va, "b": vb, "delta": vb - va if num else None})
        out[part] = rows
    if as_json:
        _print_json(out)
        return
    typer.echo(f"a = {a.run_id} ({a.command}), b = {b.run_id} ({b.command})")
    for part in ("config", "metrics"):
        if out[part]:
            _print_rows([{k: _fmt(v) if v is not None else "" for k, v in r.items()}
                         for r in out[part]], title=f"{part} differences", skip=())
        else:
            typer.echo(f"{part}: identical")


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL over tables runs, artifacts, lineage and one view per artifact kind (e.g. tournament_results).")],
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """Query runs and artifacts of a store with SQL (DuckDB)."""
    from quantfleet.store import Catalog

    with Catalog(store) as cat:
        rows = cat.rows(sql)
    if as_json:
        _print_json(rows)
        return
    _print_rows(rows, skip=())


def _executor(kind: str, workers: int | None, ray_address: str | None, **kw: Any):
    if kind == "serial" and ray_address is None:
        return None
    from quantfleet.compute import make_executor

    return make_executor(kind, workers=workers, ray_address=ray_address, **kw)


@data_app.command("info")
def data_info(
    source: Annotated[str, typer.Argument(help="CSV/Parquet path, dataset name, or synthetic:gbm?...")],
    as_json: AsJson = False,
) -> None:
    """Load and validate a data source; print what was loaded."""
    from quantfleet.data import info

    d = info(_load(source))
    if as_json:
        _print_json(d)
        return
    for k, v in d.items():
        if isinstance(v, (list, dict)) and len(v) > 12:
            v = f"{len(v)} entries"
        typer.echo(f"{k:>18}: {v}")


def _run_config(config: Any, as_json: bool) -> None:
    from quantfleet.pipeline.flow import run_pipeline
    from quantfleet.pipeline.report import write_report

    out = run_pipeline(config, log=(lambda m: None) if as_json else typer.echo)
    report = write_report(out) if config.report.enabled else None
    summary = {"run_id": out.run_id, "run_dir": str(out.run_dir), "store": out.store_url,
               "report": str(report) if report else None, "wall_s": round(out.wall_s, 2),
               "stages": {k: {"cached": v["cached"], "outputs": v["outputs"],
                              "summary": v["summary"]} for k, v in out.stages.items()}}
    if as_json:
        _print_json(summary)
        return
    typer.echo(f"run {out.run_id} finished in {out.wall_s:.1f} s")
    typer.echo(f"  artifacts: {out.store_url} (manifest runs/{out.run_id}/manifest.json)")
    typer.echo(f"  run dir:   {out.run_dir}")
    if report:
        typer.echo(f"  report:    {report}")
        if config.report.open:
            import webbrowser

            webbrowser.open(report.as_uri())


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Pipeline config (TOML); see docs/pipeline.md.")],
    store: Annotated[str | None, typer.Option("--store", help="Artifact store URL (store).")] = None,
    executor: Annotated[str | None, typer.Option("--executor", help="serial|processes|ray|auto (executor.kind).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="executor.workers")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="executor.ray_address")] = None,
    prefect_api: Annotated[str | None, typer.Option("--prefect-api", help="Prefect API URL (prefect.api_url); default: embedded local API.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="data.source")] = None,
    fee_bps: Annotated[float | None, typer.Option("--fee-bps", help="costs.fee_bps")] = None,
    slippage_bps: Annotated[float | None, typer.Option("--slippage-bps", help="costs.slippage_bps")] = None,
    open_report: Annotated[bool | None, typer.Option("--open/--no-open", help="report.open")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any field: KEY=VALUE with a dotted key, e.g. --set tournament.max_combos=8 (value parsed as TOML).")] = None,
    as_json: AsJson = False,
) -> None:
    """Run the pipeline of CONFIG: data, tournament, evolution, portfolio, report."""
    from quantfleet.pipeline.config import load_config

    cfg = load_config(config)
    cfg = cfg.with_overrides({**_parse_sets(set_ or []), "store": store, "executor.kind": executor,
                              "executor.workers": workers, "executor.ray_address": ray_address,
                              "prefect.api_url": prefect_api, "data.source": data,
                              "costs.fee_bps": fee_bps, "costs.slippage_bps": slippage_bps,
                              "report.open": open_report})
    _run_config(cfg, as_json)


def _parse_sets(items: list[str]) -> dict[str, Any]:
    import tomllib

    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            _fail(f"--set {it!r}: expected KEY=VALUE, e.g. --set tournament.max_combos=8")
        k, v = (x.strip() for x in it.split("=", 1))
        try:
            out[k] = tomllib.loads(f"v = {v}")["v"]
        except tomllib.TOMLDecodeError:
            out[k] = v
    return out


@app.command()
def demo(
    executor: Annotated[str | None, typer.Option("--executor", help="serial|processes|ray|auto (default: ray).")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Artifact store URL.")] = None,
    as_json: AsJson = False,
) -> None:
    """Run the bundled demo config: every strategy x the 20 sp500 stocks, an evolution,
    5 portfolio profiles walk-forward, on local Ray; writes report.html."""
    from importlib.resources import files

    from quantfleet.pipeline.config import load_config

    path = files("quantfleet.pipeline").joinpath("demo.toml")
    cfg = load_config(Path(str(path)))
    cfg = cfg.with_overrides({"executor.kind": executor, "store": store})
    _run_config(cfg, as_json)


@app.command()
def ui(
    port: Annotated[int, typer.Option("--port", help="Prefect UI port on 127.0.0.1.")] = 4200,
) -> None:
    """Start the Prefect server (UI) on 127.0.0.1 and print the Prefect and Ray dashboards."""
    import subprocess

    from quantfleet.pipeline.flow import prefect_env, state_dir

    home = state_dir()
    prefect_env(home)
    exe = Path(sys.executable).with_name("prefect")
    cmd = [str(exe), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    typer.echo(f"Prefect UI:     http://127.0.0.1:{port}  (state in {home / 'prefect'})")
    typer.echo("Ray dashboard:  http://127.0.0.1:8265  (when a Ray cluster with the dashboard "
               "runs; see docs/deploy.md)")
    typer.echo(f"point runs at it with --prefect-api http://127.0.0.1:{port}/api; Ctrl-C stops")
    try:
        subprocess.run(cmd, check=False)
    except KeyboardInterrupt:
        pass


@app.command()
def health(
    store: Annotated[str | None, typer.Option("--store", help="Store URL to check (default: lakehouse).")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster to check (default: embedded local Ray).")] = None,
    prefect_api: Annotated[str | None, typer.Option("--prefect-api", help="Prefect API to check (default: embedded local API).")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="store|ray|prefect; repeatable.")] = None,
) -> None:
    """Functional checks, not pings: store round trip, a backtest as a Ray task, a tiny flow."""
    from quantfleet.pipeline.health import run_checks

    results = run_checks(store=store or "lakehouse", ray_address=ray_address,
                         prefect_api=prefect_api, skip=set(skip or []))
    for r in results:
        typer.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.name:<8} {r.detail} ({r.seconds:.1f} s)")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning quantfleet errors into one line and exit code 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
        # click returns the code of typer.Exit instead of raising it when not standalone
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except QuantfleetError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except TypeError as e:
        if os.environ.get("QUANTFLEET_DEBUG"):
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except FileNotFoundError as e:
        typer.echo(f"error: {e.filename or e}: file not found", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(2)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
