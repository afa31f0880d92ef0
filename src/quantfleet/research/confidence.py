"""How sure are we of a tournament's winner: a stationary-bootstrap confidence interval of its
out-of-sample Sharpe and maximum drawdown, and a permutation p-value of its edge that counts
the selection among the pairs (the winner against the best pair under each permutation).

Everything is computed in the driver from the pairs' out-of-sample paths (positions and
returns, which every executor hands back identically) with random numbers from one seeded
generator, so the block is the same bytes on any executor. Formulas and references:
docs/overfit.md, "How sure are we?".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from quantfleet.errors import QuantfleetError
from quantfleet.kernels.bootstrap import (
    booked_sharpe,
    shifted_max_sharpe,
    stationary_bootstrap_metrics,
)
from quantfleet.kernels.metrics import metrics_from_returns

__all__ = [
    "N_BOOT",
    "N_PERM",
    "Confidence",
    "block_length",
    "bootstrap_intervals",
    "confidence_line",
    "confidence_options",
    "confidence_row",
    "permutation_shifts",
    "profile_confidence",
    "tournament_confidence",
    "unit_returns",
    "winner_confidence",
]

N_BOOT = 1000
"""Default bootstrap replicates."""
N_PERM = 500
"""Default permutations of the null."""
_CHUNK = 64  # bootstrap replicates per batch of uniforms (bounds the buffer: 16 bytes × n each)


def block_length(n: int) -> int:
    """The mean block length of the stationary bootstrap: ``L = ceil(n ** (1/3))`` (at least
    1, at most ``n``), the rate that minimises the mean squared error of block-bootstrap
    variance estimates (Hall, Horowitz & Jing 1995; Politis & White 2004)."""
    if n < 1:
        return 1
    return int(min(n, max(1, math.ceil(n ** (1.0 / 3.0) - 1e-9))))


def permutation_shifts(n: int, k: int, rng: np.random.Generator, min_shift: int) -> np.ndarray:
    """``k`` circular shifts uniform on ``[min_shift, n - min_shift]`` (on ``[1, n - 1]`` when
    that range is empty): a shift never leaves the positions within ``min_shift`` bars of
    where they were, so a slowly changing position cannot keep its timing by a small move."""
    lo, hi = (min_shift, n - min_shift) if n - min_shift >= min_shift else (1, n - 1)
    if hi < lo:
        raise QuantfleetError(f"permutation test: {n} out-of-sample bars; it needs at least 2")
    return rng.integers(lo, hi + 1, size=k, dtype=np.int64)


@dataclass(frozen=True)
class Confidence:
    """The winner's confidence block (:func:`winner_confidence`); ``to_dict`` for JSON."""

    sharpe: float  # the winner's OOS Sharpe (annualised) of the returns bootstrapped
    sharpe_ci: tuple[float, float]
    max_drawdown: float
    max_drawdown_ci: tuple[float, float]
    level: float
    p_value: float  # (1 + #{k: max over pairs under permutation k >= observed}) / (1 + K)
    observed: float  # the winner's Sharpe as the permutation null books it (close to close)
    n_pairs: int  # pairs the maximum is taken over (every pair with a path)
    n_bars: int
    block_length: int
    n_boot: int
    n_perm: int
    seed: int
    null: str = "circular shift of every pair's positions by one common offset"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("sharpe_ci", "max_drawdown_ci"):
            d[k] = list(d[k])
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()}



def confidence_row(c: Mapping[str, Any]) -> dict[str, Any]:
    """A confidence dict as one flat table row (the run's ``tournament_confidence`` artifact,
    the catalog's view of that name): each interval as ``*_ci_lo``/``*_ci_hi``, undefined
    figures NaN."""
    def num(x: Any) -> float:
        return math.nan if x is None else float(x)

    row: dict[str, Any] = {"strategy": c.get("strategy"), "asset": c.get("asset")}
    for k in ("sharpe", "max_drawdown"):
        lo, hi = c[f"{k}_ci"]
        row.update({k: num(c[k]), f"{k}_ci_lo": num(lo), f"{k}_ci_hi": num(hi)})
    row.update({"level": num(c["level"]), "p_value": num(c["p_value"]),
                "observed": num(c["observed"])})
    row.update({k: int(c[k]) for k in ("n_pairs", "n_bars", "block_length", "n_boot",
                                        "n_perm", "seed")})
    row["null"] = c["null"]
    return row


def confidence_line(c: Mapping[str, Any]) -> str:
    """One line for the CLI from a confidence dict (``Confidence.to_dict``, or
    ``TournamentResult.confidence``): "How sure: Sharpe 95 % CI [a, b]; ...", n/a where a
    figure is undefined (None)."""
    def f(x: Any, fmt: str) -> str:
        return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)

    pct = f"{c['level'] * 100:g} %"
    who = (f"{c['strategy']}/{c['asset']}: " if "strategy" in c
           else f"{c['profile']}: " if "profile" in c else "")
    s_ci, d_ci = c["sharpe_ci"], c["max_drawdown_ci"]
    head = (f"How sure ({who}out of sample): Sharpe {pct} CI [{f(s_ci[0], '.2f')}, "
            f"{f(s_ci[1], '.2f')}]; max DD {pct} CI [{f(d_ci[0], '.1%')}, {f(d_ci[1], '.1%')}]")
    boot = (f"stationary bootstrap B={c['n_boot']}, mean block {c['block_length']} bars")
    if "p_value" not in c:  # a portfolio profile: intervals only
        return f"{head} ({boot}; seed {c['seed']})"
    return (f"{head}; permutation p = {f(c['p_value'], '.3f')} over {c['n_pairs']} pairs "
            f"({boot}; K={c['n_perm']} shifts; seed {c['seed']})")


def _percentile_ci(x: np.ndarray, level: float) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (math.nan, math.nan)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(x, [a, 1.0 - a])
    return (float(lo), float(hi))


def winner_confidence(returns: Any, positions: Any, unit: Any, winner: int, *,
                      fee_rate: float = 0.0, ppy: float = 252.0, n_boot: int = N_BOOT,
                      n_perm: int = N_PERM, level: float = 0.95, seed: int = 0,
                      block: int | None = None) -> Confidence:
    """The confidence block of the winner ``positions[winner]``.

    Parameters
    ----------
    returns : (n,) the winner's out-of-sample per-bar returns as its path booked them
        (non-finite bars dropped): bootstrapped for the Sharpe and max-drawdown intervals
    positions : (pairs, n) every pair's out-of-sample positions (decided at each bar's close)
    unit : (pairs, n) the per-unit bar return of each pair's asset over the same bars
    winner : row of ``positions`` that is the winner
    fee_rate : fee per unit of position change, booked by the null as the path books it
    n_boot, n_perm : bootstrap replicates and permutations; level : two-sided CI level
    seed : one generator (PCG64) split in two streams: bootstrap, permutations
    block : mean block length; None: :func:`block_length` of the bars

    The permutation null books every pair close to close (``unit``) at ``fee_rate``; the
    observed statistic is the winner's Sharpe booked the same way (``observed``), which equals
    its path's Sharpe when the path fills at the close without funding or stops.
    """
    if not 0.0 < level < 1.0:
        raise QuantfleetError(f"confidence level: {level}; give a fraction in (0, 1), e.g. 0.95")
    if n_boot < 1 or n_perm < 1:
        raise QuantfleetError(f"confidence: n_boot={n_boot}, n_perm={n_perm}; both must be >= 1")
    r = np.asarray(returns, dtype=np.float64)
    r = np.ascontiguousarray(r[np.isfinite(r)])
    pos = np.ascontiguousarray(np.nan_to_num(np.asarray(positions, dtype=np.float64),
                                             nan=0.0, posinf=0.0, neginf=0.0))
    u = np.ascontiguousarray(np.nan_to_num(np.asarray(unit, dtype=np.float64),
                                           nan=0.0, posinf=0.0, neginf=0.0))
    if pos.ndim != 2 or pos.shape != u.shape:
        raise QuantfleetError(f"confidence: positions {pos.shape} and unit returns {u.shape} "
                              f"must both be (pairs, bars)")
    if not 0 <= winner < pos.shape[0]:
        raise QuantfleetError(f"confidence: winner row {winner} of {pos.shape[0]} pairs")
    boot_ss, perm_ss = np.random.SeedSequence(int(seed)).spawn(2)
    bi = bootstrap_intervals(r, ppy=ppy, n_boot=n_boot, level=level, seed=boot_ss, block=block)
    rng_p = np.random.default_rng(perm_ss)
    obs = np.empty(pos.shape[0])
    booked_sharpe(pos, u, float(fee_rate), float(ppy), obs)
    observed = float(obs[winner])
    p = math.nan
    n_bars = pos.shape[1]
    if n_bars >= 2 and math.isfinite(observed):
        shifts = permutation_shifts(n_bars, n_perm, rng_p, block_length(n_bars))
        mx = np.empty(n_perm)
        shifted_max_sharpe(pos, u, shifts, float(fee_rate), float(ppy), mx)
        p = float((1 + np.count_nonzero(mx >= observed)) / (1 + n_perm))
    def f(x: float | None) -> float:
        return math.nan if x is None else x

    return Confidence(
        sharpe=f(bi["sharpe"]), sharpe_ci=(f(bi["sharpe_ci"][0]), f(bi["sharpe_ci"][1])),
        max_drawdown=f(bi["max_drawdown"]),
        max_drawdown_ci=(f(bi["max_drawdown_ci"][0]), f(bi["max_drawdown_ci"][1])),
        level=float(level), p_value=p, observed=observed, n_pairs=int(pos.shape[0]),
        n_bars=bi["n_bars"], block_length=bi["block_length"], n_boot=int(n_boot),
        n_perm=int(n_perm), seed=int(seed))


def bootstrap_intervals(returns: Any, *, ppy: float, n_boot: int = N_BOOT, level: float = 0.95,
                        seed: Any = 0, block: int | None = None) -> dict[str, Any]:
    """Stationary-bootstrap percentile intervals of a return series' Sharpe and max drawdown
    (non-finite bars dropped; ``seed`` an int or a ``numpy.random.SeedSequence``): the
    bootstrap half of :func:`winner_confidence`, for any series (a portfolio profile's).
    Returns ``sharpe, sharpe_ci, max_drawdown, max_drawdown_ci, level, n_bars,
    block_length, n_boot`` (undefined figures None)."""
    if not 0.0 < level < 1.0:
        raise QuantfleetError(f"confidence level: {level}; give a fraction in (0, 1), e.g. 0.95")
    if n_boot < 1:
        raise QuantfleetError(f"confidence: n_boot={n_boot}; it must be >= 1")
    r = np.asarray(returns, dtype=np.float64)
    r = np.ascontiguousarray(r[np.isfinite(r)])
    n = r.shape[0]
    L = block_length(n) if block is None else int(block)
    if L < 1:
        raise QuantfleetError(f"confidence: block length {L}; give at least 1")
    rng = np.random.default_rng(seed)
    m = metrics_from_returns(r, float(ppy)) if n else np.full(6, np.nan)
    stats = np.full((n_boot, 2), np.nan)
    if n >= 2:
        for b0 in range(0, n_boot, _CHUNK):
            b1 = min(n_boot, b0 + _CHUNK)
            start_u = rng.random((b1 - b0, n))
            new_u = rng.random((b1 - b0, n))
            stationary_bootstrap_metrics(r, start_u, new_u, 1.0 / L, float(ppy), stats[b0:b1])

    def clean(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    s_ci, d_ci = _percentile_ci(stats[:, 0], level), _percentile_ci(stats[:, 1], level)
    return {"sharpe": clean(m[2]), "sharpe_ci": [clean(s_ci[0]), clean(s_ci[1])],
            "max_drawdown": clean(m[4]), "max_drawdown_ci": [clean(d_ci[0]), clean(d_ci[1])],
            "level": float(level), "n_bars": int(n), "block_length": int(L),
            "n_boot": int(n_boot)}


def profile_confidence(returns: Any, *, ppy: float, n_boot: int = N_BOOT, level: float = 0.95,
                       seed: int = 0) -> dict[str, dict[str, Any]]:
    """:func:`bootstrap_intervals` of every column of ``returns`` (a DataFrame, timestamps ×
    portfolio profile): ``{profile: {..., "seed": seed}}``; column ``i`` draws from stream
    ``i`` of ``SeedSequence(seed).spawn(columns)``, so a profile's figures do not depend on
    the columns after it."""
    cols = list(returns.columns)
    streams = np.random.SeedSequence(int(seed)).spawn(len(cols))
    return {str(c): {**bootstrap_intervals(returns[c].to_numpy(), ppy=ppy, n_boot=n_boot,
                                           level=level, seed=ss), "seed": int(seed)}
            for c, ss in zip(cols, streams, strict=True)}


_OPTIONS = ("block", "level", "n_boot", "n_perm", "seed")


def confidence_options(confidence: Any) -> dict[str, Any] | None:
    """A tournament's ``confidence`` argument checked: None for False/None (skip), ``{}`` for
    True, else the mapping's options (:func:`winner_confidence`'s ``n_boot``, ``n_perm``,
    ``level``, ``seed``, ``block``) with unknown names and bad values one-line errors."""
    if confidence is None or confidence is False:
        return None
    if confidence is True:
        return {}
    if not isinstance(confidence, Mapping):
        raise QuantfleetError(f"confidence: {confidence!r}; give True, False or a mapping of "
                              f"{', '.join(_OPTIONS)}")
    bad = sorted(set(confidence) - set(_OPTIONS))
    if bad:
        raise QuantfleetError(f"confidence options: unknown {', '.join(map(str, bad))}; use "
                              f"{', '.join(_OPTIONS)}")
    opts = dict(confidence)
    for k in ("n_boot", "n_perm", "block"):
        v = opts.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer)
                              or v < 1):
            raise QuantfleetError(f"confidence option {k}: {v!r}; give an integer >= 1")
    level = opts.get("level", 0.95)
    if not isinstance(level, int | float) or not 0.0 < float(level) < 1.0:
        raise QuantfleetError(f"confidence option level: {level!r}; give a fraction in (0, 1), "
                              f"e.g. 0.95")
    return opts


def unit_returns(market: Any, asset: int, start: int, stop: int, funding: bool = False
                 ) -> np.ndarray:
    """Per-unit close-to-close returns of ``asset`` over bars ``[start, stop)`` (bar ``t``:
    ``close[t] / close[t - 1] - 1``; 0 where unknown), less the bar's funding rate when
    ``funding`` (a strategy that pays it), as a path books a held position."""
    close = np.asarray(market.close[asset], dtype=np.float64)
    u = np.zeros(stop - start)
    lo = max(start, 1)
    u[lo - start:] = close[lo:stop] / close[lo - 1:stop - 1] - 1.0
    if funding:
        f = np.asarray(market.field("funding_rate")[asset, start:stop], dtype=np.float64)
        u -= np.where(np.isfinite(f), f, 0.0)
    return np.where(np.isfinite(u), u, 0.0)


def tournament_confidence(market: Any, strategies: Sequence[Any], assets: Sequence[int],
                          returns: np.ndarray, positions: np.ndarray, done: np.ndarray,
                          winner_row: int, start: int, stop: int, *, fee_rate: float,
                          ppy: float, **options: Any) -> dict[str, Any]:
    """A tournament's confidence block (``TournamentResult.confidence``): row ``i`` of
    ``returns``/``positions`` (the pairs' out-of-sample paths over bars ``[start, stop)``) is
    ``strategies[i]`` on asset row ``assets[i]``; rows not ``done`` (failed pairs) are left
    out; ``winner_row`` is the leaderboard's first. ``options``: :func:`winner_confidence`'s
    (``n_boot``, ``n_perm``, ``level``, ``seed``, ``block``). The dict is
    :meth:`Confidence.to_dict` with the winner's ``strategy`` and ``asset``."""
    options = confidence_options(options) or {}
    idx = np.flatnonzero(done)
    units: dict[tuple[int, bool], np.ndarray] = {}
    u = np.empty((idx.size, stop - start))
    for j, i in enumerate(idx):
        key = (int(assets[i]), "funding_rate" in strategies[i].extras)
        if key not in units:
            units[key] = unit_returns(market, key[0], start, stop, key[1])
        u[j] = units[key]
    w = int(np.searchsorted(idx, winner_row))
    c = winner_confidence(returns[winner_row], positions[idx], u, w, fee_rate=fee_rate,
                          ppy=ppy, **options)
    return {"strategy": strategies[winner_row].name,
            "asset": market.assets[assets[winner_row]], **c.to_dict()}
