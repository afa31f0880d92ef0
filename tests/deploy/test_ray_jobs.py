"""``quantfleet submit`` and ``quantfleet jobs status|logs|stop`` against a real multi-process
Ray cluster (tests/deploy/native_cluster.py: ``ray start --head`` with 0 CPUs and ``ray
start --address`` with 2, separate processes, stopped by PID), through the commands a user
types, each in its own process: this pytest process never calls ``ray.init``.

The job's run is recorded under the run id ``submit`` printed before the job started, in a
local-folder store the test then reads with ``quantfleet runs show``; its backtests ran as
Ray tasks on the worker node (the head has no CPUs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantfleet.cluster import _live_pids
from quantfleet.store.runs import source_fingerprint
from tests import reference as ref
from tests.services import free_port, until

ROOT = Path(__file__).resolve().parents[2]

SMALL = """
name = "jobsmall"
store = "lake-not-used"
[data]
source = "{data}"
[executor]
kind = "serial"
[tournament]
strategies = ["sma_cross", "rsi"]
train = 500
test = 250
max_combos = 4
[evolution]
enabled = false
[portfolio]
enabled = false
[report]
enabled = false
"""

# minutes of work on 2 CPUs: stopped long before it could end
LONG = """
name = "joblong"
[data]
source = "sp500"
[tournament]
strategies = ["all"]
train = 1000
test = 250
max_combos = 5000
[evolution]
population = 200
generations = 50
[report]
enabled = false
"""


def qf(*args: str, timeout: float = 600, env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items()
         if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "QUANTFLEET_STORE")
         and not k.startswith("PREFECT_")}
    e.update(RAY_AUTH_MODE="disabled", QUANTFLEET_METRICS="0",
             PYTHONPATH=os.pathsep.join([str(ROOT / "src"), e.get("PYTHONPATH", "")]))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "quantfleet.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=e)


def one_line_error(p: subprocess.CompletedProcess, *parts: str) -> str:
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert all(s in lines[0] for s in parts), lines[0]
    return lines[0]


@pytest.fixture()
def small_cfg(tmp_path) -> Path:
    """A small config on a local CSV (one asset, ACME, 1,500 business days)."""
    rng = np.random.default_rng(11)
    d = ref.random_ohlcv(rng, 1500)
    csv = tmp_path / "data" / "ACME.csv"
    csv.parent.mkdir()
    pd.DataFrame({"Date": pd.date_range("2015-01-01", periods=1500, freq="B"),
                  **{k.capitalize(): v for k, v in d.items()}}).to_csv(csv, index=False)
    p = tmp_path / "small.toml"
    p.write_text(SMALL.format(data=csv))
    return p


@pytest.mark.integration
def test_submit_runs_the_pipeline_as_a_ray_job(native_cluster, prefect_api, small_cfg,
                                               tmp_path):
    c, lake = native_cluster, tmp_path / "lake"
    # --ship-package: this quantfleet goes as the job's py_modules (the cluster's PYTHONPATH
    # has this checkout too; the shipped copy, outside any git checkout, comes first)
    p = qf("submit", str(small_cfg), "--address", c.dashboard, "--store", str(lake),
           "--prefect-api", prefect_api, "--ship-package", "--set", "tournament.max_combos=3")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    m = re.search(r"submitted job (quantfleet-(\S+)) \(run (\S+)\)", p.stdout)
    assert m and m.group(2) == m.group(3), p.stdout[:2000]
    job, rid = m.group(1), m.group(3)
    # the run id was printed before the job's log, which streamed through submit's stdout
    assert p.stdout.index(rid) < p.stdout.index(f"Running entrypoint for job {job}")
    assert f"run {rid} finished in" in p.stdout
    assert p.stdout.rstrip().splitlines()[-2:] == [
        f"job {job}: SUCCEEDED", f"run {rid}: quantfleet runs show {rid} --store {lake}"]

    show = json.loads(qf("runs", "show", rid, "--store", str(lake), "--json").stdout)
    assert show["run_id"] == rid and show["status"] == "succeeded"
    assert show["executor"]["kind"] == "ray" and show["config"]["name"] == "jobsmall"
    assert show["config"]["tournament"]["max_combos"] == 3  # --set reached the run
    # the CSV travelled with the job (its working_dir) and the run read that copy
    assert show["config"]["data"]["source"] == "ACME.csv"
    assert show["metrics"]["data"]["assets"] == 1 and show["metrics"]["data"]["bars"] == 1500
    # the driver ran the shipped copy: the same sources, but no git checkout around them
    assert show["code"]["source"] == source_fingerprint()
    assert show["code"]["git_commit"] is None
    # the backtests ran as Ray tasks on the worker node: the head has no CPUs
    rows = json.loads(qf("query", f"select distinct node from spans where run_id = '{rid}' "
                         "and node <> 'driver'", "--store", str(lake), "--json").stdout)
    nodes = {r["node"] for r in rows}
    assert nodes and nodes <= c.worker_node_ids(), (nodes, c.worker_node_ids())

    st = json.loads(qf("jobs", "status", job, "--address", c.dashboard, "--json").stdout)
    assert st["status"] == "SUCCEEDED" and st["run_id"] == rid and st["store"] == str(lake)
    logs = qf("jobs", "logs", rid, "--address", c.dashboard)  # the run id finds its job too
    assert logs.returncode == 0 and f"run {rid} finished in" in logs.stdout
    follow = qf("jobs", "logs", job, "--follow", "--address", c.dashboard, timeout=120)
    assert follow.returncode == 0 and f"run {rid} finished in" in follow.stdout  # ended: returns
    one_line_error(qf("jobs", "status", "quantfleet-no-such-run", "--address", c.dashboard),
                   "job 'quantfleet-no-such-run': not on this cluster")


@pytest.mark.integration
def test_jobs_stop_stops_a_running_job(native_cluster, prefect_api, tmp_path):
    c, lake = native_cluster, tmp_path / "lake"
    cfg = tmp_path / "long.toml"
    cfg.write_text(LONG)
    p = qf("submit", str(cfg), "--address", c.dashboard, "--store", str(lake),
           "--prefect-api", prefect_api, "--no-wait", "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    job, rid = info["job_id"], info["run_id"]
    assert job == f"quantfleet-{rid}" and info["status"] in ("PENDING", "RUNNING")
    # running for real: the job's run has written its manifest to the store
    until("the job's run recorded as running",
          lambda: (lake / "runs" / rid / "manifest.json").exists(), wait_s=240)
    assert json.loads(qf("jobs", "status", job, "--address", c.dashboard,
                         "--json").stdout)["status"] == "RUNNING"
    s = qf("jobs", "stop", job, "--address", c.dashboard)
    assert s.returncode == 0 and s.stdout.strip() == f"job {job}: STOPPED", s.stdout + s.stderr
    st = json.loads(qf("jobs", "status", rid, "--address", c.dashboard, "--json").stdout)
    assert st["status"] == "STOPPED"
    # the driver (and the shell around it) are gone; the run never finished
    until("the job's driver gone",
          lambda: not _live_pids(lambda cmd, _g: f"--run-id {rid}" in cmd), wait_s=60)
    show = json.loads(qf("runs", "show", rid, "--store", str(lake), "--json").stdout)
    assert show["status"] != "succeeded"
    again = qf("jobs", "stop", job, "--address", c.dashboard)
    assert again.returncode == 0 and again.stdout.strip() == f"job {job}: already STOPPED"


def test_a_bad_address_is_one_line_and_exit_2(small_cfg):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    one_line_error(qf("submit", str(small_cfg), "--address", dead),
                   f"--address {dead}: cannot reach Ray's job API")
    one_line_error(qf("submit", str(small_cfg), "--address", "127.0.0.1:6379"),
                   "expected the Ray dashboard's http(s) URL")
    one_line_error(qf("submit", str(small_cfg)), "--address: give the cluster's Ray dashboard")
    one_line_error(qf("jobs", "status", "x", "--address", dead), "cannot reach Ray's job API")
    one_line_error(qf("jobs", "stop", "x", "--address", dead), "cannot reach Ray's job API")
    one_line_error(qf("submit", str(small_cfg), "--address", dead, "--env", "NOEQUALS"),
                   "--env 'NOEQUALS': expected KEY=VALUE")
    one_line_error(qf("submit", str(small_cfg), "--address", dead, "--executor", "gpu"),
                   "executor.kind")
    one_line_error(qf("submit", str(small_cfg), "--address", dead, "--store", "memory://x"),
                   "--store memory://x: a memory:// store lives and dies with the job's driver")


def test_run_id_must_be_new_and_valid(small_cfg, tmp_path):
    from quantfleet.store import Store

    lake = tmp_path / "lake"
    Store.open(str(lake)).start_run("run", run_id="taken-1")
    one_line_error(qf("run", str(small_cfg), "--store", str(lake), "--run-id", "taken-1"),
                   "--run-id 'taken-1': a run with this id is already in")
    one_line_error(qf("run", str(small_cfg), "--store", str(lake), "--run-id", "a b/c"),
                   "run id 'a b/c': use letters, digits")
    one_line_error(qf("run", str(small_cfg), "--no-store", "--run-id", "fresh-1"),
                   "--run-id names a recorded run")
