"""The demo's own tournament, serial vs local Ray on 2 workers, through the CLI a user runs.

Reads the tournament settings of the bundled demo config (src/quantfleet/pipeline/demo.toml)
and runs ``quantfleet tournament`` with them: ``--executor serial``, ``--executor processes
--workers 2``, ``--executor ray --workers 2`` and ``--executor ray --workers 2 --baseline``,
alternating (the order rotates) after one warm-up run each, each in a fresh process as a user starts it. Reports medians over
the repetitions:

- the tournament's own wall time (``tournament_s``: from the first task to the last result,
  with the executor already started) of serial, processes and Ray and their ratios to
  serial, repetition by repetition;
- the stage's seconds (Ray's start included) and the whole process's wall, of the runs
  without a baseline;
- the third run's sequential baseline, measured in the same process right after its parallel
  run (every strategy warmed up first) and the speedup it gives.

Writes its section of docs/BENCHMARKS.md between ``<!-- demo-tournament:start -->`` and
``<!-- demo-tournament:end -->``.

Usage: .venv/bin/python bench/demo_tournament_bench.py [--reps N] [--quick] [--no-doc]
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from docsection import logger, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTION = "demo-tournament"
log = logger("demo-tournament")


def demo_args() -> tuple[list[str], dict]:
    """The ``quantfleet tournament`` arguments of the demo config's tournament."""
    from quantfleet.pipeline.config import load_config

    cfg = load_config(ROOT / "src" / "quantfleet" / "pipeline" / "demo.toml")
    t = cfg.tournament
    args = [cfg.data.source, "--strategies", ",".join(t.strategies),
            "--max-combos", str(t.max_combos), "--metric", t.metric,
            "--fee-bps", str(cfg.costs.fee_bps), "--slippage-bps", str(cfg.costs.slippage_bps)]
    if t.windows is not None:
        args += ["--windows", str(t.windows)]
    else:
        args += ["--train", str(t.train), "--test", str(t.test)]
    return args, {"source": cfg.data.source, "max_combos": t.max_combos, "train": t.train,
                  "test": t.test, "windows": t.windows}


def run(kind: str, args: list[str], home: Path) -> dict:
    ex = "ray" if kind.startswith("ray") else kind
    cmd = [sys.executable, "-m", "quantfleet.cli", "tournament", *args, "--executor", ex,
           "--no-store", "--json"]
    if ex in ("ray", "processes"):
        cmd += ["--workers", "2"]
    if kind == "ray+baseline":
        cmd += ["--baseline"]
    env = {**os.environ, "QUANTFLEET_HOME": str(home), "QUANTFLEET_METRICS": "0"}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    process_s = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    out = json.loads(p.stdout)
    return {"tournament_s": float(out["tournament_s"]), "stage_s": float(out["wall_s"]),
            "process_s": process_s, "backtests": int(out["backtests"]),
            "baseline": out.get("baseline"), "reason": out.get("executor_reason")}


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 repetition")
    ap.add_argument("--no-doc", action="store_true", help="print, do not write BENCHMARKS.md")
    a = ap.parse_args()
    reps = 1 if a.quick else a.reps
    args, settings = demo_args()
    t_start = time.time()
    kinds = ("serial", "processes", "ray", "ray+baseline")
    rows: dict[str, list[dict]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for kind in ("serial", "processes", "ray"):
            log(f"warm-up {kind}")
            run(kind, args, home)
        auto = run("auto", args, home)["reason"]
        for r in range(reps):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
            for kind in order:
                rows[kind].append(run(kind, args, home))
                x = rows[kind][-1]
                log(f"rep {r + 1}/{reps} {kind}: tournament {x['tournament_s']:.2f} s, stage "
                    f"{x['stage_s']:.2f} s, process {x['process_s']:.2f} s")
    s, p, y = rows["serial"], rows["processes"], rows["ray"]
    ratio = [a_["tournament_s"] / b["tournament_s"] for a_, b in zip(s, y, strict=True)]
    ratio_p = [a_["tournament_s"] / b["tournament_s"] for a_, b in zip(s, p, strict=True)]
    base = [b["baseline"] for b in rows["ray+baseline"]]
    valid = [b for b in base if b and b.get("valid")]

    def cell(xs: list[dict], key: str) -> str:
        v = [x[key] for x in xs]
        return f"{med(v):.2f} ({min(v):.2f}–{max(v):.2f})"

    def over(key: str, xs: list[dict]) -> str:
        return f"{med([x[key] for x in s]) / med([x[key] for x in xs]):.2f}×"

    lines = [
        f"The bundled demo's tournament (`{' '.join(args)}`: "
        f"{s[0]['backtests']:,} backtests), run as a user runs it: `quantfleet tournament` in a "
        f"fresh process, `--executor serial` vs `--executor processes --workers 2` vs "
        f"`--executor ray --workers 2` (and a fourth run with `--baseline`), alternating after "
        f"one warm-up run each. Regenerated by `make bench` (bench/demo_tournament_bench.py).",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(t_start))}; "
        f"{reps} repetitions; took {(time.time() - t_start) / 60:.1f} min",
        f"- machine: {os.cpu_count()} cores (shared with other work), "
        f"{platform.platform()}",
        "- tournament: the tournament's own wall, first task to last result, the executor "
        "already started (`tournament_s` of the CLI's JSON); stage: the stage's seconds, "
        "the executor's start included; process: the whole command",
        f"- `--executor auto` picks: {auto}",
        "",
        "| figure | serial | processes, 2 workers | Ray, 2 workers | serial / processes | "
        "serial / Ray |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| tournament, median s (min–max) | {cell(s, 'tournament_s')} | "
        f"{cell(p, 'tournament_s')} | {cell(y, 'tournament_s')} | "
        f"{med(ratio_p):.2f}× | **{med(ratio):.2f}×** (per repetition: "
        f"{', '.join(f'{r_:.2f}' for r_ in ratio)}) |",
        f"| stage, median s | {med([x['stage_s'] for x in s]):.2f} | "
        f"{med([x['stage_s'] for x in p]):.2f} | {med([x['stage_s'] for x in y]):.2f} | "
        f"{over('stage_s', p)} | {over('stage_s', y)} |",
        f"| whole process, median s | {med([x['process_s'] for x in s]):.2f} | "
        f"{med([x['process_s'] for x in p]):.2f} | {med([x['process_s'] for x in y]):.2f} | "
        f"{over('process_s', p)} | {over('process_s', y)} |",
    ]
    if valid:
        lines += [
            "",
            f"Ray's own sequential baseline (`--baseline`: the same items in the driver after "
            f"the parallel run, every strategy warmed up first; "
            f"{valid[0]['baseline_kind']}): median serial {med([b['serial_s'] for b in valid]):.2f} s "
            f"vs the tournament's {med([b['wall_s'] for b in valid]):.2f} s on Ray, "
            f"speedup **{med([b['speedup'] for b in valid]):.2f}×** on 2 workers, efficiency "
            f"{med([b['efficiency'] for b in valid]):.0%} ({len(valid)} of {len(base)} runs "
            f"valid; a ratio above 2 × 1.05 is reported invalid).",
        ]
    elif base:
        lines += ["", f"Ray's own baseline gave no valid speedup: "
                      f"{base[0].get('invalid_reason') if base[0] else 'n/a'}"]
    text = "\n".join(lines)
    print(text)
    if not a.no_doc:
        write_section(SECTION, "## The demo's tournament: serial vs Ray (2 workers)\n\n" + text)
        log(f"wrote the {SECTION} section of docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
