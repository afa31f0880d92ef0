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
    _check_prefect_record(first.run_id)


def _check_prefect_record(run_id: str) -> None:
    """What the Prefect API holds of a flow run: its parameters (the config), its name, the
    stage tasks linked to their upstream stages, its log lines and its artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        LogFilter,
        LogFilterFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as c:
        (fr,) = c.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(any_=[f"small {run_id}"])))
        assert fr.parameters["config"]["name"] == "small"
        assert fr.parameters["config"]["tournament"]["strategies"] == ["sma_cross", "rsi"]
        tasks = {t.name: t for t in c.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[fr.id])))}
        assert set(tasks) == {"data", "tournament", "evolution", "returns", "portfolio"}
        ups = {name: {i.id for i in t.task_inputs.get("upstream", [])}
               for name, t in tasks.items()}
        # each stage is linked to the stages it reads (Prefect 3.8 also links a task run to
        # the one that ran just before it in a sequential flow)
        assert ups["data"] == set()
        assert tasks["data"].id in ups["tournament"]
        assert tasks["data"].id in ups["evolution"]
        assert tasks["tournament"].id in ups["returns"]
        assert ups["portfolio"] == {tasks["returns"].id}
        logs = [lg.message for lg in c.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[fr.id])))]
        assert any(m.startswith("stage tournament: done") for m in logs), logs
        arts = {a.key: a for a in c.read_artifacts() if a.flow_run_id == fr.id}
    assert {"small-summary", "small-leaderboard", "small-report"} <= set(arts)
    assert "Verdict" in arts["small-summary"].data and "Speedup" in arts["small-summary"].data
    assert arts["small-report"].data.startswith("[HTML report](file://")


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
    import uuid

    from prefect import flow

    from quantfleet.pipeline.prefect_flow import make_stage_task

    calls = []

    def flaky(ctx, inputs, key):
        calls.append(time.time())  # Prefect schedules a retry on the wall clock too
        if len(calls) < 3:
            raise RuntimeError("transient")
        return {"outputs": {"x": "h"}, "summary": {}, "key": key, "seconds": 0.0}

    t = make_stage_task("flaky", flaky, retries=2, retry_delay_s=0.1, result_dir=tmp_path)
    assert t.retries == 2 and t.retry_delay_seconds == [0.1, 0.2]  # exponential backoff

    @flow
    def f():
        return t(None, {}, f"flaky-{uuid.uuid4().hex}")

    assert f()["outputs"] == {"x": "h"}
    assert len(calls) == 3
    # each retry starts no earlier than its configured delay after the failure (a lower bound
    # Prefect enforces; how much later depends on the machine, so it is not asserted)
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert all(g >= d for g, d in zip(gaps, t.retry_delay_seconds, strict=True)), gaps


def _results(stages: dict) -> dict:
    """Output hashes of every stage, less the measured clocks (``timing_*``)."""
    return {k: {n: h for n, h in v["outputs"].items() if not n.startswith("timing_")}
            for k, v in stages.items()}


def _run_cli(cfg: Path, home: Path, *args: str, gate: Path | None = None,
             stdout=subprocess.PIPE) -> subprocess.Popen:
    """``quantfleet run CFG ARGS`` in its own session; with ``gate``, its evolution stage
    writes ``gate`` when it starts and then blocks until killed (tests/pipeline/held_cli.py)."""
    env = {**os.environ, "QUANTFLEET_HOME": str(home), "QUANTFLEET_METRICS": "0",
           "PYTHONUNBUFFERED": "1"}
    for k in [k for k in env if k.startswith("PREFECT_")]:
        env.pop(k)
    env.pop("QUANTFLEET_STORE", None)  # the run is recorded in the config's store
    cli = (["-m", "quantfleet.cli"] if gate is None
           else ["-m", "tests.pipeline.held_cli", str(gate), "evolution"])
    return subprocess.Popen([sys.executable, *cli, "run", str(cfg), *args], cwd=ROOT, env=env,
                            stdout=stdout, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


@pytest.mark.integration
def test_killed_run_resumes_without_recomputing_finished_stages(tmp_path):
    cfgp = tmp_path / "small.toml"
    cfgp.write_text(SMALL.format(store=tmp_path / "lake"))
    home = tmp_path / "home"
    gate, log = tmp_path / "evolution-started", tmp_path / "killed.log"
    with log.open("w") as out:
        proc = _run_cli(cfgp, home, "--no-open", gate=gate, stdout=out)
    try:
        # killed once its evolution stage has started, which then cannot finish: the kill
        # always lands mid-flow, after data and tournament were cached
        deadline = time.monotonic() + 900  # a hung run only
        while not gate.exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    seen = log.read_text()
    assert proc.returncode == -signal.SIGKILL, seen
    assert "stage tournament: done" in seen and "stage evolution" not in seen, seen

    again = _run_cli(cfgp, home, "--json")
    out, _ = again.communicate(timeout=900)  # a hung run only
    assert again.returncode == 0, out
    res = json.loads(out[out.index("{"):])
    stages = res["stages"]
    assert stages["data"]["cached"] and stages["tournament"]["cached"]
    assert not stages["evolution"]["cached"] and not stages["portfolio"]["cached"]
    assert Path(res["report"]).exists()
    # identical to an uninterrupted run of the same stage functions (content-addressed
    # artifacts), here in this process without Prefect, in a store of its own
    from quantfleet.pipeline.config import load_config
    from quantfleet.pipeline.record import run_stages

    cfg = load_config(cfgp).with_overrides({"store": str(tmp_path / "lake2")})
    fresh = run_stages(cfg, "run", log=lambda m: None)
    assert _results(fresh.stages) == _results(stages)


@pytest.mark.integration
def test_the_served_deployment_runs_the_pipeline(prefect_harness, tmp_path):
    """``quantfleet serve CONFIG`` registers the module-level flow as a deployment; a run
    started through the API (as from the UI) executes the pipeline and records it."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    from quantfleet.pipeline.prefect_flow import FLOW_NAME
    from quantfleet.store import Store

    cfgp = tmp_path / "small.toml"
    cfgp.write_text(SMALL.format(store=tmp_path / "lake").replace(
        "[evolution]", "[evolution]\nenabled = false").replace(
        "[portfolio]", "[portfolio]\nenabled = false"))
    env = {**os.environ, "QUANTFLEET_HOME": str(tmp_path / "home"), "QUANTFLEET_METRICS": "0",
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    for k in [k for k in env if k.startswith("PREFECT_") and k != "PREFECT_RUNNER_POLL_FREQUENCY"]:
        env.pop(k)
    env.pop("QUANTFLEET_STORE", None)
    api = PREFECT_API_URL.value()
    serve = subprocess.Popen([sys.executable, "-m", "quantfleet.cli", "serve", str(cfgp),
                              "--name", "served", "--prefect-api", api], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        run = None
        deadline = time.monotonic() + 300  # a hung server only
        while run is None:
            assert serve.poll() is None, serve.stdout.read()
            assert time.monotonic() < deadline
            try:
                run = run_deployment(f"{FLOW_NAME}/served", timeout=600)
            except Exception:  # not registered yet
                time.sleep(1)
        assert run.state.is_completed(), run.state
        assert run.parameters["config"]["name"] == "small"
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
    store = Store.open(str(tmp_path / "lake"))
    (rid,) = store.run_ids()
    assert store.get_run(rid).status == "succeeded"
