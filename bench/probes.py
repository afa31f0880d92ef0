"""Measurements that need a fresh process: peak RSS and first-backtest latency.

Run as ``python bench/probes.py MODE [args]``; prints one JSON line. Driven by run.py.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

T0 = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))


def _rss_mb() -> float:
    """Peak RSS of this process in MiB.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` survives fork+exec on Linux (a child started by a
    1 GB parent reports >= 1 GB), so the per-address-space high-water mark VmHWM is read
    from /proc; ru_maxrss is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def first_backtest(npy: str) -> dict:
    """import quantfleet, then one sma_cross backtest (numba cache warm)."""
    import quantfleet  # noqa: F401

    t_import = time.perf_counter() - T0
    import numpy as np

    from quantfleet.data.market import MarketData
    from quantfleet.strategies import get

    close = np.load(npy)
    ts = np.datetime64("2000-01-01", "ns") + np.arange(close.size) * np.timedelta64(1, "D")
    md = MarketData(timestamps=ts, assets=("X",), close=close[None, :])
    res = get("sma_cross").run(md, np.array([[10.0, 50.0]]), fee_rate=0.001)
    t_total = time.perf_counter() - T0
    return {"import_s": t_import, "first_backtest_s": t_total, "total_return": float(res[0, 0, 0])}


def mem_quantfleet() -> dict:
    sys.path.insert(0, HERE)
    import series

    s = series.gbm()
    combos = series.big_grid()
    base = _rss_mb()
    from quantfleet.strategies import get

    st = get("sma_cross")
    st.run(s.market, combos[:1], fee_rate=0.001)  # kernel loaded from the numba cache
    warm = _rss_mb()
    t = time.process_time()
    res = st.run(s.market, combos, fee_rate=0.001)
    cpu = time.process_time() - t
    return {"combos": int(combos.shape[0]), "bars": int(s.market.n_bars), "cpu_s": cpu,
            "rss_before_mb": base, "rss_after_warmup_mb": warm, "peak_rss_mb": _rss_mb(), "finite": bool(np.isfinite(res[..., 0]).all())}


def mem_vectorbt(ncombos: str, chunk: str) -> dict:
    sys.path.insert(0, HERE)
    import peers
    import series

    s = series.gbm()
    combos = series.sma_grid()[: int(ncombos)]
    import vectorbt  # noqa: F401

    base = _rss_mb()
    t = time.process_time()
    peers.vectorbt_total_returns(s.frame["Close"], combos, 0.001, chunk=int(chunk) or None)
    cpu = time.process_time() - t
    return {"combos": int(combos.shape[0]), "bars": int(s.market.n_bars), "chunk": int(chunk),
            "cpu_s": cpu, "rss_before_mb": base, "peak_rss_mb": _rss_mb()}


if __name__ == "__main__":
    import numpy as np

    mode, *args = sys.argv[1:]
    fn = {"first": first_backtest, "mem-qf": mem_quantfleet, "mem-vbt": mem_vectorbt}[mode]
    print(json.dumps(fn(*args)))
