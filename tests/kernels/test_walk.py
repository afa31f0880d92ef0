"""Walk-forward accounting on cached series (``kernels.walk``) against the slow reference of
docs/conventions.md (``tests.reference.book_metrics`` given the earned P&L): a segment is booked
entering flat at its first bar; a path is one pass with the position carried."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.kernels.metrics import N_METRICS
from quantfleet.kernels.walk import path_metrics, segment_metrics
from tests import reference as ref
from tests.kernels.test_accumulator import _assert_rows, _positions


def _series(rng, combos, n, kind, vol):
    """Positions and what each held position earned: ``held * r`` (a fraction of equity)."""
    pos = np.stack([_positions(rng, n, kind, 0.3, 0.8) for _ in range(combos)])
    r = rng.normal(0.0, vol, n)
    held = np.concatenate([np.zeros((combos, 1)), pos[:, :-1]], axis=1)
    return pos, held * r


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 200),
    kind=st.sampled_from(["long", "long_short", "fractional"]),
    fee_rate=st.sampled_from([0.0, 1e-3, 0.02]),
    vol=st.sampled_from([0.001, 0.02, 0.2]),
)
def test_segment_metrics_match_the_reference(seed, n, kind, fee_rate, vol):
    rng = np.random.default_rng(seed)
    pos, earned = _series(rng, 3, n, kind, vol)
    # random segments, the first and the last bar included, one of a single bar
    lo = rng.integers(0, n, 5)
    hi = np.minimum(n, lo + rng.integers(1, n + 1, 5))
    bounds = np.stack([np.r_[lo, 0, n - 1], np.r_[hi, n, n]], axis=1).astype(np.int64)
    out = np.empty((3, bounds.shape[0], N_METRICS))
    segment_metrics(pos, earned, bounds, fee_rate, 252.0, out)
    for c in range(3):
        for s, (a, b) in enumerate(bounds):
            want, _ = ref.book_metrics(pos[c, a:b], None, fee_rate, 252.0, earned=earned[c, a:b])
            _assert_rows(out[c, s], want)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    kind=st.sampled_from(["long", "long_short", "fractional"]),
    fee_rate=st.sampled_from([0.0, 1e-3, 0.02]),
)
def test_path_metrics_match_the_reference(seed, n, kind, fee_rate):
    rng = np.random.default_rng(seed)
    pos, earned = _series(rng, 1, n, kind, 0.02)
    out = np.empty(N_METRICS)
    rets = np.empty(n)
    path_metrics(pos[0], earned[0], fee_rate, 365.0, out, rets)
    want, rb = ref.book_metrics(pos[0], None, fee_rate, 365.0, earned=earned[0])
    _assert_rows(out, want)
    np.testing.assert_allclose(rets, rb, rtol=0, atol=1e-15)
    # the path is the one segment spanning all its bars
    seg = np.empty((1, 1, N_METRICS))
    segment_metrics(pos, earned, np.array([[0, n]], dtype=np.int64), fee_rate, 365.0, seg)
    np.testing.assert_array_equal(seg[0, 0], out)


def test_the_first_bar_of_a_segment_earns_nothing_and_pays_the_entry():
    # held long over bars 1..3 in the full series; the segment [2, 4) enters flat at bar 2
    pos = np.array([[1.0, 1.0, 1.0, 0.0]])
    earned = np.array([[0.0, 0.10, 0.20, 0.05]])
    out = np.empty((1, 1, N_METRICS))
    segment_metrics(pos, earned, np.array([[2, 4]], dtype=np.int64), 0.01, 252.0, out)
    # bar 2: +20 % missed, entry fee 1 %; bar 3: +5 % then the exit fee 1 %
    assert out[0, 0, 0] == pytest.approx(0.99 * 1.05 * 0.99 - 1.0, abs=1e-15)
    assert out[0, 0, 9] == 2.0  # turnover: in and out
