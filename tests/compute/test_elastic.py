"""Elastic maps: the in-flight cap follows the capacity read while a map runs, adaptive chunks
are cut as it runs (and resumed from their saved cuts), deadlines run from a task's start.

The multi-node half (a real ``ray.cluster_utils.Cluster``: nodes added mid-map to a 0-CPU
head, a task that waited longer than its timeout before it could start) is in
``elastic_run.py``, run in its own process by ``test_map_grows_onto_nodes_added_mid_map``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

from quantfleet.compute import ChunkPlan, ChunkStore, SerialExecutor, fingerprint
from quantfleet.compute.chunking import (
    ADAPTIVE_MIN_TASK_SHARE,
    ADAPTIVE_WARMUP_SPLIT,
    adaptive_chunk_size,
)
from quantfleet.compute.executor import BaseExecutor
from quantfleet.compute.tasks import run_chunk
from quantfleet.errors import ExecutionError
from tests.compute import workloads as wl

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- the size of the next chunk

def test_adaptive_size_from_the_measured_cost_within_a_quarter_and_one_target():
    # 10 ms items, 1 s target: 100 items a task while much is left (guided would give 2500)
    assert adaptive_chunk_size(10_000, 2, 0.01, target_task_s=1.0) == 100
    # the tail: the guided size ceil(remaining / (2 W)) ...
    assert adaptive_chunk_size(120, 2, 0.01, target_task_s=1.0) == 30
    # ... never below a quarter of the target (25 items of 10 ms)
    assert adaptive_chunk_size(40, 2, 0.01, target_task_s=1.0) == 25
    assert ADAPTIVE_MIN_TASK_SHARE == 4
    # but never more than what is left
    assert adaptive_chunk_size(7, 2, 0.01, target_task_s=1.0) == 7
    # more workers: smaller tail chunks, so the new ones have work
    assert adaptive_chunk_size(400, 8, 0.01, target_task_s=1.0) == 25
    assert adaptive_chunk_size(400, 2, 0.01, target_task_s=1.0) == 100
    # slow items: one a task
    assert adaptive_chunk_size(50, 2, 5.0, target_task_s=1.0) == 1
    assert adaptive_chunk_size(10_000, 2, 0.01, target_task_s=1.0, max_size=64) == 64


def test_adaptive_size_before_any_measurement_is_a_quarter_of_guided():
    assert ADAPTIVE_WARMUP_SPLIT == 4
    assert adaptive_chunk_size(180, 2, None) == math.ceil(math.ceil(180 / 4) / 4)  # 12
    assert adaptive_chunk_size(24, 1, None) == 3
    assert adaptive_chunk_size(10_000, 2, None, max_size=64) == 64
    assert adaptive_chunk_size(1, 5, None) == 1
    with pytest.raises(ExecutionError, match="remaining >= 1"):
        adaptive_chunk_size(0, 2, None)
    with pytest.raises(ExecutionError, match="target_task_s must be positive"):
        adaptive_chunk_size(5, 2, 0.1, target_task_s=0)


def test_adaptive_plan_round_trips_through_the_store(tmp_path):
    store = ChunkStore(tmp_path, "fp")
    plan = ChunkPlan(30, 8, adaptive=True, cuts=(3, 11, 19))
    assert plan.ranges() == [(0, 3), (3, 11), (11, 19)]
    store.save_plan(plan)
    assert store.load_plan() == plan
    # cuts that do not rise are not a plan this code wrote: ignored
    (tmp_path / "fp" / "plan.json").write_text(json.dumps(
        {"n_items": 30, "size": 8, "head": 0, "adaptive": True, "cuts": [3, 3, 9]}))
    assert store.load_plan() is None


# ---------------------------------------------------------------- the cap follows the capacity

class ScriptedCapacity(BaseExecutor):
    """A backend in this process whose capacity reads come from a script: each re-read takes
    the next number of workers (the last one stays). Tasks run one per poll, oldest first;
    ``depth`` records the tasks in flight at each poll. It tests the driver loop's own logic
    (when it re-reads, how many it keeps in flight), which no real cluster makes repeatable."""

    name = "scripted"
    start_signal = True
    supports_timeout = False
    capacity_refresh_s = 0.0  # re-read after every poll while work waits

    def __init__(self, script: list[int]) -> None:
        super().__init__()
        self.script = list(script)
        self.w = self.script[0]
        self.queue: deque = deque()
        self.depth: list[tuple[int, int]] = []  # (workers in effect, tasks in flight)

    @property
    def workers(self) -> int:
        return self.w

    def _refresh_capacity(self) -> int:
        if len(self.script) > 1:
            self.script.pop(0)
        self.w = self.script[0]
        return self.w

    def _open(self, fn, shared) -> None:
        self.fn, self.shared = fn, shared

    def _capacity(self) -> int:
        return 2 * self.w - len(self.queue)

    def _submit(self, task) -> None:
        self.queue.append(task)

    def _poll(self, timeout):
        self.depth.append((self.w, len(self.queue)))
        task = self.queue.popleft()
        self._on_started(task.uid)
        return [(task.uid, run_chunk(self.fn, self.shared, task, worker="w", node="n"))]

    def _cancel(self, uid) -> None:  # pragma: no cover - no deadlines here
        pass

    def _abandon(self) -> None:
        self.queue.clear()


def test_in_flight_cap_rises_and_falls_with_the_capacity_read_during_the_map():
    script = [1] * 4 + [4] * 10 + [2] * 40
    ex = ScriptedCapacity(script)
    got = list(ex.map(wl.counted, range(40), chunk_size=1))
    assert got == [i * i for i in range(40)]
    s = ex.summary
    assert [w for _, w in s.capacity] == [1, 4, 2]  # the start, then each change it read
    assert s.peak_inflight == 8 and s.lost == 0 and s.failed == 0
    # never more in flight than two per worker read before the poll's submissions, except
    # while a fall drains: the tasks already submitted run, none is cancelled
    depths = [d for _, d in ex.depth]
    assert max(d for w, d in ex.depth if w == 1) == 2
    assert max(depths) == 8
    after = [d for w, d in ex.depth if w == 2]
    assert after[0] > 4 and after[:4] == list(range(after[0], after[0] - 4, -1))
    assert max(after[4:]) <= 4


def test_fixed_workers_never_re_read():
    ex = SerialExecutor()
    assert ex.capacity_refresh_s is None
    list(ex.map(wl.counted, range(10), chunk_size=1))
    assert ex.summary.capacity == [(0.0, 1)] and ex.summary.peak_inflight == 1


# ---------------------------------------------------------------- adaptive chunks

def test_adaptive_map_cuts_chunks_as_it_runs_and_equals_fixed():
    ex = SerialExecutor()
    got = list(ex.map(wl.numpy_work, range(50), schedule="adaptive", chunk_size=6))
    want = list(SerialExecutor().map(wl.numpy_work, range(50), chunk_size=7))
    assert all((a == b).all() for a, b in zip(got, want, strict=True))
    sizes = [sp.items for sp in ex.spans.spans]
    assert sum(sizes) == 50 and max(sizes) <= 6 and ex.summary.chunk_size == max(sizes)
    assert ex.summary.chunks == len(sizes) and ex.summary.item_cost_s > 0


def test_an_adaptive_map_on_a_fresh_process_pool_waits_for_its_workers():
    # nothing is cut before a worker is ready, and a process worker reports ready through the
    # executor's poll: the loop must poll while items wait uncut (it spun forever before)
    from quantfleet.compute import ProcessExecutor

    with ProcessExecutor(2) as ex:
        got = list(ex.map(wl.numpy_work, range(20), schedule="adaptive"))
    want = list(SerialExecutor().map(wl.numpy_work, range(20), chunk_size=7))
    assert all((a == b).all() for a, b in zip(got, want, strict=True))


def test_resumed_adaptive_map_reuses_the_saved_cuts(tmp_path):
    items = list(range(40))
    store = ChunkStore(tmp_path, fingerprint(wl.counted, items))
    # a plan as a killed run left it: chunks (0, 7) and (7, 19) cut, (0, 7) finished
    store.save_plan(ChunkPlan(40, 12, adaptive=True, cuts=(7, 19)))
    store.save(0, 0, 7, [i * i for i in range(7)])
    ex = SerialExecutor()
    got = list(ex.map(wl.counted, items, schedule="fixed", chunk_size=5, checkpoint_dir=tmp_path))
    assert got == [i * i for i in items]
    s = ex.summary
    assert (s.resumed_chunks, s.resumed_items) == (1, 7)
    plan = store.load_plan()
    assert plan.adaptive and plan.cuts[:2] == (7, 19) and plan.cuts[-1] == 40
    assert max(b - a for a, b in plan.ranges()[1:]) <= 12  # the saved largest size still holds
    assert store.load(1, 7, 19) == [i * i for i in range(7, 19)]
    assert store.done() == list(range(len(plan.cuts)))
    # a third run reads it all back
    list(ex.map(wl.counted, items, schedule="adaptive", checkpoint_dir=tmp_path))
    assert ex.summary.tasks == 0 and ex.summary.resumed_items == 40


def test_tournament_maps_adaptively_and_resumes_its_saved_cuts(tmp_path):
    from quantfleet.research.tournament import CHUNK_MAX_ITEMS, TASK_TARGET_S, tournament

    m = wl.market(n_assets=4)
    kw = dict(n_windows=2, max_combos=6, checkpoint_dir=tmp_path)
    ex = SerialExecutor()
    first = tournament(m, ["sma_cross", "rsi"], executor=ex, **kw)
    plan = json.loads(next(tmp_path.glob("*/plan.json")).read_text())
    assert plan["adaptive"] and plan["cuts"][-1] == 8 and plan["size"] == CHUNK_MAX_ITEMS
    assert plan["target_task_s"] == TASK_TARGET_S
    again = SerialExecutor()
    second = tournament(m, ["sma_cross", "rsi"], executor=again, **kw)
    assert again.summary.tasks == 0 and again.summary.resumed_items == 8
    assert second.leaderboard.equals(first.leaderboard)
    assert second.oos_returns.equals(first.oos_returns)


def test_adaptive_map_on_ray_equals_serial(ray_executor):
    items = list(range(60))
    got = list(ray_executor.map(wl.numpy_work, items, schedule="adaptive", chunk_size=8))
    want = list(SerialExecutor().map(wl.numpy_work, items))
    assert all((a == b).all() for a, b in zip(got, want, strict=True))
    assert ray_executor.summary.chunks >= math.ceil(60 / 8)


# ---------------------------------------------------------------- the multi-node half

@pytest.mark.integration
def test_map_grows_onto_nodes_added_mid_map_and_deadlines_run_from_start():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-m", "tests.compute.elastic_run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)  # fails a hung run only
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert out.returncode == 0 and line, out.stdout[-3000:] + out.stderr[-3000:]
    r = json.loads(line[-1][len("RESULT "):])
    print("elastic:", json.dumps(r))
    # the first task waited for a node longer than its deadline (timeout_s + grace) would
    # have allowed from submission; it ran, and nothing timed out
    assert r["first_wait_s"] > r["deadline_s"], r
    assert r["identical"] and r["failed"] == 0 and r["lost"] == 0, r
    # the map read the nodes that joined: 1 worker counted at the start (0 CPUs), 3 later,
    # and kept more in flight than the 2 it started with
    assert r["capacity"][0][1] == 1 and r["capacity"][-1][1] == 3, r
    assert r["peak_inflight"] > 2, r
    assert r["span_nodes_added"] >= 2 and r["span_nodes_head"] == 0, r
