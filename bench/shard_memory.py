"""Driver peak RSS of a tournament on a shard dataset vs the in-memory path, as the universe grows.

For 50, 100 and 200 assets × 50,000 one-minute GBM bars (``synthetic:gbm``): the market is
written once with ``quantfleet data put`` to a local store, then the tournament a user types runs
as its own process on it, ``quantfleet tournament shards:NAME --store DIR --strategies
sma_cross,rsi --max-combos 16 --windows 4 --executor processes --workers 2 --json``, and the same
tournament on the in-memory path (``quantfleet tournament "synthetic:gbm?..."`` — the driver
loads the whole market). Each process reports its own high-water mark (VmHWM of
/proc/self/status at exit: the driver alone, not its worker processes); the worker
processes' VmHWM is polled while they run (the largest is reported). The leaderboard and
overfitting artifacts of the two runs must have the same hash (same bytes), and the shard run's
``results`` / ``oos_returns`` must read back equal to the in-memory run's. The headline is RSS,
not time (the machine is shared). Writes the ``shard-memory`` section of docs/BENCHMARKS.md.

Usage: .venv/bin/python bench/shard_memory.py [--assets 50,100,200] [--bars 50000] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docsection import logger, write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "shard-memory"
TOURNAMENT = ["--strategies", "sma_cross,rsi", "--max-combos", "16", "--windows", "4",
              "--executor", "processes", "--workers", "2", "--json"]
# runs the CLI as __main__ and appends this process's VmHWM (MiB) to $HWM_FILE at exit
WRAPPER = """
import os, runpy, sys
def hwm():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")
sys.argv = ["quantfleet", *sys.argv[1:]]
try:
    runpy.run_module("quantfleet.cli", run_name="__main__")
except SystemExit as e:
    code = e.code
else:
    code = 0
with open(os.environ["HWM_FILE"], "w") as fh:
    fh.write(str(hwm()))
sys.exit(code)
"""

log = logger("shard-memory")


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cli(args: list[str], cwd: str) -> tuple[str, float, float, float | None]:
    """Run ``quantfleet ARGS`` in its own process: stdout, the process's peak RSS (MiB), wall
    s, and the largest peak RSS among its worker processes (VmHWM polled every 0.1 s while
    they run, the last reading before each exits: a lower bound; None: no worker seen)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with tempfile.NamedTemporaryFile(suffix=".hwm", delete=False) as f:
        env["HWM_FILE"] = f.name
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([sys.executable, "-c", WRAPPER, *args], cwd=cwd, env=env,
                             stdout=out, stderr=err)
        workers: dict[int, float] = {}
        while p.poll() is None:
            for c in _descendants(p.pid):
                v = _hwm_mb(c)
                if v is not None:
                    workers[c] = max(workers.get(c, 0.0), v)
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if p.returncode != 0:
        raise SystemExit(f"quantfleet {' '.join(args[:2])} failed ({p.returncode}): "
                         f"{stderr[-2000:]}")
    rss = float(Path(env["HWM_FILE"]).read_text())
    os.unlink(env["HWM_FILE"])
    return stdout, rss, wall, max(workers.values()) if workers else None


def outputs(store: str, run_id: str) -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "src"))
    from quantfleet.store import Store

    m = Store.open(store).get_run(run_id)
    return {name: h for s in m.steps if s["step"] == "tournament"
            for name, h in s["outputs"].items()}


def same_tables(store: str, a: str, b: str) -> bool:
    from quantfleet.store import Store

    st = Store.open(store)
    x, y = st.get_table(a).to_pandas(), st.get_table(b).to_pandas()
    return x.shape == y.shape and list(x.columns) == list(y.columns) and x.equals(y)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", default="50,100,200")
    ap.add_argument("--bars", type=int, default=50_000)
    ap.add_argument("--no-doc", action="store_true")
    a = ap.parse_args()
    sizes = [int(x) for x in a.assets.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        # warm-up (numba caches of both strategies), not counted
        cli(["tournament", "synthetic:gbm?bars=2000&assets=2&seed=1", "--no-store",
             *TOURNAMENT], tmp)
        for n in sizes:
            src = f"synthetic:gbm?bars={a.bars}&assets={n}&seed=7"
            out, put_rss, put_s, _ = cli(["data", "put", src, "--store", store, "--name",
                                       f"gbm{n}", "--json"], tmp)
            ref = json.loads(out)["reference"]
            log(f"{n} assets: data put {put_s:.1f} s, peak RSS {put_rss:.0f} MiB -> {ref}")
            out, rss_s, wall_s, wrk_s = cli(["tournament", ref, "--store", store, *TOURNAMENT], tmp)
            doc_s = json.loads(out)
            out, rss_m, wall_m, wrk_m = cli(["tournament", src, "--store", store, *TOURNAMENT], tmp)
            doc_m = json.loads(out)
            o_s, o_m = outputs(store, doc_s["run_id"]), outputs(store, doc_m["run_id"])
            same = {k: o_s[k] == o_m[k] for k in ("leaderboard", "overfit")}
            same["results"] = same_tables(store, o_s["results"], o_m["results"])
            same["oos_returns"] = same_tables(store, o_s["oos_returns"], o_m["oos_returns"])
            row = {"assets": n, "bars": a.bars, "pairs": 2 * n, "rows": doc_s["rows"],
                   "shard_rss_mb": rss_s, "memory_rss_mb": rss_m, "put_rss_mb": put_rss,
                   "shard_worker_rss_mb": wrk_s, "memory_worker_rss_mb": wrk_m,
                   "shard_wall_s": wall_s, "memory_wall_s": wall_m, "identical": same}
            log(json.dumps(row))
            rows.append(row)
    print(json.dumps(rows, indent=1))
    if a.no_doc:
        return
    lo = min(r["shard_rss_mb"] for r in rows)
    hi = max(r["shard_rss_mb"] for r in rows)
    lines = [
        "## Data that lives in the store: driver memory (bench/shard_memory.py)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores "
        f"(shared with other jobs: times are indicative only). Each cell is the peak RSS "
        f"(VmHWM) of the whole driver process, its worker processes not included; \"largest "
        f"worker\" is the highest VmHWM among the driver's child processes, polled every 0.1 s "
        f"(a lower bound of their peaks). Command: "
        f"`quantfleet tournament SOURCE --store DIR {' '.join(TOURNAMENT[:-1])}` with SOURCE "
        f"the dataset `quantfleet data put` wrote (shards) or the `synthetic:gbm?bars="
        f"{a.bars}&assets=N&seed=7` URL itself (in memory).",
        "",
        "| assets × bars | pairs | result rows | driver peak RSS, shards | driver peak RSS, in memory "
        "| largest worker, shards | largest worker, in memory | `data put` peak RSS "
        "| identical (leaderboard, overfit bytes; results, oos_returns) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ok = "yes" if all(r["identical"].values()) else f"NO {r['identical']}"
        def mib(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.0f} MiB"

        lines.append(f"| {r['assets']} × {r['bars']:,} | {r['pairs']} | {r['rows']:,} | "
                     f"{mib(r['shard_rss_mb'])} | {mib(r['memory_rss_mb'])} | "
                     f"{mib(r['shard_worker_rss_mb'])} | {mib(r['memory_worker_rss_mb'])} | "
                     f"{mib(r['put_rss_mb'])} | {ok} |")
    lines += ["", f"Shard driver: {lo:.0f}–{hi:.0f} MiB over a {max(sizes) // min(sizes)}× "
              f"larger universe ({(hi / lo - 1) * 100:.0f} % apart); the `data put` process "
              f"loads the whole source once, by design (it is what writes the shards)."]
    write_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
