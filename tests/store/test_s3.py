"""The store against a real S3 endpoint over HTTP (moto's server on 127.0.0.1): conditional
writes, corruption, concurrent writers, credentials, a Ray task reading from S3, the catalog."""

from __future__ import annotations

import json
import pickle
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from threading import Barrier

import numpy as np
import pyarrow as pa
import pytest

from quantfleet.errors import CorruptArtifactError, StoreError
from quantfleet.store import Catalog, Store, record_run
from tests.store.conftest import ACCESS_KEY, BUCKET, SECRET_KEY, aws_env

pytestmark = pytest.mark.integration


def _table(seed: int = 0, n: int = 200) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"asset": [f"A{i % 7}" for i in range(n)], "x": rng.normal(size=n),
                     "trades": rng.integers(0, 50, n)})


def _versions(client, key: str) -> list[dict]:
    got = client.list_object_versions(Bucket=BUCKET, Prefix=key)
    return [v for v in got.get("Versions", []) if v["Key"] == key]


def _key(url: str, ref) -> str:
    return url.removeprefix(f"s3://{BUCKET}/") + "/" + ref.key


def test_put_get_over_http(s3_url, s3_client):
    s = Store.open(s3_url)
    t = _table()
    ref = s.put_table(t, kind="tournament_results")
    assert s.get_table(ref.hash).equals(t)
    doc = s.put_json({"b": [1, 2], "a": None}, kind="summary")
    assert s.get_json(doc) == {"a": None, "b": [1, 2]}
    assert s.get_bytes(s.put_bytes(b"raw", kind="blob")) == b"raw"
    assert s.exists(ref) and not s.exists("f" * 64)
    obj = s3_client.get_object(Bucket=BUCKET, Key=_key(s3_url, ref))["Body"].read()
    assert obj == s.get_bytes(ref)
    # writing it again is a no-op: one object version
    assert s.put_table(t, kind="tournament_results") == ref
    assert len(_versions(s3_client, _key(s3_url, ref))) == 1
    s.set_ref("latest/results", ref)
    assert s.get_ref("latest/results") == ref and s.refs() == ["latest/results"]


def test_conditional_put_settles_a_race(s3_url, s3_client, monkeypatch):
    """The object appears between the existence check and the put: IfNoneMatch turns the second
    PUT into 412, which is success once the winner's bytes check out."""
    s = Store.open(s3_url)
    t = _table(1)
    first = s.put_table(t, kind="t")
    monkeypatch.setattr(Store, "_size", lambda self, key: None)  # skip the cheap pre-check
    assert s.put_table(t, kind="t") == first
    assert len(_versions(s3_client, _key(s3_url, first))) == 1
    with pytest.raises(FileExistsError):  # the raw call really is conditional
        s.fs.pipe_file(s._path(first.key), b"other", mode="create")


def test_corrupted_object_is_detected(s3_url, s3_client):
    s = Store.open(s3_url)
    ref = s.put_table(_table(2), kind="t")
    s3_client.put_object(Bucket=BUCKET, Key=_key(s3_url, ref), Body=b"PAR1 not the table")
    with pytest.raises(CorruptArtifactError, match=rf"artifact {ref.hash} at s3://{BUCKET}/.*"
                       r"is corrupt.*Fix: delete it"):
        s.get_table(ref)
    with pytest.raises(CorruptArtifactError, match="stored object has 18 bytes"):
        s.put_table(_table(2), kind="t")
    s.delete(ref)
    assert s.put_table(_table(2), kind="t") == ref and s.get_table(ref).equals(_table(2))


def test_concurrent_writers_same_and_different_artifacts(s3_url, s3_client):
    gate = Barrier(8)

    def put(i: int):
        gate.wait()
        st = Store.open(s3_url)
        same = st.put_table(_table(3), kind="t")
        other = st.put_table(_table(100 + i), kind="t")
        return same, other

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(put, range(8)))
    same = {g[0] for g in got}
    assert len(same) == 1
    (ref,) = same
    assert len(_versions(s3_client, _key(s3_url, ref))) == 1
    s = Store.open(s3_url)
    assert s.get_table(ref).equals(_table(3))
    for i, (_, other) in enumerate(got):
        assert s.get_table(other).equals(_table(100 + i))


def _put_in_process(url: str, env: dict[str, str]) -> str:
    import os

    os.environ.update(env)
    from quantfleet.store import Store
    from tests.store.test_s3 import _table

    return Store.open(url).put_table(_table(4), kind="t").hash


def test_concurrent_writer_processes(s3_url, s3_env, s3_client):
    import multiprocessing as mp

    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        hashes = list(pool.map(_put_in_process, [s3_url] * 2, [aws_env(s3_env)] * 2))
    assert len(set(hashes)) == 1
    s = Store.open(s3_url)
    assert s.get_table(hashes[0]).equals(_table(4))
    assert len(_versions(s3_client, _key(s3_url, s.stat(hashes[0])))) == 1


def test_credentials_never_leak(s3_url, s3_env, monkeypatch):
    # explicit credentials (env ones removed) work, and appear nowhere
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s = Store.open(s3_url, key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=s3_env,
                   region="us-east-1")
    ref = s.put_table(_table(5), kind="t")
    assert SECRET_KEY not in repr(s) and SECRET_KEY not in s.url
    assert SECRET_KEY not in json.dumps(s.describe())
    state = pickle.dumps(s)
    assert SECRET_KEY.encode() not in state and ACCESS_KEY.encode() not in state
    m = record_run(s, "sweep", outputs={"r": ref},
                   config={"store": {"url": s3_url, "secret": SECRET_KEY, "key": ACCESS_KEY},
                           "note": f"aws_secret_access_key={SECRET_KEY}"},
                   executor={"storage_options": {"token": SECRET_KEY}})
    raw = s.fs.cat_file(s._path(f"runs/{m.run_id}/manifest.json")).decode()
    assert SECRET_KEY not in raw and ACCESS_KEY not in raw
    assert SECRET_KEY not in json.dumps(s.get_json(m.archived))
    # errors: a missing artifact, an unreachable endpoint, a URL with user:password
    with pytest.raises(StoreError) as e1:
        s.get_table("e" * 64)
    bad = Store.open(s3_url, key=ACCESS_KEY, secret=SECRET_KEY,
                     endpoint_url=f"http://user:{SECRET_KEY}@127.0.0.1:9",
                     config_kwargs={"connect_timeout": 1, "retries": {"max_attempts": 1}},
                     retries=1)
    with pytest.raises(StoreError) as e2:
        bad.put_json({"a": 1})
    with pytest.raises(StoreError, match="credentials in the URL are not accepted") as e3:
        Store.open(f"s3://{ACCESS_KEY}:{SECRET_KEY}@{BUCKET}/p")
    for e in (e1, e2, e3):
        assert SECRET_KEY not in str(e.value), str(e.value)
    assert "AWS_ENDPOINT_URL" in str(e2.value)


def _reader(store: Store, h: str):
    """Runs on a Ray worker: input from S3 through the store, output back into it."""
    import pyarrow.compute as pc

    t = store.get_table(h)
    out = t.group_by("asset").aggregate([("x", "mean")]).sort_by("asset")
    return float(pc.sum(t["x"]).as_py()), store.put_table(out, kind="asset_means")


def test_ray_task_reads_and_writes_through_the_store(s3_url, s3_env, ray_session):
    ray = ray_session
    s = Store.open(s3_url)
    refs = [s.put_table(_table(10 + i), kind="market") for i in range(2)]
    # workers get credentials and endpoint from their environment, never from the driver
    task = ray.remote(_reader).options(runtime_env={"env_vars": aws_env(s3_env)})
    got = ray.get([task.remote(s, r.hash) for r in refs], timeout=600)  # a hung task only
    for r, (total, out) in zip(refs, got, strict=True):
        t = s.get_table(r)
        assert total == pytest.approx(float(np.sum(t["x"].to_numpy())))
        assert s.get_table(out).num_rows == 7 and out.kind == "asset_means"


def test_catalog_over_s3(s3_url):
    s = Store.open(s3_url)
    a = record_run(s, "tournament", outputs={"tournament_results": _table(20, n=10)},
                   config={"fee_bps": 0}, metrics={"sharpe": 1.0})
    b = record_run(s, "tournament", outputs={"tournament_results": _table(21, n=5)},
                   config={"fee_bps": 5}, metrics={"sharpe": 0.2})
    with Catalog(s) as cat:
        assert cat.views == ["tournament_results"]
        rows = cat.rows("select run_id, count(*) n from tournament_results group by 1 order by 1")
        assert rows == [{"run_id": a.run_id, "n": 10}, {"run_id": b.run_id, "n": 5}]
        glob = f"{s3_url}/artifacts/sha256/*/*.parquet"
        assert cat.rows(f"select count(*) n from read_parquet('{glob}')") == [{"n": 15}]
        best = cat.rows("select r.run_id, r.metrics->>'sharpe' sharpe, count(*) n from runs r "
                        "join tournament_results t using (run_id) group by all order by 2 desc")
        assert best[0]["run_id"] == a.run_id and best[0]["sharpe"] == "1.0"


def test_unique_prefixes_do_not_see_each_other(s3_env):
    a = Store.open(f"s3://{BUCKET}/iso-{uuid.uuid4().hex[:8]}")
    b = Store.open(f"s3://{BUCKET}/iso-{uuid.uuid4().hex[:8]}")
    ref = a.put_json({"x": 1}, kind="doc")
    assert a.exists(ref) and not b.exists(ref.hash)
    assert b.list_runs() == [] and b.refs() == []


def test_a_commands_run_on_s3_is_one_record_the_catalog_and_profile_read(s3_url, tmp_path):
    """A tournament command's one-stage run recorded on S3: its outputs by kind in the
    catalog (with run_id), its spans and summary read back by id prefix."""
    import subprocess
    import sys

    import pandas as pd

    from quantfleet.pipeline.run_record import load_run

    csv = tmp_path / "ACME.csv"
    rng = np.random.default_rng(3)
    pd.DataFrame({"Date": pd.bdate_range("2019-01-01", periods=600),
                  "Close": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 600)))}).to_csv(
        csv, index=False)
    p = subprocess.run([sys.executable, "-m", "quantfleet.cli", "tournament", str(csv),
                        "--strategies", "sma_cross,rsi", "--windows", "3", "--max-combos", "4",
                        "--executor", "serial", "--store", s3_url, "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    run_id = json.loads(p.stdout)["run_id"]
    with Catalog(s3_url) as cat:
        assert {"leaderboard", "tournament_results", "oos_returns", "market",
                "spans"} <= set(cat.views)
        rows = cat.rows("select strategy, asset, oos_sharpe, run_id from leaderboard "
                        "order by oos_sharpe desc limit 5")
    assert rows and {r["run_id"] for r in rows} == {run_id}
    rec = load_run(s3_url, run_id[:16])
    assert rec.run_id == run_id and len(rec.spans) >= 1 and rec.summary["wall_s"] > 0
