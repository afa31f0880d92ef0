"""Signal replay: compute member strategies' positions once, then search ensemble weights by
replaying the cached positions, never recomputing an indicator.

An ensemble with weights w (on the simplex) holds ``Σ_i w_i · pos_i[t]`` of each asset: the
members' signals are netted before trading, so offsetting members trade (and pay fees) less
than the same members run as separate sub-portfolios.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from quantfleet.backtest.job import BacktestJob, evaluate
from quantfleet.backtest.terms import Terms
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError, StrategyError
from quantfleet.kernels.metrics import (
    METRIC_NAMES,
    N_METRICS,
    acc_finish,
    acc_init,
    acc_step,
    bar_returns,
    check_metric,
    metric_sign,
)
from quantfleet.strategies.registry import get

__all__ = ["Member", "ReplayResult", "SignalBook", "parse_member", "replay_weights",
           "search_weights"]


@dataclass(frozen=True)
class Member:
    """One member of an ensemble: a strategy and one parameter set."""

    strategy: str
    params: dict[str, Any]

    def label(self) -> str:
        return self.strategy + "(" + ",".join(f"{k}={v}" for k, v in self.params.items()) + ")"


def parse_member(text: str) -> Member:
    """``"sma_cross:fast=10,slow=50"`` -> Member (parameters left out take their defaults)."""
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for kv in filter(None, (x.strip() for x in rest.split(","))):
        if "=" not in kv:
            raise StrategyError(f"member {text!r}: expected NAME:KEY=VALUE,..., e.g. sma_cross:fast=10,slow=50")
        k, v = kv.split("=", 1)
        try:
            params[k.strip()] = int(v) if v.strip().lstrip("-").isdigit() else float(v)
        except ValueError:
            raise StrategyError(f"member {text!r}: {k.strip()}={v!r} is not a number") from None
    strat = get(name.strip())
    return Member(strat.name, strat.space.validate(params))


@njit(cache=True)
def _replay_kernel(close, positions, weights, fee_rate, ppy, start, out):
    """Metrics of ensembles: weights (k, members) over positions (members, bars) of one asset."""
    r = bar_returns(close)
    n = r.shape[0]
    m = positions.shape[0]
    for c in range(weights.shape[0]):
        st = acc_init()
        prev = 0.0
        for t in range(start, n):
            pos = 0.0
            for i in range(m):
                pos += weights[c, i] * positions[i, t]
            st = acc_step(st, prev, pos, r[t], fee_rate)
            prev = pos
        acc_finish(st, ppy, out[c])


@dataclass
class SignalBook:
    """Cached target positions of every member on every asset: (members, assets, bars)."""

    members: list[Member]
    market: MarketData
    positions: np.ndarray
    close: np.ndarray  # (assets, bars), contiguous rows
    start: int
    fee_rate: float
    ppy: float
    build_s: float = 0.0

    @classmethod
    def build(cls, market: MarketData, members: Sequence[Member], *, fee_rate: float = 0.0,
              ppy: float | None = None, long_short: bool = False, start: int | None = None) -> SignalBook:
        """Run each member's kernel once per asset and keep its position series.

        ``start`` defaults to the longest warm-up among the members, so every member can hold
        a position from the first counted bar.
        """
        if not members:
            raise QuantfleetError("an ensemble needs at least one member, e.g. sma_cross:fast=10,slow=50")
        t0 = time.perf_counter()
        if start is None:
            start = max(get(mb.strategy).min_bars(mb.params) for mb in members) - 1
        if (market.first_valid() > 0).any():
            raise QuantfleetError(f"{market.source}: replay needs every asset priced from the first "
                                  f"bar; select assets with a common history")
        pos = np.zeros((len(members), market.n_assets, market.n_bars))
        terms = Terms(fee_rate=float(fee_rate), ppy=ppy, long_short=long_short)
        for i, mb in enumerate(members):
            job = BacktestJob(mb.strategy, tuple(range(market.n_assets)),
                              get(mb.strategy).space.to_array([mb.params]), terms=terms,
                              keep="positions")
            for a, p in enumerate(evaluate(market, job).series):
                pos[i, a] = p[0]
        # the close itself, not returns computed here: numba's cache can fail to hand a
        # cached callee's array back to Python ("descr is NULL"), so returns stay in the kernel
        close = np.ascontiguousarray(market.close, dtype=np.float64)
        return cls(list(members), market, pos, close, int(start), float(fee_rate),
                   float(ppy if ppy is not None else market.periods_per_year),
                   time.perf_counter() - t0)

    def evaluate(self, weights: np.ndarray) -> np.ndarray:
        """Metrics (assets, k, N_METRICS) of k weight vectors (k, members)."""
        w = np.ascontiguousarray(np.atleast_2d(weights), dtype=np.float64)
        if w.shape[1] != len(self.members):
            raise QuantfleetError(f"weights have {w.shape[1]} columns for {len(self.members)} members")
        out = np.empty((self.positions.shape[1], w.shape[0], N_METRICS))
        for a in range(self.positions.shape[1]):
            _replay_kernel(self.close[a], np.ascontiguousarray(self.positions[:, a, :]), w,
                           self.fee_rate, self.ppy, self.start, out[a])
        return out


def replay_weights(book: SignalBook, weights: np.ndarray) -> np.ndarray:
    """Mean over assets of every metric for each weight vector: (k, N_METRICS)."""
    with np.errstate(all="ignore"):
        return np.nanmean(book.evaluate(weights), axis=0)


@dataclass
class ReplayResult:
    """Best ensembles found by replaying cached signals."""

    members: list[Member]
    best_weights: np.ndarray
    best_metrics: dict[str, float]
    top: list[dict[str, Any]]
    candidates: int
    build_s: float
    search_s: float
    history: list[dict[str, Any]] = field(default_factory=list)


def search_weights(book: SignalBook, *, candidates: int = 1000, seed: int = 0,
                   metric: str = "sharpe", method: str = "genetic", batch: int = 100,
                   top: int = 5) -> ReplayResult:
    """Search ensemble weights on the simplex by replay.

    ``method="random"`` draws ``candidates`` Dirichlet(1) weight vectors; ``"genetic"`` draws the
    first batch at random, then breeds each next batch from the best so far (convex crossover
    of two parents, Dirichlet-noise mutation, renormalised to the simplex).
    """
    check_metric(metric)
    if method not in ("random", "genetic"):
        raise QuantfleetError(f"unknown method {method!r}; use 'random' or 'genetic'")
    k = METRIC_NAMES.index(metric)
    sign = metric_sign(metric)
    rng = np.random.default_rng(seed)
    m = len(book.members)
    all_w: list[np.ndarray] = []
    all_f: list[np.ndarray] = []
    history = []
    t0 = time.perf_counter()
    done = 0
    while done < candidates:
        size = min(batch, candidates - done)
        if method == "random" or not all_f:
            w = rng.dirichlet(np.ones(m), size=size)
        else:
            W = np.concatenate(all_w)
            F = np.concatenate(all_f)
            elite = W[np.argsort(-F, kind="stable")[:max(2, len(F) // 5)]]
            a = elite[rng.integers(0, len(elite), size)]
            b = elite[rng.integers(0, len(elite), size)]
            lam = rng.uniform(0, 1, (size, 1))
            w = lam * a + (1 - lam) * b
            w = 0.8 * w + 0.2 * rng.dirichlet(np.ones(m), size=size)
            w /= w.sum(axis=1, keepdims=True)
        vals = replay_weights(book, w)[:, k] * sign
        vals = np.where(np.isfinite(vals), vals, -np.inf)
        all_w.append(w)
        all_f.append(vals)
        done += size
        history.append({"candidates": done, "best": float(np.max(np.concatenate(all_f))) * sign})
    W = np.concatenate(all_w)
    F = np.concatenate(all_f)
    order = np.argsort(-F, kind="stable")
    best = W[order[0]]
    best_metrics = dict(zip(METRIC_NAMES, replay_weights(book, best[None, :])[0].tolist(),
                            strict=True))
    rows = [{"weights": {mb.label(): round(float(x), 6) for mb, x in zip(book.members, W[i], strict=True)},
             metric: float(F[i] * sign)} for i in order[:top]]
    return ReplayResult(book.members, best, best_metrics, rows, len(W), book.build_s,
                        time.perf_counter() - t0, history)
