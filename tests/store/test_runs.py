"""Run manifests, lineage across runs, record_run, the catalog and the CLI on memory:// and file://."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest

from quantfleet.errors import StoreError
from quantfleet.store import Catalog, RunManifest, Store, new_run_id, record_run
from quantfleet.store.runs import package_versions


def _results(sharpe: float, n: int = 4) -> pa.Table:
    return pa.table({"strategy": ["sma_cross"] * n, "asset": [f"A{i}" for i in range(n)],
                     "sharpe": [sharpe + i for i in range(n)]})


def test_run_ids_sort_by_time():
    ids = [new_run_id() for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert ids[0][8] == "T" and ids[0][21:23] == "Z-" and len(ids[0]) == 31


def test_package_versions_without_importing():
    v = package_versions(("numpy", "pyarrow", "no-such-package-qf"))
    assert set(v) == {"numpy", "pyarrow"}


def test_run_lifecycle(store):
    with store.run("sweep", config={"fee_bps": 5, "grid": {"fast": [5, 10]}},
                   executor={"name": "serial", "workers": 1}) as run:
        assert store.get_run(run.run_id).status == "running"
        market = store.put_table(_results(0.0), kind="market")
        out = store.put_table(_results(1.0), kind="sweep_results")
        run.record("sweep", inputs={"market": market}, outputs={"results": out},
                   settings={"metric": "sharpe"})
        run.metrics = {"best_sharpe": 4.0}
        run.timing = {"wall_s": 1.5}
    m = store.get_run(run.run_id)
    assert m.status == "succeeded" and m.finished and m.duration_s >= 0
    assert m.config == {"fee_bps": 5, "grid": {"fast": [5, 10]}}
    assert m.metrics == {"best_sharpe": 4.0} and m.timing == {"wall_s": 1.5}
    assert m.code["version"] and "numpy" in m.packages and "pyarrow" in m.packages
    assert m.executor == {"name": "serial", "workers": 1}
    assert m.steps[0]["inputs"] == {"market": market.hash}
    assert m.artifacts[out.hash]["kind"] == "sweep_results"
    assert m.artifacts[out.hash]["rows"] == 4
    # the finished manifest is also a content-addressed artifact
    archived = store.get_json(m.archived)
    assert archived["run_id"] == m.run_id and "archived" not in archived
    assert {**archived, "archived": m.archived} == m.to_dict()
    assert store.get_run("latest").run_id == m.run_id
    assert store.get_run(m.run_id[:12]).run_id == m.run_id


def test_failed_run_records_the_error(store):
    with pytest.raises(RuntimeError, match="boom"):
        with store.run("tournament", config={}) as run:
            raise RuntimeError("boom\nsecond line")
    m = store.get_run(run.run_id)
    assert m.status == "failed" and m.error == "RuntimeError: boom"


def test_lineage_walks_back_through_runs(store):
    market = store.put_table(_results(0.0), kind="market")
    first = record_run(store, "tournament", inputs={"market": market},
                       outputs={"tournament_results": _results(1.0)}, config={"train": 252})
    res = first.outputs["tournament_results"]
    second = record_run(store, "portfolio", inputs={"winners": res},
                        outputs={"weights": _results(2.0)}, config={"profiles": "hrp"},
                        settings={"profile": "hrp"})
    w = second.outputs["weights"]
    tree = store.lineage(w)
    assert tree["kind"] == "weights"
    (prod,) = tree["produced_by"]
    assert prod["run_id"] == second.run_id and prod["step"] == "portfolio"
    assert prod["settings"] == {"profile": "hrp"}
    up = prod["inputs"]["winners"]
    assert up["hash"] == res and up["produced_by"][0]["run_id"] == first.run_id
    assert up["produced_by"][0]["settings"] == {"train": 252}
    raw = up["produced_by"][0]["inputs"]["market"]
    assert raw["hash"] == market.hash and raw["produced_by"] == []
    with pytest.raises(StoreError, match="appears in no run manifest"):
        store.lineage("1" * 64)


def test_record_run_puts_every_kind_of_value(store, tmp_path):
    import pyarrow.parquet as pq

    p = tmp_path / "lb.parquet"
    pq.write_table(_results(3.0), p)
    m = record_run(store, "tournament", outputs={
        "results": _results(1.0).to_pandas(), "leaderboard": p, "summary": {"n": 4},
        "log": b"text"}, kinds={"log": "tournament_log"}, metrics={"sharpe": 1.0})
    kinds = {n: m.artifacts[h]["kind"] for n, h in m.outputs.items()}
    # a kind is what the artifact is, whichever command made it: by default its name
    assert kinds == {"results": "results", "leaderboard": "leaderboard",
                     "summary": "summary", "log": "tournament_log"}
    assert store.get_table(m.outputs["leaderboard"]).equals(_results(3.0))
    assert store.get_json(m.outputs["summary"]) == {"n": 4}
    with pytest.raises(StoreError, match="use a lowercase SQL identifier"):
        record_run(store, "x", outputs={"Bad-Name": {}})


def test_secrets_never_reach_the_manifest(store):
    secret = "s3cr3t-VALUE-that-must-not-leak"
    m = record_run(store, "sweep", outputs={"r": {"a": 1}},
                   config={"store": {"secret": secret, "key": secret, "endpoint_url":
                                     f"http://user:{secret}@minio:9000"},
                           "token": secret, "fee_bps": 1},
                   executor={"ray_address": f"ray://admin:{secret}@head:10001"},
                   error=f"failed with password={secret}", status="failed")
    text = json.dumps(store.get_run(m.run_id).to_dict())
    assert secret not in text
    assert "http://***@minio:9000" in text and m.config["fee_bps"] == 1


def test_catalog_views_and_incremental_refresh(store, tmp_path):
    a = record_run(store, "tournament", outputs={"tournament_results": _results(1.0)},
                   config={"fee_bps": 0}, metrics={"sharpe": 1.0})
    b = record_run(store, "tournament", outputs={"tournament_results": _results(2.0, n=2)},
                   config={"fee_bps": 5}, metrics={"sharpe": 0.5})
    cat = Catalog(store, path=tmp_path / "state" / "catalog.duckdb")
    assert "tournament_results" in cat.views
    rows = cat.rows("select run_id, count(*) n, max(sharpe) best from tournament_results "
                    "group by run_id order by run_id")
    assert rows == [{"run_id": a.run_id, "n": 4, "best": 4.0},
                    {"run_id": b.run_id, "n": 2, "best": 3.0}]
    runs = cat.rows("select run_id, status, config->>'fee_bps' fee from runs order by created")
    assert [r["fee"] for r in runs] == ["0", "5"]
    assert cat.rows("select count(*) n from lineage where direction = 'output'") == [{"n": 2}]
    assert cat.refresh() == 0  # nothing new, finished runs are not re-read
    c = record_run(store, "tournament", outputs={"tournament_results": _results(9.0, n=1)})
    assert cat.refresh() == 1
    assert cat.rows("select count(*) n from tournament_results") == [{"n": 7}]
    cat.close()
    # a persistent catalog opens again without re-reading
    again = Catalog(store, path=tmp_path / "state" / "catalog.duckdb", refresh=False)
    assert again.rows("select count(*) n from runs") == [{"n": 3}]
    uri = store.uri(c.outputs["tournament_results"])
    assert again.rows(f"select sharpe from read_parquet('{uri}')") == [{"sharpe": 9.0}]
    with pytest.raises(StoreError, match=r"query failed: .*tables: runs, artifacts, lineage; "
                                         r"views: tournament_results"):
        again.query("select * from tournament_resluts")
    again.close()


def test_unknown_and_ambiguous_runs(store):
    with pytest.raises(StoreError, match="no runs in store"):
        store.get_run("latest")
    m = record_run(store, "sweep", outputs={"r": {"a": 1}})
    with pytest.raises(StoreError, match=r"no run 'nope' in store .*quantfleet runs list"):
        store.get_run("nope")
    assert store.get_run(m.run_id[:4]).run_id == m.run_id
    record_run(store, "sweep", outputs={"r": {"a": 2}})
    with pytest.raises(StoreError, match="is ambiguous"):
        store.get_run(m.run_id[:4])


def test_manifest_round_trip():
    m = RunManifest.new("sweep", config={"a": 1})
    m.record("s", outputs={"x": "a" * 64})
    assert RunManifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    with pytest.raises(TypeError, match=r"outputs\['x'\] must be an ArtifactRef or a hash"):
        m.record("s", outputs={"x": 3})


def _qf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantfleet.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_runs_and_query(tmp_path):
    url = str(tmp_path / "lake")
    s = Store.open(url)
    a = record_run(s, "tournament", outputs={"tournament_results": _results(1.0)},
                   config={"fee_bps": 0, "train": 252}, metrics={"sharpe": 1.0})
    b = record_run(s, "tournament", outputs={"tournament_results": _results(2.0)},
                   config={"fee_bps": 5, "train": 252}, metrics={"sharpe": 0.5})
    listed = json.loads(_qf("runs", "list", "--store", url, "--json").stdout)
    assert [r["run_id"] for r in listed] == [a.run_id, b.run_id]
    shown = json.loads(_qf("runs", "show", "latest", "--store", url, "--json").stdout)
    assert shown["run_id"] == b.run_id and shown["config"]["fee_bps"] == 5
    diff = json.loads(_qf("runs", "diff", a.run_id, b.run_id, "--store", url, "--json").stdout)
    assert diff["config"] == [{"field": "fee_bps", "a": 0, "b": 5, "delta": 5}]
    assert diff["metrics"] == [{"field": "sharpe", "a": 1.0, "b": 0.5, "delta": -0.5}]
    q = _qf("query", "select run_id, max(sharpe) best from tournament_results group by 1 "
                     "order by 1", "--store", url, "--json")
    assert json.loads(q.stdout) == [{"run_id": a.run_id, "best": 4.0},
                                    {"run_id": b.run_id, "best": 5.0}]
    text = _qf("runs", "show", a.run_id, "--store", url)
    assert text.returncode == 0 and "fee_bps = 0" in text.stdout
    bad = _qf("runs", "show", "nope", "--store", url)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: no run 'nope'")
    assert len(bad.stderr.strip().splitlines()) == 1
    badq = _qf("query", "select nope", "--store", url)
    assert badq.returncode == 2 and "query failed" in badq.stderr
