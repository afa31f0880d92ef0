"""quantfleet.strategies' layout: the catalog keeps the names callers import, families import
base (never the catalog: no cycle), and every strategy kernel runs the one per-bar tail of
kernels.metrics. Exports: tests/test_public_names.py; cycles: the import-linter contract."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from quantfleet.strategies import all_strategies, get, names

FAMILIES = ("breakout", "carry", "learning", "oscillator", "reversion", "trend", "volatility")


def test_registry_keeps_the_names_callers_import():
    from quantfleet.strategies.base import Strategy, register
    from quantfleet.strategies.registry import Strategy as RegistryStrategy
    from quantfleet.strategies.registry import register as registry_register

    assert RegistryStrategy is Strategy and registry_register is register
    assert names() == sorted(s.name for s in all_strategies())
    assert {s.family for s in all_strategies()} == set(FAMILIES)
    assert get("sma_cross").family == "trend"


def test_families_import_base_not_the_catalog():
    # the catalog imports the families; a family importing it back would be a cycle
    for family in FAMILIES:
        src = Path(importlib.import_module(f"quantfleet.strategies.{family}").__file__).read_text()
        assert "strategies.registry" not in src and "from quantfleet.strategies import" not in src


@pytest.mark.parametrize("strategy", all_strategies(), ids=lambda s: s.name)
def test_kernel_runs_the_one_per_bar_tail(strategy):
    # P&L, metric sums and per-bar stores live in kernels.metrics.tail_step only
    tree = ast.parse(inspect.getsource(strategy.kernel.py_func))
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"tail_init", "tail_step", "tail_finish"} <= calls, strategy.name
    assert not calls & {"acc_init", "acc_step", "acc_finish", "acc_flat"}, strategy.name
    stores = [n for n in ast.walk(tree) if isinstance(n, ast.Subscript)
              and isinstance(n.value, ast.Name) and n.value.id == "returns_out"]
    assert not stores, f"{strategy.name} writes returns_out itself"
