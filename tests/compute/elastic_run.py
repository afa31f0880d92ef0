"""Driver for the elastic-map test, run in its own process (never the session's Ray).

A 0-CPU head: the map's first tasks cannot start. Once the first task has been submitted
the driver waits longer than that task's deadline (``timeout_s`` + the grace) would allow
from submission, then adds three 1-CPU nodes; the map must count them (its capacity
re-read), keep more tasks in flight than it started with, run on them, and time nothing
out. Prints one ``RESULT {json}`` line.
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

TIMEOUT_S = 2.0
ITEM_S = 0.3
N_ITEMS = 60


def concurrency(spans, t0: float, step: float = 1.0) -> list[float]:
    """Tasks running per ``step`` seconds from ``t0``: the span time inside each step / step."""
    spans = [sp for sp in spans if sp.worker]
    if not spans:
        return []
    end = max(sp.end for sp in spans)
    out = []
    t = t0
    while t < end:
        busy = sum(max(0.0, min(sp.end, t + step) - max(sp.start, t)) for sp in spans)
        out.append(round(busy / step, 2))
        t += step
    return out


def main() -> int:
    import ray
    from ray.cluster_utils import Cluster

    from quantfleet.compute.ray import RayExecutor
    from tests.compute import workloads as wl

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_timeout_ms": 500},
    })
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        head = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        ex = RayExecutor(max_retries=3)
        items = list(range(N_ITEMS))
        box: dict = {}
        t_map = time.time()

        def work() -> None:
            try:
                box["got"] = list(ex.map(wl.slow, items, ITEM_S, chunk_size=1,
                                         timeout_s=TIMEOUT_S, retries=0, stage="elastic"))
            except BaseException as e:  # noqa: BLE001
                box["err"] = repr(e)

        th = threading.Thread(target=work, daemon=True)
        th.start()
        while ex.summary.tasks < 1 and th.is_alive():  # the map's first task is submitted
            time.sleep(0.05)
        t_sub = time.time()
        deadline_s = TIMEOUT_S + ex.timeout_grace_s
        time.sleep(deadline_s + 2.0)
        for _ in range(3):
            cluster.add_node(num_cpus=1, wait=False)
        cluster.wait_for_nodes()
        th.join()
        if "err" in box:
            print("RESULT " + json.dumps({"error": box["err"]}))
            return 1
        s = ex.summary
        spans = [sp for sp in ex.spans.spans if sp.worker]
        nodes = {sp.node for sp in spans}
        print("RESULT " + json.dumps({
            "identical": box["got"] == [float(i) ** 0.5 for i in items],
            "failed": s.failed, "lost": s.lost, "tasks": s.tasks,
            "capacity": s.capacity, "peak_inflight": s.peak_inflight,
            "first_wait_s": round(min(sp.start for sp in spans) - t_sub, 2),
            "deadline_s": deadline_s,
            "span_nodes_added": len(nodes - head), "span_nodes_head": len(nodes & head),
            "running_per_s": concurrency(spans, t_map),
        }), flush=True)
        ex.close()
        return 0
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
