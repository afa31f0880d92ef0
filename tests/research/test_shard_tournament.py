"""A tournament on a shard dataset gives the in-memory tournament's results: the same
leaderboard, overfitting rows and winner; its rows and returns, written by the workers as
store parts, read back as the same tables; each worker process reads a shard once."""

from __future__ import annotations

import collections

import pandas as pd
import pytest

from quantfleet.compute import ProcessExecutor, SerialExecutor
from quantfleet.data import load
from quantfleet.pipeline.config import PipelineConfig
from quantfleet.pipeline.record import run_stages
from quantfleet.research.tournament import tournament
from quantfleet.store import Store
from quantfleet.store.catalog import Catalog
from quantfleet.store.datasets import clear_process_cache, open_dataset, put_dataset

SRC = "synthetic:gbm?bars=1500&assets=3&seed=11"
KW = {"n_windows": 3, "grid": {"fast": [5, 10], "slow": [20, 40]}, "max_combos": 6}
STRATS = ["sma_cross", "rsi"]


@pytest.fixture(scope="module")
def market():
    return load(SRC)


@pytest.fixture(scope="module")
def in_memory(market):
    return tournament(market, STRATS, **KW)


@pytest.fixture()
def dataset(tmp_path, market):
    st = Store.open(tmp_path / "store")
    ref = put_dataset(st, market, name="g")["reference"]
    clear_process_cache()
    return open_dataset(st, ref)


def same(a, b, st):
    pd.testing.assert_frame_equal(a.leaderboard, b.leaderboard)
    pd.testing.assert_frame_equal(a.overfit, b.overfit)
    assert a.winner_overfit == b.winner_overfit
    assert (a.n_rows, a.n_backtests) == (b.n_rows, b.n_backtests)
    assert b.table is None and b.oos_returns is None
    rows = st.get_table(st.put_parts([p["hash"] for p in b.parts["results"]], "t"))
    pd.testing.assert_frame_equal(rows.to_pandas(), a.table.to_pandas())
    cols = [st.get_table(p["hash"]).to_pandas() for p in b.parts["oos_returns"]]
    oos = pd.concat(cols, axis=1)
    oos.index = a.oos_returns.index
    pd.testing.assert_frame_equal(oos, a.oos_returns, check_column_type=False)


def test_serial_equals_in_memory_and_reads_each_shard_once(dataset, in_memory, market):
    res = tournament(dataset, STRATS, **KW)
    same(in_memory, res, dataset.store)
    loads = [h for _, hs in res.parts["loaded"] for h in hs]
    # 6 items (2 strategies x 3 assets), one read per asset
    assert sorted(loads) == sorted(s["sha256"] for s in dataset.manifest["shards"])
    assert len(res.parts["loaded"]) == 2 * market.n_assets


def test_processes_equal_in_memory_one_read_per_process_and_shard(dataset, in_memory):
    ex = ProcessExecutor(workers=2)
    try:
        res = tournament(dataset, STRATS, executor=ex, map_options={"chunk_size": 1}, **KW)
    finally:
        ex.close()
    same(in_memory, res, dataset.store)
    per_process = collections.Counter((pid, h) for pid, hs in res.parts["loaded"] for h in hs)
    assert per_process and max(per_process.values()) == 1
    assert {h for _, h in per_process} == {s["sha256"] for s in dataset.manifest["shards"]}


def test_ray_equals_in_memory(dataset, in_memory, ray_executor):
    same(in_memory, tournament(dataset, STRATS, executor=ray_executor, **KW), dataset.store)


def test_checkpointed_chunks_of_a_shard_tournament_resume(dataset, in_memory, tmp_path):
    """A re-run with the same checkpoint directory takes every chunk's summaries (their parts
    are in the store) from it and gives the same tournament."""
    ck = tmp_path / "ck"
    first = tournament(dataset, STRATS, executor=SerialExecutor(), checkpoint_dir=ck, **KW)
    ex = SerialExecutor()
    again = tournament(dataset, STRATS, executor=ex, checkpoint_dir=ck, **KW)
    assert ex.summary.resumed_items == ex.summary.items == 6 and ex.summary.tasks == 0
    same(in_memory, again, dataset.store)
    assert again.parts["results"] == first.parts["results"]


def test_out_dir_with_shards_is_refused(dataset, tmp_path):
    from quantfleet.errors import QuantfleetError

    with pytest.raises(QuantfleetError, match="out: a tournament on a shard dataset"):
        tournament(dataset, STRATS, out=tmp_path / "o", **KW)


def test_pipeline_on_shards_records_readable_results(tmp_path, market):
    """The run a user starts: data + tournament + returns + portfolio on ``shards:NAME``;
    its artifacts read back (runs show's manifest, get_table, the catalog's views) as the
    same run on the in-memory source's."""
    store = str(tmp_path / "store")
    put_dataset(Store.open(store), market, name="g")
    runs = {}
    for src in ("shards:g", SRC):
        cfg = PipelineConfig.model_validate({
            "store": store, "data": {"source": src},
            "executor": {"kind": "serial"},
            "tournament": {"strategies": STRATS, "train": 300, "test": 200, "max_combos": 4,
                           "checkpoint": None},
            "evolution": {"enabled": False}, "report": {"enabled": False},
            "portfolio": {"profiles": ["equal_weight"], "source": "strategies",
                          "train": 100, "test": 50}})
        out = run_stages(cfg, "run", log=lambda m: None)
        runs[src] = out.run_id
    st = Store.open(store)

    def outputs(run_id):
        m = st.get_run(run_id)
        return {(s["step"], k): h for s in m.steps for k, h in s["outputs"].items()}

    a, b = outputs(runs[SRC]), outputs(runs["shards:g"])
    for key in [("tournament", "leaderboard"), ("tournament", "overfit"),
                ("returns", "returns_matrix"), ("portfolio", "returns"),
                ("portfolio", "weights")]:
        assert a[key] == b[key], key
    for key in [("tournament", "results"), ("tournament", "oos_returns")]:
        assert st.parts_of(b[key]) is not None and st.parts_of(a[key]) is None
        assert st.get_table(a[key]).to_pandas().equals(st.get_table(b[key]).to_pandas())
    assert st.stat(b[("data", "market")]).format == "json"  # the manifest, not the prices
    cat = Catalog(store)
    n = {r["run_id"]: r["n"] for r in cat.rows(
        "select run_id, count(*) as n from tournament_results group by 1")}
    assert n[runs[SRC]] == n[runs["shards:g"]] > 0
    cols = cat.rows("select run_id, count(*) as n from oos_returns group by 1")
    assert len({r["n"] for r in cols}) == 1 and len(cols) == 2
    db = tmp_path / "catalog.duckdb"  # a catalog file reopened without a refresh
    with Catalog(store, path=db):
        pass
    with Catalog(store, path=db, refresh=False) as again:
        assert again.rows("select count(*) as n from tournament_results")[0]["n"] == 2 * n[runs[SRC]]
    # the report's view: the same tables; buy-and-hold of the top assets read from the shards
    from quantfleet.pipeline.report import run_view
    from quantfleet.pipeline.run_record import load_run

    va, vb = (run_view(load_run(store, runs[k])) for k in (SRC, "shards:g"))
    pd.testing.assert_frame_equal(va.oos_returns, vb.oos_returns)
    assert va.asset_returns is not None
    pd.testing.assert_frame_equal(va.asset_returns, vb.asset_returns, check_names=False)
