"""The slim-worker rule: a worker's imports pull in no heavy library (DESIGN.md, layer table)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["ray", "prefect", "skfolio", "sklearn", "matplotlib", "plotly", "quantstats", "seaborn",
         "duckdb", "s3fs", "typer", "rich", "optuna"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    )
    return {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}


def test_worker_imports_are_slim():
    mods = _modules_after(
        "import quantfleet.kernels, quantfleet.data, quantfleet.strategies\n"
        "quantfleet.strategies.names()"
    )
    assert not (mods & set(HEAVY)), sorted(mods & set(HEAVY))


def test_running_a_backtest_stays_slim():
    mods = _modules_after(
        "import numpy as np\n"
        "from quantfleet.data.market import MarketData\n"
        "from quantfleet.backtest.job import BacktestJob, JobBatch, evaluate_jobs\n"
        "ts = (np.datetime64('2020-01-01') + np.arange(300)).astype('datetime64[ns]')\n"
        "m = MarketData(ts, ('A',), 100 + np.cumsum(np.ones((1, 300)), axis=1))\n"
        "evaluate_jobs(m, JobBatch((BacktestJob('sma_cross', (0,), np.array([[5.0, 20.0]])),)))"
    )
    assert not (mods & set(HEAVY)), sorted(mods & set(HEAVY))


def test_import_quantfleet_has_no_side_effects():
    mods = _modules_after("import quantfleet")
    assert "numba" not in mods and "pandas" not in mods


def test_first_backtest_path_does_not_import_pandas():
    # MarketData + a strategy kernel is all a worker's first backtest needs
    mods = _modules_after(
        "from quantfleet.data.market import MarketData\n"
        "from quantfleet.strategies import get\n"
        "get('sma_cross')"
    )
    assert "pandas" not in mods and "pyarrow" not in mods
