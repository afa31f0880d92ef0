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
    donchian: the channel ages and per-chunk bit rows of :func:`_donchian_bits`; bollinger: its
    per-chunk rows with the bit rows the same loop marks, :func:`_bollinger_chunked`)."""
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
        if hasattr(reversion, "_boll_lanes"):
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
    """bollinger's rows as its fast path builds them: every chunk of bars, eight windows (vector
    lanes, descending) at a time, with the bit rows of five k values that the same loop marks
    (the compiled driver is built on first use)."""
    global _BOLL_DRIVER
    if _BOLL_DRIVER is None:
        from numba import njit

        from quantfleet.kernels.fastpath import FP_CHUNK
        from quantfleet.strategies.reversion import (
            _BOLL_WORDS,
            _LANES,
            _boll_inputs,
            _boll_lanes,
        )

        @njit
        def drive(close, wins):
            n = close.shape[0]
            nw = wins.shape[0]
            pad, closep, bad = _boll_inputs(close, wins)
            ng = (nw + _LANES - 1) // _LANES
            lw = np.zeros((ng, _LANES))
            gn = np.zeros(ng, dtype=np.int64)
            for q in range(ng):
                g1 = min(nw, (q + 1) * _LANES)
                gn[q] = g1 - q * _LANES
                for g in range(gn[q]):
                    lw[q, g] = wins[g1 - 1 - g]
            st = np.zeros((ng, _LANES, 3))
            nk = 5
            ks = np.empty(_LANES * nk)
            for j in range(nk):
                ks[_LANES * j:_LANES * (j + 1)] = 1.0 + 0.5 * j
            bits = np.zeros(_LANES * _BOLL_WORDS * (nk + 2), dtype=np.uint64)
            mid = np.empty(_LANES * FP_CHUNK + 8)
            sd = np.empty(_LANES * FP_CHUNK + 8)
            rm = np.empty(_LANES * FP_CHUNK + 8)
            rs = np.empty(_LANES * FP_CHUNK + 8)
            scr = np.empty((2, FP_CHUNK + 32))
            fmid = np.empty((_LANES, FP_CHUNK + 24))
            fsd = np.empty((_LANES, FP_CHUNK + 24))
            fscr = np.empty((3, _LANES, FP_CHUNK + 24))
            for c0 in range(0, n, FP_CHUNK):
                c1 = min(n, c0 + FP_CHUNK)
                for q in range(ng):
                    _boll_lanes(close, closep, pad, bad, lw[q, :gn[q]], st[q], c0, c1, ks, nk,
                                False, True, False, mid, sd, bits, rm, rs, scr, fmid, fsd,
                                fscr)

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
