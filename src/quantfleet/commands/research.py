"""The research commands: ``backtest``, ``sweep``, ``tournament``, ``evolve``, ``portfolio``.

Each is a one-stage run of the pipeline's stage functions (its options mapped onto the config
section of the same stage), recorded in the store like ``quantfleet run``; it prints from the
driver's result.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from quantfleet.commands.options import (
    AsJson,
    AssetOpt,
    BorrowRate,
    DataArg,
    Executor,
    Fee,
    Fill,
    Fraction,
    LongShort,
    NoStore,
    Ppy,
    RayAddress,
    Slip,
    StopLoss,
    StoreUrl,
    StrategyOpt,
    TakeProfit,
    TrailingStop,
    VolCap,
    VolTarget,
    VolWindow,
    Workers,
    check_ppy,
    execution_settings,
    fail,
    fmt,
    gc_paused,
    parse_grid,
    parse_params,
    print_json,
    print_rows,
    research_config,
    run_research,
    split,
    window_len,
)

__all__ = ["backtest", "evolve", "portfolio", "sweep", "tournament"]


_BENCHMARK_NOTE = ("bh_* = buy-and-hold of the row's asset over the same bars (one entry fill "
                   "at the same costs); excess_* = the row's figure minus it")


def _with_run(summary: dict, outcome) -> dict:
    return {**summary, "run_id": outcome.run_id} if outcome.run_id else summary


@gc_paused()  # one backtest per asset: the command is mostly start-up
def backtest(
    data: DataArg,
    strategy: StrategyOpt,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE, repeatable.")] = None,
    asset: AssetOpt = None,
    fee_bps: Fee = 0.0,
    slippage_bps: Slip = 0.0,
    periods_per_year: Ppy = None,
    long_short: LongShort = False,
    fill: Fill = "close",
    stop_loss: StopLoss = None,
    take_profit: TakeProfit = None,
    trailing_stop: TrailingStop = None,
    fraction: Fraction = 1.0,
    vol_target: VolTarget = None,
    vol_window: VolWindow = 20,
    vol_cap: VolCap = 1.0,
    borrow_rate: BorrowRate = 0.0,
    store: StoreUrl = None,
    no_store: NoStore = False,
    as_json: AsJson = False,
) -> None:
    """Backtest one parameter set of one strategy."""
    params = parse_params(param or [])
    check_ppy(periods_per_year)
    ex = execution_settings(fill, stop_loss, take_profit, trailing_stop, fraction, vol_target,
                            vol_window, vol_cap, borrow_rate)
    cfg = research_config("backtest", {"strategy": strategy, "params": params,
                                       "assets": asset or [], "long_short": long_short,
                                       "periods_per_year": periods_per_year},
                          data=data, store=store, fee_bps=fee_bps, slippage_bps=slippage_bps,
                          execution=ex)
    out = run_research(cfg, "backtest", no_store=no_store)
    results = out.results["backtest"]
    if as_json:
        # one row per asset, each naming the run (a single asset: the row itself)
        rows = [_with_run(r, out) for r in results]
        print_json(rows[0] if len(rows) == 1 else rows)
        return
    print_rows(results, title=f"{results[0]['strategy']} {results[0]['params']}" if results else "",
               skip=("params", "strategy", "execution"))
    _print_execution(ex)


def _print_execution(settings: dict) -> None:
    """One line naming the execution options that differ from the default (none: silent)."""
    from quantfleet.backtest.terms import Execution

    base = Execution().settings()
    diff = {k: v for k, v in settings.items() if v != base[k]}
    if diff:
        typer.echo("execution: " + ", ".join(f"{k}={v}" for k, v in diff.items()))


def sweep(
    data: DataArg,
    strategy: StrategyOpt,
    grid: Annotated[list[str] | None, typer.Option("--grid", "-g", help="K=START:STOP:STEP (inclusive) or K=v1,v2; repeatable. Missing params use the search range.")] = None,
    asset: AssetOpt = None,
    fee_bps: Fee = 0.0,
    slippage_bps: Slip = 0.0,
    periods_per_year: Ppy = None,
    long_short: LongShort = False,
    fill: Fill = "close",
    stop_loss: StopLoss = None,
    take_profit: TakeProfit = None,
    trailing_stop: TrailingStop = None,
    fraction: Fraction = 1.0,
    vol_target: VolTarget = None,
    vol_window: VolWindow = 20,
    vol_cap: VolCap = 1.0,
    borrow_rate: BorrowRate = 0.0,
    metric: Annotated[str, typer.Option("--metric", help="Leaderboard metric.")] = "sharpe",
    top: Annotated[int, typer.Option("--top", help="Leaderboard rows.")] = 10,
    out: Annotated[Path | None, typer.Option("--out", help="Write every row to this Parquet file.")] = None,
    executor: Executor = "serial",
    workers: Workers = None,
    ray_address: RayAddress = None,
    store: StoreUrl = None,
    no_store: NoStore = False,
    as_json: AsJson = False,
) -> None:
    """Sweep a parameter grid of one strategy over every asset; print the leaderboard."""
    if top < 1:
        fail(f"--top must be >= 1 (got {top})")
    if out is not None and out.suffix != ".parquet":
        fail(f"--out {out}: expected a .parquet file name")
    check_ppy(periods_per_year)
    g = parse_grid(grid or [])
    ex = execution_settings(fill, stop_loss, take_profit, trailing_stop, fraction, vol_target,
                            vol_window, vol_cap, borrow_rate)
    cfg = research_config("sweep", {"strategy": strategy, "grid": g, "assets": asset or [],
                                    "metric": metric, "top": top,
                                    "out": str(out) if out is not None else None,
                                    "long_short": long_short,
                                    "periods_per_year": periods_per_year},
                          data=data, store=store, executor=executor, workers=workers,
                          ray_address=ray_address, fee_bps=fee_bps, slippage_bps=slippage_bps,
                          execution=ex)
    run = run_research(cfg, "sweep", no_store=no_store)
    res = run.results["sweep"]
    board = res.top.to_dict("records") if len(res.top) else []
    summary = _with_run({"strategy": res.strategy, "combos": res.n_combos,
                         "skipped": res.n_skipped, "rows": res.n_rows,
                         "failed": len(res.failed), "assets": len(res.assets), "metric": metric,
                         "out": str(res.path) if res.path else None, "overfit": res.overfit,
                         "execution": ex},
                        run)
    if as_json:
        print_json({**summary, "top": board})
        return
    from quantfleet.backtest.terms import SEARCHABLE
    from quantfleet.strategies import get

    print_rows(board, title=f"{res.strategy}: top {len(board)} by {metric}", skip=("strategy",),
               first=("asset", *get(res.strategy).space.names, *(k for k in SEARCHABLE if k in g),
                      metric, "sharpe", "bh_sharpe", "excess_sharpe", "total_return",
                      "bh_total_return"))
    _print_execution(ex)
    if board:
        typer.echo(_BENCHMARK_NOTE)
    typer.echo(f"{res.n_combos} combos x {len(res.assets)} assets = {res.n_rows} backtests; "
               f"{res.n_skipped} combos skipped (constraint); {len(res.failed)} failed"
               + (f"; rows written to {res.path}" if res.path else ""))
    if res.overfit:
        typer.echo(f"winner on {res.overfit['asset']}: {res.overfit['verdict']}")


def _cpcv_block(pairs: Any, paths: Any, cv: Any) -> dict[str, Any]:
    """The tournament's ``--json`` ``cpcv`` block: the settings (``cv`` a research.cpcv.Cpcv),
    and per pair its summary row with every path's annualised Sharpe (``path_sharpe``, in
    path order)."""
    rows = pairs.to_dict("records")
    by_pair: dict[tuple[str, str], list[float]] = {}
    for r in paths.to_dict("records"):
        by_pair.setdefault((r["strategy"], r["asset"]), []).append(r["sharpe"])
    return {"groups": cv.groups, "test_groups": cv.test_groups, "embargo": cv.embargo,
            "splits": cv.n_splits, "paths": cv.n_paths,
            "pairs": [{**r, "path_sharpe": by_pair.get((r["strategy"], r["asset"]), [])}
                      for r in rows]}


def tournament(
    data: DataArg,
    strategies: Annotated[str, typer.Option("--strategies", help="Comma-separated strategy names, or 'all'.")],
    assets: Annotated[str | None, typer.Option("--assets", help="Comma-separated assets (default: all).")] = None,
    train: Annotated[str | None, typer.Option("--train", help="Train length: bars (252) or a duration (2Y, 6M).")] = None,
    test: Annotated[str | None, typer.Option("--test", help="Test length: bars or a duration.")] = None,
    windows: Annotated[int | None, typer.Option("--windows", help="K equal windows (instead of --train/--test).")] = None,
    anchored: Annotated[bool, typer.Option("--anchored", help="Anchored (expanding) train windows.")] = False,
    metric: Annotated[str, typer.Option("--metric", help="In-sample selection metric.")] = "sharpe",
    max_combos: Annotated[int, typer.Option("--max-combos", help="Parameter sets per strategy (coarse grid).")] = 64,
    grid: Annotated[list[str] | None, typer.Option("--grid", "-g", help="K=START:STOP:STEP (inclusive) or K=v1,v2; repeatable, as in sweep. Applies to each strategy that has K (its other params: their search range); strategies no key applies to keep the --max-combos grid.")] = None,
    fee_bps: Fee = 0.0,
    slippage_bps: Slip = 0.0,
    periods_per_year: Ppy = None,
    long_short: LongShort = False,
    fill: Fill = "close",
    stop_loss: StopLoss = None,
    take_profit: TakeProfit = None,
    trailing_stop: TrailingStop = None,
    fraction: Fraction = 1.0,
    vol_target: VolTarget = None,
    vol_window: VolWindow = 20,
    vol_cap: VolCap = 1.0,
    borrow_rate: BorrowRate = 0.0,
    executor: Executor = "auto",
    workers: Workers = None,
    ray_address: RayAddress = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for results.parquet, leaderboard.parquet, oos_returns.parquet.")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Checkpoint directory: finished chunks are kept there and skipped on a re-run.")] = None,
    baseline: Annotated[bool, typer.Option("--baseline", help="Also run the whole tournament serially in this process (every strategy warmed up first) and report the speedup and efficiency (baseline.enabled).")] = False,
    confidence: Annotated[bool, typer.Option("--confidence/--no-confidence", help="How sure: bootstrap 95% intervals of the winner's OOS Sharpe and max drawdown, permutation p-value over the pairs (tournament.confidence).")] = True,
    confidence_seed: Annotated[int, typer.Option("--confidence-seed", help="Seed of the bootstrap and the permutations (tournament.confidence.seed).")] = 0,
    cv: Annotated[str, typer.Option("--cv", help="walk: walk-forward only; cpcv: each pair also cross-validated by combinatorial purged CV (phi paths' Sharpe distribution, PBO; tournament.cv).")] = "walk",
    groups: Annotated[int, typer.Option("--groups", help="cpcv: N contiguous groups of bars (tournament.groups).")] = 6,
    test_groups: Annotated[int, typer.Option("--test-groups", help="cpcv: k test groups per split (tournament.test_groups).")] = 2,
    embargo: Annotated[int, typer.Option("--embargo", help="cpcv: bars after each test group left out of training (tournament.embargo).")] = 0,
    top: Annotated[int, typer.Option("--top", help="Leaderboard rows shown.")] = 15,
    store: StoreUrl = None,
    no_store: NoStore = False,
    as_json: AsJson = False,
) -> None:
    """Strategies x assets x walk-forward windows: pick in sample, score out of sample."""
    if cv not in ("walk", "cpcv"):
        fail(f"--cv must be walk or cpcv (got {cv!r})")
    names_ = ["all"] if strategies.strip() == "all" else (split(strategies) or [])
    if max_combos < 1:
        fail(f"--max-combos must be >= 1 (got {max_combos})")
    check_ppy(periods_per_year)
    g = parse_grid(grid or [])
    ex = execution_settings(fill, stop_loss, take_profit, trailing_stop, fraction, vol_target,
                            vol_window, vol_cap, borrow_rate)
    cfg = research_config(
        "tournament",
        {"strategies": names_, "assets": split(assets) or [], "train": window_len(train),
         "test": window_len(test), "windows": windows, "anchored": anchored, "metric": metric,
         "max_combos": max_combos, "grid": g, "long_short": long_short,
         "periods_per_year": periods_per_year, "out": str(out) if out is not None else None,
         "checkpoint": str(resume) if resume is not None else None,
         "confidence": {"enabled": confidence, "seed": confidence_seed},
         "cv": cv, "groups": groups, "test_groups": test_groups, "embargo": embargo},
        data=data, store=store, executor=executor, workers=workers, ray_address=ray_address,
        fee_bps=fee_bps, slippage_bps=slippage_bps, baseline={"enabled": baseline},
        execution=ex)
    # a rich progress bar (tasks, items/s, ETA) on an interactive terminal only
    run = run_research(cfg, "tournament", no_store=no_store,
                       progress=sys.stderr.isatty() and not as_json)
    res = run.results["tournament"]
    ctx = run.context
    speed = res.speedup
    board = res.leaderboard.head(top).to_dict("records") if len(res.leaderboard) else []
    stage = run.stages["tournament"]
    summary = {
        "strategies": stage["summary"]["strategies"] if names_ == ["all"] else names_,
        "assets": len(split(assets) or ctx.market_view.assets),
        "windows": len(res.windows), "rows": res.n_rows, "backtests": res.n_backtests,
        "failed": len(res.failed), "wall_s": round(stage["seconds"], 3),
        # the tournament's own wall (first task to last result; the executor already started)
        "tournament_s": round(res.wall_s, 3),
        "executor": ctx.executor_name,
        "executor_reason": ctx.executor_reason,
        "out": str(res.path) if res.path else None,
        "overfit": res.winner_overfit,
        # how sure: bootstrap CIs of the winner's OOS Sharpe and max drawdown, permutation p
        "confidence": res.confidence,
        # per strategy: the OOS metric over its two most important parameters, plateau drop
        "stability": res.stability,
    }
    if speed is not None:
        summary["baseline"] = speed
    if res.cpcv is not None:
        from quantfleet.research.cpcv import Cpcv

        summary["cpcv"] = _cpcv_block(res.cpcv, res.cpcv_paths,
                                      Cpcv(groups, test_groups, embargo))
    summary = _with_run({**summary, "execution": ex}, run)
    if as_json:
        print_json({**summary, "leaderboard": board,
                    "failures": [str(f) for f in res.failed]})
        return
    print_rows(board, title=f"Tournament leaderboard (out of sample, {len(res.windows)} windows)",
               skip=("pair_verdict",),
               first=("strategy", "asset", "oos_sharpe", "bh_sharpe", "excess_sharpe",
                      "pair_dsr", "oos_total_return", "bh_total_return"))
    if board:
        typer.echo(_BENCHMARK_NOTE)
    why = summary["executor_reason"] or ""
    typer.echo(f"{res.n_backtests} backtests ({res.n_rows} rows) in {stage['seconds']:.1f} s on "
               f"{summary['executor']}" + (f" ({why})" if why.startswith("auto") else "")
               + f"; {len(res.failed)} failed"
               + (f"; results in {res.path}" if res.path else ""))
    for f in res.failed[:5]:
        typer.echo(f"  failed: {f}", err=True)
    of = res.winner_overfit
    if of:
        typer.echo(f"winner {of['strategy']}/{of['asset']}: {of['verdict']}")
    if res.confidence:
        from quantfleet.research.confidence import confidence_line

        typer.echo(confidence_line(res.confidence))
    if res.stability:
        from quantfleet.research.stability import stability_line

        for b in res.stability:
            typer.echo(stability_line(b))
    if board and "pair_verdict" in board[0]:
        w = board[0]
        typer.echo(f"within {w['strategy']}/{w['asset']} (pair_dsr, pair_pbo): "
                   f"{w['pair_verdict']}")
    if res.cpcv is not None and len(res.cpcv):
        c = summary["cpcv"]
        print_rows([{k: v for k, v in r.items() if k != "path_sharpe"} for r in c["pairs"]],
                   title=f"CPCV: {c['groups']} groups, {c['test_groups']} tested per split, "
                   f"embargo {c['embargo']} bars: {c['splits']} splits, {c['paths']} "
                   f"out-of-sample paths per pair (annualised path Sharpe; PBO over the splits)",
                   skip=("groups", "test_groups", "embargo", "splits", "paths"),
                   first=("strategy", "asset", "pbo", "sharpe_mean", "sharpe_std"))
    _print_execution(ex)
    if speed is not None:
        head = (f"baseline ({speed['baseline_kind']}): {speed['serial_s']:.2f} s serial, "
                f"parallel {speed['wall_s']:.2f} s on {speed['workers']} workers -> ")
        typer.echo(head + (f"speedup {speed['speedup']:.2f}x, efficiency "
                           f"{speed['efficiency']:.0%}" if speed.get("valid", True) else
                           f"speedup invalid: {speed['invalid_reason']}"))


def evolve(
    data: DataArg,
    strategies: Annotated[str, typer.Option("--strategies", help="Comma-separated strategy names (a mixed population), or 'all'.")],
    searcher: Annotated[str, typer.Option("--searcher", help="What proposes the trials: genetic, random, grid (every combo of the --grid), or Optuna's optuna:tpe|cmaes|nsgaii|random (pip install 'quantfleet[search]').")] = "genetic",
    population: Annotated[int, typer.Option("--population", help="Trials per generation (round).")] = 100,
    generations: Annotated[int, typer.Option("--generations", help="Generations (rounds).")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="RNG seed: same seed, same evolution on every executor.")] = 0,
    metric: Annotated[str, typer.Option("--metric", help="Fitness metric (mean over assets, in sample).")] = "sharpe",
    train_frac: Annotated[float, typer.Option("--train-frac", help="Fraction of bars in sample; the rest checks the winners.")] = 0.7,
    assets: Annotated[str | None, typer.Option("--assets", help="Comma-separated assets (default: all).")] = None,
    mutation: Annotated[float | None, typer.Option("--mutation", help="Per-parameter mutation probability (genetic; default 0.25).")] = None,
    crossover: Annotated[float | None, typer.Option("--crossover", help="Crossover probability (genetic; default 0.8).")] = None,
    elite: Annotated[int | None, typer.Option("--elite", help="Elites kept per generation (genetic; default 2).")] = None,
    immigrants: Annotated[float | None, typer.Option("--immigrants", help="Fraction of fresh random individuals per generation (genetic; default 0.1).")] = None,
    fee_bps: Fee = 0.0,
    slippage_bps: Slip = 0.0,
    periods_per_year: Ppy = None,
    long_short: LongShort = False,
    fill: Fill = "close",
    stop_loss: StopLoss = None,
    take_profit: TakeProfit = None,
    trailing_stop: TrailingStop = None,
    fraction: Fraction = 1.0,
    vol_target: VolTarget = None,
    vol_window: VolWindow = 20,
    vol_cap: VolCap = 1.0,
    borrow_rate: BorrowRate = 0.0,
    executor: Executor = "serial",
    workers: Workers = None,
    ray_address: RayAddress = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Checkpoint directory: written after every generation; an interrupted run resumes from it.")] = None,
    top: Annotated[int, typer.Option("--top", help="Winners checked out of sample.")] = 5,
    grid: Annotated[list[str] | None, typer.Option("--grid", "-g", help="K=START:STOP:STEP (inclusive) or K=v1,v2; repeatable, as in sweep: K may only take these values. Applies to each strategy that has K (its other params: their search range).")] = None,
    store: StoreUrl = None,
    no_store: NoStore = False,
    as_json: AsJson = False,
) -> None:
    """Search strategy parameters (a genetic algorithm, or --searcher random|grid|optuna:*); check the winners out of sample."""
    names_ = ["all"] if strategies.strip() == "all" else (split(strategies) or [])
    check_ppy(periods_per_year)
    if not names_:
        fail("--strategies: no strategy names given; e.g. --strategies sma_cross,rsi")
    ex = execution_settings(fill, stop_loss, take_profit, trailing_stop, fraction, vol_target,
                            vol_window, vol_cap, borrow_rate)
    cfg = research_config(
        "evolution",
        {"strategies": names_, "assets": split(assets) or [], "searcher": searcher,
         "population": population,
         "generations": generations, "seed": seed, "metric": metric, "train_frac": train_frac,
         "top": top, "grid": parse_grid(grid or []), "long_short": long_short,
         "periods_per_year": periods_per_year,
         **{k: v for k, v in {"mutation": mutation, "crossover": crossover, "elite": elite,
                              "immigrants": immigrants}.items() if v is not None},
         # a recorded run keeps its checkpoint in its store ("auto"): a killed run
         # resumes from it, on any machine that reaches the store
         "checkpoint": (str(resume) if resume is not None
                        else None if no_store else "auto")},
        data=data, store=store, executor=executor, workers=workers, ray_address=ray_address,
        fee_bps=fee_bps, slippage_bps=slippage_bps, execution=ex)
    run = run_research(cfg, "evolve", no_store=no_store)
    res = run.results["evolution"]
    summary = _with_run({"strategies": res.config.get("strategies", names_),
                         "searcher": searcher, "population": population, "generations": generations,
                         "seed": seed, "evaluations": res.n_evaluations, "cached": res.n_cached,
                         "failed": res.n_failed, "in_sample_bars": res.split,
                         "executor": run.context.executor_name, "overfit": res.overfit,
                         "execution": ex,
                         "coordinator": res.coordinator}, run)
    if as_json:
        print_json({**summary, "winners": res.winners, "history": res.history})
        return
    shown = ("round", "evaluated", "failed", "best", "mean", "median", "diversity", "wall_s")
    print_rows([{k: h[k] for k in shown} for h in res.history],
               title=f"Search history ({searcher}; fitness = mean in-sample {metric})",
               skip=())
    rows = [{"strategy": w["strategy"],
             "params": " ".join(f"{k}={fmt(v)}" for k, v in w["params"].items()),
             **{k: w[k] for k in w if k.startswith(("is_", "oos_")) and not k.startswith("oos_mean_")}}
            for w in res.winners]
    print_rows(rows, title="Winners: in sample vs out of sample", skip=())
    typer.echo(f"{res.n_evaluations} evaluations ({res.n_cached} served from cache, "
               f"{res.n_failed} failed)")
    co = res.coordinator
    if co:  # Ray: the loop ran in the coordinator actor
        typer.echo(f"coordinator: node {str(co['node'])[:12]}"
                   + (" (the head)" if co["on_head"] else " (not the head)")
                   + f", restarted {co['restarts']} time(s)")
    if res.overfit:
        typer.echo(res.overfit["verdict"])
    _print_execution(ex)


def portfolio(
    data: Annotated[str, typer.Argument(help="Prices (dataset name, CSV/Parquet, synthetic:gbm?...) or a tournament's oos_returns.parquet / --out directory.")],
    profiles: Annotated[str, typer.Option("--profiles", help="Comma-separated: hrp, herc, max_sharpe, min_variance, risk_parity, max_diversification, inverse_volatility, equal_weight.")] = "hrp,max_sharpe,min_variance,risk_parity,equal_weight",
    kind: Annotated[str, typer.Option("--kind", help="auto|assets|strategies: what DATA holds.")] = "auto",
    assets: Annotated[str | None, typer.Option("--assets", help="Comma-separated assets or strategy/asset columns (default: all).")] = None,
    train: Annotated[int, typer.Option("--train", help="Train window in bars.")] = 252,
    test: Annotated[int, typer.Option("--test", help="Test (holding) window in bars.")] = 10,
    winners: Annotated[int | None, typer.Option("--winners", help="Members per window: the N columns with the best Sharpe over that window's train bars only; the profiles are fitted on them (default: every column).")] = None,
    prices: Annotated[str | None, typer.Option("--prices", help="Prices (dataset name, CSV/Parquet) of the assets DATA's strategy/asset columns trade: the buy-and-hold beside each profile (assets DATA: its own columns).")] = None,
    fee_bps: Annotated[float, typer.Option("--fee-bps", help="Cost per unit of traded weight at each rebalance, in basis points.")] = 0.0,
    fixed_weights: Annotated[bool, typer.Option("--fixed-weights", help="Trade back to target every bar instead of buy-and-hold inside the window.")] = False,
    covariance: Annotated[str, typer.Option("--covariance", help="empirical|ledoit_wolf|oas|shrunk|ew|gerber|denoise|detone")] = "empirical",
    linkage: Annotated[str, typer.Option("--linkage", help="Linkage of hrp/herc: ward|single|complete|average|...")] = "ward",
    risk_free_rate: Annotated[float, typer.Option("--risk-free-rate", help="Annual risk-free rate for max_sharpe.")] = 0.0,
    min_weight: Annotated[float, typer.Option("--min-weight", help="Lower bound per asset.")] = 0.0,
    max_weight: Annotated[float, typer.Option("--max-weight", help="Upper bound per asset.")] = 1.0,
    periods_per_year: Ppy = None,
    executor: Executor = "auto",
    workers: Workers = None,
    ray_address: RayAddress = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for weights, returns, log, metrics, spans (Parquet) and provenance.json.")] = None,
    store: StoreUrl = None,
    no_store: NoStore = False,
    as_json: AsJson = False,
) -> None:
    """Walk-forward portfolio optimization of several profiles, in parallel on the executor."""
    from quantfleet.errors import ConfigError

    check_ppy(periods_per_year)
    if kind not in ("auto", "assets", "strategies"):
        raise ConfigError(f"kind={kind!r}: choose 'auto', 'assets' or 'strategies'")
    names = split(profiles) or []
    if not names:
        from quantfleet.portfolio import parse_profiles

        parse_profiles(profiles)  # raises the one-line "no portfolio profiles given"
    cfg = research_config(
        "portfolio",
        {"profiles": names, "source": "data", "kind": kind, "assets": split(assets) or [],
         "train": train, "test": test, "winners": winners, "prices": prices,
         "fee_bps": fee_bps,
         "drift": not fixed_weights,
         "periods_per_year": periods_per_year, "out": str(out) if out is not None else None,
         "covariance": covariance, "linkage": linkage, "risk_free_rate": risk_free_rate,
         "min_weight": min_weight, "max_weight": max_weight},
        data=data, store=store, executor=executor, workers=workers, ray_address=ray_address)
    run = run_research(cfg, "portfolio", no_store=no_store)
    matrix, res = run.results["returns"], run.results["portfolio"]
    metrics = res.metrics.to_dict("records")
    timing = res.timing().to_dict("records")
    summary = _with_run(
        {"source": matrix.provenance.get("source"), "kind": matrix.provenance.get("kind"),
         "columns": len(matrix.columns), "rows": len(matrix.returns), "train": train,
         "test": test, "windows": len(res.windows), "fee_bps": fee_bps,
         "drift": not fixed_weights, "executor": res.provenance["executor"],
         "selection": matrix.provenance.get("selection"),
         "buy_and_hold": res.provenance["buy_and_hold"]["text"],
         "wall_s": round(res.wall_s, 3), "out": str(out) if out else None}, run)
    conf = (run.stages["portfolio"]["summary"] or {}).get("confidence")
    summary["confidence"] = conf  # each profile's bootstrap intervals (None: disabled)
    if as_json:
        print_json({**summary, "metrics": metrics, "timing": timing,
                    "fallbacks": res.log[res.log["fallback"] != ""].to_dict("records")})
        return
    shown = ("profile", "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
             "turnover_per_year", "costs", "fallbacks")
    print_rows([{k: m[k] for k in shown} for m in metrics],
               title=f"Portfolio profiles, out of sample ({len(res.windows)} windows of "
                     f"{train}/{test} bars, fees {fee_bps} bps)", skip=())
    sel = str(summary["selection"])
    typer.echo(sel[:1].upper() + sel[1:])
    vs = ("profile", "total_return", "bh_total_return", "excess_total_return", "sharpe",
          "bh_sharpe", "excess_sharpe")
    print_rows([{k: m[k] for k in vs} for m in metrics],
               title="Against buy-and-hold over the same bars (excess = profile - bh)", skip=())
    typer.echo(f"Buy-and-hold: {summary['buy_and_hold']}")
    if conf:
        from quantfleet.research.confidence import confidence_line

        for name, c in conf.items():
            typer.echo(confidence_line({**c, "profile": name}))
    print_rows(timing, title="Optimizer cost per window", skip=())
    n_fb = int((res.log["fallback"] != "").sum())
    typer.echo(f"{len(res.windows)} windows x {len(res.profiles)} profiles in {res.wall_s:.1f} s "
               f"on {summary['executor']}; {n_fb} fits used a fallback"
               + (f"; results in {out}" if out else ""))
