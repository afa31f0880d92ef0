"""Imports every strategy family module so each registers its strategies."""

from quantfleet.strategies import trend  # noqa: F401
