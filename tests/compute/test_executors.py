"""Serial, process-pool and Ray executors: identical results, shared-once, failures, timeouts."""

from __future__ import annotations

import os
import pickle
import socket
import uuid
from collections import defaultdict

import numpy as np
import pytest

from quantfleet.compute import (
    Executor,
    Failed,
    ProcessExecutor,
    SerialExecutor,
    make_executor,
)
from quantfleet.errors import ExecutionError
from tests.compute import workloads as wl


def _bytes(results):
    """Per-item pickles: one list's pickle also depends on which objects (dtypes) it shares."""
    return [pickle.dumps(r) for r in results]


@pytest.fixture(scope="module")
def procs():
    ex = ProcessExecutor(2)
    yield ex
    ex.close()


def _all(procs, ray_executor):
    return {"serial": SerialExecutor(), "processes": procs, "ray": ray_executor}


def test_numpy_results_identical_on_every_executor(procs, ray_executor):
    items = list(range(37))
    shared = np.float64(0.5)
    outs = {}
    for name, ex in _all(procs, ray_executor).items():
        assert isinstance(ex, Executor)
        outs[name] = _bytes(ex.map(wl.numpy_work, items, shared))
        assert ex.summary.ok == 37 and ex.summary.failed == 0 and ex.summary.complete
    assert outs["serial"] == outs["processes"] == outs["ray"]
    assert len(outs["serial"]) == 37


def test_numba_strategy_results_identical_on_every_executor(procs, ray_executor):
    market, items = wl.market(), wl.sma_items()
    outs = {}
    for name, ex in _all(procs, ray_executor).items():
        outs[name] = _bytes(ex.map(wl.run_sma, items, market, chunk_size=2))
    assert outs["serial"] == outs["processes"] == outs["ray"]
    want = [wl.run_sma(market, it) for it in items]
    got = [pickle.loads(b) for b in outs["ray"]]
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(want, got, strict=True))


def test_results_are_in_submission_order_with_small_chunks(procs):
    got = list(procs.map(wl.counted, range(50), chunk_size=1))
    assert got == [i * i for i in range(50)]


def test_guided_schedule_same_results_in_order(procs, ray_executor):
    items = list(range(101))
    want = [x * x for x in items]
    for ex in (SerialExecutor(), procs, ray_executor):
        got = list(ex.map(wl.counted, items, chunk_size=20, schedule="guided"))
        assert got == want, ex.name
        sizes = [s.items for s in ex.spans.spans[-ex.summary.tasks:]]
        assert max(sizes) == 20 and min(sizes) < 20 and ex.summary.tasks > 101 // 20
    with pytest.raises(ExecutionError, match="schedule must be 'fixed', 'guided' or 'adaptive'"):
        SerialExecutor().map(wl.counted, items, schedule="dynamic")


def test_shared_is_deserialized_once_per_process_worker(procs):
    shared = wl.SharedPayload(uuid.uuid4().hex, np.arange(10.0))
    seen = defaultdict(set)
    for _ in range(2):  # a second map with the same object reuses the warm workers
        for pid, loads, _v in procs.map(wl.count_loads, range(24), shared, chunk_size=1):
            seen[pid].add(loads)
    assert seen and all(v == {1} for v in seen.values()), dict(seen)


def test_shared_goes_through_one_ray_put_and_is_deserialized_once_per_worker(ray_executor):
    shared = wl.SharedPayload(uuid.uuid4().hex, np.arange(10.0))
    seen = defaultdict(set)
    res = list(ray_executor.map(wl.count_loads, range(24), shared, chunk_size=1))
    assert ray_executor.puts == 2  # the shared payload and fn, once each
    assert ray_executor.summary.tasks == 24
    for pid, loads, _v in res:
        seen[pid].add(loads)
    assert all(v == {1} for v in seen.values()), dict(seen)
    assert [v for _, _, v in res] == [45.0 + i for i in range(24)]
    # the next map with the same module-level fn and shared object puts nothing again and
    # its workers reuse what they deserialized
    res = list(ray_executor.map(wl.count_loads, range(6), shared, chunk_size=1))
    assert ray_executor.puts == 2 and {loads for _, loads, _ in res} == {1}


def test_closures_are_put_for_every_map_module_functions_once(ray_executor):
    from quantfleet.compute.ray import _by_reference

    assert _by_reference(wl.count_loads) and _by_reference(np.add)
    factor = [2]
    fn = lambda shared, x: x * factor[0]  # noqa: E731 - a closure pickles by value
    assert not _by_reference(fn)
    assert list(ray_executor.map(fn, [1, 2], shared=None)) == [2, 4]
    factor[0] = 3  # state captured by value at the put: the next map must see the change
    assert list(ray_executor.map(fn, [1, 2], shared=None)) == [3, 6]
    assert ray_executor.puts == 2


def test_embedded_ray_returns_results_inline_and_collects_no_metrics(ray_executor):
    """The session's Ray was started by a RayExecutor (tests/conftest.py): its settings for a
    small machine are in Ray's own system config, and a ~1.6 MB result still comes back
    whole and writable."""
    import ray

    from quantfleet.compute.ray import embedded_system_config

    cfg = ray._private.state.state.get_system_config()
    assert cfg["max_direct_call_object_size"] == 8 * 1024 * 1024
    assert cfg["enable_metrics_collection"] is False
    assert embedded_system_config(dashboard=True) == {"max_direct_call_object_size": 8 * 1024 * 1024}
    out = list(ray_executor.map(wl.big_result, [200_000, 3], shared=None, chunk_size=1))
    assert [o.shape for o in out] == [(200_000,), (3,)]
    assert out[0].flags.writeable and float(out[0].sum()) == 200_000.0


def test_exception_is_retried_then_recorded_and_the_run_completes(procs, ray_executor):
    outs = {}
    for name, ex in _all(procs, ray_executor).items():
        res = list(ex.map(wl.flaky, range(10), uuid.uuid4().hex, retries=1, chunk_size=3))
        s = ex.summary
        assert (s.items, s.ok, s.failed, s.retried) == (10, 9, 1, 2), (name, s)
        assert res[5] == 50  # the transient failure succeeded on its retry
        f = res[3]
        assert isinstance(f, Failed)
        assert (f.index, f.error_type, f.message, f.attempts) == (3, "ValueError", "bad item 3", 2)
        assert "bad item 3" in f.traceback
        outs[name] = res
        assert any(not sp.ok for sp in ex.spans.spans[-4:])
    assert outs["serial"] == outs["processes"] == outs["ray"]


def test_retries_zero_records_the_first_failure():
    ex = SerialExecutor()
    res = list(ex.map(wl.flaky, range(8), uuid.uuid4().hex, retries=0))
    assert [i for i, r in enumerate(res) if isinstance(r, Failed)] == [3, 5]
    assert ex.summary.retried == 0 and ex.summary.failed == 2


@pytest.mark.parametrize("backend", ["processes", "ray"])
def test_hanging_task_is_cancelled_retried_and_recorded(backend, procs, ray_executor, tmp_path):
    """Item 4 hangs in its 2-item chunk and again alone, then returns; item 6 always hangs.

    The hangs are deterministic (execution markers, see ``wl.hang``) and asserted through
    what the executor recorded for those items (spans labelled per item), so the verdict
    does not depend on how fast the machine is: a fast item that a loaded machine delays
    past its deadline is retried too, and only changes the counts of that item."""
    ex = procs if backend == "processes" else ray_executor
    ex.spans.clear()
    labels = [f"i{k}" for k in range(7)]
    # deadlines (3 s an item, plus the backend's grace) far above a fast item's time even on
    # a cold worker under load; a hang is a hang whatever the deadline
    res = list(ex.map(wl.hang, range(7), str(tmp_path), timeout_s=3.0, retries=1, chunk_size=2,
                      component=labels))
    assert res[4] == 104  # cancelled twice (chunk, then alone), retried once, then succeeded
    f = res[6]
    assert isinstance(f, Failed) and (f.index, f.error_type, f.attempts) == (6, "TimeoutError", 2)
    assert "was cancelled" in f.message
    assert [r for i, r in enumerate(res) if i != 6] == [i + 100 for i in range(7) if i != 6]
    assert (wl.executions(str(tmp_path), 4), wl.executions(str(tmp_path), 6)) == (3, 2)

    spans = ex.spans.spans
    lost = [sp for sp in spans if sp.worker == ""]  # recorded by the driver for a lost task
    assert all(not sp.ok and sp.node == "" for sp in lost)

    def record(label):
        return [(sp.items, sp.attempt, sp.ok) for sp in spans if label in sp.component.split("+")]

    # the chunk holding item 4 was cancelled and split (a re-plan, not a retry); item 4 alone
    # was cancelled on attempt 1 and succeeded on attempt 2
    assert (2, 1, False) in record("i4")
    assert [r for r in record("i4") if r[0] == 1] == [(1, 1, False), (1, 2, True)]
    assert record("i6") == [(1, 1, False), (1, 2, False)]
    s = ex.summary
    assert (s.items, s.ok, s.failed) == (7, 6, 1)
    # the counts are what the executor did: one lost task per lost span, one retry per lost
    # single-item task it resubmitted (an attempt <= retries); at least items 4 and 6 retried
    assert s.lost == len(lost) >= 4
    assert s.retried == sum(1 for sp in lost if sp.items == 1 and sp.attempt <= 1) >= 2
    assert s.tasks == len(spans)
    # the executor is still usable afterwards
    assert list(ex.map(wl.counted, range(5))) == [0, 1, 4, 9, 16]


def test_a_dying_worker_process_is_replaced_and_the_item_recorded(procs):
    res = list(procs.map(wl.die, range(6), retries=1, chunk_size=2))
    assert isinstance(res[2], Failed) and res[2].error_type == "WorkerDied"
    assert [r for i, r in enumerate(res) if i != 2] == [0, 1, 3, 4, 5]
    assert procs.summary.failed == 1 and procs.summary.ok == 5


def test_serial_ignores_timeout_with_a_warning():
    with pytest.warns(UserWarning, match="cannot cancel"):
        it = SerialExecutor().map(wl.counted, range(3), timeout_s=1.0)
    assert list(it) == [0, 1, 4]


def test_spans_name_worker_and_node(procs, ray_executor):
    procs.spans.clear()
    list(procs.map(wl.counted, range(12), chunk_size=3, stage="unit", component="sq"))
    spans = procs.spans.spans
    assert len(spans) == 4 and sum(s.items for s in spans) == 12
    assert all(s.stage == "unit" and s.component == "sq" and s.ok for s in spans)
    assert all(s.node == socket.gethostname() and s.worker.isdigit() for s in spans)
    assert all(int(s.worker) != os.getpid() for s in spans)
    assert all(s.end >= s.start and s.cpu_s >= 0 and s.attempt == 1 for s in spans)

    ray_executor.spans.clear()
    list(ray_executor.map(wl.counted, range(6), chunk_size=2))
    rs = ray_executor.spans.spans
    assert len(rs) == 3 and all(len(s.worker) > 20 and len(s.node) > 20 for s in rs)
    assert all(s.component == "counted" for s in rs)


def test_probe_sizes_chunks_and_summary_records_them():
    ex = SerialExecutor()
    # a target far above any probe time: the cap decides whatever the probe measured (with the
    # default 0.1 s, a probe preempted for > 10 ms on a loaded machine gave smaller chunks)
    assert list(ex.map(wl.counted, range(41), target_task_s=1e6)) == [i * i for i in range(41)]
    s = ex.summary
    # item 0 alone, then 40 items in chunks capped at 40 / (1 worker * 4) = 10
    assert (s.chunks, s.chunk_size, s.tasks) == (5, 10, 5)


def test_empty_map_and_validation(procs):
    assert list(procs.map(wl.counted, [])) == []
    with pytest.raises(ExecutionError, match="retries must be an int >= 0"):
        SerialExecutor().map(wl.counted, [1], retries=-1)
    with pytest.raises(ExecutionError, match="timeout_s must be positive"):
        procs.map(wl.counted, [1], timeout_s=0)
    with pytest.raises(TypeError, match="fn must be callable"):
        SerialExecutor().map(3, [1])
    with pytest.raises(ExecutionError, match="use 'spawn'"):
        ProcessExecutor(2, start_method="fork")
    with pytest.raises(ExecutionError, match="did you mean 'processes'"):
        make_executor("proceses")


def test_lambda_runs_on_processes_via_cloudpickle(procs):
    assert list(procs.map(lambda s, x: x + s, range(4), 10)) == [10, 11, 12, 13]


def test_progress_bar_runs():
    ex = SerialExecutor()
    assert list(ex.map(wl.counted, range(20), progress=True)) == [i * i for i in range(20)]


def test_make_executor_auto_thresholds(monkeypatch, ray_session):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert make_executor("auto", workers=2, n_items_hint=1).name == "serial"
    assert make_executor("auto", workers=2, n_items_hint=100, item_cost_s=0.001).name == "serial"
    small_with_timeout = make_executor("auto", workers=2, n_items_hint=10, item_cost_s=0.01,
                                       timeout_s=5)
    assert small_with_timeout.name == "processes"
    small_with_timeout.close()
    mid = make_executor("auto", workers=2, n_items_hint=1000, item_cost_s=0.05)
    assert mid.name == "processes"
    mid.close()
    assert make_executor("auto", workers=2, n_items_hint=500).name == "processes"
    assert make_executor("auto", workers=1, n_items_hint=500).name == "serial"
    big = make_executor("auto", workers=2, n_items_hint=100_000, item_cost_s=0.01)
    assert big.name == "ray"  # attaches to the session's Ray, which it leaves running
    big.close()
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    clus = make_executor("auto", n_items_hint=3)
    assert clus.name == "ray" and clus.workers == 2
    clus.close()
    assert ray_session.is_initialized()
