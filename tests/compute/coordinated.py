"""Loops the coordinator tests host (importable by the coordinator actor).

Each follows the coordinator's contract: keyword arguments ``executor``, ``checkpoint`` (a path
or an object with ``read`` / ``write``) and ``on_round``; state in ``checkpoint`` after every
round, resumed from it when it exists.
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
    ck = checkpoint if hasattr(checkpoint, "read") else _File(checkpoint)
    raw = ck.read()
    state = json.loads(raw) if raw is not None else {"round": 0, "total": 0}
    for r in range(state["round"]):
        on_round({"round": r})
    while state["round"] < n:
        r = state["round"]
        if r == die_at and marker is not None and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        state["total"] += sum(executor.map(_square, [r], chunk_size=1, stage="squares"))
        state["round"] = r + 1
        ck.write(json.dumps(state).encode())
        on_round({"round": r})
    return {"total": state["total"], "pid": os.getpid(), "checkpoint": str(ck),
            "scratch": ck if type(ck).__name__ == "ScratchCheckpoint" else None}


class _File:
    def __init__(self, path) -> None:
        self.path = Path(path)

    def read(self) -> bytes | None:
        return self.path.read_bytes() if self.path.exists() else None

    def write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(data)

    def __str__(self) -> str:
        return str(self.path)


def _square(shared, i: int) -> int:
    return i * i


def always_dies(*, executor, checkpoint, on_round) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def refuses(*, executor, checkpoint, on_round) -> None:
    raise QuantfleetError("field x: bad; use y")


def held(gate: str, *, executor, checkpoint, on_round) -> None:
    """Writes a scratch state, records the coordinator's and its keeper's pids in
    ``gate/hit``, then waits for ``gate/release`` (a test kills the driver meanwhile)."""
    import time

    import ray

    checkpoint.write(b"scratch state")
    keeper_pid = ray.get(checkpoint.keeper.__ray_call__.remote(lambda self: os.getpid()))
    root = Path(gate)
    (root / "hit.tmp").write_text(json.dumps({"coordinator": os.getpid(), "keeper": keeper_pid}))
    os.replace(root / "hit.tmp", root / "hit")
    while not (root / "release").exists():
        time.sleep(0.05)
