"""The sequential baseline of a parallel run: measured, or sampled and extrapolated (labelled)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["measure_serial", "speedup"]


def measure_serial(fn: Callable[[Any, Any], Any], shared: Any, items: Sequence[Any], *,
                   budget_s: float = 10.0, min_items: int = 3) -> dict[str, Any]:
    """Run ``items`` one after another in this process, within about ``budget_s`` seconds.

    One item is run first untimed (numba kernels load from cache, imports settle). Items are
    taken evenly spaced over the list so a sample represents every strategy and window; when
    the budget runs out the time is extrapolated to all items and labelled ``sampled``.
    """
    n = len(items)
    if n == 0:
        return {"baseline_kind": "measured", "serial_s": 0.0, "items": 0, "sampled": 0}
    fn(shared, items[0])
    # a permutation that visits evenly spaced items first (bit-reversal-like stride order)
    order: list[int] = []
    seen = set()
    step = n
    while step >= 1 and len(order) < n:
        for i in range(0, n, step):
            if i not in seen:
                seen.add(i)
                order.append(i)
        step //= 2
    order += [i for i in range(n) if i not in seen]
    done = 0
    spent = 0.0
    for i in order:
        t0 = time.perf_counter()
        fn(shared, items[i])
        spent += time.perf_counter() - t0
        done += 1
        if spent > budget_s and done >= min_items:
            break
    if done == n:
        return {"baseline_kind": "measured", "serial_s": spent, "items": n, "sampled": n}
    return {"baseline_kind": f"sampled {done}/{n} items, extrapolated",
            "serial_s": spent * n / done, "items": n, "sampled": done}


def speedup(baseline: dict[str, Any], wall_s: float, workers: int) -> dict[str, Any]:
    """Speedup and parallel efficiency of a run that took ``wall_s`` on ``workers`` workers."""
    s = baseline["serial_s"] / wall_s if wall_s > 0 else float("nan")
    return {**baseline, "wall_s": wall_s, "workers": workers, "speedup": s,
            "efficiency": s / workers if workers else float("nan")}
