"""The evolution's checkpoint in a store (S3 on moto's server on 127.0.0.1, and a local folder):
an interrupted evolution resumes from it to the uninterrupted history; a resume on other data is
refused in one line; the pipeline's automatic checkpoint of a recorded run lives in its store.
The coordinator killed mid-evolution with its checkpoint in S3 is in test_coordinator_faults.py.
"""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest

from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.research.evolve import evolve
from quantfleet.store import Store, StoreCheckpoint
from tests import reference as ref
from tests.store.conftest import BUCKET, SECRET_KEY, s3_endpoint, s3_env  # noqa: F401

KW = dict(population=10, generations=4, seed=5)


class Interrupted(Exception):
    pass


def _market(seed: int = 11) -> MarketData:
    rng = np.random.default_rng(seed)
    close = np.stack([ref.random_close(rng, 500, 0.014) for _ in range(2)])
    ts = (np.datetime64("2014-01-01") + np.arange(500)).astype("datetime64[ns]")
    return MarketData(ts, ("AA", "BB"), close, source="test")


def _plain(res) -> dict:
    return {"winners": json.dumps(res.winners, sort_keys=True),  # NaN-safe
            "history": [{k: v for k, v in h.items() if k not in ("wall_s", "cpu_s")}
                        for h in res.history],
            "counts": [res.n_evaluations, res.n_failed, res.n_cached],
            "overfit": json.dumps(res.overfit, sort_keys=True)}


@pytest.fixture(params=["s3", "file"])
def store(request, tmp_path):
    if request.param == "s3":
        request.getfixturevalue("s3_env")
        return Store.open(f"s3://{BUCKET}/ck-{uuid.uuid4().hex[:10]}")
    return Store.open(str(tmp_path / "lake"))


def test_an_interrupted_evolution_resumes_from_its_store_checkpoint(store):
    market = _market()
    want = _plain(evolve(market, ["sma_cross", "rsi"], **KW))  # no checkpoint, uninterrupted
    ck = StoreCheckpoint(store, f"evolution/{uuid.uuid4().hex[:8]}/evolve.json")
    seen: list[int] = []

    def stop_in_round_2(rec):
        seen.append(rec["round"])
        if rec["round"] == 2:
            raise Interrupted  # before round 2's checkpoint is written

    with pytest.raises(Interrupted):
        evolve(market, ["sma_cross", "rsi"], checkpoint_dir=ck, on_round=stop_in_round_2, **KW)
    saved = json.loads(ck.read())
    assert [h["round"] for h in saved["history"]] == [0, 1]  # what the store holds
    assert ck.sibling("evolve.config.json").read() is not None  # and its record beside it
    rounds: list[int] = []
    again = evolve(market, ["sma_cross", "rsi"], checkpoint_dir=ck,
                   on_round=lambda r: rounds.append(r["round"]), **KW)
    assert _plain(again) == want
    assert rounds == [0, 1, 2, 3]  # the two saved rounds replayed, then the rest computed
    # a fresh handle on the same URL (what a coordinator elsewhere opens) sees the same state
    other = StoreCheckpoint(Store.open(store.url), ck.key[len("checkpoints/"):])
    assert json.loads(other.read())["history"] == json.loads(ck.read())["history"]


def test_a_resume_on_other_data_is_refused_in_one_line(store):
    market = _market()
    ck = StoreCheckpoint(store, "evolution/x/evolve.json")
    evolve(market, ["sma_cross"], checkpoint_dir=ck, population=6, generations=2, seed=1)
    close = market.close.copy()
    close[:, 250:] *= 1.03
    other = MarketData(market.timestamps, market.assets, close, source="test")
    with pytest.raises(QuantfleetError, match=r"the checkpoint there was made with other "
                                              r"settings \(data differ\)") as e:
        evolve(other, ["sma_cross"], checkpoint_dir=ck, population=6, generations=2, seed=1)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(ck.folder) and SECRET_KEY not in msg
    with pytest.raises(QuantfleetError, match=r"\(population differ\)"):
        evolve(market, ["sma_cross"], checkpoint_dir=ck, population=8, generations=2, seed=1)


@pytest.mark.usefixtures("s3_env")
def test_the_pipeline_keeps_its_automatic_checkpoint_in_the_runs_s3_store(tmp_path, monkeypatch):
    """`quantfleet evolve` / `quantfleet run` with --store s3://...: the evolution stage's
    automatic checkpoint is in that store (checkpoints/evolution/<hash>/), not in
    $QUANTFLEET_HOME; running the same config again resumes from it (it writes no new
    version of the finished checkpoint: the bucket is versioned)."""
    import boto3

    from quantfleet.pipeline.config import validate_config
    from quantfleet.pipeline.record import run_stages

    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QUANTFLEET_METRICS", "0")
    prefix = f"run-{uuid.uuid4().hex[:10]}"
    cfg = validate_config({
        "store": f"s3://{BUCKET}/{prefix}", "executor": {"kind": "serial"},
        "data": {"source": "synthetic:gbm?bars=500&assets=2&seed=4"},
        "report": {"enabled": False},
        **{s: {"enabled": False} for s in ("tournament", "portfolio")},
        "evolution": {"strategies": ["sma_cross"], "population": 8, "generations": 3}}, "test")
    first = run_stages(cfg, "run", log=lambda m: None).results["evolution"]
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")

    def versions() -> dict[str, int]:
        out: dict[str, int] = {}
        for v in s3.list_object_versions(Bucket=BUCKET,
                                         Prefix=f"{prefix}/checkpoints/").get("Versions", []):
            name = v["Key"][len(f"{prefix}/checkpoints/"):]  # evolution/<hash>/<file>
            out[name] = out.get(name, 0) + 1
        return out

    made = versions()
    names = sorted(k.rsplit("/", 1)[-1] for k in made)
    assert names == ["evolve.config.json", "evolve.json"], made
    assert all(k.startswith("evolution/") for k in made)
    assert [v for k, v in made.items() if k.endswith("/evolve.json")] == [3]  # one per round
    assert not (tmp_path / "home" / "checkpoints" / "evolution").exists()
    again = run_stages(cfg, "run", log=lambda m: None).results["evolution"]
    assert _plain(again) == _plain(first)
    assert versions() == made  # served from the checkpoint in S3: nothing written again


def test_an_explicit_checkpoint_url_is_refused_in_one_line(tmp_path, monkeypatch):
    from quantfleet.pipeline.config import validate_config
    from quantfleet.pipeline.record import run_stages

    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    cfg = validate_config({
        "executor": {"kind": "serial"}, "data": {"source": "synthetic:gbm?bars=300&assets=1"},
        "report": {"enabled": False},
        **{s: {"enabled": False} for s in ("tournament", "portfolio")},
        "evolution": {"strategies": ["sma_cross"], "population": 4, "generations": 1,
                      "checkpoint": "s3://bucket/ck"}}, "test")
    with pytest.raises(QuantfleetError, match=r"\[evolution\] checkpoint 's3://bucket/ck'.*"
                                              r"checkpoint = \"auto\"") as e:
        run_stages(cfg, "run", record=False, log=lambda m: None)
    assert "\n" not in str(e.value)
