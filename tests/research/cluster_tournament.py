"""Driver for the multi-node tournament test, in its own process (never the session's Ray).

A 0-CPU head and two 1-CPU worker nodes. The tournament's map goes through a gate
(``tests.compute.workloads.NodeGate``): the first of its tasks to start writes where it runs
and blocks. That node is then SIGKILLed, a replacement added and the gate released, so the
kill always hits a node that is running a task of the map, however fast the machine is.
Prints one JSON line with the outcome.
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
    import numpy as np
    import ray
    from ray.cluster_utils import Cluster

    from quantfleet.compute.ray import RayExecutor
    from quantfleet.data.market import MarketData
    from quantfleet.research.tournament import tournament
    from tests import reference as ref
    from tests.compute.workloads import NodeGate
    from tests.research.test_distributed import table_bytes

    rng = np.random.default_rng(4)
    close = np.stack([ref.random_close(rng, 1500, 0.015) for _ in range(4)])
    ts = (np.datetime64("2010-01-01") + np.arange(1500)).astype("datetime64[ns]")
    market = MarketData(ts, ("W", "X", "Y", "Z"), close, source="cluster")

    class GatedRayExecutor(RayExecutor):
        """The tournament's own map, each task behind the gate."""

        def __init__(self, gate: NodeGate, **kw) -> None:
            super().__init__(**kw)
            self.gate = gate
            self.maps = 0

        def map(self, fn, items, shared=None, **kw):
            self.maps += 1
            fn, pairs = self.gate.wrap(fn, items)
            return super().map(fn, pairs, shared, **kw)

    def run(executor):
        return tournament(market, ["sma_cross", "rsi", "bollinger"], train=300, test=100,
                          max_combos=40, executor=executor,
                          map_options={"chunk_size": 1, "retries": 2})

    want = run(None)
    gate = NodeGate(tempfile.mkdtemp(prefix="qf-gate-"))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,  # no fixed dashboard port to collide on
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_timeout_ms": 500},
    })
    try:
        nodes = {n.node_id: n for n in (cluster.add_node(num_cpus=1) for _ in range(2))}
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        ex = GatedRayExecutor(gate, max_retries=3)
        # the tournament drives Ray from a thread; the node is killed from the main thread
        # (ray.cluster_utils needs it) once a task of the map says it runs there
        got, claim = gate.kill_claimed_node(lambda: run(ex), cluster, nodes)
        runs = gate.runs()
        again = [r for r in runs if r["index"] == claim["index"] and r["node"] != claim["node"]]
        nodes_used = {sp.node for sp in ex.spans.spans if sp.node}
        print("RESULT " + json.dumps({
            "maps": ex.maps, "claim": claim,
            "victim_task_rerun_elsewhere": len(again),
            "identical": table_bytes(got.table) == table_bytes(want.table),
            "failed": len(got.failed), "lost": ex.summary.lost,
            "nodes_used": len(nodes_used), "nodes_ran": len({r["node"] for r in gate.runs()}), "backtests": got.n_backtests,
            "victim_ok_spans": sum(sp.node == claim["node"] and sp.ok for sp in ex.spans.spans),
        }))
        ex.close()
        return 0
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(gate.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
