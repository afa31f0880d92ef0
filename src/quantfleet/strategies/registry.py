"""The strategy catalog: every family module loaded, each strategy found by name."""

from __future__ import annotations

from quantfleet.errors import StrategyError, did_you_mean

# importing a family module registers its strategies
from quantfleet.strategies import (  # noqa: F401
    breakout,
    carry,
    learning,
    oscillator,
    reversion,
    trend,
    volatility,
)
from quantfleet.strategies.base import _REGISTRY, Strategy, register

# Strategy and register are re-exported: callers import them from here as well as from base
__all__ = ["Strategy", "all_strategies", "get", "names", "register"]


def names() -> list[str]:
    """Registered strategy names, sorted."""
    return sorted(_REGISTRY)


def all_strategies() -> list[Strategy]:
    """Every registered strategy, sorted by name."""
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def get(name: str) -> Strategy:
    """The strategy called ``name``; unknown names get close-match hints."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise StrategyError(
            f"unknown strategy {name!r}{did_you_mean(name, _REGISTRY)}; "
            f"run 'quantfleet strategies' to list them"
        ) from None
