"""The kernel alone: G bar × combo evaluations per CPU-second of each strategy's fast path.

Reuses ``cli_sweep.kernel_throughput`` (the "kernel" section of bench/cli_sweep.py: the same
100,000-bar series, the same combos) without running the CLI sections, and adds a breakdown:
the CPU time of each strategy's indicator tables alone (the rest of the fast path is the scan
and the booking). CPU time (``time.process_time``), medians of ``--reps`` runs; the load
average is printed before and after, as the machine may be shared.

Usage: PYTHONPATH=src .venv/bin/python bench/kernel_speed.py [--quick] [--reps N]
       [--strategy NAME ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_sweep import DATA, KERNEL_MAX_COMBOS, KERNEL_STRATEGIES, kernel_throughput  # noqa: E402


def _f(market, name: str) -> np.ndarray:
    return np.ascontiguousarray(market.field(name)[0])


def _donchian_bits(market, params) -> None:
    """donchian's tables as its fast path builds them: one channel age per bar and direction,
    then every chunk's per-window bit rows (one Python call per chunk, as the fast path's loop
    does in compiled code)."""
    from quantfleet.kernels.fastpath import FP_CHUNK
    from quantfleet.kernels.indicators import unique_windows
    from quantfleet.strategies.breakout import _channel_ages, _channel_bits

    close = _f(market, "close")
    uniq = unique_windows(np.concatenate((params[:, 0], params[:, 1])))[0]
    lo, rank, up, dn = _channel_ages(_f(market, "high"), _f(market, "low"), close, uniq)
    rows = np.zeros((2 * uniq.shape[0] + 1, FP_CHUNK >> 6), dtype=np.uint64)
    for c0 in range(0, close.shape[0], FP_CHUNK):
        _channel_bits(up, dn, lo, rank, c0, min(close.shape[0], c0 + FP_CHUNK), rows)


def _tables(name: str):
    """A callable building ``name``'s indicator tables for ``params`` as its fast path does (the
    per-bar kernel's table function on a source tree from before the fast-path tables;
    donchian: the channel ages and per-chunk bit rows of :func:`_donchian_bits`)."""
    from quantfleet.kernels.indicators import unique_windows

    if name == "ema_cross":
        from quantfleet.strategies import trend
        if hasattr(trend, "_ema_chunks"):
            return _ema_chunked
        _ema_table = getattr(trend, "_ema_table_interleaved", trend._ema_table)
        return lambda m, p: _ema_table(_f(m, 'close'), unique_windows(
            np.concatenate((p[:, 0], p[:, 1])))[0])
    if name == "bollinger":
        from quantfleet.strategies import reversion
        if hasattr(reversion, "_bollinger_chunk_tables"):
            return lambda m, p: _bollinger_chunked(_f(m, 'close'),
                                                   unique_windows(p[:, 0].copy())[0])
        _bollinger_tables = getattr(reversion, "_bollinger_tables_fused",
                                    reversion._bollinger_tables)
        return lambda m, p: _bollinger_tables(_f(m, 'close'), unique_windows(p[:, 0].copy())[0])
    if name == "donchian":
        from quantfleet.strategies import breakout
        if hasattr(breakout, "_channel_ages"):
            return _donchian_bits
        _channel_tables = getattr(breakout, "_channel_tables_blocked", breakout._channel_tables)
        return lambda m, p: _channel_tables(_f(m, 'high'), _f(m, 'low'), unique_windows(
            np.concatenate((p[:, 0], p[:, 1])))[0])
    return None  # sma_cross, sma_trend: one prefix sum of close, no table


def _ema_chunked(market, params) -> None:
    """ema_cross's EMA tables as its fast path builds them: every row over every chunk of bars
    (the rows' order and grouping of the fast path, without the scans and the booking)."""
    from quantfleet.kernels.fastpath import FP_CHUNK
    from quantfleet.kernels.indicators import unique_windows
    from quantfleet.strategies.trend import _ema_chunk_all, _ema_chunks, _ema_cross_order

    close = _f(market, "close")
    uniq, idx = unique_windows(np.concatenate((params[:, 0], params[:, 1])))
    em = _ema_chunks(close, uniq, _ema_cross_order(idx, params.shape[0])[1])
    n = close.shape[0]
    for c0 in range(0, n, FP_CHUNK):
        _ema_chunk_all(close, em, c0, min(n, c0 + FP_CHUNK))


def _bollinger_chunked(close: np.ndarray, wins: np.ndarray) -> None:
    """bollinger's rows as its fast path builds them: every chunk of bars, a group of windows
    at a time (the compiled driver is built on first use)."""
    global _BOLL_DRIVER
    if _BOLL_DRIVER is None:
        from numba import njit

        from quantfleet.kernels.fastpath import FP_CHUNK
        from quantfleet.strategies.reversion import _BOLL_GROUP, _bollinger_chunk_tables

        @njit
        def drive(close, wins):
            n = close.shape[0]
            g = min(wins.shape[0], _BOLL_GROUP)
            st = np.zeros((wins.shape[0], 3))
            mid = np.empty((g, FP_CHUNK + 24))
            sd = np.empty((g, FP_CHUNK + 24))
            scratch = np.empty((3, g, FP_CHUNK + 24))
            for c0 in range(0, n, FP_CHUNK):
                c1 = min(n, c0 + FP_CHUNK)
                for g0 in range(0, wins.shape[0], _BOLL_GROUP):
                    g1 = min(wins.shape[0], g0 + _BOLL_GROUP)
                    _bollinger_chunk_tables(close, wins[g0:g1], st[g0:g1], c0, c1, mid, sd,
                                            scratch)

        _BOLL_DRIVER = drive
    _BOLL_DRIVER(close, wins)


_BOLL_DRIVER = None


def table_times(reps: int, max_combos: int, names: tuple[str, ...]) -> dict:
    from quantfleet.data import load
    from quantfleet.strategies import get

    market = load(DATA)
    out = {}
    for name in names:
        build = _tables(name)
        if build is None:
            continue
        full, _ = get(name).space.grid(None, market.n_bars)
        if name == "sma_cross":
            full = np.array([(f, s) for f in range(5, 50, 2) for s in range(20, 201, 4) if f < s],
                            dtype=np.float64)
        idx = np.unique(np.linspace(0, len(full) - 1, min(max_combos, len(full)))
                        .round().astype(int))
        params = np.ascontiguousarray(full[idx])
        build(market, params[:2])
        ts = []
        for _ in range(reps):
            t = time.process_time()
            build(market, params)
            ts.append(time.process_time() - t)
        out[name] = statistics.median(ts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 repetition, at most 200 combos")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--strategy", nargs="*", default=list(KERNEL_STRATEGIES))
    args = ap.parse_args()
    reps = 1 if args.quick else args.reps
    most = 200 if args.quick else KERNEL_MAX_COMBOS
    names = tuple(args.strategy)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    res = kernel_throughput(reps, most, names)
    tabs = table_times(reps, most, names)
    print(f"{'strategy':<10} {'combos':>6} {'metrics G/s':>11} {'blocks=16 G/s':>13} "
          f"{'fast path s':>11} {'tables s':>8}  (CPU time, median of {reps})")
    for name, r in res.items():
        tab = f"{tabs[name]:8.3f}" if name in tabs else f"{'n/a':>8}"
        print(f"{name:<10} {r['combos']:>6} {r['metrics_g_per_core_s']:>11.2f} "
              f"{r['job_g_per_core_s']:>13.2f} {r['metrics_cpu_s']:>11.3f} {tab}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
