"""The one recording path without Prefect: a research command's one-stage run, recorded or
not, failed runs, and reading a run back."""

from __future__ import annotations

import pytest

from quantfleet.errors import QuantfleetError


def _config(store: str, **sweep):
    from quantfleet.pipeline.config import validate_config

    off = {s: {"enabled": False} for s in ("tournament", "evolution", "portfolio")}
    return validate_config({"store": store, "executor": {"kind": "serial"},
                            "data": {"source": "sp500", "assets": ["AAPL", "KO"]},
                            "report": {"enabled": False}, **off,
                            "sweep": {"enabled": True, "strategy": "sma_cross",
                                      "grid": {"fast": [5, 10], "slow": [30, 50]}, **sweep}},
                           "test")


@pytest.fixture
def store_url(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    return str(tmp_path / "lake")


def test_enabled_stages_follow_the_config(store_url):
    from quantfleet.pipeline.config import PipelineConfig
    from quantfleet.pipeline.record import enabled_stages

    assert enabled_stages(_config(store_url)) == ["data", "sweep"]
    assert enabled_stages(PipelineConfig()) == ["data", "tournament", "evolution", "returns",
                                                "portfolio"]
    only_portfolio = PipelineConfig().model_copy(update={
        "tournament": PipelineConfig().tournament.model_copy(update={"enabled": False}),
        "evolution": PipelineConfig().evolution.model_copy(update={"enabled": False}),
        "portfolio": PipelineConfig().portfolio.model_copy(update={"source": "data"})})
    assert enabled_stages(only_portfolio) == ["returns", "portfolio"]


def test_a_recorded_one_stage_run(store_url):
    from quantfleet.pipeline.record import run_stages
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.store import Store

    out = run_stages(_config(store_url), "sweep", log=lambda m: None)
    m = Store.open(store_url).get_run(out.run_id)
    assert m.command == "sweep" and m.status == "succeeded"
    assert [s["step"] for s in m.steps] == ["run", "data", "sweep"]
    assert m.steps[2]["inputs"] == {"market": m.steps[1]["outputs"]["market"]}
    kinds = {a["kind"] for a in m.artifacts.values()}
    assert {"config", "market", "sweep_results", "sweep_leaderboard", "spans",
            "run_summary"} <= kinds
    assert m.code["source"] and len(m.code["source"]) == 12
    rec = load_run(store_url, "latest")
    assert rec.run_id == out.run_id and rec.executor == "serial" and rec.workers == 1
    assert rec.summary["stages"]["sweep"]["summary"]["combos"] == 4
    assert out.results["sweep"].n_combos == 4  # the driver's result, for the command


def test_an_unrecorded_run_leaves_nothing(store_url):
    import fsspec

    from quantfleet.pipeline.record import run_stages

    before = set(fsspec.filesystem("memory").ls("/", detail=False))
    out = run_stages(_config(store_url), "sweep", record=False, log=lambda m: None)
    assert out.run_id is None and out.results["sweep"].n_combos == 4
    assert set(fsspec.filesystem("memory").ls("/", detail=False)) == before
    from quantfleet.store import Store

    assert Store.open(store_url).run_ids() == []


def test_an_unrecorded_run_hashes_its_market_without_keeping_it(store_url, monkeypatch):
    from quantfleet.pipeline.record import run_stages
    from quantfleet.store.artifacts import ArtifactStore

    kinds: list[str] = []
    put = ArtifactStore.put_table

    def spy(self, table, kind="table"):
        kinds.append(kind)
        return put(self, table, kind)

    monkeypatch.setattr(ArtifactStore, "put_table", spy)
    recorded = run_stages(_config(store_url), "sweep", log=lambda m: None)
    assert "market" in kinds
    kinds.clear()
    unrecorded = run_stages(_config(store_url), "sweep", record=False, log=lambda m: None)
    # no stage reads the market from the store: an unrecorded run only hashes it (same ref)
    assert "market" not in kinds and "sweep_results" in kinds
    assert (unrecorded.stages["data"]["outputs"]["market"]
            == recorded.stages["data"]["outputs"]["market"])


def test_a_failed_run_is_recorded_as_failed(store_url):
    from quantfleet.pipeline.record import run_stages
    from quantfleet.store import Store

    with pytest.raises(QuantfleetError, match="unknown metric 'sharp'"):
        run_stages(_config(store_url, metric="sharp"), "sweep", log=lambda m: None)
    m = Store.open(store_url).get_run("latest")
    assert m.status == "failed" and "unknown metric 'sharp'" in m.error
    assert m.output("spans") and m.output("run_summary")


def test_load_run_errors(store_url):
    from quantfleet.errors import StoreError
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.store import record_run

    with pytest.raises(StoreError, match="no runs in store"):
        load_run(store_url, "latest")
    m = record_run(store_url, "sweep", outputs={"sweep_results": {"a": 1}})
    with pytest.raises(QuantfleetError, match="has no spans and summary"):
        load_run(store_url, m.run_id)
    with pytest.raises(StoreError, match="no run 'zz-no-such' in store"):
        load_run(store_url, "zz-no-such")


def test_the_worker_count_outlives_the_executor(store_url):
    """A closed Ray executor cannot be asked for its workers; the run summary still needs it."""
    from quantfleet.pipeline.stages import RunContext

    class Closing:
        name, closed = "fake", False

        @property
        def workers(self) -> int:
            if self.closed:
                raise RuntimeError("closed")
            return 3

        def close(self) -> None:
            self.closed = True

    ctx = RunContext(config=_config(store_url), store=None, home=None)
    ctx._executor = Closing()
    ctx.close()
    assert ctx.workers == 3 and ctx.executor_name == "fake"
