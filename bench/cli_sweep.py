"""The CLI path against its peers: ``quantfleet sweep`` / ``backtest`` as whole processes.

What a user runs, each measurement its own fresh process (CPU seconds = the child's
``ru_utime + ru_stime``, peak RSS = its ``ru_maxrss``, both from ``os.wait4``; wall from start
to exit):

1. ``quantfleet sweep 'synthetic:gbm?bars=100000&assets=1&seed=42' --strategy sma_cross
   --grid fast=5:49:2 --grid slow=20:200:4 --no-store --json`` (994 combos, PBO on: the
   default) and the same with ``--grid fast=10 --grid slow=50`` (1 combo): marginal = the
   difference (993 combos), start-up = the 1-combo process;
2. vectorbt 1.2 on the same grid and data (``bench/peer_proc.py vectorbt``, the bench venv's
   python; ``peers.vectorbt_total_returns``: chunks of 100 combos + ``gc.collect()``), and
   on one combo, the same way;
3. backtesting.py (``bench/peer_proc.py backtesting``): one combo and a sample of combos
   timed in its process; its 994-combo process is *extrapolated* (the process + the sample's
   median per combo × the combos not run), labelled so;
4. peak RSS of the sweep at 100,000 bars × 994 combos (the runs above) and at 1,000,000 bars
   × 10,000 combos (``--grid fast=2:101:1 --grid slow=110:209:1``, PBO on);
5. ``quantfleet backtest sp500_ohlcv --strategy sma_cross --no-store --json`` with a warm numba
   cache, >= 5 runs;
6. the kernel alone, in this process: ``Strategy.run_asset`` (metrics only) and the sweep's
   job (``backtest.job.evaluate`` of ``BacktestJob(blocks=16)``) per strategy on the
   100,000-bar series: G bar × combo evaluations per CPU-second;
7. correctness: the sweep's ``--out`` Parquet (every row) against vectorbt's total returns,
   every combo, fee 0 (and 10 bps with vectorbt's exact-fee array unless ``--quick``).

Repetitions alternate the contenders (the order rotates) after one warm-up each; figures are
medians. Writes the "cli-sweep" section of docs/BENCHMARKS.md and bench/.out/cli_sweep.json.

Usage: .venv/bin/python bench/cli_sweep.py [--quick] [--reps 3] [--bench-python PATH]
       [--no-doc] [--skip-big] [--render]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from docsection import DOC, logger, write_section

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "bench"
SECTION = "cli-sweep"
BARS = 100_000
DATA = f"synthetic:gbm?bars={BARS}&assets=1&seed=42"
GRID = ["--grid", "fast=5:49:2", "--grid", "slow=20:200:4"]
ONE = ["--grid", "fast=10", "--grid", "slow=50"]
SWEEP = ["sweep", DATA, "--strategy", "sma_cross"]
TAIL = ["--no-store", "--json"]
BIG_BARS = 1_000_000
BIG_GRID = ["--grid", "fast=2:101:1", "--grid", "slow=110:209:1"]  # 100 x 100 = 10,000 combos
QUICK_BIG_GRID = ["--grid", "fast=2:101:10", "--grid", "slow=110:209:10"]  # 100 combos
BACKTEST = ["backtest", "sp500_ohlcv", "--strategy", "sma_cross", "--no-store", "--json"]
KERNEL_STRATEGIES = ("sma_cross", "ema_cross", "sma_trend", "bollinger", "donchian")
KERNEL_MAX_COMBOS = 1000
TARGETS = {"vectorbt_marginal": 150.0, "kernel_g": 1.0, "big_rss_mb": 400.0, "backtest_s": 1.0}

log = logger("cli-sweep")


def run_proc(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """One fresh process: wall, CPU (user + system of the child) and peak RSS, and its stdout."""
    with tempfile.TemporaryDirectory() as tmp, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({code}): {err.read().decode()[-2000:]}")
        text = out.read().decode()
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024.0,
            "stdout": text}


class Runner:
    def __init__(self, bench_python: Path):
        # Python's default: modules' bytecode cached in __pycache__ (a shell with
        # PYTHONDONTWRITEBYTECODE set would recompile quantfleet's modules in every process)
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.qf_env = {**base, "PYTHONPATH": str(ROOT / "src")}
        self.peer_env = {**base, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{HERE}",
                         "TQDM_DISABLE": "1"}
        self.bench_python = str(bench_python)

    def qf(self, args: list[str]) -> dict:
        r = run_proc([sys.executable, "-m", "quantfleet.cli", *args], self.qf_env)
        r["json"] = json.loads(r.pop("stdout"))
        return r

    def peer(self, args: list[str]) -> dict:
        r = run_proc([self.bench_python, str(HERE / "peer_proc.py"), *args], self.peer_env)
        r["json"] = json.loads(r.pop("stdout").strip().splitlines()[-1])
        return r


def summarize(rs: list[dict]) -> dict:
    out = {"runs": len(rs)}
    for k in ("wall_s", "cpu_s", "rss_mb"):
        v = [r[k] for r in rs]
        out[k] = statistics.median(v)
        out[k + "_min"], out[k + "_max"] = min(v), max(v)
    return out


# --- 1-3. the sweep against its peers, whole processes ----------------------------------------

QF_PER_REP = 3  # quantfleet's pair runs this many times a repetition: its marginal (~0.2 s) is
# small against the run-to-run spread of a whole process, vectorbt's (~24 s) is not


def contenders(run: Runner, reps: int, bt_sample: int) -> dict:
    jobs = {
        "qf_grid": lambda: run.qf([*SWEEP, *GRID, *TAIL]),
        "qf_one": lambda: run.qf([*SWEEP, *ONE, *TAIL]),
        "vbt_grid": lambda: run.peer(["vectorbt", "--bars", str(BARS), "--grid", "full"]),
        "vbt_one": lambda: run.peer(["vectorbt", "--bars", str(BARS), "--grid", "one"]),
        "bt": lambda: run.peer(["backtesting", "--bars", str(BARS), "--sample", str(bt_sample)]),
    }
    for k in ("qf_one", "vbt_one"):
        log(f"warm-up {k}")
        jobs[k]()
    got: dict[str, list[dict]] = {k: [] for k in jobs}
    order = list(jobs)
    for rep in range(reps):
        for k in order[rep % len(order):] + order[:rep % len(order)]:
            for _ in range(QF_PER_REP if k.startswith("qf_") else 1):
                r = jobs[k]()
                got[k].append(r)
                log(f"rep {rep + 1}/{reps} {k}: cpu {r['cpu_s']:.2f} s, wall {r['wall_s']:.2f} "
                    f"s, peak RSS {r['rss_mb']:.0f} MiB")
    res = {k: summarize(v) for k, v in got.items()}
    res["qf_grid"]["combos"] = got["qf_grid"][-1]["json"]["combos"]
    res["qf_grid"]["pbo"] = got["qf_grid"][-1]["json"]["overfit"]["pbo"]
    res["qf_one"]["combos"] = got["qf_one"][-1]["json"]["combos"]
    res["vbt_grid"]["combos"] = got["vbt_grid"][-1]["json"]["combos"]
    res["vbt_grid"]["grid_cpu_s"] = statistics.median(r["json"]["grid_cpu_s"]
                                                      for r in got["vbt_grid"])
    bt = got["bt"]
    per = statistics.median(r["json"]["per_combo_cpu_s"] for r in bt)
    n = res["qf_grid"]["combos"]
    res["bt"].update({"per_combo_cpu_s": per, "sample": bt[-1]["json"]["sample"],
                      "sample_n": bt_sample,
                      # the process ran 1 + sample combos; the grid's others at the per-combo
                      "grid_cpu_s_extrapolated": res["bt"]["cpu_s"] + (n - 1 - bt_sample) * per,
                      "marginal_cpu_s_extrapolated": (n - 1) * per})
    return res


def ratios(c: dict) -> dict:
    qf_m = c["qf_grid"]["cpu_s"] - c["qf_one"]["cpu_s"]
    vbt_m = c["vbt_grid"]["cpu_s"] - c["vbt_one"]["cpu_s"]
    bt_m = c["bt"]["marginal_cpu_s_extrapolated"]
    n = c["qf_grid"]["combos"]
    evals = (n - 1) * BARS
    return {
        "qf_marginal_cpu_s": qf_m, "vbt_marginal_cpu_s": vbt_m, "bt_marginal_cpu_s": bt_m,
        "qf_marginal_ns_per_eval": qf_m / evals * 1e9 if qf_m > 0 else None,
        "vbt_marginal_ns_per_eval": vbt_m / evals * 1e9,
        "vs_vectorbt_marginal": vbt_m / qf_m if qf_m > 0 else None,
        "vs_vectorbt_whole": c["vbt_grid"]["cpu_s"] / c["qf_grid"]["cpu_s"],
        "vs_backtesting_marginal": bt_m / qf_m if qf_m > 0 else None,
        "vs_backtesting_whole": c["bt"]["grid_cpu_s_extrapolated"] / c["qf_grid"]["cpu_s"],
        "vs_vectorbt_whole_wall": c["vbt_grid"]["wall_s"] / c["qf_grid"]["wall_s"],
    }


# --- 4-5. memory at 1M x 10k; the backtest command ----------------------------------------------

def big_sweep(run: Runner, quick: bool) -> dict:
    grid = QUICK_BIG_GRID if quick else BIG_GRID
    args = ["sweep", f"synthetic:gbm?bars={BIG_BARS}&assets=1&seed=42", "--strategy",
            "sma_cross", *grid, *TAIL]
    log(f"sweep {BIG_BARS:,} bars x {'100' if quick else '10,000'} combos")
    r = run.qf(args)
    doc = r.pop("json")
    of = doc.get("overfit") or {}
    return {**r, "args": args, "combos": doc["combos"], "pbo": of.get("pbo"),
            "pbo_note": of.get("pbo_note")}


def backtest_runs(run: Runner, n: int) -> dict:
    run.qf(BACKTEST)  # warm-up: the numba cache and the OS file cache
    rs = []
    for i in range(n):
        r = run.qf(BACKTEST)
        rs.append(r)
        log(f"backtest {i + 1}/{n}: wall {r['wall_s']:.2f} s, cpu {r['cpu_s']:.2f} s")
    return summarize(rs)


# --- 6. the kernel alone ----------------------------------------------------------------------

def kernel_throughput(reps: int, max_combos: int,
                      names: tuple[str, ...] = KERNEL_STRATEGIES) -> dict:
    from quantfleet.backtest.job import BacktestJob, evaluate
    from quantfleet.data import load
    from quantfleet.strategies import get

    market = load(DATA)
    out = {}
    for name in names:
        strat = get(name)
        if name == "sma_cross":
            params = np.array([(f, s) for f in range(5, 50, 2) for s in range(20, 201, 4)
                               if f < s], dtype=np.float64)
            what = "the 994-combo grid"
        else:
            full, _ = strat.space.grid(None, market.n_bars)
            idx = np.unique(np.linspace(0, len(full) - 1, min(max_combos, len(full)))
                            .round().astype(int))
            params = np.ascontiguousarray(full[idx])
            what = (f"{len(params)} of its {len(full)} default-grid combos (evenly spaced)"
                    if len(params) < len(full) else f"its default grid ({len(full)} combos)")
        job = BacktestJob(name, (0,), params, blocks=16)
        strat.run_asset(market, 0, params[:2])  # warm-up: the numba cache
        evaluate(market, BacktestJob(name, (0,), params[:2], blocks=16))
        t_m, t_j = [], []
        for _ in range(reps):
            t = time.process_time()
            strat.run_asset(market, 0, params)
            t_m.append(time.process_time() - t)
            t = time.process_time()
            evaluate(market, job)
            t_j.append(time.process_time() - t)
        evals = params.shape[0] * market.n_bars
        m, j = statistics.median(t_m), statistics.median(t_j)
        out[name] = {"combos": int(params.shape[0]), "bars": int(market.n_bars), "what": what,
                     "metrics_cpu_s": m, "job_cpu_s": j,
                     "metrics_g_per_core_s": evals / m / 1e9, "job_g_per_core_s": evals / j / 1e9}
        log(f"kernel {name}: {out[name]['metrics_g_per_core_s']:.2f} G/core-s metrics only, "
            f"{out[name]['job_g_per_core_s']:.2f} G/core-s sweep job (blocks=16)")
    return out


# --- 7. correctness -----------------------------------------------------------------------------

def check_vectorbt(run: Runner, fees_bps: tuple[float, ...]) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for fee in fees_bps:
        with tempfile.TemporaryDirectory() as tmp:
            pq_path, npy = Path(tmp) / "rows.parquet", Path(tmp) / "vbt.npy"
            run.qf([*SWEEP, *GRID, "--fee-bps", f"{fee:g}", "--out", str(pq_path), *TAIL])
            peer = ["vectorbt", "--bars", str(BARS), "--fee", f"{fee / 1e4:g}", "--out", str(npy)]
            run.peer(peer + (["--exact-fees"] if fee else []))
            t = pq.read_table(pq_path).to_pydict()
            ours = {(float(f), float(s)): r for f, s, r in
                    zip(t["fast"], t["slow"], t["total_return"], strict=True)}
            vbt = np.load(npy)
        theirs = {(float(f), float(s)): r for f, s, r in vbt}
        missing = sorted(set(theirs) ^ set(ours))
        keys = sorted(set(theirs) & set(ours))
        a = np.array([ours[k] for k in keys])
        b = np.array([theirs[k] for k in keys])
        rel = np.abs((1.0 + a) / (1.0 + b) - 1.0)  # scale-free: equity ratio - 1
        rows.append({"fee_bps": fee, "combos": len(keys), "unmatched": len(missing),
                     "max_rel": float(rel.max()), "max_abs": float(np.abs(a - b).max()),
                     "n_over_1e-9": int((rel > 1e-9).sum())})
        log(f"check fee {fee:g} bps: {len(keys)} combos, max |E/E_vbt - 1| {rel.max():.2e}")
    return rows


# --- the report -----------------------------------------------------------------------------------

def _f(x: float | None, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def render(meta: dict, res: dict) -> str:
    c, r = res["contenders"], res["ratios"]
    n = c["qf_grid"]["combos"]
    cmd = "quantfleet " + " ".join(f"'{a}'" if "?" in a else a for a in [*SWEEP, *GRID, *TAIL])
    lines = [
        "## The CLI path: `quantfleet sweep` and `backtest` as whole processes "
        "(bench/cli_sweep.py)",
        "",
        f"- command: `{meta['command']}`; date {meta['date']}; python {meta['python']}, "
        f"{meta['cpus']} cores (shared with other work: read the ratios and medians); "
        f"{meta['reps']} repetitions after one warm-up, the contenders alternating (order "
        f"rotates; quantfleet's two sweeps {QF_PER_REP} times a repetition, their marginal "
        "being small against a process's run-to-run spread), each run a fresh process; load "
        "average (1 min) "
        + (" → ".join(f"{x:.1f}" for x in meta["loadavg"]) + " (start → end)"
           if meta.get("loadavg") else "not recorded")
        + ": wall seconds above CPU seconds are time waiting for a core",
        f"- measured: `{cmd}` ({n} combos × 1 asset × {BARS:,} bars, serial, PBO on: the "
        "default) and the same with `--grid fast=10 --grid slow=50` (1 combo); vectorbt "
        f"{meta['vectorbt']} and backtesting.py {meta['backtesting']} in their own processes "
        "(`bench/peer_proc.py`, the same GBM series through `quantfleet.data.load`)",
        "- CPU s = the child's user + system time (`os.wait4`), the whole process: imports "
        "(bytecode cached in `__pycache__`, Python's default), data, the grid, the output; "
        "marginal = 994-combo process − 1-combo process "
        f"({n - 1} combos); start-up = the 1-combo process; ratios are of CPU medians",
        "",
    ]
    # targets
    km = min(v["metrics_g_per_core_s"] for v in res["kernel"].values()) if res["kernel"] else None
    big = res.get("big")
    bt = res["backtest"]
    chk = res["check"]
    vm = r["vs_vectorbt_marginal"]
    lines += [
        "| target | measured | |",
        "| --- | --- | --- |",
        f"| ≥ {TARGETS['vectorbt_marginal']:.0f}× vectorbt marginal throughput, 994 combos × "
        f"{BARS:,} bars, CLI | {_f(vm, '.1f')}× | "
        f"**{'met' if vm is not None and vm >= TARGETS['vectorbt_marginal'] else 'not met'}** |",
        f"| kernel ≥ {TARGETS['kernel_g']:.0f} G bar × combo evaluations per core-second, "
        f"{', '.join(KERNEL_STRATEGIES)} (metrics only) | "
        + (f"{km:.2f} G (slowest: {min(res['kernel'], key=lambda k: res['kernel'][k]['metrics_g_per_core_s'])})"
           if km is not None else "n/a")
        + f" | **{'met' if km is not None and km >= TARGETS['kernel_g'] else 'not met'}** |",
    ]
    if big is not None:
        big_mb = big["rss_mb"] * 1.048576
        full = big["combos"] >= 9_000
        lines.append(
            f"| 1,000,000 bars × 10,000 combos, PBO on, < {TARGETS['big_rss_mb']:.0f} MB peak "
            f"RSS, whole process | {big_mb:.0f} MB ({big['combos']:,} combos"
            + (f", PBO {big['pbo']:.3f}" if big["pbo"] is not None else ", PBO n/a") + ") | "
            + (f"**{'met' if big_mb < TARGETS['big_rss_mb'] and big['pbo'] is not None else 'not met'}**"
               if full else "n/a (--quick: not the 10,000-combo grid)") + " |")
    else:
        lines.append("| 1,000,000 bars × 10,000 combos, PBO on, < 400 MB peak RSS | not run "
                     "(--skip-big) | n/a |")
    lines += [
        f"| `quantfleet backtest` < {TARGETS['backtest_s']:.0f} s whole process, warm numba "
        f"cache | {bt['wall_s']:.2f} s wall median ({bt['wall_s_min']:.2f}–{bt['wall_s_max']:.2f}"
        f", {bt['runs']} runs); CPU {bt['cpu_s']:.2f} s | "
        f"**{'met' if bt['wall_s'] < TARGETS['backtest_s'] else 'not met'}** |",
        "| results agree with vectorbt to 1e-9, every combo | "
        + "; ".join(f"{x['fee_bps']:g} bps: max {x['max_rel']:.1e} over {x['combos']} combos, "
                    f"{x['n_over_1e-9']} over 1e-9" for x in chk)
        + f" | **{'met' if all(x['n_over_1e-9'] == 0 and not x['unmatched'] for x in chk) else 'not met'}** |",
        "",
        f"### Sweep, {n} combos × {BARS:,} bars, whole processes",
        "",
        "| contender | 994 combos CPU s | 1 combo (start-up) CPU s | marginal CPU s "
        "| ns / bar × combo (marginal) | 994 combos wall s | peak RSS 994 (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| quantfleet sweep | {c['qf_grid']['cpu_s']:.2f} | {c['qf_one']['cpu_s']:.2f} | "
        f"{r['qf_marginal_cpu_s']:.2f} | {_f(r['qf_marginal_ns_per_eval'])} | "
        f"{c['qf_grid']['wall_s']:.2f} | {c['qf_grid']['rss_mb']:.0f} |",
        f"| vectorbt | {c['vbt_grid']['cpu_s']:.2f} | {c['vbt_one']['cpu_s']:.2f} | "
        f"{r['vbt_marginal_cpu_s']:.2f} | {_f(r['vbt_marginal_ns_per_eval'])} | "
        f"{c['vbt_grid']['wall_s']:.2f} | {c['vbt_grid']['rss_mb']:.0f} |",
        f"| backtesting.py (*sampled*, extrapolated) | {c['bt']['grid_cpu_s_extrapolated']:,.0f} "
        f"| n/a | {r['bt_marginal_cpu_s']:,.0f} | "
        f"{r['bt_marginal_cpu_s'] / ((n - 1) * BARS) * 1e9:,.0f} | n/a | "
        f"{c['bt']['rss_mb']:.0f} ({1 + c['bt']['sample_n']} combos) |",
        "",
        f"Ratios (CPU): quantfleet vs vectorbt **{_f(vm, '.1f')}× marginal**, "
        f"{r['vs_vectorbt_whole']:.1f}× whole process ({r['vs_vectorbt_whole_wall']:.1f}× by "
        f"wall); vs backtesting.py **{_f(r['vs_backtesting_marginal'], ',.0f')}× marginal**, "
        f"{r['vs_backtesting_whole']:,.0f}× whole process (*sampled*: "
        f"{c['bt']['sample_n']} combos {c['bt']['sample']} at "
        f"{c['bt']['per_combo_cpu_s']:.2f} CPU s each, median, scaled to the grid).",
        f"Start-up beside: the 1-combo sweep process {c['qf_one']['cpu_s']:.2f} CPU s "
        f"({c['qf_one']['wall_s']:.2f} s wall) against vectorbt's {c['vbt_one']['cpu_s']:.2f} "
        f"CPU s (import, its simulator's JIT compile: vectorbt keeps no numba cache). "
        f"vectorbt's grid alone, timed in its process: {c['vbt_grid']['grid_cpu_s']:.2f} CPU s.",
        f"Min–max CPU s over the runs: quantfleet 994 {c['qf_grid']['cpu_s_min']:.2f}–"
        f"{c['qf_grid']['cpu_s_max']:.2f}, 1 combo {c['qf_one']['cpu_s_min']:.2f}–"
        f"{c['qf_one']['cpu_s_max']:.2f}; vectorbt 994 {c['vbt_grid']['cpu_s_min']:.2f}–"
        f"{c['vbt_grid']['cpu_s_max']:.2f}, 1 combo {c['vbt_one']['cpu_s_min']:.2f}–"
        f"{c['vbt_one']['cpu_s_max']:.2f}.",
        "",
        "### Peak RSS of the whole sweep process (PBO on)",
        "",
        "| sweep | combos | peak RSS (MiB) | CPU s | wall s | PBO |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        f"| {BARS:,} bars | {n} | {c['qf_grid']['rss_mb']:.0f} (max {c['qf_grid']['rss_mb_max']:.0f}) "
        f"| {c['qf_grid']['cpu_s']:.2f} | {c['qf_grid']['wall_s']:.2f} | {c['qf_grid']['pbo']:.4f} |",
    ]
    if big is not None:
        lines.append(
            f"| {BIG_BARS:,} bars (`{' '.join(big['args'][4:-2])}`) | {big['combos']:,} | "
            f"{big['rss_mb']:.0f} | {big['cpu_s']:.1f} | {big['wall_s']:.1f} | "
            + (f"{big['pbo']:.4f}" if big["pbo"] is not None else f"n/a ({big['pbo_note']})")
            + " |")
    lines += [
        "",
        "### `quantfleet backtest`, whole process, warm numba cache",
        "",
        f"`quantfleet {' '.join(BACKTEST)}`: wall median {bt['wall_s']:.2f} s (min "
        f"{bt['wall_s_min']:.2f}, max {bt['wall_s_max']:.2f}; {bt['runs']} runs after a "
        f"warm-up), CPU {bt['cpu_s']:.2f} s, peak RSS {bt['rss_mb']:.0f} MiB.",
        "",
        f"### The kernel alone ({BARS:,} bars, one asset, in one process)",
        "",
        "| strategy | combos | metrics only: CPU s | G evals / core-s | sweep job (blocks=16): "
        "CPU s | G evals / core-s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, k in res["kernel"].items():
        lines.append(f"| {name} | {k['what']} | {k['metrics_cpu_s']:.3f} | "
                     f"**{k['metrics_g_per_core_s']:.2f}** | {k['job_cpu_s']:.3f} | "
                     f"{k['job_g_per_core_s']:.2f} |")
    lines += [
        "",
        "Metrics only = `Strategy.run_asset(market, 0, params)`; sweep job = "
        "`backtest.job.evaluate(market, BacktestJob(name, (0,), params, blocks=16))`, what each "
        "chunk of `quantfleet sweep` runs (metrics and the per-block return statistics PBO "
        "needs). Medians of CPU seconds (`time.process_time`) after a warm-up; one evaluation "
        "= one bar of one combo.",
        "",
        "### Agreement with vectorbt (the CLI's rows)",
        "",
        "| fee | combos | max abs diff | max \\|E/E_vbt − 1\\| | combos over 1e-9 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for x in chk:
        lines.append(f"| {x['fee_bps']:g} bps | {x['combos']} | {x['max_abs']:.1e} | "
                     f"{x['max_rel']:.1e} | {x['n_over_1e-9']} |")
    lines += ["", "Every row of `quantfleet sweep ... --out rows.parquet` against vectorbt's "
              "total return of the same (fast, slow); at 10 bps vectorbt gets the per-bar fee "
              "array that makes its fee convention quantfleet's (`peers.vbt_exact_fees`)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition, 3 backtest runs, 100 combos at 1M bars, fee 0 check only")
    ap.add_argument("--reps", type=int, help="repetitions (default 3; --quick 1)")
    ap.add_argument("--bench-python", type=Path, default=HERE / ".venv" / "bin" / "python",
                    help="python with vectorbt and backtesting (bench/setup.sh)")
    ap.add_argument("--skip-big", action="store_true", help="no 1,000,000-bar sweep")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite the doc section from bench/.out/cli_sweep.json")
    args = ap.parse_args()
    out = HERE / ".out"
    if args.render:
        saved = json.loads((out / "cli_sweep.json").read_text())
        write_section(SECTION, render(saved["meta"], saved["results"]))
        log(f"wrote {DOC}")
        return
    load0 = os.getloadavg()[0]
    reps = args.reps or (1 if args.quick else 3)
    run = Runner(args.bench_python)
    t0 = time.time()
    res: dict = {}
    res["contenders"] = contenders(run, reps, bt_sample=2)
    res["ratios"] = ratios(res["contenders"])
    res["backtest"] = backtest_runs(run, 3 if args.quick else 7)
    res["check"] = check_vectorbt(run, (0.0,) if args.quick else (0.0, 10.0))
    res["big"] = None if args.skip_big else big_sweep(run, args.quick)
    res["kernel"] = kernel_throughput(1 if args.quick else 3,
                                      200 if args.quick else KERNEL_MAX_COMBOS)
    versions = json.loads(subprocess.run(
        [str(args.bench_python), "-c", "import json, vectorbt, backtesting; print(json.dumps("
         "[vectorbt.__version__, backtesting.__version__]))"],
        capture_output=True, text=True, env=run.peer_env, check=True).stdout)
    meta = {"command": ".venv/bin/python bench/cli_sweep.py" + (" --quick" if args.quick else "")
                       + (f" --reps {args.reps}" if args.reps else "")
                       + (" --skip-big" if args.skip_big else ""),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "python": platform.python_version(), "cpus": os.cpu_count(), "reps": reps,
            "vectorbt": versions[0], "backtesting": versions[1],
            "minutes": (time.time() - t0) / 60.0, "loadavg": [load0, os.getloadavg()[0]]}
    text = render(meta, res)
    print(text)
    out.mkdir(exist_ok=True)
    (out / "cli_sweep.json").write_text(json.dumps({"meta": meta, "results": res}, indent=1))
    if not args.no_doc:
        write_section(SECTION, text)
        log(f"wrote {DOC}")


if __name__ == "__main__":
    main()
