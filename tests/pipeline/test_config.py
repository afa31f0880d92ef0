"""The pipeline config: one TOML file, one pydantic model, errors naming file and key."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from quantfleet.errors import ConfigError
from quantfleet.pipeline.config import PipelineConfig, load_config


def test_bundled_demo_config_is_valid():
    cfg = load_config(Path(str(files("quantfleet.pipeline").joinpath("demo.toml"))))
    assert cfg.tournament.strategies == ["all"] and cfg.data.source == "sp500"
    assert len(cfg.portfolio.profiles) == 5 and cfg.executor.kind == "ray"


@pytest.mark.parametrize("text, message", [
    ("[tournament]\nmax_combo = 3\n", "unknown key 'tournament.max_combo' (did you mean 'max_combos'?)"),
    ("[evolution]\npopulation = 2\n", "evolution.population: Input should be greater than or equal to 4"),
    ("[evolution]\nsearcher = 'optuna'\n", "evolution.searcher: Input should be 'genetic', 'random', 'grid', 'optuna:tpe', 'optuna:cmaes', 'optuna:nsgaii' or 'optuna:random'"),
    ("[executor]\nkind = 'slurm'\n", "executor.kind: Input should be 'serial', 'processes', 'ray' or 'auto'"),
    ("storee = 'x'\n", "unknown key 'storee' (did you mean 'store'"),
    ("[data\nsource = 1\n", "not valid TOML"),
])
def test_bad_config_one_clear_error(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value).startswith(str(p)) and message in str(e.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        load_config("nope.toml")


def test_overrides_map_flags_to_fields():
    cfg = PipelineConfig().with_overrides({"executor.kind": "serial", "store": "s3://b/p",
                                           "tournament.max_combos": 4, "costs.fee_bps": None})
    assert cfg.executor.kind == "serial" and cfg.store == "s3://b/p"
    assert cfg.tournament.max_combos == 4 and cfg.costs.fee_bps == 5.0
    with pytest.raises(ConfigError, match=r"<overrides>: costs.fee_bps"):
        PipelineConfig().with_overrides({"costs.fee_bps": -1})


def test_preflight_names_the_key_before_any_work():
    from quantfleet.pipeline.record import preflight

    cfg = PipelineConfig().with_overrides({"evolution.strategies": ["sma_cross", "donchian"]})
    with pytest.raises(ConfigError, match=r"evolution.strategies: donchian needs high, low but "
                                          r"sp500 has close"):
        preflight(cfg)
    cfg = PipelineConfig().with_overrides({"tournament.strategies": ["sma_crss"]})
    with pytest.raises(ConfigError, match=r"tournament.strategies: unknown strategy 'sma_crss'"):
        preflight(cfg)
    with pytest.raises(ConfigError, match=r"data.source: .sp501. is neither a file nor a bundled dataset"):
        preflight(PipelineConfig().with_overrides({"data.source": "sp501"}))


def test_tournament_grids_in_the_config(tmp_path):
    p = tmp_path / "grids.toml"
    p.write_text("[tournament]\nstrategies = ['sma_cross', 'rsi']\n"
                 "[tournament.grid]\nwindow = [10, 14]\n"
                 "[tournament.grids.sma_cross]\nfast = [5, 10, 20]\nslow = [50, 100]\n")
    cfg = load_config(p)
    assert cfg.tournament.grid == {"window": [10, 14]}
    assert cfg.tournament.grids == {"sma_cross": {"fast": [5, 10, 20], "slow": [50, 100]}}
    assert PipelineConfig().tournament.grid == {} and PipelineConfig().tournament.grids == {}


@pytest.mark.parametrize("text, message", [
    ("[tournament]\nstrategies = ['sma_cross', 'rsi']\n[tournament.grid]\nslwo = [5]\n",
     "tournament: grid key 'slwo' is not a parameter of any selected strategy (did you mean "
     "'slow'?); sma_cross has fast, slow; rsi has window, lower, upper"),
    ("[tournament]\nstrategies = ['sma_cross']\n[tournament.grids.rsi]\nwindow = [5]\n",
     "tournament: grid for strategy 'rsi': not among the selected strategies (sma_cross)"),
    ("[tournament.grids.sma_cross]\nfats = [5]\n",
     "tournament: grid of sma_cross: unknown parameter 'fats' (did you mean 'fast'?)"),
    ("[tournament.grid]\nfast = []\n", "tournament: grid.fast: no values; e.g. fast = [5, 10, 20]"),
    ("[tournament.grids.sma_cross]\nfast = 5\n",
     "tournament.grids.sma_cross.fast: Input should be a valid list"),
    ("[tournament.grid]\nfast = ['a']\n", "tournament.grid.fast.0"),
])
def test_bad_tournament_grid_names_the_key(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: ") and message in str(e.value), str(e.value)


def test_stage_settings_and_run_config_carry_the_grids():
    from quantfleet.pipeline.record import stage_settings
    from quantfleet.pipeline.stages import stage_key

    plain = PipelineConfig()
    gridded = plain.with_overrides({"tournament.grid": {"fast": [5, 10]},
                                    "tournament.grids": {"rsi": {"window": [14]}}})
    s = stage_settings(gridded, "tournament")["tournament"]
    assert s["grid"] == {"fast": [5, 10]} and s["grids"] == {"rsi": {"window": [14]}}
    # the stage cache key changes with the grid
    keys = {stage_key("tournament", {}, stage_settings(c, "tournament"), "code")
            for c in (plain, gridded)}
    assert len(keys) == 2
    assert gridded.model_dump()["tournament"]["grid"] == {"fast": [5, 10]}


def test_config_grids_reach_the_tournament(tmp_path, monkeypatch):
    """The shared grid applies where the parameter exists; a strategy's own grid wins."""
    import json

    from quantfleet.pipeline.config import validate_config
    from quantfleet.pipeline.record import run_stages

    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    off = {s: {"enabled": False} for s in ("evolution", "portfolio")}
    cfg = validate_config({
        "store": str(tmp_path / "lake"), "executor": {"kind": "serial"},
        "data": {"source": "synthetic:gbm?bars=600&assets=1&seed=3"},
        "report": {"enabled": False}, **off,
        "tournament": {"strategies": ["sma_cross", "ema_cross"], "windows": 2,
                       "checkpoint": None, "max_combos": 4,
                       "grid": {"fast": [5, 10], "slow": [40]},
                       "grids": {"ema_cross": {"fast": [3]}}}}, "test")
    out = run_stages(cfg, "run", record=False, log=lambda m: None)
    df = out.results["tournament"].table.to_pandas()
    got = {s: {json.dumps(json.loads(p), sort_keys=True) for p in g["params"]}
           for s, g in df.groupby("strategy")}
    assert got == {"sma_cross": {'{"fast": 5, "slow": 40}', '{"fast": 10, "slow": 40}'},
                   "ema_cross": {'{"fast": 3, "slow": 40}'}}


def test_evolution_grids_in_the_config(tmp_path):
    p = tmp_path / "grids.toml"
    p.write_text("[evolution]\nstrategies = ['sma_cross', 'rsi']\n"
                 "[evolution.grid]\nwindow = [10, 14]\n"
                 "[evolution.grids.sma_cross]\nfast = [5, 10, 20]\nslow = [50, 100]\n")
    cfg = load_config(p)
    assert cfg.evolution.grid == {"window": [10, 14]}
    assert cfg.evolution.grids == {"sma_cross": {"fast": [5, 10, 20], "slow": [50, 100]}}
    assert PipelineConfig().evolution.grid == {} and PipelineConfig().evolution.grids == {}


@pytest.mark.parametrize("text, message", [
    ("[evolution]\nstrategies = ['sma_cross', 'rsi']\n[evolution.grid]\nslwo = [5]\n",
     "evolution: grid key 'slwo' is not a parameter of any selected strategy (did you mean "
     "'slow'?); sma_cross has fast, slow; rsi has window, lower, upper"),
    ("[evolution]\nstrategies = ['sma_cross']\n[evolution.grids.rsi]\nwindow = [5]\n",
     "evolution: grid for strategy 'rsi': not among the selected strategies (sma_cross)"),
    ("[evolution.grids.sma_cross]\nfats = [5]\n",
     "evolution: grid of sma_cross: unknown parameter 'fats' (did you mean 'fast'?)"),
    ("[evolution.grid]\nfast = []\n", "evolution: grid.fast: no values; e.g. fast = [5, 10, 20]"),
    ("[evolution.grid]\nfast = ['a']\n", "evolution.grid.fast.0"),
])
def test_bad_evolution_grid_names_the_key(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: ") and message in str(e.value), str(e.value)


def test_evolution_stage_settings_carry_the_grids():
    from quantfleet.pipeline.record import stage_settings
    from quantfleet.pipeline.stages import stage_key

    plain = PipelineConfig()
    gridded = plain.with_overrides({"evolution.grid": {"fast": [5, 10]},
                                    "evolution.grids": {"rsi": {"window": [14]}}})
    s = stage_settings(gridded, "evolution")["evolution"]
    assert s["grid"] == {"fast": [5, 10]} and s["grids"] == {"rsi": {"window": [14]}}
    keys = {stage_key("evolution", {}, stage_settings(c, "evolution"), "code")
            for c in (plain, gridded)}
    assert len(keys) == 2
    assert gridded.model_dump()["evolution"]["grid"] == {"fast": [5, 10]}


def test_config_grids_reach_the_evolution(tmp_path, monkeypatch):
    """Every candidate of the pipeline's evolution lies in its grid; the automatic checkpoint
    is per settings and data, so another grid starts afresh instead of being refused."""
    from quantfleet.pipeline.config import validate_config
    from quantfleet.pipeline.record import run_stages

    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    off = {s: {"enabled": False} for s in ("tournament", "portfolio")}

    def run(grid):
        cfg = validate_config({
            "store": str(tmp_path / "lake"), "executor": {"kind": "serial"},
            "data": {"source": "synthetic:gbm?bars=600&assets=1&seed=3"},
            "report": {"enabled": False}, **off,
            "evolution": {"strategies": ["sma_cross", "ema_cross"], "population": 8,
                          "generations": 2, "grid": grid}}, "test")
        return run_stages(cfg, "run", record=False, log=lambda m: None).results["evolution"]

    res = run({"fast": [5, 10], "slow": [40, 80]})
    assert res.winners
    for w in res.winners:
        assert w["params"]["fast"] in (5, 10) and w["params"]["slow"] in (40, 80)
    res = run({"fast": [3]})
    assert all(w["params"]["fast"] == 3 for w in res.winners)
    assert len(list((tmp_path / "home" / "checkpoints" / "evolution").iterdir())) == 2
