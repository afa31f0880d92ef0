"""A real multi-process Ray cluster on this machine: a 0-CPU head (with the dashboard, which
Ray Jobs needs) and a 2-CPU worker, each started by ``ray start --block`` as a separate
process in its own session, stopped by PID at the end (``cluster.stop_head``), never with
``ray stop`` (which kills every Ray process on the machine) and never ``ray.init()`` here.

Every node gets its own dashboard-agent, gRPC, runtime-env and metrics ports (the defaults
collide on one host) and the cluster a short temp dir of its own (Ray's socket paths must
stay under ~107 characters). Ready means: the dashboard answers ``/api/version`` and the
worker's CPUs are registered (``/api/v0/nodes``). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from quantfleet.cluster import _free_port, _pid_alive, _ray_env, _ray_exe, stop_head

__all__ = ["NativeCluster", "start_cluster"]

SRC = Path(__file__).resolve().parents[2] / "src"


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


@dataclass
class NativeCluster:
    gcs: str  # 127.0.0.1:PORT, for ray start --address / ray.init
    dashboard: str  # http://127.0.0.1:PORT, for Ray Jobs
    temp_dir: str
    log_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)  # [head, worker]
    metrics: list[str] = field(default_factory=list)  # each node's Ray metrics, HOST:PORT

    def alive_cpus(self) -> float:
        """CPUs of the alive nodes, as the dashboard's state API reports them."""
        doc = _get_json(f"{self.dashboard}/api/v0/nodes?limit=100")
        nodes = doc["data"]["result"]["result"]
        return sum(n.get("resources_total", {}).get("CPU", 0.0) for n in nodes
                   if n.get("state") == "ALIVE")

    def worker_node_ids(self) -> set[str]:
        """Node ids of the alive nodes that have CPUs (the head has none)."""
        doc = _get_json(f"{self.dashboard}/api/v0/nodes?limit=100")
        return {n["node_id"] for n in doc["data"]["result"]["result"]
                if n.get("state") == "ALIVE" and n.get("resources_total", {}).get("CPU", 0) > 0}

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.log_dir.glob("*.log")))

    def stop(self) -> list[int]:
        """Worker first, then the head, each by its PID (SIGTERM to its process group,
        SIGKILL after a grace period), then anything left under this cluster's temp dir."""
        left: list[int] = []
        for i, p in reversed(list(enumerate(self.procs))):
            # the last sweep (the head's) kills whatever either node left under temp_dir
            left += stop_head(p.pid, self.temp_dir if i == 0 else None)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return left


def start_cluster(log_dir: Path, *, worker_cpus: int = 2, env: dict[str, str] | None = None,
                  wait_s: float = 240.0) -> NativeCluster:
    """Start the head and one worker; return once Jobs can be submitted and the worker's CPUs
    are registered. ``env`` is added to both nodes' environment (a job's driver and tasks
    inherit it). On any failure everything started so far is stopped."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="qfj-", dir="/tmp")
    port, dash = _free_port(), _free_port()
    # the job's driver and the cluster's tasks import this checkout's quantfleet; `python`
    # on PATH is this venv's (the job's entrypoint calls `python -m quantfleet.cli`)
    node_env = _ray_env({"PYTHONPATH": os.pathsep.join(
        [str(SRC)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                      if p and Path(p).is_absolute()]),
        "PATH": os.pathsep.join([str(Path(_ray_exe()).parent), os.environ.get("PATH", "")]),
        **(env or {})})
    common = ["--block", "--disable-usage-stats", "--object-store-memory=300000000"]

    metrics: list[str] = []

    def node_ports() -> list[str]:
        metrics.append(f"127.0.0.1:{_free_port()}")
        return [f"--dashboard-agent-listen-port={_free_port()}",
                f"--dashboard-agent-grpc-port={_free_port()}",
                f"--runtime-env-agent-port={_free_port()}",
                f"--metrics-export-port={metrics[-1].rsplit(':', 1)[1]}"]

    head = [_ray_exe(), "start", "--head", "--num-cpus=0", f"--port={port}",
            f"--temp-dir={temp_dir}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}", f"--ray-client-server-port={_free_port()}",
            *node_ports(), *common]
    # each node its own temp dir: nodes sharing one also share runtime_resources/, and a
    # node's runtime-env agent then deletes a job's working_dir under its driver's feet
    worker = [_ray_exe(), "start", f"--address=127.0.0.1:{port}", f"--num-cpus={worker_cpus}",
              f"--temp-dir={temp_dir}/w", *node_ports(), *common]
    c = NativeCluster(gcs=f"127.0.0.1:{port}", dashboard=f"http://127.0.0.1:{dash}",
                      temp_dir=temp_dir, log_dir=log_dir, metrics=metrics)

    def launch(cmd: list[str], name: str) -> subprocess.Popen:
        with open(log_dir / f"{name}.log", "wb") as fh:
            p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=node_env,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        c.procs.append(p)
        return p

    def until(what: str, fn) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            for p in c.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{what}: `ray start` (pid {p.pid}) exited with code "
                                       f"{p.returncode}\n{c.logs()}")
            try:
                if fn():
                    return
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {wait_s:g} s\n{c.logs()}")
            time.sleep(0.5)

    try:
        launch(head, "head")
        # the dashboard (Ray Jobs' API) answers some seconds after the GCS does
        until("the head's dashboard", lambda: _get_json(f"{c.dashboard}/api/version"))
        launch(worker, "worker")
        until(f"the worker's {worker_cpus} CPUs", lambda: c.alive_cpus() >= worker_cpus)
    except BaseException:
        c.stop()
        raise
    assert all(_pid_alive(p.pid) for p in c.procs)
    return c
