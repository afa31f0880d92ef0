"""Tournament scaling: the same tournament serial vs a process pool (2) vs local Ray (2 CPUs).

Runs ``quantfleet.research.tournament.tournament`` on sp500 (20 stocks x 8,313 daily bars) with
every strategy that needs only close prices, alternating the three executors within each
repetition (order rotates) after one warm-up run each, and reports medians: speed-up and
parallel efficiency against serial, where the time goes (per-task overhead from the spans,
worker imbalance, driver CPU), a no-op map's cost per task, and the first-task latency of a
fresh embedded Ray (and a fresh process pool) in a subprocess with the numba cache warm.
Checks that the three result tables are identical. Writes its section of docs/BENCHMARKS.md
between ``<!-- tournament:start -->`` and ``<!-- tournament:end -->``.

Usage: .venv/bin/python bench/tournament_bench.py [--quick] [--reps N] [--no-doc]
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import operator  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

from docsection import DOC, logger, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTION = "tournament"
warnings.filterwarnings("ignore")

# (label, n_windows, max_combos, repetitions): the ~10,000-backtest headline (cheap, so more
# repetitions: a run or two that the shared host slows then moves the median less), and a 7x
# larger one that shows how the ratios move when per-task work grows
CONFIGS = [("~10k", 3, 9, 9), ("~70k", 3, 64, 5)]


log = logger("tournament")


def close_only_strategies(market) -> list[str]:
    from quantfleet.strategies.registry import get, names

    out = []
    for n in names():
        try:
            get(n).check_market(market)
        except Exception:  # noqa: BLE001 - needs high/low/volume/funding, which sp500 lacks
            continue
        out.append(n)
    return out


def make(kind: str):
    from quantfleet.compute import make_executor

    return make_executor(kind, workers=None if kind == "serial" else 2)


def run_once(ex, market, strategies, n_windows, max_combos) -> dict:
    from quantfleet.research.tournament import tournament

    n0 = len(ex.spans.spans)
    t, c = time.perf_counter(), time.process_time()
    res = tournament(market, strategies, n_windows=n_windows, max_combos=max_combos, executor=ex)
    total = time.perf_counter() - t
    drv_cpu = time.process_time() - c
    spans = ex.spans.spans[n0:]
    summ = ex.summary
    busy: dict[str, float] = {}
    for s in spans:
        busy[s.worker] = busy.get(s.worker, 0.0) + s.duration
    workers = max(1, int(ex.workers))
    sum_busy = sum(busy.values())
    return {
        "total_s": total, "map_s": summ.wall_s, "loop_s": res.wall_s, "driver_cpu_s": drv_cpu,
        "tasks": summ.tasks, "chunk_size": summ.chunk_size, "items": summ.items,
        "busy_s": sum_busy, "worker_busy": sorted(busy.values(), reverse=True),
        "overhead_per_task_ms": 1e3 * (summ.wall_s * workers - sum_busy) / max(summ.tasks, 1),
        "n_backtests": res.n_backtests, "table": res.table, "leaderboard": res.leaderboard,
        "cpu_share": sum(s.cpu_s for s in spans) / max(sum_busy, 1e-9),
        "loadavg": os.getloadavg()[0],
    }


def per_strategy_cost(market, strategies, n_windows, max_combos) -> dict[str, float]:
    """Serial map seconds per backtest of each strategy alone (after one warm call)."""
    from quantfleet.research.tournament import tournament

    out = {}
    for s in strategies:
        r = tournament(market, [s], n_windows=n_windows, max_combos=max_combos)
        out[s] = 1e6 * r.wall_s / r.n_backtests
    return out


def noop_cost(ex, n: int = 1000) -> dict:
    """Wall per task of a map whose fn does nothing (``operator.add(0, x)``), chunk_size=1."""
    list(ex.map(operator.add, list(range(50)), shared=0, chunk_size=1))  # pool / refs warm
    t = time.perf_counter()
    list(ex.map(operator.add, list(range(n)), shared=0, chunk_size=1))
    w = time.perf_counter() - t
    return {"ms_per_task": 1e3 * w / n, "tasks": n}


def frame_of(table):
    df = table.to_pandas()
    return df.sort_values(["strategy", "asset", "window", "combo"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------ fresh-worker probe (subprocess)

def probe_fresh(kind: str) -> dict:
    """In this (fresh) process: start an executor, submit one tournament item, time the result."""
    from quantfleet.backtest import JobBatch, Terms, evaluate_jobs
    from quantfleet.data import load
    from quantfleet.research.tournament import coarse_grid, pair_jobs
    from quantfleet.research.windows import walk_forward
    from quantfleet.strategies.registry import get

    market = load("sp500")
    s = get("sma_cross")
    params = coarse_grid(s.space, 9)
    w = walk_forward(market.timestamps, None, None, 3, False, start=0)[0]
    item = JobBatch(pair_jobs("sma_cross", 0, params, [w],
                              Terms(ppy=market.periods_per_year), "sharpe"))
    t0 = time.perf_counter()
    if kind == "ray":
        from quantfleet.compute.ray import RayExecutor

        ex = RayExecutor(workers=2)
    else:
        from quantfleet.compute import ProcessExecutor

        ex = ProcessExecutor(workers=2)
    t1 = time.perf_counter()
    next(iter(ex.map(evaluate_jobs, [item], shared=market, chunk_size=1)))
    t2 = time.perf_counter()
    first_span = ex.spans.spans[-1].duration
    next(iter(ex.map(evaluate_jobs, [item], shared=market, chunk_size=1)))
    t3 = time.perf_counter()
    warm_span = ex.spans.spans[-1].duration
    ex.close()
    t4 = time.perf_counter()
    return {"start_s": t1 - t0, "first_result_s": t2 - t1, "first_task_compute_s": first_span,
            "second_result_s": t3 - t2, "second_task_compute_s": warm_span, "close_s": t4 - t3}


def fresh_latency(kind: str, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        p = subprocess.run([sys.executable, __file__, "--probe-fresh", kind], capture_output=True,
                           text=True, timeout=180, env=os.environ.copy())
        if p.returncode != 0:
            log(f"fresh {kind} probe failed: {p.stderr.strip().splitlines()[-1:]}")
            continue
        out.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return out


# ------------------------------------------------------------------ machine ceiling

def _spin(n: int) -> float:
    """A CPU-bound pure-Python loop that touches no memory to speak of; its seconds."""
    t = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - t


def machine_ceiling(reps: int = 5, n: int = 10_000_000) -> dict:
    """What this machine gives two independent CPU-bound processes, with no framework at all.

    Alternates: the loop alone in one process, then the same loop in two processes at once;
    the ceiling for any 2-worker speed-up is ``2 x alone / slower of the pair``.
    """
    import multiprocessing as mp

    alone, pair = [], []
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [1000, 1000])
        for _ in range(reps):
            alone.append(pool.apply(_spin, (n,)))
            pair.append(max(pool.map(_spin, [n, n], chunksize=1)))
    return {"alone_s": alone, "pair_s": pair,
            "ceiling": 2 * statistics.median(alone) / statistics.median(pair)}


_WL: dict = {}


def _wl_init() -> None:
    from quantfleet.data import load

    market = load("sp500")
    _WL.update(market=market, strategies=close_only_strategies(market))


def _wl_run(cfg: tuple[int, int]) -> float:
    """The serial tournament in this (pool) process; its seconds."""
    from quantfleet.research.tournament import tournament

    t = time.perf_counter()
    tournament(_WL["market"], _WL["strategies"], n_windows=cfg[0], max_combos=cfg[1])
    return time.perf_counter() - t


def workload_pair(pool, n_windows: int, max_combos: int) -> float:
    """Two copies of the serial tournament at once, one per process, no framework: seconds
    until both finished. Measured in every repetition next to the executors, so
    ``2 x serial / pair`` is what this machine gave two workers on this work at that time."""
    return max(pool.map(_wl_run, [(n_windows, max_combos)] * 2, chunksize=1))


# ------------------------------------------------------------------ report

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def render(meta, results, noop, fresh, ceiling=None) -> str:
    L = []
    L.append("## Tournament: serial vs processes vs Ray (bench/tournament_bench.py)\n")
    L.append(f"- command: `{meta['command']}`; date {meta['date']}; took {meta['took_min']:.1f} min")
    L.append(f"- machine: {meta['cpus']} cores, shared with other work (read ratios and medians); "
             f"python {meta['python']}, ray {meta['ray']}")
    L.append(f"- work: `tournament(load('sp500'), strategies, n_windows=3, max_combos=K, executor=...)`, "
             f"{len(meta['strategies'])} strategies that need only close "
             f"({', '.join(meta['strategies'])}) x 20 stocks x 3 walk-forward windows; one task item = "
             f"(strategy, stock) over the 3 windows, every combo in and out of sample, plus that "
             f"pair's result rows, leaderboard row and PBO/DSR (`pair_jobs` combined by `pair_summary`, "
             f"mapped as `evaluate_jobs`)")
    L.append("- executors: `make_executor('serial')`, `make_executor('processes', workers=2)`, "
             "`make_executor('ray', workers=2)` (embedded local Ray, 2 CPUs), the tournament's "
             "default chunking (items asset by asset cycling through the strategies, adaptive "
             "chunks of ~1 s cut as the map runs, shorter at the end); each warmed up by one untimed run, then "
             f"repetitions ({meta['reps']}) alternating the three (order rotates); medians\n")
    L.append("| size | backtests | items | executor | tournament() wall s | speed-up | efficiency "
             "| map phase s | map speed-up | tasks (largest chunk) | overhead / task | worker busy s (max/min) "
             "| driver CPU s |")
    L.append("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r in results.items():
        ser = r["serial"]
        for kind in ("serial", "processes", "ray"):
            x = r[kind]
            sp = med(ser["total_s"]) / med(x["total_s"])
            msp = med(ser["map_s"]) / med(x["map_s"])
            wk = 1 if kind == "serial" else 2
            wb = x["worker_busy_last"]
            L.append(f"| {label} | {r['n_backtests']:,} | {r['items']} | {kind} | {med(x['total_s']):.2f} "
                     f"| **{sp:.2f}x** | {sp / wk:.0%} | {med(x['map_s']):.2f} | {msp:.2f}x "
                     f"| {x['tasks']} ({x['chunk_size']}) | {med(x['overhead_ms']):.1f} ms "
                     f"| {max(wb):.2f} / {min(wb):.2f} | {med(x['driver_cpu_s']):.2f} |")
    L.append("")
    L.append("Runs (tournament() wall s, in order): " + "; ".join(
        f"{label} {k}: " + ", ".join(f"{v:.2f}" for v in r[k]["total_s"])
        for label, r in results.items() for k in ("serial", "processes", "ray")) + ".\n")
    L.append("*Speed-up* = serial median / executor median of the whole `tournament()` call "
             "(map, result tables, leaderboard, overfitting statistics); *map phase* = "
             "`executor.summary.wall_s`. *Overhead / task* = (map wall x workers - sum of the "
             "tasks' worker-measured durations) / tasks: dispatch, result transfer, the probe's "
             "idle worker and end-of-map imbalance, per task. *Worker busy* = sum of span "
             "durations per worker in the last repetition. *Driver CPU* = `process_time` of the "
             "calling process over the call (it shares the 2 cores with both workers).\n")
    for label, r in results.items():
        eq = r["identical"]
        L.append(f"Result tables ({label}, sorted by strategy, asset, window, combo): "
                 + ", ".join(f"{k} vs serial **{'identical' if v else 'DIFFERENT'}**"
                             for k, v in eq.items()) + ".")
    L.append("")
    first = list(results)[0]
    ps = results[first].get("per_strategy_us", {})
    L.append(f"Serial cost per backtest by strategy ({first}, map phase / backtests, one run each): "
             + ", ".join(f"{k} {v:.0f} µs" for k, v in sorted(ps.items(), key=lambda kv: -kv[1]))
             + (f": items differ ~{max(ps.values()) / min(ps.values()):.0f}x in cost" if ps else "")
             + "; items go asset by asset cycling through the strategies, so equal chunks "
             "cost about the same.\n")
    L.append("First (warm-up) run of each executor, untimed above: " + "; ".join(
        f"{label} {k} {r[k]['warmup']['total_s']:.1f} s ({r[k]['warmup']['tasks']} tasks of "
        f"{r[k]['warmup']['chunk_size']})" for label, r in results.items()
        for k in ("serial", "processes", "ray")) + ". Without `chunk_size`/`item_cost_s` the map "
             "sizes chunks from a probe (item 0 alone); on a cold worker (or the driver, serial) the "
             "probe includes loading the numba caches (~0.5-1.5 s), so the cost estimate is 100-1000x "
             "too high and the whole first map runs as 1-item tasks.\n")
    L.append("Machine contention during the timed runs: 1-min load average "
             + ", ".join(f"{label} {med(r['serial']['loadavg'] + r['processes']['loadavg'] + r['ray']['loadavg']):.1f}"
                         for label, r in results.items())
             + " (this benchmark alone would be ~2); task CPU / task wall in the workers (1.0 = the "
             "worker had its core to itself): " + "; ".join(
                 f"{label} " + ", ".join(f"{k} {med(r[k]['cpu_share']):.2f}" for k in ("serial", "processes", "ray"))
                 for label, r in results.items()) + ".\n")
    if ceiling:
        L.append("Machine ceiling (no framework): a CPU-bound pure-Python loop in one process vs "
                 "the same loop in two processes at once, alternating, before and after the "
                 f"runs above, median of {len(ceiling['alone_s'])}: alone {med(ceiling['alone_s']):.2f} s, pair (slower "
                 f"of the two) {med(ceiling['pair_s']):.2f} s: two workers can give at most "
                 f"**{ceiling['ceiling']:.2f}x** on this machine at the time of the run (the two "
                 "vCPUs share a physical host with other work).\n")
    wl = {k: r for k, r in results.items() if r.get("pair_s")}
    if wl:
        L.append("Workload ceiling (no framework), measured in every repetition next to the "
                 "executors: the same tournament serially in two processes at once; "
                 "`2 x serial / pair` is what the machine gave two workers on this work at that "
                 "moment, and `pair / (2 x ray)` is the share of it Ray reached (host noise "
                 "cancels in the ratio): " + "; ".join(
                     f"{k} pair median {med(r['pair_s']):.2f} s, ceiling "
                     f"**{med([2 * a / b for a, b in zip(r['serial']['total_s'], r['pair_s'], strict=True)]):.2f}x**, "
                     f"Ray **{med([b / (2 * c) for b, c in zip(r['pair_s'], r['ray']['total_s'], strict=True)]):.0%}** "
                     f"of it, processes {med([b / (2 * c) for b, c in zip(r['pair_s'], r['processes']['total_s'], strict=True)]):.0%}"
                     for k, r in wl.items()) + ".\n")
    L.append("No-op map (`operator.add(0, x)` over 1,000 items, `chunk_size=1`, after a warm-up map): "
             + ", ".join(f"{k} {v['ms_per_task']:.2f} ms/task" for k, v in noop.items()) + ".\n")
    for kind, runs in fresh.items():
        if not runs:
            L.append(f"Fresh {kind}: probe failed (see stderr).")
            continue
        L.append(f"Fresh {kind} in a new process (numba cache warm), median of {len(runs)}: "
                 f"executor start {med([x['start_s'] for x in runs]):.2f} s; submit of one tournament "
                 f"item (sma_cross, 19 backtests) to its result **{med([x['first_result_s'] for x in runs]):.2f} s**, "
                 f"of which the task itself {med([x['first_task_compute_s'] for x in runs]):.3f} s; "
                 f"the same item again: {med([x['second_result_s'] for x in runs]) * 1e3:.0f} ms "
                 f"(task {med([x['second_task_compute_s'] for x in runs]) * 1e3:.1f} ms); close "
                 f"{med([x['close_s'] for x in runs]):.2f} s.")
    L.append("(Processes: the second map's task may land on the other, still cold worker, which "
             "loads the numba caches again: each spawned worker pays it once.)")
    L.append("")
    L.append("<!-- tournament:analysis -->")
    L.append(meta.get("analysis", "").rstrip())
    return "\n".join(L) + "\n"


def analysis(results, ceiling=None) -> str:
    """Goal check and what limits it, worded from the numbers."""
    out = []
    for label, r in results.items():
        ser, ray = r["serial"], r["ray"]
        sp = med(ser["total_s"]) / med(ray["total_s"])
        msp = med(ser["map_s"]) / med(ray["map_s"])
        post = med(ser["total_s"]) - med(ser["map_s"])
        bound = med(ser["total_s"]) / (post + med(ser["map_s"]) / 2)
        drv = med([t - m for t, m in zip(ray["total_s"], ray["map_s"], strict=True)])
        verdict = "met" if sp >= 1.8 else "**not met**"
        if r.get("pair_s"):
            cel = med([2 * a / b for a, b in zip(ser["total_s"], r["pair_s"], strict=True)])
            share = med([b / (2 * c) for b, c in zip(r["pair_s"], ray["total_s"], strict=True)])
            verdict += (f" (two independent serial copies of this tournament got {cel:.2f}x in "
                        f"the same repetitions; Ray reached {share:.0%} of that)")
        out.append(
            f"- Goal >= 1.8x for Ray on 2 cores, {label}: {sp:.2f}x end to end, {msp:.2f}x for the "
            f"map phase: {verdict}. What bounds it: `tournament()` spends {post:.2f} s of its "
            f"{med(ser['total_s']):.2f} s serial time outside the map (concatenating the tasks' "
            f"rows into Arrow tables, the returns frame), which stays in the driver ({drv:.2f} s with Ray), so even "
            f"a perfect 2x map gives at most {bound:.2f}x (Amdahl); the map itself has "
            f"{r['ray']['tasks']} tasks of {r['ray']['chunk_size']} items whose costs differ "
            f"(worker busy {max(ray['worker_busy_last']):.2f} vs {min(ray['worker_busy_last']):.2f} s; "
            f"summed, median over the runs, {med(ray['busy_s']):.2f} s against "
            f"{med(ser['busy_s']):.2f} s for the same work serially: the two workers computing at "
            f"once run {med(ray['busy_s']) / med(ser['busy_s']) - 1:+.0%} slower per item"
            + (f"; the machine itself gives two plain CPU-bound processes at most "
               f"{ceiling['ceiling']:.2f}x" if ceiling else "") + "), "
            f"Ray's per-task overhead (no-op) and the driver's own CPU "
            f"({med(ray['driver_cpu_s']):.2f} s) compete with both workers for 2 cores, and other "
            f"work on the machine took CPU from the workers (task CPU/wall "
            f"{med(ray['cpu_share']):.2f}).")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="~10k size only, 2 reps, 1 fresh probe")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--probe-fresh", choices=["ray", "processes"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe_fresh:
        print(json.dumps(probe_fresh(args.probe_fresh)))
        return
    t_all = time.perf_counter()
    configs = CONFIGS[:1] if args.quick else CONFIGS
    configs = [(label, nw, mc, args.reps or (2 if args.quick else r)) for label, nw, mc, r in configs]

    import numpy as np
    import ray

    from quantfleet.data import load

    market = load("sp500")
    strategies = close_only_strategies(market)
    log(f"strategies: {strategies}")
    kinds = ["serial", "processes", "ray"]
    before = machine_ceiling(2 if args.quick else 3)  # measured again at the end
    log("starting executors")
    exs = {k: make(k) for k in kinds}
    import multiprocessing as mp

    wl_pool = mp.get_context("spawn").Pool(2, initializer=_wl_init)
    results: dict[str, dict] = {}
    noop: dict[str, dict] = {}
    try:
        for label, nw, mc, reps in configs:
            acc = {k: {"total_s": [], "map_s": [], "overhead_ms": [], "driver_cpu_s": [], "busy_s": []}
                   for k in kinds}
            last: dict[str, dict] = {}
            warm: dict[str, dict] = {}
            pairs: list[float] = []
            workload_pair(wl_pool, nw, mc)  # warm: numba caches in both pool processes
            for k in kinds:  # warm-up: pool start, shared put, numba cache loads in workers
                w = run_once(exs[k], market, strategies, nw, mc)
                warm[k] = {"total_s": w["total_s"], "tasks": w["tasks"], "chunk_size": w["chunk_size"]}
                log(f"{label} warm-up {k}: {w['total_s']:.2f} s, {w['n_backtests']} backtests, "
                    f"{w['tasks']} tasks of {w['chunk_size']}")
            for rep in range(reps):
                order = kinds[rep % 3:] + kinds[:rep % 3]
                for k in order:
                    x = run_once(exs[k], market, strategies, nw, mc)
                    for f in ("total_s", "map_s", "driver_cpu_s", "busy_s"):
                        acc[k][f].append(x[f])
                    acc[k]["overhead_ms"].append(x["overhead_per_task_ms"])
                    acc[k].setdefault("loadavg", []).append(x["loadavg"])
                    acc[k].setdefault("cpu_share", []).append(x["cpu_share"])
                    last[k] = x
                    log(f"{label} rep {rep} {k}: {x['total_s']:.2f} s (map {x['map_s']:.2f} s, "
                        f"{x['tasks']} tasks of {x['chunk_size']}, busy {x['worker_busy']})")
                pairs.append(workload_pair(wl_pool, nw, mc))
                log(f"{label} rep {rep} two serial copies at once: {pairs[-1]:.2f} s")
            ref = frame_of(last["serial"]["table"])
            identical = {}
            for k in ("processes", "ray"):
                df = frame_of(last[k]["table"])
                identical[k] = bool(ref.equals(df))
                if not identical[k]:
                    num = ref.select_dtypes("number").to_numpy()
                    oth = df.select_dtypes("number").to_numpy()
                    log(f"{k} differs: max abs diff {np.nanmax(np.abs(num - oth)) if num.shape == oth.shape else 'shape'}")
            r = {"n_backtests": last["serial"]["n_backtests"], "items": last["serial"]["items"],
                 "identical": identical}
            for k in kinds:
                r[k] = {**acc[k], "tasks": last[k]["tasks"], "chunk_size": last[k]["chunk_size"],
                        "worker_busy_last": last[k]["worker_busy"],
                        "warmup": warm[k]}
            results[label] = r
            r["pair_s"] = pairs
            r["reps"] = reps
        results[configs[0][0]]["per_strategy_us"] = per_strategy_cost(market, strategies, *configs[0][1:3])
        for k in kinds:
            noop[k] = noop_cost(exs[k])
            log(f"no-op {k}: {noop[k]['ms_per_task']:.3f} ms/task")
    finally:
        for ex in exs.values():
            ex.close()
        wl_pool.terminate()
    after = machine_ceiling(2 if args.quick else 3)
    alone, pair = before["alone_s"] + after["alone_s"], before["pair_s"] + after["pair_s"]
    ceiling = {"alone_s": alone, "pair_s": pair,
               "ceiling": 2 * statistics.median(alone) / statistics.median(pair)}
    log(f"machine ceiling: {ceiling}")
    n_probe = 1 if args.quick else 3
    fresh = {k: fresh_latency(k, n_probe) for k in ("ray", "processes")}
    log(f"fresh: {fresh}")
    meta = {
        "command": ".venv/bin/python bench/tournament_bench.py" + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
        "python": platform.python_version(), "ray": ray.__version__,
        "reps": ", ".join(f"{label} {r}" for label, _, _, r in configs),
        "strategies": strategies, "took_min": (time.perf_counter() - t_all) / 60,
        "analysis": analysis(results),
    }
    meta["analysis"] = analysis(results, ceiling)
    text = render(meta, results, noop, fresh, ceiling)
    print(text)
    out = ROOT / "bench" / ".out"
    out.mkdir(exist_ok=True)
    slim = results
    (out / "tournament_bench.json").write_text(json.dumps(
        {"meta": meta, "results": slim, "noop": noop, "fresh": fresh, "ceiling": ceiling},
        indent=1, default=str))
    if not args.no_doc:
        write_section(SECTION, text)
        log(f"wrote {DOC}")


if __name__ == "__main__":
    main()
