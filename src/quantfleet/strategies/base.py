"""Strategy: a numba batch kernel plus its ParamSpace, and ``register``, which family modules
call to add theirs to the catalog (``registry.py`` finds them by name).

Every strategy kernel has one signature::

    kernel(open, high, low, close, volume, extra, params, fee_rate, ppy, long_short, start,
           out, returns_out)

open/high/low/volume : float64 (bars,)  -- an empty array when the strategy does not use it
extra       : float64 (k, bars)         -- the strategy's ``extras`` columns, in order
params      : float64 (combos, dims)    -- one row per parameter set, ``space.names`` order
fee_rate    : float                     -- (fee_bps + slippage_bps) / 1e4
ppy         : float                     -- periods per year
long_short  : bool                      -- False: negative target positions become 0
start       : int                       -- first bar counted; earlier bars only warm indicators up
out         : float64 (combos, N_METRICS)   -- metric rows written by the kernel
returns_out : float64 (combos, 2, bars) or None -- per-bar strategy returns ([:, 0]) and
              target positions ([:, 1]), when wanted; hand it to ``tail_step`` as it is

The kernel computes each distinct indicator window once, then runs one fused pass per combo:
the signal gives the position, and ``quantfleet.kernels.metrics.tail_step`` (P&L, running
metric sums, optional stores) advances with O(1) state per combo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantfleet.data.market import MarketData
from quantfleet.errors import DataError, StrategyError
from quantfleet.kernels.metrics import METRIC_NAMES, N_METRICS
from quantfleet.strategies.space import ParamSpace

__all__ = ["Strategy", "register"]

_EMPTY = np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class Strategy:
    """A parameterized strategy seed.

    Attributes
    ----------
    name : registry name, e.g. ``"sma_cross"``
    family : module it lives in (trend, breakout, oscillator, ...)
    description : one line for ``quantfleet strategies``
    space : ParamSpace of its parameters
    kernel : the numba batch kernel (signature in this module's docstring)
    needs : OHLCV fields it reads besides close, e.g. ``("high", "low")``
    extras : extra columns it reads, e.g. ``("funding_rate",)``
    warmup : params dict -> bars needed before the first position can be taken
    fast : optional fast-path kernel (kernels/fastpath.py): the per-bar kernel's rule scanned
        into the bars where the position changes and booked per holding period; signature
        ``(open, high, low, close, volume, extra, params, fee_rate, ppy, long_short, start,
        out, bsum, bsq, blk)`` with per-block sums ``bsum``/``bsq`` (S, combos) and ``blk``
        ``(first bar of block 0, bars per block, S)``. It gives the per-bar kernel's metrics
        to rounding (docs/conventions.md, "Fast path"); ``kernel`` stays the reference and
        gives every per-bar series
    cost_ns : estimated seconds × 1e9 per bar × combo of a walk-forward job (one pass over
        the asset and each window's train and test bars booked again); what
        ``executor = "auto"`` sizes a tournament by (measured: bench/tournament_cost.py)
    """

    name: str
    family: str
    description: str
    space: ParamSpace
    kernel: Callable[..., None]
    needs: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    warmup: Callable[[Mapping[str, Any]], int] | None = None
    cost_ns: float = 5.0
    fast: Callable[..., None] | None = None

    def min_bars(self, params: Mapping[str, Any]) -> int:
        """Bars an asset needs so this parameter set can take at least one position."""
        if self.warmup is not None:
            return int(self.warmup(params)) + 1
        windows = [int(params[d.name]) for d in self.space.dims if getattr(d, "window", False)]
        return (max(windows) if windows else 1) + 1

    def check_market(self, market: MarketData) -> None:
        """Raise if ``market`` lacks a field or column this strategy reads."""
        have = set(market.columns())  # a MarketView (shard dataset) has columns, no arrays
        for f in self.needs:
            if f not in have:
                raise DataError(
                    f"{market.source}: strategy {self.name} needs a {f!r} column; "
                    f"the data has {', '.join(market.columns())}"
                )
        for f in self.extras:
            if f not in have:
                raise DataError(
                    f"{market.source}: strategy {self.name} needs a {f!r} column "
                    f"(e.g. perpetual-futures funding per bar); the data has "
                    f"{', '.join(market.columns())}"
                )

    def _inputs(self, market: MarketData, asset: int, params: np.ndarray, start: int,
                stop: int | None, warm_from: int | None) -> tuple[np.ndarray, int, int, tuple]:
        """``(params, lo, start, kernel arrays)``: the slice ``[lo, stop)`` a kernel reads
        (``lo``: where indicators start) and the counted start clamped to it."""
        self.check_market(market)
        params = np.ascontiguousarray(params, dtype=np.float64)
        if params.ndim != 2 or params.shape[1] != len(self.space.dims):
            raise StrategyError(
                f"{self.name}: params must have shape (combos, {len(self.space.dims)}) "
                f"for {', '.join(self.space.names)}; got {params.shape}"
            )
        first = int(market.first_valid()[asset])
        lo = max(first, 0 if warm_from is None else warm_from)
        stop = market.n_bars if stop is None else stop
        start = max(start, lo)
        sl = slice(lo, stop)

        def col(name: str) -> np.ndarray:
            if name not in self.needs and name != "close":
                return _EMPTY
            return np.ascontiguousarray(market.field(name)[asset, sl])

        close = col("close")
        extra = np.ascontiguousarray(
            np.stack([market.field(e)[asset, sl] for e in self.extras])
            if self.extras else np.empty((0, close.shape[0]))
        )
        return params, lo, start, (col("open"), col("high"), col("low"), close, col("volume"),
                                   extra)

    def run_asset(self, market: MarketData, asset: int, params: np.ndarray, *,
                  fee_rate: float = 0.0, ppy: float | None = None, long_short: bool = False,
                  start: int = 0, stop: int | None = None, warm_from: int | None = None,
                  returns: bool = False, positions: bool = False):
        """Evaluate ``params`` (combos, dims) on one asset over bars ``[start, stop)``.

        ``warm_from`` (default: the asset's first valid bar) is where indicators start
        computing; bars in ``[warm_from, start)`` only warm them up.

        Returns ``(metrics (combos, N_METRICS), returns (combos, stop - start) or None)``, and
        with ``positions=True`` a third item: the target positions (combos, stop - start).
        Metrics alone go through the strategy's fast path when it has one and the closes allow
        it (:meth:`run_asset_blocks`); per-bar series always come from the per-bar kernel.
        """
        if not (returns or positions) and self.fast is not None:
            got = self.run_asset_blocks(market, asset, params, 0, fee_rate=fee_rate, ppy=ppy,
                                        long_short=long_short, start=start, stop=stop,
                                        warm_from=warm_from)
            if got is not None:
                return got[0], None
        params, lo, start, arrays = self._inputs(market, asset, params, start, stop, warm_from)
        n = arrays[3].shape[0]
        out = np.empty((params.shape[0], N_METRICS))
        rets = np.zeros((params.shape[0], 2, n)) if (returns or positions) else None
        self.kernel(*arrays, params,
                    float(fee_rate), float(ppy if ppy is not None else market.periods_per_year),
                    bool(long_short), int(start - lo), out, rets)
        k = start - lo
        r_out = rets[:, 0, k:] if returns else None
        if positions:
            return out, r_out, rets[:, 1, k:]
        return out, r_out

    def run_asset_blocks(self, market: MarketData, asset: int, params: np.ndarray,
                         n_splits: int, *, fee_rate: float = 0.0, ppy: float | None = None,
                         long_short: bool = False, start: int = 0, stop: int | None = None,
                         warm_from: int | None = None):
        """The fast path (``fast``; kernels/fastpath.py): metrics (combos, N_METRICS) and the
        per-block statistics of each combo's per-bar returns over ``[start, stop)`` cut into
        ``n_splits`` blocks (the first ``T mod S`` bars in none), as
        ``(metrics, count, mean, m2, bars)`` with count/mean/m2 (S, combos) — what
        ``backtest.blocks.block_stats`` gives of the per-bar kernel's returns. ``n_splits`` 0:
        metrics only (empty block arrays).

        None when the strategy has no fast path or the asset's closes in the slice are not all
        finite and > 0 (the caller then runs the per-bar kernel).
        """
        if self.fast is None:
            return None
        params, lo, start, arrays = self._inputs(market, asset, params, start, stop, warm_from)
        close = arrays[3]
        if close.shape[0] == 0 or not bool(np.all(close > 0.0)) \
                or not bool(np.isfinite(close).all()):
            return None
        from quantfleet.kernels.fastpath import fp_blocks_finish

        k = start - lo
        bars = max(close.shape[0] - k, 0)
        s = int(n_splits)
        bl = bars // s if s > 0 else 0
        ns = s if bl > 0 else 0
        n_c = params.shape[0]
        out = np.empty((n_c, N_METRICS))
        bsum = np.zeros((ns, n_c))
        bsq = np.zeros((ns, n_c))
        blk = (k + bars - bl * ns, max(bl, 1), ns)
        self.fast(*arrays, params,
                  float(fee_rate), float(ppy if ppy is not None else market.periods_per_year),
                  bool(long_short), int(k), out, bsum, bsq, blk)
        count = np.zeros((s, n_c))
        mean = np.zeros((s, n_c))
        m2 = np.zeros((s, n_c))
        if ns:
            fp_blocks_finish(bsum, bsq, float(bl), count, mean, m2)
        return out, count, mean, m2, bars

    def run(self, market: MarketData, params: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Metrics for every asset × combo: float64 (assets, combos, N_METRICS)."""
        res = np.empty((market.n_assets, np.shape(params)[0], N_METRICS))
        for a in range(market.n_assets):
            res[a] = self.run_asset(market, a, params, **kwargs)[0]
        return res

    def metrics_dict(self, row: np.ndarray) -> dict[str, float]:
        return {k: float(v) for k, v in zip(METRIC_NAMES, row, strict=True)}


# name -> strategy; written by ``register`` as family modules load, read by ``registry.py``
_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to the catalog (names are unique); returns it."""
    if strategy.name in _REGISTRY:
        raise StrategyError(f"strategy {strategy.name!r} is already registered")
    _REGISTRY[strategy.name] = strategy
    return strategy
