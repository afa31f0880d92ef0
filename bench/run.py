"""`make bench`: quantfleet's SMA-crossover grid against vectorbt and backtesting.py.

Measures CPU-time throughput (backtests per CPU-second, medians over alternating repetitions
after a warm-up), checks total returns against both peers, measures peak RSS and the first
backtest of a fresh process in subprocesses, times kernel prototypes (bench/proto_kernels.py),
and regenerates docs/BENCHMARKS.md. Raw figures go to bench/.out/last_run.json.

Usage: bench/.venv/bin/python bench/run.py [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar (before tqdm import)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402
import series  # noqa: E402

FEES = (0.0, 0.001)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cpu(fn):
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def wall_cpu(fn):
    w, t = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - t, out


def sample_idx(n: int, k: int) -> np.ndarray:
    return np.linspace(0, n - 1, k + 2)[1:-1].round().astype(int)


def rel_equity_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|E_a / E_b - 1| with E = 1 + total_return: scale-free, so long GBM paths compare too."""
    return np.abs((1.0 + a) / (1.0 + b) - 1.0)


# --- 1. throughput --------------------------------------------------------------------------

def first_calls(s, combos) -> dict:
    """First call of each tool in this process (numba cache loads / peer JIT compiles).
    quantfleet's ``compiled``: how many numba functions its first call compiled (numba's
    "numba:compile" event fires only on a cache miss): 0 when every kernel came from the
    cache."""
    from numba.core import event

    out = {}
    with event.install_recorder("numba:compile") as rec:
        w, c, _ = wall_cpu(lambda: peers.quantfleet_total_returns(s.market, combos, 0.0))
    compiled = sum(1 for _, e in rec.buffer if e.is_start)
    out["quantfleet"] = {"wall_s": w, "cpu_s": c, "what": f"{len(combos)} combos",
                         "compiled": compiled}
    w, c, _ = wall_cpu(lambda: peers.vectorbt_total_returns(s.frame["Close"], combos, 0.0))
    out["vectorbt"] = {"wall_s": w, "cpu_s": c, "what": f"{len(combos)} combos"}
    w, c, _ = wall_cpu(lambda: peers.backtesting_total_returns(s.frame, combos[:1], 0.0))
    out["backtesting"] = {"wall_s": w, "cpu_s": c, "what": "1 combo"}
    return out


def throughput(s, combos, reps: int, bt_sample: int, vbt_chunk: int | None) -> dict:
    n = len(combos)
    idx = sample_idx(n, bt_sample)
    rows = {}
    for fee in FEES:
        times = {"quantfleet": [], "vectorbt": [], "backtesting": []}
        results = {}
        runners = {
            "quantfleet": lambda fee=fee: peers.quantfleet_total_returns(s.market, combos, fee),
            "vectorbt": lambda fee=fee: peers.vectorbt_total_returns(
                s.frame["Close"], combos, fee, chunk=vbt_chunk),
            "backtesting": lambda fee=fee: peers.backtesting_total_returns(
                s.frame, combos[idx], fee),
        }
        order = list(runners)
        for rep in range(reps):
            for name in order[rep % 3:] + order[:rep % 3]:  # rotate who goes first
                t, res = cpu(runners[name])
                times[name].append(t)
                results[name] = res
            log(f"  {s.name} fee {fee * 1e4:g} bps rep {rep + 1}/{reps}: "
                + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()))
        med = {k: statistics.median(v) for k, v in times.items()}
        bt_full = med["backtesting"] / len(idx) * n  # extrapolated to the whole grid
        row = {
            "dataset": s.name, "label": s.label, "bars": s.market.n_bars, "combos": n,
            "fee_bps": fee * 1e4, "reps": reps,
            "quantfleet_s": med["quantfleet"], "vectorbt_s": med["vectorbt"],
            "backtesting_sample_s": med["backtesting"], "backtesting_sample_n": int(len(idx)),
            "backtesting_s_extrapolated": bt_full,
            "quantfleet_bt_per_s": n / med["quantfleet"],
            "vectorbt_bt_per_s": n / med["vectorbt"],
            "backtesting_bt_per_s": len(idx) / med["backtesting"],
            "ratio_vs_vectorbt": med["vectorbt"] / med["quantfleet"],
            "ratio_vs_backtesting": bt_full / med["quantfleet"],
            "vectorbt_chunk": vbt_chunk, "all_times": times,
        }
        rows[fee] = (row, results, idx)
    return rows


def vectorbt_breakdown(s, combos) -> dict:
    """Where vectorbt's time goes: indicators + signals vs the from_signals simulation."""
    import vectorbt as vbt

    close = s.frame["Close"]
    t_ind, (fast, slow) = cpu(lambda: (
        vbt.MA.run(close, window=combos[:, 0].astype(int).tolist(), short_name="fast"),
        vbt.MA.run(close, window=combos[:, 1].astype(int).tolist(), short_name="slow")))
    t_sig, ent = cpu(lambda: fast.ma_above(slow))
    ex = ~ent
    t_sim, pf = cpu(lambda: vbt.Portfolio.from_signals(close, ent, ex, fees=0.001, freq="1D"))
    t_ret, _ = cpu(lambda: pf.total_return())
    return {"indicators_s": t_ind, "signals_s": t_sig, "from_signals_s": t_sim,
            "total_return_s": t_ret}


# --- 2. correctness -------------------------------------------------------------------------

def check_vectorbt(s, combos, fee0_ours, fee0_vbt, fee_ours, vbt_chunk) -> dict:
    exact = peers.vectorbt_total_returns(s.frame["Close"], combos, FEES[1], chunk=vbt_chunk,
                                         exact_fees=True)
    flat = peers.vectorbt_total_returns(s.frame["Close"], combos, FEES[1], chunk=vbt_chunk)
    d0 = rel_equity_diff(fee0_ours, fee0_vbt)
    d1 = rel_equity_diff(fee_ours, exact)
    d_flat = rel_equity_diff(fee_ours, flat)
    return {
        "dataset": s.name, "combos": int(len(combos)),
        "fee0_max_rel": float(d0.max()), "fee0_max_abs": float(np.abs(fee0_ours - fee0_vbt).max()),
        "fee0_n_over_1e-9": int((d0 > 1e-9).sum()),
        "fee10_exact_max_rel": float(d1.max()),
        "fee10_exact_max_abs": float(np.abs(fee_ours - exact).max()),
        "fee10_exact_n_over_1e-9": int((d1 > 1e-9).sum()),
        "fee10_flat_max_rel": float(d_flat.max()),
    }


def check_backtesting(s, combos, k: int) -> list[dict]:
    """A few combos against backtesting.py, raw and with its one-bar-later start aligned."""
    from quantfleet.strategies import get

    st = get("sma_cross")
    out = []
    for i in sample_idx(len(combos), k):
        p = combos[i:i + 1]
        slow = int(p[0, 1])
        for fee in FEES:
            bt = float(peers.backtesting_total_returns(s.frame, p, fee)[0])
            ours = float(st.run_asset(s.market, 0, p, fee_rate=fee)[0][0, 0])
            # backtesting.py calls next() first at bar `slow` (one bar after SMA_slow is valid):
            # counting from that bar (start=slow; bars before only warm up) is its timing.
            aligned = float(st.run_asset(s.market, 0, p, fee_rate=fee, start=slow)[0][0, 0])
            n_entries = float(st.run_asset(s.market, 0, p, fee_rate=fee, start=slow)[0][0, 6])
            out.append({"dataset": s.name, "fast": int(p[0, 0]), "slow": slow, "fee_bps": fee * 1e4,
                        "backtesting": bt, "quantfleet": ours, "quantfleet_aligned": aligned,
                        "rel_raw": float(rel_equity_diff(np.array(ours), np.array(bt))),
                        "rel_aligned": float(rel_equity_diff(np.array(aligned), np.array(bt))),
                        "entries": n_entries})
    return out


# --- 3/4. fresh processes -------------------------------------------------------------------

def probe(*args: str) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "probes.py"), *args]
    w = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = time.perf_counter() - w
    return out


def first_backtest(s, n: int = 5) -> dict:
    with tempfile.TemporaryDirectory() as d:
        npy = os.path.join(d, "close.npy")
        np.save(npy, s.market.close[0])
        probe("first", npy)  # make sure the numba cache is warm (another engineer may edit src/)
        runs = [probe("first", npy) for _ in range(n)]
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    return {"runs": runs, "import_s": med("import_s"), "first_backtest_s": med("first_backtest_s"),
            "process_wall_s": med("process_wall_s")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    args = ap.parse_args()
    started = time.time()
    reps_small, reps_big = (2, 1) if args.quick else (5, 3)

    combos = series.sma_grid()
    sp = series.sp500()
    gbm = series.gbm()
    log(f"data: {sp.label} from {sp.source}; {gbm.label} from {gbm.source}; {len(combos)} combos")

    log("first calls (warm-up) on sp500")
    firsts = first_calls(sp, combos)
    log("  " + ", ".join(f"{k} {v['wall_s']:.2f}s wall" for k, v in firsts.items()))

    log("throughput: sp500")
    rows_sp = throughput(sp, combos, reps_small, bt_sample=4, vbt_chunk=None)
    log("throughput: gbm 100k")
    rows_gbm = throughput(gbm, combos, reps_big, bt_sample=2, vbt_chunk=100)
    breakdown = {"sp500": vectorbt_breakdown(sp, combos)}

    log("correctness: vectorbt (every combo), backtesting.py (a few)")
    checks_vbt = []
    for s, rows, chunk in ((sp, rows_sp, None), (gbm, rows_gbm, 100)):
        r0, r1 = rows[FEES[0]][1], rows[FEES[1]][1]
        checks_vbt.append(check_vectorbt(s, combos, r0["quantfleet"], r0["vectorbt"],
                                         r1["quantfleet"], chunk))
    checks_bt = check_backtesting(sp, combos, 3) + check_backtesting(gbm, combos, 1)

    log("memory: fresh subprocesses")
    mem_qf = probe("mem-qf")
    mem_vbt = probe("mem-vbt", str(len(combos)), "100")
    mem_vbt_small = probe("mem-vbt", "100", "0")
    log(f"  quantfleet 10k combos {mem_qf['peak_rss_mb']:.0f} MB; vectorbt 994 chunked "
        f"{mem_vbt['peak_rss_mb']:.0f} MB; vectorbt 100 unchunked {mem_vbt_small['peak_rss_mb']:.0f} MB")

    log("first backtest in fresh processes")
    first = first_backtest(sp)
    log(f"  import {first['import_s']:.3f}s, first backtest {first['first_backtest_s']:.3f}s")

    log("kernel prototypes (bench/proto_kernels.py)")
    import proto_kernels

    protos = proto_kernels.measure([sp.market.close[0], gbm.market.close[0]],
                                   [sp.name, gbm.name], combos, reps=reps_small)

    results = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "runtime_s": time.time() - started,
        "machine": report.machine_facts(), "data_sources": {sp.name: sp.source, gbm.name: gbm.source},
        "first_calls": firsts,
        "throughput": [rows[f][0] for rows in (rows_sp, rows_gbm) for f in FEES],
        "vectorbt_breakdown": breakdown,
        "check_vectorbt": checks_vbt, "check_backtesting": checks_bt,
        "memory": {"quantfleet": mem_qf, "vectorbt_chunked": mem_vbt, "vectorbt_100": mem_vbt_small},
        "first_backtest": first, "prototypes": protos, "quick": args.quick,
    }
    os.makedirs(os.path.join(HERE, ".out"), exist_ok=True)
    with open(os.path.join(HERE, ".out", "last_run.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=float)
    path = os.path.join(ROOT, "docs", "BENCHMARKS.md")
    report.write(results, path)
    log(f"wrote {os.path.relpath(path, ROOT)} ({time.time() - started:.0f}s)")


if __name__ == "__main__":
    main()
