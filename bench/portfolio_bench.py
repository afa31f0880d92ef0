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
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.pop("RAY_ADDRESS", None)

import numpy as np  # noqa: E402

import quantfleet  # noqa: E402
from quantfleet.portfolio import from_assets, rebalance  # noqa: E402

START = "<!-- portfolio:start -->"
END = "<!-- portfolio:end -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def _update_doc(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{START}\n{section.rstrip()}\n{END}\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    DOC.write_text(text)


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

    t0 = time.perf_counter()
    serial = rebalance(rm, args.profiles, **kw)
    serial_s = time.perf_counter() - t0
    n_win = len(serial.windows)
    print(f"serial: {n_win} windows x {len(serial.profiles)} profiles in {serial_s:.1f} s",
          flush=True)

    from quantfleet.compute import make_executor

    t0 = time.perf_counter()
    ex = make_executor("ray", workers=args.workers,
                       init_kwargs={"log_to_driver": False, "configure_logging": False})
    start_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        par = rebalance(rm, args.profiles, executor=ex, **kw)
        ray_s = time.perf_counter() - t0
        tasks = ex.summary.tasks
    finally:
        ex.close()
    print(f"ray: {ray_s:.1f} s (+ {start_s:.1f} s to start Ray), {tasks} tasks", flush=True)

    diff = float(np.max(np.abs(par.returns.to_numpy() - serial.returns.to_numpy())))
    fb_s = int((serial.log["fallback"] != "").sum())
    fb_p = int((par.log["fallback"] != "").sum())
    timing = serial.timing().set_index("profile")
    par_timing = par.timing().set_index("profile")
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
        f"`import skfolio` (~2.5 s)",
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
        _update_doc(section)
        print(f"\nwrote the Portfolio section of {DOC}")


if __name__ == "__main__":
    main()
