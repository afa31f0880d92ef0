"""Walk-forward splits in bars and durations."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.errors import QuantfleetError
from quantfleet.research.windows import walk_forward


def _days(n: int) -> np.ndarray:
    return (np.datetime64("2020-01-01") + np.arange(n)).astype("datetime64[ns]")


def test_rolling_bars():
    w = walk_forward(_days(100), train=40, test=20)
    assert [(x.train_start, x.train_end, x.test_start, x.test_end) for x in w] == [
        (0, 40, 40, 60), (20, 60, 60, 80), (40, 80, 80, 100)]


def test_anchored_and_short_last_window():
    w = walk_forward(_days(95), train=40, test=20, anchored=True)
    assert [(x.train_start, x.train_end, x.test_start, x.test_end) for x in w] == [
        (0, 40, 40, 60), (0, 60, 60, 80), (0, 80, 80, 95)]


def test_n_windows_alone():
    w = walk_forward(_days(100), n_windows=4)
    assert len(w) == 4 and all(x.test_end - x.test_start == 20 for x in w)


def test_durations():
    ts = _days(800)
    w = walk_forward(ts, train="1Y", test="3M")
    assert str(ts[w[0].test_start])[:10] == "2021-01-01"
    assert str(ts[w[0].test_end])[:10] == "2021-04-01"
    assert str(ts[w[1].train_start])[:10] == "2020-04-01"


def test_errors():
    with pytest.raises(QuantfleetError, match="give both --train and --test, or --windows K"):
        walk_forward(_days(100), train=10)
    with pytest.raises(QuantfleetError, match=r"window length '3 fortnights' is neither"):
        walk_forward(_days(100), train="3 fortnights", test=5)
    with pytest.raises(QuantfleetError, match="no walk-forward window fits: 100 bars, train 200"):
        walk_forward(_days(100), train=200, test=10)
    with pytest.raises(QuantfleetError, match=r"train must be >= 1 bar \(got 0\)"):
        walk_forward(_days(100), train=0, test=10)
