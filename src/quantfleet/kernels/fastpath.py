"""The fast path: book a combo's metrics (and per-block return sums) from the bars where its
position changes, instead of bar by bar.

A crossover, threshold or band rule changes position on few bars; every other bar only holds
the position. A strategy's fast kernel scans each combo's rule (a tight loop, the same float
expressions as its per-bar kernel) into the list of change bars, then :func:`fp_book` books
them. Bars go in chunks of :data:`FP_CHUNK`: :func:`fp_chunk` builds the chunk's tables once,
every combo scans and books the chunk, and a stretch still open at the chunk's end is booked up
to it (so memory is O(chunk), whatever the number of bars). Booking:

- a change bar (the position moves at its close: fee, entry, exit, win) through the exact
  ``acc_step`` of ``kernels/metrics.py``, so trade counters and fees are those of the per-bar
  kernel;
- a held stretch (position ``p`` in {-1, +1} before and after every bar, no fill) in O(1) per
  block piece from the chunk's tables shared by every combo of the batch: double-double
  prefix sums of the per-bar returns ``(1 + p·r) - 1``, their squares and their squares where
  negative (one table per side); equity from the close ratio (long) or the prefix of
  ``log1p(-r)`` (short); peak and drawdown from range minimum/maximum queries
  (:func:`rmq_minmax`, a sparse table over the chunk's bars: two lookups whatever the
  stretch's length, no branch): the drawdown against the incoming peak is exact from the
  stretch's minimum, and the stretch is replayed bar by bar only when its own max-to-min drop
  could exceed the drawdown so far;
- a flat stretch by its bar count.

Positions other than 0 and ±1, short stretches on data with a bar return >= 1 and stretches
entered with equity <= 0 are booked bar by bar. Agreement with the per-bar kernel is to
rounding (the sums are added in another order, the drawdown is the largest ``1 - eq/peak``
rather than updated after a comparison: docs/conventions.md, "Fast path").
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from quantfleet.kernels.metrics import acc_finish, acc_init, acc_step

__all__ = [
    "EV_FLAT",
    "EV_LONG",
    "EV_SHORT",
    "FP_CHUNK",
    "FP_STATE",
    "ONE",
    "TWO",
    "ZERO",
    "fp_blocks_finish",
    "fp_book",
    "fp_book_words",
    "fp_chunk",
    "fp_next_event",
    "fp_prefix",
    "fp_prepare",
    "fp_state",
    "rmq_minmax",
]

# columns of the chunk table T (fp_chunk): row i of the bar column is bar c0 + i's value; row i
# of a prefix column is the sum over bars [c0, c0 + i) of the chunk [c0, c1) as two columns,
# the plain running sum and the running sum of its rounding errors (:func:`_cs_step`). Side s
# (0 long, 1 short) starts at column _SUMS + s * _SIDE.
_RET = 0  # the bar's close-to-close return (metrics.bar_returns' expression)
_SIDE = 6
_SUMS = 1  # Σg, Σg², Σg² over g < 0, g = (1 + side·r) - 1: columns 1..6 (long), 7..12 (short)
_LOG = 13  # short side: the prefix of log1p(-r) (columns 13, 14)


@intrinsic
def _popcount(typingctx, x):
    """Set bits of a uint64 (llvm.ctpop)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


_SP_TOP = 6
"""The sparse table's top level: a lookup covers up to 2**6 = 64 bars, two cover a stretch of
up to 128; a longer one (a few % of the held stretches) takes one lookup per 64 bars. Each
level costs a pass over the chunk per side."""


@njit(cache=True)
def _bar_sparse(V, side, m, SP):
    """The sparse table of ``V[side, :m]``: ``SP[side, 0, l, i]`` / ``SP[side, 1, l, i]`` the
    minimum / maximum of ``V[side, i:i + 2**l]`` (for ``i + 2**l <= m``, ``l <= _SP_TOP``)."""
    SP[side, 0, 0, :m] = V[side, :m]
    SP[side, 1, 0, :m] = V[side, :m]
    for lev in range(1, SP.shape[2]):
        h = 1 << (lev - 1)
        cnt = m - (1 << lev) + 1
        if cnt <= 0:
            break
        # one loop per table, slices and a plain select: the loops vectorise
        p0 = SP[side, 0, lev - 1, :cnt]
        x0 = SP[side, 0, lev - 1, h:h + cnt]
        q0 = SP[side, 0, lev, :cnt]
        for i in range(cnt):
            a = p0[i]
            b = x0[i]
            q0[i] = a if a < b else b
        p1 = SP[side, 1, lev - 1, :cnt]
        x1 = SP[side, 1, lev - 1, h:h + cnt]
        q1 = SP[side, 1, lev, :cnt]
        for i in range(cnt):
            a = p1[i]
            b = x1[i]
            q1[i] = a if a > b else b


@njit(cache=True, inline="always")
def rmq_minmax(SP, LG, side, a, b):
    """``(min, max)`` of ``V[side, a:b]`` (``a < b``, chunk rows) from the sparse table
    :func:`fp_chunk` builds: the extrema of two overlapping power-of-two ranges, or for a range
    over ``2**(_SP_TOP + 1)`` bars of its top-level pieces (the last one overlapping)."""
    lev = LG[b - a]
    if lev <= _SP_TOP:
        j = b - (1 << lev)
        return (min(SP[side, 0, lev, a], SP[side, 0, lev, j]),
                max(SP[side, 1, lev, a], SP[side, 1, lev, j]))
    j = b - (1 << _SP_TOP)
    mn = SP[side, 0, _SP_TOP, j]
    mx = SP[side, 1, _SP_TOP, j]
    for i in range(a, j, 1 << _SP_TOP):
        mn = min(mn, SP[side, 0, _SP_TOP, i])
        mx = max(mx, SP[side, 1, _SP_TOP, i])
    return mn, mx


@njit(cache=True, inline="always")
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(cache=True, inline="always")
def _dd_add(T, row, col, x):
    """T[row, col:col+2] = T[row-1, col:col+2] + x in double-double (renormalized)."""
    s, e = _two_sum(T[row - 1, col], x)
    hi, lo = _two_sum(s, T[row - 1, col + 1] + e)
    T[row, col] = hi
    T[row, col + 1] = lo


@njit(cache=True, inline="always")
def _drawdown(eq, peak, maxdd):
    """``(peak, maxdd)`` after a bar ending at equity ``eq``: acc_step's update (a division only
    below the drawdown's floor ``peak * (1 - maxdd)``, rare: the branch is predicted), except
    that the drawdown never moves down (where ``1 - eq / peak`` rounds below the floor's test,
    acc_step would lower it by an ulp)."""
    if eq < peak * (1.0 - maxdd):
        maxdd = max(maxdd, 1.0 - eq / peak)
    return max(peak, eq), maxdd


@njit(cache=True, inline="always")
def _hold_step(eq, peak, maxdd, s1, s2, down2, p, rt):
    """``acc_step(st, p, p, rt, fee)`` of a bar held at ``p`` (``p`` = ±1, no fill) for the
    sums it changes (the caller adds the bar to the count and the exposure): the same
    expressions (the drawdown by :func:`_drawdown`)."""
    g = 1.0 + p * rt
    eq = eq * g
    rb = g - 1.0
    s1 += rb
    s2 += rb * rb
    down2 = down2 + rb * rb if rb < 0.0 else down2
    peak, maxdd = _drawdown(eq, peak, maxdd)
    return eq, peak, maxdd, s1, s2, down2


@njit(cache=True, inline="always")
def _fill_step(st, prev, pos, rt, fee_rate):
    """``acc_step(st, prev, pos, rt, fee_rate)`` of a bar where the position moves
    (``|pos - prev|`` != 0, not both 0): the same expressions, with selects where acc_step
    branches on the trade's outcome (the drawdown by :func:`_drawdown`)."""
    eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn = st
    pnl = prev * rt
    eq = eq * (1.0 + pnl)
    d = abs(pos - prev)
    growth = 1.0 + pnl
    flip = pos * prev < 0.0
    ex = prev != 0.0 and (pos == 0.0 or flip)
    after_exit = eq * (1.0 - fee_rate * abs(prev))
    closed = closed + 1.0 if ex else closed
    wins = wins + 1.0 if ex and after_exit > entry_eq else wins
    entry_eq = after_exit if ex and flip else (eq if not ex and pos != 0.0 and prev == 0.0
                                              else entry_eq)
    entries = entries + 1.0 if pos != 0.0 and (prev == 0.0 or flip) else entries
    cost = 1.0 - fee_rate * d
    eq = eq * cost
    growth = growth * cost
    turn += d
    rb = growth - 1.0
    n += 1.0
    s1 += rb
    s2 += rb * rb
    down2 = down2 + rb * rb if rb < 0.0 else down2
    peak, maxdd = _drawdown(eq, peak, maxdd)
    exposed = exposed + 1.0 if pos != 0.0 else exposed
    return (eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn)


@njit(cache=True)
def fp_prefix(x, start):
    """Double-double prefix sums of ``x`` from bar ``start``: (bars + 1, 2), row ``i`` the sum of
    ``x[start:i]`` as hi + lo (hi the nearest double to the sum). Rows up to ``start`` are 0."""
    n = x.shape[0]
    out = np.zeros((n + 1, 2))
    for t in range(start, n):
        _dd_add(out, t + 1, 0, x[t])
    return out


@njit(cache=True)
def fp_prepare(close, long_short):
    """The tables every combo of a batch shares, for one chunk of bars at a time (filled by
    :func:`fp_chunk`): ``(close, T, V, SP, LG, info)``.

    T : (FP_CHUNK + 1, 7 or 15) each bar's return r (row i: bar c0 + i); per side (long, and
        short when ``long_short``) prefix sums over the chunk (:func:`_cs_step`: the running
        sum and the running sum of its rounding errors) of the held-bar return
        ``g = (1 + side·r) - 1`` (the per-bar kernel's value), of g² and of g² where g < 0; the
        short side also the prefix of log1p(-r)
    V : (sides, FP_CHUNK) the value whose extrema give a held stretch's peak and trough: close
        (long) and the short equity's log after each bar, from the chunk's start
    SP : (sides, 2, _SP_TOP + 1, FP_CHUNK) the sparse table of V's minima / maxima
        (:func:`_bar_sparse`)
    LG : int64 floor(log2(i)) for i up to FP_CHUNK
    info : float64 (3,) the chunk's first bar, its end, and 1.0 if no bar return in it is
        >= 1 (else its short stretches are booked bar by bar)

    ``close`` must be finite and > 0 (the caller checks).
    """
    sides = 2 if long_short else 1
    T = np.zeros((FP_CHUNK + 1, _SUMS + _SIDE * sides + (2 if long_short else 0)))
    V = np.zeros((sides, FP_CHUNK))
    LG = np.zeros(FP_CHUNK + 1, dtype=np.int64)
    for i in range(2, FP_CHUNK + 1):
        LG[i] = LG[i >> 1] + 1
    SP = np.zeros((sides, 2, _SP_TOP + 1, FP_CHUNK))
    info = np.zeros(3)
    return close, T, V, SP, LG, info


@njit(cache=True, inline="always")
def _cs_step(S, E, x):
    """One bar of a cascaded prefix sum: ``S`` the running sum, ``E`` the running sum of its
    rounding errors (each exact: Knuth's two-sum), so ``S + E`` is the exact sum to ~2**-100
    relative. Each chain is one addition deep (a renormalized double-double is six), so a
    bar's prefixes cost throughput, not latency."""
    s = S + x
    bb = s - S
    return s, E + ((S - (s - bb)) + (x - bb))


@njit(cache=True)
def fp_chunk(fp, c0, c1):
    """Fill ``fp``'s tables (:func:`fp_prepare`) for bars ``[c0, c1)`` (at most FP_CHUNK).

    Every prefix (both sides' three sums and the short side's log) advances in one loop over
    the bars with its running sums in registers, so their dependency chains overlap; then the
    sparse tables of V (:func:`_bar_sparse`)."""
    close, T, V, SP, LG, info = fp
    m = max(c1 - c0, 0)
    sides = V.shape[0]
    info[0] = c0
    info[1] = c1
    ok = 1.0
    h0 = l0 = h1 = l1 = h2 = l2 = 0.0
    if sides == 1:
        for i in range(m):
            t = c0 + i
            r = close[t] / close[t - 1] - 1.0 if t > 0 else 0.0
            g = (1.0 + 1.0 * r) - 1.0
            h0, l0 = _cs_step(h0, l0, g)
            h1, l1 = _cs_step(h1, l1, g * g)
            h2, l2 = _cs_step(h2, l2, g * g if g < 0.0 else 0.0)
            T[i, _RET] = r
            row = T[i + 1]
            row[1] = h0
            row[2] = l0
            row[3] = h1
            row[4] = l1
            row[5] = h2
            row[6] = l2
            V[0, i] = close[t]
    else:
        k0 = q0 = k1 = q1 = k2 = q2 = hl = ll = 0.0
        for i in range(m):
            t = c0 + i
            r = close[t] / close[t - 1] - 1.0 if t > 0 else 0.0
            g = (1.0 + 1.0 * r) - 1.0
            h0, l0 = _cs_step(h0, l0, g)
            h1, l1 = _cs_step(h1, l1, g * g)
            h2, l2 = _cs_step(h2, l2, g * g if g < 0.0 else 0.0)
            gs = (1.0 + -1.0 * r) - 1.0
            k0, q0 = _cs_step(k0, q0, gs)
            k1, q1 = _cs_step(k1, q1, gs * gs)
            k2, q2 = _cs_step(k2, q2, gs * gs if gs < 0.0 else 0.0)
            if r >= 1.0:
                ok = 0.0
            hl, ll = _cs_step(hl, ll, math.log1p(-r) if r < 1.0 else 0.0)
            T[i, _RET] = r
            row = T[i + 1]
            row[1] = h0
            row[2] = l0
            row[3] = h1
            row[4] = l1
            row[5] = h2
            row[6] = l2
            row[_SUMS + _SIDE] = k0
            row[_SUMS + _SIDE + 1] = q0
            row[_SUMS + _SIDE + 2] = k1
            row[_SUMS + _SIDE + 3] = q1
            row[_SUMS + _SIDE + 4] = k2
            row[_SUMS + _SIDE + 5] = q2
            row[_LOG] = hl
            row[_LOG + 1] = ll
            V[0, i] = close[t]
            V[1, i] = hl + ll
    info[2] = ok
    for side in range(sides):
        _bar_sparse(V, side, m, SP)


ONE = np.uint8(1)
TWO = np.uint8(2)
ZERO = np.uint8(0)
"""Bits of a rule's per-bar flag byte as uint8 constants (an explicit uint8, not a bool, keeps
a scan loop vectorizable)."""

FP_CHUNK = 2048
"""Bars per chunk: a fast kernel scans and books every combo over one chunk of bars before the
next, so the chunk's rows of the shared tables stay in cache while all combos read them."""

FP_STATE = 20
"""Columns of the per-combo state array between chunks: the 13 accumulator floats (0-12), the
position held (13), the first bar not yet booked (14), and five floats of rule state for the
strategy's scan (15-19, zero at the start)."""


@njit(cache=True)
def fp_state(combos, start):
    """Fresh per-combo states (combos, :data:`FP_STATE`): flat, nothing booked before ``start``."""
    state = np.zeros((combos, FP_STATE))
    st = acc_init()
    for c in range(combos):
        for i in range(13):
            state[c, i] = st[i]
        state[c, 14] = start
    return state


@njit(cache=True, inline="always")
def _load(state, c):
    s = state[c]
    return (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12])


@njit(cache=True, inline="always")
def _store(state, c, st):
    s = state[c]
    for i in range(13):
        s[i] = st[i]


@njit(cache=True, inline="always")
def _book_held(close, T, SP, LG, c0, short_ok, b0, bl, ns, bend, bsum, bsq, c, fee_rate, st,
               prev, u, t):
    """Book the held stretch ``[u, t)`` (``t - u >= 0`` bars of the current chunk: position
    ``prev`` before and after every bar, no fill) into the accumulator ``st``. An empty
    stretch needs no test of its own: it adds 0 bars (n >= +0, so n + 0.0 is n) or runs no
    bar-by-bar step, which keeps a hard-to-predict branch out."""
    eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn = st
    p = prev
    kk = t - u
    if p == 0.0:
        n += kk
    elif kk == 0 or not (p == 1.0 or (p == -1.0 and short_ok)) or not eq > 0.0:
        # empty stretches, fractional positions, a short that can lose more than all of
        # its equity in a bar, equity already <= 0: bar by bar
        if p == 1.0 or p == -1.0:
            # acc_step of a held bar with only what it changes: the same expressions
            for tt in range(u, t):
                rt = T[tt - c0, _RET]
                eq, peak, maxdd, s1, s2, down2 = _hold_step(eq, peak, maxdd, s1, s2, down2,
                                                            p, rt)
                if ns > 0 and b0 <= tt < bend:
                    x = (1.0 + p * rt) * (1.0 - fee_rate * 0.0) - 1.0
                    jb = (tt - b0) // bl
                    bsum[jb, c] += x
                    bsq[jb, c] += x * x
            n += kk
            exposed += kk
        else:
            st = (eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq,
                  exposed, turn)
            for tt in range(u, t):
                rt = T[tt - c0, _RET]
                st = acc_step(st, p, p, rt, fee_rate)
                if ns > 0 and b0 <= tt < bend:
                    x = (1.0 + p * rt) * (1.0 - fee_rate * 0.0) - 1.0
                    jb = (tt - b0) // bl
                    bsum[jb, c] += x
                    bsq[jb, c] += x * x
            eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, \
                turn = st
    else:
        side = 0 if p == 1.0 else 1
        col = side * _SIDE + _SUMS
        la = u - c0
        lb = t - c0
        # the metric sums over the whole stretch (the same bits with or without blocks)
        s1 += (T[lb, col] - T[la, col]) + (T[lb, col + 1] - T[la, col + 1])
        s2 += (T[lb, col + 2] - T[la, col + 2]) + (T[lb, col + 3] - T[la, col + 3])
        down2 += (T[lb, col + 4] - T[la, col + 4]) + (T[lb, col + 5] - T[la, col + 5])
        a = max(u, b0)
        while ns > 0 and a < min(t, bend):
            # each block's piece of the stretch
            j = (a - b0) // bl
            e = min(t, b0 + (j + 1) * bl)
            ra = a - c0
            re = e - c0
            bsum[j, c] += (T[re, col] - T[ra, col]) + (T[re, col + 1] - T[ra, col + 1])
            bsq[j, c] += (T[re, col + 2] - T[ra, col + 2]) + (T[re, col + 3] - T[ra, col + 3])
            a = e
        n += kk
        exposed += kk
        # min and max of V[side] over the stretch (rmq_minmax, written out)
        lev = LG[kk]
        if lev <= _SP_TOP:
            jj = lb - (1 << lev)
            mn = min(SP[side, 0, lev, la], SP[side, 0, lev, jj])
            mx = max(SP[side, 1, lev, la], SP[side, 1, lev, jj])
        else:
            jj = lb - (1 << _SP_TOP)
            mn = SP[side, 0, _SP_TOP, jj]
            mx = SP[side, 1, _SP_TOP, jj]
            for tt in range(la, jj, 1 << _SP_TOP):
                mn = min(mn, SP[side, 0, _SP_TOP, tt])
                mx = max(mx, SP[side, 1, _SP_TOP, tt])
        if side == 0:
            # equity at bar tt = eq · close[tt] / close[u-1]: exactly eq where the close is
            # unchanged, as the per-bar product of 1.0s is
            cu = close[u - 1]
            if mn < mx * (1.0 - maxdd):
                # the stretch's own drop could beat the drawdown so far: replay its equity
                for tt in range(u, t):
                    et = eq * (close[tt] / cu)
                    peak, maxdd = _drawdown(et, peak, maxdd)
            else:
                # the trough's equity eq · mn / cu only where it may be below the floor
                # (the test without a division, with a margin far above its rounding)
                floor = peak * (1.0 - maxdd)
                if eq * mn < floor * cu * (1.0 + 1e-9):
                    lo = eq * (mn / cu)
                    if lo < floor:
                        maxdd = max(maxdd, 1.0 - lo / peak)
                peak = max(peak, eq * (mx / cu))
            eq = eq * (close[t - 1] / cu)
        else:
            l0 = T[la, _LOG] + T[la, _LOG + 1]  # V's value before the stretch
            if math.exp(mn - mx) < 1.0 - maxdd:
                et = eq
                for tt in range(u, t):
                    et = et * (1.0 - T[tt - c0, _RET])
                    peak, maxdd = _drawdown(et, peak, maxdd)
                eq = et
            else:
                lo = eq * math.exp(mn - l0)
                if lo < peak * (1.0 - maxdd):
                    maxdd = max(maxdd, 1.0 - lo / peak)
                peak = max(peak, eq * math.exp(mx - l0))
                eq = eq * math.exp((T[lb, _LOG] - T[la, _LOG])
                                   + (T[lb, _LOG + 1] - T[la, _LOG + 1]))
    return (eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn)


@njit(cache=True, inline="always")
def _book_change(T, c0, b0, bl, ns, bend, bsum, bsq, c, fee_rate, st, prev, pos, t):
    """Book the change bar ``t`` (the position moves from ``prev`` to ``pos`` at its close):
    the exact per-bar step (fees, entries, exits, wins)."""
    eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn = st
    rt = T[t - c0, _RET]
    if prev == 0.0 and (pos == 1.0 or pos == -1.0):
        # an entry from flat: acc_step's expressions for this case (the bar earns
        # nothing: eq * (1 + 0) is eq, the growth 1 * cost is cost)
        entry_eq = eq
        entries += 1.0
        cost = 1.0 - fee_rate * 1.0
        eq = eq * cost
        turn += 1.0
        rb = cost - 1.0
        n += 1.0
        s1 += rb
        s2 += rb * rb
        down2 = down2 + rb * rb if rb < 0.0 else down2
        peak, maxdd = _drawdown(eq, peak, maxdd)
        exposed += 1.0
    elif pos == 0.0 and (prev == 1.0 or prev == -1.0):
        # an exit to flat: likewise
        growth = 1.0 + prev * rt
        eq = eq * growth
        after_exit = eq * (1.0 - fee_rate * 1.0)
        closed += 1.0
        wins = wins + 1.0 if after_exit > entry_eq else wins
        cost = 1.0 - fee_rate * 1.0
        eq = eq * cost
        growth = growth * cost
        turn += 1.0
        rb = growth - 1.0
        n += 1.0
        s1 += rb
        s2 += rb * rb
        down2 = down2 + rb * rb if rb < 0.0 else down2
        peak, maxdd = _drawdown(eq, peak, maxdd)
    else:
        st = (eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed,
              turn)
        if abs(pos - prev) != 0.0 and not (prev == 0.0 and pos == 0.0):
            st = _fill_step(st, prev, pos, rt, fee_rate)
        else:
            st = acc_step(st, prev, pos, rt, fee_rate)
        eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, \
            turn = st
    if ns > 0 and b0 <= t < bend:
        x = (1.0 + prev * rt) * (1.0 - fee_rate * abs(pos - prev)) - 1.0
        jb = (t - b0) // bl
        bsum[jb, c] += x
        bsq[jb, c] += x * x
    return (eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn)


@njit(cache=True, error_model="numpy", _nrt=False)
def fp_book(fp, ct, cp, k, state, c, fee_rate, bsum, bsq, blk, final, ppy, out):
    """:func:`_fp_book`, compiled apart for the calls without blocks (``blk[2] == 0``, metrics
    only: a constant ``(0, 1, 0)``, so the block bookkeeping is compiled out)."""
    if blk[2] == 0:
        _fp_book(fp, ct, cp, k, state, c, fee_rate, bsum, bsq, (0, 1, 0), final, ppy, out)
    else:
        _fp_book(fp, ct, cp, k, state, c, fee_rate, bsum, bsq, blk, final, ppy, out)


@njit(cache=True, error_model="numpy", _nrt=False)
def _fp_book(fp, ct, cp, k, state, c, fee_rate, bsum, bsq, blk, final, ppy, out):
    """Book combo ``c``'s position changes ``ct[:k]`` (bars of the current chunk, increasing,
    each later than every bar booked so far) / ``cp[:k]`` (the new positions), with the held
    stretch before each and the one from the last change to the chunk's end, updating its row of
    ``state`` (:func:`fp_state`); with ``final`` (the chunk ends at the last bar) then write
    the combo's metric row into ``out`` (order of ``METRIC_NAMES``).

    fp : :func:`fp_prepare`, filled by :func:`fp_chunk` for the current chunk
    bsum, bsq : float64 (S, combos): column ``c`` gets each block's Σ and Σ² of the per-bar
        strategy returns (blk = (b0, B, S): block ``j`` is bars ``[b0 + j·B, b0 + (j+1)·B)``;
        S = 0: no blocks)

    The stretches and changes are booked by :func:`_book_held` and :func:`_book_change`,
    inlined. ``error_model="numpy"``: without division-by-zero raise paths (no divisor here is
    0: closes and peaks are > 0, blocks are >= 1 bar) numba drops most of the reference
    counting of the argument arrays on entry and exit, a per-call cost paid once per combo and
    chunk; the results are the same bits. ``_nrt=False`` drops the rest: the function neither
    allocates nor keeps an array, every array it is handed stays referenced by its caller for
    the call, so the reference counts (atomic operations on each array of ``fp``, ``state``,
    ``out``...) are not needed. The same for :func:`fp_book_words` and
    :func:`fp_next_event`, called as often.
    """
    close, T, V, SP, LG, info = fp
    c0 = int(info[0])
    c1 = int(info[1])
    short_ok = info[2] == 1.0
    b0, bl, ns = blk
    bend = b0 + bl * ns
    st = _load(state, c)
    prev = state[c, 13]
    u = int(state[c, 14])
    for i in range(k):
        t = ct[i]
        pos = cp[i]
        st = _book_held(close, T, SP, LG, c0, short_ok, b0, bl, ns, bend, bsum, bsq, c,
                        fee_rate, st, prev, u, t)
        st = _book_change(T, c0, b0, bl, ns, bend, bsum, bsq, c, fee_rate, st, prev, pos, t)
        prev = pos
        u = t + 1
    st = _book_held(close, T, SP, LG, c0, short_ok, b0, bl, ns, bend, bsum, bsq, c, fee_rate,
                    st, prev, u, c1)
    if final:
        acc_finish(st, ppy, out)
    _store(state, c, st)
    state[c, 13] = prev
    state[c, 14] = c1


@njit(cache=True, error_model="numpy", _nrt=False)
def fp_book_words(fp, words, m, t0, pos1, pos0, state, c, fee_rate, bsum, bsq, blk, final,
                  ppy, out, ct):
    """:func:`_fp_book_words`, compiled apart for the calls without blocks, as
    :func:`fp_book`."""
    if blk[2] == 0:
        _fp_book_words(fp, words, m, t0, pos1, pos0, state, c, fee_rate, bsum, bsq, (0, 1, 0),
                       final, ppy, out, ct)
    else:
        _fp_book_words(fp, words, m, t0, pos1, pos0, state, c, fee_rate, bsum, bsq, blk,
                       final, ppy, out, ct)


@njit(cache=True, error_model="numpy", _nrt=False)
def _fp_book_words(fp, words, m, t0, pos1, pos0, state, c, fee_rate, bsum, bsq, blk, final,
                   ppy, out, ct):
    """:func:`fp_book` for a stateless two-valued rule packed 64 bars to a word: bit ``i`` of
    ``words[j]`` is 1 where bar ``t0 + 64 j + i`` takes position ``pos1``, 0 where it takes
    ``pos0`` (``pos1 != pos0``; bits from ``m`` on are ignored; bars ``[t0, t0 + m)`` end the
    chunk, bars before ``t0`` keep the position booked so far); ``ct`` (int64, at least
    ``m + 64``) is scratch. The change bars are the set bits of
    ``x ^ (x << 1 | the bar before's bit)``, taken lowest first (a trailing-zero count): the
    work after the rule is per change, not per bar. They are gathered first, eight a word
    written whatever the word's count (its popcount says how many are real), so no loop exit
    depends on how many changes a word holds; then booked in one loop, the position
    alternating between ``pos1`` and ``pos0``."""
    close, T, V, SP, LG, info = fp
    c0 = int(info[0])
    c1 = int(info[1])
    short_ok = info[2] == 1.0
    b0, bl, ns = blk
    bend = b0 + bl * ns
    st = _load(state, c)
    prev = state[c, 13]
    u = int(state[c, 14])
    one = np.uint64(1)
    s63 = np.uint64(63)
    if m > 0:
        carry = words[0] & one
        pos = pos1 if carry else pos0
        if pos != prev:
            st = _book_held(close, T, SP, LG, c0, short_ok, b0, bl, ns, bend, bsum, bsq, c,
                            fee_rate, st, prev, u, t0)
            st = _book_change(T, c0, b0, bl, ns, bend, bsum, bsq, c, fee_rate, st, prev, pos,
                              t0)
            prev = pos
            u = t0 + 1
        # every change bar of the words into ct, eight per word unconditionally (no branch on
        # a word's count: the count is popcount), the rest of a word with more by a loop
        k = 0
        for j in range((m + 63) >> 6):
            x = words[j]
            d = x ^ ((x << one) | carry)
            carry = x >> s63
            r = m - (j << 6)
            if r < 64:
                d &= (one << np.uint64(r)) - one
            cnt = np.int64(_popcount(d))
            base = t0 + (j << 6)
            q = k
            for _ in range(8):
                ct[q] = base + (np.int64(trailing_zeros(d)) & 63)
                q += 1
                d &= d - one
            while d:
                ct[q] = base + np.int64(trailing_zeros(d))
                q += 1
                d &= d - one
            k += cnt
        # the changes alternate between the two positions
        for i in range(k):
            t = ct[i]
            pos = pos0 if prev == pos1 else pos1
            st = _book_held(close, T, SP, LG, c0, short_ok, b0, bl, ns, bend, bsum, bsq, c,
                            fee_rate, st, prev, u, t)
            st = _book_change(T, c0, b0, bl, ns, bend, bsum, bsq, c, fee_rate, st, prev, pos,
                              t)
            prev = pos
            u = t + 1
    st = _book_held(close, T, SP, LG, c0, short_ok, b0, bl, ns, bend, bsum, bsq, c, fee_rate,
                    st, prev, u, c1)
    if final:
        acc_finish(st, ppy, out)
    _store(state, c, st)
    state[c, 13] = prev
    state[c, 14] = c1


EV_FLAT = np.uint8(1)
EV_LONG = np.uint8(2)
EV_SHORT = np.uint8(4)
"""Event bits of a state-machine rule's per-bar flags (:func:`fp_next_event`): the bar would
change the state when flat / long / short."""


@njit(cache=True, _nrt=False)
def fp_next_event(flags, i, m, mask):
    """The first ``j`` in ``[i, m)`` with ``flags[j] & mask``, else ``m``; read 8 bytes at a
    time. ``flags`` (uint8) must be 0 from ``m`` to the next multiple of 8 (and be that long).

    A state-machine rule marks, per bar, whether the bar would change its state from each state
    (``EV_FLAT``, ``EV_LONG``, ``EV_SHORT``); the scan then runs the exact rule only on the bars
    its current state's bit marks, every other bar provably keeping the state.
    """
    while i < m and (i & 7):
        if flags[i] & mask:
            return i
        i += 1
    if i >= m:
        return m
    for j in range(i, (m + 7) & ~7, 8):
        # the OR of 8 bytes, no uint64 view: building a view costs a reference count per call
        if (flags[j] | flags[j + 1] | flags[j + 2] | flags[j + 3] | flags[j + 4] | flags[j + 5]
                | flags[j + 6] | flags[j + 7]) & mask:
            while not (flags[j] & mask):
                j += 1
            return min(j, m)
    return m


@njit(cache=True)
def fp_blocks_finish(bsum, bsq, bl, count, mean, m2):
    """Per-block count, mean and M2 (sum of squared deviations) from the sums of ``bl`` bars
    each (every bar of a fast-path block is finite)."""
    for j in range(bsum.shape[0]):
        for c in range(bsum.shape[1]):
            s = bsum[j, c]
            mu = s / bl
            count[j, c] = bl
            mean[j, c] = mu
            m2[j, c] = max(bsq[j, c] - s * mu, 0.0)
