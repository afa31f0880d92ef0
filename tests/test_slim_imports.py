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


def _write_ohlcv_csv(path, bars: int = 300) -> None:
    import numpy as np

    close = 100 + np.cumsum(np.sin(np.arange(bars) / 7.0))
    days = np.datetime64("2020-01-01") + np.arange(bars)
    with open(path, "w") as f:
        f.write("Date,Open,High,Low,Close,Volume\n")
        for d, c in zip(days, close, strict=True):
            f.write(f"{d},{c:.4f},{c + 1:.4f},{c - 1:.4f},{c:.4f},{1000}\n")


def _cli_modules(argv: list[str]) -> set[str]:
    return _modules_after(f"from quantfleet.cli import main\nmain({argv!r})")


def test_cli_backtest_does_not_import_pandas(tmp_path):
    # the whole `quantfleet backtest` command: CSV read, data and backtest stages, their
    # tables put in the run's store (recorded or not), the JSON printed
    csv = tmp_path / "ACME.csv"
    _write_ohlcv_csv(csv)
    for store in (["--no-store"], ["--store", str(tmp_path / "lake")]):
        mods = _cli_modules(["backtest", str(csv), "-s", "sma_cross", *store, "--json"])
        heavy = mods & (set(HEAVY) - {"typer", "rich"})  # the CLI itself is typer's
        assert "pandas" not in mods and not heavy, (store, sorted(heavy))


def test_an_unrecorded_cli_backtest_opens_no_store(tmp_path):
    # --no-store: the run's tables are only hashed (no stage reads them back), so the
    # throwaway memory:// store is never written and fsspec never imported
    csv = tmp_path / "ACME.csv"
    _write_ohlcv_csv(csv)
    mods = _cli_modules(["backtest", str(csv), "-s", "sma_cross", "--no-store", "--json"])
    assert "fsspec" not in mods and "quantfleet" in mods


def test_cli_backtest_of_a_bundled_dataset_does_not_import_pandas():
    import importlib.util

    import pytest

    if importlib.util.find_spec("arch") is None:
        pytest.skip("sp500_ohlcv ships with arch (quantfleet[data])")
    mods = _cli_modules(["backtest", "sp500_ohlcv", "-s", "sma_cross", "--no-store", "--json"])
    assert "pandas" not in mods
