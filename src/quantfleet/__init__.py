"""quantfleet: trading-strategy research at scale, on one core or a Ray cluster.

The names a user types are re-exported here and resolved lazily (PEP 562), so
``import quantfleet.kernels`` on a worker pulls in nothing else.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Costs": "quantfleet.backtest.terms",
    "Execution": "quantfleet.backtest.terms",
    "MarketData": "quantfleet.data.market",
    "ParamSpace": "quantfleet.strategies.space",
    "QuantfleetError": "quantfleet.errors",
    "Strategy": "quantfleet.strategies.registry",
    "get_strategy": ("quantfleet.strategies.registry", "get"),
    "load": "quantfleet.data",
    "strategy_names": ("quantfleet.strategies.registry", "names"),
    "sweep": "quantfleet.research.sweep",
}

__all__ = sorted(_EXPORTS)  # the names are listed once, above


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'quantfleet' has no attribute {name!r}")
    module, attr = (target, name) if isinstance(target, str) else target
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
