"""Trading costs: moved to :mod:`quantfleet.backtest.terms`; re-exported for callers that import it here."""

from quantfleet.backtest.terms import Costs

__all__ = ["Costs"]
