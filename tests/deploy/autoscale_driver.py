"""Driver for the autoscaling test, run as ``python -m tests.deploy.autoscale_driver ADDRESS``.

Connects to a fake_multinode autoscaling head (0 CPUs), runs one quantfleet tournament on it
through ``RayExecutor()`` (workers read from the cluster while the map runs: an elastic map)
while sampling ``ray.nodes()``, compares it with the same tournament run serially, then waits
for the idle nodes to be removed; prints one ``RESULT {json}`` line, with the tasks running
per second of the map (from the spans).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.pop("RAY_ADDRESS", None)

STRATEGIES = ["sma_cross", "rsi", "bollinger", "ema_cross"]
# a hang guard per item; a task's deadline (timeout_s per item + the grace) runs from its
# start on a worker, so the first tasks wait for the autoscaler's nodes without using it up
# (tests/compute/elastic_run.py makes a task wait past its deadline from submission)
TIMEOUT_S = 60.0


def market():
    from quantfleet.data.synthetic import gbm

    return gbm(bars=2000, assets=6, seed=11, freq="1D")


def run(m, executor):
    from quantfleet.research.tournament import tournament

    opts = {"retries": 2, "timeout_s": TIMEOUT_S} if executor is not None else None
    return tournament(m, STRATEGIES, n_windows=5, max_combos=64, executor=executor,
                      map_options=opts)


def running_per_s(spans, t0: float, step: float = 1.0) -> list[float]:
    """Tasks running in each ``step`` seconds from ``t0``: the spans' time inside it / step."""
    if not spans:
        return []
    end = max(sp.end for sp in spans)
    out, t = [], t0
    while t < end:
        busy = sum(max(0.0, min(sp.end, t + step) - max(sp.start, t)) for sp in spans)
        out.append(round(busy / step, 2))
        t += step
    return out


def main(address: str, idle_wait_s: float = 90.0) -> int:
    import ray

    from quantfleet.compute.ray import RayExecutor
    from quantfleet.observe.spans import DRIVER_NODE
    from tests.research.test_distributed import table_bytes

    m = market()
    t0 = time.time()
    ex = RayExecutor(address=address, init_kwargs={"log_to_driver": False})

    def alive() -> list[str]:
        return sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])

    timeline: list[tuple[float, int]] = []

    def sample() -> int:
        n = len(alive())
        if not timeline or timeline[-1][1] != n:
            timeline.append((round(time.time() - t0, 1), n))
        return n

    head = alive()
    box: dict = {}
    t_map = time.time()

    def work() -> None:
        try:
            box["res"] = run(m, ex)
        except BaseException as e:  # noqa: BLE001
            box["err"] = repr(e)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    seen: set[str] = set(head)
    while th.is_alive():
        seen.update(alive())
        sample()
        time.sleep(0.25)
    th.join()
    run_done = time.time() - t0
    if "err" in box:
        print("RESULT " + json.dumps({"error": box["err"], "timeline": timeline}))
        return 1
    res = box["res"]
    s = ex.summary
    spans = [sp for sp in ex.spans.spans if sp.worker and sp.node != DRIVER_NODE]
    span_nodes = sorted({sp.node for sp in spans})
    # the nodes that ran tasks were alive, whether or not a 0.25 s sample caught them
    seen.update(span_nodes)
    # the same tournament in this process, while the nodes sit idle
    ser = run(m, None)
    same = {
        "table": table_bytes(ser.table) == table_bytes(res.table),
        "leaderboard": ser.leaderboard.equals(res.leaderboard),
        "overfit": ser.overfit.equals(res.overfit),
        "oos_returns": ser.oos_returns.equals(res.oos_returns),
        "winner_overfit": json.dumps(ser.winner_overfit, sort_keys=True, default=str)
        == json.dumps(res.winner_overfit, sort_keys=True, default=str),
    }
    back_at = None
    deadline = time.time() + idle_wait_s
    while time.time() < deadline:
        if sample() == len(head):
            back_at = time.time() - t0
            break
        time.sleep(0.5)
    ex.close()
    print("RESULT " + json.dumps({
        "timeline": timeline, "head_nodes": len(head),
        "max_alive": max(n for _, n in timeline), "workers_seen": len(seen - set(head)),
        "first_worker_at": next((t for t, n in timeline if n > len(head)), None),
        "run_done_at": round(run_done, 1),
        "back_to_head_at": None if back_at is None else round(back_at, 1),
        "backtests": res.n_backtests, "rows": res.n_rows, "failed": len(res.failed),
        "lost": s.lost, "tasks": s.tasks, "chunks": s.chunks, "capacity": s.capacity,
        "peak_inflight": s.peak_inflight, "same_as_serial": same,
        "span_nodes": len(span_nodes),
        "span_nodes_added": sum(1 for n in span_nodes if n not in head),
        "spans_on_head": sum(1 for n in span_nodes if n in head),
        "first_task_wait_s": round(min(sp.start for sp in spans) - t_map, 1),
        "running_per_s": running_per_s(spans, t_map),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
