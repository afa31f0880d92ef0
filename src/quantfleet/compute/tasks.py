"""What crosses between driver and worker: a task of items, its result, the record of an item
that failed or a task that was lost, and :func:`run_chunk`, the body every backend runs."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from quantfleet.observe.spans import Span, SpanTimer

__all__ = [
    "ChunkResult",
    "ChunkTask",
    "Failed",
    "Lost",
    "breakdown_label",
    "run_chunk",
    "unpicklable_result",
]


@dataclass(frozen=True)
class Failed:
    """The result in place of an item whose every attempt failed.

    Attributes
    ----------
    index : the item's position in the map's input
    error_type : exception class name, e.g. ``"ValueError"``; ``"TimeoutError"`` for a task
        cancelled after ``timeout_s``; a Ray error name (``"WorkerCrashedError"``, ...) or
        ``"WorkerDied"`` when the worker process was lost
    message : ``str(exception)`` or what the driver saw
    attempts : executions of the item before giving up
    traceback : the worker's formatted traceback of the last attempt (not compared)
    """

    index: int
    error_type: str
    message: str
    attempts: int
    traceback: str = field(default="", compare=False, repr=False)

    def __str__(self) -> str:
        return (f"item {self.index} failed after {self.attempts} attempt(s): "
                f"{self.error_type}: {self.message}")


@dataclass(frozen=True)
class ChunkTask:
    """What a worker receives: items ``start .. start+len(items)`` of a map, one attempt.

    ``labels``: one component label per item when the map labels items (a tournament: each
    item's strategy), else empty; a task whose items carry several labels returns a span whose
    component is their :func:`breakdown_label`."""

    uid: int
    chunk: int
    start: int
    items: list[Any]
    attempt: int
    retries: int
    stage: str
    component: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChunkResult:
    """What a worker returns: one value (or Failed) per item, the task's span, retries done."""

    uid: int
    values: list[Any]
    span: Span
    retried: int


@dataclass(frozen=True)
class Lost:
    """A task that returned nothing: timed out, cancelled, or its worker/node died."""

    error_type: str
    message: str


def run_chunk(fn: Callable[[Any, Any], Any], shared: Any, task: ChunkTask, *,
              worker: str, node: str) -> ChunkResult:
    """Run one task on a worker: ``fn(shared, item)`` per item, exceptions retried in place
    up to ``task.retries`` times then turned into :class:`Failed`; measured as one Span."""
    timer = SpanTimer()
    values: list[Any] = []
    retried = 0
    ok = True
    item_s: list[float] = []
    for j, item in enumerate(task.items):
        t_item = time.perf_counter()
        for attempt in range(1, task.retries + 2):
            try:
                values.append(fn(shared, item))
                break
            except Exception as e:  # noqa: BLE001 - every failure becomes a record
                if attempt > task.retries:
                    ok = False
                    values.append(Failed(
                        index=task.start + j, error_type=type(e).__name__, message=str(e),
                        attempts=task.attempt - 1 + attempt,
                        traceback="".join(traceback.format_exception(e)),
                    ))
                else:
                    retried += 1
        item_s.append(time.perf_counter() - t_item)
    component = task.component
    if task.labels and len(set(task.labels)) > 1:
        component = breakdown_label(task.labels, item_s)
    span = timer.finish(stage=task.stage, component=component, worker=worker, node=node,
                        items=len(task.items), ok=ok, attempt=task.attempt)
    return ChunkResult(uid=task.uid, values=values, span=span, retried=retried)


def breakdown_label(labels: Sequence[str], seconds: Sequence[float]) -> str:
    """The component label of a task whose items carry different labels: each distinct label
    (in first-seen order) tagged with the seconds its items took and their count,
    ``"sma_cross/sec:0.412/n:3+rsi/sec:1.207/n:3"``; ``observe.heatmap`` splits the task's
    time over the labels by these seconds (its items by these counts)."""
    if len(labels) != len(seconds):
        raise ValueError(f"breakdown_label: {len(labels)} labels for {len(seconds)} timings")
    sec: dict[str, float] = {}
    cnt: dict[str, int] = {}
    for lab, s in zip(labels, seconds, strict=True):
        sec[lab] = sec.get(lab, 0.0) + float(s)
        cnt[lab] = cnt.get(lab, 0) + 1
    return "+".join(f"{lab}/sec:{sec[lab]:.6f}/n:{cnt[lab]}" for lab in sec)


def unpicklable_result(task: ChunkTask, res: ChunkResult, err: BaseException) -> ChunkResult:
    """``res`` with every value replaced by a Failed record (its values could not be sent)."""
    vals = [v if isinstance(v, Failed) else Failed(
        index=task.start + j, error_type=type(err).__name__,
        message=f"result could not be pickled: {err}", attempts=task.attempt)
        for j, v in enumerate(res.values)]
    span = Span(**{**res.span.to_dict(), "ok": False})
    return ChunkResult(uid=res.uid, values=vals, span=span, retried=res.retried)
