"""Portfolios from assets or tournament pairs: returns matrix, members per window, profiles,
walk-forward rebalancing, buy-and-hold beside each profile.

skfolio is imported only when a profile is built or fitted, never by importing this package.
"""

from __future__ import annotations

from quantfleet.portfolio.profiles import PROFILE_KINDS, Profile, fit_profile, parse_profiles
from quantfleet.portfolio.rebalance import (
    Allocation,
    RebalanceResult,
    buy_and_hold,
    optimize,
    portfolio_returns,
    rebalance,
    select_members,
    walk_forward_windows,
)
from quantfleet.portfolio.returns import (
    ReturnsMatrix,
    from_assets,
    from_strategies,
    read_returns,
    returns_matrix,
)

__all__ = [
    "PROFILE_KINDS",
    "Allocation",
    "Profile",
    "RebalanceResult",
    "ReturnsMatrix",
    "buy_and_hold",
    "fit_profile",
    "from_assets",
    "from_strategies",
    "optimize",
    "parse_profiles",
    "portfolio_returns",
    "read_returns",
    "rebalance",
    "returns_matrix",
    "select_members",
    "walk_forward_windows",
]
