"""``python -m tests.compute.orphan_driver ADDRESS GATE``: a driver that attaches to the Ray at
ADDRESS and hosts :func:`tests.compute.coordinated.held` without a checkpoint (so the run's
state is a scratch one in its Keeper actor); the test SIGKILLs this process while the loop
waits at the gate."""

from __future__ import annotations

import os
import sys

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def main(address: str, gate: str) -> int:
    import ray

    from quantfleet.compute.ray import RayExecutor
    from tests.compute import coordinated as co

    ray.init(address=address, log_to_driver=False)
    ex = RayExecutor(workers=1)
    ex.host(co.held, gate)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
