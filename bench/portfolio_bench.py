"""Walk-forward portfolio optimization, serial vs Ray: ~800 windows x 5 profiles on sp500.

    .venv/bin/python bench/portfolio_bench.py [--train 252 --test 10] [--profiles ...]
        [--workers 2] [--no-write]

Prints a markdown table and rewrites the "Portfolio" section of docs/BENCHMARKS.md (between
the ``<!-- portfolio:start -->`` / ``<!-- portfolio:end -->`` markers, appended at the end of
the file when absent; bench/run.py keeps everything below its own marker). Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.pop("RAY_ADDRESS", None)
# Ray starts its workers at nice 15: on a machine shared with other (nice 0) work they then
# lose to it while the serial run (nice 0) does not. Same priority for a fair comparison.
os.environ.setdefault("RAY_worker_niceness", "0")

import numpy as np  # noqa: E402
from docsection import DOC, write_section  # noqa: E402

import quantfleet  # noqa: E402
from quantfleet.portfolio import from_assets, rebalance  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=252)
    ap.add_argument("--test", type=int, default=10)
    ap.add_argument("--profiles", default="hrp,max_sharpe,min_variance,risk_parity,equal_weight")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fee-bps", type=float, default=5.0)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs alone")
    args = ap.parse_args()

    market = quantfleet.load("sp500")
    rm = from_assets(market)
    kw = dict(train=args.train, test=args.test, fee_bps=args.fee_bps)
    # warm the driver's imports so neither run pays them
    rebalance(rm.returns.iloc[: args.train + args.test], args.profiles, **kw)

    # Serial and Ray alternate over 4 blocks of ~200 windows in ABBA order, so load from other
    # work on the machine falls on both about equally; Ray starts once, outside the timings.
    from quantfleet.compute import make_executor

    n_all = (len(rm.returns) - args.train) // args.test
    per_block = -(-n_all // 4)
    loads = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    ex = make_executor("ray", workers=args.workers,
                       init_kwargs={"log_to_driver": False, "configure_logging": False})
    start_s = time.perf_counter() - t0
    serial_s = ray_s = 0.0
    tasks = 0
    s_parts, p_parts = [], []
    try:
        for b in range(4):
            lo = b * per_block * args.test
            hi = min(len(rm.returns), lo + args.train + per_block * args.test)
            block = rm.returns.iloc[lo:hi]
            for mode in (("serial", "ray") if b % 3 == 0 else ("ray", "serial")):
                t0 = time.perf_counter()
                if mode == "serial":
                    s_parts.append(rebalance(block, args.profiles, ppy=252.0, **kw))
                    serial_s += time.perf_counter() - t0
                else:
                    p_parts.append(rebalance(block, args.profiles, ppy=252.0, executor=ex, **kw))
                    ray_s += time.perf_counter() - t0
                    tasks += ex.summary.tasks
            loads.append(os.getloadavg()[0])
            print(f"block {b}: serial {serial_s:.1f} s, ray {ray_s:.1f} s so far", flush=True)
    finally:
        ex.close()
    n_win = sum(len(r.windows) for r in s_parts)
    serial = s_parts[0]
    load0, load1, load2 = loads[0], max(loads), loads[-1]
    print(f"ray: {ray_s:.1f} s (+ {start_s:.1f} s to start Ray), {tasks} tasks", flush=True)

    diff = max(float(np.max(np.abs(p.returns.to_numpy() - q.returns.to_numpy())))
               for p, q in zip(p_parts, s_parts, strict=True))
    fb_s = sum(int((r.log["fallback"] != "").sum()) for r in s_parts)
    fb_p = sum(int((r.log["fallback"] != "").sum()) for r in p_parts)
    import pandas as pd

    def _timing(parts):
        spans = [sp for r in parts for sp in r.spans]
        rows = []
        for p in parts[0].profiles:
            d = np.array([sp.duration for sp in spans
                          if sp.component.split("/")[0] == f"portfolio.{p.name}"])
            rows.append({"profile": p.name, "mean_ms": d.mean() * 1e3,
                         "median_ms": np.median(d) * 1e3,
                         "p95_ms": np.percentile(d, 95) * 1e3, "fit_s": d.sum()})
        return pd.DataFrame(rows).set_index("profile")

    timing = _timing(s_parts)
    par_timing = _timing(p_parts)
    total_fit = float(timing["fit_s"].sum())

    lines = [
        "## Portfolio: walk-forward optimization, serial vs Ray",
        "",
        f"`.venv/bin/python bench/portfolio_bench.py --train {args.train} --test {args.test} "
        f"--workers {args.workers}` (bench/portfolio_bench.py; not in CI).",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"{platform.platform()}; python {platform.python_version()}",
        f"- data: sp500, {len(rm.columns)} assets, {len(rm.returns):,} rows of daily returns; "
        f"train {args.train} / test {args.test} bars -> **{n_win} windows** x "
        f"{len(serial.profiles)} profiles = {n_win * len(serial.profiles):,} fits; "
        f"fees {args.fee_bps:g} bps, drifting weights",
        f"- time: wall seconds of `portfolio.rebalance` (driver imports warmed); Ray's start-up "
        f"({start_s:.1f} s) is shown apart; the Ray run includes each worker's first "
        f"`import skfolio` (~2.5 s); `RAY_worker_niceness={os.environ['RAY_worker_niceness']}` "
        f"(Ray's default 15 starves its workers when other work shares the machine)",
        f"- 1-minute load average (2 cores; other work shares the machine): {load0:.1f} before, "
        f"{load1:.1f} at most between blocks, {load2:.1f} at the end; serial and Ray alternate "
        f"over 4 blocks of ~{per_block} windows (ABBA order) so both see the same load",
        "",
        "| run | wall s | tasks | speedup |",
        "| --- | ---: | ---: | ---: |",
        f"| serial | {serial_s:.1f} | - | 1.00x |",
        f"| Ray, {args.workers} workers | {ray_s:.1f} | {tasks} | "
        f"**{serial_s / ray_s:.2f}x** |",
        f"| Ray incl. start-up | {ray_s + start_s:.1f} | {tasks} | "
        f"{serial_s / (ray_s + start_s):.2f}x |",
        "",
        f"Goal >= 1.8x on 2 cores: **{'met' if serial_s / ray_s >= 1.8 else 'not met'}** "
        f"({serial_s / ray_s:.2f}x). Serial and Ray results agree (max |diff| of portfolio "
        f"returns {diff:.1e}); fallbacks used: {fb_s} serial, {fb_p} Ray.",
        "",
        "Cost per window and profile (spans of the serial run; Ray column: mean on a worker):",
        "",
        "| profile | mean ms | median ms | p95 ms | Ray mean ms | share of fit time |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in serial.profiles:
        t = timing.loc[p.name]
        lines.append(f"| {p.name} | {t['mean_ms']:.2f} | {t['median_ms']:.2f} | "
                     f"{t['p95_ms']:.2f} | {par_timing.loc[p.name, 'mean_ms']:.2f} | "
                     f"{t['fit_s'] / total_fit:.0%} |")
    section = "\n".join(lines)
    print()
    print(section)
    if not args.no_write:
        write_section("portfolio", section)
        print(f"\nwrote the Portfolio section of {DOC}")


if __name__ == "__main__":
    main()
