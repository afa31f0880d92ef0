"""How a map's items are cut into tasks, and where finished chunks are checkpointed.

A task costs a fixed overhead (dispatch and a round trip to the worker), so each task
carries enough items to run for about ``target_task_s``; the size is capped so
every worker still gets several tasks (load balance, progress, checkpoint granularity).
An adaptive plan (:func:`adaptive_chunk_size`) is cut as the map runs, from the measured
seconds per item and the workers there are at that moment.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantfleet.codeprint import code_fingerprint
from quantfleet.errors import ExecutionError

__all__ = [
    "ADAPTIVE_MIN_TASK_SHARE",
    "ADAPTIVE_WARMUP_SPLIT",
    "CHECKPOINT_FORMAT",
    "DEFAULT_TARGET_TASK_S",
    "MIN_TASKS_PER_WORKER",
    "ChunkPlan",
    "ChunkStore",
    "adaptive_chunk_size",
    "fingerprint",
    "plan_chunk_size",
]

DEFAULT_TARGET_TASK_S = 0.1
"""Aimed-for task duration: long enough that the per-task overhead is a small share of it."""

CHECKPOINT_FORMAT = "chunks-2"
"""Names what a chunk file holds (the decoded results, whatever coding carried them from the
worker); part of every fingerprint, so files of another format are never resumed."""

MIN_TASKS_PER_WORKER = 4
"""Chunks are capped at ``n_items / (workers * 4)`` items so the slowest task ends near the rest."""


ADAPTIVE_MIN_TASK_SHARE = 4
"""An adaptive chunk runs at least ``target_task_s / 4`` (measured): a map's tail is cut into
shorter tasks, never into tasks whose fixed overhead would be a large share of them."""

ADAPTIVE_WARMUP_SPLIT = 4
"""Before any cost is measured, adaptive chunks are a quarter of the guided size: the first
results come back soon and measure the cost, and capacity that joins early has work."""


def _check_target(target_task_s: float) -> None:
    if target_task_s <= 0:
        raise ExecutionError(f"target_task_s must be positive (got {target_task_s}); "
                             f"typical values: 0.05-1 s")


def plan_chunk_size(n_items: int, workers: int, item_cost_s: float | None = None, *,
                    target_task_s: float = DEFAULT_TARGET_TASK_S, min_size: int = 1,
                    max_size: int | None = None,
                    min_tasks_per_worker: int = MIN_TASKS_PER_WORKER) -> int:
    """Items per task.

    ``ceil(target_task_s / item_cost_s)``, capped at ``ceil(n_items / (workers *
    min_tasks_per_worker))`` and clamped to ``[min_size, max_size]``. Without a cost estimate
    the cap alone decides.

    Parameters
    ----------
    n_items : items in the map
    workers : parallel workers (1 for serial)
    item_cost_s : measured or estimated seconds per item, or None
    target_task_s : aimed-for seconds per task
    min_size, max_size : bounds on the result
    min_tasks_per_worker : tasks each worker should get at least, for balance
    """
    if n_items < 0 or workers < 1:
        raise ExecutionError(f"plan_chunk_size: need n_items >= 0 and workers >= 1 "
                             f"(got {n_items}, {workers})")
    _check_target(target_task_s)
    cap = max(1, math.ceil(n_items / (workers * max(1, min_tasks_per_worker))))
    size = cap
    if item_cost_s is not None and item_cost_s > 0 and math.isfinite(item_cost_s):
        size = min(cap, max(1, math.ceil(target_task_s / item_cost_s)))
    size = max(size, max(1, min_size))
    if max_size is not None:
        size = min(size, max(1, max_size))
    return int(size)


def adaptive_chunk_size(remaining: int, workers: int, item_cost_s: float | None, *,
                        target_task_s: float = DEFAULT_TARGET_TASK_S,
                        max_size: int | None = None) -> int:
    """Items of the next chunk of an adaptive plan, cut while the map runs.

    The guided size ``ceil(remaining / (2 workers))`` with the workers there are now, kept
    within ``[ceil(target_task_s / ADAPTIVE_MIN_TASK_SHARE / item_cost_s),
    ceil(target_task_s / item_cost_s)]``: a long map is cut into tasks of about
    ``target_task_s`` (many more than the workers, so capacity that joins has work), its
    tail into shorter ones, none shorter than a quarter of the target. Without a cost yet
    (the first chunks): the guided size / :data:`ADAPTIVE_WARMUP_SPLIT`. At most
    ``max_size`` and ``remaining``, at least 1.

    Parameters
    ----------
    remaining : items not yet cut into chunks
    workers : workers now (the capacity read during the map)
    item_cost_s : measured seconds per item, or None before any measurement
    target_task_s : aimed-for seconds per task
    max_size : largest chunk, or None
    """
    if remaining < 1 or workers < 1:
        raise ExecutionError(f"adaptive_chunk_size: need remaining >= 1 and workers >= 1 "
                             f"(got {remaining}, {workers})")
    _check_target(target_task_s)
    guided = math.ceil(remaining / (2 * workers))
    if item_cost_s is not None and item_cost_s > 0 and math.isfinite(item_cost_s):
        hi = max(1, math.ceil(target_task_s / item_cost_s))
        lo = max(1, math.ceil(target_task_s / ADAPTIVE_MIN_TASK_SHARE / item_cost_s))
        size = max(lo, min(hi, guided))
    else:
        size = math.ceil(guided / ADAPTIVE_WARMUP_SPLIT)
    if max_size is not None:
        size = min(size, max(1, int(max_size)))
    return int(max(1, min(size, remaining)))


@dataclass(frozen=True)
class ChunkPlan:
    """Chunk boundaries: ``head`` probe items (0 or 1) as chunk 0, then chunks of ``size``.

    With ``guided`` = W > 0 the chunks shrink towards the end (OpenMP's *guided* schedule):
    each takes ``ceil(remaining / (2 W))`` items, at most ``size`` and at least
    ``ceil(size / 8)``. Few, long tasks while much work is left (little per-task overhead),
    short ones at the end, so no worker idles while another finishes a long last task.

    An ``adaptive`` plan is cut while the map runs (:func:`adaptive_chunk_size`): ``cuts``
    holds the stop of every chunk cut so far (``size`` is the largest chunk allowed); items
    after the last cut are not planned yet.
    """

    n_items: int
    size: int
    head: int = 0
    guided: int = 0
    adaptive: bool = False
    cuts: tuple[int, ...] = ()

    def ranges(self) -> list[tuple[int, int]]:
        """``[(start, stop), ...]`` covering ``range(n_items)`` in order (for an adaptive
        plan: the chunks cut so far)."""
        out: list[tuple[int, int]] = []
        pos = 0
        if self.adaptive:
            for stop in self.cuts:
                out.append((pos, stop))
                pos = stop
            return out
        if self.head and self.n_items:
            out.append((0, min(self.head, self.n_items)))
            pos = out[-1][1]
        floor = max(1, math.ceil(self.size / 8))
        while pos < self.n_items:
            step = self.size
            if self.guided > 0:
                step = max(floor, min(self.size, math.ceil((self.n_items - pos) / (2 * self.guided))))
            out.append((pos, min(pos + step, self.n_items)))
            pos = out[-1][1]
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"n_items": self.n_items, "size": self.size, "head": self.head,
                             "guided": self.guided}
        if self.adaptive:
            d.update(adaptive=True, cuts=list(self.cuts))
        return d


def _qualname(fn: Any) -> str:
    mod = getattr(fn, "__module__", None) or type(fn).__module__
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{mod}:{name}"


def fingerprint(fn: Any, items: Sequence[Any], shared: Any = None, key: str = "") -> str:
    """A hex digest naming a unit of work: the chunk file format, fn's qualified name and code
    (``quantfleet.codeprint.code_fingerprint`` of its module, for quantfleet functions), the
    pickled items, the pickled ``shared`` object and an optional caller ``key``.

    Items and shared must pickle deterministically (tuples, numbers, strings, numpy arrays,
    dicts built in the same order do; sets of strings do not across processes).
    """
    h = hashlib.sha256()
    h.update(CHECKPOINT_FORMAT.encode() + b"\0")
    h.update(_qualname(fn).encode())
    module = getattr(fn, "__module__", None) or ""
    if module == "quantfleet" or module.startswith("quantfleet."):
        # the code fn runs: its module and every quantfleet module it imports
        h.update(b"\0" + code_fingerprint(module).encode())
    h.update(b"\0" + key.encode() + b"\0")
    h.update(str(len(items)).encode())
    for it in items:
        b = pickle.dumps(it, protocol=5)
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    if shared is not None:
        h.update(b"shared")
        h.update(pickle.dumps(shared, protocol=5))
    return h.hexdigest()[:32]


class ChunkStore:
    """Finished chunks of one map on local disk, written atomically (temp file + rename).

    Layout: ``DIR/<fingerprint>/plan.json`` (chunk boundaries, written before any chunk; an
    adaptive plan is rewritten with its new cuts before a chunk cut since is saved) and
    ``DIR/<fingerprint>/chunk-000042.pkl`` (a pickle, protocol 5, of ``{"fingerprint", "index",
    "start", "stop", "results"}``; failed items are stored as their ``Failed`` records).
    """

    def __init__(self, root: str | os.PathLike[str], fp: str) -> None:
        self.fingerprint = fp
        self.dir = Path(root) / fp

    def _atomic_write(self, path: Path, data: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def load_plan(self) -> ChunkPlan | None:
        p = self.dir / "plan.json"
        if not p.exists():
            return None
        d = json.loads(p.read_text())
        cuts = tuple(int(c) for c in d.get("cuts", ()))
        if any(b <= a for a, b in zip((0, *cuts), cuts, strict=False)) or (
                cuts and cuts[-1] > int(d["n_items"])):
            return None  # not a plan this code wrote: start afresh
        return ChunkPlan(n_items=int(d["n_items"]), size=int(d["size"]), head=int(d["head"]),
                         guided=int(d.get("guided", 0)), adaptive=bool(d.get("adaptive", False)),
                         cuts=cuts)

    def save_plan(self, plan: ChunkPlan, meta: dict[str, Any] | None = None) -> None:
        d = {**plan.to_dict(), "fingerprint": self.fingerprint, **(meta or {})}
        self._atomic_write(self.dir / "plan.json", json.dumps(d, indent=1).encode())

    def path(self, index: int) -> Path:
        return self.dir / f"chunk-{index:06d}.pkl"

    def done(self) -> list[int]:
        """Indices of chunks on disk."""
        if not self.dir.exists():
            return []
        return sorted(int(p.stem.split("-")[1]) for p in self.dir.glob("chunk-*.pkl"))

    def save(self, index: int, start: int, stop: int, results: list[Any]) -> None:
        rec = {"fingerprint": self.fingerprint, "index": index, "start": start, "stop": stop,
               "results": results}
        self._atomic_write(self.path(index), pickle.dumps(rec, protocol=5))

    def load(self, index: int, start: int, stop: int) -> list[Any] | None:
        """The chunk's results, or None when absent or not matching (then it is recomputed)."""
        try:
            with open(self.path(index), "rb") as f:
                rec = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None
        if (rec.get("fingerprint") != self.fingerprint or rec.get("start") != start
                or rec.get("stop") != stop or len(rec.get("results", ())) != stop - start):
            return None
        return list(rec["results"])
