"""The metric names, their directions and the unknown-metric error are defined once, in
kernels.metrics (module exports themselves: tests/test_public_names.py)."""

from __future__ import annotations

import importlib
import pkgutil

from tests.test_public_names import defined_public_names


def submodules(package_name: str) -> list[str]:
    package = importlib.import_module(package_name)
    return sorted(f"{package_name}.{m.name}" for m in pkgutil.iter_modules(package.__path__))


def test_metric_names_and_directions_defined_once():
    # one definition of the metric names, their directions and the unknown-metric error
    once = {"METRIC_NAMES", "N_METRICS", "LOWER_IS_BETTER", "metric_sign", "check_metric"}
    for pkg in ("quantfleet.kernels", "quantfleet.strategies"):
        for name in submodules(pkg):
            defined = defined_public_names(importlib.import_module(name))
            if name != "quantfleet.kernels.metrics":
                assert not defined & once, f"{name} redefines {sorted(defined & once)}"
