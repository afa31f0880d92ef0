"""The two-valued rules packed 64 bars to a word by LLVM vector code (strategies/trend.py:
``_trend_word``, ``_cross_word``, ``_ema_word``) against each rule's scalar expression in numpy,
bit for bit: ties (values from a small set, so both sides are often equal), signed zeros,
NaN and infinities, any offset into the arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from quantfleet.strategies.trend import _cross_word, _ema_word, _trend_word


@njit(cache=False)
def _trend(a, b, c, base, p, q):
    return _trend_word(a, b, c, base, p, q)


@njit(cache=False)
def _cross(a, b, c, base, p, q):
    return _cross_word(a, b, c, base, p, q)


@njit(cache=False)
def _ema(a, b, c, base, p, q):
    return _ema_word(a, b, c, base, p, q)


_RULES = {
    "trend": (_trend, lambda a, b, c, p, q: a * p > b - c),
    "cross": (_cross, lambda a, b, c, p, q: (a - b) * p > (a - c) * q),
    "ema": (_ema, lambda a, b, c, p, q: a > b),
}


def _values(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "ties":
        return rng.choice([0.0, -0.0, 1.0, 2.0, 3.0, 0.5], n)
    if kind == "special":
        return rng.choice([0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e308, 5e-324], n)
    return rng.normal(100.0, 1.0, n) * 10.0 ** rng.integers(-3, 4, n)


@pytest.mark.parametrize("rule", sorted(_RULES))
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), base=st.integers(0, 200),
       kind=st.sampled_from(["ties", "special", "walk"]),
       p=st.sampled_from([1.0, 2.0, 3.0, 0.5, 7.0, 250.0]),
       q=st.sampled_from([1.0, 2.0, 5.0, 0.25, 13.0]))
def test_rule_word_is_the_scalar_rule_bar_by_bar(rule, seed, base, kind, p, q):
    rng = np.random.default_rng(seed)
    n = base + 64 + int(rng.integers(0, 5))
    a, b, c = (_values(rng, n, kind) for _ in range(3))
    word, scalar = _RULES[rule]
    got = int(word(a, b, c, base, p, q))
    s = slice(base, base + 64)
    with np.errstate(invalid="ignore", over="ignore"):
        bits = scalar(a[s], b[s], c[s], p, q)
    want = sum(1 << i for i in range(64) if bits[i])
    assert got == want
