"""Imports every strategy family module so each registers its strategies."""

from quantfleet.strategies import (  # noqa: F401
    breakout,
    carry,
    learning,
    oscillator,
    reversion,
    trend,
    volatility,
)
