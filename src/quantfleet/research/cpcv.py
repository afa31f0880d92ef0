"""Combinatorial purged cross-validation (CPCV) of a tournament pair.

López de Prado, *Advances in Financial Machine Learning* (2018), ch. 7 (purging, embargo) and
ch. 12 (CPCV): the pair's span of bars is cut into ``N`` contiguous groups; every choice of
``k`` test groups is one split (``C(N, k)`` splits). A split's training bars are the other
groups minus the *purged* bar before each test group (a position decided at bar ``t``'s close
earns bar ``t + 1``: the label of the bar before a test group is the test group's first bar)
and minus the *embargo*: ``embargo`` bars after each test group. Each combo is run once over
the whole span (indicators warm up from the asset's first valid bar, as in the walk-forward);
every contiguous run of training bars is booked on its own (entering flat at its first bar, as
``kernels.walk.segment_metrics`` books a segment) and the runs' per-bar returns, concatenated,
give the combo's in-sample metric (``kernels.metrics.metrics_from_returns``). The best combo in
sample (``backtest.job.best_combo``'s rule) is the split's selection; each test group is booked
on its own too.

Paths: each group is tested by ``C(N-1, k-1)`` splits; the ``p``-th split (in lexicographic
order) testing group ``g`` gives path ``p`` its group ``g`` — ``φ = C(N, k)·k/N`` paths, each
covering every group once with the out-of-sample returns of the combo selected by the split
that tested it. Per pair: the distribution of the paths' annualised Sharpe ratios, and PBO
over the splits as CSCV computes it (Bailey et al. 2017): the in-sample winner's relative
out-of-sample rank ``ω`` among the combos (by the selection metric on the split's test
groups), logit ``λ = ln(ω / (1 − ω))``, PBO the share of splits with ``λ ≤ 0``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from quantfleet.backtest.job import BacktestJob, evaluate
from quantfleet.backtest.terms import Terms
from quantfleet.errors import QuantfleetError
from quantfleet.kernels.cpcv import cpcv_metric_table
from quantfleet.kernels.metrics import RETURN_METRIC_NAMES, metric_sign, metrics_from_returns

__all__ = [
    "CPCV_PATH_COLUMNS",
    "CPCV_SUMMARY_COLUMNS",
    "MAX_SPLITS",
    "Cpcv",
    "CpcvSummary",
    "booked_returns",
    "check_cpcv",
    "cpcv_pair",
    "cpcv_paths",
    "cpcv_splits",
    "group_bounds",
]

MAX_SPLITS = 5000
"""Most splits a :class:`Cpcv` may make (each is a selection over every combo of every pair)."""

CPCV_SUMMARY_COLUMNS = ("strategy", "asset", "groups", "test_groups", "embargo", "splits",
                        "paths", "pbo", "sharpe_mean", "sharpe_std", "sharpe_min",
                        "sharpe_q05", "sharpe_median", "sharpe_q95", "sharpe_max",
                        "share_negative")
"""Columns of a tournament's ``cpcv`` table: one row per (strategy, asset)."""

CPCV_PATH_COLUMNS = ("strategy", "asset", "path", "sharpe", "total_return", "max_drawdown")
"""Columns of a tournament's ``cpcv_paths`` table: one row per (strategy, asset, path)."""


@dataclass(frozen=True)
class Cpcv:
    """CPCV settings: ``groups`` N, ``test_groups`` k per split, ``embargo`` bars after each
    test group left out of training (one bar before each test group is always purged)."""

    groups: int = 6
    test_groups: int = 2
    embargo: int = 0

    def __post_init__(self) -> None:
        if int(self.groups) < 2:
            raise QuantfleetError(f"cpcv groups = {self.groups}: need at least 2 groups; "
                                  f"e.g. --groups 6")
        if not 1 <= int(self.test_groups) < int(self.groups):
            raise QuantfleetError(f"cpcv test_groups = {self.test_groups}: need 1 <= test_groups "
                                  f"< groups ({self.groups}); e.g. --test-groups 2")
        if int(self.embargo) < 0:
            raise QuantfleetError(f"cpcv embargo = {self.embargo}: must be >= 0 bars")
        if self.n_splits > MAX_SPLITS:
            raise QuantfleetError(
                f"cpcv: C({self.groups}, {self.test_groups}) = {self.n_splits:,} splits, more "
                f"than {MAX_SPLITS:,}; lower --groups or --test-groups (e.g. 6 and 2: 15)")

    @property
    def n_splits(self) -> int:
        return math.comb(self.groups, self.test_groups)

    @property
    def n_paths(self) -> int:
        """φ = C(N, k)·k/N = C(N−1, k−1)."""
        return math.comb(self.groups - 1, self.test_groups - 1)


def check_cpcv(market: Any, rows: Any, terms: Any, metric: str,
               cv: Cpcv) -> tuple[int, int]:
    """The span ``[lo, hi)`` a tournament's CPCV runs over (from the first bar every asset of
    ``rows`` is priced to the market's end), after refusing what it cannot run: execution
    options other than the default, a selection metric not of the returns."""
    if not terms.plain:
        raise QuantfleetError("cv = 'cpcv' runs under the default execution (fill at the "
                              "close, no stops, sizing or borrow, nothing searched); drop the "
                              "execution options or use cv = 'walk'")
    if metric not in RETURN_METRIC_NAMES:
        raise QuantfleetError(f"metric {metric!r} with cv = 'cpcv': CPCV selects on a metric "
                              f"of the returns ({', '.join(RETURN_METRIC_NAMES)}); pick one "
                              f"of them or use cv = 'walk'")
    lo = int(market.first_valid()[list(rows)].max()) if len(rows) else 0
    hi = int(market.n_bars)
    group_bounds(lo, hi, cv.groups)  # enough bars for the groups
    return lo, hi


def group_bounds(lo: int, hi: int, groups: int) -> np.ndarray:
    """``(groups, 2)`` ``[start, stop)`` of ``groups`` contiguous groups covering bars
    ``[lo, hi)``; sizes differ by at most one bar (the first groups get the extra bars)."""
    n = hi - lo
    if n < groups:
        raise QuantfleetError(f"cpcv: {n} bars cannot make {groups} groups; lower --groups or "
                              f"use more data")
    edges = lo + np.array([g * n // groups for g in range(groups + 1)], dtype=np.int64)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def cpcv_splits(lo: int, hi: int, cv: Cpcv) -> list[dict[str, Any]]:
    """The ``C(N, k)`` splits of bars ``[lo, hi)`` in lexicographic order of their test groups:
    ``{"test_groups": (g, ...), "test": bool mask, "train": bool mask}`` over the span's bars
    (index 0 = bar ``lo``). Training = not tested, minus the bar before each test group
    (purged) and the ``embargo`` bars after each test group."""
    bounds = group_bounds(lo, hi, cv.groups) - lo
    n = hi - lo
    out = []
    for tg in combinations(range(cv.groups), cv.test_groups):
        test = np.zeros(n, dtype=bool)
        for g in tg:
            test[bounds[g, 0]:bounds[g, 1]] = True
        drop = test.copy()
        for g in tg:
            a, b = int(bounds[g, 0]), int(bounds[g, 1])
            if a > 0:
                drop[a - 1] = True  # purged: its label is the test group's first bar
            drop[b:b + cv.embargo] = True  # embargo
        out.append({"test_groups": tg, "test": test, "train": ~drop})
    return out


def cpcv_paths(groups: int, test_groups: int) -> np.ndarray:
    """``(splits, groups)`` path index of each (split, tested group), -1 where the split does
    not test the group: the ``p``-th split (lexicographic order) testing group ``g`` feeds path
    ``p``. Every path gets every group exactly once."""
    splits = list(combinations(range(groups), test_groups))
    out = np.full((len(splits), groups), -1, dtype=np.int64)
    seen = np.zeros(groups, dtype=np.int64)
    for s, tg in enumerate(splits):
        for g in tg:
            out[s, g] = seen[g]
            seen[g] += 1
    return out


def booked_returns(positions: np.ndarray, earned: np.ndarray, starts: np.ndarray,
                   fee_rate: float) -> np.ndarray:
    """Per-bar returns of each combo (rows) with a book entering flat at every bar where
    ``starts`` is True and carrying the position elsewhere: bar ``t`` earns ``earned[t]`` on the
    position held (nothing when flat) and pays ``fee_rate·|Δposition|`` — what
    ``kernels.walk`` books over a segment beginning at each start."""
    prev = np.zeros_like(positions)
    prev[:, 1:] = positions[:, :-1]
    prev[:, starts] = 0.0
    pnl = np.where(prev != 0.0, earned, 0.0)
    return (1.0 + pnl) * (1.0 - fee_rate * np.abs(positions - prev)) - 1.0


def _runs(mask: np.ndarray) -> np.ndarray:
    """Bars where a run of True begins."""
    before = np.concatenate(([False], mask[:-1]))
    return mask & ~before


def cpcv_pair(positions: np.ndarray, earned: np.ndarray, cv: Cpcv, metric: str, fee_rate: float,
              ppy: float) -> dict[str, Any]:
    """CPCV of one pair from its combos' ``positions`` and zero-fee ``earned`` P&L over the
    span (combos × bars): per split the in-sample metrics, the selection, the out-of-sample
    metrics and the winner's logit; the φ paths' returns; PBO.

    Returns ``{"is": (splits, combos), "oos": (splits, combos), "chosen": (splits,),
    "logits": (splits,), "pbo", "path_returns": (paths, bars)}``.
    """
    from quantfleet.backtest.job import NO_COMBO, best_combo

    if metric not in RETURN_METRIC_NAMES:
        raise QuantfleetError(f"metric {metric!r} with cv = 'cpcv': CPCV selects on a metric "
                              f"of the returns ({', '.join(RETURN_METRIC_NAMES)}); pick one "
                              f"of them or use cv = 'walk'")
    k = RETURN_METRIC_NAMES.index(metric)
    n_c, n = positions.shape
    splits = cpcv_splits(0, n, cv)
    bounds = group_bounds(0, n, cv.groups)
    gstart = np.zeros(n, dtype=bool)
    gstart[bounds[:, 0]] = True
    # each bar's return with the position carried in, and entering flat there: a run of bars
    # booked on its own is the first at its first bar and the second elsewhere
    carried = booked_returns(positions, earned, np.zeros(n, dtype=bool), fee_rate)
    flat = booked_returns(positions, earned, np.ones(n, dtype=bool), fee_rate)
    # out of sample every group is booked on its own: the same returns in every split
    test_r = np.where(gstart, flat, carried)
    assign = cpcv_paths(cv.groups, cv.test_groups)
    n_s = len(splits)
    is_m = np.full((n_s, n_c), np.nan)
    oos_m = np.full((n_s, n_c), np.nan)
    chosen = np.full(n_s, NO_COMBO, dtype=np.int64)
    paths = np.zeros((cv.n_paths, n))
    sign = metric_sign(metric)
    logits = np.full(n_s, np.nan)
    # every combo's metric on every split's training bars (runs entering flat) and test bars,
    # in one compiled pass (kernels.cpcv)
    train = np.array([sp["train"] for sp in splits], dtype=bool).reshape(n_s, n)
    test = np.array([sp["test"] for sp in splits], dtype=bool).reshape(n_s, n)
    starts = np.array([_runs(sp["train"]) for sp in splits], dtype=bool).reshape(n_s, n)
    cpcv_metric_table(np.ascontiguousarray(carried), np.ascontiguousarray(flat),
                      np.ascontiguousarray(test_r), train, starts, test, k, float(ppy),
                      is_m, oos_m)
    for s, sp in enumerate(splits):
        b = best_combo(is_m[s], metric)
        chosen[s] = b
        for g in sp["test_groups"]:
            lo_g, hi_g = bounds[g]
            # no selection (no finite in-sample metric): the path is flat over the group
            paths[assign[s, g], lo_g:hi_g] = test_r[b, lo_g:hi_g] if b != NO_COMBO else 0.0
        if b != NO_COMBO:
            v = np.where(np.isfinite(oos_m[s]), sign * oos_m[s], -np.inf)
            x = v[b]
            omega = ((v < x).sum() + ((v == x).sum() + 1) / 2.0) / (n_c + 1.0)
            logits[s] = math.log(omega / (1.0 - omega))
    picked = chosen != NO_COMBO
    pbo = float(np.mean(logits[picked] <= 0.0)) if picked.any() else math.nan
    return {"is": is_m, "oos": oos_m, "chosen": chosen, "logits": logits, "pbo": pbo,
            "path_returns": paths}


def _path_rows(strategy: str, asset: str, path_returns: np.ndarray,
               ppy: float) -> list[dict[str, Any]]:
    i_sh, i_tr, i_dd = (RETURN_METRIC_NAMES.index(m) for m in
                        ("sharpe", "total_return", "max_drawdown"))
    rows = []
    for p in range(path_returns.shape[0]):
        m = metrics_from_returns(np.ascontiguousarray(path_returns[p]), ppy)
        rows.append({"strategy": strategy, "asset": asset, "path": p,
                     "sharpe": float(m[i_sh]), "total_return": float(m[i_tr]),
                     "max_drawdown": float(m[i_dd])})
    return rows


def _summary_row(strategy: str, asset: str, cv: Cpcv, pbo: float,
                 sharpes: np.ndarray) -> dict[str, Any]:
    f = sharpes[np.isfinite(sharpes)]

    def q(x: float) -> float:
        return float(np.quantile(f, x)) if f.size else math.nan

    return {"strategy": strategy, "asset": asset, "groups": cv.groups,
            "test_groups": cv.test_groups, "embargo": cv.embargo, "splits": cv.n_splits,
            "paths": cv.n_paths, "pbo": pbo,
            "sharpe_mean": float(f.mean()) if f.size else math.nan,
            "sharpe_std": float(f.std(ddof=1)) if f.size > 1 else math.nan,
            "sharpe_min": float(f.min()) if f.size else math.nan, "sharpe_q05": q(0.05),
            "sharpe_median": q(0.5), "sharpe_q95": q(0.95),
            "sharpe_max": float(f.max()) if f.size else math.nan,
            "share_negative": float(np.mean(f < 0.0)) if f.size else math.nan}


@dataclass(frozen=True)
class CpcvSummary:
    """A tournament pair's combine function under ``cv = "cpcv"``: ``walk`` (the walk-forward
    :func:`~quantfleet.research.tournament.pair_summary`, a module-level function), plus the
    pair's CPCV over the span ``[lo, hi)`` (``out["cpcv"]``: the summary row,
    ``out["cpcv_paths"]``: the path rows), computed in the worker so every executor returns
    the same bytes."""

    cv: Cpcv
    lo: int
    hi: int
    walk: Callable[[Any, Any, Any], dict[str, Any]]

    def __call__(self, market: Any, jobs: Any, results: Any) -> dict[str, Any]:
        out = self.walk(market, jobs, results)
        job = jobs[0]
        t = job.terms
        ppy = float(t.ppy if t.ppy is not None else market.periods_per_year)
        a = job.assets[0]
        warm = int(market.first_valid()[a])
        # every combo's positions and earned P&L (its per-bar return at zero fees) over the
        # asset's history up to the span's end, through the one backtest worker
        bare = BacktestJob(job.strategy, (a,), job.params, start=warm, stop=self.hi,
                           terms=Terms(fee_rate=0.0, ppy=ppy, long_short=bool(t.long_short)),
                           keep="returns")
        earned = evaluate(market, bare).series[0]
        pos = evaluate(market, dataclasses.replace(bare, keep="positions")).series[0]
        off = self.lo - warm
        res = cpcv_pair(np.ascontiguousarray(pos[:, off:]), np.ascontiguousarray(earned[:, off:]),
                        self.cv, job.walk.metric, float(t.fee_rate), ppy)
        asset = market.assets[a]
        rows = _path_rows(job.strategy, asset, res["path_returns"], ppy)
        out["cpcv"] = _summary_row(job.strategy, asset, self.cv, res["pbo"],
                                   np.array([r["sharpe"] for r in rows]))
        out["cpcv_paths"] = rows
        return out
