"""Searchers against the exhaustive grid: evaluations needed to come within 1 % of its best.

On sp500_ohlcv (1 asset, 5,031 bars), for a few strategies each restricted to a finite grid
(ParamSpace.restrict: every searcher searches exactly the grid's points), fitness = Sharpe
through ``run_search`` (fee 0), the driver every searcher runs on:

1. the grid: ``run_search(GridSearcher({name: grid}))``, its best fitness and the target
   ``best - 1 % * |best|``; *grid order* = evaluations in grid order until the first combo at
   the target (one number: the order has no seed);
2. random (``RandomSearcher``), genetic (``GeneticSearcher``, population 20) and Optuna's
   tpe / cmaes / nsgaii / random (``OptunaSearcher``, 20 trials a round), each with a budget
   of N trials and several seeds: the distinct (strategy, params) evaluated, in proposal
   order, until the first at the target ("not reached in N" when none is).

Writes its section of docs/BENCHMARKS.md between ``<!-- searchers:start -->`` and
``<!-- searchers:end -->``.

Usage: .venv/bin/python bench/searcher_bench.py [--quick] [--no-doc] [--seeds K] [--budget N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from pathlib import Path

from docsection import DOC, logger, write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "searchers"
warnings.filterwarnings("ignore")
log = logger("searchers")

# each strategy's grid: every searcher is restricted to exactly these values
GRIDS = {
    "sma_cross": {"fast": list(range(5, 50, 2)), "slow": list(range(20, 201, 4))},
    "rsi": {"window": list(range(5, 30, 2)), "lower": [10, 15, 20, 25, 30, 35, 40],
            "upper": [60, 65, 70, 75, 80, 85, 90]},
    "bollinger": {"window": list(range(10, 101, 3)),
                  "k": [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0]},
}
SEARCHERS = ["random", "genetic", "optuna:tpe", "optuna:cmaes", "optuna:nsgaii",
             "optuna:random"]
BATCH = 20


def make(kind: str, name: str, space, budget: int, seed: int):
    from quantfleet.research.genetic import GeneticSearcher
    from quantfleet.research.optuna_search import OptunaSearcher
    from quantfleet.research.searcher import RandomSearcher

    spaces = {name: space}
    if kind == "random":
        return RandomSearcher([name], budget, seed, batch=BATCH, spaces=spaces)
    if kind == "genetic":
        return GeneticSearcher([name], population=BATCH, generations=-(-budget // BATCH),
                               seed=seed, spaces=spaces)
    return OptunaSearcher([name], kind.partition(":")[2], budget, seed, batch=BATCH,
                          spaces=spaces)


def evals_to(history, target: float, budget: int) -> int | None:
    """Distinct (strategy, params) evaluated in proposal order until the first at ``target``
    (None: not within ``budget`` distinct evaluations)."""
    seen: set = set()
    for t, f in history:
        key = (t["strategy"], tuple(t["params"]))
        if key not in seen:
            seen.add(key)
            if len(seen) > budget:
                return None
        if f >= target:
            return len(seen)
    return None


def cell(xs: list[int | None], budget: int) -> str:
    got = [x for x in xs if x is not None]
    if not got:
        return f"not reached in {budget} ({len(xs)} seeds)"
    s = f"{statistics.median(got):g} [{min(got)}–{max(got)}]"
    return s + (f", {len(got)}/{len(xs)} seeds" if len(got) < len(xs) else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 seeds, budget 100, 2 strategies")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--budget", type=int, default=None)
    args = ap.parse_args()
    n_seeds = args.seeds or (2 if args.quick else 10)
    budget = args.budget or (100 if args.quick else 200)
    strategies = ["sma_cross", "bollinger"] if args.quick else list(GRIDS)
    t_start = time.time()

    from quantfleet.data import load
    from quantfleet.research.searcher import GridSearcher, run_search
    from quantfleet.strategies import get

    market = load("sp500_ohlcv")
    grid_rows, results = [], {}
    for name in strategies:
        space = get(name).space.restrict(GRIDS[name], market.n_bars)
        grid, _ = space.grid(n_bars=market.n_bars)
        res = run_search(GridSearcher({name: grid}), market, metric="sharpe")
        hist = res.state["history"]
        best = max(f for _, f in hist)
        target = best - 0.01 * abs(best)
        best_params = next(t["params"] for t, f in hist if f == best)
        n_within = sum(f >= target for _, f in hist)
        order = evals_to(hist, target, len(hist))
        grid_rows.append((name, len(grid), best, space.to_dicts([best_params])[0], target,
                          n_within, order))
        log(f"{name}: grid {len(grid)} combos, best {best:.4f}, {n_within} within 1%, "
            f"grid order reaches it at {order}")
        for kind in SEARCHERS:
            xs, cpu, distinct = [], [], []
            for seed in range(n_seeds):
                c0 = time.process_time()
                r = run_search(make(kind, name, space, budget, seed), market, metric="sharpe")
                cpu.append(time.process_time() - c0)
                xs.append(evals_to(r.state["history"], target, budget))
                distinct.append(len({(t["strategy"], tuple(t["params"]))
                                     for t, _ in r.state["history"]}))
            results[(name, kind)] = (xs, statistics.median(cpu), statistics.median(distinct))
            log(f"  {kind}: {xs} (median CPU {statistics.median(cpu):.2f} s a run)")

    took = (time.time() - t_start) / 60
    lines = [
        "## Searchers vs the grid: evaluations to within 1 % of its best "
        "(bench/searcher_bench.py)", "",
        f"- command: `.venv/bin/python bench/searcher_bench.py{' --quick' if args.quick else ''}"
        f"{f' --seeds {args.seeds}' if args.seeds else ''}"
        f"{f' --budget {args.budget}' if args.budget else ''}`; date "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; took {took:.1f} min; python "
        f"{platform.python_version()}, 2 cores (shared)",
        f"- data `load('sp500_ohlcv')` ({market.n_assets} asset, {market.n_bars:,} bars), fee 0, "
        "fitness = Sharpe over all bars through `run_search` (every searcher, the grid included, "
        "scored by the same driver); each strategy's space restricted to the grid below "
        "(`ParamSpace.restrict`), so every searcher searches exactly the grid's points",
        f"- searchers: `RandomSearcher`; `GeneticSearcher` (population {BATCH}, its defaults); "
        f"`OptunaSearcher` tpe / cmaes / nsgaii / random ({BATCH} trials a round, one study, "
        f"infeasible proposals pruned and asked again); budget **{budget} trials** a run, "
        f"seeds 0..{n_seeds - 1}",
        "- *evaluations* = distinct (strategy, params) evaluated, in proposal order, until the "
        "first one within 1 % of the grid's best (a repeat served from the cache is not counted "
        "again); cells: median [min–max] over the seeds that reached it, and how many did "
        "when not all; *grid order* = the same count walking the grid in its order; a searcher "
        "may propose a point again (a discrete grid: Optuna's samplers and the GA repeat), so "
        "a run's distinct evaluations can be fewer than its trials",
        "",
        "| strategy | grid combos | grid best Sharpe | at | within 1 % of it | grid order |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for name, n, best, params, _target, within, order in grid_rows:
        lines.append(f"| {name} | {n:,} | {best:.4f} | {params} | {within} "
                     f"combo{'s' if within != 1 else ''} | {order} |")
    lines += ["", "| searcher | " + " | ".join(strategies)
              + f" | distinct evaluations in {budget} trials (median) | median CPU s a run |",
              "| --- | " + " | ".join("---:" for _ in strategies) + " | ---: | ---: |"]
    for kind in SEARCHERS:
        cells = [cell(results[(s, kind)][0], budget) for s in strategies]
        distinct = " / ".join(f"{results[(s, kind)][2]:g}" for s in strategies)
        cpu = " / ".join(f"{results[(s, kind)][1]:.2f}" for s in strategies)
        lines.append(f"| {kind} | " + " | ".join(cells) + f" | {distinct} | {cpu} |")
    every = {s: [k for k in SEARCHERS if None not in results[(s, k)][0]] for s in strategies}
    lines += ["", f"Within 1 % on all {n_seeds} seeds within {budget} trials: " + "; ".join(
        f"{s}: {', '.join(every[s]) or 'none'}" for s in strategies) + "."]
    lines += ["", "Per seed (evaluations; '-' = not within the budget): " + "; ".join(
        f"{s} {k}: " + ", ".join("-" if x is None else str(x) for x in results[(s, k)][0])
        for s in strategies for k in SEARCHERS) + ".",
        "",
        "*Median CPU s a run* includes the backtests (the same for every searcher at equal "
        "evaluations) and the searcher's own asking and telling (Optuna's TPE and CMA-ES model "
        "fits); one process, `time.process_time`, a shared machine."]
    text = "\n".join(lines)
    print(text)
    if not args.no_doc:
        write_section(SECTION, text, DOC)
        log(f"wrote the {SECTION} section of {DOC}")


if __name__ == "__main__":
    main()
