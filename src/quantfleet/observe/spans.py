"""Timing spans: one record per executed task, measured where the task ran.

Layer 1 (workers import it): standard library at import time; pyarrow and pandas are
imported only by the conversion methods that need them.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = [
    "DRIVER_NODE",
    "SPAN_FIELDS",
    "SPEEDUP_TOLERANCE",
    "TASK_EVENTS",
    "Span",
    "SpanRecorder",
    "SpanTimer",
    "span_schema",
    "speedup_validity",
]

TASK_EVENTS: tuple[str, ...] = ("submitted", "started", "finished", "failed", "retried",
                                "abandoned", "items", "items_failed", "backtests")
"""What an executor reports through :meth:`SpanRecorder.event` (counts, label ``stage``):
a task submitted, started by its worker, come back with every item ok (finished) or not
(failed: an item failed, or the task timed out or its worker died), an attempt retried, tasks
left in flight when a map stopped early (abandoned); items that ended with a value
(items) or a Failed record (items_failed), and the backtests of the items that ended with a
value (an item's ``n_backtests``, e.g. a ``BacktestJob`` or ``JobBatch``)."""

DRIVER_NODE = "driver"
"""The ``node`` of a driver-side step's span (data load, executor start, table building,
store writes, report): time of the driver process, not of a worker. The timeline counts it as
driver time, never as a busy worker (:meth:`SpanTimer.finish_driver`)."""

SPEEDUP_TOLERANCE = 1.05
"""A speedup above ``workers × SPEEDUP_TOLERANCE`` is invalid: parallelism cannot give it (a
little above the worker count is timing noise), so the baseline did not time the same work."""


def speedup_validity(ratio: float, workers: int) -> str | None:
    """None when ``ratio`` (serial seconds / parallel wall seconds) is a possible speedup on
    ``workers`` workers; else the reason it is not (not a positive number, or above
    ``workers ×`` :data:`SPEEDUP_TOLERANCE`). The rule ``research.baseline.speedup`` and
    ``observe.speedup.explain_speedup`` share."""
    if not math.isfinite(ratio) or ratio <= 0:
        return f"the ratio serial / wall is {ratio!r}, not a positive number"
    limit = workers * SPEEDUP_TOLERANCE
    if ratio > limit:
        return (f"serial / wall = {ratio:.2f}× exceeds {workers} workers + "
                f"{SPEEDUP_TOLERANCE - 1:.0%} ({limit:.2f}×): the baseline did not time the "
                f"same work as the run (cold caches or start-up timed in the baseline)")
    return None



@dataclass(frozen=True, slots=True)
class Span:
    """Where one task's time went.

    Attributes
    ----------
    stage : pipeline stage, e.g. ``"sweep"``
    component : what ran, e.g. the mapped function's qualified name
    worker : who ran it: a pid (processes, serial) or a Ray worker id; ``""`` when the
        task was lost (timed out, worker died) and the driver recorded the span
    node : where it ran: a hostname (processes, serial) or a Ray node id
    start, end : wall-clock epoch seconds (``time.time()``) on the worker
    cpu_s : CPU seconds the worker process spent (``time.process_time()``); NaN when lost
    items : work items the task carried
    ok : every item succeeded
    attempt : 1 for the first execution, 2 for the first retry, ...
    """

    stage: str
    component: str
    worker: str
    node: str
    start: float
    end: float
    cpu_s: float
    items: int
    ok: bool
    attempt: int

    @property
    def duration(self) -> float:
        """Wall seconds, ``end - start``."""
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Span:
        """A Span from a mapping with (at least) every field; extra keys are ignored."""
        missing = [f for f in SPAN_FIELDS if f not in d]
        if missing:
            raise KeyError(f"span record lacks {', '.join(missing)}; got keys {sorted(d)}")
        return cls(
            stage=str(d["stage"]), component=str(d["component"]), worker=str(d["worker"]),
            node=str(d["node"]), start=float(d["start"]), end=float(d["end"]),
            cpu_s=float(d["cpu_s"]), items=int(d["items"]), ok=bool(d["ok"]),
            attempt=int(d["attempt"]),
        )


SPAN_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Span))


def span_schema() -> Any:
    """The Arrow schema of a span table (one row per Span, columns in field order)."""
    import pyarrow as pa

    return pa.schema([
        ("stage", pa.string()), ("component", pa.string()), ("worker", pa.string()),
        ("node", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
        ("cpu_s", pa.float64()), ("items", pa.int64()), ("ok", pa.bool_()),
        ("attempt", pa.int64()),
    ])


class SpanTimer:
    """Measure a task on the worker: create it when the task starts, ``finish`` at the end."""

    __slots__ = ("start", "cpu0")

    def __init__(self) -> None:
        self.start = time.time()
        self.cpu0 = time.process_time()

    def finish(self, *, stage: str, component: str, worker: str, node: str, items: int,
               ok: bool, attempt: int) -> Span:
        return Span(stage=stage, component=component, worker=worker, node=node,
                    start=self.start, end=time.time(), cpu_s=time.process_time() - self.cpu0,
                    items=items, ok=ok, attempt=attempt)

    def finish_driver(self, stage: str, component: str, *, items: int = 1,
                      ok: bool = True) -> Span:
        """The span of a driver-side step: worker ``driver:<pid>``, node :data:`DRIVER_NODE`."""
        return self.finish(stage=stage, component=component, worker=f"driver:{os.getpid()}",
                           node=DRIVER_NODE, items=items, ok=ok, attempt=1)


class SpanRecorder:
    """Collects spans on the driver, in arrival order; converts to dicts, Arrow or pandas.

    ``on_add``: optional callable invoked with each span as it is added (a live feed, e.g.
    ``observe.metrics.RunMetrics``); not called for the initial ``spans``. An exception it
    raises propagates to the caller of ``add``.

    ``on_event``: optional callable ``(kind, stage, n)`` for the task counts an executor
    reports besides spans (:data:`TASK_EVENTS`), passed on by :meth:`event`.
    """

    def __init__(self, spans: Iterable[Span] = (),
                 on_add: Callable[[Span], Any] | None = None,
                 on_event: Callable[[str, str, int], Any] | None = None) -> None:
        self._spans: list[Span] = list(spans)
        self.on_add = on_add
        self.on_event = on_event

    def event(self, kind: str, stage: str, n: int = 1) -> None:
        """Report ``n`` task events of ``kind`` (one of :data:`TASK_EVENTS`) in ``stage`` to
        ``on_event``; nothing is stored."""
        if self.on_event is not None:
            self.on_event(kind, stage, n)

    def add(self, span: Span) -> None:
        if not isinstance(span, Span):
            raise TypeError(f"SpanRecorder.add expects a Span, got {type(span).__name__}")
        self._spans.append(span)
        if self.on_add is not None:
            self.on_add(span)

    def extend(self, spans: Iterable[Span]) -> None:
        for s in spans:
            self.add(s)

    def clear(self) -> None:
        self._spans.clear()

    @property
    def spans(self) -> list[Span]:
        """A copy of the recorded spans."""
        return list(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def __iter__(self) -> Iterator[Span]:
        return iter(list(self._spans))

    def total(self, key: str = "duration") -> float:
        """Sum of ``duration``, ``cpu_s`` (NaN ignored) or ``items`` over the spans."""
        vals = [getattr(s, key) for s in self._spans]
        return float(sum(v for v in vals if not (isinstance(v, float) and math.isnan(v))))

    def to_dicts(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self._spans]

    @classmethod
    def from_dicts(cls, rows: Iterable[Mapping[str, Any]]) -> SpanRecorder:
        return cls(Span.from_dict(r) for r in rows)

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` with :func:`span_schema` (a NaN ``cpu_s`` is a value, not a
        null). Built through numpy (``data.arrow``: no pandas import, which pyarrow's own
        conversion of Python values does), through ``from_pydict`` if a value is not of its
        column's type."""
        import numpy as np
        import pyarrow as pa

        from quantfleet.data.arrow import from_numpy, strings

        schema = span_schema()
        cols = {f: [getattr(s, f) for s in self._spans] for f in SPAN_FIELDS}
        arrays = []
        for f in schema:
            v = cols[f.name]
            if pa.types.is_string(f.type) and all(isinstance(x, str) for x in v):
                arrays.append(strings(v))
            elif pa.types.is_floating(f.type) and all(
                    isinstance(x, (float, int)) and not isinstance(x, bool) for x in v):
                arrays.append(from_numpy(np.array(v, dtype=np.float64)))
            elif pa.types.is_integer(f.type) and all(
                    isinstance(x, int) and not isinstance(x, bool) for x in v):
                arrays.append(from_numpy(np.array(v, dtype=np.int64)))
            elif pa.types.is_boolean(f.type) and all(isinstance(x, bool) for x in v):
                arrays.append(from_numpy(np.array(v, dtype=bool)))
            else:
                return pa.Table.from_pydict(cols, schema=schema)
        return pa.Table.from_arrays(arrays, schema=schema)

    @classmethod
    def from_arrow(cls, table: Any) -> SpanRecorder:
        missing = [f for f in SPAN_FIELDS if f not in table.column_names]
        if missing:
            raise KeyError(f"span table lacks column(s) {', '.join(missing)}; "
                           f"has {', '.join(table.column_names)}")
        return cls.from_dicts(table.select(list(SPAN_FIELDS)).to_pylist())

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        return f"SpanRecorder({len(self._spans)} spans)"
