"""The metrics scraped by a real Prometheus (Debian's ``prometheus`` and
``prometheus-pushgateway``, installed by ``make prometheus``), on 127.0.0.1 only.

One Prometheus scrapes, every second, a live run's endpoint and a Pushgateway; the tests
ask it in PromQL for what a tournament did and compare with the run's own counts: a live
``tournament`` map on a ProcessExecutor, the ``quantfleet tournament`` command (a batch run
that ends before any scrape and pushes its figures) and ``quantfleet run`` (the Prefect flow,
which pushes the same way). Waits are bounded and wait for a
scrape that came after the work, never for a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import quantfleet
from quantfleet.compute import ProcessExecutor
from quantfleet.observe.metrics import RunMetrics
from quantfleet.research.tournament import tournament
from tests import reference as ref
from tests.compute import workloads as wl
from tests.services import PROMETHEUS, PUSHGATEWAY, Prometheus, prometheus, pushgateway, until

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or PUSHGATEWAY is None,
    reason="Debian's prometheus / prometheus-pushgateway binaries are absent: `make "
           "prometheus` installs them as root (apt-get install prometheus prometheus-pushgateway)")

class Stack(Prometheus):
    def __init__(self, prom: str, gateway: str, metrics: RunMetrics) -> None:
        super().__init__(prom)
        self.prom, self.gateway, self.metrics = prom, gateway, metrics


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("prom")
    metrics = RunMetrics()
    live = metrics.serve(0)  # the live run's endpoint, scraped as job "run"
    live_target = live.split("//", 1)[1].split("/", 1)[0]
    try:
        with pushgateway(root) as gateway, prometheus(
                root, targets={"run": live_target,
                               "pushgateway": gateway.split("//", 1)[1]},
                honor_labels=("pushgateway",)) as prom:
            yield Stack(prom.url, gateway, metrics)
    finally:
        metrics.stop()


def test_prometheus_scrapes_a_live_tournament_map(stack):
    m = stack.metrics
    market = wl.market(n_assets=2, n_bars=500)
    with ProcessExecutor(2, recorder=m.recorder()) as ex:
        res = tournament(market, ["sma_cross", "rsi"], n_windows=3, max_combos=4, executor=ex,
                         map_options={"chunk_size": 1})
        s = ex.summary
    done = time.time()
    assert res.n_backtests > 0 and not res.failed
    sel = '{job="run",stage="tournament"}'
    # a scrape that happened after the map ended carries its final counts
    until("a scrape after the map", lambda: [
        r for r in stack.query(f"timestamp(quantfleet_backtests_total{sel})")
        if float(r["value"][1]) > done])
    assert stack.value(f"quantfleet_backtests_total{sel}") == res.n_backtests
    assert stack.value(f"quantfleet_items_total{sel}") == s.ok == 4  # 2 strategies x 2 assets
    assert stack.value(f"quantfleet_tasks_submitted_total{sel}") == s.tasks == 4
    assert stack.value(f"quantfleet_tasks_started_total{sel}") == 4
    assert stack.value(f"quantfleet_tasks_finished_total{sel}") == 4
    assert stack.value(f"quantfleet_tasks_failed_total{sel}") == 0
    assert stack.value(f"quantfleet_tasks_in_flight{sel}") == 0
    assert stack.value(f"quantfleet_task_duration_seconds_count{sel}") == 4


def test_a_batch_command_pushes_and_prometheus_keeps_its_figures(stack, tmp_path):
    rng = np.random.default_rng(5)
    d = ref.random_ohlcv(rng, 400)
    csv = tmp_path / "ACME.csv"
    pd.DataFrame({"Date": pd.date_range("2018-01-01", periods=400, freq="B"),
                  **{k.capitalize(): v for k, v in d.items()}}).to_csv(csv, index=False)
    lake = tmp_path / "lake"
    env = {**os.environ, "QUANTFLEET_PUSHGATEWAY": stack.gateway,
           "QUANTFLEET_HOME": str(tmp_path / "home"), "QUANTFLEET_METRICS": "1",
           # the quantfleet this test imports
           "PYTHONPATH": os.pathsep.join([str(Path(quantfleet.__file__).parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("QUANTFLEET_METRICS_PORT", None)
    p = subprocess.run([sys.executable, "-m", "quantfleet.cli", "tournament", str(csv),
                        "--strategies", "sma_cross,rsi", "--windows", "3", "--max-combos", "4",
                        "--executor", "processes", "--workers", "2", "--store", str(lake),
                        "--json"], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    rid = out["run_id"]
    # the process is gone; its figures are in the Pushgateway, scraped into Prometheus
    sel = f'{{job="quantfleet",run_id="{rid}",stage="tournament"}}'
    until("the pushed run in Prometheus",
          lambda: stack.query(f"quantfleet_backtests_total{sel}"))
    assert stack.value(f"quantfleet_backtests_total{sel}") == out["backtests"] > 0
    assert stack.value(f"quantfleet_items_total{sel}") == 2  # 2 strategies x 1 asset
    submitted = stack.value(f"quantfleet_tasks_submitted_total{sel}")
    assert submitted >= 1
    assert stack.value(f"quantfleet_tasks_started_total{sel}") == submitted
    assert stack.value(f"quantfleet_tasks_finished_total{sel}") == submitted
    assert stack.value(f"quantfleet_tasks_in_flight{sel}") == 0
    # the store's bytes: every file the run left was written at least once, in full
    run = f'{{job="quantfleet",run_id="{rid}"}}'
    on_disk = sum(f.stat().st_size for f in lake.rglob("*") if f.is_file())
    assert stack.value(f"quantfleet_store_bytes_written_total{run}") >= on_disk > 0


FLOW = """
name = "metrics"
store = "{store}"
[data]
source = "sp500"
assets = ["AAPL", "AMD"]
[executor]
kind = "processes"
workers = 2
[tournament]
strategies = ["sma_cross", "rsi"]
train = 1500
test = 750
max_combos = 4
[evolution]
enabled = false
[portfolio]
enabled = false
[report]
enabled = false
"""


@pytest.mark.integration
def test_a_flow_run_pushes_its_figures(stack, tmp_path):
    """``quantfleet run`` (the Prefect flow) pushes when it ends, like a research command."""
    cfg = tmp_path / "metrics.toml"
    cfg.write_text(FLOW.format(store=tmp_path / "lake"))
    env = {**os.environ, "QUANTFLEET_PUSHGATEWAY": stack.gateway,
           "QUANTFLEET_HOME": str(tmp_path / "home"), "QUANTFLEET_METRICS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(quantfleet.__file__).parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    for k in [k for k in env if k.startswith("PREFECT_") or k == "QUANTFLEET_STORE"]:
        env.pop(k)
    env.pop("QUANTFLEET_METRICS_PORT", None)
    p = subprocess.run([sys.executable, "-m", "quantfleet.cli", "run", str(cfg), "--json"],
                       capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    rid = out["run_id"]
    want = out["stages"]["tournament"]["summary"]["backtests"]
    sel = f'{{job="quantfleet",run_id="{rid}",stage="tournament"}}'
    until("the pushed flow run in Prometheus",
          lambda: stack.query(f"quantfleet_backtests_total{sel}"))
    assert stack.value(f"quantfleet_backtests_total{sel}") == want > 0
    assert stack.value(f"quantfleet_items_total{sel}") == 4  # 2 strategies x 2 assets
    assert stack.value(f"quantfleet_tasks_started_total{sel}") == \
        stack.value(f"quantfleet_tasks_finished_total{sel}")
    assert stack.value(f'quantfleet_store_bytes_written_total{{run_id="{rid}"}}') > 0
