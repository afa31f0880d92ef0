"""Synthetic markets from ``synthetic:`` URLs: deterministic geometric-Brownian-motion OHLCV.

``synthetic:gbm?bars=100000&assets=5&seed=42`` gives the same bytes on every machine; asset i's
path depends only on ``seed`` and i, so adding assets does not change the existing ones.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from quantfleet.data.market import MarketData
from quantfleet.errors import DataError, did_you_mean

__all__ = ["DEFAULTS", "KINDS", "from_url", "gbm"]

KINDS = ("gbm",)

#: Query parameters of ``synthetic:gbm?...`` and their defaults.
DEFAULTS: dict[str, Any] = {
    "bars": 1000,          # bars per asset
    "assets": 1,           # number of assets, named SYN0, SYN1, ...
    "seed": 0,             # non-negative integer
    "vol": 0.2,            # annualized volatility
    "drift": 0.05,         # annualized drift
    "start": "2020-01-01",  # first timestamp
    "freq": "1h",          # bar spacing: a fixed duration such as 1D, 4h, 15min
    "funding": 0,          # 1: add a funding_rate column (per bar)
    "price": 100.0,        # typical starting price
}

_MAX_CELLS = 200_000_000  # assets * bars; ~10 GB of float64 arrays at this size
_YEAR_SECONDS = 365.25 * 86400.0


def _convert(key: str, raw: str, url: str) -> Any:
    kind = type(DEFAULTS[key])
    try:
        if kind is int:
            if raw.strip().lower() in ("true", "yes") and key == "funding":
                return 1
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise DataError(f"{url}: {key} must be {noun} (got {raw!r})") from None
    return raw


def from_url(url: str) -> MarketData:
    """Build the market a ``synthetic:KIND?key=value&...`` URL describes (see ``DEFAULTS``)."""
    parts = urlsplit(url)
    if parts.scheme != "synthetic":
        raise DataError(f"{url}: not a synthetic URL; use e.g. synthetic:gbm?bars=1000&assets=2")
    kind = parts.path.strip("/") or "gbm"
    if kind not in KINDS:
        raise DataError(
            f"{url}: unknown synthetic kind {kind!r}{did_you_mean(kind, KINDS)}; "
            f"available: {', '.join(KINDS)}"
        )
    params: dict[str, Any] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise DataError(
            f"{url}: cannot read the query {parts.query!r}; write key=value pairs joined by &"
        ) from None
    for key, raw in pairs:
        if key not in DEFAULTS:
            raise DataError(
                f"{url}: unknown parameter {key!r}{did_you_mean(key, DEFAULTS)}; "
                f"accepted: {', '.join(DEFAULTS)}"
            )
        if key in params:
            raise DataError(f"{url}: parameter {key!r} given twice; keep one")
        if raw == "":
            raise DataError(f"{url}: parameter {key!r} has no value; write {key}=VALUE")
        params[key] = _convert(key, raw, url)
    return gbm(**params, source=url)


def gbm(bars: int = 1000, assets: int = 1, seed: int = 0, vol: float = 0.2, drift: float = 0.05,
        start: str = "2020-01-01", freq: str = "1h", funding: int | bool = 0, price: float = 100.0,
        source: str | None = None) -> MarketData:
    """Deterministic GBM OHLCV bars for ``assets`` assets.

    Close follows GBM with annual ``vol`` and ``drift`` on a calendar clock (``freq`` apart, no
    weekends); open is the previous close times a small gap; high/low lie beyond max/min(open,
    close); volume is log-normal and higher on large moves. ``funding`` adds ``funding_rate``
    (mean 1 bp per bar), as a perpetual future would have.

    Returns MarketData with float64 arrays of shape (assets, bars).
    """
    import pandas as pd

    src = source or (
        f"synthetic:gbm?bars={bars}&assets={assets}&seed={seed}&vol={vol}&drift={drift}"
        f"&start={start}&freq={freq}&funding={int(funding)}&price={price}"
    )
    if bars < 1:
        raise DataError(f"{src}: bars must be >= 1 (got {bars}); typical values 1000-1000000")
    if assets < 1:
        raise DataError(f"{src}: assets must be >= 1 (got {assets})")
    if assets * bars > _MAX_CELLS:
        raise DataError(
            f"{src}: {assets} assets x {bars} bars = {assets * bars:,} cells is more than "
            f"{_MAX_CELLS:,} (~{_MAX_CELLS * 48 / 1e9:.0f} GB); use fewer bars or assets"
        )
    if seed < 0:
        raise DataError(f"{src}: seed must be >= 0 (got {seed})")
    if not (np.isfinite(vol) and vol >= 0):
        raise DataError(f"{src}: vol must be >= 0 (got {vol}); typical values 0.1-1.0 (annual)")
    if not np.isfinite(drift):
        raise DataError(f"{src}: drift must be finite (got {drift}); typical values -0.2-0.3 (annual)")
    if not (np.isfinite(price) and price > 0):
        raise DataError(f"{src}: price must be > 0 (got {price})")
    if funding not in (0, 1, True, False):
        raise DataError(f"{src}: funding must be 0 or 1 (got {funding})")
    try:
        step = pd.Timedelta(freq)
    except (ValueError, TypeError):
        raise DataError(
            f"{src}: freq {freq!r} is not a fixed duration; use e.g. 1D, 4h, 15min, 1s"
        ) from None
    if step <= pd.Timedelta(0):
        raise DataError(f"{src}: freq must be positive (got {freq!r})")
    try:
        t0 = pd.Timestamp(start)
    except (ValueError, TypeError):
        raise DataError(f"{src}: start {start!r} is not a date; use e.g. 2020-01-01") from None
    if t0.tzinfo is not None:
        t0 = t0.tz_convert("UTC").tz_localize(None)
    try:
        t0_ns: int | None = int(t0.as_unit("ns").value)
    except (OverflowError, ValueError):  # OutOfBoundsDatetime is a ValueError
        t0_ns = None
    step_ns = int(step.value)
    if t0_ns is None or t0_ns + step_ns * (bars - 1) > pd.Timestamp.max.value:
        raise DataError(f"{src}: {bars} bars of {freq} from {start} run past year 2262; use fewer bars")
    timestamps = (t0_ns + step_ns * np.arange(bars, dtype=np.int64)).astype("datetime64[ns]")

    dt = step.total_seconds() / _YEAR_SECONDS
    sigma = vol * np.sqrt(dt)
    mu = (drift - 0.5 * vol * vol) * dt
    shape = (assets, bars)
    close = np.empty(shape)
    open_ = np.empty(shape)
    high = np.empty(shape)
    low = np.empty(shape)
    volume = np.empty(shape)
    funding_rate = np.empty(shape) if funding else None
    for i in range(assets):
        rng = np.random.default_rng([seed, i])
        p0 = price * np.exp(0.5 * rng.standard_normal())
        z = rng.standard_normal((5, bars))
        ret = mu + sigma * z[0]
        c = p0 * np.exp(np.cumsum(ret))
        o = np.empty(bars)
        o[0] = p0
        o[1:] = c[:-1]
        o *= np.exp(0.1 * sigma * z[1])
        close[i] = c
        open_[i] = o
        high[i] = np.maximum(o, c) * np.exp(0.5 * sigma * np.abs(z[2]))
        low[i] = np.minimum(o, c) * np.exp(-0.5 * sigma * np.abs(z[3]))
        surprise = np.abs(z[0])  # big moves trade more
        volume[i] = 1e6 * np.exp(0.4 * z[4] + 0.3 * surprise)
        if funding_rate is not None:
            funding_rate[i] = 1e-4 + 2e-4 * rng.standard_normal(bars)
    width = len(str(assets - 1))
    return MarketData(
        timestamps=timestamps,
        assets=tuple(f"SYN{i:0{width}d}" for i in range(assets)),
        close=close, open=open_, high=high, low=low, volume=volume,
        extra={} if funding_rate is None else {"funding_rate": funding_rate},
        source=src,
    )
