"""What crosses between driver and worker: a task of items, its result, the record of an item
that failed or a task that was lost, and :func:`run_chunk`, the body every backend runs."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quantfleet.observe.spans import Span, SpanTimer

__all__ = ["ChunkResult", "ChunkTask", "Failed", "Lost", "run_chunk", "unpicklable_result"]


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
    """What a worker receives: items ``start .. start+len(items)`` of a map, one attempt."""

    uid: int
    chunk: int
    start: int
    items: list[Any]
    attempt: int
    retries: int
    stage: str
    component: str


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
    for j, item in enumerate(task.items):
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
    span = timer.finish(stage=task.stage, component=task.component, worker=worker, node=node,
                        items=len(task.items), ok=ok, attempt=task.attempt)
    return ChunkResult(uid=task.uid, values=values, span=span, retried=retried)


def unpicklable_result(task: ChunkTask, res: ChunkResult, err: BaseException) -> ChunkResult:
    """``res`` with every value replaced by a Failed record (its values could not be sent)."""
    vals = [v if isinstance(v, Failed) else Failed(
        index=task.start + j, error_type=type(err).__name__,
        message=f"result could not be pickled: {err}", attempts=task.attempt)
        for j, v in enumerate(res.values)]
    span = Span(**{**res.span.to_dict(), "ok": False})
    return ChunkResult(uid=res.uid, values=vals, span=span, retried=res.retried)
