"""The coordinator actor on the session's Ray: placement, restarts from the checkpoint, errors,
and what the driver follows. The multi-node faults (a killed coordinator, killed worker nodes
mid-evolution) are in tests/research/test_coordinator_faults.py."""

from __future__ import annotations

import os

import pytest

from quantfleet.errors import ExecutionError, QuantfleetError
from tests.compute import coordinated as co


def test_runs_on_the_head_and_reports_every_round(ray_executor, tmp_path):
    from quantfleet.compute.coordinator import head_node_id

    rounds = []
    out = ray_executor.host(co.squares, 4, checkpoint=tmp_path / "ck.json",
                            on_round=lambda r: rounds.append(r["round"]))
    assert out.value["total"] == 0 + 1 + 4 + 9
    assert out.node == out.head == head_node_id() and out.restarts == 0
    assert out.value["pid"] != os.getpid()  # the loop ran in the actor, not here
    assert rounds == [0, 1, 2, 3]
    stages = {s.stage for s in ray_executor.spans.spans}
    assert "squares" in stages  # the actor's maps reported their spans to the driver's recorder


def test_a_killed_coordinator_resumes_from_its_checkpoint(ray_executor, tmp_path):
    rounds = []
    marker = tmp_path / "died"
    out = ray_executor.host(co.squares, 5, checkpoint=tmp_path / "ck.json", die_at=3,
                            marker=str(marker), on_round=lambda r: rounds.append(r["round"]))
    assert marker.exists()  # it did die at round 3
    assert out.value["total"] == sum(i * i for i in range(5))
    assert out.restarts == 1 and len(out.incarnations) == 2
    assert out.incarnations[1]["checkpoint_found"] and out.incarnations[1]["restarted"]
    assert rounds == [0, 1, 2, 3, 4]  # each once, in order, across the restart


def test_without_a_checkpoint_a_scratch_one_in_memory_is_used_and_goes_with_the_run(
        ray_executor, tmp_path):
    import ray

    out = ray_executor.host(co.squares, 4, die_at=2, marker=str(tmp_path / "died"))
    assert out.value["total"] == 0 + 1 + 4 + 9 and out.restarts == 1
    assert out.incarnations[1]["checkpoint_found"]  # the restart resumed from the scratch one
    scratch = out.value["scratch"]
    assert scratch is not None  # a ScratchCheckpoint, held by the run's Keeper actor
    with pytest.raises(ray.exceptions.RayActorError):
        scratch.read()  # the keeper (and what it held) went with the run


def test_a_coordinator_that_keeps_dying_is_one_error(ray_executor):
    with pytest.raises(ExecutionError, match="coordinator actor died more than 1 time") as e:
        ray_executor.host(co.always_dies, restarts=1)
    assert "named no checkpoint" in str(e.value) and "\n" not in str(e.value)


def test_a_checkpoint_object_is_used_where_the_coordinator_runs(ray_executor, tmp_path):
    """A checkpoint given as an object (read/write/sibling; here a file store's) travels to
    the actor, which resumes from it after a death."""
    from quantfleet.store import Store, StoreCheckpoint

    ck = StoreCheckpoint(Store.open(os.fspath(tmp_path / "lake")), "t/ck.json")
    out = ray_executor.host(co.squares, 5, checkpoint=ck, die_at=3,
                            marker=str(tmp_path / "died"))
    assert out.value["total"] == sum(i * i for i in range(5)) and out.restarts == 1
    assert out.incarnations[1]["checkpoint_found"]
    assert (tmp_path / "lake" / "checkpoints" / "t" / "ck.json").exists()


def test_a_quantfleet_error_in_the_coordinator_reaches_the_driver_as_itself(ray_executor):
    with pytest.raises(QuantfleetError) as e:
        ray_executor.host(co.refuses)
    assert str(e.value) == "field x: bad; use y"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_dead_driver_leaves_no_scratch_state_behind(ray_session, tmp_path):
    """The driver is SIGKILLed while its coordinated run holds a scratch checkpoint: Ray ends
    the coordinator and its keeper (both owned by the driver), so the state is gone with them
    and no file was ever written for it."""
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    address = ray_session.get_runtime_context().gcs_address
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "tests.compute.orphan_driver", address,
                             str(tmp_path)], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # bounds a hung run only
        while not (tmp_path / "hit").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the driver never got there"
            time.sleep(0.05)
        pids = json.loads((tmp_path / "hit").read_text())
        assert _alive(pids["coordinator"]) and _alive(pids["keeper"])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 120  # bounds a leak: they must go, however long it takes
        while _alive(pids["coordinator"]) or _alive(pids["keeper"]):
            assert time.monotonic() < deadline, f"left running after the driver died: {pids}"
            time.sleep(0.1)
    finally:
        (tmp_path / "release").write_text("")
        if proc.poll() is None:
            proc.kill()
            proc.wait()
