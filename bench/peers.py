"""The three contenders on one SMA-crossover grid: quantfleet, vectorbt and backtesting.py.

Each runner returns total returns, one per combo, so the timing loop and the correctness
check share the same call.
"""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pandas as pd

from quantfleet.kernels.metrics import METRIC_NAMES

TOTAL_RETURN = METRIC_NAMES.index("total_return")


# --- quantfleet --------------------------------------------------------------------------

def quantfleet_total_returns(market, combos: np.ndarray, fee: float) -> np.ndarray:
    from quantfleet.strategies import get

    res = get("sma_cross").run(market, combos, fee_rate=fee, long_short=False)
    return res[0, :, TOTAL_RETURN]


# --- vectorbt ----------------------------------------------------------------------------

def vbt_exact_fees(entries: np.ndarray, fee: float) -> np.ndarray | float:
    """Per-bar fees that make vectorbt charge exactly quantfleet's ``1 - fee`` per fill.

    vectorbt charges fees on top of the order: an all-in entry buys ``cash / (price (1 + f))``
    shares, so equity becomes ``E / (1 + f)``; quantfleet's entry leaves ``E (1 - f)``.
    ``f' = f / (1 - f)`` gives ``1 / (1 + f') = 1 - f``. Exits are proceeds minus ``f``, the
    same in both. Entries and exits are complementary here, so an entry-signal bar is the only
    bar where a buy can fill.
    """
    if fee == 0.0:
        return 0.0
    return np.where(entries, fee / (1.0 - fee), fee)


def vectorbt_total_returns(close: pd.Series, combos: np.ndarray, fee: float, *,
                           chunk: int | None = None, exact_fees: bool = False) -> np.ndarray:
    """vectorbt's idiom: MA.run over the per-combo windows, state signals, from_signals.

    ``chunk`` splits the combos (vectorbt materialises (bars, combos) arrays of every kind:
    ~125 bytes per bar x combo) and collects garbage between chunks.
    """
    import vectorbt as vbt

    n = combos.shape[0]
    chunk = chunk or n
    out = np.empty(n)
    for lo in range(0, n, chunk):
        c = combos[lo:lo + chunk]
        fast = vbt.MA.run(close, window=c[:, 0].astype(int).tolist(), short_name="fast")
        slow = vbt.MA.run(close, window=c[:, 1].astype(int).tolist(), short_name="slow")
        entries = fast.ma_above(slow)   # long while SMA_fast > SMA_slow (NaN compares False)
        exits = ~entries
        fees = vbt_exact_fees(entries.to_numpy(), fee) if exact_fees else fee
        pf = vbt.Portfolio.from_signals(close, entries, exits, fees=fees, freq="1D")
        out[lo:lo + c.shape[0]] = np.atleast_1d(np.asarray(pf.total_return()))  # 1 combo: a scalar
        del fast, slow, entries, exits, fees, pf
        if chunk < n:
            gc.collect()  # vectorbt's arrays sit in reference cycles: free each chunk
    return out


# --- backtesting.py ----------------------------------------------------------------------

BT_CASH = 1e15  # whole-share rounding is then ~1e-12 of equity even at price 1e4


def _sma(x, n):
    return pd.Series(x).rolling(int(n)).mean().to_numpy()


def _strategy_class():
    from backtesting import Strategy

    class SmaCross(Strategy):
        fast = 10
        slow = 50

        def init(self):
            self.f = self.I(_sma, self.data.Close, self.fast)
            self.s = self.I(_sma, self.data.Close, self.slow)

        def next(self):
            if self.f[-1] > self.s[-1]:
                if not self.position:
                    self.buy()
            elif self.position:
                self.position.close()

    return SmaCross


_STRATEGY = None


def backtesting_total_returns(frame: pd.DataFrame, combos: np.ndarray, fee: float) -> np.ndarray:
    """backtesting.py with its conventions moved next to ours: fill at the signal bar's close
    (``trade_on_close``), no forced exit at the end (``finalize_trades=False``: open trades
    are marked to market in final equity), cash so large that whole shares do not matter."""
    global _STRATEGY
    from backtesting import Backtest

    if _STRATEGY is None:
        _STRATEGY = _strategy_class()
    out = np.empty(combos.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(frame, _STRATEGY, cash=BT_CASH, commission=fee, trade_on_close=True,
                      exclusive_orders=True, finalize_trades=False)
        for i, (f, s) in enumerate(combos):
            stats = bt.run(fast=int(f), slow=int(s))
            out[i] = stats["Equity Final [$]"] / BT_CASH - 1.0
    return out
