"""The Executor protocol and the driver loop every backend shares.

``map(fn, items, shared)`` calls ``fn(shared, item)`` for every item and yields the results
in submission order, whatever the backend (serial, a process pool, Ray). Items travel in
chunks (see :mod:`quantfleet.compute.chunking`); an exception in ``fn`` is retried, then
yields a :class:`~quantfleet.compute.tasks.Failed` record in the item's place; a task that
hangs past its timeout or whose worker dies is cancelled and resubmitted, then recorded as
failed. Nothing is dropped.
"""

from __future__ import annotations

import bisect
import math
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from quantfleet.compute.chunking import (
    DEFAULT_TARGET_TASK_S,
    ChunkPlan,
    ChunkStore,
    adaptive_chunk_size,
    fingerprint,
    plan_chunk_size,
)
from quantfleet.compute.tasks import ChunkResult, ChunkTask, Failed, Lost
from quantfleet.errors import ExecutionError
from quantfleet.observe.spans import Span, SpanRecorder

__all__ = ["BaseExecutor", "Executor", "MapSummary"]


# ---------------------------------------------------------------- summary and progress

@dataclass
class MapSummary:
    """Counts of the last ``map``.

    items : items in the map; ok / failed : items that ended with a value / a Failed record
    retried : re-executions (an exception retried in the worker, or a lost task resubmitted)
    tasks : tasks submitted (resubmissions included); lost : tasks timed out or whose worker died
    chunks / resumed_chunks / resumed_items : the chunk plan and what a checkpoint supplied
    chunk_size : the planned size (fixed), the largest chunk (guided, adaptive)
    wall_s : driver seconds from the first ``next()`` to the last result
    capacity : ``[(seconds since the map started, workers), ...]``, the workers the map
        counted at its start and at each change it read while running (elastic backends)
    item_cost_s : the seconds per item an adaptive map measured last (None otherwise)
    peak_inflight : the most tasks in flight at once (submitted, without a result yet)
    """

    items: int = 0
    ok: int = 0
    failed: int = 0
    retried: int = 0
    tasks: int = 0
    lost: int = 0
    chunks: int = 0
    resumed_chunks: int = 0
    resumed_items: int = 0
    chunk_size: int = 0
    wall_s: float = 0.0
    complete: bool = False
    capacity: list[tuple[float, int]] = field(default_factory=list)
    item_cost_s: float | None = None
    peak_inflight: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["capacity"] = [list(c) for c in self.capacity]
        return d


class _Progress:
    """A rich progress bar (items, chunks, items/s, ETA); a no-op unless enabled."""

    def __init__(self, enabled: bool, label: str, n_items: int) -> None:
        self._p = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("items  {task.fields[chunks]} tasks"),
            TextColumn("{task.fields[rate]} items/s"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), transient=False,
        )
        self._p.start()
        self._t0 = time.perf_counter()
        self._id = self._p.add_task(label, total=n_items, chunks="0/?", rate="-")

    def update(self, done_items: int, done_chunks: int, n_chunks: int | None) -> None:
        if self._p is None:
            return
        dt = time.perf_counter() - self._t0
        rate = f"{done_items / dt:,.1f}" if dt > 0 else "-"
        self._p.update(self._id, completed=done_items,
                       chunks=f"{done_chunks}/{n_chunks if n_chunks else '?'}", rate=rate)

    def stop(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


# ---------------------------------------------------------------- the protocol

@runtime_checkable
class Executor(Protocol):
    """Runs ``fn(shared, item)`` over items; serial, a process pool and Ray implement it."""

    name: str
    spans: SpanRecorder
    summary: MapSummary

    @property
    def workers(self) -> int: ...

    def map(self, fn: Callable[[Any, Any], Any], items: Iterable[Any], shared: Any = None, *,
            stage: str = "map", component: str | None = None, retries: int = 1,
            timeout_s: float | None = None, chunk_size: int | None = None,
            item_cost_s: float | None = None, target_task_s: float = DEFAULT_TARGET_TASK_S,
            schedule: str = "fixed",
            checkpoint_dir: str | os.PathLike[str] | None = None, checkpoint_key: str = "",
            progress: bool = False, recorder: SpanRecorder | None = None) -> Iterator[Any]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass
class _Unit:
    chunk: int
    start: int
    stop: int
    attempt: int


def _ignore(uid: Hashable) -> None:
    pass


def _backtests(items: Sequence[Any], start: int, values: Sequence[Any]) -> int:
    """The ``n_backtests`` of the items that ended with a value (0 for items without one)."""
    return sum(int(getattr(items[start + j], "n_backtests", 0) or 0)
               for j, v in enumerate(values) if not isinstance(v, Failed))


_REFRESH_MIN_S = 0.5
"""Least seconds between two capacity re-reads of an elastic map."""


class _Unset:
    __slots__ = ()


_UNSET = _Unset()


def _component_of(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


class BaseExecutor:
    """The driver loop shared by every backend: chunk planning, submission within the
    backend's capacity, deadlines, retries of lost tasks, checkpoints, spans, ordering.

    A backend implements ``_open`` (ship fn and shared), ``_capacity`` (tasks it can take
    now), ``_submit``, ``_poll`` (finished tasks as ``(uid, ChunkResult | Lost)``),
    ``_cancel`` (kill one running task), ``_abandon`` (drop all in-flight work) and ``close``.
    A backend whose worker can say it began a task calls ``self._on_started(uid)`` when it
    hears so (and sets ``start_signal``); a task that comes back without that signal counts
    as started then. A task's deadline runs from its start signal, or from its submission on
    a backend without one.

    An elastic backend (``capacity_refresh_s`` not None) has ``_refresh_capacity`` re-read
    its capacity while a map runs: every ``capacity_refresh_s`` seconds while work waits for
    a slot, and whenever a poll returns nothing.

    Task counts go to the recorder's ``event`` (:data:`~quantfleet.observe.spans.TASK_EVENTS`).
    """

    name = "base"
    supports_timeout = True
    start_signal = False
    """True if the backend calls ``_on_started`` when a worker starts a task."""
    timeout_grace_s = 1.0
    """Added once to each task's deadline: a fresh worker's first imports and fetches."""

    def __init__(self, recorder: SpanRecorder | None = None) -> None:
        self.spans = recorder if recorder is not None else SpanRecorder()
        self.summary = MapSummary()
        self._closed = False
        self._uid = 0
        self._on_started: Callable[[Hashable], None] = _ignore

    # -- backend hooks
    @property
    def workers(self) -> int:
        raise NotImplementedError

    def _open(self, fn: Callable[[Any, Any], Any], shared: Any) -> None:
        raise NotImplementedError

    def _capacity(self) -> int:
        raise NotImplementedError

    @property
    def capacity_refresh_s(self) -> float | None:
        """Seconds between re-reads of the capacity during a map; None: fixed for the map."""
        return None

    def _refresh_capacity(self) -> int:
        """Re-read the capacity (an elastic backend adjusts its in-flight cap); return the
        worker count it now has."""
        return max(1, int(self.workers))

    def _submit(self, task: ChunkTask) -> None:
        raise NotImplementedError

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, ChunkResult | Lost]]:
        raise NotImplementedError

    def _cancel(self, uid: int) -> None:
        raise NotImplementedError

    def _abandon(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> BaseExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers})"

    # -- the public call
    def map(self, fn: Callable[[Any, Any], Any], items: Iterable[Any], shared: Any = None, *,
            stage: str = "map", component: str | Sequence[str] | None = None, retries: int = 1,
            timeout_s: float | None = None, chunk_size: int | None = None,
            item_cost_s: float | None = None, target_task_s: float = DEFAULT_TARGET_TASK_S,
            schedule: str = "fixed",
            checkpoint_dir: str | os.PathLike[str] | None = None, checkpoint_key: str = "",
            progress: bool = False, recorder: SpanRecorder | None = None) -> Iterator[Any]:
        """Yield ``fn(shared, item)`` for each item, in the order of ``items``.

        Parameters
        ----------
        fn : callable ``fn(shared, item) -> result``; must pickle (module-level functions do)
        items : the work; materialized into a list
        shared : read-only context sent once per worker (None allowed)
        stage, component : labels on every Span (component defaults to fn's qualname); a
            list gives one label per item, and a task's span carries the distinct labels of
            its items joined by "+" (e.g. the strategy of each tournament item)
        retries : extra attempts for an item whose fn raised, or a task that was lost
        timeout_s : seconds one item may take; a task of k items is cancelled
            ``k * timeout_s + timeout_grace_s`` after its worker started it (after its
            submission on a backend without a start signal), then split into single items,
            each retried, then Failed
        chunk_size : items per task; default: measured (see chunking)
        item_cost_s : caller's estimate of seconds per item (skips the probe task)
        target_task_s : aimed-for seconds per task when sizing chunks
        schedule : "fixed" (every chunk of the planned size), "guided" (the planned size
            is the largest; chunks shrink towards the end so the workers finish together,
            see :class:`~quantfleet.compute.chunking.ChunkPlan`) or "adaptive" (chunks cut
            as the map runs from the measured seconds per item and the workers there are
            then, :func:`~quantfleet.compute.chunking.adaptive_chunk_size`; ``chunk_size``
            is then the largest chunk and ``item_cost_s`` the cost assumed until measured)
        checkpoint_dir : write each finished chunk there and skip chunks already written
        checkpoint_key : extra text mixed into the checkpoint fingerprint
        progress : show a rich progress bar
        recorder : where spans go (default ``self.spans``)

        The work starts at the first ``next()``; ``self.summary`` is final once exhausted.
        """
        if self._closed:
            raise ExecutionError(f"{type(self).__name__} is closed; create a new executor")
        if not callable(fn):
            raise TypeError(f"map: fn must be callable fn(shared, item), got {type(fn).__name__}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ExecutionError(f"map: retries must be an int >= 0 (got {retries!r}); typical 0-3")
        if timeout_s is not None and not timeout_s > 0:
            raise ExecutionError(f"map: timeout_s must be positive or None (got {timeout_s!r})")
        if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
            raise ExecutionError(f"map: chunk_size must be >= 1 or None (got {chunk_size!r})")
        if schedule not in ("fixed", "guided", "adaptive"):
            raise ExecutionError(f"map: schedule must be 'fixed', 'guided' or 'adaptive' "
                                 f"(got {schedule!r})")
        if timeout_s is not None and not self.supports_timeout:
            warnings.warn(f"{type(self).__name__} cannot cancel a running function; timeout_s is "
                          f"ignored (use ProcessExecutor or RayExecutor)", stacklevel=2)
            timeout_s = None
        items = items if isinstance(items, list) else list(items)
        if component is not None and not isinstance(component, str):
            component = list(component)
            if len(component) != len(items):
                raise ExecutionError(f"map: {len(component)} component labels for "
                                     f"{len(items)} items; give one per item or a single string")
        return self._run(fn, items, shared, stage=stage,
                         component=component or _component_of(fn), retries=retries,
                         timeout_s=timeout_s, chunk_size=chunk_size, item_cost_s=item_cost_s,
                         target_task_s=target_task_s, schedule=schedule,
                         checkpoint_dir=checkpoint_dir,
                         checkpoint_key=checkpoint_key, progress=progress,
                         recorder=recorder if recorder is not None else self.spans)

    def _run(self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any, *,
             stage: str, component: str | list[str], retries: int, timeout_s: float | None,
             chunk_size: int | None, item_cost_s: float | None, target_task_s: float,
             schedule: str, checkpoint_dir: Any, checkpoint_key: str, progress: bool,
             recorder: SpanRecorder) -> Iterator[Any]:
        labels = component if isinstance(component, list) else None
        if labels is not None:
            component = _component_of(fn)

        def label(a: int, b: int) -> str:
            if labels is None:
                return component
            return "+".join(dict.fromkeys(labels[a:b]))

        n = len(items)
        adaptive = schedule == "adaptive"
        workers = max(1, int(self.workers))
        guided = workers if schedule == "guided" else 0
        summary = self.summary = MapSummary(items=n)
        t0 = time.perf_counter()
        if n == 0:
            summary.complete = True
            return
        summary.capacity.append((0.0, workers))
        store = (ChunkStore(checkpoint_dir, fingerprint(fn, items, shared, checkpoint_key))
                 if checkpoint_dir is not None else None)
        results: list[Any] = [_UNSET] * n
        ranges: list[tuple[int, int]] = []
        starts: list[int] = []
        left: dict[int, int] = {}  # chunk -> items still without a result
        complete: set[int] = set()
        pending: deque[_Unit] = deque()
        plan: ChunkPlan | None = store.load_plan() if store is not None else None
        if plan is not None and plan.n_items != n:
            plan = None
        probe_span: list[Span] = []
        bar = _Progress(progress, f"{stage or 'map'} [{self.name}]", n)
        done_items = 0
        cut_pos = n  # adaptive: the first item not cut into a chunk yet
        plan_saved = 0  # adaptive: chunks whose boundaries plan.json holds
        # adaptive: measured seconds per item, from tasks that were not their worker's first of
        # this map (a first task may carry imports and JIT loading), else the cheapest first task
        cost: list[float] = [0.0, 0.0]  # warm seconds, warm items
        first_cost: list[float] = []
        ran_on: set[str] = set()

        def adopt(p: ChunkPlan) -> None:
            nonlocal ranges, starts
            ranges = p.ranges()
            starts = [a for a, _ in ranges]
            summary.chunks = len(ranges)
            summary.chunk_size = p.size or max((b - a for a, b in ranges), default=0)
            for i, (a, b) in enumerate(ranges):
                if i in left or i in complete:
                    continue
                got = store.load(i, a, b) if store is not None else None
                if got is not None:
                    results[a:b] = got
                    complete.add(i)
                    summary.resumed_chunks += 1
                    summary.resumed_items += b - a
                    for v in got:
                        if isinstance(v, Failed):
                            summary.failed += 1
                        else:
                            summary.ok += 1
                else:
                    left[i] = b - a
                    pending.append(_Unit(i, a, b, 1))

        def item_cost() -> float | None:
            if cost[1] > 0:
                return cost[0] / cost[1]
            return min(first_cost) if first_cost else item_cost_s

        def cut() -> None:
            """Adaptive: cut the next chunk from the uncut items."""
            nonlocal cut_pos
            size = adaptive_chunk_size(n - cut_pos, workers, item_cost(),
                                       target_task_s=target_task_s, max_size=max_chunk)
            i = len(ranges)
            ranges.append((cut_pos, cut_pos + size))
            starts.append(cut_pos)
            left[i] = size
            pending.append(_Unit(i, cut_pos, cut_pos + size, 1))
            cut_pos += size
            summary.chunks = len(ranges)
            summary.chunk_size = max(summary.chunk_size, size)

        def save_adaptive_plan(upto: int) -> None:
            nonlocal plan_saved
            if store is None or upto < plan_saved:
                return
            plan_saved = len(ranges)
            store.save_plan(ChunkPlan(n, int(max_chunk or 0), adaptive=True,
                                      cuts=tuple(b for _, b in ranges)),
                            {"fn": component, "executor": self.name,
                             "target_task_s": target_task_s})

        max_chunk = chunk_size
        if plan is not None:
            # a resumed map cuts the saved chunks again, whatever its schedule now; an adaptive
            # plan goes on adaptive after its last saved cut
            adaptive = plan.adaptive
            max_chunk = plan.size or None
            adopt(plan)
            if adaptive:
                cut_pos = ranges[-1][1] if ranges else 0
                plan_saved = len(ranges)
        elif adaptive:
            cut_pos = 0
        elif chunk_size is not None or item_cost_s is not None or n == 1:
            size = int(chunk_size) if chunk_size is not None else plan_chunk_size(
                n, workers, item_cost_s, target_task_s=target_task_s)
            plan = ChunkPlan(n, size, 0, guided=guided)
            if store is not None:
                store.save_plan(plan, {"fn": component, "executor": self.name})
            adopt(plan)
        else:
            # probe: item 0 alone; its measured duration sizes the remaining chunks
            ranges, starts = [(0, 1)], [0]
            left[0] = 1
            pending.append(_Unit(0, 0, 1, 1))

        def finish_chunk(i: int) -> None:
            nonlocal plan
            complete.add(i)
            left.pop(i, None)
            if plan is None and not adaptive:  # the probe finished
                cost_s = probe_span[0].duration if probe_span else None
                size = plan_chunk_size(n - 1, workers, cost_s, target_task_s=target_task_s)
                plan = ChunkPlan(n, size, 1, guided=guided)
                if store is not None:
                    store.save_plan(plan, {"fn": component, "executor": self.name,
                                           "probe_s": cost_s})
                adopt(plan)
            a, b = ranges[i]
            if store is not None:
                if adaptive:
                    save_adaptive_plan(i)  # plan.json names a chunk before its file exists
                store.save(i, a, b, results[a:b])
            for k in range(a, min(b, next_yield)):
                results[k] = None  # already yielded; free it

        def measure(sp: Span) -> None:
            if not adaptive or not sp.ok or sp.attempt != 1 or sp.items < 1:
                return
            if sp.worker in ran_on:
                cost[0] += sp.duration
                cost[1] += sp.items
            else:
                ran_on.add(sp.worker)
                first_cost.append(sp.duration / sp.items)
            summary.item_cost_s = item_cost()

        inflight: dict[int, tuple[_Unit, float, float | None]] = {}
        began: set[Hashable] = set()  # in-flight tasks whose worker said it started them
        on_start = self.start_signal and timeout_s is not None

        def deadline_from(t: float, u: _Unit) -> float | None:
            if timeout_s is None:
                return None
            return t + timeout_s * (u.stop - u.start) + self.timeout_grace_s

        def started(uid: Hashable) -> None:
            if uid in inflight and uid not in began:
                began.add(uid)
                recorder.event("started", stage)
                if on_start:  # the deadline runs from now
                    u, t_sub, _ = inflight[uid]
                    inflight[uid] = (u, t_sub, deadline_from(time.time(), u))

        refresh_s = self.capacity_refresh_s
        refresh_at = time.monotonic() + (refresh_s or 0.0)

        def refresh() -> None:
            nonlocal workers, refresh_at
            w = max(1, int(self._refresh_capacity()))
            refresh_at = time.monotonic() + (refresh_s or 0.0)
            if w != workers:
                workers = w
                summary.capacity.append((round(time.perf_counter() - t0, 3), w))

        self._on_started = started
        next_yield = 0
        try:
            self._open(fn, shared)
            while next_yield < n:
                # submit within capacity
                cap = self._capacity()
                while cap > 0 and (pending or cut_pos < n):
                    if not pending:
                        cut()
                    u = pending.popleft()
                    self._uid += 1
                    task = ChunkTask(uid=self._uid, chunk=u.chunk, start=u.start,
                                     items=list(items[u.start:u.stop]), attempt=u.attempt,
                                     retries=retries, stage=stage,
                                     component=label(u.start, u.stop),
                                     labels=() if labels is None else tuple(labels[u.start:u.stop]))
                    now = time.time()
                    inflight[task.uid] = (u, now, None if on_start else deadline_from(now, u))
                    self._submit(task)
                    recorder.event("submitted", stage)
                    summary.tasks += 1
                    summary.peak_inflight = max(summary.peak_inflight, len(inflight))
                    cap -= 1
                if not inflight and not pending and cut_pos >= n and results[next_yield] is _UNSET:
                    raise ExecutionError(  # pragma: no cover - a bug in this loop
                        f"{self.name}: nothing in flight but item {next_yield} has no result")
                # wait for completions, the nearest deadline or the next capacity re-read
                deadlines = [d for _, _, d in inflight.values() if d is not None]
                wait = None if not deadlines else max(0.0, min(deadlines) - time.time())
                waiting = bool(pending) or cut_pos < n  # work without a slot
                if refresh_s is not None and waiting:
                    until = max(0.0, refresh_at - time.monotonic())
                    wait = until if wait is None else min(wait, until)
                # with work waiting (pending, or items not cut yet) and nothing in flight the
                # backend is starting its workers: its poll is where they report ready
                events = self._poll(wait) if inflight or waiting else []
                for uid, out in events:
                    if uid not in inflight:
                        continue  # a task we already gave up on
                    if isinstance(out, ChunkResult) and uid not in began:
                        started(uid)  # no start signal: its result shows it ran
                    began.discard(uid)
                    u, t_sub, _ = inflight.pop(uid)
                    if isinstance(out, ChunkResult):
                        recorder.add(out.span)
                        measure(out.span)
                        summary.retried += out.retried
                        n_bad = sum(1 for v in out.values if isinstance(v, Failed))
                        recorder.event("finished" if out.span.ok else "failed", stage)
                        recorder.event("retried", stage, out.retried)
                        recorder.event("items", stage, len(out.values) - n_bad)
                        recorder.event("items_failed", stage, n_bad)
                        recorder.event("backtests", stage, _backtests(items, u.start, out.values))
                        if plan is None and not adaptive and u.chunk == 0:
                            probe_span.append(out.span)
                        for j, v in enumerate(out.values):
                            results[u.start + j] = v
                            if isinstance(v, Failed):
                                summary.failed += 1
                            else:
                                summary.ok += 1
                        left[u.chunk] -= u.stop - u.start
                        if left[u.chunk] == 0:
                            finish_chunk(u.chunk)
                    else:
                        self._lost(u, out, t_sub, retries, stage, label(u.start, u.stop), recorder, pending,
                                   results, left, finish_chunk)
                if refresh_s is not None and (waiting or pending or cut_pos < n):
                    t = time.monotonic()
                    # a poll that returned nothing re-reads too, at most every _REFRESH_MIN_S
                    if t >= refresh_at or (not events and t >= refresh_at - refresh_s
                                           + _REFRESH_MIN_S):
                        refresh()
                now = time.time()
                for uid, (u, t_sub, d) in list(inflight.items()):
                    if d is not None and now >= d:
                        self._cancel(uid)
                        del inflight[uid]
                        began.discard(uid)
                        lost = Lost("TimeoutError",
                                    f"task of {u.stop - u.start} item(s) exceeded "
                                    f"{timeout_s * (u.stop - u.start):g} s "
                                    f"(timeout_s={timeout_s:g} per item, plus "
                                    f"{self.timeout_grace_s:g} s grace) and was cancelled")
                        self._lost(u, lost, t_sub, retries, stage, label(u.start, u.stop), recorder,
                                   pending, results, left, finish_chunk)
                # yield the finished prefix, in order
                while next_yield < n and results[next_yield] is not _UNSET:
                    v = results[next_yield]
                    i = bisect.bisect_right(starts, next_yield) - 1
                    if i in complete:
                        results[next_yield] = None
                    next_yield += 1
                    done_items += 1
                    yield v
                bar.update(summary.ok + summary.failed, len(complete),
                           len(ranges) if plan or (adaptive and cut_pos >= n) else None)
            summary.complete = True
        finally:
            self._on_started = _ignore
            if inflight:
                self._abandon()
                recorder.event("abandoned", stage, len(inflight))
            summary.wall_s = time.perf_counter() - t0
            bar.stop()

    def _lost(self, u: _Unit, lost: Lost, t_sub: float, retries: int, stage: str,
              component: str, recorder: SpanRecorder, pending: deque[_Unit],
              results: list[Any], left: dict[int, int],
              finish_chunk: Callable[[int], None]) -> None:
        """A task came back empty: record it, then split it, resubmit it or give up."""
        summary = self.summary
        summary.lost += 1
        recorder.add(Span(stage=stage, component=component, worker="", node="", start=t_sub,
                          end=time.time(), cpu_s=math.nan, items=u.stop - u.start, ok=False,
                          attempt=u.attempt))
        recorder.event("failed", stage)
        if u.stop - u.start > 1:
            # which item hung is unknown: run them one by one (a re-plan, not a retry)
            for k in range(u.stop - 1, u.start - 1, -1):
                pending.appendleft(_Unit(u.chunk, k, k + 1, u.attempt))
            return
        if u.attempt <= retries:
            summary.retried += 1
            recorder.event("retried", stage)
            pending.appendleft(_Unit(u.chunk, u.start, u.stop, u.attempt + 1))
            return
        results[u.start] = Failed(index=u.start, error_type=lost.error_type, message=lost.message,
                                  attempts=u.attempt)
        summary.failed += 1
        recorder.event("items_failed", stage)
        left[u.chunk] -= 1
        if left[u.chunk] == 0:
            finish_chunk(u.chunk)
