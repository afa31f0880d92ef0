"""Driver for the coordinator fault tests, in its own process (never the session's Ray).

``python -m tests.research.cluster_coordinator MODE`` with MODE one of

- ``coordinator``: the evolution's coordinator process is SIGKILLed mid-evolution; Ray
  restarts it and it resumes from its checkpoint (a scratch one: the run names none);
- ``s3``: the same, with the checkpoint in an S3 store (``QF_TEST_S3_URL``; credentials and
  endpoint from the AWS_* environment the cluster's processes inherit), read back afterwards;
- ``node``: both worker nodes (where the coordinator would run if it were not pinned: the
  head has no CPU; and every node that ran the evolution's tasks so far) are SIGKILLed
  mid-evolution and a fresh one added.

A 0-CPU head and two 1-CPU worker nodes. "Mid-evolution" without timing: the evolution's
searcher is a :class:`tests.research.gates.GatedSearcher` (the real GeneticSearcher, held at
one generation's ``observe`` until the test has struck). Each mode also runs the evolution
serially and uninterrupted on Ray. Prints one JSON line with the outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)

GATE_GENERATION = 2
KW = dict(population=12, generations=5, seed=7)
STRATEGIES = ["sma_cross", "rsi"]


def _plain(res) -> dict:
    """What must be identical: winners, every generation (without its clock), counts."""
    return {"winners": res.winners,
            "history": [{k: v for k, v in h.items() if k not in ("wall_s", "cpu_s")}
                        for h in res.history],
            "counts": [res.n_evaluations, res.n_failed, res.n_cached], "overfit": res.overfit}


def main(mode: str) -> int:
    import numpy as np
    import ray
    from ray.cluster_utils import Cluster

    import quantfleet.research.evolve as evolve_mod
    from quantfleet.compute.coordinator import head_node_id
    from quantfleet.compute.ray import RayExecutor
    from quantfleet.data.market import MarketData
    from tests import reference as ref
    from tests.research import gates

    rng = np.random.default_rng(31)
    close = np.stack([ref.random_close(rng, 600, 0.015) for _ in range(3)])
    ts = (np.datetime64("2013-01-01") + np.arange(600)).astype("datetime64[ns]")
    market = MarketData(ts, ("AA", "BB", "CC"), close, source="test")

    want = _plain(evolve_mod.evolve(market, STRATEGIES, **KW))  # serial, in this process
    root = Path(tempfile.mkdtemp(prefix="qf-coord-"))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_timeout_ms": 500},
    })
    try:
        workers = {n.node_id: n for n in (cluster.add_node(num_cpus=1) for _ in range(2))}
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        head = head_node_id()
        assert head == cluster.head_node.node_id, (head, cluster.head_node.node_id)
        ex = RayExecutor(max_retries=3)
        s3_ck = None
        if mode == "s3":
            from quantfleet.store import Store, StoreCheckpoint

            s3_ck = StoreCheckpoint(Store.open(os.environ["QF_TEST_S3_URL"]),
                                    "evolution/killed/evolve.json")
        plain = evolve_mod.evolve(market, STRATEGIES, executor=ex, **KW)

        gate = gates.Gate(root / "gate", GATE_GENERATION)
        evolve_mod.GeneticSearcher = gate.searcher_class()  # evolve builds the gated one
        rounds: list[int] = []
        out: dict = {}

        def run() -> None:
            try:
                ck = {"coordinator": None, "s3": s3_ck}.get(mode, root / "ck")
                out["res"] = evolve_mod.evolve(market, STRATEGIES, executor=ex, checkpoint_dir=ck,
                                               on_round=lambda r: rounds.append(r["round"]), **KW)
            except BaseException as e:  # noqa: BLE001 - reported below
                out["error"] = repr(e)

        t = threading.Thread(target=run)
        t.start()
        hit = gate.wait_hit(deadline=time.monotonic() + 300)  # bounds a hung run only
        if mode in ("coordinator", "s3"):
            os.kill(hit["pid"], signal.SIGKILL)
            victims = [hit["node"]]
        else:  # every node that ran the evolution's tasks so far; a fresh one takes over
            victims = sorted(workers)
            for v in victims:
                cluster.remove_node(workers[v], allow_graceful=False)
            cluster.add_node(num_cpus=1)
            gate.release()
        t.join()
        evolve_mod.GeneticSearcher = gates.GeneticSearcher
        if "error" in out:
            print("RESULT " + json.dumps({"error": out["error"]}))
            return 1
        res = out["res"]
        extra = {}
        if s3_ck is not None:
            saved = json.loads(s3_ck.read())
            extra = {"checkpoint": str(s3_ck),
                     "checkpoint_rounds": [h["round"] for h in saved["history"]],
                     "record_in_store": s3_ck.sibling("evolve.config.json").read() is not None}
        print("RESULT " + json.dumps({**extra,
            "mode": mode, "head": head, "hit": hit, "victims": victims,
            "victims_are_workers": all(v in workers for v in victims),
            "identical_to_serial": _plain(res) == want,
            "identical_to_uninterrupted": _plain(res) == _plain(plain),
            "uninterrupted_identical_to_serial": _plain(plain) == want,
            "coordinator": res.coordinator, "plain_coordinator": plain.coordinator,
            "rounds_followed": rounds, "generations": len(res.history),
        }, default=str))
        ex.close()
        return 0
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
