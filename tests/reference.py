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


def execute_reference(o, h, lo, c, target, fee_rate, ppy, start=0, fill="close", stop_loss=None,
                      take_profit=None, trailing_stop=None, fraction=1.0, vol_target=None,
                      vol_window=20, vol_cap=1.0, borrow_rate=0.0) -> tuple[dict, np.ndarray,
                                                                            np.ndarray]:
    """Target positions executed as docs/conventions.md ("Execution options") says, one bar
    at a time with explicit fills, the slow way: returns (metrics, per-bar returns, positions
    held at each close) over bars [start, n).

    Each bar is a list of fills (position before, position after) at prices; the equity moves
    by each held position's price change between events and by ``1 - fee_rate * |fill|`` at
    each fill."""
    n = len(c)

    def sigma(t):
        if t - vol_window < 0:
            return np.nan
        rets = np.array([c[j] / c[j - 1] - 1.0 for j in range(t - vol_window + 1, t + 1)])
        return float(np.std(rets, ddof=1) * np.sqrt(ppy))

    def levels(side, entry, best):
        stops = []
        if stop_loss is not None:
            stops.append(entry * (1 - side * stop_loss))
        if trailing_stop is not None:
            stops.append(best * (1 - side * trailing_stop))
        stop = (max(stops) if side > 0 else min(stops)) if stops else None
        tgt = entry * (1 + side * take_profit) if take_profit is not None else None
        return stop, tgt

    def hit(t, side, entry, best, entry_fill_at_open=False):
        """Exit price of a position of sign side within bar t, or None (no gap at the open
        when that open is the entry fill itself)."""
        stop, tgt = levels(side, entry, best)
        beyond = (lambda px, lvl: px <= lvl) if side > 0 else (lambda px, lvl: px >= lvl)
        reach_t = (lambda px, lvl: px >= lvl) if side > 0 else (lambda px, lvl: px <= lvl)
        adverse, favour = (lo[t], h[t]) if side > 0 else (h[t], lo[t])
        if not entry_fill_at_open:
            if stop is not None and beyond(o[t], stop):
                return o[t]
            if tgt is not None and reach_t(o[t], tgt):
                return o[t]
        if stop is not None and beyond(adverse, stop):
            return stop
        if tgt is not None and reach_t(favour, tgt):
            return tgt
        return None

    has_stops = any(v is not None for v in (stop_loss, take_profit, trailing_stop))
    held = 0.0          # position held now
    size = 1.0
    entry = best = 0.0
    entry_bar = -1
    blocked = 0.0       # sign of a stopped trade while its signal stays on
    pending = 0.0
    eq = 1.0
    rets, poss, fills_all, acc_pnl, prevs = [], [], [], [], []
    # trades entered at an open and stopped in that same bar (flat at both closes): won?
    in_bar_trades = []

    def decide(t, now):
        """The position wanted after bar t's close, given the position ``now``."""
        nonlocal blocked, size
        x = target[t]
        if blocked and np.sign(x) == blocked:
            x = 0.0
        elif blocked:
            blocked = 0.0
        if x == 0:
            return 0.0, False
        if np.sign(x) == np.sign(now):
            return x * size, False
        s = fraction
        if vol_target is not None:
            sg = sigma(t)
            if not (sg > 0):
                return 0.0, False
            s = fraction * min(vol_cap, vol_target / sg)
        size = s
        return x * s, True

    for t in range(start, n):
        before = eq
        prev = held
        fills = []
        factor = 1.0
        if t > start:
            borrow = borrow_rate / ppy * max(-prev, 0.0)
            if fill == "close":
                px = None
                if prev != 0 and has_stops:
                    px = hit(t, np.sign(prev), entry, best)
                if px is not None:
                    factor *= 1 + prev * (px / c[t - 1] - 1) - borrow
                    factor *= 1 - fee_rate * abs(prev)
                    fills.append(abs(prev))
                    blocked = np.sign(prev)
                    held = 0.0
                else:
                    factor *= 1 + prev * (c[t] / c[t - 1] - 1) - borrow
                    if prev > 0:
                        best = max(best, h[t]) if has_stops else best
                    elif prev < 0:
                        best = min(best, lo[t]) if has_stops else best
            else:
                factor *= 1 + prev * (o[t] / c[t - 1] - 1) - borrow
                q = pending
                if q != prev:
                    factor *= 1 - fee_rate * abs(q - prev)
                    fills.append(abs(q - prev))
                if q != 0 and np.sign(q) != np.sign(prev):
                    # the whole bar follows the fill: its levels, from P = open and a
                    # trailing extreme P, are checked in this bar already
                    entry, entry_bar = o[t], t
                    best = o[t]
                    px = hit(t, np.sign(q), entry, best, entry_fill_at_open=True) \
                        if has_stops else None
                    if px is not None:
                        move = 1 + q * (px / o[t] - 1)
                        factor *= move
                        factor *= 1 - fee_rate * abs(q)
                        fills.append(abs(q))
                        blocked = np.sign(q)
                        held = 0.0
                        # its own share of the entry fee, its move, its exit fee
                        in_bar_trades.append((1 - fee_rate * abs(q)) * move
                                             * (1 - fee_rate * abs(q)) > 1)
                    else:
                        factor *= 1 + q * (c[t] / o[t] - 1)
                        held = q
                        best = max(o[t], h[t]) if q > 0 else min(o[t], lo[t])
                elif q != 0:
                    px = hit(t, np.sign(q), entry, best) if has_stops else None
                    if px is not None:
                        factor *= 1 + q * (px / o[t] - 1)
                        factor *= 1 - fee_rate * abs(q)
                        fills.append(abs(q))
                        blocked = np.sign(q)
                        held = 0.0
                    else:
                        factor *= 1 + q * (c[t] / o[t] - 1)
                        held = q
                        best = max(best, h[t]) if q > 0 else min(best, lo[t])
                else:
                    held = 0.0
        want, new = decide(t, held)
        if fill == "close":
            if want != held:
                factor *= 1 - fee_rate * abs(want - held)
                fills.append(abs(want - held))
            if new:
                entry = best = c[t]
                entry_bar = t
            held = want
        else:
            pending = want
        eq = before * factor
        rets.append(factor - 1.0)
        poss.append(held)
        fills_all.append(sum(fills))
        prevs.append(prev)
        d = abs(held - prev)
        # the bar as the one accumulator books it: P&L before one fill of |Δ|
        acc_pnl.append(factor / (1 - fee_rate * d) - 1.0)
    del entry_bar
    rb = np.array(rets)
    pos = np.array(poss)
    held_before = np.array(prevs)
    m = _metrics_of_bars(rb, pos, held_before, np.array(acc_pnl), np.array(fills_all),
                         fee_rate, ppy, in_bar_trades)
    return m, rb, pos


def _metrics_of_bars(rb, pos, held, acc_pnl, fills, fee_rate, ppy, in_bar_trades=()) -> dict:
    """Metrics from per-bar returns, end-of-bar positions and fills (the trade rule: a trade
    runs from the equity before its entry bar's fill to the equity after its exit's share of
    the fee, the bar's P&L before fees counted as ``acc_pnl``); ``in_bar_trades``: whether
    each trade opened and closed within one bar (invisible in the positions) was a win."""
    n = len(rb)
    equity = np.cumprod(1.0 + rb)
    before = np.concatenate([[1.0], equity[:-1]])
    marked = before * (1.0 + acc_pnl)
    final = equity[-1]
    m: dict = {"total_return": final - 1.0,
               "cagr": final ** (ppy / n) - 1.0 if final > 0 else -1.0}
    mean = float(np.mean(rb))
    sd = float(np.std(rb, ddof=1)) if n > 1 else np.nan
    m["sharpe"] = mean / sd * np.sqrt(ppy) if sd > 0 else np.nan
    down = float(np.sqrt(np.mean(np.minimum(rb, 0.0) ** 2)))
    m["sortino"] = mean / down * np.sqrt(ppy) if down > 0 else (np.inf if mean > 0 else np.nan)
    peak = np.maximum(1.0, np.maximum.accumulate(equity))
    m["max_drawdown"] = float(np.max(1.0 - equity / peak))
    m["calmar"] = m["cagr"] / m["max_drawdown"] if m["max_drawdown"] > 0 else np.nan
    sign = np.sign(pos)
    prev_sign = np.sign(held)
    entries = [t for t in range(n) if sign[t] != 0 and sign[t] != prev_sign[t]]
    wins = closed = 0
    for t_in in entries:
        if prev_sign[t_in] == 0:
            start_eq = marked[t_in]
        else:
            start_eq = marked[t_in] * (1.0 - fee_rate * abs(held[t_in]))
        t_out = next((t for t in range(t_in + 1, n) if sign[t] != sign[t_in]), None)
        if t_out is None:
            continue
        closed += 1
        wins += marked[t_out] * (1.0 - fee_rate * abs(held[t_out])) > start_eq
    wins += sum(bool(w) for w in in_bar_trades)
    closed += len(in_bar_trades)
    m["n_trades"] = float(len(entries) + len(in_bar_trades))
    m["win_rate"] = wins / closed if closed else np.nan
    m["exposure"] = float(np.mean(pos != 0))
    m["turnover"] = float(np.sum(fills))
    return m
