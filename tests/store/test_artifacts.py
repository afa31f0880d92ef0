"""The store API on memory:// and file://: content addressing, verification, refs, pickling."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from quantfleet.errors import CorruptArtifactError, StoreError
from quantfleet.store import ArtifactRef, Store, canonical_json, table_bytes
from quantfleet.store.keys import artifact_key


def _table(n: int = 50, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"strategy": ["sma_cross"] * n, "asset": [f"A{i % 5}" for i in range(n)],
                     "sharpe": rng.normal(size=n), "trades": rng.integers(0, 100, n)})


def test_put_get_table_round_trip(store):
    t = _table()
    ref = store.put_table(t, kind="tournament_results")
    assert ref.format == "parquet" and ref.rows == 50 and ref.kind == "tournament_results"
    assert ref.key == artifact_key(ref.hash, "parquet")
    assert ref.key.startswith(f"artifacts/sha256/{ref.hash[:2]}/{ref.hash}")
    assert store.get_table(ref).equals(t)
    assert store.get_table(ref.hash).equals(t)
    assert store.exists(ref) and store.exists(ref.hash)
    assert hashlib.sha256(store.get_bytes(ref)).hexdigest() == ref.hash


def test_same_table_same_bytes_and_hash(store):
    a = store.put_table(_table(), kind="t")
    b = store.put_table(_table().slice(0, 25).to_batches()[0], kind="t")  # different content
    c = store.put_table(pa.concat_tables([_table().slice(0, 20), _table().slice(20)]), kind="t")
    assert c.hash == a.hash  # chunking does not change the bytes
    assert b.hash != a.hash
    df = _table().to_pandas()
    assert store.put_table(df, kind="t").hash == store.put_table(df.copy(), kind="t").hash
    assert store.get_table(store.put_table(df, kind="t")).to_pandas().equals(df)


def test_table_ref_is_put_tables_ref_without_storing(store):
    # a table large enough that the writer hands its bytes over in several pieces
    big = pa.concat_tables([_table(20_000, seed=s) for s in range(3)])
    for t in (_table(), big, _table().to_pandas()):
        ref = store.table_ref(t, kind="market")
        assert not store.exists(ref)  # nothing stored
        data, rows = table_bytes(t)
        assert ref == ArtifactRef(hashlib.sha256(data).hexdigest(),
                                  artifact_key(hashlib.sha256(data).hexdigest(), "parquet"),
                                  "market", "parquet", len(data), rows)
        assert store.put_table(t, kind="market") == ref


def test_parquet_bytes_are_the_same_in_another_process():
    code = ("import numpy as np, pyarrow as pa, hashlib\n"
            "from quantfleet.store import table_bytes\n"
            "from tests.store.test_artifacts import _table\n"
            "print(hashlib.sha256(table_bytes(_table())[0]).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.strip() == hashlib.sha256(table_bytes(_table())[0]).hexdigest()


def test_parquet_metadata_holds_no_timestamp():
    import pyarrow.parquet as pq

    data, _ = table_bytes(_table())
    md = pq.ParquetFile(pa.BufferReader(data)).metadata
    assert md.created_by.startswith("parquet-cpp-arrow")
    kv = md.metadata or {}
    assert set(kv) <= {b"ARROW:schema"}


def test_json_is_canonical(store):
    a = store.put_json({"b": 1, "a": [1.5, float("nan"), float("inf")], "c": np.float64(2.0)})
    b = store.put_json({"c": 2.0, "a": (1.5, None, "inf"), "b": np.int64(1)})
    assert a.hash == b.hash and a.format == "json"
    assert store.get_json(a) == {"a": [1.5, None, "inf"], "b": 1, "c": 2.0}
    assert canonical_json({"x": -0.0, "é": 1}) == '{"x":0.0,"é":1}'.encode()
    with pytest.raises(TypeError, match=r"value at \$\.k is a object"):
        canonical_json({"k": object()})


def test_bytes(store):
    ref = store.put_bytes(b"\x00raw", kind="blob")
    assert ref.format == "bytes" and ref.key.endswith(".bin")
    assert store.get_bytes(ref.hash) == b"\x00raw"
    with pytest.raises(TypeError, match="put_bytes expects bytes"):
        store.put_bytes("text")  # type: ignore[arg-type]


def test_errors_name_the_thing_and_the_fix(store):
    ref = store.put_json({"a": 1})
    with pytest.raises(StoreError, match=r"is json, not parquet; read it with store.get_json"):
        store.get_table(ref.hash)
    missing = "0" * 64
    with pytest.raises(StoreError, match=f"no artifact {missing} in store"):
        store.get_table(missing)
    assert not store.exists(missing)
    with pytest.raises(StoreError, match="is not an artifact hash: expected 64 hex"):
        store.get_json("abc")
    with pytest.raises(StoreError, match="use a lowercase SQL identifier"):
        store.put_json({}, kind="Bad Kind")
    with pytest.raises(StoreError, match="is a catalog table name"):
        store.put_json({}, kind="runs")
    with pytest.raises(TypeError, match="put_table expects a pyarrow.Table"):
        store.put_table({"a": [1]})


def _overwrite_behind_the_store(store: Store, key: str, data: bytes) -> None:
    path = store._path(key)
    if store.protocol == "file":
        with open(path, "wb") as f:
            f.write(data)
    else:
        store.fs.pipe_file(path, data)


def test_corrupt_artifact_is_detected(store):
    ref = store.put_table(_table(), kind="t")
    good = store.get_bytes(ref)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    _overwrite_behind_the_store(store, ref.key, bytes(bad))
    with pytest.raises(CorruptArtifactError, match=rf"artifact {ref.hash} at .*{ref.key} is "
                       r"corrupt.*Fix: delete it \(store.delete"):
        store.get_table(ref)
    # same size: a put cannot tell (reads can); a different size is caught on put too
    _overwrite_behind_the_store(store, ref.key, good[:-10])
    with pytest.raises(CorruptArtifactError, match="stored object has"):
        store.put_table(_table(), kind="t")
    store.delete(ref)
    assert store.put_table(_table(), kind="t") == ref
    assert store.get_table(ref).equals(_table())


def test_refs(store):
    a = store.put_table(_table(), kind="market")
    store.set_ref("latest/market", a)
    assert store.get_ref("latest/market") == a
    b = store.put_json({"x": 1}, kind="doc")
    store.set_ref("latest/market", b.hash)
    got = store.get_ref("latest/market")
    assert got.hash == b.hash and got.format == "json"
    assert store.refs() == ["latest/market"]
    with pytest.raises(StoreError, match=r"no ref 'latest/markte'.*did you mean 'latest/market'"):
        store.get_ref("latest/markte")
    with pytest.raises(StoreError, match="ref name '../x'"):
        store.set_ref("../x", a)


def test_pickled_store_reopens(store):
    ref = store.put_table(_table(), kind="t")
    s2 = pickle.loads(pickle.dumps(store))
    assert s2 == store and s2.url == store.url and s2._fs is None
    assert s2.get_table(ref.hash).equals(_table())
    assert pickle.loads(pickle.dumps(ref)) == ref


def test_open_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Store.open().url == "file://" + str(tmp_path / "lakehouse")
    assert Store.open(tmp_path / "x").url == "file://" + str(tmp_path / "x")
    assert Store.open(f"file://{tmp_path}/y").url == f"file://{tmp_path}/y"
    assert Store.open("memory://abc/").url == "memory://abc"
    assert Store.open("s3://bucket/pre/fix/").url == "s3://bucket/pre/fix"
    s = Store.open("memory://abc")
    assert Store.open(s) is s and repr(s) == "Store('memory://abc')"
    with pytest.raises(StoreError, match="names no bucket"):
        Store.open("s3://")
    with pytest.raises(TypeError, match="store URL must be a str"):
        Store.open(3)  # type: ignore[arg-type]


def test_local_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    s = Store.open(tmp_path / "lake")
    refs = [s.put_table(_table(seed=i), kind="t") for i in range(3)]
    files = [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted(r.key.rsplit("/", 1)[1] for r in refs)


def test_local_concurrent_writers_of_one_artifact(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    s = Store.open(tmp_path / "lake")
    gate = Barrier(8)

    def put(_):
        gate.wait()
        return Store.open(tmp_path / "lake").put_table(_table(), kind="t")

    with ThreadPoolExecutor(8) as pool:
        refs = list(pool.map(put, range(8)))
    assert len(set(refs)) == 1
    assert s.get_table(refs[0]).equals(_table())
    assert [p.name for p in (tmp_path / "lake").rglob("*") if p.is_file()] == [
        refs[0].key.rsplit("/", 1)[1]]


def test_artifact_ref_dict_round_trip():
    r = ArtifactRef("a" * 64, "artifacts/sha256/aa/" + "a" * 64 + ".json", "doc", "json", 3)
    assert ArtifactRef.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_public_surface_and_slim_import():
    import quantfleet.store as qs

    assert qs.__all__ == sorted(qs.__all__) == [
        "ArtifactRef", "Catalog", "RunManifest", "Store", "StoreCheckpoint", "canonical_json",
        "code_version", "new_run_id", "record_run", "table_bytes"]
    code = ("import sys, json, quantfleet.store\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mods = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not mods & {"duckdb", "s3fs", "fsspec", "pyarrow", "pandas", "ray", "numba"}, mods


def test_a_parquet_file_is_put_as_it_is(store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"a": list(range(10))}), path)
    ref = store.put_parquet_file(path, kind="sweep_results")
    assert ref.rows == 10 and ref.format == "parquet" and ref.bytes == path.stat().st_size
    assert store.get_table(ref).column("a").to_pylist() == list(range(10))
    assert store.get_bytes(ref) == path.read_bytes()


def test_discard_empties_a_memory_store_and_only_a_memory_store(tmp_path):
    import uuid

    import fsspec

    s = Store.open(f"memory://qf-discard-{uuid.uuid4().hex[:10]}")
    ref = s.put_json({"a": 1}, kind="doc")
    assert s.exists(ref)
    s.discard()
    assert not s.exists(ref)
    assert not fsspec.filesystem("memory").exists(s._root)
    s.discard()  # already empty: nothing to do
    local = Store.open(tmp_path / "lake")
    kept = local.put_json({"a": 1}, kind="doc")
    with pytest.raises(StoreError, match="discard"):
        local.discard()
    assert local.exists(kept)


def test_discarding_a_memory_store_that_wrote_nothing_imports_no_fsspec():
    code = ("import sys\nfrom quantfleet.store import Store\n"
            "Store.open('memory://never-written').discard()\n"
            "print('fsspec' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
