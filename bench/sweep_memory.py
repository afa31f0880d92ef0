"""Peak memory and wall time of the whole ``quantfleet sweep`` process, PBO on (the default).

The command a user types: ``python -m quantfleet.cli sweep <100,000-bar GBM> --strategy
sma_cross --grid fast=5:49:2 --grid slow=20:200:4 --no-store --json`` (fast < slow: 994 combos,
one asset; the sweep's PBO needs every combo's returns on the winner's asset). Each run is its
own process; its peak RSS is the kernel's ``ru_maxrss`` of that child (``os.wait4``), the
largest resident set it ever had — this script imports nothing heavy, so the child starts
small. One warm-up run (numba caches), then ``--runs`` counted runs: median and max of the peak
RSS, median wall. ``--vs SRC`` measures another checkout's ``src`` the same way, alternating
with this one, and reports both. Target: below 400 MB. Writes its section of
docs/BENCHMARKS.md between ``<!-- sweep-memory:start -->`` and ``<!-- sweep-memory:end -->``.

Usage: .venv/bin/python bench/sweep_memory.py [--runs 3] [--vs OTHER/src [--vs-label NAME]]
       [--no-doc]
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

from docsection import DOC, logger, write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "sweep-memory"
DATA = "synthetic:gbm?bars=100000&assets=1&seed=42"
ARGS = ["sweep", DATA, "--strategy", "sma_cross", "--grid", "fast=5:49:2", "--grid",
        "slow=20:200:4", "--no-store", "--json"]
TARGET_MB = 400.0

log = logger("sweep-memory")


def run_once(src: Path) -> dict:
    """One sweep process: its peak RSS (MiB), wall seconds and what it printed."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    with tempfile.TemporaryDirectory() as tmp, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "quantfleet.cli", *ARGS], cwd=tmp, env=env,
                             stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            raise SystemExit(f"sweep failed ({p.returncode}): {err.read().decode()[-2000:]}")
        doc = json.loads(out.read().decode())
    return {"rss_mb": usage.ru_maxrss / 1024.0, "wall_s": wall, "combos": doc["combos"],
            "overfit": doc.get("overfit") or {}}


def measure(srcs: dict[str, Path], runs: int) -> dict[str, dict]:
    """Warm-up once each, then ``runs`` rounds alternating the checkouts."""
    got: dict[str, list[dict]] = {k: [] for k in srcs}
    for k, src in srcs.items():
        log(f"warm-up {k} ({src})")
        run_once(src)
    for i in range(runs):
        for k, src in srcs.items():
            r = run_once(src)
            log(f"run {i + 1}/{runs} {k}: peak RSS {r['rss_mb']:.0f} MiB, wall {r['wall_s']:.2f} s")
            got[k].append(r)
    out = {}
    for k, rs in got.items():
        of = rs[-1]["overfit"]
        out[k] = {"src": str(srcs[k]), "runs": len(rs),
                  "rss_mb_median": statistics.median(r["rss_mb"] for r in rs),
                  "rss_mb_max": max(r["rss_mb"] for r in rs),
                  "wall_s_median": statistics.median(r["wall_s"] for r in rs),
                  "wall_s_min": min(r["wall_s"] for r in rs),
                  "wall_s_max": max(r["wall_s"] for r in rs),
                  "combos": rs[-1]["combos"], "pbo": of.get("pbo"),
                  "pbo_note": of.get("pbo_note"), "verdict": of.get("verdict")}
    return out


def render(meta: dict, res: dict[str, dict]) -> str:
    cmd = "quantfleet " + " ".join(f"'{a}'" if "?" in a else a for a in ARGS)
    lines = [
        "## Sweep memory with PBO on (bench/sweep_memory.py)",
        "",
        f"- command: `{meta['command']}`; date {meta['date']}; python {meta['python']}, "
        f"{meta['cpus']} cores (shared); {meta['runs']} counted runs per checkout after one "
        "warm-up, each a fresh process",
        f"- measured: `{cmd}` (serial executor, the default): 994 combos × 1 asset × 100,000 "
        "bars, PBO on (the default) on the winner's asset",
        "- peak RSS = the child's `ru_maxrss` (`os.wait4`), the whole process; wall = from "
        "start to exit, including imports and data generation",
        "",
        "| checkout | combos | peak RSS median (MiB) | peak RSS max (MiB) | wall median (s) "
        "| wall min–max (s) | PBO |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for k, r in res.items():
        pbo = f"{r['pbo']:.4f}" if r["pbo"] is not None else f"n/a ({r['pbo_note']})"
        lines.append(f"| {k} | {r['combos']} | **{r['rss_mb_median']:.0f}** | "
                     f"{r['rss_mb_max']:.0f} | {r['wall_s_median']:.2f} | "
                     f"{r['wall_s_min']:.2f}–{r['wall_s_max']:.2f} | {pbo} |")
    this = res["this checkout"]
    peak_mb = this["rss_mb_max"] * 1.048576  # MiB -> MB (10^6 bytes), the target's unit
    met = peak_mb < TARGET_MB and this["pbo"] is not None
    lines += ["", f"**Target (PBO on, whole process below {TARGET_MB:.0f} MB): "
              f"{'met' if met else 'not met'}** — peak {this['rss_mb_max']:.0f} MiB "
              f"= {peak_mb:.0f} MB at most over {this['runs']} runs. Wall times are of a "
              "shared machine and vary from run to run (min–max shown).",
              f"Verdict printed: \"{this['verdict']}\"",
              "",
              "How: the sweep's jobs (`BacktestJob(blocks=16)`) run the kernel on sub-batches of "
              "combos whose per-bar buffer is at most `backtest.blocks.BLOCK_BATCH_BYTES` "
              "(16 MiB), reduce each combo's returns to per-block count, mean and M2 and drop "
              "the buffer; PBO is `overfit.pbo_from_blocks` on the winner's asset, "
              "O(combos × 16) memory (docs/overfit.md)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--vs", type=Path, help="another checkout's src, measured the same way")
    ap.add_argument("--vs-label", help="its name in the table (default: the path)")
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    srcs = {"this checkout": ROOT / "src"}
    if args.vs is not None:
        srcs[args.vs_label or f"`{args.vs}`"] = args.vs.resolve()
    res = measure(srcs, args.runs)
    meta = {"command": ".venv/bin/python bench/sweep_memory.py"
                       + (f" --runs {args.runs}" if args.runs != 3 else "")
                       + (f" --vs {args.vs}" if args.vs is not None else "")
                       + (f" --vs-label '{args.vs_label}'" if args.vs_label else ""),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "python": platform.python_version(), "cpus": os.cpu_count(), "runs": args.runs}
    text = render(meta, res)
    print(text)
    out = ROOT / "bench" / ".out"
    out.mkdir(exist_ok=True)
    (out / "sweep_memory.json").write_text(json.dumps({"meta": meta, "results": res}, indent=1))
    if not args.no_doc:
        write_section(SECTION, text)
        log(f"wrote {DOC}")


if __name__ == "__main__":
    main()
