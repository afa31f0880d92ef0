"""The evolution survives its coordinator's death and its worker nodes' deaths, mid-evolution,
with the history of an uninterrupted run and of serial (drivers: cluster_coordinator.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.research.evolve import evolve
from tests import reference as ref
from tests.store.conftest import BUCKET, aws_env, s3_endpoint  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def _run(mode: str, **extra_env: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **extra_env}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-m", "tests.research.cluster_coordinator", mode],
                         cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)  # fails a hung run only
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert out.returncode == 0 and line, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(line[-1][len("RESULT "):])


@pytest.mark.integration
def test_evolution_survives_a_killed_coordinator():
    res = _run("coordinator")
    assert res["hit"]["generation"] == 2 and res["generations"] == 5, res
    assert res["identical_to_serial"] and res["identical_to_uninterrupted"], res
    assert res["uninterrupted_identical_to_serial"], res
    c = res["coordinator"]
    assert c["on_head"] and c["restarts"] == 1, c
    assert [i["pid"] for i in c["incarnations"]][0] == res["hit"]["pid"], c
    assert c["incarnations"][1]["checkpoint_found"], c
    assert res["rounds_followed"] == [0, 1, 2, 3, 4], res


@pytest.mark.integration
def test_evolution_survives_a_killed_coordinator_with_its_checkpoint_in_s3(request):
    """The coordinator SIGKILLed mid-evolution resumes from the checkpoint it keeps in an S3
    store (moto's server on 127.0.0.1; the cluster's processes take the credentials and the
    endpoint from their environment): the history of serial and of an uninterrupted run."""
    endpoint = request.getfixturevalue("s3_endpoint")
    url = f"s3://{BUCKET}/killed-{uuid.uuid4().hex[:10]}"
    res = _run("s3", QF_TEST_S3_URL=url, **aws_env(endpoint))
    assert res["hit"]["generation"] == 2 and res["generations"] == 5, res
    assert res["identical_to_serial"] and res["identical_to_uninterrupted"], res
    c = res["coordinator"]
    assert c["on_head"] and c["restarts"] == 1, c
    assert not c["incarnations"][0]["checkpoint_found"], c  # a fresh run: nothing in S3 yet
    assert c["incarnations"][1]["checkpoint_found"] and c["incarnations"][1]["restarted"], c
    assert res["rounds_followed"] == [0, 1, 2, 3, 4], res
    assert res["checkpoint"].startswith(url + "/checkpoints/evolution/killed/"), res
    assert res["checkpoint_rounds"] == [0, 1, 2, 3, 4] and res["record_in_store"], res


@pytest.mark.integration
def test_evolution_survives_its_worker_nodes_killed():
    res = _run("node")
    assert res["hit"]["node"] == res["head"] and res["victims_are_workers"], res
    assert len(res["victims"]) == 2, res
    assert res["identical_to_serial"] and res["identical_to_uninterrupted"], res
    c = res["coordinator"]
    assert c["node"] == res["head"] and c["restarts"] == 0, c
    assert res["rounds_followed"] == [0, 1, 2, 3, 4], res


def _market(seed: int) -> MarketData:
    rng = np.random.default_rng(seed)
    close = np.stack([ref.random_close(rng, 400, 0.015) for _ in range(2)])
    ts = (np.datetime64("2013-01-01") + np.arange(400)).astype("datetime64[ns]")
    return MarketData(ts, ("AA", "BB"), close, source="test")


def test_the_coordinator_keeps_the_checkpoint_and_refuses_other_data(ray_executor, tmp_path):
    """With Ray the checkpoint (and its record of what it was computed from) is written by the
    coordinator; a resume on other data is refused there, in one line, as on serial."""
    kw = dict(population=8, generations=2, seed=1, checkpoint_dir=tmp_path)
    first = evolve(_market(1), ["sma_cross"], executor=ray_executor, **kw)
    assert first.coordinator["on_head"] and first.coordinator["restarts"] == 0
    assert (tmp_path / "evolve.json").exists() and (tmp_path / "evolve.config.json").exists()
    again = evolve(_market(1), ["sma_cross"], **kw)  # serial, served from the checkpoint
    assert again.history == first.history
    assert json.dumps(again.winners) == json.dumps(first.winners)  # NaN-safe
    with pytest.raises(QuantfleetError, match=r"\(data differ\)") as e:
        evolve(_market(2), ["sma_cross"], executor=ray_executor, **kw)
    assert "\n" not in str(e.value)


def test_the_evolution_stage_runs_the_coordinator(ray_executor, tmp_path):
    """The path `quantfleet evolve --executor ray` takes (its stages, in process, on the
    session's Ray): the loop runs in the coordinator, the summary says where, and the result is
    serial's."""
    import pandas as pd

    from quantfleet.commands.options import research_config
    from quantfleet.pipeline.record import run_stages

    m = _market(3)
    path = tmp_path / "M.csv"
    pd.DataFrame({"Date": pd.to_datetime(m.timestamps), "Close": m.close[0]}).to_csv(path,
                                                                                   index=False)
    settings = {"strategies": ["sma_cross", "rsi"], "population": 8, "generations": 3,
                "seed": 2, "checkpoint": str(tmp_path / "ck")}

    def run(kind: str):
        cfg = research_config("evolution", settings, data=str(path), store=None, executor=kind,
                              workers=2)
        out = run_stages(cfg, "evolve", record=False, log=lambda msg: None)
        return out.results["evolution"], out.stages["evolution"]

    ray_res, stage = run("ray")
    assert ray_res.coordinator["on_head"] and ray_res.coordinator["restarts"] == 0
    assert stage["summary"]["coordinator"] == ray_res.coordinator
    assert (tmp_path / "ck" / "evolve.json").exists()
    (tmp_path / "ck" / "evolve.json").unlink()
    (tmp_path / "ck" / "evolve.config.json").unlink()
    serial, _ = run("serial")
    assert serial.coordinator is None
    assert json.dumps(serial.winners) == json.dumps(ray_res.winners)
    assert [{k: v for k, v in h.items() if k not in ("wall_s", "cpu_s")} for h in serial.history] \
        == [{k: v for k, v in h.items() if k not in ("wall_s", "cpu_s")} for h in ray_res.history]
