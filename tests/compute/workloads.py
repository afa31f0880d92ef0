"""Functions the compute tests map (importable by worker processes and Ray workers)."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

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


def _executions(root: str, item: int) -> int:
    """Record one execution of ``item`` under ``root``; return its number (1, 2, ...).

    Files, not process memory: a killed worker's executions still count."""
    n = 1
    while True:
        try:
            fd = os.open(os.path.join(root, f"exec-{item}-{n}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            n += 1
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return n


def _block_forever() -> None:
    # cancelled by the executor (the worker process is killed); bounded so a broken
    # executor leaves no immortal process behind
    time.sleep(600)
    raise RuntimeError("hang: never cancelled")


def hang(shared: str, item: int) -> int:
    """Hangs deterministically, whatever the machine's speed (``shared``: a temp dir):

    item 4 blocks on its first two executions (in its chunk, then alone) and returns on the
    third; item 6 blocks on every execution; every other item returns at once."""
    n = _executions(shared, item)
    if (item == 4 and n <= 2) or item == 6:
        _block_forever()
    return item + 100


def executions(root: str, item: int) -> int:
    """How many times ``hang`` started ``item`` (driver side)."""
    return sum(1 for name in os.listdir(root) if name.startswith(f"exec-{item}-"))


def die(shared: object, item: int) -> int:
    if item == 2:
        os._exit(3)
    return item


def slow(shared: float, item: int) -> float:
    time.sleep(shared)
    return float(item) ** 0.5


def sqrt_gated(shared: tuple[str, int], item: int) -> float:
    """``sqrt(item)``; items from ``shared[1]`` on first write ``blocked`` into the directory
    ``shared[0]`` and wait there until a ``release`` file appears (a driver to be killed
    mid-map is then always mid-map when it is killed)."""
    root, first_blocked = shared
    release = os.path.join(root, "release")
    if item >= first_blocked and not os.path.exists(release):
        open(os.path.join(root, "blocked"), "w").close()
        stop = time.monotonic() + 600  # only a test that never kills or releases waits this long
        while not os.path.exists(release):
            if time.monotonic() > stop:
                raise RuntimeError("sqrt_gated: never released")
            time.sleep(0.05)
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


# ---------------------------------------------------------------- node-kill gate
#
# A node-kill test must kill a node while it runs a task of the map, whatever the machine's
# speed. The gate makes the worker say so: the first task of a gated map to start (on any
# node) claims the gate, writes its node, pid and item index to ``claim.json`` and blocks until
# ``release`` appears (or its node is killed). Every execution also leaves a ``run-*`` marker,
# so the driver can see where an item was re-executed.

def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def gated(fn: Callable[[Any, Any], Any], root: str, shared: Any, pair: tuple[int, Any]) -> Any:
    """``fn(shared, item)`` for ``pair = (index, item)``, behind the gate in ``root``."""
    index, item = pair
    node, pid = _node_id(), os.getpid()
    with open(os.path.join(root, f"run-{index}-{node}-{pid}"), "w") as f:
        f.write(json.dumps({"index": index, "node": node, "pid": pid}))
    try:
        fd = os.open(os.path.join(root, "claim.tmp"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return fn(shared, item)
    os.write(fd, json.dumps({"index": index, "node": node, "pid": pid}).encode())
    os.close(fd)
    os.rename(os.path.join(root, "claim.tmp"), os.path.join(root, "claim.json"))
    release = os.path.join(root, "release")
    stop = time.monotonic() + 600  # only a broken driver leaves it waiting that long
    while not os.path.exists(release):
        if time.monotonic() > stop:
            raise RuntimeError("gate: never released")
        time.sleep(0.05)  # polls a condition; the verdict never depends on this interval
    return fn(shared, item)


class NodeGate:
    """Driver side of :func:`gated`: wrap a map, wait for the claim, release, read markers."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)

    def wrap(self, fn: Callable[[Any, Any], Any], items: Iterable[Any]
             ) -> tuple[Callable[[Any, Any], Any], list[tuple[int, Any]]]:
        """``fn`` behind the gate, and the items paired with their index."""
        return functools.partial(gated, fn, self.root), list(enumerate(items))

    def wait_claim(self, alive: Callable[[], bool], timeout_s: float = 300.0) -> dict:
        """The claim, once a worker wrote it; fails if ``alive()`` turns false first (the map
        ended without a gated task running) or after ``timeout_s`` (a broken run)."""
        path = os.path.join(self.root, "claim.json")
        stop = time.monotonic() + timeout_s
        while not os.path.exists(path):
            if not alive():
                raise AssertionError("the map ended before any task claimed the gate")
            if time.monotonic() > stop:
                raise AssertionError(f"no task claimed the gate within {timeout_s:g} s")
            time.sleep(0.05)
        with open(path) as f:
            return json.load(f)

    def release(self) -> None:
        open(os.path.join(self.root, "release"), "w").close()

    def kill_claimed_node(self, run: Callable[[], Any], cluster: Any, nodes: dict[str, Any]
                          ) -> tuple[Any, dict]:
        """Run ``run()`` (a map through the gate) in a thread — ``ray.cluster_utils`` wants the
        main thread — kill the node a gated task says it runs on, add a replacement, release
        the gate; ``(run's result, the claim)``. Bounded waits only fail a hung run."""
        box: dict = {}

        def drive() -> None:
            try:
                box["got"] = run()
            except BaseException as e:  # noqa: BLE001 - reported below
                box["error"] = repr(e)

        th = threading.Thread(target=drive, daemon=True)
        th.start()
        try:
            claim = self.wait_claim(th.is_alive)
        except AssertionError as e:
            raise AssertionError(f"{e}; map thread: {box.get('error', 'still running')}") from None
        assert claim["node"] in nodes, (claim, list(nodes))
        cluster.remove_node(nodes[claim["node"]], allow_graceful=False)
        cluster.add_node(num_cpus=1)
        self.release()  # the victim's worker is gone; nothing must stay blocked either way
        th.join(timeout=600)
        assert not th.is_alive(), "the map did not finish within 600 s of the kill"
        assert "got" in box, box.get("error")
        return box["got"], claim

    def runs(self) -> list[dict]:
        out = []
        for name in os.listdir(self.root):
            if name.startswith("run-"):
                with open(os.path.join(self.root, name)) as f:
                    out.append(json.load(f))
        return out


class Work:
    """An item that says how many backtests it stands for (like ``BacktestJob``)."""

    def __init__(self, value: int, n_backtests: int) -> None:
        self.value, self.n_backtests = value, n_backtests


def work(shared: object, item: Work) -> int:
    """``item.value``; value 3 always raises."""
    if item.value == 3:
        raise ValueError("bad work 3")
    return item.value


def wait_for(shared: str, item: int) -> int:
    """Item 0 waits for a ``go`` file in the directory ``shared``, every other item for a
    ``release`` file (bounded waits, so a broken test leaves no immortal worker)."""
    name = "go" if item == 0 else "release"
    stop = time.monotonic() + 600
    while not os.path.exists(os.path.join(shared, name)):
        if time.monotonic() > stop:
            raise RuntimeError(f"wait_for: no {name} file")
        time.sleep(0.02)
    return item
