"""Strategy seeds: numba signal kernels with declared parameter spaces, found by name."""

from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.registry import all_strategies, get, names
from quantfleet.strategies.space import Choice, Constraint, Float, Int, ParamSpace

__all__ = [
    "Choice",
    "Constraint",
    "Float",
    "Int",
    "ParamSpace",
    "Strategy",
    "all_strategies",
    "get",
    "names",
    "register",
]
