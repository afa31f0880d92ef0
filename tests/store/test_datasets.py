"""Shard datasets: ``quantfleet data put`` writes one Parquet shard per asset and a manifest;
re-putting the same data changes nothing, other data under the same name is a new version."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from quantfleet.cli import app, main
from quantfleet.data import load
from quantfleet.errors import DataError
from quantfleet.store import Store
from quantfleet.store.datasets import open_dataset, parse_shards, put_dataset

SRC = "synthetic:gbm?bars=600&assets=3&seed=5"


def put(store, *args):
    r = CliRunner().invoke(app, ["data", "put", *args, "--store", str(store), "--json"])
    return r


def test_put_writes_one_shard_per_asset_and_a_manifest(tmp_path):
    r = put(tmp_path, SRC, "--name", "g3")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["created"] and out["previous"] is None
    assert out["reference"] == f"shards:g3@{out['manifest'][:12]}"
    st = Store.open(tmp_path)
    doc = st.get_json(out["manifest"])
    m = load(SRC)
    assert [s["asset"] for s in doc["shards"]] == list(m.assets)
    assert doc["fingerprint"] == {"kind": "synthetic", "url": SRC}
    assert doc["n_bars"] == m.n_bars and doc["columns"] == m.columns()
    assert [s["first_valid"] for s in doc["shards"]] == m.first_valid().tolist()
    for a, s in enumerate(doc["shards"]):
        data = st.get_bytes(s["sha256"])
        assert hashlib.sha256(data).hexdigest() == s["sha256"] and len(data) == s["bytes"]
        t = st.get_table(s["sha256"])
        assert np.array_equal(t.column("timestamp").to_numpy(), m.timestamps)
        for f in m.columns():  # the prices round-trip bit for bit
            assert np.array_equal(t.column(f).to_numpy(), m.field(f)[a], equal_nan=True)


def test_put_again_is_a_no_op_and_new_data_is_a_new_version(tmp_path):
    first = json.loads(put(tmp_path, SRC, "--name", "g").output)
    again = json.loads(put(tmp_path, SRC, "--name", "g").output)
    assert not again["created"] and again["manifest"] == first["manifest"]
    other = json.loads(put(tmp_path, SRC.replace("seed=5", "seed=6"), "--name", "g").output)
    assert other["created"] and other["previous"] == first["manifest"]
    st = Store.open(tmp_path)
    assert open_dataset(st, "shards:g").manifest_hash == other["manifest"]  # latest
    old = open_dataset(st, first["reference"])  # the old version stays readable
    assert old.manifest_hash == first["manifest"]
    np.testing.assert_array_equal(old.load(["SYN1"]).close, load(SRC).select(["SYN1"]).close)


def test_view_has_no_prices_and_load_returns_the_asset(tmp_path):
    m = load(SRC)
    ref = put_dataset(Store.open(tmp_path), m, name="v")["reference"]
    ds = open_dataset(Store.open(tmp_path), ref)
    v = ds.view
    assert v.assets == m.assets and v.n_bars == m.n_bars
    assert v.periods_per_year == m.periods_per_year and v.columns() == m.columns()
    assert not hasattr(v, "close")
    two = ds.load(["SYN2", "SYN0"])
    assert two.assets == ("SYN2", "SYN0")
    for f in m.columns():
        np.testing.assert_array_equal(two.field(f), m.select(["SYN2", "SYN0"]).field(f))


@pytest.mark.parametrize("args, match", [
    (["nope.csv"], "nope.csv: file not found"),
    ([SRC, "--name", "bad name"], "dataset name 'bad name'"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, match):
    with pytest.raises(SystemExit) as e:
        main(["data", "put", *args, "--store", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_dataset_and_version_name_the_fix(tmp_path):
    st = Store.open(tmp_path)
    with pytest.raises(DataError, match="no dataset 'x'.*quantfleet data put"):
        open_dataset(st, "shards:x")
    put_dataset(st, load(SRC), name="x")
    with pytest.raises(DataError, match="has no version abcdef"):
        open_dataset(st, "shards:x@abcdef")
    with pytest.raises(DataError, match="manifest hash"):
        parse_shards("shards:x@nothex")
    with pytest.raises(DataError, match="lives in a store"):
        load("shards:x")


def test_node_local_dir_serves_verified_copies(tmp_path):
    from quantfleet.store.datasets import clear_process_cache, process_loads

    st = Store.open(tmp_path / "store")
    m = load(SRC)
    ref = put_dataset(st, m, name="n")["reference"]
    node = tmp_path / "node"
    ds = open_dataset(st, ref, cache_dir=str(node))
    h = ds.manifest["shards"][1]["sha256"]
    clear_process_cache()
    ds.load(["SYN1"])
    copy = node / f"{h}.parquet"
    assert copy.read_bytes() == st.get_bytes(h)
    copy.write_bytes(b"not the shard")  # a damaged copy is fetched again, never used
    clear_process_cache()
    np.testing.assert_array_equal(ds.load(["SYN1"]).close, m.select(["SYN1"]).close)
    assert copy.read_bytes() == st.get_bytes(h)
    st.delete(h)  # another process of the node: the store is not asked again
    clear_process_cache()
    np.testing.assert_array_equal(ds.load(["SYN1"]).close, m.select(["SYN1"]).close)
    assert process_loads()[1] == (h,)


def test_cache_budget_evicts_least_recently_used(tmp_path, monkeypatch):
    from quantfleet.store.datasets import CACHE_MB_ENV, clear_process_cache, process_loads

    st = Store.open(tmp_path)
    ds = open_dataset(st, put_dataset(st, load(SRC), name="e")["reference"])
    h = {s["asset"]: s["sha256"] for s in ds.manifest["shards"]}
    clear_process_cache()
    ds.load(["SYN0"])
    ds.load(["SYN0"])  # cached: no second read
    monkeypatch.setenv(CACHE_MB_ENV, "0.01")  # room for one shard (600 bars x 5 columns)
    ds.load(["SYN1"])
    ds.load(["SYN0"])
    assert process_loads()[1] == (h["SYN0"], h["SYN1"], h["SYN0"])
    monkeypatch.setenv(CACHE_MB_ENV, "lots")
    with pytest.raises(DataError, match="QUANTFLEET_SHARD_CACHE_MB='lots'"):
        ds.load(["SYN2"])


def test_shards_and_parts_over_s3(s3_url):
    from quantfleet.research.tournament import tournament

    st = Store.open(s3_url)
    m = load(SRC)
    ds = open_dataset(st, put_dataset(st, m, name="s3")["reference"])
    kw = {"n_windows": 2, "grid": {"fast": [5, 10], "slow": [20, 40]}}
    a = tournament(m, ["sma_cross"], **kw)
    b = tournament(ds, ["sma_cross"], **kw)
    import pandas as pd

    pd.testing.assert_frame_equal(a.leaderboard, b.leaderboard)
    rows = st.get_table(st.put_parts([p["hash"] for p in b.parts["results"]],
                                     "tournament_results", rows=b.n_rows))
    pd.testing.assert_frame_equal(rows.to_pandas(), a.table.to_pandas())


def test_data_info_of_a_shard_dataset_reads_the_manifest(tmp_path):
    out = json.loads(put(tmp_path, SRC, "--name", "i").output)
    r = CliRunner().invoke(app, ["data", "info", "shards:i", "--store", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    m = load(SRC)
    assert d["source"] == out["reference"] and d["manifest"] == out["manifest"]
    assert d["assets"] == list(m.assets) and d["bars"] == m.n_bars
    assert d["shard_bytes"] == out["bytes"]
