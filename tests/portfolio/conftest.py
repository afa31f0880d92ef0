"""Small slices of the bundled sp500 data, loaded once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sp500():
    import quantfleet

    return quantfleet.load("sp500")


@pytest.fixture(scope="session")
def small(sp500):
    """6 assets x 420 rows of returns: 252/42 gives 4 windows."""
    from quantfleet.portfolio import from_assets

    rm = from_assets(sp500, list(sp500.assets[:6]))
    return rm.returns.iloc[:420]
