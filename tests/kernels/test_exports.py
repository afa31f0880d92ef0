"""Public names of quantfleet.kernels, derived from the modules themselves (as httpx's
test_exported_members.py does): every public name a module defines is in its sorted
``__all__``, and everything in ``__all__`` exists."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import quantfleet.kernels


def defined_public_names(module: types.ModuleType) -> set[str]:
    """Public names a module defines at top level: functions, classes and assignments."""
    tree = ast.parse(Path(module.__file__).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def package_public_names(package: types.ModuleType) -> set[str]:
    """Public attributes of a package's ``__init__``, submodules aside."""
    return {n for n, v in vars(package).items()
            if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "annotations"}


def submodules(package: types.ModuleType) -> list[str]:
    return sorted(f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__))


def check_exports(module: types.ModuleType, expected: set[str]) -> None:
    exported = module.__all__
    assert exported == sorted(exported), f"{module.__name__}.__all__ is not sorted"
    assert len(exported) == len(set(exported)), f"{module.__name__}.__all__ lists a name twice"
    missing = expected - set(exported)
    assert not missing, f"{module.__name__}: public but not in __all__: {sorted(missing)}"
    absent = [n for n in exported if not hasattr(module, n)]
    assert not absent, f"{module.__name__}.__all__ names what it lacks: {absent}"


def test_package_exports_are_pinned():
    check_exports(quantfleet.kernels, package_public_names(quantfleet.kernels))
    assert set(quantfleet.kernels.__all__) == package_public_names(quantfleet.kernels)


@pytest.mark.parametrize("name", submodules(quantfleet.kernels))
def test_module_exports_everything_it_defines(name):
    module = importlib.import_module(name)
    check_exports(module, defined_public_names(module))


def test_metric_names_and_directions_defined_once():
    # one definition of the metric names, their directions and the unknown-metric error
    once = {"METRIC_NAMES", "N_METRICS", "LOWER_IS_BETTER", "metric_sign", "check_metric"}
    for pkg in ("quantfleet.kernels", "quantfleet.strategies"):
        for name in submodules(importlib.import_module(pkg)):
            defined = defined_public_names(importlib.import_module(name))
            if name != "quantfleet.kernels.metrics":
                assert not defined & once, f"{name} redefines {sorted(defined & once)}"
