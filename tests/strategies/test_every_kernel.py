"""Every registered strategy through the one per-bar tail: its metrics are those of its own
positions under the conventions (the slow reference of tests/reference.py), and the optional
stores change nothing; a strategy's fast path (kernels/fastpath.py) gives the same metrics."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from quantfleet.data import load
from quantfleet.strategies import all_strategies
from tests import reference as ref

MARKET = load("synthetic:gbm?bars=700&assets=1&seed=11&freq=1D&funding=1&vol=0.4")


@pytest.mark.parametrize("long_short", [False, True], ids=["long_only", "long_short"])
@pytest.mark.parametrize("strategy", all_strategies(), ids=lambda s: s.name)
def test_metrics_are_those_of_the_kernels_positions(strategy, long_short):
    rng = np.random.default_rng(zlib.crc32(f"{strategy.name}:{long_short}".encode()))
    params = strategy.space.sample(rng, 4)
    if strategy.name == "funding_carry":
        # synthetic funding averages +1 bp: only short windows ever dip below -threshold
        params[:, 0] = [3, 4, 5, 6]
        params[:, 1] = np.minimum(params[:, 1], 2e-5)
    start, fee_rate, ppy = 230, 7e-4, 365.0
    kw = dict(fee_rate=fee_rate, ppy=ppy, long_short=long_short, start=start)
    per_bar = dataclasses.replace(strategy, fast=None)
    bare, none = per_bar.run_asset(MARKET, 0, params, **kw)
    # metrics alone go through the fast path when the strategy has one
    quick = strategy.run_asset(MARKET, 0, params, **kw)[0]
    out, rets, pos = strategy.run_asset(MARKET, 0, params, returns=True, positions=True, **kw)
    assert none is None
    assert (pos != 0).any(), "no position taken: the check would be vacuous"
    np.testing.assert_array_equal(bare, out)  # the stores change no metric
    if not long_short:
        assert (pos >= 0).all()
    close = MARKET.close[0, start:]
    r = np.concatenate([[0.0], close[1:] / close[:-1] - 1.0])  # the first counted bar earns nothing
    if strategy.extras == ("funding_rate",):
        r[1:] -= np.nan_to_num(MARKET.field("funding_rate")[0, start + 1:])
    for c in range(params.shape[0]):
        want, rb = ref.book_metrics(pos[c], r, fee_rate, ppy)
        ref.assert_metrics_close(out[c], want)
        ref.assert_metrics_close(quick[c], want)
        np.testing.assert_allclose(rets[c], rb, rtol=0, atol=1e-13)
    # a batch is the combos one by one, bit for bit (per-bar kernel and fast path alike)
    for c in range(params.shape[0]):
        np.testing.assert_array_equal(per_bar.run_asset(MARKET, 0, params[c:c + 1], **kw)[0][0],
                                      bare[c])
        np.testing.assert_array_equal(strategy.run_asset(MARKET, 0, params[c:c + 1], **kw)[0][0],
                                      quick[c])
