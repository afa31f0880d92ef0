"""Pin the public surface: quantfleet.__all__ and what each name resolves to."""

from __future__ import annotations

import quantfleet


def test_all_is_pinned_and_sorted():
    assert quantfleet.__all__ == [
        "Costs",
        "Execution",
        "MarketData",
        "ParamSpace",
        "QuantfleetError",
        "Strategy",
        "get_strategy",
        "load",
        "strategy_names",
        "sweep",
    ]
    assert quantfleet.__all__ == sorted(quantfleet.__all__)


def test_every_exported_name_resolves():
    for name in quantfleet.__all__:
        assert getattr(quantfleet, name) is not None


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        quantfleet.nope  # noqa: B018
