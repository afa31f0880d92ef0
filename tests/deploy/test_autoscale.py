"""Dynamic provisioning for real: Ray's autoscaler (fake_multinode provider) adds worker nodes
for tasks waiting for CPUs, a quantfleet tournament runs on the added nodes (every backtest on
them, the same tables as a serial run), and the autoscaler removes them once idle. The order is
enforced, not timed (tests/deploy/autoscale_driver.py); a map growing onto nodes that join
mid-map is tests/compute/test_elastic.py's.

The head is started by ``quantfleet cluster up`` (``RAY_FAKE_CLUSTER=1 ray start --head
--num-cpus=0 --autoscaling-config=... --block`` on a free port, its own temp dir) and the
driver runs in a subprocess (``python -m tests.deploy.autoscale_driver``), so this pytest
process never calls ``ray.init``. The head is stopped by its PID; never ``ray stop``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantfleet.cluster import _live_pids, stop_head

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantfleet.cli", "cluster", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=_env())


def _config(tmp_path: Path, max_nodes: int) -> Path:
    """The shipped fake_multinode config with room for ``max_nodes`` 1-CPU nodes."""
    import yaml

    from quantfleet.cluster import deploy_dir

    cfg = yaml.safe_load((deploy_dir() / "ray" / "fake_multinode.yaml").read_text())
    cfg["max_workers"] = max_nodes
    cfg["available_node_types"]["ray.worker.cpu"]["max_workers"] = max_nodes
    out = tmp_path / "autoscaling.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


@pytest.mark.integration
def test_autoscaler_adds_nodes_on_demand_and_removes_them_when_idle(tmp_path):
    state_dir = tmp_path / "cluster"
    state_file = state_dir / "state.json"
    up = None
    try:
        up = _cli("up", "--state-dir", str(state_dir), "--config", str(_config(tmp_path, 3)),
                  "--json")
        assert up.returncode == 0, up.stderr
        state = json.loads(up.stdout)
        assert state["pid"] > 0 and state["port"] != 6379

        st = _cli("status", "--state-dir", str(state_dir), "--json")
        assert st.returncode == 0, st.stderr
        assert json.loads(st.stdout)["alive"] == 1  # the 0-CPU head alone

        drv = subprocess.run([sys.executable, "-m", "tests.deploy.autoscale_driver",
                              state["address"]], capture_output=True, text=True, cwd=ROOT,
                             env=_env(), timeout=600)  # fails a hung run only
        line = [ln for ln in drv.stdout.splitlines() if ln.startswith("RESULT ")]
        assert line, f"driver failed ({drv.returncode}):\n{drv.stderr[-3000:]}"
        r = json.loads(line[0].removeprefix("RESULT "))
        print("autoscaling:", json.dumps(r))
        print("tasks running per second of the map:", r.get("running_per_s"))
        assert drv.returncode == 0, r
        assert r["head_nodes"] == 1
        # nodes were added on demand (two 1-CPU tasks waiting for each other's node): the head
        # has no CPU, so every backtest ran on them (read from the spans: the sampled timeline
        # may miss a node that came and went in between); the map started with both nodes up,
        # so its first two tasks ran on different nodes
        assert r["workers_seen"] >= 2
        assert r["spans_on_head"] == 0 and r["span_nodes_added"] >= 2
        # the executor read the added nodes' CPUs as its capacity and kept them both busy
        assert max(w for _, w in r["capacity"]) >= 2, r
        assert r["peak_inflight"] >= 2, r
        # no task timed out waiting for a node (deadlines run from a task's start), nothing
        # failed, and every table equals the serial run's
        assert r["failed"] == 0 and r["lost"] == 0 and r["backtests"] > 0, r
        assert all(r["same_as_serial"].values()), r["same_as_serial"]
        # ...and removed after the idle timeout (6 s): back to the head alone
        assert r["back_to_head_at"] is not None, r["timeline"]
        assert r["timeline"][-1][1] == 1

        down = _cli("down", "--state-dir", str(state_dir), "--json")
        assert down.returncode == 0, down.stderr
        assert not state_file.exists()
        assert not _live_pids(lambda cmd, _pg: state["temp_dir"] in cmd)
    finally:
        if state_file.exists():  # the test failed midway: stop the head by its PID
            s = json.loads(state_file.read_text())
            stop_head(int(s["pid"]), s.get("temp_dir"))
        elif up is not None and up.returncode != 0:
            pass  # local_up stops a head that failed to start
