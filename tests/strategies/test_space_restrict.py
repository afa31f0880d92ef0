"""ParamSpace.restrict: a search space narrowed to an explicit grid, constraints kept."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.errors import StrategyError
from quantfleet.strategies import get
from quantfleet.strategies.space import Choice, Int, ParamSpace


def test_evenly_spaced_integers_become_a_stepped_range():
    space = get("sma_cross").space
    r = space.restrict({"fast": [5, 10, 15, 20]})
    fast = r.dim("fast")
    assert isinstance(fast, Int) and (fast.low, fast.high, fast.step) == (5, 20, 5)
    assert fast.hard_min == space.dim("fast").hard_min and fast.default == 10
    assert r.dim("slow") == space.dim("slow")  # not named: its search range
    assert r.constraints == space.constraints and r.strategy == space.strategy


def test_other_lists_become_a_choice_of_exactly_those_values():
    r = get("sma_cross").space.restrict({"slow": [100, 20, 50, 50]})
    slow = r.dim("slow")
    assert isinstance(slow, Choice) and slow.options == (20.0, 50.0, 100.0)
    r = get("rsi").space.restrict({"lower": [20.0, 25.0, 30.0]})  # a float: never a range
    assert isinstance(r.dim("lower"), Choice) and r.dim("lower").options == (20.0, 25.0, 30.0)


def test_a_single_value_pins_the_parameter():
    r = get("sma_cross").space.restrict({"fast": [12]})
    assert (r.dim("fast").low, r.dim("fast").high) == (12, 12)
    rows = r.sample(np.random.default_rng(0), 50)
    assert set(rows[:, 0]) == {12.0}


def test_samples_lie_in_the_restriction_and_satisfy_constraints():
    r = get("sma_cross").space.restrict({"fast": list(range(5, 55, 5)), "slow": [20, 50, 100]})
    rows = r.sample(np.random.default_rng(3), 300)
    assert set(rows[:, 0]) <= set(range(5, 55, 5)) and set(rows[:, 1]) <= {20, 50, 100}
    assert (rows[:, 0] < rows[:, 1]).all()


def test_no_spec_is_the_same_space_and_it_round_trips():
    space = get("sma_cross").space
    assert space.restrict({}) is space and space.restrict(None) is space
    r = space.restrict({"fast": [5, 10], "slow": [30, 70, 80]})
    assert ParamSpace.from_dict(r.to_dict()) == r


def test_errors_name_the_parameter_and_the_fix():
    space = get("sma_cross").space
    with pytest.raises(StrategyError, match=r"sma_cross: unknown parameter 'slw'.*did you mean"):
        space.restrict({"slw": [5]})
    with pytest.raises(StrategyError, match=r"sma_cross: empty value list for fast; give at least"):
        space.restrict({"fast": []})
    with pytest.raises(StrategyError, match=r"sma_cross: fast=300 needs more than 300 bars"):
        space.restrict({"fast": [300]}, n_bars=250)
    with pytest.raises(StrategyError, match=r"sma_cross: no parameter set in the grid satisfies "
                                            r"fast < slow; widen the grid of fast, slow"):
        space.restrict({"fast": [50, 60], "slow": [20, 30]})
