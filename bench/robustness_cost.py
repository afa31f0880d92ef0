"""What the robustness suite costs on the bundled demo: confidence, stability and CPCV.

Runs the demo config's tournament (settings read from src/quantfleet/pipeline/demo.toml, as
bench/demo_tournament_bench.py does) through ``quantfleet tournament --executor serial
--json`` in fresh processes, each recording its run in a temporary store, in three variants,
alternating (the order rotates) after one warm-up run:

- ``shipped``: as shipped (confidence and parameter stability on, CPCV off);
- ``no-confidence``: ``--no-confidence``;
- ``cpcv``: ``--cv cpcv --groups 6 --test-groups 2 --embargo 5``.

Per run it reads the CLI's ``tournament_s`` and stage seconds, the child's CPU seconds
(``os.wait4``: user + system) and, from the run's spans in the store, the wall and CPU
seconds of ``driver.confidence``. Parameter stability has no off switch: the ``shipped``
runs go through a thin wrapper (``--child``) that wraps ``research.stability.pair_stability``
(run in each pair's task; the serial executor runs it in this process) and
``strategy_stability`` (the driver's, per strategy) with ``time.process_time`` /
``time.perf_counter`` and then calls the CLI's own ``main``: their seconds on the real
tournament. CPCV's cost is the ``cpcv`` run minus the ``shipped`` run of the same repetition
(CPU and ``tournament_s``). DSR/PBO are not separable from the pair summary and are not
measured here.

Then ``quantfleet demo`` (Ray, the whole pipeline) once, recorded in a temporary store: its
stage seconds (the run summary) and its own ``driver.confidence`` span, so each part's share
of the whole demo can be given.

Writes the ``robustness-cost`` section of docs/BENCHMARKS.md and bench/.out/robustness_cost.json.

Usage: .venv/bin/python bench/robustness_cost.py [--reps N] [--quick] [--no-doc] [--no-demo]
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
OUT = ROOT / "bench" / ".out" / "robustness_cost.json"
SECTION = "robustness-cost"
CPCV = ["--cv", "cpcv", "--groups", "6", "--test-groups", "2", "--embargo", "5"]
VARIANTS = {"shipped": [], "no-confidence": ["--no-confidence"], "cpcv": CPCV}
log = logger("robustness-cost")


def child(out_file: str, argv: list[str]) -> None:
    """Run the CLI (``quantfleet.cli.main``) with the stability functions timed; write their
    seconds to ``out_file`` at exit (the CLI exits through ``sys.exit``)."""
    import atexit

    import quantfleet.research.stability as st

    acc = {"pair_cpu_s": 0.0, "pair_wall_s": 0.0, "pairs": 0,
           "strategy_cpu_s": 0.0, "strategy_wall_s": 0.0, "strategies": 0}

    def timed(fn, key: str):
        def wrapper(*a, **k):
            c, w = time.process_time(), time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[f"{key}_cpu_s"] += time.process_time() - c
                acc[f"{key}_wall_s"] += time.perf_counter() - w
                acc["pairs" if key == "pair" else "strategies"] += 1
        return wrapper

    # pair_summary and the tournament's driver import these from the module at call time
    st.pair_stability = timed(st.pair_stability, "pair")
    st.strategy_stability = timed(st.strategy_stability, "strategy")
    atexit.register(lambda: Path(out_file).write_text(json.dumps(acc)))
    from quantfleet.cli import main as cli_main

    sys.argv = ["quantfleet", *argv]
    cli_main()


def demo_args() -> list[str]:
    from quantfleet.pipeline.config import load_config

    cfg = load_config(ROOT / "src" / "quantfleet" / "pipeline" / "demo.toml")
    t = cfg.tournament
    args = [cfg.data.source, "--strategies", ",".join(t.strategies),
            "--max-combos", str(t.max_combos), "--metric", t.metric,
            "--fee-bps", str(cfg.costs.fee_bps), "--slippage-bps", str(cfg.costs.slippage_bps)]
    if t.windows is not None:
        return args + ["--windows", str(t.windows)]
    return args + ["--train", str(t.train), "--test", str(t.test)]


def spawn(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float, str]:
    """stdout, wall seconds, CPU seconds (user + system of the child) and stderr."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        o, e = out.read(), err.read()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {e[-2000:]}")
    return o, wall, ru.ru_utime + ru.ru_stime, e


def span_sums(store: Path, stage: str | None = None) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds per driver component of the store's latest run, and the total
    CPU of each stage's spans (``stage:<name>``)."""
    from quantfleet.pipeline.run_record import load_run

    r = load_run(str(store), "latest")
    got: dict[str, dict[str, float]] = {}
    for s in r.spans.spans:
        if stage is not None and s.stage != stage:
            continue
        keys = [f"stage:{s.stage}"]
        if s.component.startswith("driver."):
            keys.append(f"{s.stage}:{s.component}")
        for key in keys:
            d = got.setdefault(key, {"wall_s": 0.0, "cpu_s": 0.0})
            d["wall_s"] += s.end - s.start
            d["cpu_s"] += s.cpu_s if s.cpu_s == s.cpu_s else 0.0  # NaN: a lost task
    got["_summary"] = {k: v for k, v in r.summary.items() if isinstance(v, (int, float))}
    got["_stages"] = r.summary.get("stages") or {}
    return got


def run_tournament(variant: str, args: list[str], tmp: Path, tag: str) -> dict:
    store = tmp / f"store-{tag}"
    cli = ["tournament", *args, *VARIANTS[variant], "--executor", "serial",
           "--store", str(store), "--json"]
    stab_file = tmp / f"stab-{tag}.json"
    if variant == "shipped":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(stab_file), "--",
               *cli]
    else:
        cmd = [sys.executable, "-m", "quantfleet.cli", *cli]
    env = {**os.environ, "QUANTFLEET_HOME": str(tmp / "home"), "QUANTFLEET_METRICS": "0",
           "PYTHONPATH": str(ROOT / "src")}
    o, wall, cpu, _ = spawn(cmd, env)
    out = json.loads(o)
    spans = span_sums(store, "tournament")
    conf = spans.get("tournament:driver.confidence", {"wall_s": 0.0, "cpu_s": 0.0})
    row = {"variant": variant, "tournament_s": float(out["tournament_s"]),
           "stage_s": float(out["wall_s"]), "process_s": wall, "process_cpu_s": cpu,
           "tournament_span_cpu_s": spans["stage:tournament"]["cpu_s"],
           "confidence_s": conf["wall_s"], "confidence_cpu_s": conf["cpu_s"],
           "confidence_spans": "tournament:driver.confidence" in spans,
           "backtests": int(out["backtests"])}
    if stab_file.exists():
        row["stability"] = json.loads(stab_file.read_text())
    if out.get("cpcv"):
        row["cpcv_block_keys"] = sorted(out["cpcv"])
    return row


def run_demo(tmp: Path) -> dict:
    store = tmp / "store-demo"
    env = {**os.environ, "QUANTFLEET_HOME": str(tmp / "home-demo"), "QUANTFLEET_METRICS": "0",
           "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "quantfleet.cli", "demo", "--store", str(store), "--json"]
    o, wall, cpu, _ = spawn(cmd, env)
    return demo_record(store, wall, cpu)


def demo_record(store: Path, wall: float | None, cpu: float | None) -> dict:
    from quantfleet.pipeline.run_record import load_run

    r = load_run(str(store), "latest")
    spans = span_sums(store)
    stages = {}
    for name, st in (r.summary.get("stages") or {}).items():
        sec = st.get("seconds") if isinstance(st, dict) else st
        if isinstance(sec, (int, float)):
            stages[name] = float(sec)
    conf = spans.get("tournament:driver.confidence", {"wall_s": None, "cpu_s": None})
    return {"process_s": wall, "process_cpu_s": cpu, "run_wall_s": r.wall_s,
            "executor": r.executor, "stages": stages,
            "confidence_s": conf["wall_s"], "confidence_cpu_s": conf["cpu_s"],
            "span_cpu_s": {k[6:]: v["cpu_s"] for k, v in spans.items()
                           if k.startswith("stage:")}}


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def render(res: dict) -> str:
    """The BENCHMARKS.md section from the raw figures (``bench/.out/robustness_cost.json``)."""
    rows, demo, reps = res["runs"], res["demo"], res["reps"]
    sh, nc, cv = rows["shipped"], rows["no-confidence"], rows["cpcv"]

    def m(xs: list[dict], key: str) -> float:
        return med([x[key] for x in xs])

    def diff(a_: list[dict], b: list[dict], key: str) -> float:
        return med([x[key] - y[key] for x, y in zip(a_, b, strict=True)])

    def share(x: float | None, whole: float | None) -> str:
        return f"{x / whole:.1%}" if x is not None and whole else "n/a"

    def f2(x: float | None) -> str:
        return f"{x:.2f}" if x is not None else "n/a"

    t_sh, c_sh = m(sh, "tournament_s"), m(sh, "process_cpu_s")
    conf_w, conf_c = m(sh, "confidence_s"), m(sh, "confidence_cpu_s")
    d_conf_w, d_conf_c = diff(sh, nc, "tournament_s"), diff(sh, nc, "process_cpu_s")
    stab_c = med([x["stability"]["pair_cpu_s"] + x["stability"]["strategy_cpu_s"] for x in sh])
    stab_w = med([x["stability"]["pair_wall_s"] + x["stability"]["strategy_wall_s"] for x in sh])
    st0 = sh[0]["stability"]
    d_cv_w, d_cv_c = diff(cv, sh, "tournament_s"), diff(cv, sh, "process_cpu_s")
    d_wall = demo["run_wall_s"] if demo else None
    d_cpu = sum(demo["span_cpu_s"].values()) if demo else None
    d_conf, d_conf_cpu = (demo["confidence_s"], demo["confidence_cpu_s"]) if demo else (None, None)
    l0, l1 = res["load_before"], res["load_after"]
    took = f"{res['took_min']:.1f}" if "took_min" in res else "n/a"
    lines = [
        f"The robustness suite's cost on the bundled demo's tournament (`{' '.join(res['args'])}`: "
        f"{sh[0]['backtests']:,} backtests, {st0['pairs']} pairs) through `quantfleet tournament "
        f"--executor serial --json` in fresh processes recorded in a temporary store, three "
        f"variants alternating after a warm-up: as shipped (confidence and stability on), "
        f"`--no-confidence`, and `{' '.join(CPCV)}`; and one recorded `quantfleet demo` run "
        f"(Ray, the whole pipeline). Regenerated by `make bench` (bench/robustness_cost.py); "
        f"raw figures in bench/.out/robustness_cost.json.",
        "",
        f"- date: {res['date']}; {reps} repetition(s), medians; took "
        f"{took} min",
        f"- machine: {res.get('cores', os.cpu_count())} cores, shared with other work (load average "
        f"{l0[0]:.1f} before, {l1[0]:.1f} after): the wall seconds are inflated and noisy, the "
        f"CPU seconds are the figures to read; {res.get('platform', platform.platform())}",
        "- confidence: the run's `driver.confidence` span (wall and CPU), and the difference "
        "shipped − `--no-confidence` of the same repetition (whole process CPU, `os.wait4`); "
        "stability: `pair_stability` (per pair, in its task) + `strategy_stability` (per "
        f"strategy, in the driver) timed inside the shipped runs ({st0['pairs']} + "
        f"{st0['strategies']} calls; it has no off switch); CPCV: the `cpcv` run − the shipped "
        "run of the same repetition (its work is inside each pair's task: no span of its own)",
        f"- shipped tournament: `tournament_s` {t_sh:.2f} s, whole process CPU {c_sh:.2f} s; "
        f"`--no-confidence`: {m(nc, 'tournament_s'):.2f} s, CPU {m(nc, 'process_cpu_s'):.2f} s; "
        f"CPCV: {m(cv, 'tournament_s'):.2f} s, CPU {m(cv, 'process_cpu_s'):.2f} s",
        "",
        "| part | wall s | CPU s | share of the tournament (wall) | share of the tournament "
        "process's CPU | share of the demo's span CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| confidence (`driver.confidence` span) | {conf_w:.2f} | {conf_c:.2f} | "
        f"{share(conf_w, t_sh)} | {share(conf_c, c_sh)} | {share(d_conf_cpu, d_cpu)} (its own "
        f"span: {f2(d_conf)} s wall, {f2(d_conf_cpu)} s CPU) |",
        f"| confidence (shipped − `--no-confidence`) | {d_conf_w:.2f} | {d_conf_c:.2f} | "
        f"{share(d_conf_w, t_sh)} | {share(d_conf_c, c_sh)} | — |",
        f"| parameter stability (timed in process) | {stab_w:.3f} | {stab_c:.3f} | "
        f"{share(stab_w, t_sh)} | {share(stab_c, c_sh)} | ≈ {share(stab_c, d_cpu)} (the serial "
        f"figure; in the demo it runs in Ray's tasks, not timed apart) |",
        f"| CPCV 6/2, embargo 5 (off by default) | {d_cv_w:.2f} | {d_cv_c:.2f} | "
        f"{share(d_cv_w, t_sh)} | {share(d_cv_c, c_sh)} | off; if on ≈ +{share(d_cv_c, d_cpu)} |",
    ]
    if demo:
        st_txt = ", ".join(f"{k} {v:.1f} s" for k, v in demo["stages"].items())
        lines += [
            "",
            f"`quantfleet demo` ({demo['executor']}, one run): wall {d_wall:.1f} s"
            + (f", whole process {demo['process_s']:.1f} s" if demo["process_s"] else "")
            + f"; stages: {st_txt}; CPU of all its spans (driver steps and tasks) {d_cpu:.1f} s. "
            f"Its confidence span is {share(d_conf, d_wall)} of its wall and "
            f"{share(d_conf, demo['stages'].get('tournament'))} of its tournament stage.",
        ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[4:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1 repetition")
    ap.add_argument("--no-doc", action="store_true", help="print, do not write BENCHMARKS.md")
    ap.add_argument("--no-demo", action="store_true", help="skip the `quantfleet demo` run")
    ap.add_argument("--demo-store", type=Path, default=None,
                    help="read a `quantfleet demo` run already recorded in this store instead "
                         "of running it (its process wall is then n/a)")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="render the section from a robustness_cost.json, running nothing")
    a = ap.parse_args()
    if a.from_json is not None:
        result = json.loads(a.from_json.read_text())
    else:
        result = measure(1 if a.quick else a.reps, a.demo_store, a.no_demo)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=1, default=str))
    text = render(result)
    print(text)
    if not a.no_doc:
        write_section(SECTION, "## The robustness suite's cost on the demo\n\n" + text)
        log(f"wrote the {SECTION} section of docs/BENCHMARKS.md")


def measure(reps: int, demo_store: Path | None, no_demo: bool) -> dict:
    args = demo_args()
    t_start = time.time()
    load0 = os.getloadavg()
    rows: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        log("warm-up (shipped)")
        run_tournament("shipped", args, tmp, "warm")
        kinds = tuple(VARIANTS)
        for r in range(reps):
            for v in kinds[r % 3:] + kinds[:r % 3]:
                x = run_tournament(v, args, tmp, f"{v}-{r}")
                rows[v].append(x)
                log(f"rep {r + 1}/{reps} {v}: tournament {x['tournament_s']:.2f} s, process "
                    f"CPU {x['process_cpu_s']:.2f} s, confidence {x['confidence_s']:.2f} s")
        demo = None
        if demo_store is not None:
            demo = demo_record(demo_store, None, None)
        elif not no_demo:
            log("quantfleet demo")
            demo = run_demo(tmp)
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t_start)), "reps": reps,
            "took_min": (time.time() - t_start) / 60, "cores": os.cpu_count(),
            "platform": platform.platform(), "args": args, "load_before": load0,
            "load_after": os.getloadavg(), "runs": rows, "demo": demo}


if __name__ == "__main__":
    main()
