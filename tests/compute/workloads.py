"""Functions the compute tests map (importable by worker processes and Ray workers)."""

from __future__ import annotations

import os
import time

import numpy as np

from quantfleet.data.market import MarketData

# token -> times a SharedPayload with that token was unpickled in this process
LOADS: dict[str, int] = {}
# (token, item) pairs that already failed once in this process
SEEN: set[tuple[str, int]] = set()
CALLS: list[int] = []


def _rebuild(token: str, data: np.ndarray) -> SharedPayload:
    LOADS[token] = LOADS.get(token, 0) + 1
    return SharedPayload(token, data)


class SharedPayload:
    """A shared object that counts its own unpickling per process."""

    def __init__(self, token: str, data: np.ndarray) -> None:
        self.token, self.data = token, data

    def __reduce__(self):
        return _rebuild, (self.token, self.data)


def count_loads(shared: SharedPayload, item: int) -> tuple[int, int, float]:
    return os.getpid(), LOADS.get(shared.token, 0), float(shared.data.sum() + item)


def numpy_work(shared: np.ndarray | None, item: int) -> np.ndarray:
    rng = np.random.default_rng(item)
    x = rng.standard_normal((50, 8))
    base = 0.0 if shared is None else shared
    return np.cumsum(x @ x.T + base, axis=1)[:, -3:]


def counted(shared: object, item: int) -> int:
    CALLS.append(item)
    return item * item


def flaky(shared: str, item: int) -> int:
    """Item 3 always raises; item 5 raises on its first attempt in each process."""
    if item == 3:
        raise ValueError(f"bad item {item}")
    if item == 5 and (shared, item) not in SEEN:
        SEEN.add((shared, item))
        raise RuntimeError("transient")
    return item * 10


def big_result(shared: object, item: int) -> np.ndarray:
    return np.ones(item)


def hang(shared: object, item: int) -> int:
    if item == 4:
        time.sleep(60)
    return item + 100


def die(shared: object, item: int) -> int:
    if item == 2:
        os._exit(3)
    return item


def slow(shared: float, item: int) -> float:
    time.sleep(shared)
    return float(item) ** 0.5


def market(n_assets: int = 3, n_bars: int = 400, seed: int = 7) -> MarketData:
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0003, 0.01, size=(n_assets, n_bars))
    close = 100.0 * np.exp(np.cumsum(rets, axis=1))
    ts = (np.datetime64("2018-01-01") + np.arange(n_bars)).astype("datetime64[ns]")
    return MarketData(ts, tuple(f"A{i}" for i in range(n_assets)), close, source="synthetic")


def sma_items(n_assets: int = 3) -> list[tuple[int, np.ndarray]]:
    fast = np.arange(3, 15, 2, dtype=np.float64)
    items = []
    for a in range(n_assets):
        for slow_w in (20.0, 30.0, 45.0):
            params = np.column_stack([fast, np.full_like(fast, slow_w)])
            items.append((a, params))
    return items


def run_sma(shared: MarketData, item: tuple[int, np.ndarray]) -> np.ndarray:
    from quantfleet.strategies import get

    asset, params = item
    return get("sma_cross").run_asset(shared, asset, params, fee_rate=0.001)[0]
