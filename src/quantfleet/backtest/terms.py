"""Execution terms of a backtest: what a fill costs, how metrics are annualised, long/short."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from quantfleet.errors import QuantfleetError

__all__ = ["EXECUTION_OPTIONS", "FILLS", "SEARCHABLE", "Costs", "Execution", "Terms"]


@dataclass(frozen=True)
class Costs:
    """Per-fill costs. A fill of ``|Δposition|`` multiplies equity by ``1 - fee_rate * |Δposition|``."""

    fee_bps: float = 0.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{name} must be a number of basis points, got {type(v).__name__}")
            if not math.isfinite(v) or v < 0 or v >= 10_000:
                raise QuantfleetError(
                    f"{name} must be in [0, 10000) basis points (got {v}); typical values: 0-50"
                )

    @property
    def fee_rate(self) -> float:
        """(fee_bps + slippage_bps) / 1e4."""
        return (self.fee_bps + self.slippage_bps) / 1e4


EXECUTION_OPTIONS = ("fill", "stop_loss", "take_profit", "trailing_stop", "fraction",
                     "vol_target", "vol_window", "vol_cap", "borrow_rate")
"""Every execution option, in the order of ``kernels.execution.EX_FIELDS``."""

SEARCHABLE = EXECUTION_OPTIONS[1:]
"""The options a grid or a genetic search may vary like a parameter (all but ``fill``)."""

FILLS = ("close", "next_open")
"""The fill conventions: at the decision bar's close, or at the next bar's open."""

# option -> (lowest allowed, highest allowed, lower bound included, a typical value)
_RANGES = {
    "stop_loss": (0.0, 1.0, False, "0.05"),
    "take_profit": (0.0, math.inf, False, "0.10"),
    "trailing_stop": (0.0, 1.0, False, "0.05"),
    "fraction": (0.0, math.inf, False, "1.0"),
    "vol_target": (0.0, math.inf, False, "0.15"),
    "vol_cap": (0.0, math.inf, False, "1.0"),
    "borrow_rate": (0.0, math.inf, True, "0.02"),
}


@dataclass(frozen=True)
class Execution:
    """How target positions are executed (docs/conventions.md, "Execution options").

    fill : "close" (the position decided at a bar's close fills at that close) or
        "next_open" (it fills at the next bar's open)
    stop_loss, take_profit, trailing_stop : fractions of the entry fill price (trailing: of
        the best price since the entry); None: off
    fraction : size multiplier set at each entry (fraction of equity)
    vol_target : annualised volatility the entry size aims at (None: off), from the
        ``vol_window`` close-to-close returns up to the decision bar, capped at ``vol_cap``
    borrow_rate : annual rate charged per bar (``borrow_rate / ppy``) on a short position
    """

    fill: str = "close"
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    fraction: float = 1.0
    vol_target: float | None = None
    vol_window: int = 20
    vol_cap: float = 1.0
    borrow_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise QuantfleetError(f"execution fill must be one of {', '.join(FILLS)} "
                                  f"(got {self.fill!r}); typical: close")
        for name, (lo, hi, lo_ok, typical) in _RANGES.items():
            v = getattr(self, name)
            if v is None and name in ("stop_loss", "take_profit", "trailing_stop",
                                      "vol_target"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v > hi or v < lo or (v == lo and not lo_ok) or (v == hi and hi == 1.0):
                bound = "[" if lo_ok else "("
                top = "1)" if hi == 1.0 else "inf)"
                raise QuantfleetError(f"execution {name} must be a number in {bound}{lo:g}, {top} "
                                      f"(got {v!r}); typical: {typical}")
            object.__setattr__(self, name, float(v))
        w = self.vol_window
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w != int(w) or w < 2:
            raise QuantfleetError(f"execution vol_window must be a whole number of bars >= 2 "
                                  f"(got {w!r}); typical: 20")
        object.__setattr__(self, "vol_window", int(w))

    @property
    def is_default(self) -> bool:
        """True when execution is today's convention: fill at the close, whole targets, no
        stops, no borrow cost (the strategy kernels' own fused path)."""
        return self == _DEFAULT_EXECUTION

    @property
    def needs(self) -> tuple[str, ...]:
        """OHLC fields besides close these options read."""
        stops = any(getattr(self, k) is not None
                    for k in ("stop_loss", "take_profit", "trailing_stop"))
        return (("open",) if self.fill == "next_open" or stops else ()) + \
            (("high", "low") if stops else ())

    def row(self) -> list[float]:
        """Its values as an execution row (``kernels.execution.EX_FIELDS``; NaN: off)."""
        nan = math.nan
        return [1.0 if self.fill == "next_open" else 0.0,
                *(nan if getattr(self, k) is None else float(getattr(self, k))
                  for k in EXECUTION_OPTIONS[1:])]

    def settings(self) -> dict[str, object]:
        """The options as a plain dict (what ``--json`` and run records show)."""
        return {k: getattr(self, k) for k in EXECUTION_OPTIONS}

    def replace(self, **values: object) -> Execution:
        """A copy with some options changed (validated)."""
        unknown = set(values) - set(EXECUTION_OPTIONS)
        if unknown:
            raise QuantfleetError(f"unknown execution option(s) {', '.join(sorted(unknown))}; "
                                  f"choose from {', '.join(EXECUTION_OPTIONS)}")
        return dataclasses.replace(self, **values)


_DEFAULT_EXECUTION = Execution()


@dataclass(frozen=True)
class Terms:
    """The terms every combo of a job trades on.

    fee_rate : fraction of traded value paid per fill (``Costs.fee_rate``)
    ppy : bars per year the ratios are annualised with; None: the market's own
    long_short : False turns negative target positions into flat
    execution : fills, stops, sizing, borrow (:class:`Execution`; the default: fill at the
        close, no stops)
    searched : execution options searched like parameters: the trailing columns of a job's
        parameter block, in this order, override ``execution`` per combo
    """

    fee_rate: float = 0.0
    ppy: float | None = None
    long_short: bool = False
    execution: Execution = _DEFAULT_EXECUTION
    searched: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "searched", tuple(self.searched))
        for name in self.searched:
            if name not in SEARCHABLE:
                raise QuantfleetError(f"execution option {name!r} cannot be searched; choose "
                                      f"from {', '.join(SEARCHABLE)}")

    @property
    def plain(self) -> bool:
        """True when the strategy kernels book the job themselves (default execution)."""
        return self.execution.is_default and not self.searched

    @classmethod
    def of(cls, costs: Costs | None = None, ppy: float | None = None,
           long_short: bool = False, execution: Execution | None = None,
           searched: tuple[str, ...] = ()) -> Terms:
        """Terms from a :class:`Costs` (None: free trading) and an :class:`Execution`."""
        return cls(fee_rate=(costs or Costs()).fee_rate,
                   ppy=None if ppy is None else float(ppy), long_short=bool(long_short),
                   execution=execution or _DEFAULT_EXECUTION, searched=tuple(searched))
