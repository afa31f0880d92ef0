"""quantfleet.strategies: public names derived from the modules, no import cycles, and every
strategy kernel on the one per-bar tail of kernels.metrics."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import grimp
import pytest

import quantfleet.strategies
from quantfleet.strategies import all_strategies, get, names
from tests.kernels.test_exports import (
    check_exports,
    defined_public_names,
    package_public_names,
    submodules,
)

FAMILIES = ("breakout", "carry", "learning", "oscillator", "reversion", "trend", "volatility")


def test_package_exports_are_pinned():
    check_exports(quantfleet.strategies, package_public_names(quantfleet.strategies))
    assert set(quantfleet.strategies.__all__) == package_public_names(quantfleet.strategies)


@pytest.mark.parametrize("name", submodules(quantfleet.strategies))
def test_module_exports_everything_it_defines(name):
    module = importlib.import_module(name)
    check_exports(module, defined_public_names(module))


def test_registry_keeps_the_names_callers_import():
    from quantfleet.strategies.base import Strategy, register
    from quantfleet.strategies.registry import Strategy as RegistryStrategy
    from quantfleet.strategies.registry import register as registry_register

    assert RegistryStrategy is Strategy and registry_register is register
    assert names() == sorted(s.name for s in all_strategies())
    assert {s.family for s in all_strategies()} == set(FAMILIES)
    assert get("sma_cross").family == "trend"


def test_no_import_cycles_in_kernels_and_strategies():
    graph = grimp.build_graph("quantfleet", cache_dir=None)
    ours = sorted(m for m in graph.modules if m.startswith(("quantfleet.kernels", "quantfleet.strategies")))
    for module in ours:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported in ours and imported != module:
                back = graph.find_shortest_chain(importer=imported, imported=module)
                assert back is None, f"import cycle: {module} -> {' -> '.join(back)}"


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
