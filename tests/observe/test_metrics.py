"""The Prometheus endpoint, scraped over HTTP from 127.0.0.1 after recording spans."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantfleet.errors import QuantfleetError
from quantfleet.observe.metrics import RunMetrics
from quantfleet.observe.spans import SpanRecorder
from tests.observe.spanset import span


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=60) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_endpoint_serves_the_run_metrics():
    m = RunMetrics()
    rec = m.recorder()
    try:
        url = m.serve()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        rec.add(span("sweep", "sma_cross", "w1", 100.0, 100.5, items=10))
        rec.add(span("sweep", "rsi", "w2", 100.0, 102.0, items=30))
        rec.add(span("sweep", "rsi", "", 101.0, 104.0, items=5, ok=False))
        rec.add(span("evolve/gen:3", "rsi", "w1", 102.0, 102.02, items=2))
        m.task_started("portfolio")
        m.task_failed("portfolio")
        m.store_read(1000)
        m.store_written(250)
        got = scrape(url)
        st = (("stage", "sweep"),)
        assert got[("quantfleet_tasks_started_total", st)] == 3
        assert got[("quantfleet_tasks_finished_total", st)] == 2
        assert got[("quantfleet_tasks_failed_total", st)] == 1
        assert got[("quantfleet_tasks_finished_total", (("stage", "evolve"),))] == 1
        assert got[("quantfleet_tasks_started_total", (("stage", "portfolio"),))] == 1
        assert got[("quantfleet_tasks_failed_total", (("stage", "portfolio"),))] == 1
        assert got[("quantfleet_task_duration_seconds_count", st)] == 3
        assert got[("quantfleet_task_duration_seconds_sum", st)] == pytest.approx(5.5)
        assert got[("quantfleet_task_duration_seconds_bucket", (("le", "0.5"), *st))] == 1
        # 42 items of ok tasks between t=100 and t=104
        assert got[("quantfleet_backtests_per_second", ())] == pytest.approx(42 / 4)
        assert got[("quantfleet_store_bytes_read_total", ())] == 1000
        assert got[("quantfleet_store_bytes_written_total", ())] == 250
        assert len(rec) == 4
        server, thread = m._server, m._thread
    finally:
        m.stop()
    # stopped: our listening socket is closed and the serving thread has ended (asked of our
    # own objects: the port itself may be taken by another process as soon as it is free)
    assert m.url is None and server.socket.fileno() == -1
    thread.join()
    assert not thread.is_alive()


def test_attach_keeps_an_existing_hook_and_registries_are_private():
    seen = []
    rec = SpanRecorder([span("sweep", "a", "w1", 0, 1)], on_add=seen.append)
    a, b = RunMetrics(), RunMetrics()
    a.attach(rec)
    rec.add(span("sweep", "a", "w1", 1, 2))
    assert len(seen) == 1  # the initial span is not fed
    assert a.registry.get_sample_value("quantfleet_tasks_finished_total",
                                       {"stage": "sweep"}) == 1
    assert b.registry.get_sample_value("quantfleet_tasks_finished_total",
                                       {"stage": "sweep"}) is None


def test_plain_recorder_is_unchanged():
    rec = SpanRecorder()
    rec.add(span("sweep", "a", "w1", 0, 1))
    assert rec.on_add is None and len(rec) == 1


def test_bad_port_and_bytes():
    m = RunMetrics()
    with pytest.raises(QuantfleetError, match="metrics port must be 0-65535"):
        m.serve(70000)
    with pytest.raises(QuantfleetError, match="bytes must be >= 0"):
        m.store_read(-1)
    with m:
        url = m.serve(0)
        assert m.serve() == url  # serving twice returns the same endpoint
        busy = int(url.rsplit(":", 1)[1].split("/")[0])
        other = RunMetrics()
        with pytest.raises(QuantfleetError, match="cannot listen on 127.0.0.1"):
            other.serve(busy)
    assert m.url is None
