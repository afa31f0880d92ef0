"""Market data: CSV/Parquet files, bundled datasets and synthetic markets as validated MarketData.

Layer 1: imports numpy, pandas and pyarrow only. Bundled datasets are read from the files their
packages ship, never by importing those packages.
"""

from quantfleet.data.datasets import datasets
from quantfleet.data.load import from_frame, info, load
from quantfleet.data.market import MarketData
from quantfleet.data.validate import require_bars, validate_market

__all__ = ["MarketData", "datasets", "from_frame", "info", "load", "require_bars", "validate_market"]
