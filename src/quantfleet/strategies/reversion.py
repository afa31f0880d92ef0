"""Mean-reversion seeds: fade moves outside a band around a fair value, exit back at the middle.

Each is a state machine (flat / long / short) run from the first bar of the slice, so bars
before ``start`` warm the state up as well as the indicators; accounting starts at ``start``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from quantfleet.kernels.fastpath import (
    FP_CHUNK,
    fp_book,
    fp_chunk,
    fp_prepare,
    fp_state,
)
from quantfleet.kernels.indicators import (
    nw_regression,
    rolling_pstd,
    rolling_vwap,
    sma,
    unique_pairs,
    unique_windows,
)
from quantfleet.kernels.metrics import bar_returns, tail_finish, tail_init, tail_step
from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.space import Constraint, Float, Int, ParamSpace

__all__ = [
    "BOLLINGER",
    "NW_ENVELOPE",
    "VWAP_REVERSION",
    "band_step",
    "bollinger_fast",
    "bollinger_kernel",
    "nw_band",
    "nw_envelope_fast",
    "nw_envelope_kernel",
    "vwap_reversion_fast",
    "vwap_reversion_kernel",
    "vwap_zscore",
]


@njit(cache=True, inline="always")
def band_step(state, x, lower, mid, upper, long_short):
    """Next state of a band-reversion rule: exits first, then entries.

    A long exits once ``x >= mid``, a short once ``x <= mid``; from flat, ``x < lower`` enters
    long and (long/short only) ``x > upper`` enters short. A NaN value or band means flat.
    """
    if not (x == x and lower == lower and mid == mid and upper == upper):
        return 0.0
    if state > 0.0 and x >= mid:
        state = 0.0
    elif state < 0.0 and x <= mid:
        state = 0.0
    if state == 0.0:
        if x < lower:
            state = 1.0
        elif long_short and x > upper:
            state = -1.0
    return state


@njit(cache=True)
def _bollinger_tables(close, windows):
    """SMA and population std of ``close`` for each distinct window: two (k, bars) tables."""
    mid = np.empty((windows.shape[0], close.shape[0]))
    sd = np.empty((windows.shape[0], close.shape[0]))
    for i in range(windows.shape[0]):
        mid[i] = sma(close, int(windows[i]))
        sd[i] = rolling_pstd(close, int(windows[i]))
    return mid, sd


@njit(cache=True)
def bollinger_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                     long_short, start, out, returns_out):
    """Band reversion around SMA(window) +- k * std(window). params: window, k."""
    n = close.shape[0]
    r = bar_returns(close)
    uniq, idx = unique_windows(params[:, 0].copy())
    mid, sd = _bollinger_tables(close, uniq)
    for c in range(params.shape[0]):
        m = mid[idx[c]]
        s = sd[idx[c]]
        k = params[c, 1]
        tail = tail_init()
        state = 0.0
        for t in range(n):
            state = band_step(state, close[t], m[t] - k * s[t], m[t], m[t] + k * s[t], long_short)
            if t < start:
                continue
            tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


_WELFORD_MIN = 17
"""``rolling_pstd`` slides windows of at least this many bars by a Welford step (recomputing
them in two passes every ``w`` bars); shorter windows are two-pass on every bar."""


@njit(cache=True)
def _bollinger_chunk_tables(close, wins, st, c0, c1, mid, sd, scratch):
    """Bars ``[c0, c1)`` of ``sma(close, w)`` and ``rolling_pstd(close, w)`` for each window
    ``w`` of ``wins``, into ``mid[g, :c1 - c0]`` and ``sd[g, :c1 - c0]``: the same bits as those
    functions (the same operations in the same order), one chunk of bars at a time.

    st : float64 (len(wins), 3) each window's running state (the SMA's sum, the std's mean and
        sum of squares) after bar ``c0 - 1``: zeros before bar 0, then carried from the call
        for the previous chunk (chunks in order from bar 0, none skipped)
    scratch : float64 (3, >= len(wins), >= c1 - c0)

    The running sums of every window advance together in one loop over the bars (independent
    dependency chains that overlap); the divisions, square roots and two-pass sums run in
    separate loops that vectorise.
    """
    g_n = wins.shape[0]
    nc = c1 - c0
    dd = scratch[0]
    rm = scratch[1]
    rss = scratch[2]
    wi = np.empty(g_n, dtype=np.int64)
    nx = np.empty(g_n, dtype=np.int64)
    for g in range(g_n):
        w = int(wins[g])
        # a window under 1 bar is NaN throughout, as one longer than the data
        wi[g] = w if w >= 1 else c1 + 1
        nx[g] = nc  # no sliding std in this chunk
        if w < _WELFORD_MIN or w > c1:
            continue
        # the first bar of the chunk recomputed in two passes: (t - w + 1) % w == 0
        first = w - 1
        if c0 > first:
            first += ((c0 - first + w - 1) // w) * w
        nx[g] = first - c0
        # the sliding step's mean increment (new - old) / w, bars t >= w
        # (slices indexed by a loop counter: no negative-index test, the loop vectorises)
        lo = max(c0, w)
        dr = dd[g, lo - c0:nc]
        xn = close[lo:c1]
        xo = close[lo - w:c1 - w]
        for i in range(c1 - lo):
            dr[i] = xn[i] - xo[i]
        _divide(dr, w, False)
        # the two-pass mean and sum of squares at the recomputation bars first + p * w
        npt = (c1 - 1 - first) // w + 1 if first < c1 else 0
        mr = rm[g]
        qr = rss[g]
        for p in range(npt):
            mr[p] = 0.0
            qr[p] = 0.0
        # bars first + p * w - w + 1 + j as xw[p, j]
        xw = close[first - w + 1:first - w + 1 + npt * w].reshape((npt, w))
        for j in range(w):
            for p in range(npt):
                mr[p] += xw[p, j]
        for p in range(npt):
            mr[p] /= w
        for j in range(w):
            for p in range(npt):
                d = xw[p, j] - mr[p]
                qr[p] += d * d
    # the running sums, a window at a time: the SMA's sum and (windows >= 17 bars) the sliding
    # std's mean and sum of squares, two dependency chains that overlap in one loop
    for g in range(g_n):
        w = wi[g]
        mr = mid[g]
        sr = sd[g]
        s = st[g, 0]
        m = st[g, 1]
        ss = st[g, 2]
        e0 = min(max(w - c0, 0), nc)  # rows before bar w: nothing leaves the SMA's sum
        for i in range(e0):
            s += close[c0 + i]
            mr[i] = s
        if e0 > 0 and nx[g] < e0:  # bar w - 1: the first two-pass std
            m = rm[g, 0]
            ss = rss[g, 0]
            sr[nx[g]] = ss
        xs = close[c0 + e0:c1]
        xo = close[c0 + e0 - w:c1 - w] if e0 < nc else close[c0:c0]
        ms = mr[e0:nc]
        if w < _WELFORD_MIN:
            for i in range(nc - e0):
                s += xs[i]
                s -= xo[i]
                ms[i] = s
        else:
            qq = 1 if e0 > 0 and nx[g] < e0 else 0
            nxt = nx[g] + w * qq - e0  # next two-pass row, counted from row e0
            dr = dd[g, e0:nc]
            ssr = sr[e0:nc]
            for i in range(nc - e0):
                new = xs[i]
                old = xo[i]
                s += new
                s -= old
                ms[i] = s
                if i == nxt:
                    m = rm[g, qq]
                    ss = rss[g, qq]
                    qq += 1
                    nxt += w
                else:
                    m_new = m + dr[i]
                    ss += (new - old) * (new - m_new + old - m)
                    m = m_new
                    if ss < 0.0:
                        ss = 0.0
                ssr[i] = ss
        st[g, 0] = s
        st[g, 1] = m
        st[g, 2] = ss
    # the divisions and square roots; two-pass std of the windows under 17 bars
    for g in range(g_n):
        w = wi[g]
        mr = mid[g]
        sr = sd[g]
        a = min(max(w - 1 - c0, 0), nc)
        for i in range(a):
            mr[i] = np.nan
            sr[i] = np.nan
        _divide(mr[a:nc], w, False)
        if w >= _WELFORD_MIN:
            _divide(sr[a:nc], w, True)
        else:
            # bar c0 + a + i of the chunk, term j: close[c0 + a + i - w + 1 + j]
            b = c0 + a - w + 1
            m = nc - a
            acc = dd[g, a:nc]
            so = sr[a:nc]
            for i in range(m):
                acc[i] = 0.0
                so[i] = 0.0
            for j in range(w):
                xs = close[b + j:b + j + m]
                for i in range(m):
                    acc[i] += xs[i]
            _divide(acc, w, False)
            for j in range(w):
                xs = close[b + j:b + j + m]
                for i in range(m):
                    d = xs[i] - acc[i]
                    so[i] += d * d
            _divide(so, w, True)


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (llvm.fma)."""
    if not (a == types.float64 and b == types.float64 and c == types.float64):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


_DIV_SAFE = 2.0 ** 900
""":func:`_divide` divides by multiplications where ``2**-900 < |a| < 2**900`` (no overflow,
no underflow in the remainders), ``a`` zero or NaN."""


@njit(cache=True)
def _divide(a, w, root):
    """``a[i] = a[i] / w`` (``np.sqrt(a[i] / w)`` with ``root``) in place, the same bits as the
    division: from ``y = 1 / w`` (correctly rounded), ``q = a * y`` and two Newton-Markstein
    corrections ``q += (a - q * w) * y`` (each an FMA); ``q`` is within an ulp of ``a / w``
    after the first, and the second then rounds it correctly (Markstein's theorem: ``y`` within
    half an ulp of ``1 / w``, ``q`` within one ulp of ``a / w``, the remainder exact). A zero
    keeps its sign; a row with any value outside the safe range is divided by ``/``.
    """
    wf = float(w)
    y = 1.0 / wf
    odd = np.uint8(0)
    for i in range(a.shape[0]):
        x = a[i]
        ax = abs(x)
        odd |= np.uint8(not ((ax > 1.0 / _DIV_SAFE) & (ax < _DIV_SAFE))) \
            & np.uint8(x != 0.0) & np.uint8(x == x)
    if odd:
        for i in range(a.shape[0]):
            a[i] = a[i] / wf
    else:
        for i in range(a.shape[0]):
            x = a[i]
            q0 = x * y
            q = _fma(_fma(-q0, wf, x), y, q0)
            q = _fma(_fma(-q, wf, x), y, q)
            a[i] = q if x != 0.0 else q0
    if root:
        for i in range(a.shape[0]):
            a[i] = np.sqrt(a[i])


@intrinsic
def _cttz(typingctx, x):
    """Trailing zero bits of a uint64 (64 for 0)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return types.uint64(types.uint64), codegen


# --- eight float64 lanes: LLVM vectors for bollinger's per-chunk tables ------------------------
# numba has no SIMD type; these intrinsics give a loop over bars explicit <8 x double> values
# (IEEE operations, no fast-math: each lane is the scalar expression's bits), so the running
# sums of eight windows advance in one instruction stream.

_D8 = ir.VectorType(ir.DoubleType(), 8)
_B8 = ir.VectorType(ir.IntType(1), 8)
_Q8 = ir.VectorType(ir.IntType(64), 8)


class _F8Type(types.Type):
    """Eight float64 lanes (LLVM ``<8 x double>``)."""

    def __init__(self):
        super().__init__(name="BollF8")


class _M8Type(types.Type):
    """Eight lane flags (LLVM ``<8 x i1>``)."""

    def __init__(self):
        super().__init__(name="BollM8")


class _U8Type(types.Type):
    """Eight uint64 lanes (LLVM ``<8 x i64>``)."""

    def __init__(self):
        super().__init__(name="BollU8")


_F8 = _F8Type()
_M8 = _M8Type()
_U8 = _U8Type()


@register_model(_F8Type)
class _F8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _D8)


@register_model(_M8Type)
class _M8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _B8)


@register_model(_U8Type)
class _U8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _Q8)


def _lane_type(a):
    """The lane type a C-contiguous 1-d array's elements load as, else None."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"):
        return None
    if a.dtype == types.float64:
        return _F8
    if a.dtype in (types.uint64, types.int64):
        return _U8
    return None


def _lane_ptr(context, builder, aty, ary, idx, ity, vty):
    a = context.make_array(aty)(context, builder, ary)
    i = context.cast(builder, idx, ity, types.intp)
    return builder.bitcast(builder.gep(a.data, [i]), vty.as_pointer())


@intrinsic
def _vload(typingctx, a, i):
    """``a[i:i + 8]`` as eight lanes (no bounds check)."""
    res = _lane_type(a)
    if res is None or not isinstance(i, types.Integer):
        return None
    vty = _D8 if res is _F8 else _Q8

    def codegen(context, builder, sig, args):
        return builder.load(_lane_ptr(context, builder, sig.args[0], args[0], args[1],
                                      sig.args[1], vty), align=8)

    return res(a, i), codegen


@intrinsic
def _vstore(typingctx, a, i, v):
    """``a[i:i + 8] = v`` (no bounds check)."""
    res = _lane_type(a)
    if res is None or res is not v or not isinstance(i, types.Integer):
        return None
    vty = _D8 if res is _F8 else _Q8

    def codegen(context, builder, sig, args):
        builder.store(args[2], _lane_ptr(context, builder, sig.args[0], args[0], args[1],
                                         sig.args[1], vty), align=8)
        return context.get_dummy_value()

    return types.none(a, i, v), codegen


@intrinsic
def _vgather(typingctx, a, base, off):
    """``a[base + off[g]]`` in lane g (``off``: eight int64 offsets; no bounds check): one
    gather instruction (``llvm.masked.gather``, every lane on)."""
    if _lane_type(a) is not _F8 or not isinstance(base, types.Integer) or off is not _U8:
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        b = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.gep(ary.data, [b])
        i64 = ir.IntType(64)
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8)
        pv = builder.insert_element(ir.Constant(_Q8, None), builder.ptrtoint(ptr, i64),
                                    ir.Constant(ir.IntType(32), 0))
        pv = builder.shuffle_vector(pv, ir.Constant(_Q8, None), lanes)
        pv = builder.add(pv, builder.shl(args[2], ir.Constant(_Q8, [3] * 8)))
        ps = builder.inttoptr(pv, ir.VectorType(ptr.type, 8))
        fnty = ir.FunctionType(_D8, [ps.type, ir.IntType(32), _B8, _D8])
        fn = cgutils.get_or_insert_function(builder.module, fnty,
                                            "llvm.masked.gather.v8f64.v8p0f64")
        return builder.call(fn, [ps, ir.Constant(ir.IntType(32), 8),
                                 ir.Constant(_B8, [1] * 8), ir.Constant(_D8, None)])

    return _F8(a, base, off), codegen


@intrinsic
def _vsplat(typingctx, x):
    """Eight copies of a float64 (an integer: eight uint64 lanes)."""
    if x == types.float64:
        res, vty, et = _F8, _D8, types.float64
    elif isinstance(x, types.Integer):
        res, vty, et = _U8, _Q8, types.uint64
    else:
        return None

    def codegen(context, builder, sig, args):
        val = context.cast(builder, args[0], sig.args[0], et)
        v = builder.insert_element(ir.Constant(vty, None), val, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(v, ir.Constant(vty, None),
                                      ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8))

    return res(x), codegen


def _lane_binop(name):
    @intrinsic
    def op(typingctx, a, b):
        if a is not _F8 or b is not _F8:
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, name)(args[0], args[1])

        return _F8(a, b), codegen

    return op


_vadd = _lane_binop("fadd")
_vsub = _lane_binop("fsub")
_vmul = _lane_binop("fmul")


def _lane_fn(name, n):
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_D8, [_D8] * n), name)
        return builder.call(fn, list(args))

    return codegen


@intrinsic
def _vfma(typingctx, a, b, c):
    """``a * b + c`` rounded once, per lane."""
    if a is not _F8 or b is not _F8 or c is not _F8:
        return None
    return _F8(a, b, c), _lane_fn("llvm.fma.v8f64", 3)


@intrinsic
def _vsqrt(typingctx, a):
    if a is not _F8:
        return None
    return _F8(a), _lane_fn("llvm.sqrt.v8f64", 1)


@intrinsic
def _vneg(typingctx, a):
    if a is not _F8:
        return None

    def codegen(context, builder, sig, args):
        return builder.fneg(args[0])

    return _F8(a), codegen


def _lane_cmp(op, unordered=False):
    @intrinsic
    def cmp(typingctx, a, b):
        if a is not _F8 or b is not _F8:
            return None

        def codegen(context, builder, sig, args):
            if unordered:
                return builder.fcmp_unordered(op, args[0], args[1])
            return builder.fcmp_ordered(op, args[0], args[1])

        return _M8(a, b), codegen

    return cmp


_vlt = _lane_cmp("<")
_vgt = _lane_cmp(">")
_veq = _lane_cmp("==")
_vge = _lane_cmp(">=")
_vle = _lane_cmp("<=")
_vnlt = _lane_cmp(">=", True)  # not (a < b): a >= b or either NaN
_vngt = _lane_cmp("<=", True)  # not (a > b)
_vuno = _lane_cmp("uno", True)  # either NaN


@intrinsic
def _vsel(typingctx, m, a, b):
    """``a`` in the lanes where ``m``, else ``b``."""
    if m is not _M8 or a is not b or a not in (_F8, _U8):
        return None

    def codegen(context, builder, sig, args):
        return builder.select(*args)

    return a(m, a, b), codegen


def _mask_op(name):
    @intrinsic
    def op(typingctx, a, b):
        if a is not _M8 or b is not _M8:
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, name)(args[0], args[1])

        return _M8(a, b), codegen

    return op


_mor = _mask_op("or_")
_mand = _mask_op("and_")


@intrinsic
def _mnot(typingctx, a):
    if a is not _M8:
        return None

    def codegen(context, builder, sig, args):
        return builder.not_(args[0])

    return _M8(a), codegen


@intrinsic
def _uor(typingctx, a, b):
    if a is not _U8 or b is not _U8:
        return None

    def codegen(context, builder, sig, args):
        return builder.or_(args[0], args[1])

    return _U8(a, b), codegen


@intrinsic
def _udbl(typingctx, a):
    """``a + a`` per uint64 lane (each bit one up)."""
    if a is not _U8:
        return None

    def codegen(context, builder, sig, args):
        return builder.add(args[0], args[0])

    return _U8(a), codegen


@intrinsic
def _mbits(typingctx, m):
    """The lane flags as bits 0-7 of an int64."""
    if m is not _M8:
        return None

    def codegen(context, builder, sig, args):
        return builder.zext(builder.bitcast(args[0], ir.IntType(8)), ir.IntType(64))

    return types.int64(m), codegen


@intrinsic
def _vorbit(typingctx, acc, m, bit):
    """``acc | bit`` in the lanes where ``m``, ``acc`` elsewhere."""
    if acc is not _U8 or m is not _M8 or bit is not _U8:
        return None

    def codegen(context, builder, sig, args):
        return builder.select(args[1], builder.or_(args[0], args[2]), args[0])

    return _U8(acc, m, bit), codegen


@njit(cache=True, inline="always")
def _vdiv(a, y, wf):
    """``a / w`` per lane, the division's bits for ``a`` +0.0 or ``2**-900 < |a| < 2**900``: from
    ``y = 1 / w``, ``q = a * y`` and two Newton-Markstein corrections, as :func:`_divide`."""
    q0 = _vmul(a, y)
    q = _vfma(_vfma(_vneg(q0), wf, a), y, q0)
    return _vfma(_vfma(_vneg(q), wf, a), y, q)


_LANES = 8
"""Windows whose per-chunk rows :func:`_boll_lanes` builds together, one per vector lane."""

_BOLL_KEEP = 256
"""Windows up to this many bars keep the terms of their two-pass sums between the passes
(:func:`_boll_lanes_vec`; longer ones gather them twice)."""

_LANE_LO = 2.0 ** -200
_LANE_HI = 2.0 ** 200
""":func:`_boll_lanes` takes its vector path on closes within ``[2**-200, 2**200]``: every
close, sum and difference of closes is then a multiple of ``2**-252`` below ``2**210``, so
the divisions of the SMA's sum and the mean's step are in :func:`_vdiv`'s range (the sums of
squares are checked as they go)."""


@njit(cache=True)
def _boll_inputs(close, wins):
    """What :func:`_boll_lanes` reads besides close, for windows up to ``max(wins)``:
    ``(pad, closep, bad)``: ``pad`` zeros, close, then ``16 * pad + 32`` zeros in ``closep`` (a
    bar before bar w reads a zero as the close leaving the SMA's sum; the two-pass sums, 16 or
    32 at a time, read past the last bar into results they drop), and ``bad[t]``: how many of
    ``close[:t]`` are outside ``[2**-200, 2**200]`` (or NaN)."""
    n = close.shape[0]
    wmax = 0.0
    for i in range(wins.shape[0]):
        wmax = max(wmax, wins[i])
    pad = int(min(wmax, float(n))) + 1
    closep = np.zeros(pad + n + 16 * pad + 32)
    closep[pad:pad + n] = close
    bad = np.zeros(n + 1, dtype=np.int64)
    for t in range(n):
        x = close[t]
        bad[t + 1] = bad[t] + (0 if (x >= _LANE_LO) & (x <= _LANE_HI) else 1)
    return pad, closep, bad


@njit(cache=True)
def _boll_lanes(close, closep, pad, bad, wins, st, c0, c1, ks, nk, long_short, kfin, rows, mid,
                sd, bits, rm, rs, scr, fmid, fsd, fscr):
    """Bars ``[c0, c1)`` of ``sma(close, w)`` and ``rolling_pstd(close, w)`` for up to eight
    windows ``w = int(wins[g])`` (lane g), lane-interleaved: bar ``c0 + i`` of lane g in
    ``mid[8 * i + g]`` and ``sd[8 * i + g]`` (lanes past ``len(wins)``: garbage), and their bit
    rows (:func:`_boll_bits`) for the k values ``ks`` (``nk`` slots). The same bits as those
    functions: the same operations in the same order, eight windows per vector instruction.

    pad, closep, bad : :func:`_boll_inputs` of close (for windows up to at least ``wins``)
    st : float64 (len(wins), 3) each window's running state (the SMA's sum, the std's mean and
        sum of squares) after bar ``c0 - 1``: zeros before bar 0, then carried from the call
        for the previous chunk (chunks in order from bar 0, none skipped)
    kfin : every k finite
    rows : store every row of ``mid``/``sd`` (else, on the vector path with finite k and at
        most six slots, only those the bit rows of the first 64-bar words read)
    rm, rs : float64 (>= 8 * (c1 - c0)) scratch: the two-pass mean / sum of squares of a lane's
        recomputation bars
    scr : float64 (2, >= c1 - c0 + 32) scratch
    fmid, fsd, fscr : :func:`_bollinger_chunk_tables`'s rows and scratch for len(wins) windows
        (the path for other closes or windows)

    Vector path (every close up to bar ``c1`` within ``[2**-200, 2**200]``, windows >= 1): the
    two-pass values of each lane's recomputation bars (every bar for windows under 17 bars)
    first, then one loop over the bars advances every lane's sum, Welford mean and sum of
    squares (a lane takes its two-pass values on its recomputation bars), divides
    (:func:`_vdiv`), takes the square root and marks the bit rows. If a sum of squares leaves
    :func:`_vdiv`'s range the chunk is redone by :func:`_bollinger_chunk_tables` from the same
    state. Returns whether the vector path built the chunk (then no row has a NaN or an
    infinity from a lane's first value on).
    """
    g_n = min(wins.shape[0], _LANES)
    nc = c1 - c0
    if nc <= 0:
        return False
    n = close.shape[0]
    wl = np.empty(_LANES, dtype=np.int64)
    wmax = 0
    vec = True
    for g in range(_LANES):
        w = int(wins[min(g, g_n - 1)])
        if g >= g_n and wl[g_n - 1] - (g - g_n + 1) >= 1:
            w = wl[g_n - 1] - (g - g_n + 1)  # a lane past len(wins): continue the sequence
        wl[g] = w
        vec &= w >= 1
        wmax = max(wmax, w)
    # every close so far in range: the running sums carried in ``st`` hold no other values
    vec = vec and bad[c1] == 0 and min(wmax, n) < pad
    if vec and _boll_lanes_vec(close, closep, pad, wl, g_n, st, c0, c1, ks, nk, long_short,
                               kfin, rows or nk > 6, mid, sd, bits, rm, rs, scr):
        if not kfin:
            _boll_bits(close, c0, 0, nc, mid, sd, ks, 0, nk, long_short, True, bits)
        return True
    # other closes, windows under 1 bar, or a sum of squares out of range: window by window
    _bollinger_chunk_tables(close, wins[:g_n], st, c0, c1, fmid, fsd, fscr)
    odd = not kfin
    for g in range(_LANES):
        fm = fmid[min(g, g_n - 1)]
        fs = fsd[min(g, g_n - 1)]
        for i in range(nc):
            mid[8 * i + g] = fm[i]
            sd[8 * i + g] = fs[i]
            odd |= (abs(fm[i]) == np.inf) | (abs(fs[i]) == np.inf)
    _boll_bits(close, c0, 0, nc, mid, sd, ks, 0, nk, long_short, odd, bits)
    return False


@njit(cache=True, inline="always")
def _boll_rows32(closep, t0, w, acc, so):
    """The two-pass mean and sum of squares of 32 consecutive bars (term j of the i-th:
    ``closep[t0 + i + j]``, j < w) into ``acc[:32]`` and ``so[:32]``: eight bars per vector,
    four independent sums per term."""
    wv = _vsplat(float(w))
    yv = _vsplat(1.0 / float(w))
    a0v = _vsplat(0.0)
    a1v = a0v
    a2v = a0v
    a3v = a0v
    for j in range(w):
        a0v = _vadd(a0v, _vload(closep, t0 + j))
        a1v = _vadd(a1v, _vload(closep, t0 + 8 + j))
        a2v = _vadd(a2v, _vload(closep, t0 + 16 + j))
        a3v = _vadd(a3v, _vload(closep, t0 + 24 + j))
    a0v = _vdiv(a0v, yv, wv)
    a1v = _vdiv(a1v, yv, wv)
    a2v = _vdiv(a2v, yv, wv)
    a3v = _vdiv(a3v, yv, wv)
    s0v = _vsplat(0.0)
    s1v = s0v
    s2v = s0v
    s3v = s0v
    for j in range(w):
        d0 = _vsub(_vload(closep, t0 + j), a0v)
        d1 = _vsub(_vload(closep, t0 + 8 + j), a1v)
        d2 = _vsub(_vload(closep, t0 + 16 + j), a2v)
        d3 = _vsub(_vload(closep, t0 + 24 + j), a3v)
        s0v = _vadd(s0v, _vmul(d0, d0))
        s1v = _vadd(s1v, _vmul(d1, d1))
        s2v = _vadd(s2v, _vmul(d2, d2))
        s3v = _vadd(s3v, _vmul(d3, d3))
    _vstore(acc, 0, a0v)
    _vstore(acc, 8, a1v)
    _vstore(acc, 16, a2v)
    _vstore(acc, 24, a3v)
    _vstore(so, 0, s0v)
    _vstore(so, 8, s1v)
    _vstore(so, 16, s2v)
    _vstore(so, 24, s3v)


@njit(cache=True, inline="always")
def _boll_step(xv, ov, s, m, ss, cnt, pv, rm, rs, i, y, wf, oob):
    """One bar of every lane (:func:`_boll_lanes_vec`): the SMA's sum, the Welford mean and
    sum of squares (the two-pass values ``rm``/``rs`` on a recomputation bar: ``cnt`` 0), the
    SMA and the std."""
    zero = _vsplat(0.0)
    s = _vsub(_vadd(s, xv), ov)
    d = _vsub(xv, ov)
    mn = _vadd(m, _vdiv(d, y, wf))
    v = _vadd(ss, _vmul(d, _vsub(_vadd(_vsub(xv, mn), ov), m)))
    v = _vsel(_vlt(v, zero), zero, v)
    rst = _veq(cnt, zero)
    m = _vsel(rst, _vload(rm, 8 * i), mn)
    ss = _vsel(rst, _vload(rs, 8 * i), v)
    cnt = _vsub(_vsel(rst, pv, cnt), _vsplat(1.0))
    oob = _mor(oob, _mor(_vge(ss, _vsplat(_DIV_SAFE)),
                         _mand(_vgt(ss, zero), _vle(ss, _vsplat(1.0 / _DIV_SAFE)))))
    return s, m, ss, cnt, _vdiv(s, y, wf), _vsqrt(_vdiv(ss, y, wf)), oob


@njit(cache=True)
def _boll_lanes_vec(close, closep, pad, wl, g_n, st, c0, c1, ks, nk, long_short, fuse, rows, mid,
                    sd, bits, rm, rs, scr):
    """:func:`_boll_lanes`'s vector path (``fuse``: with the bit rows; without ``rows`` the
    rows of ``mid``/``sd`` from the first 64-bar word in which every lane has a value on are
    not stored); False (``st`` untouched) if a sum of squares is out of :func:`_vdiv`'s
    range."""
    nc = c1 - c0
    cnt0 = np.empty(_LANES)
    per = np.empty(_LANES)
    wfl = np.empty(_LANES)
    yl = np.empty(_LANES)
    off = np.empty(_LANES, dtype=np.int64)
    toff = np.empty(_LANES, dtype=np.int64)
    held = np.empty(16 * _BOLL_KEEP)
    s0 = np.zeros(_LANES)
    m0 = np.zeros(_LANES)
    q0 = np.zeros(_LANES)
    live = 0
    acc = scr[0]
    so = scr[1]
    for g in range(_LANES):
        w = wl[g]
        wfl[g] = float(w)
        yl[g] = 1.0 / float(w)
        off[g] = -min(w, pad)
        cnt0[g] = 2.0 ** 60  # no recomputation bar (lanes past len(wins))
        per[g] = 2.0 ** 60
        if g >= g_n:
            continue
        live |= 1 << g
        s0[g] = st[g, 0]
        m0[g] = st[g, 1]
        q0[g] = st[g, 2]
        a = min(max(w - 1 - c0, 0), nc)  # the lane's first row with a value
        wv = _vsplat(float(w))
        yv = _vsplat(1.0 / float(w))
        if w < _WELFORD_MIN:
            # two passes on every bar from the first (below)
            cnt0[g] = a
            per[g] = 1.0
            continue
        if w > c1:
            continue
        # the recomputation bars t >= w - 1 with (t - w + 1) % w == 0 in the chunk
        first = w - 1
        if c0 > first:
            first += ((c0 - first + w - 1) // w) * w
        cnt0[g] = first - c0
        per[g] = float(w)
        npt = (c1 - 1 - first) // w + 1 if first < c1 else 0
        # eight recomputation bars at a time per vector (their w-bar spans are adjacent):
        # term j of bar first + p * w is closep[tb + p * w + j]
        tb = pad + first - w + 1
        for p in range(_LANES):
            toff[p] = p * w
        tv = _vload(toff, 0)
        keep = w <= _BOLL_KEEP  # pass one's gathered terms kept for pass two
        for p0 in range(0, npt, 2 * _LANES):
            # sixteen bars, two independent sums per term
            t1 = tb + (p0 + _LANES) * w
            av = _vsplat(0.0)
            bv = av
            for j in range(w):
                xa = _vgather(closep, tb + p0 * w + j, tv)
                xb = _vgather(closep, t1 + j, tv)
                if keep:
                    _vstore(held, 16 * j, xa)
                    _vstore(held, 16 * j + 8, xb)
                av = _vadd(av, xa)
                bv = _vadd(bv, xb)
            av = _vdiv(av, yv, wv)
            bv = _vdiv(bv, yv, wv)
            sv = _vsplat(0.0)
            qv = sv
            for j in range(w):
                if keep:
                    xa = _vload(held, 16 * j)
                    xb = _vload(held, 16 * j + 8)
                else:
                    xa = _vgather(closep, tb + p0 * w + j, tv)
                    xb = _vgather(closep, t1 + j, tv)
                dv = _vsub(xa, av)
                sv = _vadd(sv, _vmul(dv, dv))
                ev = _vsub(xb, bv)
                qv = _vadd(qv, _vmul(ev, ev))
            _vstore(acc, p0, av)
            _vstore(so, p0, sv)
            _vstore(acc, p0 + _LANES, bv)
            _vstore(so, p0 + _LANES, qv)
        for p in range(npt):
            r = first - c0 + p * w
            rm[8 * r + g] = acc[p]
            rs[8 * r + g] = so[p]
    # windows under 17 bars: 32 rows of each such lane at a time, lane after lane, so that those
    # rows of rm / rs stay in cache (rows before a lane's first value: never read)
    for i0 in range(0, nc, 4 * _LANES):
        for g in range(g_n):
            w = wl[g]
            if w >= _WELFORD_MIN or w > c1:
                continue
            _boll_rows32(closep, pad + c0 + i0 - w + 1, w, acc, so)
            for r in range(min(4 * _LANES, nc - i0)):
                rm[8 * (i0 + r) + g] = acc[r]
                rs[8 * (i0 + r) + g] = so[r]
    s = _vload(s0, 0)
    m = _vload(m0, 0)
    ss = _vload(q0, 0)
    cnt = _vload(cnt0, 0)
    pv = _vload(per, 0)
    wf = _vload(wfl, 0)
    y = _vload(yl, 0)
    offs = _vload(off, 0)
    # lanes w_0, w_0 - 1, ... (the caller's order for consecutive windows): one load per bar
    contig = wl[0] - _LANES + 1 >= 1 and wl[0] <= pad
    for g in range(1, _LANES):
        contig &= wl[g] == wl[0] - g
    oob = _vlt(wf, wf)
    # a bar before bar w reads a zero from the padding: subtracting it leaves the sum
    base = pad + c0 - wl[0]
    # rows up to the 64-bar word of the last lane's first value, then the rest with their
    # bit rows in the same loop (slots 0-5 and the exits; :func:`_boll_bits` does the others)
    amax = 0
    for g in range(g_n):
        amax = max(amax, min(max(wl[g] - 1 - c0, 0), nc))
    a0 = min(nc, (amax + 63) & ~63) if fuse else nc
    for i in range(a0):
        xv = _vsplat(close[c0 + i])
        ov = _vload(closep, base + i) if contig else _vgather(closep, base + wl[0] + i, offs)
        s, m, ss, cnt, mi, sv, oob = _boll_step(xv, ov, s, m, ss, cnt, pv, rm, rs, i, y, wf,
                                                oob)
        _vstore(mid, 8 * i, mi)
        _vstore(sd, 8 * i, sv)
    for g in range(g_n):
        # rows before bar w - 1 have no value
        for i in range(min(max(wl[g] - 1 - c0, 0), nc)):
            mid[8 * i + g] = np.nan
            sd[8 * i + g] = np.nan
    k0 = _vload(ks, 0)
    k1 = _vload(ks, 8 * min(1, nk - 1))
    k2 = _vload(ks, 8 * min(2, nk - 1))
    k3 = _vload(ks, 8 * min(3, nk - 1))
    k4 = _vload(ks, 8 * min(4, nk - 1))
    k5 = _vload(ks, 8 * min(5, nk - 1))
    one = np.uint64(1)
    for wd in range((a0 + 63) >> 6, (nc + 63) >> 6):
        e0 = _vsplat(np.uint64(0))
        e1 = e0
        e2 = e0
        e3 = e0
        e4 = e0
        e5 = e0
        el = e0
        es = e0
        bit = _vsplat(one)  # bar i's bit: doubled from row to row
        for i in range(wd << 6, min(nc, (wd << 6) + 64)):
            x = close[c0 + i]
            xv = _vsplat(x)
            ov = _vload(closep, base + i) if contig else _vgather(closep, base + wl[0] + i, offs)
            s, m, ss, cnt, mi, sv, oob = _boll_step(xv, ov, s, m, ss, cnt, pv, rm, rs, i, y, wf,
                                                    oob)
            if rows:
                _vstore(mid, 8 * i, mi)
                _vstore(sd, 8 * i, sv)
            el = _vorbit(el, _vnlt(xv, mi), bit)
            if long_short:
                es = _vorbit(es, _vngt(xv, mi), bit)
                e0 = _vorbit(e0, _boll_enter2(xv, mi, sv, k0), bit)
                if nk > 1:
                    e1 = _vorbit(e1, _boll_enter2(xv, mi, sv, k1), bit)
                if nk > 2:
                    e2 = _vorbit(e2, _boll_enter2(xv, mi, sv, k2), bit)
                if nk > 3:
                    e3 = _vorbit(e3, _boll_enter2(xv, mi, sv, k3), bit)
                if nk > 4:
                    e4 = _vorbit(e4, _boll_enter2(xv, mi, sv, k4), bit)
                if nk > 5:
                    e5 = _vorbit(e5, _boll_enter2(xv, mi, sv, k5), bit)
            else:
                # no short: its exit row stays empty (never read)
                e0 = _vorbit(e0, _vlt(xv, _vsub(mi, _vmul(k0, sv))), bit)
                if nk > 1:
                    e1 = _vorbit(e1, _vlt(xv, _vsub(mi, _vmul(k1, sv))), bit)
                if nk > 2:
                    e2 = _vorbit(e2, _vlt(xv, _vsub(mi, _vmul(k2, sv))), bit)
                if nk > 3:
                    e3 = _vorbit(e3, _vlt(xv, _vsub(mi, _vmul(k3, sv))), bit)
                if nk > 4:
                    e4 = _vorbit(e4, _vlt(xv, _vsub(mi, _vmul(k4, sv))), bit)
                if nk > 5:
                    e5 = _vorbit(e5, _vlt(xv, _vsub(mi, _vmul(k5, sv))), bit)
            bit = _udbl(bit)
        _vstore(bits, 8 * (nk * _BOLL_WORDS + wd), el)
        _vstore(bits, 8 * ((nk + 1) * _BOLL_WORDS + wd), es)
        _vstore(bits, 8 * wd, e0)
        if nk > 1:
            _vstore(bits, 8 * (_BOLL_WORDS + wd), e1)
        if nk > 2:
            _vstore(bits, 8 * (2 * _BOLL_WORDS + wd), e2)
        if nk > 3:
            _vstore(bits, 8 * (3 * _BOLL_WORDS + wd), e3)
        if nk > 4:
            _vstore(bits, 8 * (4 * _BOLL_WORDS + wd), e4)
        if nk > 5:
            _vstore(bits, 8 * (5 * _BOLL_WORDS + wd), e5)
    if _mbits(oob) & live:
        return False
    _vstore(s0, 0, s)
    _vstore(m0, 0, m)
    _vstore(q0, 0, ss)
    for g in range(g_n):
        st[g, 0] = s0[g]
        st[g, 1] = m0[g]
        st[g, 2] = q0[g]
    # the rows' other bits: the first words (a lane's first value inside them), slots from 6
    if fuse:
        _boll_bits(close, c0, 0, a0, mid, sd, ks, 0, nk, long_short, False, bits)
        _boll_bits(close, c0, a0, nc, mid, sd, ks, 6, nk, long_short, False, bits)
    return True


@njit(cache=True, inline="always")
def _boll_enter2(xv, mi, sv, kv):
    """Long/short entry test of eight lanes: ``x < mi - k*s or x > mi + k*s``."""
    ksv = _vmul(kv, sv)
    return _mor(_vlt(xv, _vsub(mi, ksv)), _vgt(xv, _vadd(mi, ksv)))


_BOLL_WORDS = FP_CHUNK >> 6
"""64-bar words of a bit row over one chunk."""


@njit(cache=True)
def _boll_bits(close, c0, r0, r1, mid, sd, ks, j0, nk, long_short, odd, bits):
    """Bit rows of rows ``[r0, r1)`` of a chunk (``r0`` a multiple of 64; close from ``c0``;
    lane-interleaved rows ``mid``, ``sd`` of :func:`_boll_lanes`): where a combo's state may
    change, per lane g: row ``j0 <= j < nk`` where a flat combo with ``k = ks[8 * j + g]``
    enters (``band_step``'s entry test, its expressions: exactly those bars), row ``nk`` where
    a long would exit (x >= mid, or a NaN: every bar where it may change), row ``nk + 1`` where
    a short would (x <= mid, or a NaN); the exit rows only with ``j0`` 0. Bar ``c0 + i`` is bit
    ``i & 63`` of ``bits[8 * (r * _BOLL_WORDS + (i >> 6)) + g]`` for row r (bits past the
    chunk's end: 0).

    Without infinities in the rows (``odd`` False) and with finite ``ks``, a band edge
    ``mid -+ k * sd`` is NaN exactly where ``mid`` or ``sd`` is, and a NaN edge already fails
    ``x < lo`` / ``x > up``: the entry bit is the comparison alone. ``odd``: also each k's NaN
    edges (no entry there; both exits)."""
    one = np.uint64(1)
    for wd in range(r0 >> 6, (r1 + 63) >> 6):
        a = wd << 6
        b = min(r1, a + 64)
        el = _vsplat(np.uint64(0))
        es = el
        for i in range(a, b if j0 == 0 else a):
            bit = _vsplat(one << np.uint64(i & 63))
            xv = _vsplat(close[c0 + i])
            mi = _vload(mid, 8 * i)
            nan = _vuno(_vload(sd, 8 * i), mi)
            el = _vorbit(el, _mor(_vnlt(xv, mi), nan), bit)
            es = _vorbit(es, _mor(_vngt(xv, mi), nan), bit)
        nok = _vsplat(np.uint64(0))
        for j in range(j0, nk):
            kv = _vload(ks, 8 * j)
            e = _vsplat(np.uint64(0))
            if odd:
                for i in range(a, b):
                    bit = _vsplat(one << np.uint64(i & 63))
                    xv = _vsplat(close[c0 + i])
                    mi = _vload(mid, 8 * i)
                    ksv = _vmul(kv, _vload(sd, 8 * i))
                    lo = _vsub(mi, ksv)
                    up = _vadd(mi, ksv)
                    bad = _vuno(lo, up)
                    ent = _vlt(xv, lo)
                    if long_short:
                        ent = _mor(ent, _vgt(xv, up))
                    e = _vorbit(e, _mand(ent, _mnot(bad)), bit)
                    nok = _vorbit(nok, bad, bit)
            elif long_short:
                for i in range(a, b):
                    bit = _vsplat(one << np.uint64(i & 63))
                    xv = _vsplat(close[c0 + i])
                    mi = _vload(mid, 8 * i)
                    ksv = _vmul(kv, _vload(sd, 8 * i))
                    e = _vorbit(e, _mor(_vlt(xv, _vsub(mi, ksv)), _vgt(xv, _vadd(mi, ksv))), bit)
            else:
                for i in range(a, b):
                    bit = _vsplat(one << np.uint64(i & 63))
                    xv = _vsplat(close[c0 + i])
                    e = _vorbit(e, _vlt(xv, _vsub(_vload(mid, 8 * i),
                                                  _vmul(kv, _vload(sd, 8 * i)))), bit)
            _vstore(bits, 8 * (j * _BOLL_WORDS + wd), e)
        if odd:
            el = _uor(el, nok)
            es = _uor(es, nok)
        if j0 == 0:
            _vstore(bits, 8 * (nk * _BOLL_WORDS + wd), el)
            _vstore(bits, 8 * ((nk + 1) * _BOLL_WORDS + wd), es)


@njit(cache=True, inline="always")
def _fill(seed, block, cin):
    """The bits (bars) where a state set by ``seed`` and cleared by ``block`` (disjoint) is
    set, entering the word set if ``cin``: from each seed up to the next blocker. A carry
    runs from a seed through the bits of neither (``~block``) and stops at a blocker."""
    pe = ~block
    return (((pe + seed + cin) ^ pe) & pe) | seed


@njit(cache=True)
def _boll_scan_exact(bits, re, rx, c0, c1, start, long_short, rule, prev, ct, cp):
    """A combo's position changes over bars ``[c0, c1)`` from its bit rows alone (entry row at
    ``bits[re + 8 * word]``, long exit at ``rx``, short exit at ``rx + 8 * _BOLL_WORDS``) when
    they are exact (:func:`_boll_lanes`'s vector path, finite k >= 0, so lo <= mid <= up):
    ``band_step`` is long from an entry below the mid (x < lo) until an exit (x >= mid), short
    from an entry above it (x > up) until x <= mid, each state set by its seeds and cleared by
    its blockers (:func:`_fill`, disjoint: x < lo is not x >= mid, x > up is not x <= mid; an
    exit on an entry bar of the other side is that entry). A word of 64 bars at a time; the
    changes are its set bits of ``x ^ (x << 1 | previous bit)``. Bars before ``start`` move
    the state only; bar ``start`` books it. Writes ``ct``/``cp``; returns ``(count, rule,
    prev)``."""
    one = np.uint64(1)
    lc = one if rule > 0.0 else np.uint64(0)
    sc = one if rule < 0.0 else np.uint64(0)
    rs = rx + 8 * _BOLL_WORDS
    j = 0
    for wd in range((c1 - c0 + 63) >> 6):
        b0 = c0 + (wd << 6)
        en = bits[re + 8 * wd]
        xl = bits[rx + 8 * wd]
        lw = _fill(en & ~xl, xl, lc)
        chg = lw ^ ((lw << one) | lc)
        sw = np.uint64(0)
        if long_short:
            sw = _fill(en & xl, bits[rs + 8 * wd], sc)
            chg |= sw ^ ((sw << one) | sc)
        lc = lw >> np.uint64(63)
        sc = sw >> np.uint64(63)
        if start >= c1 or b0 + 64 <= start:
            continue
        if b0 <= start:
            sb = np.uint64(start - b0)
            chg = ((chg >> sb) << sb) | (one << sb)
        while chg:
            b = _cttz(chg)
            pos = float((lw >> b) & one) - float((sw >> b) & one)
            if pos != prev:
                ct[j] = b0 + np.int64(b)
                cp[j] = pos
                j += 1
                prev = pos
            chg &= chg - one
    return j, float(lc) - float(sc), prev


@njit(cache=True)
def bollinger_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                   start, out, bsum, bsq, blk):
    """The fast path of :func:`bollinger_kernel` (kernels/fastpath.py), one chunk of bars at a
    time: the chunk's SMA and std rows of eight windows at once (:func:`_boll_lanes`), their
    bit rows (:func:`_boll_bits`: per window the bars where a flat combo with each of its k
    values would enter, and where a long or a short would exit: shared, the exits do not
    depend on k); each combo jumps from one set bit of its current state's row to the next (a
    word of 64 bars at a time, the first set bit by a count of trailing zeros), runs the exact
    ``band_step`` there, and ``fp_book`` books its changes."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    uniq, idx = unique_windows(params[:, 0].copy())
    nw = uniq.shape[0]
    m = params.shape[0]
    # combos grouped by window
    order = np.argsort(idx, kind="mergesort")
    first = np.zeros(nw + 1, dtype=np.int64)
    for c in range(m):
        first[idx[c] + 1] += 1
    nk = 1
    for u in range(nw):
        nk = max(nk, first[u + 1])
        first[u + 1] += first[u]
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    # windows in groups of eight lanes, descending within a group (consecutive windows: the
    # closes leaving their sums are adjacent)
    ng = (nw + _LANES - 1) // _LANES
    lw = np.zeros((ng, _LANES))
    lu = np.zeros((ng, _LANES), dtype=np.int64)
    gn = np.zeros(ng, dtype=np.int64)
    for q in range(ng):
        g1 = min(nw, (q + 1) * _LANES)
        gn[q] = g1 - q * _LANES
        for g in range(gn[q]):
            lu[q, g] = g1 - 1 - g
            lw[q, g] = uniq[g1 - 1 - g]
    pad, closep, bad = _boll_inputs(close, uniq)
    st = np.zeros((ng, _LANES, 3))
    mid = np.empty(_LANES * FP_CHUNK + 8)
    sd = np.empty(_LANES * FP_CHUNK + 8)
    rm = np.empty(_LANES * FP_CHUNK + 8)
    rs = np.empty(_LANES * FP_CHUNK + 8)
    scr = np.empty((2, FP_CHUNK + 32))
    fmid = np.empty((_LANES, FP_CHUNK + 24))
    fsd = np.empty((_LANES, FP_CHUNK + 24))
    fscr = np.empty((3, _LANES, FP_CHUNK + 24))
    ks = np.zeros(_LANES * nk)
    bits = np.zeros(_LANES * _BOLL_WORDS * (nk + 2), dtype=np.uint64)
    kfin = True
    kpos = True
    for c in range(m):
        kfin &= abs(params[c, 1]) < np.inf
        kpos &= params[c, 1] >= 0.0
    one = np.uint64(1)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        nc = c1 - c0
        nwd = (nc + 63) >> 6
        for q in range(ng):
            # k of slot j of lane g: its window's j-th combo (the last one repeated)
            for g in range(_LANES):
                u = lu[q, min(g, gn[q] - 1)]
                for j in range(nk):
                    ks[8 * j + g] = params[order[min(first[u] + j, first[u + 1] - 1)], 1]
            # rows from the vector path (no NaN, no infinity from a lane's first value; before
            # it the state is flat) and finite k >= 0 (lo <= mid <= up): the bits are the rule
            exact = _boll_lanes(close, closep, pad, bad, lw[q, :gn[q]], st[q], c0, c1, ks, nk,
                                long_short, kfin, not (kfin and kpos), mid, sd, bits, rm, rs,
                                scr, fmid, fsd, fscr) and kfin and kpos
            for g in range(gn[q]):
                u = lu[q, g]
                for p in range(first[u], first[u + 1]):
                    c = order[p]
                    k = params[c, 1]
                    rule = state[c, 15]
                    prev = state[c, 13]
                    j = 0
                    t = c0
                    if exact:
                        j, rule, prev = _boll_scan_exact(
                            bits, 8 * (p - first[u]) * _BOLL_WORDS + g, 8 * nk * _BOLL_WORDS + g,
                            c0, c1, start, long_short, rule, prev, ct, cp)
                    while t < c1 and not exact:
                        # the row of the current state: entry (slot p - first[u]) / exits
                        r = p - first[u] if rule == 0.0 else (nk if rule > 0.0 else nk + 1)
                        row = 8 * r * _BOLL_WORDS + g
                        stop = min(start, c1) if t <= start else c1
                        # the first bar from t with the row's bit (bits past the chunk: 0)
                        i = t - c0
                        wj = i >> 6
                        v = (bits[row + 8 * wj] >> np.uint64(i & 63)) << np.uint64(i & 63)
                        while v == 0 and wj < nwd - 1:
                            wj += 1
                            v = bits[row + 8 * wj]
                        e = c0 + ((wj << 6) + np.int64(_cttz(v)) if v else nc)
                        if t <= start:
                            # before start only the state moves; bar start books it
                            if e >= stop:
                                if start >= c1:
                                    break
                                e = start
                        elif e >= c1:
                            break
                        ie = e - c0
                        sh = np.uint64(ie & 63)
                        wi = 8 * (ie >> 6)
                        if (bits[row + wi] >> sh) & one:
                            mi = mid[8 * ie + g]
                            sv = sd[8 * ie + g]
                            rule = band_step(rule, close[e], mi - k * sv, mi, mi + k * sv,
                                             long_short)
                        if e >= start and rule != prev:
                            ct[j] = e
                            cp[j] = rule
                            j += 1
                            prev = rule
                        t = e + 1
                    state[c, 15] = rule
                    fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n,
                            ppy, out[c])


BOLLINGER = register(Strategy(
    name="bollinger",
    family="reversion",
    description="Long below SMA - k*std, short above SMA + k*std (long/short), exit at the SMA.",
    space=ParamSpace(
        dims=(Int("window", 10, 100, default=20, hard_min=2),
              Float("k", 1.0, 3.0, default=2.0, hard_min=0.0)),
        strategy="bollinger",
    ),
    kernel=bollinger_kernel,
    fast=bollinger_fast,
    warmup=lambda p: int(p["window"]) - 1,
    cost_ns=3.5,
))


@njit(cache=True)
def vwap_zscore(high, low, close, volume, w):
    """z-score of close against the rolling VWAP of the typical price ``(h + l + c) / 3``:
    ``(close - vwap) / std(close - vwap)``, both over ``w`` bars, the std with ddof=0; 0 where
    that std is 0. Defined from bar ``2 * w - 2`` (the deviation needs ``w - 1`` bars first)."""
    n = close.shape[0]
    z = np.full(n, np.nan)
    if w < 1 or 2 * w - 1 > n:
        return z
    tp = (high + low + close) / 3.0
    dev = close - rolling_vwap(tp, volume, w)
    sd = np.full(n, np.nan)
    sd[w - 1:] = rolling_pstd(dev[w - 1:], w)
    for t in range(2 * w - 2, n):
        if sd[t] > 0.0:
            z[t] = dev[t] / sd[t]
        elif sd[t] == 0.0:
            z[t] = 0.0
    return z


@njit(cache=True)
def vwap_reversion_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                          long_short, start, out, returns_out):
    """Band reversion of the close-vs-VWAP z-score at -+z, exit at 0. params: window, z."""
    n = close.shape[0]
    r = bar_returns(close)
    uniq, idx = unique_windows(params[:, 0].copy())
    table = np.empty((uniq.shape[0], n))
    for i in range(uniq.shape[0]):
        table[i] = vwap_zscore(high, low, close, volume, int(uniq[i]))
    for c in range(params.shape[0]):
        zs = table[idx[c]]
        ze = params[c, 1]
        tail = tail_init()
        state = 0.0
        for t in range(n):
            state = band_step(state, zs[t], -ze, 0.0, ze, long_short)
            if t < start:
                continue
            tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def vwap_reversion_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                        start, out, bsum, bsq, blk):
    """The fast path of :func:`vwap_reversion_kernel` (kernels/fastpath.py): the same band state machine per bar, its changes booked by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    uniq, idx = unique_windows(params[:, 0].copy())
    table = np.empty((uniq.shape[0], n))
    for i in range(uniq.shape[0]):
        table[i] = vwap_zscore(high, low, close, volume, int(uniq[i]))
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            zs = table[idx[c]]
            ze = params[c, 1]
            rule = state[c, 15]
            j = 0
            prev = state[c, 13]
            for t in range(c0, c1):
                rule = band_step(rule, zs[t], -ze, 0.0, ze, long_short)
                if t >= start:
                    ct[j] = t
                    cp[j] = rule
                    j += rule != prev
                    prev = rule
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


VWAP_REVERSION = register(Strategy(
    name="vwap_reversion",
    family="reversion",
    description="Long when close is z std below its rolling VWAP, short z above (long/short), exit at VWAP.",
    space=ParamSpace(
        dims=(Int("window", 10, 100, default=20, hard_min=2),
              Float("z", 1.0, 3.0, default=2.0, hard_min=0.0)),
        strategy="vwap_reversion",
    ),
    kernel=vwap_reversion_kernel,
    fast=vwap_reversion_fast,
    needs=("high", "low", "volume"),
    warmup=lambda p: 2 * int(p["window"]) - 2,
    cost_ns=3,
))


@njit(cache=True)
def nw_band(close, h, w):
    """Nadaraya-Watson estimate and its mean absolute deviation: two (bars,) arrays.

    The deviation is the mean over the last ``w`` bars of ``|close - estimate|``, each bar
    against its own causal estimate (nothing repaints). The estimate is defined from bar
    ``w - 1``, the deviation from bar ``2 * w - 2``.
    """
    n = close.shape[0]
    est = nw_regression(close, h, w)
    mad = np.full(n, np.nan)
    if w <= n:
        mad[w - 1:] = sma(np.abs(close[w - 1:] - est[w - 1:]), w)
    return est, mad


@njit(cache=True)
def nw_envelope_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                       long_short, start, out, returns_out):
    """Band reversion around a causal Nadaraya-Watson estimate +- mult * MAD.
    params: bandwidth, mult, window."""
    n = close.shape[0]
    r = bar_returns(close)
    ub, uw, idx = unique_pairs(params[:, 0].copy(), params[:, 2].copy())
    est = np.empty((ub.shape[0], n))
    mad = np.empty((ub.shape[0], n))
    for i in range(ub.shape[0]):
        est[i], mad[i] = nw_band(close, ub[i], int(uw[i]))
    for c in range(params.shape[0]):
        e = est[idx[c]]
        d = mad[idx[c]]
        k = params[c, 1]
        tail = tail_init()
        state = 0.0
        for t in range(n):
            state = band_step(state, close[t], e[t] - k * d[t], e[t], e[t] + k * d[t], long_short)
            if t < start:
                continue
            tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def nw_envelope_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                     start, out, bsum, bsq, blk):
    """The fast path of :func:`nw_envelope_kernel` (kernels/fastpath.py): the same band state machine per bar, its changes booked by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    ub, uw, idx = unique_pairs(params[:, 0].copy(), params[:, 2].copy())
    est = np.empty((ub.shape[0], n))
    mad = np.empty((ub.shape[0], n))
    for i in range(ub.shape[0]):
        est[i], mad[i] = nw_band(close, ub[i], int(uw[i]))
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            e = est[idx[c]]
            d = mad[idx[c]]
            k = params[c, 1]
            rule = state[c, 15]
            j = 0
            prev = state[c, 13]
            for t in range(c0, c1):
                rule = band_step(rule, close[t], e[t] - k * d[t], e[t], e[t] + k * d[t], long_short)
                if t >= start:
                    ct[j] = t
                    cp[j] = rule
                    j += rule != prev
                    prev = rule
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


NW_ENVELOPE = register(Strategy(
    name="nw_envelope",
    family="reversion",
    description="Long below a causal Nadaraya-Watson estimate - mult*MAD, short above + (long/short), exit at it.",
    space=ParamSpace(
        dims=(Float("bandwidth", 2.0, 16.0, default=8.0, hard_min=0.1),
              Float("mult", 1.0, 4.0, default=2.0, hard_min=0.0),
              Int("window", 20, 150, default=50, hard_min=2)),
        constraints=(Constraint("bandwidth", "<", "window"),),
        strategy="nw_envelope",
    ),
    kernel=nw_envelope_kernel,
    fast=nw_envelope_fast,
    warmup=lambda p: 2 * int(p["window"]) - 2,
    cost_ns=9.5,
))
