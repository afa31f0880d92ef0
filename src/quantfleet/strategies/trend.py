"""Trend-following seeds: moving-average crossovers and a trend filter."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from quantfleet.kernels.fastpath import (
    FP_CHUNK,
    fp_book_words,
    fp_chunk,
    fp_prepare,
    fp_state,
)
from quantfleet.kernels.indicators import ema, unique_windows
from quantfleet.kernels.metrics import bar_returns, tail_finish, tail_flat, tail_init, tail_step
from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.space import Constraint, Int, ParamSpace

__all__ = [
    "EMA_CROSS",
    "SMA_CROSS",
    "SMA_TREND",
    "ema_cross_fast",
    "ema_cross_kernel",
    "sma_cross_fast",
    "sma_cross_kernel",
    "sma_trend_fast",
    "sma_trend_kernel",
]


@njit(cache=True)
def sma_cross_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                     long_short, start, out, returns_out):
    """Long 1 while SMA_fast > SMA_slow, else 0 (-1 in long/short mode). params: fast, slow.

    Both SMAs come from one prefix sum of close shared by every combo (O(bars) memory however
    many distinct windows the batch has): SMA_w[t] = (cs[t+1] - cs[t+1-w]) / w.
    """
    n = close.shape[0]
    r = bar_returns(close)
    cs = np.empty(n + 1)
    cs[0] = 0.0
    for t in range(n):
        cs[t + 1] = cs[t] + close[t]
    low_pos = -1.0 if long_short else 0.0
    for c in range(params.shape[0]):
        fw = int(params[c, 0])
        sw = int(params[c, 1])
        ff = float(fw)
        sf = float(sw)
        t0 = max(start, max(fw, sw) - 1)
        tail = tail_flat(tail_init(), float(min(t0, n) - start))
        for t in range(t0, n):
            # SMA_f > SMA_s  <=>  sum_f * sw > sum_s * fw  (no division in the hot loop)
            hi = cs[t + 1]
            pos = 1.0 if (hi - cs[t + 1 - fw]) * sf > (hi - cs[t + 1 - sw]) * ff else low_pos
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


def _rule_word(rule, uses):
    """An intrinsic ``word(a, b, c, base, p, q)``: a uint64 whose bit ``i`` (``i < 64``) is
    ``rule`` on element ``base + i`` of the float64 arrays ``a``, ``b``, ``c`` (contiguous, at
    least ``base + 64`` long; ``uses`` names the ones the rule reads) and the scalars ``p``,
    ``q``. The rule is built in LLVM IR on 8 lanes at a time (a compare's 8 result bits are a
    byte), with no fast-math flag: each lane's operations and rounding are the scalar
    expression's, so every bit is the scalar rule's."""
    @intrinsic
    def word(typingctx, a, b, c, base, p, q):
        sig = types.uint64(a, b, c, types.intp, types.float64, types.float64)

        def codegen(context, builder, signature, args):
            f64 = ir.DoubleType()
            vec = ir.VectorType(f64, 8)
            i64 = ir.IntType(64)
            ptrs = [context.make_array(t)(context, builder, v).data
                    for t, v in zip(signature.args[:3], args[:3], strict=True)]
            lanes = ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8)

            def splat(x):
                v = builder.insert_element(ir.Constant(vec, ir.Undefined), x,
                                           ir.Constant(ir.IntType(32), 0))
                return builder.shuffle_vector(v, ir.Constant(vec, ir.Undefined), lanes)

            pv, qv = splat(args[4]), splat(args[5])
            acc = ir.Constant(i64, 0)
            for j in range(8):
                off = builder.add(args[3], ir.Constant(args[3].type, 8 * j))
                vals = [builder.load(builder.bitcast(builder.gep(ptr, [off]), vec.as_pointer()),
                                     align=8) if use else None
                        for ptr, use in zip(ptrs, uses, strict=True)]
                bits = builder.zext(builder.bitcast(rule(builder, *vals, pv, qv),
                                                    ir.IntType(8)), i64)
                acc = builder.or_(acc, builder.shl(bits, ir.Constant(i64, 8 * j)))
            return acc

        return sig, codegen

    return word


_trend_word = _rule_word(
    lambda bd, x, h, lo, w, _: bd.fcmp_ordered(">", bd.fmul(x, w), bd.fsub(h, lo)),
    (True, True, True))
"""``close * w > (cs[t + 1] - cs[t + 1 - w])``: :func:`sma_trend_kernel`'s rule."""

_cross_word = _rule_word(
    lambda bd, h, f, sl, sf, ff: bd.fcmp_ordered(">", bd.fmul(bd.fsub(h, f), sf),
                                                 bd.fmul(bd.fsub(h, sl), ff)),
    (True, True, True))
"""``(hs - fs) * sw > (hs - ss) * fw``: :func:`sma_cross_kernel`'s rule."""

_ema_word = _rule_word(lambda bd, f, sl, _c, _p, _q: bd.fcmp_ordered(">", f, sl),
                       (True, True, False))
"""``ema_fast > ema_slow``: :func:`ema_cross_kernel`'s rule."""


@njit(cache=True)
def _sma_cross_words(cs, fw, sw, t0, c1, words):
    """:func:`sma_cross_kernel`'s rule over bars ``[t0, c1)`` (windows ``fw``, ``sw``; ``t0``
    >= ``max(fw, sw) - 1``), 64 bars to a word's bits (word ``wi``, bit ``i``: bar
    ``t0 + 64 wi + i``), the same expression; returns the number of bars. ``cs``: the prefix
    sums of close (``cs[0] = 0``, ``cs[t + 1] = cs[t] + close[t]``); ``words`` holds
    ``(c1 - t0) / 64`` rounded up."""
    ff = float(fw)
    sf = float(sw)
    mm = max(c1 - t0, 0)  # (an early return here costs the rule loop its vectorisation)
    # slices let LLVM vectorize the rule
    hs = cs[t0 + 1:c1 + 1]
    fs = cs[t0 + 1 - fw:c1 + 1 - fw]
    ss = cs[t0 + 1 - sw:c1 + 1 - sw]
    full = mm >> 6
    nw = (mm + 63) >> 6
    for wi in range(full):
        words[wi] = _cross_word(hs, fs, ss, wi << 6, sf, ff)
    if full < nw:
        base = full << 6
        x = _U0
        for i in range(mm - base):
            x |= np.uint64((hs[base + i] - fs[base + i]) * sf
                           > (hs[base + i] - ss[base + i]) * ff) << np.uint64(i)
        words[full] = x
    return mm


@njit(cache=True)
def sma_cross_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                   start, out, bsum, bsq, blk):
    """The fast path of :func:`sma_cross_kernel` (``Strategy.fast``; kernels/fastpath.py): the
    same rule, same expressions, packed 64 bars to a word (:func:`_sma_cross_words`) and
    booked change by change from the words by ``fp_book_words``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    cs = np.empty(n + 1)
    cs[0] = 0.0
    for t in range(n):
        cs[t + 1] = cs[t] + close[t]
    low_pos = -1.0 if long_short else 0.0
    m = params.shape[0]
    state = fp_state(m, start)
    words = np.empty(FP_CHUNK >> 6, dtype=np.uint64)
    ct = np.empty(FP_CHUNK + 64, dtype=np.int64)
    for c0 in range(start, max(n, start + 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            fw = int(params[c, 0])
            sw = int(params[c, 1])
            t0 = max(c0, max(fw, sw) - 1)
            mm = _sma_cross_words(cs, fw, sw, t0, c1, words)
            fp_book_words(fp, words, mm, t0, 1.0, low_pos, state, c, fee_rate, bsum, bsq, blk,
                          c1 == n, ppy, out[c], ct)


SMA_CROSS = register(Strategy(
    name="sma_cross",
    family="trend",
    description="Long while SMA(fast) > SMA(slow) of close, else flat (short in long/short mode).",
    space=ParamSpace(
        dims=(Int("fast", 5, 50, default=10, hard_min=1), Int("slow", 20, 200, default=50, hard_min=2)),
        constraints=(Constraint("fast", "<", "slow"),),
        strategy="sma_cross",
    ),
    kernel=sma_cross_kernel,
    fast=sma_cross_fast,
    warmup=lambda p: int(p["slow"]) - 1,
    cost_ns=4,
))


@njit(cache=True)
def _ema_table(close, windows):
    """SMA-seeded EMA of ``close`` for each distinct window: (k, bars)."""
    table = np.empty((windows.shape[0], close.shape[0]))
    for i in range(windows.shape[0]):
        table[i] = ema(close, int(windows[i]))
    return table


_U0 = np.uint64(0)

_EMA_GROUP = 8
"""EMA rows advanced together by :func:`_ema_group`: eight independent recurrences in one loop
over the bars, so their dependency chains overlap."""


@njit(cache=True)
def _ema_chunks(close, windows, rows):
    """The state of ``ema_cross``'s per-chunk EMA tables (:func:`_ema_group`):
    ``(w, a, b, v, order, E)``.

    ``rows`` (int64) lists indices into ``windows`` in the order their rows are first needed;
    rows whose ``ema`` is all NaN (``int(w) < 1`` or ``> bars``) are left out of ``order`` and
    their row of ``E`` is NaN once for all. ``order`` is padded to a multiple of
    :data:`_EMA_GROUP` with dummy rows (window 1) after the real ones. ``E`` (rows, FP_CHUNK)
    holds the current chunk's values: ``E[j, i]`` = ``ema(close, int(windows[j]))[c0 + i]``.
    ``a``, ``b``, ``v``: each row's alpha, 1 - alpha and last value (the recurrence's state,
    carried from chunk to chunk).
    """
    n = close.shape[0]
    k = windows.shape[0]
    real = 0
    for q in range(rows.shape[0]):
        wq = int(windows[rows[q]])
        if 1 <= wq <= n:
            real += 1
    total = (real + _EMA_GROUP - 1) // _EMA_GROUP * _EMA_GROUP
    pad = total - real
    w = np.ones(k + pad, dtype=np.int64)
    order = np.empty(total, dtype=np.int64)
    o = 0
    for q in range(rows.shape[0]):
        wq = int(windows[rows[q]])
        if 1 <= wq <= n:
            order[o] = rows[q]
            o += 1
    for q in range(pad):
        order[real + q] = k + q
    for j in range(k):
        w[j] = int(windows[j])
    a = np.zeros(k + pad)
    b = np.zeros(k + pad)
    for j in range(k + pad):
        if w[j] >= 1:
            a[j] = 2.0 / (w[j] + 1.0)
            b[j] = 1.0 - a[j]
    v = np.zeros(k + pad)
    E = np.full((k + pad, FP_CHUNK), np.nan)
    return w, a, b, v, order, E


@njit(cache=True)
def _ema_group(close, em, g, c0, c1):
    """Advance the EMA rows ``order[g:g + 8]`` of ``em`` (:func:`_ema_chunks`) over bars
    ``[c0, c1)`` (at most FP_CHUNK, following the bars they were last advanced over), writing
    bar ``c0 + i``'s values to ``E[row, i]``.

    Each value is :func:`~quantfleet.kernels.indicators.ema`'s operations in its order, hence
    its bits: NaN before bar ``w - 1``, there the sum of the first ``w`` closes over ``w``, then
    ``alpha * close[t] + (1 - alpha) * v``. Bars before every row's recurrence runs (the
    first chunks) go row by row; the rest advance the eight rows in one loop.
    """
    w, a, b, v, order, E = em
    m = c1 - c0
    i0 = 0
    for q in range(_EMA_GROUP):
        i0 = max(i0, min(m, w[order[g + q]] - c0))
    for q in range(_EMA_GROUP):
        j = order[g + q]
        wj = w[j]
        row = E[j]
        for i in range(i0):
            t = c0 + i
            if t < wj - 1:
                row[i] = np.nan
            elif t == wj - 1:
                s = 0.0
                for u in range(wj):
                    s += close[u]
                v[j] = s / wj
                row[i] = v[j]
            else:
                v[j] = a[j] * close[t] + b[j] * v[j]
                row[i] = v[j]
    j0 = order[g]
    j1 = order[g + 1]
    j2 = order[g + 2]
    j3 = order[g + 3]
    j4 = order[g + 4]
    j5 = order[g + 5]
    j6 = order[g + 6]
    j7 = order[g + 7]
    a0, a1, a2, a3, a4, a5, a6, a7 = a[j0], a[j1], a[j2], a[j3], a[j4], a[j5], a[j6], a[j7]
    b0, b1, b2, b3, b4, b5, b6, b7 = b[j0], b[j1], b[j2], b[j3], b[j4], b[j5], b[j6], b[j7]
    v0, v1, v2, v3, v4, v5, v6, v7 = v[j0], v[j1], v[j2], v[j3], v[j4], v[j5], v[j6], v[j7]
    r0, r1, r2, r3, r4, r5, r6, r7 = E[j0], E[j1], E[j2], E[j3], E[j4], E[j5], E[j6], E[j7]
    for i in range(i0, m):
        x = close[c0 + i]
        v0 = a0 * x + b0 * v0
        v1 = a1 * x + b1 * v1
        v2 = a2 * x + b2 * v2
        v3 = a3 * x + b3 * v3
        v4 = a4 * x + b4 * v4
        v5 = a5 * x + b5 * v5
        v6 = a6 * x + b6 * v6
        v7 = a7 * x + b7 * v7
        r0[i] = v0
        r1[i] = v1
        r2[i] = v2
        r3[i] = v3
        r4[i] = v4
        r5[i] = v5
        r6[i] = v6
        r7[i] = v7
    if i0 < m:
        v[j0], v[j1], v[j2], v[j3], v[j4], v[j5], v[j6], v[j7] = v0, v1, v2, v3, v4, v5, v6, v7


@njit(cache=True)
def _ema_chunk_all(close, em, c0, c1):
    """Advance every row of ``em`` (:func:`_ema_chunks`) over bars ``[c0, c1)``."""
    for g in range(0, em[4].shape[0], _EMA_GROUP):
        _ema_group(close, em, g, c0, c1)


@njit(cache=True)
def ema_cross_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                     long_short, start, out, returns_out):
    """Long 1 while EMA_fast > EMA_slow, else 0 (-1 in long/short mode). params: fast, slow."""
    n = close.shape[0]
    r = bar_returns(close)
    both = np.concatenate((params[:, 0], params[:, 1]))
    uniq, idx = unique_windows(both)
    table = _ema_table(close, uniq)
    m = params.shape[0]
    low_pos = -1.0 if long_short else 0.0
    for c in range(m):
        f = table[idx[c]]
        s = table[idx[m + c]]
        warm = int(max(params[c, 0], params[c, 1])) - 1
        tail = tail_init()
        for t in range(start, n):
            pos = 0.0
            if t >= warm:
                pos = 1.0 if f[t] > s[t] else low_pos
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def _ema_cross_order(idx, m):
    """Combos in the order ema_cross_fast scans them, and the table rows in the order first
    needed: grouped by the role (fast / slow) with more distinct windows, so the other role's
    rows stay in cache while each of these is used by its combos and then left."""
    k = 0
    for i in range(idx.shape[0]):
        k = max(k, idx[i] + 1)
    seen = np.zeros((2, k), dtype=np.bool_)
    for c in range(m):
        seen[0, idx[c]] = True
        seen[1, idx[m + c]] = True
    outer = 1 if seen[1].sum() >= seen[0].sum() else 0
    key = np.empty(m, dtype=np.int64)
    for c in range(m):
        key[c] = idx[outer * m + c] * k + idx[(1 - outer) * m + c]
    combos = np.argsort(key, kind="mergesort")
    first = np.full(k, -1, dtype=np.int64)
    rows = np.empty(k, dtype=np.int64)
    nr = 0
    for q in range(m):
        c = combos[q]
        for j in (idx[c], idx[m + c]):
            if first[j] < 0:
                first[j] = nr
                rows[nr] = j
                nr += 1
    return combos, rows[:nr]


@njit(cache=True)
def ema_cross_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                   start, out, bsum, bsq, blk):
    """The fast path of :func:`ema_cross_kernel` (kernels/fastpath.py).

    The EMA table is built per chunk of bars (:func:`_ema_chunks`, O(windows x FP_CHUNK)
    memory), each row's recurrence carried from chunk to chunk; within a chunk rows are
    advanced eight at a time just before the first combo that reads them (combos in the order of
    :func:`_ema_cross_order`), so a row is read while still in cache. The rule (the per-bar
    kernel's ``f[t] > s[t]``) goes 64 bars to a word's bits, and the change bars come from the
    word's set bits, lowest first (work per change, not per bar, once the rule is packed).
    """
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    both = np.concatenate((params[:, 0], params[:, 1]))
    uniq, idx = unique_windows(both)
    m = params.shape[0]
    combos, rows = _ema_cross_order(idx, m)
    em = _ema_chunks(close, uniq, rows)
    E = em[5]
    order = em[4]
    # rank of each table row in ``order`` (-1: an all-NaN row, never advanced)
    rank = np.full(E.shape[0], -1, dtype=np.int64)
    for q in range(order.shape[0]):
        rank[order[q]] = q
    for c0 in range(0, min(start, n), FP_CHUNK):
        _ema_chunk_all(close, em, c0, min(min(start, n), c0 + FP_CHUNK))
    low_pos = -1.0 if long_short else 0.0
    state = fp_state(m, start)
    words = np.empty(FP_CHUNK >> 6, dtype=np.uint64)
    ct = np.empty(FP_CHUNK + 64, dtype=np.int64)
    for c0 in range(start, max(n, start + 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        done = 0
        for q in range(m):
            c = combos[q]
            jf = idx[c]
            js = idx[m + c]
            while done <= rank[jf] or done <= rank[js]:
                _ema_group(close, em, done, c0, c1)
                done += _EMA_GROUP
            warm = int(max(params[c, 0], params[c, 1])) - 1
            t0 = max(c0, warm)
            mm = c1 - t0
            fa = E[jf, t0 - c0:c1 - c0]
            sa = E[js, t0 - c0:c1 - c0]
            # the rule on 64 bars -> the bits of a word (bit i: bar t0 + base + i)
            for wi in range((mm + 63) >> 6):
                # (a stepped range here costs the inner loops their vectorisation)
                base = wi << 6
                r = min(64, mm - base)
                x = _U0
                if r == 64:
                    x = _ema_word(fa, sa, sa, base, 0.0, 0.0)
                else:
                    for i in range(r):
                        x |= np.uint64(fa[base + i] > sa[base + i]) << np.uint64(i)
                words[wi] = x
            fp_book_words(fp, words, mm, t0, 1.0, low_pos, state, c, fee_rate, bsum, bsq, blk,
                          c1 == n, ppy, out[c], ct)


EMA_CROSS = register(Strategy(
    name="ema_cross",
    family="trend",
    description="Long while EMA(fast) > EMA(slow) of close, else flat (short in long/short mode).",
    space=ParamSpace(
        dims=(Int("fast", 5, 50, default=12, hard_min=1), Int("slow", 20, 200, default=26, hard_min=2)),
        constraints=(Constraint("fast", "<", "slow"),),
        strategy="ema_cross",
    ),
    kernel=ema_cross_kernel,
    fast=ema_cross_fast,
    warmup=lambda p: int(p["slow"]) - 1,
    cost_ns=4,
))


@njit(cache=True)
def _close_prefix(close):
    """Prefix sums of close, (bars + 1,): cs[t + 1] - cs[t + 1 - w] is the sum of the last w."""
    n = close.shape[0]
    cs = np.empty(n + 1)
    cs[0] = 0.0
    for t in range(n):
        cs[t + 1] = cs[t] + close[t]
    return cs


@njit(cache=True)
def sma_trend_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                     long_short, start, out, returns_out):
    """Long 1 while close > SMA(window), else 0 (-1 in long/short mode). params: window.

    The SMA comes from one prefix sum of close shared by every combo (O(bars) memory however
    many distinct windows), compared without division: close * w > sum of the last w closes.
    """
    n = close.shape[0]
    r = bar_returns(close)
    cs = _close_prefix(close)
    low_pos = -1.0 if long_short else 0.0
    for c in range(params.shape[0]):
        w = int(params[c, 0])
        wf = float(w)
        t0 = max(start, w - 1)
        tail = tail_flat(tail_init(), float(min(t0, n) - start))
        for t in range(t0, n):
            pos = 1.0 if close[t] * wf > cs[t + 1] - cs[t + 1 - w] else low_pos
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def _sma_trend_words(close, cs, w, t0, c1, words):
    """:func:`sma_trend_kernel`'s rule over bars ``[t0, c1)`` (``t0 >= w - 1``), 64 bars to a
    word's bits (word ``wi``, bit ``i``: bar ``t0 + 64 wi + i``), the same expression; returns
    the number of bars. ``words`` holds ``(c1 - t0) / 64`` rounded up."""
    wf = float(w)
    mm = max(c1 - t0, 0)
    # slices let LLVM vectorize the rule
    xa = close[t0:c1]
    hs = cs[t0 + 1:c1 + 1]
    ls = cs[t0 + 1 - w:c1 + 1 - w]
    full = mm >> 6
    for wi in range(full):
        words[wi] = _trend_word(xa, hs, ls, wi << 6, wf, wf)
    if full < (mm + 63) >> 6:
        base = full << 6
        x = _U0
        for i in range(mm - base):
            x |= np.uint64(xa[base + i] * wf > hs[base + i] - ls[base + i]) << np.uint64(i)
        words[full] = x
    return mm


@njit(cache=True)
def sma_trend_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                   start, out, bsum, bsq, blk):
    """The fast path of :func:`sma_trend_kernel` (kernels/fastpath.py): the rule packed 64 bars
    to a word (:func:`_sma_trend_words`), booked change by change from the words
    (``fp_book_words``)."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    cs = _close_prefix(close)
    low_pos = -1.0 if long_short else 0.0
    m = params.shape[0]
    state = fp_state(m, start)
    words = np.empty(FP_CHUNK >> 6, dtype=np.uint64)
    ct = np.empty(FP_CHUNK + 64, dtype=np.int64)
    for c0 in range(start, max(n, start + 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            w = int(params[c, 0])
            t0 = max(c0, w - 1)
            mm = _sma_trend_words(close, cs, w, t0, c1, words)
            fp_book_words(fp, words, mm, t0, 1.0, low_pos, state, c, fee_rate, bsum, bsq, blk,
                          c1 == n, ppy, out[c], ct)


SMA_TREND = register(Strategy(
    name="sma_trend",
    family="trend",
    description="Long while close > SMA(window), else flat (short in long/short mode).",
    space=ParamSpace(
        dims=(Int("window", 20, 250, step=5, default=200, hard_min=2),),
        strategy="sma_trend",
    ),
    kernel=sma_trend_kernel,
    fast=sma_trend_fast,
    warmup=lambda p: int(p["window"]) - 1,
    cost_ns=4.5,
))
