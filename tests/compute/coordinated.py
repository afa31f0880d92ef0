"""Loops the coordinator tests host (importable by the coordinator actor).

Each follows the coordinator's contract: keyword arguments ``executor``, ``checkpoint`` and
``on_round``; state in ``checkpoint`` after every round, resumed from it when it exists.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from quantfleet.errors import QuantfleetError


def squares(n: int, *, executor, checkpoint, on_round, die_at: int | None = None,
            marker: str | None = None) -> dict:
    """Sum of i*i for i < n, one map per round; SIGKILLs its own process at round ``die_at``
    the first time (``marker`` records that it did)."""
    ck = Path(checkpoint)
    state = json.loads(ck.read_text()) if ck.exists() else {"round": 0, "total": 0}
    for r in range(state["round"]):
        on_round({"round": r})
    while state["round"] < n:
        r = state["round"]
        if r == die_at and marker is not None and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        state["total"] += sum(executor.map(_square, [r], chunk_size=1, stage="squares"))
        state["round"] = r + 1
        ck.parent.mkdir(parents=True, exist_ok=True)
        ck.write_text(json.dumps(state))
        on_round({"round": r})
    return {"total": state["total"], "pid": os.getpid(), "checkpoint": str(ck)}


def _square(shared, i: int) -> int:
    return i * i


def always_dies(*, executor, checkpoint, on_round) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def refuses(*, executor, checkpoint, on_round) -> None:
    raise QuantfleetError("field x: bad; use y")
