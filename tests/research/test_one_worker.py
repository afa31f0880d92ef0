"""One path: every research driver builds BacktestJobs and maps the one worker, evaluate_jobs."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import quantfleet.research
from quantfleet.backtest import BacktestJob, Costs, Terms, evaluate, evaluate_jobs
from quantfleet.compute import ProcessExecutor, SerialExecutor
from quantfleet.data.market import MarketData
from quantfleet.research.backtest import backtest
from quantfleet.research.evolve import evolve
from quantfleet.research.replay import SignalBook, parse_member
from quantfleet.research.sweep import sweep
from quantfleet.research.tournament import tournament
from quantfleet.strategies import get
from tests import reference as ref


def table_bytes(table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


class Recording(SerialExecutor):
    """A serial executor that remembers every function it was asked to map."""

    def __init__(self) -> None:
        super().__init__()
        self.fns: list = []

    def map(self, fn, items, shared=None, **kw):
        self.fns.append(fn)
        return super().map(fn, items, shared, **kw)


@pytest.fixture(scope="module")
def market() -> MarketData:
    return ref.random_market(23, 500, ("P", "Q"), 0.015, "2016-01-01")


def test_every_driver_maps_the_one_worker(market):
    ex = Recording()
    sweep(market, "sma_cross", {"fast": [3, 5], "slow": [20, 30]}, executor=ex, chunk=2)
    tournament(market, ["sma_cross", "rsi"], n_windows=2, max_combos=6, executor=ex)
    evolve(market, ["sma_cross"], population=6, generations=2, executor=ex)
    assert len(ex.fns) >= 4 and all(fn is evaluate_jobs for fn in ex.fns), ex.fns


def test_research_modules_never_call_a_kernel_themselves():
    """Backtests run only through backtest.evaluate: no research module calls run_asset/run."""
    root = Path(quantfleet.research.__file__).parent
    calls = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("run_asset", "run")):
                calls.append(f"{path.name}:{node.lineno}")
    assert calls == []


def test_backtest_and_replay_equal_run_asset(market):
    strat = get("sma_cross")
    p = np.array([[10.0, 40.0]])
    rows = backtest(market, "sma_cross", {"fast": 10, "slow": 40}, Costs(fee_bps=5), ppy=252.0)
    for a, row in enumerate(rows):
        m = strat.run_asset(market, a, p, fee_rate=5e-4, ppy=252.0)[0][0]
        assert [row[k] for k in strat.metrics_dict(m)] == list(strat.metrics_dict(m).values())
    book = SignalBook.build(market, [parse_member("sma_cross:fast=10,slow=40")], fee_rate=5e-4)
    for a in range(market.n_assets):
        _, _, pos = strat.run_asset(market, a, p, positions=True)
        assert book.positions[0, a].tobytes() == pos[0].tobytes()


def test_a_job_on_every_bar_is_the_sweep_row(market):
    res = sweep(market, "sma_cross", {"fast": [5], "slow": [30]}, ppy=252.0)
    got = evaluate(market, BacktestJob("sma_cross", (0, 1), np.array([[5.0, 30.0]]),
                                       terms=Terms(ppy=252.0)))
    df = res.table.to_pandas()
    assert df["sharpe"].tolist() == got.metrics[:, 0, 2].tolist()


def test_tournament_on_processes_is_bit_identical_to_serial(market):
    want = tournament(market, ["sma_cross", "rsi", "bollinger"], n_windows=3, max_combos=8,
                      costs=Costs(fee_bps=5))
    with ProcessExecutor(2) as ex:
        got = tournament(market, ["sma_cross", "rsi", "bollinger"], n_windows=3, max_combos=8,
                         costs=Costs(fee_bps=5), executor=ex, map_options={"chunk_size": 2})
    assert table_bytes(got.table) == table_bytes(want.table)
    assert got.oos_returns.to_numpy().tobytes() == want.oos_returns.to_numpy().tobytes()
    assert got.leaderboard.equals(want.leaderboard) and got.overfit.equals(want.overfit)
    assert got.n_backtests == want.n_backtests > 0
