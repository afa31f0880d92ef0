"""Bundled datasets: real market data that PyPI packages ship offline, located without importing them.

Importing skfolio pulls in scikit-learn and importing arch pulls in scipy and statsmodels; a
worker that only needs prices must not pay for that, so the files are found through
``importlib.util.find_spec`` (which does not execute the package) and read with pandas/pyarrow.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from quantfleet.errors import DataError, did_you_mean

__all__ = [
    "DATASETS",
    "INSTALL_HINT",
    "Dataset",
    "dataset_names",
    "locate",
]

INSTALL_HINT = "pip install 'quantfleet[data]'"


@dataclass(frozen=True)
class Dataset:
    """A data file inside an installed package.

    Attributes
    ----------
    name : what ``load`` accepts, e.g. ``"sp500"``
    package : the distribution that ships the file
    path : the file's path inside the package
    description : one line for listings
    asset : asset name for single-asset files (the file stem otherwise)
    """

    name: str
    package: str
    path: tuple[str, ...]
    description: str
    asset: str | None = None


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "sp500", "skfolio", ("datasets", "data", "sp500_dataset.csv.gz"),
            "20 US large-cap stocks, daily adjusted close, 1990-01-02..2022-12-28 (8,313 bars)",
        ),
        Dataset(
            "sp500_index", "skfolio", ("datasets", "data", "sp500_index.csv.gz"),
            "S&P 500 index, daily close, 1990-01-02..2022-12-28 (8,313 bars)", asset="SP500",
        ),
        Dataset(
            "sp500_ohlcv", "arch", ("data", "sp500", "sp500.csv.gz"),
            "S&P 500 index, daily OHLCV, 1999-01-04..2018-12-31 (5,031 bars)", asset="SPX",
        ),
        Dataset(
            "nasdaq_ohlcv", "arch", ("data", "nasdaq", "nasdaq.csv.gz"),
            "NASDAQ Composite, daily OHLCV, 1999-01-04..2018-12-31 (5,031 bars)", asset="IXIC",
        ),
    )
}


def dataset_names() -> list[str]:
    """Names of the bundled datasets, sorted (descriptions in ``DATASETS[name].description``)."""
    return sorted(DATASETS)


def locate(name: str) -> tuple[Dataset, Path]:
    """The dataset called ``name`` and its file; ``DataError`` when unknown or not installed."""
    ds = DATASETS.get(name)
    if ds is None:
        raise DataError(
            f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; "
            f"available: {', '.join(dataset_names())}"
        )
    spec = importlib.util.find_spec(ds.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DataError(
            f"dataset {name!r} comes from the {ds.package} package, which is not installed; "
            f"{INSTALL_HINT}"
        )
    for root in locations:
        path = Path(root).joinpath(*ds.path)
        if path.is_file():
            return ds, path
    raise DataError(
        f"dataset {name!r}: {ds.package} is installed but has no {'/'.join(ds.path)} "
        f"(looked in {', '.join(locations)}); reinstall a supported version: {INSTALL_HINT}"
    )
