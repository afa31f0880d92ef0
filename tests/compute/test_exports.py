"""The public names of compute and backtest are listed once: ``__all__`` is what the package
defines (derived from the module, as httpx's test_exported_members does)."""

from __future__ import annotations

import types

import pytest

import quantfleet.backtest
import quantfleet.compute

TYPING = {"annotations", "TYPE_CHECKING", "Any"}


def public(mod: types.ModuleType) -> list[str]:
    return sorted(n for n, v in vars(mod).items()
                  if not n.startswith("_") and n not in TYPING and not isinstance(v, types.ModuleType))


@pytest.mark.parametrize("mod", [quantfleet.compute, quantfleet.backtest])
def test_all_is_what_the_package_defines(mod):
    lazy = {"RayExecutor"} if mod is quantfleet.compute else set()
    assert mod.__all__ == sorted(mod.__all__)
    assert sorted(set(mod.__all__) - lazy) == public(mod)
    for name in mod.__all__:
        assert getattr(mod, name) is not None
