"""The fast path's building blocks bit for bit against slow references written from their
definitions: the chunk tables (cascaded prefix sums row by row in Python floats, the sparse
tables against numpy's min/max), the change bars of a packed rule (numpy), and the booking's
held-bar and fill steps (the per-bar accumulator step ``acc_step`` itself). The fast path's
results are only as exact as these are, so these compare bits, not tolerances (the drawdown
of the held-bar and fill steps: to the ulp, where its test rounds differently)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.kernels.fastpath import (
    FP_CHUNK,
    _fill_step,
    _hold_step,
    fp_book,
    fp_book_words,
    fp_chunk,
    fp_prepare,
    fp_state,
)
from quantfleet.kernels.metrics import acc_step


def _two_sum(a: float, b: float) -> tuple[float, float]:
    """Knuth's error-free sum: a + b = s + e exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _cascaded_prefix(x: list[float]) -> list[tuple[float, float]]:
    """Running cascaded sums: row i = (the plain running sum of x[0] ... x[i-1], the plain
    running sum of each addition's exact rounding error)."""
    rows = [(0.0, 0.0)]
    hi = lo = 0.0
    for v in x:
        hi, e = _two_sum(hi, v)
        lo += e
        rows.append((hi, lo))
    return rows


def _walk(rng: np.random.Generator, n: int, jumps: bool, flat: bool) -> np.ndarray:
    r = rng.normal(0.0, 0.03, n)
    if jumps and n > 3:
        at = rng.integers(1, n, size=max(1, n // 50))
        r[at] = rng.choice([-0.5, 0.8, 1.5], size=at.size)  # 1.5: a bar return >= 1
    close = 100.0 * np.exp(np.cumsum(r))
    if flat and n > 10:
        for a in rng.integers(0, n - 5, size=max(1, n // 40)):
            close[a:a + int(rng.integers(2, 20))] = close[a]
    return close


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a, dtype=float).view(np.int64),
                          np.asarray(b, dtype=float).view(np.int64))


def _same_state(got, ref) -> bool:
    """Accumulator states bit for bit but the drawdown (index 2), within 2 ulps: the fast path
    keeps the largest ``1 - eq/peak``, acc_step divides after ``eq < peak * (1 - maxdd)``, and
    the two tests can round apart where the new drawdown ties the old."""
    got, ref = list(got), list(ref)
    dd_got, dd_ref = got.pop(2), ref.pop(2)
    return _same(got, ref) and abs(dd_got - dd_ref) <= 2 * np.spacing(abs(dd_ref))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 2 * FP_CHUNK + 50),
       long_short=st.booleans(), jumps=st.booleans(), flat=st.booleans())
def test_chunk_tables_are_the_row_by_row_cascaded_sums(seed, n, long_short, jumps, flat):
    rng = np.random.default_rng(seed)
    close = _walk(rng, n, jumps, flat)
    fp = fp_prepare(close, long_short)
    # several chunks through one fp: each fill stands alone (nothing left from the one before)
    starts = sorted({0, int(rng.integers(0, n)), int(rng.integers(0, n))})
    for c0 in starts:
        c1 = int(min(n, c0 + rng.integers(1, FP_CHUNK + 1)))
        m = c1 - c0
        fp_chunk(fp, c0, c1)
        _, T, V, SP, LG, info = fp
        r = [close[t] / close[t - 1] - 1.0 if t > 0 else 0.0 for t in range(c0, c1)]
        assert info[0] == c0 and info[1] == c1
        assert info[2] == (0.0 if long_short and max(r) >= 1.0 else 1.0)
        for side, sg in ((0, 1.0), (1, -1.0))[: 2 if long_short else 1]:
            g = [(1.0 + sg * x) - 1.0 for x in r]
            for col, vals in ((0, g), (2, [v * v for v in g]),
                              (4, [v * v if v < 0.0 else 0.0 for v in g])):
                ref = np.array(_cascaded_prefix(vals))
                c = 1 + 6 * side + col
                assert _same(T[:m + 1, c:c + 2], ref), (side, col)
                # and the pair is the exact sum to far better than the metrics need
                for i in (m // 2, m):
                    exact = math.fsum(vals[:i])
                    got = T[i, c] + T[i, c + 1]
                    assert abs(got - exact) <= 1e-15 * math.fsum(map(abs, vals[:i])) + 1e-300
        assert _same(T[:m, 0], r)  # each bar's return, bar_returns' expression
        assert _same(V[0, :m], close[c0:c1])
        if long_short:
            logs = np.array(_cascaded_prefix([math.log1p(-x) if x < 1.0 else 0.0 for x in r]))
            assert _same(T[:m + 1, 13:15], logs)
            assert _same(V[1, :m], logs[1:, 0] + logs[1:, 1])
        # the sparse tables: level l, row i = min / max of V[i : i + 2**l]
        for side in range(2 if long_short else 1):
            for lev in range(SP.shape[2]):
                w = 1 << lev
                if w > m:
                    break
                win = np.lib.stride_tricks.sliding_window_view(V[side, :m], w)
                assert _same(SP[side, 0, lev, :m - w + 1], win.min(axis=1)), (side, lev)
                assert _same(SP[side, 1, lev, :m - w + 1], win.max(axis=1)), (side, lev)
        assert all(LG[i] == i.bit_length() - 1 for i in range(1, FP_CHUNK + 1))


def _pack(bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``bits`` packed 64 to a uint64 word, bit i of word j = bits[64 j + i]; the bits past the
    end of the last word random (fp_book_words must ignore them)."""
    nw = (bits.size + 63) // 64
    padded = rng.integers(0, 2, nw * 64).astype(np.uint8)
    padded[:bits.size] = bits
    return np.packbits(padded, bitorder="little").view("<u8").astype(np.uint64)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, FP_CHUNK),
       p_change=st.sampled_from([0.0, 0.001, 0.05, 0.3, 0.9, 1.0]),
       prev=st.sampled_from([0.0, 1.0, -1.0]), low=st.sampled_from([0.0, -1.0]),
       fee=st.sampled_from([0.0, 0.001]), blocks=st.sampled_from([0, 4]), data=st.data())
def test_book_words_is_book_of_the_change_bars(seed, n, p_change, prev, low, fee, blocks, data):
    """A packed two-valued rule (many 64-bar words, a partial last one, changes from none to
    every bar, bits past the end random) booked straight from its words gives, bit for bit,
    what fp_book gives of its change bars as numpy finds them (the bars whose position differs
    from the bar before's, the first against the position held before)."""
    rng = np.random.default_rng(seed)
    close = _walk(rng, n, True, True)
    t0 = data.draw(st.integers(0, n), label="t0")
    m = n - t0
    bits = (np.cumsum(rng.random(m) < p_change) % 2).astype(np.uint8)
    if m and rng.random() < 0.5:
        bits ^= 1
    pos = np.where(bits == 1, 1.0, low)
    before = np.r_[prev, pos[:-1]] if m else pos
    where = np.flatnonzero(pos != before)
    ct = (where + t0).astype(np.int64)
    cp = pos[where].copy()
    fp = fp_prepare(close, True)
    fp_chunk(fp, 0, n)
    bl = n // blocks if blocks else 0
    ns = blocks if bl else 0
    got = []
    for book in ("changes", "words"):
        state = fp_state(1, 0)
        state[0, 13] = prev
        out = np.zeros((1, 20))
        bsum = np.zeros((ns, 1))
        bsq = np.zeros((ns, 1))
        blk = (n - bl * ns, max(bl, 1), ns)
        if book == "changes":
            fp_book(fp, ct, cp, ct.size, state, 0, fee, bsum, bsq, blk, True, 252.0, out[0])
        else:
            fp_book_words(fp, _pack(bits, rng), m, t0, 1.0, low, state, 0, fee, bsum, bsq, blk,
                          True, 252.0, out[0], np.full(m + 64, -1, dtype=np.int64))
        got.append((state, out, bsum, bsq))
    for a, b in zip(*got, strict=True):
        assert _same(a, b)


_STATES = st.tuples(
    st.floats(0.01, 3.0), st.floats(0.01, 3.0), st.floats(0.0, 0.99), st.integers(0, 500),
    st.floats(-1.0, 1.0), st.floats(0.0, 2.0), st.floats(0.0, 1.0), st.integers(0, 50),
    st.integers(0, 50), st.integers(0, 50), st.floats(0.01, 3.0), st.integers(0, 500),
    st.floats(0.0, 100.0))
_RETURNS = st.one_of(st.just(0.0), st.floats(-0.99, 2.0), st.floats(-1e-12, 1e-12))


@settings(max_examples=300, deadline=None)
@given(state=_STATES, p=st.sampled_from([1.0, -1.0]), r=_RETURNS)
def test_hold_step_is_acc_step_of_a_held_bar(state, p, r):
    st0 = tuple(float(x) for x in state)
    ref = acc_step(st0, p, p, r, 0.001)
    eq, peak, maxdd, s1, s2, down2 = _hold_step(st0[0], st0[1], st0[2], st0[4], st0[5], st0[6],
                                                p, r)
    got = (eq, peak, maxdd, st0[3] + 1.0, s1, s2, down2, *st0[7:11], st0[11] + 1.0, st0[12])
    assert _same_state(got, ref)


@settings(max_examples=500, deadline=None)
@given(state=_STATES, prev=st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.0]),
       pos=st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.0]), r=_RETURNS,
       fee=st.sampled_from([0.0, 0.001, 0.02]))
def test_fill_step_is_acc_step_of_a_bar_where_the_position_moves(state, prev, pos, r, fee):
    if pos == prev:
        return  # fp_book takes acc_step itself there
    st0 = tuple(float(x) for x in state)
    assert _same_state(_fill_step(st0, prev, pos, r, fee), acc_step(st0, prev, pos, r, fee))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), side=st.sampled_from([1.0, -1.0]),
       entry=st.integers(300, 310), hold=st.integers(1, 18))
def test_a_trade_over_unchanged_closes_books_no_return(seed, side, entry, hold):
    """A trade entered and left inside a run of equal closes (fee 0) earns exactly nothing, as
    the per-bar product of 1.0s does: equity stays 1.0 bit for bit and the trade is no win,
    however much rounding the chunk's prefixes carry from the bars before the run."""
    rng = np.random.default_rng(seed)
    close = np.r_[100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, 300))), np.zeros(30)]
    close[300:] = close[299]
    fp = fp_prepare(close, True)
    fp_chunk(fp, 0, close.size)
    state = fp_state(1, 0)
    out = np.zeros((1, 20))
    none = np.zeros((0, 1))
    ct = np.array([entry, entry + hold], dtype=np.int64)
    cp = np.array([side, 0.0])
    fp_book(fp, ct, cp, 2, state, 0, 0.0, none, none, (0, 1, 0), True, 252.0, out[0])
    eq, _, _, n, _, _, _, entries, wins, closed = state[0, :10]
    assert (eq, n, entries, wins, closed) == (1.0, close.size, 1.0, 0.0, 1.0)
