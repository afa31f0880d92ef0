"""Prototype variants of the sma_cross inner loop, measured against the shipped kernel.

Nothing here is used by quantfleet: these are experiments for the kernel owner. Every variant
must reproduce the shipped kernel's metrics (checked in ``measure``) before its time counts.
The shipped kernel has since taken two of them: the flat-bar skip (in ``acc_step``, under the
shared per-bar tail ``kernels.metrics.tail_step``) and the prefix sum of ``prefix``.

- ``shipped``    quantfleet.strategies.trend.sma_cross_kernel as it is
- ``copy``       the same loop compiled here (a control: same code, this module's compile)
- ``branchless`` peak = max(peak, eq); down2 += min(rb, 0)^2; exposure += |pos| (no
                 data-dependent branches on the every-bar path; trade bookkeeping stays
                 under ``d != 0``, which is rare and well predicted)
- ``flatskip``   branchless + a fast path for bars flat before and after (nothing changes
                 but the bar count, which is known): long-only SMA crosses are flat ~1/3
                 of the time
- ``x2``/``x4``  flatskip with 2 / 4 combos advanced in the same bar loop (more independent
                 dependency chains in flight)
- ``prefix``     flatskip with both SMAs read from one prefix sum of close (no SMA table:
                 O(bars) memory instead of O(windows x bars))
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from numba import njit

from quantfleet.kernels.indicators import sma_table, unique_windows
from quantfleet.kernels.metrics import N_METRICS, acc_finish, acc_init, acc_step, bar_returns
from quantfleet.strategies.trend import sma_cross_kernel


@njit(cache=True, inline="always")
def _step_bl(st, prev, pos, r, fee_rate):
    eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn = st
    growth = 1.0 + prev * r
    eq = eq * growth
    d = abs(pos - prev)
    if d != 0.0:
        flip = pos * prev < 0.0
        if prev != 0.0 and (pos == 0.0 or flip):
            after_exit = eq * (1.0 - fee_rate * abs(prev))
            closed += 1.0
            if after_exit > entry_eq:
                wins += 1.0
            if flip:
                entry_eq = after_exit
        elif pos != 0.0 and prev == 0.0:
            entry_eq = eq
        if pos != 0.0 and (prev == 0.0 or flip):
            entries += 1.0
        cost = 1.0 - fee_rate * d
        eq = eq * cost
        growth = growth * cost
        turn += d
    rb = growth - 1.0
    n += 1.0
    s1 += rb
    s2 += rb * rb
    neg = min(rb, 0.0)
    down2 += neg * neg
    peak = max(peak, eq)
    if eq < peak * (1.0 - maxdd):
        maxdd = 1.0 - eq / peak
    exposed += abs(pos) if pos != 0.0 else 0.0
    return (eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn)


@njit(cache=True, inline="always")
def _with_n(st, n):
    return (st[0], st[1], st[2], n, st[4], st[5], st[6], st[7], st[8], st[9], st[10],
            st[11], st[12])


@njit(cache=True)
def _prep(close, params):
    both = np.concatenate((params[:, 0], params[:, 1]))
    uniq, idx = unique_windows(both)
    return bar_returns(close), sma_table(close, uniq), idx


@njit(cache=True)
def k_copy(close, params, fee_rate, ppy, out):
    r, table, idx = _prep(close, params)
    n = close.shape[0]
    m = params.shape[0]
    for c in range(m):
        f = table[idx[c]]
        s = table[idx[m + c]]
        warm = int(max(params[c, 0], params[c, 1])) - 1
        st = acc_init()
        prev = 0.0
        for t in range(n):
            pos = 0.0
            if t >= warm:
                pos = 1.0 if f[t] > s[t] else 0.0
            st = acc_step(st, prev, pos, r[t], fee_rate)
            prev = pos
        acc_finish(st, ppy, out[c])


@njit(cache=True)
def k_branchless(close, params, fee_rate, ppy, out):
    r, table, idx = _prep(close, params)
    n = close.shape[0]
    m = params.shape[0]
    for c in range(m):
        f = table[idx[c]]
        s = table[idx[m + c]]
        warm = int(max(params[c, 0], params[c, 1])) - 1
        st = acc_init()
        prev = 0.0
        for t in range(warm):  # before warm-up: flat, only the bar count moves
            st = _step_bl(st, 0.0, 0.0, r[t], fee_rate)
        for t in range(max(warm, 0), n):
            pos = 1.0 if f[t] > s[t] else 0.0
            st = _step_bl(st, prev, pos, r[t], fee_rate)
            prev = pos
        acc_finish(st, ppy, out[c])


@njit(cache=True)
def k_flatskip(close, params, fee_rate, ppy, out):
    r, table, idx = _prep(close, params)
    n = close.shape[0]
    m = params.shape[0]
    for c in range(m):
        f = table[idx[c]]
        s = table[idx[m + c]]
        warm = max(int(max(params[c, 0], params[c, 1])) - 1, 0)
        st = acc_init()
        prev = 0.0
        for t in range(warm, n):
            pos = 1.0 if f[t] > s[t] else 0.0
            if pos != 0.0 or prev != 0.0:
                st = _step_bl(st, prev, pos, r[t], fee_rate)
            prev = pos
        acc_finish(_with_n(st, float(n)), ppy, out[c])


@njit(cache=True)
def k_x2(close, params, fee_rate, ppy, out):
    r, table, idx = _prep(close, params)
    n = close.shape[0]
    m = params.shape[0]
    c = 0
    while c + 1 < m:
        fa = table[idx[c]]
        sa = table[idx[m + c]]
        fb = table[idx[c + 1]]
        sb = table[idx[m + c + 1]]
        wa = max(int(max(params[c, 0], params[c, 1])) - 1, 0)
        wb = max(int(max(params[c + 1, 0], params[c + 1, 1])) - 1, 0)
        a = acc_init()
        b = acc_init()
        pa = 0.0
        pb = 0.0
        for t in range(min(wa, wb), n):
            rt = r[t]
            qa = 1.0 if fa[t] > sa[t] else 0.0  # NaN before warm-up compares False: flat
            qb = 1.0 if fb[t] > sb[t] else 0.0
            if qa != 0.0 or pa != 0.0:
                a = _step_bl(a, pa, qa, rt, fee_rate)
            if qb != 0.0 or pb != 0.0:
                b = _step_bl(b, pb, qb, rt, fee_rate)
            pa = qa
            pb = qb
        acc_finish(_with_n(a, float(n)), ppy, out[c])
        acc_finish(_with_n(b, float(n)), ppy, out[c + 1])
        c += 2
    if c < m:
        k_flatskip(close, params[c:], fee_rate, ppy, out[c:])


@njit(cache=True)
def k_x4(close, params, fee_rate, ppy, out):
    r, table, idx = _prep(close, params)
    n = close.shape[0]
    m = params.shape[0]
    c = 0
    while c + 3 < m:
        f0 = table[idx[c]]
        s0 = table[idx[m + c]]
        f1 = table[idx[c + 1]]
        s1 = table[idx[m + c + 1]]
        f2 = table[idx[c + 2]]
        s2 = table[idx[m + c + 2]]
        f3 = table[idx[c + 3]]
        s3 = table[idx[m + c + 3]]
        w = n
        for j in range(4):
            w = min(w, max(int(max(params[c + j, 0], params[c + j, 1])) - 1, 0))
        a0 = acc_init()
        a1 = acc_init()
        a2 = acc_init()
        a3 = acc_init()
        p0 = 0.0
        p1 = 0.0
        p2 = 0.0
        p3 = 0.0
        for t in range(w, n):
            rt = r[t]
            q0 = 1.0 if f0[t] > s0[t] else 0.0
            q1 = 1.0 if f1[t] > s1[t] else 0.0
            q2 = 1.0 if f2[t] > s2[t] else 0.0
            q3 = 1.0 if f3[t] > s3[t] else 0.0
            if q0 != 0.0 or p0 != 0.0:
                a0 = _step_bl(a0, p0, q0, rt, fee_rate)
            if q1 != 0.0 or p1 != 0.0:
                a1 = _step_bl(a1, p1, q1, rt, fee_rate)
            if q2 != 0.0 or p2 != 0.0:
                a2 = _step_bl(a2, p2, q2, rt, fee_rate)
            if q3 != 0.0 or p3 != 0.0:
                a3 = _step_bl(a3, p3, q3, rt, fee_rate)
            p0 = q0
            p1 = q1
            p2 = q2
            p3 = q3
        acc_finish(_with_n(a0, float(n)), ppy, out[c])
        acc_finish(_with_n(a1, float(n)), ppy, out[c + 1])
        acc_finish(_with_n(a2, float(n)), ppy, out[c + 2])
        acc_finish(_with_n(a3, float(n)), ppy, out[c + 3])
        c += 4
    if c < m:
        k_flatskip(close, params[c:], fee_rate, ppy, out[c:])


@njit(cache=True)
def k_prefix(close, params, fee_rate, ppy, out):
    """flatskip without the SMA table: both SMAs come from one prefix sum of close, compared
    without division (sum_f * slow > sum_s * fast), so memory is O(bars), not O(windows x bars).
    Rounding differs from the running-sum SMA, so near-ties can flip (see max rel diff)."""
    n = close.shape[0]
    r = bar_returns(close)
    cs = np.empty(n + 1)
    cs[0] = 0.0
    for t in range(n):
        cs[t + 1] = cs[t] + close[t]
    for c in range(params.shape[0]):
        fw = int(params[c, 0])
        sw = int(params[c, 1])
        ff = float(fw)
        sf = float(sw)
        warm = max(fw, sw) - 1
        st = acc_init()
        prev = 0.0
        for t in range(max(warm, 0), n):
            pos = 1.0 if (cs[t + 1] - cs[t + 1 - fw]) * sf > (cs[t + 1] - cs[t + 1 - sw]) * ff else 0.0
            if pos != 0.0 or prev != 0.0:
                st = _step_bl(st, prev, pos, r[t], fee_rate)
            prev = pos
        acc_finish(_with_n(st, float(n)), ppy, out[c])


_EMPTY = np.empty(0)


def _shipped(close, params, fee_rate, ppy, out):
    sma_cross_kernel(_EMPTY, _EMPTY, _EMPTY, close, _EMPTY, np.empty((0, close.shape[0])),
                     params, fee_rate, ppy, False, 0, out, None)


VARIANTS = {"shipped": _shipped, "copy": k_copy, "branchless": k_branchless,
            "flatskip": k_flatskip, "x2": k_x2, "x4": k_x4, "prefix": k_prefix}


def _same(a: np.ndarray, b: np.ndarray) -> float:
    """Largest relative difference over every metric (NaN == NaN)."""
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.where(both_nan, 0.0, np.abs(a - b) / np.maximum(1.0, np.abs(b)))
    return float(np.nanmax(np.where(np.isnan(d), np.inf, d)))


def measure(closes, names, combos, fee: float = 0.001, reps: int = 5) -> dict:
    """CPU-time medians of each variant on each close series, and agreement with shipped."""
    ppy = 252.0
    out = {}
    for close, name in zip(closes, names, strict=True):
        close = np.ascontiguousarray(close)
        ref = np.empty((combos.shape[0], N_METRICS))
        _shipped(close, combos, fee, ppy, ref)
        res = {}
        for v, fn in VARIANTS.items():
            o = np.empty_like(ref)
            fn(close, combos, fee, ppy, o)  # compile / load from cache
            times = []
            for _ in range(reps):
                t = time.process_time()
                fn(close, combos, fee, ppy, o)
                times.append(time.process_time() - t)
            res[v] = {"cpu_s": statistics.median(times), "max_rel_diff": _same(o, ref),
                      "ns_per_bar_combo": statistics.median(times) / (close.size * combos.shape[0]) * 1e9}
        base = res["shipped"]["cpu_s"]
        for v in res:
            res[v]["speedup"] = base / res[v]["cpu_s"]
        out[name] = res
    return out


if __name__ == "__main__":
    import sys

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import series

    combos = series.sma_grid()
    closes = [series.sp500().market.close[0], series.gbm().market.close[0]]
    res = measure(closes, ["sp500", "gbm100k"], combos, reps=5)
    for ds, r in res.items():
        for v, x in r.items():
            print(f"{ds:8s} {v:11s} {x['cpu_s']:.4f}s {x['ns_per_bar_combo']:.2f} ns/bar-combo "
                  f"x{x['speedup']:.2f} diff {x['max_rel_diff']:.1e}")
