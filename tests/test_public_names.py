"""Every module's public names are listed once, in ``__all__``, derived from the module itself
(httpx's ``test_exported_members.py``): every public name a module defines at top level
(function, class or assignment) is exported, everything exported exists, and the list is in
ruff's RUF022 order. A package ``__init__`` exports exactly what it binds."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import quantfleet


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


def _isort(n: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    return (0 if n.isupper() else 1 if n[:1].isupper() else 2, n)


MODULES = sorted(["quantfleet", *(m.name for m in pkgutil.walk_packages(quantfleet.__path__,
                                                                      "quantfleet."))])


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_what_the_module_defines(name):
    mod = importlib.import_module(name)
    assert hasattr(mod, "__all__"), f"{name} has no __all__"
    exported = list(mod.__all__)
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    if name != "quantfleet":  # built from the export table, sorted() order
        assert exported == sorted(exported, key=_isort), f"{name}.__all__ is not sorted"
    absent = [n for n in exported if getattr(mod, n, None) is None]
    assert not absent, f"{name}.__all__ names what it lacks: {absent}"
    missing = sorted(defined_public_names(mod) - set(exported) - {"__all__"})
    assert not missing, (f"{name} defines public {missing} but leaves them out of __all__ "
                         f"(export them or rename them with a leading underscore)")


@pytest.mark.parametrize("name", [m for m in MODULES if hasattr(importlib.import_module(m),
                                                                 "__path__")])
def test_a_package_exports_what_it_binds(name):
    """Whatever a package ``__init__`` binds is exported (names it resolves lazily, PEP 562,
    are in ``__all__`` and checked to resolve above)."""
    pkg = importlib.import_module(name)
    bound = {n for n, v in vars(pkg).items() if not n.startswith("_")
             and not isinstance(v, types.ModuleType)
             and n not in {"annotations", "Any", "TYPE_CHECKING"}}
    assert bound <= set(pkg.__all__), f"{name} binds {sorted(bound - set(pkg.__all__))}"


def test_top_level_names_are_listed_once():
    assert quantfleet.__all__ == sorted(quantfleet._EXPORTS)
