"""Checkpoint/resume: a killed or interrupted driver resumes with identical results."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from quantfleet.compute import ChunkStore, ProcessExecutor, SerialExecutor, fingerprint
from tests.compute import workloads as wl

ROOT = Path(__file__).resolve().parents[2]


def test_interrupted_map_resumes_and_skips_finished_chunks(tmp_path):
    items = list(range(30))
    want = list(SerialExecutor().map(wl.numpy_work, items))
    ex = SerialExecutor()
    got = []
    with pytest.raises(KeyboardInterrupt):
        for r in ex.map(wl.numpy_work, items, checkpoint_dir=tmp_path, chunk_size=4):
            got.append(r)
            if len(got) == 9:
                raise KeyboardInterrupt
    fp = fingerprint(wl.numpy_work, items)
    assert ChunkStore(tmp_path, fp).done() == [0, 1, 2]  # result 9 came from chunk 2; 3.. never ran
    wl.CALLS.clear()
    ex2 = SerialExecutor()
    again = list(ex2.map(wl.counted, items, checkpoint_dir=tmp_path, chunk_size=4))
    assert again == [i * i for i in items]  # a different fn is different work
    resumed = list(ex2.map(wl.numpy_work, items, checkpoint_dir=tmp_path, chunk_size=4))
    assert [pickle.dumps(r) for r in resumed] == [pickle.dumps(r) for r in want]
    assert (ex2.summary.resumed_chunks, ex2.summary.resumed_items) == (3, 12)
    assert ex2.summary.tasks == 5  # 8 chunks of 4, 3 on disk
    # a third run reads everything from disk
    list(ex2.map(wl.numpy_work, items, checkpoint_dir=tmp_path))
    assert ex2.summary.tasks == 0 and ex2.summary.resumed_items == 30


def test_failed_items_are_checkpointed_too(tmp_path):
    token = "ckpt-failed"
    first = list(SerialExecutor().map(wl.flaky, range(6), token, checkpoint_dir=tmp_path))
    ex = SerialExecutor()
    second = list(ex.map(wl.flaky, range(6), token, checkpoint_dir=tmp_path))
    assert first == second and ex.summary.resumed_items == 6 and ex.summary.failed == 1


def test_sigkilled_driver_resumes_on_another_executor(tmp_path):
    """The driver is killed while it runs item 8 (chunk 4 of 2-item chunks): it says so by a
    file and blocks there, so chunks 0-3 and only those are on disk, however fast it ran."""
    items = list(range(40))
    ckpt, gate = tmp_path / "ckpt", tmp_path / "gate"
    gate.mkdir()
    shared = (str(gate), 8)
    code = textwrap.dedent(f"""
        from quantfleet.compute import SerialExecutor
        from tests.compute import workloads as wl
        for _ in SerialExecutor().map(wl.sqrt_gated, {items!r}, {shared!r}, chunk_size=2,
                                      checkpoint_dir={str(ckpt)!r}):
            pass
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300  # fails a broken run only
        while not (gate / "blocked").exists():
            assert proc.poll() is None, f"the driver exited ({proc.returncode}) before item 8"
            assert time.monotonic() < deadline, "the driver never reached item 8"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = ChunkStore(ckpt, fingerprint(wl.sqrt_gated, items, shared))
    assert store.done() == [0, 1, 2, 3]
    (gate / "release").touch()
    with ProcessExecutor(2) as ex:
        got = list(ex.map(wl.sqrt_gated, items, shared, checkpoint_dir=ckpt))
        s = ex.summary
    assert got == [float(i) ** 0.5 for i in items]
    assert (s.resumed_chunks, s.resumed_items, s.chunk_size) == (4, 8, 2)
    assert s.tasks == 20 - 4


def test_ray_interrupted_then_resumed(tmp_path, ray_executor):
    market, items = wl.market(), wl.sma_items()
    want = [pickle.dumps(r) for r in SerialExecutor().map(wl.run_sma, items, market)]
    with pytest.raises(KeyboardInterrupt):
        for k, _ in enumerate(ray_executor.map(wl.run_sma, items, market, chunk_size=2,
                                               checkpoint_dir=tmp_path)):
            if k == 3:
                raise KeyboardInterrupt
    got = list(ray_executor.map(wl.run_sma, items, market, chunk_size=2, checkpoint_dir=tmp_path))
    assert [pickle.dumps(r) for r in got] == want
    assert ray_executor.summary.resumed_chunks >= 2
    assert isinstance(got[0], np.ndarray)
