"""Driver for the multi-node test, run in its own process (never the session's Ray).

A 0-CPU head and two 1-CPU worker nodes; one worker node is SIGKILLed mid-map and a
replacement added; prints one JSON line with the outcome.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)


def main() -> int:
    import ray
    from ray.cluster_utils import Cluster

    from quantfleet.compute import SerialExecutor
    from quantfleet.compute.ray import RayExecutor
    from tests.compute import workloads as wl

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_timeout_ms": 500},
    })
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        items = list(range(16))
        want = list(SerialExecutor().map(wl.slow, items, 0.4, chunk_size=1))
        ex = RayExecutor(max_retries=3)
        assert ex.workers == 2, ex.workers
        got, killed_at = [], None
        t0 = time.time()
        for r in ex.map(wl.slow, items, 0.4, chunk_size=1, stage="cluster"):
            got.append(r)
            if len(got) == 3:
                killed_at = time.time() - t0
                cluster.remove_node(nodes[0], allow_graceful=False)
                cluster.add_node(num_cpus=1)
        s = ex.summary
        nodes_used = sorted({sp.node for sp in ex.spans})
        ex.close()
        print("RESULT " + json.dumps({
            "identical": got == want, "ok": s.ok, "failed": s.failed, "lost": s.lost,
            "tasks": s.tasks, "killed_at": killed_at, "wall_s": time.time() - t0,
            "nodes_used": len(nodes_used),
        }))
        return 0
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
