"""Live Prometheus metrics of a run, served on 127.0.0.1 from the run's own registry.

Layer 4. ``RunMetrics`` counts tasks, observes their durations and the store's bytes;
``RunMetrics.recorder()`` / ``attach(recorder)`` feed it from a SpanRecorder as spans arrive.
"""

from __future__ import annotations

import threading
from typing import Any

from quantfleet.errors import QuantfleetError
from quantfleet.observe.spans import Span, SpanRecorder

__all__ = ["DURATION_BUCKETS", "RunMetrics"]

#: task duration histogram buckets, seconds (a chunk is planned at ~0.1 s; lost tasks run long)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 120.0, 300.0, 600.0)


def _stage(stage: str) -> str:
    # the label base only: "evolve/gen:3" -> "evolve" (bounded label cardinality)
    return str(stage).split("/", 1)[0] or "map"


class RunMetrics:
    """The metrics of one run, in a private ``CollectorRegistry``.

    Metrics: ``quantfleet_tasks_started_total``, ``quantfleet_tasks_finished_total``,
    ``quantfleet_tasks_failed_total`` (counters, label ``stage``),
    ``quantfleet_task_duration_seconds`` (histogram, label ``stage``),
    ``quantfleet_backtests_per_second`` (gauge: work items finished / seconds since the
    first task started), ``quantfleet_store_bytes_read_total`` and
    ``quantfleet_store_bytes_written_total`` (counters).
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.started = Counter("quantfleet_tasks_started_total", "Tasks started.", ["stage"],
                               registry=r)
        self.finished = Counter("quantfleet_tasks_finished_total",
                                "Tasks that finished with every item ok.", ["stage"],
                                registry=r)
        self.failed = Counter("quantfleet_tasks_failed_total",
                              "Tasks that failed, timed out or were lost.", ["stage"],
                              registry=r)
        self.duration = Histogram("quantfleet_task_duration_seconds",
                                  "Task wall seconds, measured on the worker.", ["stage"],
                                  buckets=DURATION_BUCKETS, registry=r)
        self.rate = Gauge("quantfleet_backtests_per_second",
                          "Work items finished per second since the first task started.",
                          registry=r)
        self.bytes_read = Counter("quantfleet_store_bytes_read_total",
                                  "Bytes read from the artifact store.", registry=r)
        self.bytes_written = Counter("quantfleet_store_bytes_written_total",
                                     "Bytes written to the artifact store.", registry=r)
        self._lock = threading.Lock()
        self._items = 0
        self._first: float | None = None
        self._last: float | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    # -- events -------------------------------------------------------------------------

    def task_started(self, stage: str) -> None:
        self.started.labels(stage=_stage(stage)).inc()

    def task_failed(self, stage: str) -> None:
        """A task that failed without a span to show for it."""
        self.failed.labels(stage=_stage(stage)).inc()

    def task_finished(self, span: Span, backtests: int | None = None) -> None:
        """Count a finished task (``finished`` if ``span.ok`` else ``failed``), observe its
        duration and update the rate with ``backtests`` (default ``span.items``)."""
        if not isinstance(span, Span):
            raise TypeError(f"task_finished expects a Span, got {type(span).__name__}")
        stage = _stage(span.stage)
        (self.finished if span.ok else self.failed).labels(stage=stage).inc()
        self.duration.labels(stage=stage).observe(max(0.0, span.duration))
        n = span.items if backtests is None else int(backtests)
        with self._lock:
            if span.ok:
                self._items += n
            self._first = span.start if self._first is None else min(self._first, span.start)
            self._last = span.end if self._last is None else max(self._last, span.end)
            dt = self._last - self._first
            self.rate.set(self._items / dt if dt > 0 else 0.0)

    def observe(self, span: Span) -> None:
        """The live feed for one span: executors do not announce task starts, so a task
        counts as started when its span arrives, then as finished or failed."""
        self.task_started(span.stage)
        self.task_finished(span)

    def store_read(self, n: int) -> None:
        if n < 0:
            raise QuantfleetError(f"store_read: bytes must be >= 0 (got {n})")
        self.bytes_read.inc(n)

    def store_written(self, n: int) -> None:
        if n < 0:
            raise QuantfleetError(f"store_written: bytes must be >= 0 (got {n})")
        self.bytes_written.inc(n)

    # -- span feed ----------------------------------------------------------------------

    def recorder(self) -> SpanRecorder:
        """A new SpanRecorder that feeds every added span to :meth:`observe`."""
        return SpanRecorder(on_add=self.observe)

    def attach(self, recorder: SpanRecorder) -> SpanRecorder:
        """Feed an existing recorder's future spans to :meth:`observe` (keeps its hook)."""
        prev = recorder.on_add

        def both(span: Span) -> None:
            if prev is not None:
                prev(span)
            self.observe(span)

        recorder.on_add = both if prev is not None else self.observe
        return recorder

    # -- endpoint -----------------------------------------------------------------------

    def serve(self, port: int | None = None, host: str | None = None) -> str:
        """Serve ``/metrics`` on 127.0.0.1 (``port`` None or 0: a free port); returns the URL.

        ``host`` (default ``$QUANTFLEET_METRICS_HOST`` or 127.0.0.1) is the bind address; the
        compose stack sets ``0.0.0.0`` so Prometheus can scrape the driver's container.
        """
        import os

        from prometheus_client import start_http_server

        host = host or os.environ.get("QUANTFLEET_METRICS_HOST", "127.0.0.1")
        if self._server is not None:
            return self.url or ""
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                                 or not 0 <= port <= 65535):
            raise QuantfleetError(f"metrics port must be 0-65535 or None (got {port!r})")
        try:
            self._server, self._thread = start_http_server(port or 0, addr=host,
                                                           registry=self.registry)
        except OSError as e:
            raise QuantfleetError(f"metrics endpoint: cannot listen on {host}:{port} "
                                  f"({e.strerror or e}); pick another port or None") from None
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{self._server.server_port}/metrics"
        return self.url

    def stop(self) -> None:
        """Stop the endpoint (no-op when not serving)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
        self.url = None

    def __enter__(self) -> RunMetrics:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunMetrics(url={self.url!r})"
