"""Driver for the multi-node test, run in its own process (never the session's Ray).

A 0-CPU head and two 1-CPU worker nodes. The map goes through a gate
(``workloads.NodeGate``): the first task to start writes where it runs and blocks; that node
is SIGKILLed while it runs the task, a replacement added and the gate released. Prints one
JSON line with the outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)


def main() -> int:
    import ray
    from ray.cluster_utils import Cluster

    from quantfleet.compute import SerialExecutor
    from quantfleet.compute.ray import RayExecutor
    from tests.compute import workloads as wl

    gate = wl.NodeGate(tempfile.mkdtemp(prefix="qf-gate-"))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,  # no fixed dashboard port to collide on
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_timeout_ms": 500},
    })
    try:
        nodes = {n.node_id: n for n in (cluster.add_node(num_cpus=1) for _ in range(2))}
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        items = list(range(16))
        want = list(SerialExecutor().map(wl.slow, items, 0.05, chunk_size=1))
        ex = RayExecutor(max_retries=3)
        assert ex.workers == 2, ex.workers
        fn, pairs = gate.wrap(wl.slow, items)
        got, claim = gate.kill_claimed_node(
            lambda: list(ex.map(fn, pairs, 0.05, chunk_size=1, stage="cluster")), cluster, nodes)
        s = ex.summary
        nodes_used = sorted({sp.node for sp in ex.spans})
        again = [r for r in gate.runs()
                 if r["index"] == claim["index"] and r["node"] != claim["node"]]
        ex.close()
        print("RESULT " + json.dumps({
            "identical": got == want, "ok": s.ok, "failed": s.failed, "lost": s.lost,
            "tasks": s.tasks, "claim": claim, "victim_task_rerun_elsewhere": len(again),
            "nodes_used": len(nodes_used), "nodes_ran": len({r["node"] for r in gate.runs()}),
        }))
        return 0
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(gate.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
