"""Every module's public names are listed once, in ``__all__``, derived from the module itself
(httpx's ``test_exported_members.py``): what a module defines publicly is exported, and what it
exports exists. Packages re-export with a sorted ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import quantfleet


def _modules() -> list[str]:
    names = ["quantfleet"]
    for info in pkgutil.walk_packages(quantfleet.__path__, "quantfleet."):
        names.append(info.name)
    return sorted(names)


MODULES = _modules()


def _isort(n: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    return (0 if n.isupper() else 1 if n[:1].isupper() else 2, n)


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_what_the_module_defines(name):
    mod = importlib.import_module(name)
    assert hasattr(mod, "__all__"), f"{name} has no __all__"
    exported = list(mod.__all__)
    assert exported == sorted(exported, key=_isort), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    for n in exported:
        assert getattr(mod, n, None) is not None, f"{name}.__all__ names {n!r}, which is missing"
    defined = sorted(
        n for n, v in vars(mod).items()
        if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
        and getattr(v, "__module__", None) == name
    )
    missing = [n for n in defined if n not in exported]
    assert not missing, f"{name} defines public {missing} but leaves them out of __all__ " \
                        f"(export them or rename them with a leading underscore)"


def test_top_level_names_are_listed_once():
    assert quantfleet.__all__ == sorted(quantfleet._EXPORTS)
