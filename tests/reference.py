"""Slow, obvious numpy references for the engine conventions (docs/conventions.md).

Every kernel and metric in quantfleet is checked against these in the tests.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = (
    "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
    "n_trades", "win_rate", "exposure", "turnover",
)


def sma(x: np.ndarray, w: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for t in range(w - 1, len(x)):
        out[t] = np.mean(x[t - w + 1: t + 1])
    return out


def ema(x: np.ndarray, w: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if w > len(x):
        return out
    a = 2.0 / (w + 1.0)
    out[w - 1] = np.mean(x[:w])
    for t in range(w, len(x)):
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def equity_returns(close: np.ndarray, pos: np.ndarray, fee_rate: float, start: int = 0) -> np.ndarray:
    """Per-bar strategy returns over bars [start, n): position pos[t-1] earns close[t]/close[t-1]-1,
    then the fill to pos[t] costs fee_rate * |pos[t] - pos[t-1]|; flat before start."""
    c = close[start:]
    p = pos[start:]
    prev = np.concatenate([[0.0], p[:-1]])
    r = np.concatenate([[0.0], c[1:] / c[:-1] - 1.0])
    return (1.0 + prev * r) * (1.0 - fee_rate * np.abs(p - prev)) - 1.0




def metrics(close: np.ndarray, pos: np.ndarray, fee_rate: float, ppy: float, start: int = 0) -> dict:
    """Every metric of a position series, computed the slow way."""
    rb = equity_returns(close, pos, fee_rate, start)
    p = pos[start:]
    n = len(rb)
    eq = np.cumprod(1.0 + rb)
    peak = np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:]
    maxdd = float(np.max(1.0 - eq / peak)) if n else 0.0
    total = float(eq[-1] - 1.0)
    cagr = float(eq[-1] ** (ppy / n) - 1.0) if eq[-1] > 0 else -1.0
    sd = np.std(rb, ddof=1)
    sharpe = float(np.mean(rb) / sd * np.sqrt(ppy)) if sd > 0 else np.nan
    dsd = np.sqrt(np.mean(np.minimum(rb, 0.0) ** 2))
    if dsd > 0:
        sortino = float(np.mean(rb) / dsd * np.sqrt(ppy))
    else:
        sortino = np.inf if np.mean(rb) > 0 else np.nan
    # trades: entries are moves from flat to a position or sign flips; a trade's return runs
    # from the equity before its entry fill to the equity after its exit's share of the fee
    prev = np.concatenate([[0.0], p[:-1]])
    r = np.concatenate([[0.0], close[start:][1:] / close[start:][:-1] - 1.0])
    entries = 0
    wins = 0
    closed = 0
    e = 1.0
    entry_eq = 1.0
    for t in range(n):
        e = e * (1.0 + prev[t] * r[t])
        d = abs(p[t] - prev[t])
        if d:
            flip = p[t] * prev[t] < 0
            if prev[t] != 0 and (p[t] == 0 or flip):
                after = e * (1.0 - fee_rate * abs(prev[t]))
                closed += 1
                wins += after > entry_eq
                if flip:
                    entry_eq = after
            elif p[t] != 0 and prev[t] == 0:
                entry_eq = e
            if p[t] != 0 and (prev[t] == 0 or flip):
                entries += 1
            e = e * (1.0 - fee_rate * d)
    return {
        "total_return": total,
        "cagr": cagr,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": maxdd,
        "calmar": cagr / maxdd if maxdd > 0 else np.nan,
        "n_trades": float(entries),
        "win_rate": wins / closed if closed else np.nan,
        "exposure": float(np.mean(p != 0)),
        "turnover": float(np.sum(np.abs(p - prev))),
    }


def assert_metrics_close(got_row, want: dict, rtol: float = 1e-9, atol: float = 1e-10) -> None:
    for i, name in enumerate(METRIC_NAMES):
        g, w = float(got_row[i]), float(want[name])
        if np.isnan(w):
            assert np.isnan(g), f"{name}: got {g}, want nan"
        else:
            assert np.isclose(g, w, rtol=rtol, atol=atol), f"{name}: got {g}, want {w}"


def random_close(rng: np.random.Generator, n: int, vol: float = 0.02) -> np.ndarray:
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


def random_market(seed: int, n: int, assets: tuple[str, ...], vol: float = 0.02,
                  start: str = "2010-01-01"):
    """A close-only ``MarketData`` of independent random walks, daily from ``start``."""
    from quantfleet.data.market import MarketData

    rng = np.random.default_rng(seed)
    close = np.stack([random_close(rng, n, vol) for _ in assets])
    ts = (np.datetime64(start) + np.arange(n)).astype("datetime64[ns]")
    return MarketData(ts, tuple(assets), close, source="test")


def ar1_universe(seed: int, phi: float, n_assets: int, n: int, start: str = "2010-01-01"):
    """Log returns r_t = phi * r_{t-1} + e_t, e ~ N(0, 0.01²), one row per asset: phi = 0 is a
    pure random walk (no edge), phi > 0 a trend a moving-average rule can exploit."""
    from quantfleet.data.market import MarketData

    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, 0.01, (n_assets, n))
    r = np.empty_like(e)
    r[:, 0] = e[:, 0]
    for t in range(1, n):
        r[:, t] = phi * r[:, t - 1] + e[:, t]
    ts = (np.datetime64(start) + np.arange(n)).astype("datetime64[ns]")
    return MarketData(ts, tuple(f"A{i}" for i in range(n_assets)),
                      100.0 * np.exp(np.cumsum(r, axis=1)), source="ar1")


def returns_requests(monkeypatch) -> list[int]:
    """Record how many combos each ``Strategy.run_asset(..., returns=True)`` call asks for
    (the list fills as the code under test runs)."""
    from quantfleet.strategies.base import Strategy

    asked: list[int] = []
    real = Strategy.run_asset

    def spy(self, market, asset, params, **kw):
        if kw.get("returns"):
            asked.append(params.shape[0])
        return real(self, market, asset, params, **kw)

    monkeypatch.setattr(Strategy, "run_asset", spy)
    return asked


def random_ohlcv(rng: np.random.Generator, n: int) -> dict:
    close = random_close(rng, n)
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
    volume = rng.uniform(1e5, 1e6, n)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def book_metrics(pos: np.ndarray, r: np.ndarray | None, fee_rate: float, ppy: float,
                 earned: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Every metric of target positions ``pos`` over bars with returns ``r`` (the book is flat
    before bar 0), written from docs/conventions.md one definition at a time: equity bar by bar,
    then each metric from the whole series; trades found as segments of the position path.

    ``earned`` (instead of ``r``): what the position held over each bar earned, as a fraction
    of equity (``held * r``, funding included); bar 0 earns nothing, the book being flat before
    it, whatever ``earned[0]`` says.

    Returns ``(metrics, per-bar strategy returns)``.
    """
    pos = np.asarray(pos, float)
    n = len(pos)
    held = np.concatenate([[0.0], pos[:-1]])  # position held over each bar
    if earned is None:
        pnl = held * np.asarray(r, float)
    else:
        pnl = np.concatenate([[0.0], np.asarray(earned, float)[1:]])
    rb = (1.0 + pnl) * (1.0 - fee_rate * np.abs(pos - held)) - 1.0
    marked = np.empty(n)  # equity after the bar's move, before the close's fill
    equity = np.empty(n)  # equity after the fill
    e = 1.0
    for t in range(n):
        marked[t] = e * (1.0 + pnl[t])
        e = equity[t] = marked[t] * (1.0 - fee_rate * abs(pos[t] - held[t]))
    final = equity[-1] if n else 1.0
    m: dict = {"total_return": final - 1.0}
    if n == 0:
        m["cagr"] = np.nan
    else:
        m["cagr"] = final ** (ppy / n) - 1.0 if final > 0 else -1.0
    mean = float(np.mean(rb)) if n else np.nan
    sd = float(np.std(rb, ddof=1)) if n > 1 else np.nan
    m["sharpe"] = mean / sd * np.sqrt(ppy) if sd > 0 else np.nan
    down = float(np.sqrt(np.mean(np.minimum(rb, 0.0) ** 2))) if n else np.nan
    if down > 0:
        m["sortino"] = mean / down * np.sqrt(ppy)
    else:
        m["sortino"] = np.inf if n and mean > 0 else np.nan
    peak = np.maximum(1.0, np.maximum.accumulate(equity)) if n else np.ones(0)
    m["max_drawdown"] = float(np.max(1.0 - equity / peak)) if n else 0.0
    m["calmar"] = m["cagr"] / m["max_drawdown"] if m["max_drawdown"] > 0 else np.nan
    # a trade is a run of bars whose position keeps one sign; it is entered at the fill that
    # opens it and exited at the fill that flattens or flips it (none if still open at the end)
    sign = np.sign(pos)
    prev_sign = np.concatenate([[0.0], sign[:-1]])
    entries = [t for t in range(n) if sign[t] != 0 and sign[t] != prev_sign[t]]
    wins = closed = 0
    for t_in in entries:
        if prev_sign[t_in] == 0:
            start_eq = marked[t_in]  # from flat: equity just before the entry fill
        else:  # a flip: the old trade's exit share of the fee is paid first
            start_eq = marked[t_in] * (1.0 - fee_rate * abs(held[t_in]))
        t_out = next((t for t in range(t_in + 1, n) if sign[t] != sign[t_in]), None)
        if t_out is None:
            continue
        closed += 1
        wins += marked[t_out] * (1.0 - fee_rate * abs(held[t_out])) > start_eq
    m["n_trades"] = float(len(entries))
    m["win_rate"] = wins / closed if closed else np.nan
    m["exposure"] = float(np.mean(pos != 0)) if n else np.nan
    m["turnover"] = float(np.sum(np.abs(pos - held)))
    return m, rb
