"""The run's Prometheus metrics: counters fed by a real executor's task events and a real
store's bytes, scraped over HTTP from 127.0.0.1."""

from __future__ import annotations

import os
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantfleet.compute import ProcessExecutor, SerialExecutor
from quantfleet.compute.tasks import Failed
from quantfleet.errors import ConfigError, QuantfleetError
from quantfleet.observe.metrics import RunMetrics
from quantfleet.observe.spans import SpanRecorder
from quantfleet.store import Store
from quantfleet.store.artifacts import canonical_json
from tests.compute import workloads as wl
from tests.observe.spanset import span


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=60) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def procs():
    with ProcessExecutor(2) as ex:
        yield ex


def test_endpoint_serves_the_counters():
    m = RunMetrics()
    rec = m.recorder()
    try:
        url = m.serve()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        for _ in range(3):
            rec.event("submitted", "sweep")
        rec.event("started", "sweep", 2)
        rec.event("finished", "sweep")
        rec.event("failed", "sweep")
        rec.event("items", "sweep", 40)
        rec.event("items_failed", "sweep", 2)
        rec.event("backtests", "sweep", 640)
        rec.event("retried", "evolve/gen:3", 2)
        rec.add(span("sweep", "sma_cross", "w1", 100.0, 100.5, items=10))
        rec.add(span("sweep", "rsi", "", 101.0, 104.0, items=5, ok=False))
        got = scrape(url)
        st = (("stage", "sweep"),)
        assert got[("quantfleet_tasks_submitted_total", st)] == 3
        assert got[("quantfleet_tasks_started_total", st)] == 2
        assert got[("quantfleet_tasks_finished_total", st)] == 1
        assert got[("quantfleet_tasks_failed_total", st)] == 1
        assert got[("quantfleet_tasks_in_flight", st)] == 1  # 3 submitted, 2 came back
        assert got[("quantfleet_items_total", st)] == 40
        assert got[("quantfleet_items_failed_total", st)] == 2
        assert got[("quantfleet_backtests_total", st)] == 640
        assert got[("quantfleet_tasks_retried_total", (("stage", "evolve"),))] == 2
        assert got[("quantfleet_task_duration_seconds_count", st)] == 2
        assert got[("quantfleet_task_duration_seconds_sum", st)] == pytest.approx(3.5)
        assert got[("quantfleet_task_duration_seconds_bucket", (("le", "0.5"), *st))] == 1
        assert not any(name.endswith("_per_second") for name, _ in got)  # counters, not rates
        server, thread = m._server, m._thread
    finally:
        m.stop()
    # stopped: our listening socket is closed and the serving thread has ended (asked of our
    # own objects: the port itself may be taken by another process as soon as it is free)
    assert m.url is None and server.socket.fileno() == -1
    thread.join()
    assert not thread.is_alive()


def test_store_feeds_its_bytes():
    m = RunMetrics()
    store = m.watch(Store.open(f"memory://metrics-{os.getpid()}-{id(m)}"))
    doc = {"a": [1, 2, 3], "b": "x" * 100}
    n = len(canonical_json(doc))
    ref = store.put_json(doc)
    assert (m.value("quantfleet_store_bytes_written_total"),
            m.value("quantfleet_store_bytes_read_total")) == (n, 0)
    store.put_json(doc)  # already there: nothing written again
    assert m.value("quantfleet_store_bytes_written_total") == n
    assert store.get_json(ref) == doc
    assert store.get_bytes(ref.hash) == canonical_json(doc)
    assert m.value("quantfleet_store_bytes_read_total") == 2 * n
    blob = b"\x00\x01" * 500
    store.put_bytes(blob)
    assert m.value("quantfleet_store_bytes_written_total") == n + len(blob)
    # a copy sent to another process carries no hook
    import pickle

    assert pickle.loads(pickle.dumps(store)).on_io is None


@pytest.mark.parametrize("backend", ["serial", "processes", "ray"])
def test_executor_counts_match_what_the_map_did(backend, procs, request):
    """Every backend counts what its map did."""
    items = [wl.Work(v, 10 * v + 1) for v in range(8)]
    ex = {"serial": SerialExecutor, "processes": lambda: procs,
          "ray": lambda: request.getfixturevalue("ray_executor")}[backend]()
    m = RunMetrics()
    rec = m.recorder()
    res = list(ex.map(wl.work, items, retries=1, chunk_size=3, stage="tournament",
                      recorder=rec))
    s = ex.summary
    assert isinstance(res[3], Failed) and [r for i, r in enumerate(res) if i != 3] == \
        [v for v in range(8) if v != 3]

    def v(name):
        return m.value(name, "tournament")

    assert v("quantfleet_tasks_submitted_total") == s.tasks == 3
    assert v("quantfleet_tasks_started_total") == 3
    # the chunk holding item 3 came back with a Failed record: a failed task
    assert (v("quantfleet_tasks_finished_total"), v("quantfleet_tasks_failed_total")) == (2, 1)
    assert v("quantfleet_tasks_retried_total") == s.retried == 1  # item 3's one retry
    assert v("quantfleet_tasks_in_flight") == 0
    assert (v("quantfleet_items_total"), v("quantfleet_items_failed_total")) == (7, 1)
    assert v("quantfleet_backtests_total") == sum(10 * k + 1 for k in range(8) if k != 3)
    assert m.value("quantfleet_task_duration_seconds_count", "tournament") == len(rec) == 3


@pytest.mark.parametrize("backend", ["serial", "processes", "ray"])
def test_a_task_counts_as_started_when_its_worker_starts_it(backend, procs, tmp_path, request):
    """The worker's start signal arrives while its function is still blocked: at that moment
    the task is started and in flight, not finished (the hook then releases it)."""
    ex = {"serial": SerialExecutor, "processes": lambda: procs,
          "ray": lambda: request.getfixturevalue("ray_executor")}[backend]()
    m = RunMetrics()
    seen = []

    def on_start(kind, stage, n):
        if kind == "started" and not seen:
            seen.append((m.value("quantfleet_tasks_started_total", "gate"),
                         m.value("quantfleet_tasks_finished_total", "gate"),
                         m.value("quantfleet_tasks_in_flight", "gate")))
            (tmp_path / "release").touch()

    rec = m.recorder()
    counted = rec.on_event

    def then_look(kind, stage, n):
        counted(kind, stage, n)
        on_start(kind, stage, n)

    rec.on_event = then_look
    res = list(ex.map(wl.sqrt_gated, [4, 9], (str(tmp_path), 0), chunk_size=1, stage="gate",
                      recorder=rec))
    assert res == [2.0, 3.0]
    started, finished, in_flight = seen[0]
    assert (started, finished) == (1, 0) and in_flight >= 1
    assert m.value("quantfleet_tasks_started_total", "gate") == 2
    assert m.value("quantfleet_tasks_finished_total", "gate") == 2


def test_a_lost_task_is_a_failed_task(procs):
    m = RunMetrics()
    res = list(procs.map(wl.die, range(6), retries=1, chunk_size=2, stage="lost",
                         recorder=m.recorder()))
    assert isinstance(res[2], Failed) and res[2].error_type == "WorkerDied"
    s = procs.summary

    def v(name):
        return m.value(name, "lost")

    assert v("quantfleet_tasks_submitted_total") == s.tasks
    assert v("quantfleet_tasks_finished_total") + v("quantfleet_tasks_failed_total") == s.tasks
    assert v("quantfleet_tasks_failed_total") == s.lost >= 2  # its chunk, then item 2 alone
    assert v("quantfleet_tasks_retried_total") == s.retried
    assert (v("quantfleet_items_total"), v("quantfleet_items_failed_total")) == (5, 1)
    assert v("quantfleet_tasks_in_flight") == 0


def test_a_map_stopped_early_leaves_nothing_in_flight(procs, tmp_path):
    """Item 0 returns once both tasks have started; item 1 is still running when the map is
    closed, and is counted as abandoned."""
    m = RunMetrics()
    rec = m.recorder()
    counted = rec.on_event

    def go_when_both_started(kind, stage, n):
        counted(kind, stage, n)
        if kind == "started" and m.value("quantfleet_tasks_started_total", "early") == 2:
            (tmp_path / "go").touch()

    rec.on_event = go_when_both_started
    it = procs.map(wl.wait_for, range(2), str(tmp_path), chunk_size=1, stage="early",
                   recorder=rec)
    assert next(it) == 0
    assert m.value("quantfleet_tasks_in_flight", "early") == 1  # item 1, blocked
    it.close()
    (tmp_path / "release").touch()
    assert m.value("quantfleet_tasks_in_flight", "early") == 0
    assert m.value("quantfleet_tasks_submitted_total", "early") == 2
    assert m.value("quantfleet_tasks_finished_total", "early") == 1


def test_attach_keeps_existing_hooks_and_registries_are_private():
    seen, events = [], []
    rec = SpanRecorder([span("sweep", "a", "w1", 0, 1)], on_add=seen.append,
                       on_event=lambda *e: events.append(e))
    a, b = RunMetrics(), RunMetrics()
    a.attach(rec)
    rec.add(span("sweep", "a", "w1", 1, 2))
    rec.event("finished", "sweep")
    assert len(seen) == 1 and events == [("finished", "sweep", 1)]  # initial span not fed
    assert a.value("quantfleet_tasks_finished_total", "sweep") == 1
    assert a.value("quantfleet_task_duration_seconds_count", "sweep") == 1
    assert b.registry.get_sample_value("quantfleet_tasks_finished_total",
                                       {"stage": "sweep"}) is None


def test_plain_recorder_is_unchanged():
    rec = SpanRecorder()
    rec.add(span("sweep", "a", "w1", 0, 1))
    rec.event("submitted", "sweep")  # no hook: nothing happens
    assert rec.on_add is None and rec.on_event is None and len(rec) == 1


def test_bad_port_bytes_events_and_gateway(monkeypatch):
    m = RunMetrics()
    with pytest.raises(QuantfleetError, match="metrics port must be 0-65535"):
        m.serve(70000)
    with pytest.raises(QuantfleetError, match="bytes must be >= 0"):
        m.store_read(-1)
    with pytest.raises(QuantfleetError, match="unknown task event 'begun'"):
        m.on_event("begun", "sweep")
    with pytest.raises(QuantfleetError, match="is not an http"):
        m.push("127.0.0.1:9091")
    with m:
        url = m.serve(0)
        assert m.serve() == url  # serving twice returns the same endpoint
        busy = int(url.rsplit(":", 1)[1].split("/")[0])
        other = RunMetrics()
        with pytest.raises(QuantfleetError, match="cannot listen on 127.0.0.1"):
            other.serve(busy)
        # nothing answers pushes on a port we hold that speaks only /metrics GETs
        with pytest.raises(QuantfleetError, match="cannot push to"):
            m.push(f"http://127.0.0.1:{busy}")
    assert m.url is None
    from quantfleet.pipeline.record import pushgateway_url, start_metrics

    monkeypatch.setenv("QUANTFLEET_METRICS", "1")
    monkeypatch.setenv("QUANTFLEET_PUSHGATEWAY", "pushgw:9091")
    with pytest.raises(ConfigError, match="QUANTFLEET_PUSHGATEWAY: 'pushgw:9091' is not an"):
        start_metrics(print)
    monkeypatch.setenv("QUANTFLEET_PUSHGATEWAY", "http://127.0.0.1:9091/")
    assert pushgateway_url() == "http://127.0.0.1:9091"
    monkeypatch.delenv("QUANTFLEET_PUSHGATEWAY")
    monkeypatch.setenv("QUANTFLEET_METRICS_PORT", "nine")
    with pytest.raises(ConfigError, match="QUANTFLEET_METRICS_PORT: 'nine' is not a port"):
        start_metrics(print)


def test_a_backtest_serves_metrics_only_when_asked(monkeypatch):
    from quantfleet.pipeline.record import start_metrics

    for k in ("QUANTFLEET_METRICS", "QUANTFLEET_METRICS_PORT", "QUANTFLEET_PUSHGATEWAY"):
        monkeypatch.delenv(k, raising=False)
    assert start_metrics(print, asked_only=True) is None  # `quantfleet backtest`'s default
    every = start_metrics(lambda m: None)  # any other run: served
    try:
        assert isinstance(every, RunMetrics) and every.url
    finally:
        every.stop()
    for k, v in (("QUANTFLEET_METRICS", "1"), ("QUANTFLEET_METRICS_PORT", "0")):
        monkeypatch.setenv(k, v)
        asked = start_metrics(lambda m: None, asked_only=True)
        try:
            assert isinstance(asked, RunMetrics) and asked.url, k
        finally:
            asked.stop()
        monkeypatch.delenv(k)
    monkeypatch.setenv("QUANTFLEET_METRICS_PORT", "nine")  # still checked
    with pytest.raises(ConfigError, match="QUANTFLEET_METRICS_PORT: 'nine' is not a port"):
        start_metrics(print, asked_only=True)
