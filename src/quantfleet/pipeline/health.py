"""`quantfleet health`: functional checks of the store, Ray and Prefect, one line each."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Check",
    "check_prefect",
    "check_ray",
    "check_store",
    "run_checks",
]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def _timed(name: str, fn: Callable[[], str]) -> Check:
    t0 = time.perf_counter()
    try:
        detail = fn()
        return Check(name, True, detail, time.perf_counter() - t0)
    except Exception as e:  # a failed check is reported, never raised
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return Check(name, False, f"{type(e).__name__}: {msg}", time.perf_counter() - t0)


def _market():
    from quantfleet.data.market import MarketData

    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (1, 500)), axis=1))
    ts = (np.datetime64("2020-01-01") + np.arange(500)).astype("datetime64[ns]")
    return MarketData(ts, ("HEALTH",), close, source="health")


def check_store(url: str) -> str:
    """Write a small table, read it back by hash, and verify the bytes hash to the address."""
    import pandas as pd

    from quantfleet.store import Store

    store = Store.open(url)
    df = pd.DataFrame({"t": np.arange(5), "x": np.linspace(0, 1, 5), "stamp": time.time()})
    ref = store.put_table(df, kind="health")
    back = store.get_table(ref.hash).to_pandas()
    if not back.equals(df):
        raise RuntimeError("table read back differs from what was written")
    return f"{store.url}: wrote and verified artifact {ref.hash[:12]}"


def _backtest(market, item):
    from quantfleet.strategies import get

    return get("sma_cross").run_asset(market, 0, np.array([[10.0, 50.0]]))[0]


def check_ray(address: str | None) -> str:
    """Run a real backtest as a Ray task and compare it with the same backtest run here."""
    from quantfleet.compute.ray import RayExecutor

    m = _market()
    want = _backtest(m, None)
    ex = RayExecutor(address=address, workers=1)
    try:
        got = list(ex.map(_backtest, [0], shared=m, stage="health"))[0]
        node = ex.spans.spans[-1].node if ex.spans.spans else "?"
    finally:
        ex.close()
    if not isinstance(got, np.ndarray) or not np.array_equal(got, want):
        raise RuntimeError(f"the Ray task returned {got!r}, expected the local result")
    return f"{address or 'embedded local Ray'}: backtest on node {node[:12]} matches"


def check_prefect(api_url: str | None) -> str:
    """Run a tiny flow with one task against the Prefect API and read its result."""
    from quantfleet.pipeline.home import prefect_env, state_dir

    prefect_env(state_dir(), api_url)
    from prefect import flow, task

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @flow(name="quantfleet-health")
    def tiny() -> int:
        return add(2, 3)

    state = tiny(return_state=True)
    if state.result() != 5:
        raise RuntimeError(f"flow returned {state.result()!r}, expected 5")
    return f"{api_url or 'embedded local API'}: flow run {state.name.lower()}"


def run_checks(*, store: str, ray_address: str | None, prefect_api: str | None,
               skip: set[str]) -> list[Check]:
    out = []
    if "store" not in skip:
        out.append(_timed("store", lambda: check_store(store)))
    if "ray" not in skip:
        out.append(_timed("ray", lambda: check_ray(ray_address)))
    if "prefect" not in skip:
        out.append(_timed("prefect", lambda: check_prefect(prefect_api)))
    return out
