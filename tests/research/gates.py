"""A gate that holds an evolution at one generation until a test has struck (importable by Ray
workers: the gated searcher travels to the coordinator actor by reference).

:class:`GatedSearcher` is the real GeneticSearcher; an instance built in the process that
armed the gate (``Gate.searcher_class``) stops in ``observe`` of generation ``n`` the first
time any process gets there: it writes where it runs (pid, Ray node) and waits for the release
file. A searcher rebuilt from a checkpoint (``from_state``, in a restarted coordinator) is not
armed, so it runs through.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from quantfleet.research.genetic import GeneticSearcher

__all__ = ["Gate", "GatedSearcher", "GeneticSearcher"]

ARMED: tuple[str, int] | None = None  # (gate directory, generation), set in the arming process


class GatedSearcher(GeneticSearcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = ARMED

    def observe(self, trials, fitness) -> None:
        gate = getattr(self, "gate", None)
        if gate is not None and self.generation == gate[1]:
            root = Path(gate[0])
            try:
                os.close(os.open(root / "claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                first = True
            except FileExistsError:
                first = False  # struck once already: run through
            if first:
                import ray

                fd = os.open(root / "hit.tmp", os.O_CREAT | os.O_WRONLY)
                os.write(fd, json.dumps({"pid": os.getpid(), "generation": self.generation,
                                         "node": ray.get_runtime_context().get_node_id()}).encode())
                os.close(fd)
                os.replace(root / "hit.tmp", root / "hit")
                while not (root / "release").exists():
                    time.sleep(0.02)
        super().observe(trials, fitness)


class Gate:
    def __init__(self, root: Path, generation: int) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.generation = generation

    def searcher_class(self) -> type[GatedSearcher]:
        global ARMED
        ARMED = (str(self.root), self.generation)
        return GatedSearcher

    def wait_hit(self, deadline: float) -> dict[str, Any]:
        """The hit record, once the gated searcher has stopped (a hung run fails at deadline)."""
        while not (self.root / "hit").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the evolution never reached the gate")
            time.sleep(0.05)
        return json.loads((self.root / "hit").read_text())

    def release(self) -> None:
        (self.root / "release").write_text("")
