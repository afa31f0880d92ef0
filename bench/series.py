"""The two benchmark series: arch's bundled S&P 500 daily OHLCV and a 100,000-bar GBM.

``quantfleet.data.load`` is used when it exists and answers; until then the files are read
here (the same file, found without importing arch) and the GBM is drawn with numpy.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantfleet.data.market import MarketData


@dataclass
class Series:
    name: str
    label: str
    market: MarketData   # one asset
    frame: pd.DataFrame  # Open/High/Low/Close/Volume indexed by timestamp (for the peers)
    source: str          # which loader produced it


def _frame_from_market(md: MarketData) -> pd.DataFrame:
    close = md.close[0]
    cols = {}
    for name in ("open", "high", "low"):
        arr = md.field(name)
        cols[name.capitalize()] = close if arr is None else arr[0]
    vol = md.field("volume")
    cols["Close"] = close
    cols["Volume"] = np.zeros_like(close) if vol is None else vol[0]
    return pd.DataFrame(cols, index=pd.DatetimeIndex(md.timestamps))


def _try_load(spec: str) -> MarketData | None:
    try:
        from quantfleet.data import load
    except ImportError:
        return None
    try:
        md = load(spec)
    except Exception:  # the loader is still being written: fall back to our own reader
        return None
    return md if isinstance(md, MarketData) and md.n_assets >= 1 else None


def sp500() -> Series:
    md = _try_load("sp500_ohlcv")
    if md is not None:
        md = md.select(assets=[md.assets[0]])
        return Series("sp500", f"S&P 500 daily ({md.n_bars:,} bars)", md, _frame_from_market(md),
                      'quantfleet.data.load("sp500_ohlcv")')
    spec = importlib.util.find_spec("arch")
    path = os.path.join(os.path.dirname(spec.origin), "data", "sp500", "sp500.csv.gz")
    df = pd.read_csv(path, index_col=0, parse_dates=True)
    df = df[["Open", "High", "Low", "Close", "Volume"]].astype(float)
    ts = df.index.to_numpy().astype("datetime64[ns]")
    md = MarketData(timestamps=ts, assets=("SPX",),
                    close=df["Close"].to_numpy()[None, :].copy(),
                    open=df["Open"].to_numpy()[None, :].copy(),
                    high=df["High"].to_numpy()[None, :].copy(),
                    low=df["Low"].to_numpy()[None, :].copy(),
                    volume=df["Volume"].to_numpy()[None, :].copy(),
                    source="arch/data/sp500/sp500.csv.gz")
    return Series("sp500", f"S&P 500 daily ({md.n_bars:,} bars)", md, df,
                  "arch's sp500.csv.gz read with pandas (bench/datasets.py)")


def gbm(bars: int = 100_000, seed: int = 42) -> Series:
    md = _try_load(f"synthetic:gbm?bars={bars}&assets=1&seed={seed}")
    if md is not None and md.n_bars == bars:
        return Series("gbm100k", f"synthetic GBM ({bars:,} bars)", md, _frame_from_market(md),
                      f'quantfleet.data.load("synthetic:gbm?bars={bars}&assets=1&seed={seed}")')
    rng = np.random.default_rng(seed)
    # daily bars: 8% drift, 20% vol a year
    dt = 1.0 / 252.0
    mu, sigma = 0.08, 0.20
    lr = rng.normal((mu - 0.5 * sigma**2) * dt, sigma * np.sqrt(dt), bars)
    lr[0] = 0.0
    close = 100.0 * np.exp(np.cumsum(lr))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close)
    low = np.minimum(open_, close)
    # calendar days from 1970 (100,000 days ends in 2243, inside datetime64[ns])
    ts = (np.datetime64("1970-01-01", "ns") + np.arange(bars) * np.timedelta64(1, "D"))
    md = MarketData(timestamps=ts, assets=("GBM",), close=close[None, :], open=open_[None, :],
                    high=high[None, :], low=low[None, :], volume=np.zeros((1, bars)),
                    source=f"gbm(bars={bars}, seed={seed})")
    frame = pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close,
                          "Volume": np.zeros(bars)}, index=pd.DatetimeIndex(ts))
    return Series("gbm100k", f"synthetic GBM ({bars:,} bars)", md, frame,
                  "numpy GBM, seed 42, mu 8%/y, sigma 20%/y (bench/datasets.py)")


def sma_grid() -> np.ndarray:
    """fast 5..49 step 2 x slow 20..200 step 4 with fast < slow: 994 combos, float64 (combos, 2)."""
    return np.array([(f, s) for f in range(5, 50, 2) for s in range(20, 201, 4) if f < s],
                    dtype=np.float64)


def big_grid() -> np.ndarray:
    """fast 2..101 x slow 110..209: 10,000 combos, every one valid."""
    f, s = np.meshgrid(np.arange(2, 102), np.arange(110, 210), indexing="ij")
    return np.column_stack((f.ravel(), s.ravel())).astype(np.float64)
