"""Driver for the autoscaling test, run as ``python -m tests.deploy.autoscale_driver ADDRESS``.

Connects to a fake_multinode autoscaling head (0 CPUs), runs a quantfleet tournament on it
through RayExecutor while sampling ``ray.nodes()``, then waits for the idle nodes to be
removed; prints one ``RESULT {json}`` line.
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


def market():
    import numpy as np

    from quantfleet.data.market import MarketData

    rng = np.random.default_rng(11)
    n_assets, n_bars = 6, 2500
    close = 100 * np.exp(np.cumsum(rng.normal(2e-4, 0.015, (n_assets, n_bars)), axis=1))
    ts = (np.datetime64("2012-01-02") + np.arange(n_bars)).astype("datetime64[ns]")
    return MarketData(ts, tuple(f"S{i}" for i in range(n_assets)), close, source="synthetic")


def run(m, executor):
    from quantfleet.research.tournament import tournament

    return tournament(m, STRATEGIES, n_windows=5, max_combos=64, executor=executor,
                      map_options={"chunk_size": 1, "retries": 2})


def main(address: str, idle_wait_s: float = 90.0) -> int:
    import ray

    from quantfleet.compute.ray import RayExecutor
    from tests.research.test_distributed import table_bytes

    m = market()
    t0 = time.time()
    ex = RayExecutor(workers=2, address=address, init_kwargs={"log_to_driver": False})

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
    span_nodes = sorted({sp.node for sp in ex.spans.spans if sp.node})
    # the nodes that ran tasks were alive, whether or not a 0.25 s sample caught them
    seen.update(span_nodes)
    # the same tournament in this process, while the nodes sit idle: Ray gives the same bytes
    identical = table_bytes(run(m, None).table) == table_bytes(res.table)
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
        "identical": identical, "span_nodes": len(span_nodes),
        "spans_on_head": sum(1 for n in span_nodes if n in head),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
