"""Never stale: a stage is served from the cache only when nothing it depends on changed and
its artifacts are in the run's store; checkpoints refuse to resume on other code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]

CSV_RUN = """
name = "fresh"
store = "{store}"
[data]
source = "{csv}"
[executor]
kind = "serial"
[tournament]
strategies = ["sma_cross"]
train = 200
test = 100
max_combos = 4
[evolution]
enabled = false
[portfolio]
enabled = false
"""


def _write_csv(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, 600)))
    ts = pd.date_range("2020-01-01", periods=600, freq="D")
    pd.DataFrame({"timestamp": ts, "close": close}).to_csv(path, index=False)


def _config(tmp_path: Path, store: Path):
    from quantfleet.pipeline.config import load_config

    csv = tmp_path / "AAA.csv"
    if not csv.exists():
        _write_csv(csv, seed=1)
    p = tmp_path / "fresh.toml"
    p.write_text(CSV_RUN.format(store=store, csv=csv))
    return load_config(p)


@pytest.mark.integration
def test_a_rewritten_csv_is_never_served_from_cache(prefect_harness, tmp_path):
    from quantfleet.pipeline.flow import run_pipeline

    cfg = _config(tmp_path, tmp_path / "lake")
    first = run_pipeline(cfg, log=lambda m: None)
    again = run_pipeline(cfg, log=lambda m: None)
    assert again.stages["data"]["cached"] and again.stages["tournament"]["cached"]
    _write_csv(tmp_path / "AAA.csv", seed=2)  # same file name, other prices
    changed = run_pipeline(cfg, log=lambda m: None)
    assert not changed.stages["data"]["cached"]
    assert not changed.stages["tournament"]["cached"]
    assert (changed.stages["data"]["outputs"]["market"]
            != first.stages["data"]["outputs"]["market"])


@pytest.mark.integration
def test_another_store_or_a_lost_artifact_recomputes(prefect_harness, tmp_path):
    from quantfleet.pipeline.flow import run_pipeline
    from quantfleet.pipeline.report import write_report
    from quantfleet.store import Store

    cfg = _config(tmp_path, tmp_path / "lake")
    first = run_pipeline(cfg, log=lambda m: None)
    # the same config on another store: nothing of the first store is served
    other = cfg.with_overrides({"store": str(tmp_path / "other")})
    moved = run_pipeline(other, log=lambda m: None)
    assert not any(s["cached"] for s in moved.stages.values())
    store = Store.open(other.store)
    for stage in moved.stages.values():
        for h in stage["outputs"].values():
            assert store.verify(h)
    assert write_report(other.store, moved.run_id, tmp_path / "r.html").exists()
    # an output deleted from the first store: its stage is recomputed, not served
    lake = Store.open(cfg.store)
    lost = first.stages["tournament"]["outputs"]["leaderboard"]
    lake.delete(lost)
    said: list[str] = []
    again = run_pipeline(cfg, log=said.append)
    assert again.stages["data"]["cached"]
    assert not again.stages["tournament"]["cached"]
    assert lake.verify(lost)  # put back by the recomputation (same content, same hash)
    assert any("not in" in m and "recomputing" in m for m in said), said


def test_a_stage_key_covers_only_the_code_its_stage_runs():
    from quantfleet.codeprint import module_closure

    tournament = set(module_closure(["quantfleet.research.tournament"]))
    assert {"quantfleet.research.tournament", "quantfleet.research.overfit",
            "quantfleet.backtest.job", "quantfleet.kernels.metrics",
            "quantfleet.strategies.trend", "quantfleet.strategies.carry"} <= tournament
    assert not any(m.startswith(("quantfleet.report", "quantfleet.commands",
                                 "quantfleet.pipeline")) for m in tournament)


_PRINT = ("from quantfleet.pipeline.stages import stage_code; "
          "print(stage_code('tournament'), stage_code('data'))")


def test_editing_the_report_keeps_the_tournament_key_editing_a_kernel_changes_it(tmp_path):
    """On a copy of the sources: the fingerprints a fresh process computes before and after
    an edit."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "quantfleet", src / "quantfleet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))

    def codes() -> list[str]:
        out = subprocess.run([sys.executable, "-c", _PRINT], env={**os.environ, "PYTHONPATH": str(src)},
                             capture_output=True, text=True, timeout=120, check=True)
        return out.stdout.split()

    before = codes()
    with (src / "quantfleet" / "report" / "build.py").open("a") as fh:
        fh.write("\n# an edit of the report\n")
    assert codes() == before
    with (src / "quantfleet" / "kernels" / "indicators.py").open("a") as fh:
        fh.write("\n# an edit of a kernel module\n")
    after = codes()
    assert after[0] != before[0]  # the tournament runs the kernels
    assert after[1] == before[1]  # loading data does not


def test_a_checkpoint_of_other_code_is_not_resumed(monkeypatch):
    from quantfleet.compute import chunking
    from quantfleet.research.tournament import pair_summary

    items = [1, 2, 3]
    a = chunking.fingerprint(pair_summary, items)
    monkeypatch.setattr(chunking, "code_fingerprint", lambda *m: "other-code")
    assert chunking.fingerprint(pair_summary, items) != a


def test_the_data_fingerprint_follows_the_bytes(tmp_path):
    from quantfleet.data.loaders import fingerprint_source
    from quantfleet.errors import DataError

    p = tmp_path / "AAA.csv"
    _write_csv(p, seed=1)
    a = fingerprint_source(str(p))
    assert a["kind"] == "file" and a["bytes"] == p.stat().st_size
    _write_csv(p, seed=2)
    b = fingerprint_source(str(p))
    assert b["sha256"] != a["sha256"]
    assert fingerprint_source("sp500")["kind"] == "dataset"
    assert fingerprint_source("synthetic:gbm?bars=100") == {"kind": "synthetic",
                                                             "url": "synthetic:gbm?bars=100"}
    with pytest.raises(DataError, match="file not found"):
        fingerprint_source(str(tmp_path / "missing.csv"))


def test_an_evolution_checkpoint_of_other_code_is_refused(tmp_path):
    import json

    from quantfleet.errors import QuantfleetError
    from quantfleet.research.evolve import evolve
    from tests.reference import random_market

    market = random_market(3, 400, ("A", "B"))
    kw = {"population": 6, "generations": 2, "seed": 1, "checkpoint_dir": tmp_path}
    evolve(market, ["sma_cross"], **kw)
    meta = tmp_path / "evolve.config.json"
    record = json.loads(meta.read_text())
    assert record["code"]
    meta.write_text(json.dumps({**record, "code": "0" * 16}))  # as if written by other code
    with pytest.raises(QuantfleetError, match=r"other settings \(code .*differ\)"):
        evolve(market, ["sma_cross"], **kw)


def test_the_import_scan_finds_every_import_an_ast_walk_finds():
    """codeprint reads imports with regular expressions (ast.parse is not thread-safe in
    CPython 3.11); on every module it finds at least what an AST walk finds."""
    import ast

    from quantfleet import codeprint

    root = ROOT / "src" / "quantfleet"
    for path in sorted(root.rglob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        want = {m for m in found if codeprint._file_of(m) is not None}
        assert want <= set(codeprint._imports(path)), path
