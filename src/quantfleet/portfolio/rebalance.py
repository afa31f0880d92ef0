"""Walk-forward rebalancing of several profiles at once, fanned out on an Executor.

Each (profile, batch of windows) is one task; each window's fit leaves a timing Span. The
driver resolves fallbacks in window order (so results do not depend on batching or the
backend), then computes the out-of-sample portfolio returns, turnover, costs and metrics.

With ``members=N`` the driver first chooses, for every window, the N columns with the best
Sharpe over that window's train rows (:func:`select_members`); each profile is then fitted on
those columns only and every other column gets weight 0. Nothing a window holds is chosen
with its own test rows or any later row.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantfleet.errors import ConfigError, DataError
from quantfleet.kernels.metrics import RETURN_METRIC_NAMES, metrics_from_returns
from quantfleet.observe.spans import Span, SpanRecorder, SpanTimer
from quantfleet.portfolio.profiles import Profile, fit_profile, inverse_volatility, parse_profiles
from quantfleet.portfolio.returns import ReturnsMatrix, returns_matrix

__all__ = [
    "MAX_BATCH",
    "Allocation",
    "RebalanceResult",
    "buy_and_hold",
    "fit_windows",
    "optimize",
    "portfolio_returns",
    "rebalance",
    "select_members",
    "train_sharpe",
    "walk_forward_windows",
]

MAX_BATCH = 16
"""Most windows per task (~0.5-1 s of the slower optimizers): keeps load balance and spans."""

_HOST = socket.gethostname()


@dataclass(frozen=True)
class _Job:
    """What every task shares: the returns, the profiles and the windows' train rows."""

    values: np.ndarray  # float64 (rows, assets)
    profiles: tuple[Profile, ...]
    train_rows: np.ndarray  # int64 (windows, 2): [start, stop) of each train window
    ppy: float
    stage: str = "portfolio"
    members: np.ndarray | None = None  # int64 (windows, N): columns fitted, -1 = none; None: all

    def columns(self, k: int) -> np.ndarray | None:
        """The columns window ``k`` is fitted on (None: every column)."""
        if self.members is None:
            return None
        m = self.members[k]
        return m[m >= 0]


def fit_windows(job: _Job, item: tuple[int, int, int]) -> list[tuple[Any, str, str, Span]]:
    """The task body: fit profile ``item[0]`` on windows ``item[1]:item[2]``.

    Returns one ``(weights or None, fallback, error, span)`` per window.
    """
    pi, lo, hi = item
    p = job.profiles[pi]
    import skfolio.optimization  # noqa: F401 - first import (~2 s) outside the timed fits

    out: list[tuple[Any, str, str, Span]] = []
    for k in range(lo, hi):
        a, b = job.train_rows[k]
        cols = job.columns(k)
        # a writable copy (Ray's are read-only), of the window's members only
        x = np.array(job.values[a:b] if cols is None else job.values[a:b][:, cols],
                     dtype=np.float64)
        timer = SpanTimer()
        if cols is not None and len(cols) == 0:
            w, fb, err = np.zeros(job.values.shape[1]), "no_members", \
                "no column has a finite train-window Sharpe: the window holds cash"
        else:
            w, fb, err = fit_profile(p, x, job.ppy)
            if w is not None and cols is not None:
                full = np.zeros(job.values.shape[1])
                full[cols] = w
                w = full
        span = timer.finish(stage=job.stage, component=f"portfolio.{p.name}/w:{k}",
                            worker=str(os.getpid()), node=_HOST, items=1,
                            ok=w is not None and fb == "", attempt=1)
        out.append((w, fb, err, span))
    return out


def walk_forward_windows(n_rows: int, train: int, test: int) -> np.ndarray:
    """Rolling windows as skfolio's ``WalkForward(train_size, test_size)`` cuts them.

    Returns int64 (windows, 4): train_start, train_stop, test_start, test_stop (row indices,
    stops exclusive). Window k trains on rows ``[k*test, k*test+train)`` and holds over the
    next ``test`` rows; trailing rows that do not fill a whole test window are not traded.
    """
    for name, v in (("train", train), ("test", test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"{name} must be a whole number of bars >= 1 (got {v!r}); "
                              f"e.g. train=252, test=10 for daily data")
    if train < 2:
        raise ConfigError(f"train must be >= 2 bars to estimate a covariance (got {train}); "
                          f"typical values 126-756 for daily data")
    n = (n_rows - train) // test
    if n < 1:
        raise DataError(f"{n_rows} rows of returns cannot hold one window of train={train} + "
                        f"test={test} bars; use shorter windows or more history")
    k = np.arange(n, dtype=np.int64) * test
    return np.stack([k, k + train, k + train, k + train + test], axis=1)


def train_sharpe(x: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe ratio of each column of ``x`` (rows, columns): mean / std (ddof=1);
    NaN where the std is zero or not finite (a flat or too short column)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 2:
        return np.full(x.shape[1], np.nan)
    mu = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1)
    ok = np.isfinite(sd) & (sd > 0) & np.isfinite(mu)
    return np.where(ok, mu / np.where(ok, sd, 1.0), np.nan)


def select_members(values: np.ndarray, train_rows: np.ndarray, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The members of every window: the ``n`` columns with the best Sharpe over the window's
    train rows only.

    Columns whose train-window Sharpe is not finite (flat, or a constant return) are never
    chosen; ties go to the lower column index. A window with fewer than ``n`` finite columns
    gets those it has (padded with -1).

    Parameters
    ----------
    values : float64 (rows, columns) simple returns
    train_rows : int (windows, 2) [start, stop) of each window's train rows
    n : members per window, >= 1

    Returns ``(members int64 (windows, n), sharpe float64 (windows, n))``: column indices best
    first (-1: none) and their per-bar train-window Sharpe (NaN where -1).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"members must be a whole number >= 1 of columns per window "
                          f"(got {n!r}); e.g. members=10")
    n_w = len(train_rows)
    members = np.full((n_w, int(n)), -1, dtype=np.int64)
    sharpe = np.full((n_w, int(n)), np.nan)
    for k in range(n_w):
        a, b = int(train_rows[k, 0]), int(train_rows[k, 1])
        s = train_sharpe(values[a:b])
        finite = np.flatnonzero(np.isfinite(s))
        order = finite[np.argsort(-s[finite], kind="stable")][: int(n)]
        members[k, : len(order)] = order
        sharpe[k, : len(order)] = s[order]
    return members, sharpe


def buy_and_hold(asset_returns: np.ndarray, fee_rate: float = 0.0) -> np.ndarray:
    """Per-bar returns of an equal-weight buy-and-hold of ``asset_returns``' columns (rows,
    assets): bought from cash at the first row (paying ``fee_rate`` on the purchase, as the
    portfolio pays on its first rebalance), never rebalanced, each holding drifting with its
    price. An empty column set gives NaN."""
    r = np.asarray(asset_returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] == 0:
        return np.full(r.shape[0] if r.ndim else 0, np.nan)
    w = np.full((1, r.shape[1]), 1.0 / r.shape[1])
    out, _, _ = portfolio_returns(r, w, np.array([[0, r.shape[0]]]), fee_rate, drift=True)
    return out


def _batch_size(n_windows: int, n_profiles: int, workers: int) -> int:
    per_profile = max(1, math.ceil(4 * workers / max(1, n_profiles)))
    return int(min(MAX_BATCH, max(1, math.ceil(n_windows / per_profile))))


def _run_fits(job: _Job, executor: Any, batch: int | None) -> tuple[list[list[tuple]], Any, str]:
    """Every (profile, window) fit on the executor; per profile, one record per window."""
    from quantfleet.compute import Failed, SerialExecutor

    own = executor is None
    ex = SerialExecutor() if own else executor
    n_w, n_p = len(job.train_rows), len(job.profiles)
    try:
        size = batch if batch is not None else _batch_size(n_w, n_p, ex.workers)
        if isinstance(size, bool) or int(size) < 1:
            raise ConfigError(f"batch must be >= 1 window per task (got {batch!r})")
        size = int(size)
        items = [(pi, lo, min(lo + size, n_w)) for lo in range(0, n_w, size)
                 for pi in range(n_p)]
        per: list[list[tuple]] = [[None] * n_w for _ in range(n_p)]  # type: ignore[list-item]
        labels = [f"portfolio.{job.profiles[pi].name}" for pi, _, _ in items]
        results = ex.map(fit_windows, items, job, stage=job.stage, component=labels,
                         chunk_size=1)
        for (pi, lo, hi), res in zip(items, results, strict=True):
            if isinstance(res, Failed):
                for k in range(lo, hi):
                    per[pi][k] = (None, "failed", f"task failed: {res.error_type}: "
                                  f"{res.message}"[:300], None)
            else:
                per[pi][lo:hi] = res
        return per, ex.summary, ex.name
    finally:
        if own:
            ex.close()


def _resolve(job: _Job, records: list[tuple]) -> tuple[np.ndarray, list[str], list[str]]:
    """Weights per window after the fallback chain's driver-side steps: previous window's
    weights (with members: only if that window had the same members), else inverse
    volatility of the train window (of the members)."""
    n_w = len(records)
    n_a = job.values.shape[1]
    W = np.empty((n_w, n_a))
    fbs: list[str] = []
    errs: list[str] = []
    prev: np.ndarray | None = None
    prev_cols: np.ndarray | None = None
    for k, (w, fb, err, _) in enumerate(records):
        cols = job.columns(k)
        if w is None:
            same = cols is None or (prev_cols is not None and np.array_equal(
                np.sort(cols), np.sort(prev_cols)))
            if prev is not None and same:
                w, fb = prev, "previous"
            else:
                a, b = job.train_rows[k]
                if cols is None:
                    w = inverse_volatility(job.values[a:b])
                else:
                    w = np.zeros(n_a)
                    w[cols] = inverse_volatility(job.values[a:b][:, cols])
                fb = "inverse_volatility"
        W[k] = w
        prev = W[k]
        prev_cols = cols
        fbs.append(fb)
        errs.append(err)
    return W, fbs, errs


def portfolio_returns(values: np.ndarray, weights: np.ndarray, test_rows: np.ndarray,
                      fee_rate: float = 0.0, drift: bool = True
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-sample returns of a walk-forward allocation.

    At the start of each test window the book trades to ``weights[k]`` (from cash before the
    first window). With ``drift=True`` the holdings then drift with prices until the next
    rebalance (buy and hold inside the window); with ``drift=False`` they are traded back to
    ``weights[k]`` at every bar (fixed weights, skfolio's convention). A trade of
    ``sum |w_target - w_held|`` costs ``fee_rate`` times that fraction of equity, booked in the
    return of the first bar held after it: ``r_p = (1 + w_held . r) * (1 - fee_rate * traded) - 1``.

    Parameters
    ----------
    values : float64 (rows, assets) simple returns
    weights : float64 (windows, assets) target weights, each summing to 1
    test_rows : int (windows, 2) [start, stop) rows each window holds
    fee_rate : fee per unit of traded weight (fee_bps / 1e4)
    drift : buy and hold inside the window (True) or fixed weights (False)

    Returns ``(returns (sum of test lengths,), turnover (windows,), costs (windows,))``;
    turnover and costs of a window include the trades back to target inside it when
    ``drift=False``.
    """
    n_w, n_a = weights.shape
    lengths = test_rows[:, 1] - test_rows[:, 0]
    out = np.empty(int(lengths.sum()))
    turnover = np.zeros(n_w)
    costs = np.zeros(n_w)
    held = np.zeros(n_a)  # cash before the first window
    pos = 0
    for k in range(n_w):
        target = weights[k]
        a, b = int(test_rows[k, 0]), int(test_rows[k, 1])
        for t in range(a, b):
            traded = 0.0
            if t == a or not drift:
                traded = float(np.abs(target - held).sum())
                held = target.copy()
            r = values[t]
            gross = float(held @ r)
            fee = fee_rate * traded
            out[pos] = (1.0 + gross) * (1.0 - fee) - 1.0
            turnover[k] += traded
            costs[k] += fee
            pos += 1
            growth = 1.0 + gross
            held = held * (1.0 + r) / growth if growth > 0.0 else np.zeros(n_a)
    return out, turnover, costs


@dataclass
class Allocation:
    """One fit of every profile on the whole returns matrix.

    weights : DataFrame (profile, asset); log : DataFrame (profile: fallback, error, fit_s)
    """

    weights: pd.DataFrame
    log: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)
    spans: SpanRecorder = field(default_factory=SpanRecorder)


def _prepare(returns: Any, profiles: Any, ppy: float | None,
             **settings: Any) -> tuple[ReturnsMatrix, list[Profile], float]:
    rm = returns_matrix(returns)
    profs = parse_profiles(profiles, **settings)
    ppy = float(ppy) if ppy is not None else rm.periods_per_year
    if not ppy > 0:
        raise ConfigError(f"ppy (periods per year) must be > 0 (got {ppy}); e.g. 252")
    return rm, profs, ppy


def optimize(returns: Any, profiles: Any, *, executor: Any = None, ppy: float | None = None,
             **settings: Any) -> Allocation:
    """Fit every profile once on all rows of ``returns``, one task per profile.

    Parameters
    ----------
    returns : ReturnsMatrix, MarketData, an oos_returns DataFrame or a path (see returns_matrix)
    profiles : "hrp,max_sharpe", a list of names / dicts / Profiles
    executor : a quantfleet Executor (default: serial in this process)
    ppy : periods per year (default: from the returns' timestamps)
    settings : Profile settings applied to profiles given by name
    """
    rm, profs, ppy = _prepare(returns, profiles, ppy, **settings)
    values = rm.values()
    job = _Job(values, tuple(profs), np.array([[0, len(values)]], dtype=np.int64), ppy)
    per, _, name = _run_fits(job, executor, 1)
    rows, log, spans = [], [], SpanRecorder()
    for p, recs in zip(profs, per, strict=True):
        W, fbs, errs = _resolve(job, recs)
        rows.append(W[0])
        span = recs[0][3]
        if span is not None:
            spans.add(span)
        log.append({"profile": p.name, "fallback": fbs[0], "error": errs[0],
                    "fit_s": span.duration if span is not None else math.nan})
    weights = pd.DataFrame(np.array(rows), index=pd.Index([p.name for p in profs], name="profile"),
                           columns=rm.columns)
    prov = {"returns": rm.provenance, "profiles": [p.to_dict() for p in profs], "ppy": ppy,
            "executor": name}
    return Allocation(weights, pd.DataFrame(log), prov, spans)


@dataclass
class RebalanceResult:
    """A walk-forward of several profiles.

    Attributes
    ----------
    profiles : the Profiles run
    windows : DataFrame, one row per window: train_start, train_end, test_start, test_end
        (timestamps, ends inclusive)
    weights : profile name -> DataFrame (test_start timestamp, asset) of the weights bought
    returns : DataFrame (timestamp, profile) of net out-of-sample portfolio returns
    log : DataFrame, one row per (profile, window): fallback, error, turnover, cost, fit_s,
        and ``members`` (the window's members, comma-separated, best first) when chosen
    metrics : DataFrame, one row per profile (total_return ... calmar, turnover, costs, ...,
        then ``bh_total_return, bh_sharpe, excess_total_return, excess_sharpe``: the
        buy-and-hold benchmark over the same bars, NaN when it has no prices)
    spans : one Span per (profile, window) fit, component ``portfolio.<profile>/w:<window>``
    provenance : returns provenance and every setting, JSON-ready; ``selection`` says how
        members were chosen, ``buy_and_hold`` what the benchmark holds
    members : DataFrame, one row per (window, rank) when members were chosen: window,
        test_start, rank (0 = best), column, train_sharpe (per bar); else None
    benchmark : Series (timestamp) of the buy-and-hold's per-bar returns, or None
    """

    profiles: list[Profile]
    windows: pd.DataFrame
    weights: dict[str, pd.DataFrame]
    returns: pd.DataFrame
    log: pd.DataFrame
    metrics: pd.DataFrame
    spans: SpanRecorder
    provenance: dict[str, Any]
    matrix: ReturnsMatrix | None = None
    wall_s: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    members: pd.DataFrame | None = None
    benchmark: pd.Series | None = None

    def timing(self) -> pd.DataFrame:
        """Per profile: windows fitted, total / mean / median / p95 fit time, CPU seconds."""
        rows = []
        by: dict[str, list[Span]] = {}
        for s in self.spans:
            by.setdefault(s.component.removeprefix("portfolio.").split("/")[0], []).append(s)
        for p in self.profiles:
            sp = by.get(p.name, [])
            d = np.array([s.duration for s in sp]) if sp else np.array([np.nan])
            rows.append({"profile": p.name, "windows": len(sp), "fit_s": float(np.nansum(d)),
                         "mean_ms": float(np.nanmean(d) * 1e3),
                         "median_ms": float(np.nanmedian(d) * 1e3),
                         "p95_ms": float(np.nanpercentile(d, 95) * 1e3),
                         "cpu_s": float(sum(s.cpu_s for s in sp))})
        return pd.DataFrame(rows)

    def weights_long(self) -> pd.DataFrame:
        """Every weight in one table: profile, test_start, then one column per asset."""
        parts = [w.reset_index().assign(profile=name) for name, w in self.weights.items()]
        df = pd.concat(parts, ignore_index=True)
        return df[["profile", *[c for c in df.columns if c != "profile"]]]

    def write(self, out_dir: str | Path) -> Path:
        """weights.parquet, returns.parquet, log.parquet, metrics.parquet, spans.parquet,
        windows.parquet, members.parquet (when chosen), returns_matrix.parquet (with
        provenance) and provenance.json (settings, metrics: a result export; the run itself is
        recorded in the store)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.weights_long().to_parquet(out / "weights.parquet", index=False)
        self.returns.to_parquet(out / "returns.parquet")
        self.log.to_parquet(out / "log.parquet", index=False)
        self.metrics.to_parquet(out / "metrics.parquet", index=False)
        self.windows.to_parquet(out / "windows.parquet", index=False)
        if self.members is not None:
            self.members.to_parquet(out / "members.parquet", index=False)
        import pyarrow.parquet as pq

        pq.write_table(self.spans.to_arrow(), out / "spans.parquet")
        if self.matrix is not None:
            self.matrix.to_parquet(out / "returns_matrix.parquet")
        run = {**self.provenance, "wall_s": self.wall_s, "summary": self.summary,
               "metrics": self.metrics.to_dict("records")}
        (out / "provenance.json").write_text(json.dumps(run, indent=1, default=_json_default))
        return out


def _json_default(o: Any) -> Any:
    if isinstance(o, float | np.floating) and not math.isfinite(o):
        return None
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def rebalance(returns: Any, profiles: Any, *, train: int = 252, test: int = 10,
              fee_bps: float = 0.0, drift: bool = True, executor: Any = None,
              ppy: float | None = None, batch: int | None = None, members: int | None = None,
              benchmark: Any = "auto", **settings: Any) -> RebalanceResult:
    """Walk-forward optimization of every profile: fit on ``train`` rows, hold ``test`` rows.

    Parameters
    ----------
    returns : ReturnsMatrix, MarketData, an oos_returns DataFrame or a path (see returns_matrix)
    profiles : "hrp,max_sharpe", a list of names / dicts / Profiles
    train, test : window lengths in rows of returns (bars)
    fee_bps : cost per unit of traded weight, in basis points, at every rebalance (drift
        included, see :func:`portfolio_returns`)
    drift : buy and hold inside each test window (default) or fixed weights each bar
    executor : a quantfleet Executor (default: serial in this process); every (profile,
        batch of windows) is one task
    ppy : periods per year (default: from the returns' timestamps)
    batch : windows per task (default: up to 16, at least ~4 tasks per worker)
    members : choose, for each window, this many columns by their Sharpe over the window's
        train rows only (:func:`select_members`) and fit every profile on them (other columns
        weight 0); None (default): every column is fitted
    benchmark : what the buy-and-hold beside each profile holds: "auto" (default) the matrix's
        own columns when they are assets, none for strategies; a DataFrame (timestamp, asset)
        of the underlying assets' close-to-close returns; None for no benchmark
    settings : Profile settings applied to profiles given by name (covariance, linkage,
        risk_free_rate, min_weights, max_weights, solver)
    """
    t0 = time.perf_counter()
    if not isinstance(fee_bps, (int, float)) or isinstance(fee_bps, bool) or not (
            math.isfinite(fee_bps) and fee_bps >= 0):
        raise ConfigError(f"fee_bps must be a finite number >= 0 (got {fee_bps!r}); e.g. 5")
    rm, profs, ppy = _prepare(returns, profiles, ppy, **settings)
    values = rm.values()
    rows = walk_forward_windows(len(values), train, test)
    train_rows = np.ascontiguousarray(rows[:, :2])
    chosen = chosen_sharpe = None
    if members is not None:
        chosen, chosen_sharpe = select_members(values, train_rows, members)
    job = _Job(values, tuple(profs), train_rows, ppy, members=chosen)
    per, summary, ex_name = _run_fits(job, executor, batch)

    ts = rm.returns.index
    test_start = pd.DatetimeIndex(ts[rows[:, 2]], name="test_start")
    windows = pd.DataFrame({"window": np.arange(len(rows)), "train_start": ts[rows[:, 0]],
                            "train_end": ts[rows[:, 1] - 1], "test_start": ts[rows[:, 2]],
                            "test_end": ts[rows[:, 3] - 1]})
    oos_index = pd.DatetimeIndex(ts[rows[0, 2]:rows[-1, 3]], name="timestamp")
    fee_rate = float(fee_bps) / 1e4
    cols = rm.columns
    member_names: list[str] | None = None
    members_df = None
    if chosen is not None:
        member_names = [",".join(cols[j] for j in m if j >= 0) for m in chosen]
        nz = chosen >= 0
        kk, rank = np.nonzero(nz)
        members_df = pd.DataFrame({"window": kk, "test_start": test_start[kk], "rank": rank,
                                   "column": [cols[j] for j in chosen[nz]],
                                   "train_sharpe": chosen_sharpe[nz]})
    bh_r, bh_prov = _benchmark(benchmark, rm, oos_index, fee_rate)
    bh_m = dict(zip(RETURN_METRIC_NAMES, metrics_from_returns(bh_r, ppy).tolist(), strict=True)) \
        if bh_r is not None else {"total_return": math.nan, "sharpe": math.nan}
    weights, rets, logs, mets = {}, {}, [], []
    spans = SpanRecorder()
    for p, recs in zip(profs, per, strict=True):
        W, fbs, errs = _resolve(job, recs)
        r, turn, cost = portfolio_returns(values, W, rows[:, 2:], fee_rate, drift)
        weights[p.name] = pd.DataFrame(W, index=test_start, columns=rm.columns)
        rets[p.name] = r
        fit_s = []
        for rec in recs:
            if rec[3] is not None:
                spans.add(rec[3])
            fit_s.append(rec[3].duration if rec[3] is not None else math.nan)
        log = pd.DataFrame({"profile": p.name, "window": np.arange(len(rows)),
                            "test_start": test_start, "fallback": fbs, "error": errs,
                            "turnover": turn, "cost": cost, "fit_s": fit_s})
        if member_names is not None:
            log.insert(3, "members", member_names)
        logs.append(log)
        m = dict(zip(RETURN_METRIC_NAMES, metrics_from_returns(r, ppy).tolist(), strict=True))
        years = len(r) / ppy
        mets.append({"profile": p.name, **m, "turnover": float(turn.sum()),
                     "turnover_per_year": float(turn.sum() / years) if years > 0 else math.nan,
                     "costs": float(cost.sum()), "windows": len(rows),
                     "fallbacks": int(sum(1 for f in fbs if f)),
                     "fit_s": float(np.nansum(fit_s)),
                     "bh_total_return": bh_m["total_return"], "bh_sharpe": bh_m["sharpe"],
                     "excess_total_return": m["total_return"] - bh_m["total_return"],
                     "excess_sharpe": m["sharpe"] - bh_m["sharpe"]})
    returns_df = pd.DataFrame(rets, index=oos_index)
    selection = None
    if members is not None:
        selection = {"members": int(members), "candidates": len(cols),
                     "metric": "sharpe over the window's train rows (mean/std, ddof=1)",
                     "text": f"the {int(members)} of {len(cols)} columns with the best "
                             f"Sharpe over each window's {train} train bars (columns flat over "
                             f"them never; ties to the first column)"}
    prov = {"returns": rm.provenance, "profiles": [p.to_dict() for p in profs], "train": train,
            "test": test, "fee_bps": float(fee_bps), "drift": drift, "ppy": ppy,
            "windows": len(rows), "executor": ex_name, "batch": batch,
            "selection": selection, "buy_and_hold": bh_prov}
    return RebalanceResult(
        profiles=profs, windows=windows, weights=weights, returns=returns_df,
        log=pd.concat(logs, ignore_index=True), metrics=pd.DataFrame(mets), spans=spans,
        provenance=prov, matrix=rm, wall_s=time.perf_counter() - t0,
        summary=summary.to_dict() if summary is not None else {}, members=members_df,
        benchmark=pd.Series(bh_r, index=oos_index, name="buy_and_hold")
        if bh_r is not None else None,
    )


def _benchmark(benchmark: Any, rm: ReturnsMatrix, oos_index: pd.DatetimeIndex,
               fee_rate: float) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The buy-and-hold's per-bar returns over ``oos_index`` and what it holds."""
    if isinstance(benchmark, str) and benchmark == "auto":
        if rm.provenance.get("kind") != "assets":
            return None, {"assets": [], "text": "n/a: strategy returns without the "
                          "underlying assets' prices (pass benchmark=asset returns)"}
        frame = rm.returns
    elif benchmark is None:
        return None, {"assets": [], "text": "n/a: no benchmark asked for"}
    elif isinstance(benchmark, pd.DataFrame):
        frame = benchmark
    else:
        raise ConfigError(f"benchmark must be 'auto', None or a DataFrame of asset returns "
                          f"(got {type(benchmark).__name__})")
    frame = frame.copy()
    frame.index = pd.DatetimeIndex(frame.index)
    missing = oos_index.difference(frame.index)
    if len(missing):
        raise DataError(f"benchmark: no asset returns at {missing[0]:%Y-%m-%d} "
                        f"({len(missing)} out-of-sample bar(s) missing); pass returns covering "
                        f"every bar of the returns matrix")
    r = frame.reindex(oos_index).to_numpy(dtype=np.float64)
    ok = np.isfinite(r).all(axis=0)
    names = [str(c) for c in frame.columns]
    held = [c for c, o in zip(names, ok, strict=True) if o]
    left = [c for c, o in zip(names, ok, strict=True) if not o]
    prov = {"assets": held, "excluded": left,
            "text": f"equal-weight buy-and-hold of {len(held)} asset(s) ({', '.join(held[:8])}"
                    f"{', ...' if len(held) > 8 else ''}), bought at the first out-of-sample "
                    f"bar (same fee), never rebalanced"
                    + (f"; {len(left)} left out for missing prices" if left else "")}
    if not held:
        return None, {**prov, "text": "n/a: no asset has prices over every out-of-sample bar"}
    return buy_and_hold(r[:, ok], fee_rate), prov
