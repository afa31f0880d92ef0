"""Signal replay: compute member strategies' positions once, then search ensemble weights by
replaying the cached positions, never recomputing an indicator.

An ensemble with weights w (on the simplex) holds ``Σ_i w_i · pos_i[t]`` of each asset: the
members' signals are netted before trading, so offsetting members trade (and pay fees) less
than the same members run as separate sub-portfolios.
"""

from __future__ import annotations

import math
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
    acc_step_pnl,
    check_metric,
    metric_sign,
)
from quantfleet.research.overfit import deflated_sharpe, return_moments
from quantfleet.strategies.registry import get

__all__ = ["TRAIN_FRAC", "Member", "ReplayResult", "SignalBook", "parse_member", "replay_weights",
           "search_weights", "split_bar"]


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
def _replay_kernel(positions, earned, weights, fee_rate, ppy, lo, hi, out, returns_out):
    """Metrics of ensembles over bars ``[lo, hi)`` of one asset, the book flat before ``lo``.

    Parameters
    ----------
    positions : float64 (members, bars)  each member's target position at each bar's close
    earned : float64 (members, bars)     each member's own bar return of the position it held
        over the bar (funding included where its kernel books it), before fees
    weights : float64 (k, members)
    out : float64 (k, N_METRICS)
    returns_out : float64 (k, hi - lo) or None   the book's per-bar returns, net of fees
    """
    m = positions.shape[0]
    for c in range(weights.shape[0]):
        st = acc_init()
        prev = 0.0
        for t in range(lo, hi):
            pos = 0.0
            pnl = 0.0
            for i in range(m):
                pos += weights[c, i] * positions[i, t]
                if t > lo:  # the book is flat over its first bar
                    pnl += weights[c, i] * earned[i, t]
            st = acc_step_pnl(st, prev, pos, pnl, fee_rate)
            if returns_out is not None:
                returns_out[c, t - lo] = (1.0 + pnl) * (1.0 - fee_rate * abs(pos - prev)) - 1.0
            prev = pos
        acc_finish(st, ppy, out[c])


@dataclass
class SignalBook:
    """Cached member series on every asset, from ``start`` on (zeros before it).

    positions : (members, assets, bars) each member's target positions (its own kernel's)
    earned : (members, assets, bars) each member's bar return of the position it held, before
        fees: its kernel's per-bar return at zero fees, so funding (``funding_carry``) and
        anything else a kernel books into its bar P&L is included
    """

    members: list[Member]
    market: MarketData
    positions: np.ndarray
    earned: np.ndarray
    start: int
    fee_rate: float
    ppy: float
    build_s: float = 0.0

    @classmethod
    def build(cls, market: MarketData, members: Sequence[Member], *, fee_rate: float = 0.0,
              ppy: float | None = None, long_short: bool = False, start: int | None = None) -> SignalBook:
        """Run each member's kernel on every asset over bars ``[start, end)`` (two
        ``BacktestJob``s: ``keep="positions"`` and, at zero fees, ``keep="returns"``).

        ``start`` defaults to the longest warm-up among the members, so every member can hold
        a position from the first counted bar; indicators warm up on the bars before it.
        """
        if not members:
            raise QuantfleetError("an ensemble needs at least one member, e.g. sma_cross:fast=10,slow=50")
        t0 = time.perf_counter()
        if start is None:
            start = max(get(mb.strategy).min_bars(mb.params) for mb in members) - 1
        start = int(start)
        if (market.first_valid() > 0).any():
            raise QuantfleetError(f"{market.source}: replay needs every asset priced from the first "
                                  f"bar; select assets with a common history")
        if not 0 <= start < market.n_bars - 1:
            raise QuantfleetError(f"{market.source}: replay start {start} leaves fewer than 2 of "
                                  f"{market.n_bars} bars; use more bars or members with shorter "
                                  f"warm-ups")
        shape = (len(members), market.n_assets, market.n_bars)
        pos = np.zeros(shape)
        earned = np.zeros(shape)
        ppy_ = float(ppy if ppy is not None else market.periods_per_year)
        assets = tuple(range(market.n_assets))
        for i, mb in enumerate(members):
            params = get(mb.strategy).space.to_array([mb.params])
            for keep, dest, fee in (("positions", pos, float(fee_rate)), ("returns", earned, 0.0)):
                job = BacktestJob(mb.strategy, assets, params, start=start,
                                  terms=Terms(fee_rate=fee, ppy=ppy_, long_short=long_short),
                                  keep=keep)
                for a, series in enumerate(evaluate(market, job).series):
                    dest[i, a, start:] = series[0]
        return cls(list(members), market, pos, earned, start, float(fee_rate), ppy_,
                   time.perf_counter() - t0)

    def evaluate(self, weights: np.ndarray, *, bars: tuple[int, int] | None = None,
                 returns: bool = False) -> Any:
        """Metrics (assets, k, N_METRICS) of k weight vectors (k, members) over ``bars``
        (``[lo, hi)``; None: ``[start, end)``), the book entering flat at ``lo``.

        With ``returns=True`` also the book's per-bar returns, net of fees: (assets, k, hi - lo).
        """
        w = np.ascontiguousarray(np.atleast_2d(weights), dtype=np.float64)
        if w.shape[1] != len(self.members):
            raise QuantfleetError(f"weights have {w.shape[1]} columns for {len(self.members)} members")
        lo, hi = (self.start, self.positions.shape[2]) if bars is None else map(int, bars)
        if not self.start <= lo < hi <= self.positions.shape[2]:
            raise QuantfleetError(f"bars [{lo}, {hi}) are outside the book's "
                                  f"[{self.start}, {self.positions.shape[2]})")
        n_a = self.positions.shape[1]
        out = np.empty((n_a, w.shape[0], N_METRICS))
        rets = np.empty((n_a, w.shape[0], hi - lo)) if returns else None
        for a in range(n_a):
            _replay_kernel(np.ascontiguousarray(self.positions[:, a, :]),
                           np.ascontiguousarray(self.earned[:, a, :]), w, self.fee_rate, self.ppy,
                           lo, hi, out[a], None if rets is None else rets[a])
        return (out, rets) if returns else out


def replay_weights(book: SignalBook, weights: np.ndarray, *,
                   bars: tuple[int, int] | None = None) -> np.ndarray:
    """Mean over assets of every metric for each weight vector: (k, N_METRICS)."""
    with np.errstate(all="ignore"):
        return np.nanmean(book.evaluate(weights, bars=bars), axis=0)


TRAIN_FRAC = 0.7
"""Default share of the counted bars ``[start, end)`` the weight search picks on; the rest is
held out and only scores the choice."""


@dataclass
class ReplayResult:
    """Best ensemble found by replaying cached signals, chosen on the in-sample bars only.

    best_metrics : the chosen weights' metrics on the in-sample bars ``[start, split)``
    oos_metrics : the same weights on the held-out bars ``[split, end)``, the book entering
        flat at ``split`` (what deploying the choice at ``split`` would have earned)
    dsr : deflated Sharpe of the choice on the in-sample bars, N = ``candidates`` (every weight
        vector evaluated), V = variance of their in-sample Sharpes (per bar); with several
        assets the mean over assets of ``dsr_assets``
    dsr_assets : (assets,) the same per asset: the choice's in-sample returns on that asset
        against the candidates' Sharpes on that asset
    var_trials : (assets,) V per asset, per-bar Sharpe units
    """

    members: list[Member]
    best_weights: np.ndarray
    best_metrics: dict[str, float]
    top: list[dict[str, Any]]
    candidates: int
    build_s: float
    search_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    train_frac: float = TRAIN_FRAC
    split: int = 0
    oos_metrics: dict[str, float] = field(default_factory=dict)
    dsr: float = float("nan")
    dsr_assets: np.ndarray = field(default_factory=lambda: np.empty(0))
    var_trials: np.ndarray = field(default_factory=lambda: np.empty(0))


def split_bar(book: SignalBook, train_frac: float = TRAIN_FRAC) -> int:
    """First held-out bar: ``start + round(train_frac * (end - start))``; both parts keep at
    least 2 bars."""
    if not (isinstance(train_frac, int | float) and 0.0 < float(train_frac) < 1.0):
        raise QuantfleetError(f"train_frac must be in (0, 1) (got {train_frac!r}); the default "
                              f"{TRAIN_FRAC} picks weights on the first 70% of the bars")
    n = book.positions.shape[2]
    split = book.start + int(round(float(train_frac) * (n - book.start)))
    if split - book.start < 2 or n - split < 2:
        raise QuantfleetError(f"train_frac={train_frac} splits bars [{book.start}, {n}) at "
                              f"{split}, leaving a part with fewer than 2 bars; use more bars or "
                              f"a train_frac nearer 0.5")
    return split


def search_weights(book: SignalBook, *, candidates: int = 1000, seed: int = 0,
                   metric: str = "sharpe", method: str = "genetic", batch: int = 100,
                   top: int = 5, train_frac: float = TRAIN_FRAC) -> ReplayResult:
    """Search ensemble weights on the simplex by replay, on the in-sample bars only.

    The counted bars ``[start, end)`` are split at :func:`split_bar`: candidates are scored
    and bred on ``[start, split)`` (the mean over assets of ``metric``); the chosen weights are
    then scored once on the held-out ``[split, end)``, which nothing in the search reads.
    ``method="random"`` draws ``candidates`` Dirichlet(1) weight vectors; ``"genetic"`` draws the
    first batch at random, then breeds each next batch from the best so far (convex crossover
    of two parents, Dirichlet-noise mutation, renormalised to the simplex).
    """
    check_metric(metric)
    if method not in ("random", "genetic"):
        raise QuantfleetError(f"unknown method {method!r}; use 'random' or 'genetic'")
    split = split_bar(book, train_frac)
    is_bars = (book.start, split)
    k = METRIC_NAMES.index(metric)
    k_sr = METRIC_NAMES.index("sharpe")
    sign = metric_sign(metric)
    rng = np.random.default_rng(seed)
    m = len(book.members)
    all_w: list[np.ndarray] = []
    all_f: list[np.ndarray] = []
    all_sr: list[np.ndarray] = []
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
        per_asset = book.evaluate(w, bars=is_bars)
        with np.errstate(all="ignore"):
            met = np.nanmean(per_asset, axis=0)  # as replay_weights
        vals = met[:, k] * sign
        vals = np.where(np.isfinite(vals), vals, -np.inf)
        all_w.append(w)
        all_f.append(vals)
        all_sr.append(per_asset[:, :, k_sr].T)
        done += size
        history.append({"candidates": done, "best": float(np.max(np.concatenate(all_f))) * sign})
    W = np.concatenate(all_w)
    F = np.concatenate(all_f)
    order = np.argsort(-F, kind="stable")
    best = W[order[0]]
    best_metrics = dict(zip(METRIC_NAMES, replay_weights(book, best[None, :], bars=is_bars)[0]
                            .tolist(), strict=True))
    oos = replay_weights(book, best[None, :], bars=(split, book.positions.shape[2]))[0]
    dsr_a, var = _deflated(book, best, np.concatenate(all_sr), is_bars)
    with np.errstate(all="ignore"):
        dsr = float(np.nanmean(dsr_a)) if np.isfinite(dsr_a).any() else math.nan
    rows = [{"weights": {mb.label(): round(float(x), 6) for mb, x in zip(book.members, W[i], strict=True)},
             metric: float(F[i] * sign)} for i in order[:top]]
    return ReplayResult(book.members, best, best_metrics, rows, len(W), book.build_s,
                        time.perf_counter() - t0, history, float(train_frac), split,
                        dict(zip(METRIC_NAMES, oos.tolist(), strict=True)), dsr, dsr_a, var)


def _deflated(book: SignalBook, best: np.ndarray, sharpes: np.ndarray,
              bars: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per asset, DSR of the chosen weights on ``bars``: the choice's returns on the asset,
    N = every candidate, V = variance (ddof=1) of the candidates' Sharpes on the asset, per bar.

    sharpes : (candidates, assets) annualized in-sample Sharpes of every candidate
    Returns ``(dsr (assets,), var (assets,))``.
    """
    _, rets = book.evaluate(best[None, :], bars=bars, returns=True)
    n_a = rets.shape[0]
    dsr = np.full(n_a, np.nan)
    var = np.zeros(n_a)
    sr_trials = sharpes / math.sqrt(book.ppy)
    for a in range(n_a):
        finite = sr_trials[:, a][np.isfinite(sr_trials[:, a])]
        var[a] = float(np.var(finite, ddof=1)) if finite.size > 1 else 0.0
        try:
            sr, n, skew, kurt = return_moments(rets[a, 0])
        except QuantfleetError:
            continue
        if math.isfinite(sr):
            dsr[a] = deflated_sharpe(sr, n, skew, kurt, sharpes.shape[0], var[a])
    return dsr, var
