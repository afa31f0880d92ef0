"""Market data: CSV/Parquet files, bundled datasets and synthetic markets as validated MarketData.

Layer 1: imports numpy, pandas and pyarrow only. Bundled datasets are read from the files their
packages ship, never by importing those packages. Names resolve lazily (PEP 562) so a worker
that only needs ``MarketData`` does not pay for importing pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["MarketData", "dataset_names", "from_frame", "info", "load", "require_bars", "validate_market"]

_EXPORTS = {
    "MarketData": "quantfleet.data.market",
    "dataset_names": "quantfleet.data.datasets",
    "from_frame": "quantfleet.data.loaders",
    "info": "quantfleet.data.loaders",
    "load": "quantfleet.data.loaders",
    "require_bars": "quantfleet.data.validate",
    "validate_market": "quantfleet.data.validate",
}

if TYPE_CHECKING:  # pragma: no cover
    from quantfleet.data.datasets import dataset_names
    from quantfleet.data.loaders import from_frame, info, load
    from quantfleet.data.market import MarketData
    from quantfleet.data.validate import require_bars, validate_market


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quantfleet.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
