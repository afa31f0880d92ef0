"""`quantfleet health`: functional checks of the store, the price catalog, the metrics
endpoint, Ray and Prefect, one line each. Every check removes what it wrote: the store's test
artifact (and the folders it created), the metrics server, the Prefect flow run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CHECKS",
    "Check",
    "check_catalog",
    "check_metrics",
    "check_prefect",
    "check_ray",
    "check_store",
    "run_checks",
]

#: check names in run order (``--skip`` takes these)
CHECKS = ("store", "catalog", "metrics", "ray", "prefect")


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
    """Write a small table, read it back by hash, verify the bytes hash to the address, then
    delete it (and, on a local store, the folders the write created)."""
    import os

    import pandas as pd

    from quantfleet.store import Store

    local = "://" not in str(url) or str(url).startswith("file://")
    root = str(url).removeprefix("file://")
    before = set()
    if local:  # the folders that exist now stay; the ones the write makes go again
        before = {d for d, _, _ in os.walk(root)} if os.path.isdir(root) else set()
    store = Store.open(url)
    df = pd.DataFrame({"t": np.arange(5), "x": np.linspace(0, 1, 5), "stamp": time.time()})
    ref = store.put_table(df, kind="health")
    try:
        back = store.get_table(ref.hash).to_pandas()
        if not back.equals(df):
            raise RuntimeError("table read back differs from what was written")
    finally:
        store.delete(ref)
        if local:
            made = sorted({d for d, _, _ in os.walk(root)} - before, key=len, reverse=True)
            for d in made:
                try:
                    os.rmdir(d)  # only if empty: never anything the store holds
                except OSError:
                    pass
    if store.exists(ref.hash):
        raise RuntimeError(f"artifact {ref.hash[:12]} is still there after deleting it")
    return f"{store.url}: wrote, verified and deleted artifact {ref.hash[:12]}"


def check_catalog(prices: str | None = None) -> str:
    """Load the price list the cost simulation uses (the bundled catalog, or ``prices``),
    validate every entry and simulate one node; says the catalog's date and age."""
    import datetime as dt

    from quantfleet.observe.cost import describe, load_catalog, simulate
    from quantfleet.pipeline.report import DEFAULT_INSTANCE

    cat = load_catalog(prices)
    inst = DEFAULT_INSTANCE if DEFAULT_INSTANCE in cat["instances"] else next(
        iter(cat["instances"]))
    sim = simulate(60.0, 60.0, 1, inst, 1, catalog=cat)
    if not (sim["cost_usd"] >= 0 and sim["wall_s"] > 0):
        raise RuntimeError(f"simulating 1 x {inst} gave {sim['cost_usd']!r} USD")
    age, stale = "", ""
    try:
        days = (dt.date.today() - dt.date.fromisoformat(str(cat["date"]))).days
        age = f" ({days} days old)"
        if days > 365:
            stale = "; over a year old: prices may have moved (--prices FILE gives your own)"
    except ValueError:
        age = " (date not ISO: age unknown)"
    label = describe(cat, inst)["catalog"]["file"]
    return (f"{label} v{cat['version']} of {cat['date']}{age}: "
            f"{len(cat['instances'])} instance types valid{stale}")


def check_metrics() -> str:
    """Serve a run's Prometheus endpoint on a free port, run one task through a serial
    executor that feeds it, scrape it over HTTP and find the counts; the server is stopped in
    any case."""
    import urllib.request

    from quantfleet.compute import SerialExecutor
    from quantfleet.observe.metrics import RunMetrics

    m = RunMetrics()
    try:
        url = m.serve(0)
        with SerialExecutor(recorder=m.recorder()) as ex:
            list(ex.map(max, [3], 0, stage="health"))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as r:
            body = r.read().decode()
    finally:
        m.stop()
    want = ('quantfleet_tasks_started_total{stage="health"} 1.0',
            'quantfleet_tasks_finished_total{stage="health"} 1.0',
            'quantfleet_task_duration_seconds_count{stage="health"} 1.0')
    missing = [w for w in want if w not in body]
    if missing:
        raise RuntimeError(f"{url} lacks {missing[0]!r}")
    return f"{url}: served and scraped one task's metrics, then stopped"


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
    try:
        if state.result() != 5:
            raise RuntimeError(f"flow returned {state.result()!r}, expected 5")
    finally:
        _delete_flow_run(state.state_details.flow_run_id)
    return (f"{api_url or 'embedded local API'}: flow run {state.name.lower()}, "
            f"then deleted")


def _delete_flow_run(flow_run_id: Any) -> None:
    """Remove the health check's flow run (and its task runs) from the Prefect API."""
    if flow_run_id is None:
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.delete_flow_run(flow_run_id)


def run_checks(*, store: str, ray_address: str | None, prefect_api: str | None,
               skip: set[str], prices: str | None = None) -> list[Check]:
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        from quantfleet.errors import QuantfleetError

        raise QuantfleetError(f"--skip {unknown[0]!r}: not a check; one of {', '.join(CHECKS)}")
    out = []
    if "store" not in skip:
        out.append(_timed("store", lambda: check_store(store)))
    if "catalog" not in skip:
        out.append(_timed("catalog", lambda: check_catalog(prices)))
    if "metrics" not in skip:
        out.append(_timed("metrics", check_metrics))
    if "ray" not in skip:
        out.append(_timed("ray", lambda: check_ray(ray_address)))
    if "prefect" not in skip:
        out.append(_timed("prefect", lambda: check_prefect(prefect_api)))
    return out
