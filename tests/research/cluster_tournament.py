"""Driver for the multi-node tournament test, in its own process (never the session's Ray).

A 0-CPU head and two 1-CPU worker nodes; once the tournament's first tasks have finished, one
worker node is SIGKILLed and a replacement added; prints one JSON line with the outcome.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)


def main() -> int:
    import numpy as np
    import ray
    from ray.cluster_utils import Cluster

    from quantfleet.compute.ray import RayExecutor
    from quantfleet.data.market import MarketData
    from quantfleet.research.tournament import tournament
    from tests import reference as ref
    from tests.research.test_distributed import table_bytes

    rng = np.random.default_rng(4)
    close = np.stack([ref.random_close(rng, 1500, 0.015) for _ in range(4)])
    ts = (np.datetime64("2010-01-01") + np.arange(1500)).astype("datetime64[ns]")
    market = MarketData(ts, ("W", "X", "Y", "Z"), close, source="cluster")

    def run(executor):
        return tournament(market, ["sma_cross", "rsi", "bollinger"], train=300, test=100,
                          max_combos=40, executor=executor,
                          map_options={"chunk_size": 1, "retries": 2})

    want = run(None)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_timeout_ms": 500},
    })
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        ex = RayExecutor(max_retries=3)
        # the tournament drives Ray from a thread; the node is killed from the main thread
        # (ray.cluster_utils needs it) once the first tasks have finished
        box: dict = {}
        th = threading.Thread(target=lambda: box.update(got=run(ex)), daemon=True)
        t0 = time.time()
        th.start()
        killed = False
        victim = nodes[0].node_id
        while th.is_alive():
            # kill the node once it has finished work of its own, mid-tournament
            if not killed and any(sp.node == victim for sp in list(ex.spans.spans)):
                cluster.remove_node(nodes[0], allow_graceful=False)
                cluster.add_node(num_cpus=1)
                killed = True
            time.sleep(0.02)
        th.join()
        got = box["got"]
        nodes_used = {sp.node for sp in ex.spans.spans if sp.node}
        print("RESULT " + json.dumps({
            "killed": killed,
            "identical": table_bytes(got.table) == table_bytes(want.table),
            "failed": len(got.failed), "lost": ex.summary.lost, "wall_s": time.time() - t0,
            "nodes_used": len(nodes_used), "backtests": got.n_backtests,
            "victim_spans": sum(sp.node == victim for sp in ex.spans.spans),
        }))
        ex.close()
        return 0
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
