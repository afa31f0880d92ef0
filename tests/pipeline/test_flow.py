"""The Prefect flow end to end: stages, cache, retries, lineage, report; SIGKILL and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantfleet.pipeline.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[2]

SMALL = """
name = "small"
store = "{store}"
[data]
source = "sp500"
assets = ["AAPL", "AMD", "BAC", "XOM"]
[executor]
kind = "serial"
[tournament]
strategies = ["sma_cross", "rsi"]
train = 1500
test = 750
max_combos = 4
[evolution]
strategies = ["sma_cross"]
population = 6
generations = 2
[portfolio]
profiles = ["hrp", "equal_weight"]
winners = 4
train = 252
test = 126
"""


def small_config(tmp_path: Path) -> PipelineConfig:
    from quantfleet.pipeline.config import load_config

    p = tmp_path / "small.toml"
    p.write_text(SMALL.format(store=tmp_path / "lake"))
    return load_config(p)


@pytest.mark.integration
def test_flow_end_to_end_then_served_from_cache(prefect_harness, tmp_path):
    from quantfleet.pipeline.flow import run_pipeline
    from quantfleet.pipeline.report import write_report
    from quantfleet.store import Catalog, Store

    cfg = small_config(tmp_path)
    first = run_pipeline(cfg, log=lambda m: None)
    assert list(first.stages) == ["data", "tournament", "evolution", "returns", "portfolio"]
    assert not any(s["cached"] for s in first.stages.values())
    store = Store.open(cfg.store)
    manifest = store.get_run(first.run_id)
    assert manifest.status == "succeeded"
    assert [s["step"] for s in manifest.steps if s["step"] != "run"] == list(first.stages)
    weights = first.stages["portfolio"]["outputs"]["weights"]
    trace = store.lineage(weights)
    assert "portfolio" in json.dumps(trace) and "returns" in json.dumps(trace)
    # every artifact has its kind: the catalog has a view per kind with this run's rows
    assert all(a.get("kind") for a in manifest.artifacts.values())
    for kind in ("spans", "run_summary", "config", "report_view"):
        assert manifest.output(kind), kind
    with Catalog(store) as cat:
        assert {"leaderboard", "tournament_results", "evolution", "weights",
                "portfolio_returns", "spans"} <= set(cat.views)
        rows = cat.rows("select strategy, asset, oos_sharpe, run_id from leaderboard "
                        "order by oos_sharpe desc limit 5")
    assert rows and {r["run_id"] for r in rows} == {first.run_id}
    report = write_report(cfg.store, first.run_id, tmp_path / "report.html")
    assert report.exists() and 'id="leaderboard"' in report.read_text()

    second = run_pipeline(cfg, log=lambda m: None)
    assert all(s["cached"] for s in second.stages.values())
    assert _results(second.stages) == _results(first.stages)


@pytest.mark.integration
def test_an_unrecorded_flow_keeps_nothing(prefect_harness, tmp_path):
    from quantfleet.pipeline.flow import run_pipeline
    from quantfleet.store import Store

    cfg = small_config(tmp_path).with_overrides({"evolution.enabled": False,
                                                 "portfolio.enabled": False})
    out = run_pipeline(cfg, record=False, log=lambda m: None)
    assert out.run_id is None and list(out.stages) == ["data", "tournament"]
    assert not any(s["cached"] for s in out.stages.values())
    assert Store.open(cfg.store).run_ids() == []
    again = run_pipeline(cfg, record=False, log=lambda m: None)
    assert not any(s["cached"] for s in again.stages.values())  # its artifacts are gone


@pytest.mark.integration
def test_a_stage_that_fails_twice_is_retried(prefect_harness, tmp_path):
    from prefect import flow

    from quantfleet.pipeline.prefect_flow import make_stage_task

    calls = []

    def flaky(ctx, inputs, key):
        calls.append(time.time())
        if len(calls) < 3:
            raise RuntimeError("transient")
        return {"outputs": {"x": "h"}, "summary": {}, "key": key, "seconds": 0.0}

    t = make_stage_task("flaky", flaky, retries=2, retry_delay_s=0.1, result_dir=tmp_path)

    @flow
    def f():
        return t(None, {}, f"flaky-{time.time()}")

    assert f()["outputs"] == {"x": "h"}
    assert len(calls) == 3
    assert calls[2] - calls[1] >= calls[1] - calls[0] - 0.05  # backoff does not shrink


def _results(stages: dict) -> dict:
    """Output hashes of every stage, less the measured clocks (``timing_*``)."""
    return {k: {n: h for n, h in v["outputs"].items() if not n.startswith("timing_")}
            for k, v in stages.items()}


def _run_cli(cfg: Path, home: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "QUANTFLEET_HOME": str(home), "QUANTFLEET_METRICS": "0",
           "PYTHONUNBUFFERED": "1"}
    for k in [k for k in env if k.startswith("PREFECT_")]:
        env.pop(k)
    return subprocess.Popen([sys.executable, "-m", "quantfleet.cli", "run", str(cfg), "--json"
                             if kw.get("json") else "--no-open"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


@pytest.mark.integration
def test_killed_run_resumes_without_recomputing_finished_stages(tmp_path):
    cfgp = tmp_path / "small.toml"
    cfgp.write_text(SMALL.format(store=tmp_path / "lake"))
    home = tmp_path / "home"
    proc = _run_cli(cfgp, home)
    seen = []
    deadline = time.time() + 240
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("stage tournament: done"):
                os.killpg(proc.pid, signal.SIGKILL)  # mid-flow: evolution not finished
                break
            assert time.time() < deadline, "".join(seen)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    again = _run_cli(cfgp, home, json=True)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    res = json.loads(out[out.index("{"):])
    stages = res["stages"]
    assert stages["data"]["cached"] and stages["tournament"]["cached"]
    assert not stages["evolution"]["cached"] and not stages["portfolio"]["cached"]
    # identical to an uninterrupted run: same artifacts (content-addressed) in a fresh home
    fresh = _run_cli(cfgp, tmp_path / "home2", json=True)
    out2, _ = fresh.communicate(timeout=300)
    assert fresh.returncode == 0, out2
    res2 = json.loads(out2[out2.index("{"):])
    assert _results(res2["stages"]) == _results(stages)
    assert Path(res["report"]).exists()
