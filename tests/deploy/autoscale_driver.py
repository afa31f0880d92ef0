"""Driver for the autoscaling test, run as ``python -m tests.deploy.autoscale_driver ADDRESS``.

Connects to a fake_multinode autoscaling head (0 CPUs). Two 1-CPU tasks that each wait until
two worker nodes are alive put demand on the autoscaler, which adds two nodes for them (a
1-CPU node runs one of them, so each needs its own). Then one quantfleet tournament runs
through ``RayExecutor()`` on the nodes the autoscaler added, while ``ray.nodes()`` is sampled;
it is compared with the same tournament run serially, and the driver waits for the idle nodes
to be removed. Prints one ``RESULT {json}`` line, with the tasks running per second of the map
(from the spans). Ordering, not timing: the map starts once both nodes are up, so its first
two tasks land on different nodes however fast the machine runs them (a map that outran the
autoscaler's second node made an earlier version of this test fail on a fast run; a map
growing onto nodes that join mid-map is tests/compute/test_elastic.py's, made deterministic
there).
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

    @ray.remote(num_cpus=1)
    def hold_until(n_alive: int, timeout_s: float) -> bool:
        import time as _t

        import ray as _ray

        end = _t.time() + timeout_s
        while _t.time() < end:
            if sum(1 for n in _ray.nodes() if n["Alive"]) >= n_alive:
                return True
            _t.sleep(0.2)
        return False

    seen: set[str] = set(head)
    holders = [hold_until.remote(len(head) + 2, 240.0) for _ in range(2)]
    while True:
        ready, _ = ray.wait(holders, num_returns=2, timeout=0.25)
        seen.update(alive())
        sample()
        if len(ready) == 2:
            break
    if not all(ray.get(holders)):
        print("RESULT " + json.dumps({"error": "the autoscaler did not add 2 nodes in 240 s",
                                      "timeline": timeline}))
        return 1
    box: dict = {}
    t_map = time.time()

    def work() -> None:
        try:
            box["res"] = run(m, ex)
        except BaseException as e:  # noqa: BLE001
            box["err"] = repr(e)

    th = threading.Thread(target=work, daemon=True)
    th.start()
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
