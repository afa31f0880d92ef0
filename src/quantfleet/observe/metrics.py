"""Prometheus metrics of a run: counters in the run's own registry, served on 127.0.0.1 while
it runs and pushed to a Pushgateway when it ends.

Layer 4. ``RunMetrics.recorder()`` / ``attach(recorder)`` feed it from a SpanRecorder: the
executor's task events (``SpanRecorder.event``) drive the counters and the in-flight gauge,
each span's duration feeds the histogram; ``watch(store)`` counts the store's bytes.
"""

from __future__ import annotations

import threading
from typing import Any

from quantfleet.errors import QuantfleetError
from quantfleet.observe.spans import DRIVER_NODE, TASK_EVENTS, Span, SpanRecorder

__all__ = ["DURATION_BUCKETS", "RunMetrics"]

#: task duration histogram buckets, seconds (a chunk is planned at ~0.1 s; lost tasks run long)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 120.0, 300.0, 600.0)


def _stage(stage: str) -> str:
    # the label base only: "evolve/gen:3" -> "evolve" (bounded label cardinality)
    return str(stage).split("/", 1)[0] or "map"


class RunMetrics:
    """The metrics of one run, in a private ``CollectorRegistry`` (counters, not rates: a
    rate is PromQL's ``rate()`` over a counter).

    Counters with label ``stage``: ``quantfleet_tasks_{submitted,started,finished,failed,
    retried}_total``, ``quantfleet_items_total``, ``quantfleet_items_failed_total``,
    ``quantfleet_backtests_total``; gauge ``quantfleet_tasks_in_flight{stage}``; histogram
    ``quantfleet_task_duration_seconds{stage}``; counters
    ``quantfleet_store_bytes_read_total`` and ``quantfleet_store_bytes_written_total``.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str) -> Any:
            return Counter(name, doc, ["stage"], registry=r)

        self.submitted = counter("quantfleet_tasks_submitted_total",
                                 "Tasks the executor submitted (resubmissions included).")
        self.started = counter("quantfleet_tasks_started_total",
                               "Tasks a worker started (its start signal reached the driver).")
        self.finished = counter("quantfleet_tasks_finished_total",
                                "Tasks that came back with every item ok.")
        self.failed = counter("quantfleet_tasks_failed_total",
                              "Tasks that came back with a failed item, timed out or were lost.")
        self.retried = counter("quantfleet_tasks_retried_total",
                               "Re-executions: an item retried in its worker, a lost task "
                               "resubmitted.")
        self.items = counter("quantfleet_items_total", "Work items that ended with a value.")
        self.items_failed = counter("quantfleet_items_failed_total",
                                    "Work items that ended as a Failed record.")
        self.backtests = counter("quantfleet_backtests_total",
                                 "Backtests (kernel passes over a combo's bars) of the items "
                                 "that ended with a value.")
        self.in_flight = Gauge("quantfleet_tasks_in_flight",
                               "Tasks submitted and not yet come back.", ["stage"], registry=r)
        self.duration = Histogram("quantfleet_task_duration_seconds",
                                  "Span wall seconds: tasks measured on the worker, lost tasks "
                                  "and the driver's timed steps.", ["stage"],
                                  buckets=DURATION_BUCKETS, registry=r)
        self.bytes_read = Counter("quantfleet_store_bytes_read_total",
                                  "Bytes read from the artifact store.", registry=r)
        self.bytes_written = Counter("quantfleet_store_bytes_written_total",
                                     "Bytes written to the artifact store.", registry=r)
        self._by_event = {"submitted": self.submitted, "started": self.started,
                          "finished": self.finished, "failed": self.failed,
                          "retried": self.retried, "items": self.items,
                          "items_failed": self.items_failed, "backtests": self.backtests}
        self._stages: set[str] = set()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    # -- events -------------------------------------------------------------------------

    def on_event(self, kind: str, stage: str, n: int = 1) -> None:
        """Count ``n`` task events of ``kind`` (``observe.spans.TASK_EVENTS``) in ``stage``;
        ``submitted`` raises the in-flight gauge, ``finished``/``failed``/``abandoned`` lower it."""
        if kind not in TASK_EVENTS:
            raise QuantfleetError(f"metrics: unknown task event {kind!r}; one of "
                                  f"{', '.join(TASK_EVENTS)}")
        n = int(n)
        if n < 0:
            raise QuantfleetError(f"metrics: {kind} count must be >= 0 (got {n})")
        st = _stage(stage)
        if st not in self._stages:  # every series of a stage exists from its first event, at 0
            self._stages.add(st)
            for c in (*self._by_event.values(), self.in_flight):
                c.labels(stage=st)
        if kind != "abandoned":
            self._by_event[kind].labels(stage=st).inc(n)
        if kind == "submitted":
            self.in_flight.labels(stage=st).inc(n)
        elif kind in ("finished", "failed", "abandoned"):
            self.in_flight.labels(stage=st).dec(n)

    def observe(self, span: Span) -> None:
        """The span feed: a task's duration into the histogram (task counts come from
        :meth:`on_event`); a driver step's span (node ``driver``) is no task and is left out."""
        if not isinstance(span, Span):
            raise TypeError(f"observe expects a Span, got {type(span).__name__}")
        if span.node == DRIVER_NODE:
            return
        self.duration.labels(stage=_stage(span.stage)).observe(max(0.0, span.duration))

    def store_io(self, direction: str, n: int) -> None:
        """The store's hook (``ArtifactStore.on_io``): ``"read"`` or ``"written"`` bytes."""
        if direction == "read":
            self.store_read(n)
        elif direction == "written":
            self.store_written(n)
        else:
            raise QuantfleetError(f"store_io: direction must be 'read' or 'written' "
                                  f"(got {direction!r})")

    def store_read(self, n: int) -> None:
        if n < 0:
            raise QuantfleetError(f"store_read: bytes must be >= 0 (got {n})")
        self.bytes_read.inc(n)

    def store_written(self, n: int) -> None:
        if n < 0:
            raise QuantfleetError(f"store_written: bytes must be >= 0 (got {n})")
        self.bytes_written.inc(n)

    def watch(self, store: Any) -> Any:
        """Count ``store``'s bytes (sets its ``on_io`` hook); returns the store."""
        store.on_io = self.store_io
        return store

    def value(self, name: str, stage: str | None = None) -> float:
        """A sample's current value (0.0 if never set): ``value("quantfleet_backtests_total",
        "tournament")``."""
        got = self.registry.get_sample_value(name, {"stage": _stage(stage)}
                                             if stage is not None else None)
        return float(got or 0.0)

    # -- span feed ----------------------------------------------------------------------

    def recorder(self) -> SpanRecorder:
        """A new SpanRecorder that feeds its spans to :meth:`observe` and its task events
        to :meth:`on_event`."""
        return SpanRecorder(on_add=self.observe, on_event=self.on_event)

    def attach(self, recorder: SpanRecorder) -> SpanRecorder:
        """Feed an existing recorder's future spans and events to this run (keeps its hooks)."""
        prev, prev_ev = recorder.on_add, recorder.on_event

        def both(span: Span) -> None:
            prev(span)
            self.observe(span)

        def both_ev(kind: str, stage: str, n: int) -> None:
            prev_ev(kind, stage, n)
            self.on_event(kind, stage, n)

        recorder.on_add = both if prev is not None else self.observe
        recorder.on_event = both_ev if prev_ev is not None else self.on_event
        return recorder

    # -- push ---------------------------------------------------------------------------

    def push(self, gateway: str, *, job: str = "quantfleet",
             grouping: dict[str, str] | None = None, timeout_s: float = 10.0) -> str:
        """Replace this run's group on a Pushgateway (``http://host:9091``) with the current
        values (HTTP PUT to ``/metrics/job/<job>/<key>/<value>...``); returns the gateway URL.
        A batch run calls it when it ends, so Prometheus keeps its figures after the process
        is gone; ``grouping`` (e.g. ``{"run_id": ...}``) keeps runs apart."""
        from urllib.parse import urlsplit

        from prometheus_client import push_to_gateway

        u = urlsplit(gateway)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise QuantfleetError(f"pushgateway: {gateway!r} is not an http(s) URL; give e.g. "
                                  f"http://127.0.0.1:9091")
        try:
            push_to_gateway(gateway, job=job, registry=self.registry,
                            grouping_key=grouping or {}, timeout=timeout_s)
        except OSError as e:
            raise QuantfleetError(f"pushgateway: cannot push to {gateway}: {e}; check that "
                                  f"the Pushgateway runs there") from None
        return gateway

    # -- endpoint -----------------------------------------------------------------------

    def serve(self, port: int | None = None, host: str | None = None) -> str:
        """Serve ``/metrics`` on 127.0.0.1 (``port`` None or 0: a free port); returns the URL.

        ``host`` (default ``$QUANTFLEET_METRICS_HOST`` or 127.0.0.1) is the bind address; the
        compose stack sets ``0.0.0.0`` so Prometheus can scrape the driver's container.
        """
        import os

        host = host or os.environ.get("QUANTFLEET_METRICS_HOST", "127.0.0.1")
        if self._server is not None:
            return self.url or ""
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                                 or not 0 <= port <= 65535):
            raise QuantfleetError(f"metrics port must be 0-65535 or None (got {port!r})")
        try:
            self._server, self._thread = _start_server(host, port or 0, self.registry)
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


#: seconds between the endpoint's checks for ``stop()`` (socketserver's default is 0.5 s,
#: which every command would wait at its end)
_POLL_S = 0.02


def _start_server(host: str, port: int, registry: Any) -> tuple[Any, threading.Thread]:
    """prometheus_client's WSGI endpoint for ``registry`` on ``host:port`` in a daemon thread
    (what ``prometheus_client.start_http_server`` does), its loop checking for shutdown every
    ``_POLL_S`` seconds; quiet (no request log)."""
    import socket
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    # the address family of the host (IPv4 or IPv6), as prometheus_client picks it
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                               flags=socket.AI_PASSIVE)[0]
    Server.address_family = family
    httpd = make_server(str(addr[0]), port, make_wsgi_app(registry), Server, handler_class=Quiet)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": _POLL_S},
                         daemon=True, name="quantfleet-metrics")
    t.start()
    return httpd, t
