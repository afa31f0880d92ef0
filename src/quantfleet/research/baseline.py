"""The sequential baseline of a parallel run: the same work, one item after another in this
process, measured (or, within a budget, sampled by stratum and extrapolated, and labelled so).

A baseline is only worth a speedup if it times the work and nothing else: every distinct kind
of item (a tournament's strategies: each its own numba kernel) runs once untimed first, so
cache loads and first-call set-up are never timed and multiplied. A speedup above the worker
count (beyond ``observe.spans.SPEEDUP_TOLERANCE``) cannot come from parallelism;
:func:`speedup` marks it invalid instead of reporting it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from quantfleet.observe.spans import speedup_validity

__all__ = ["measure_serial", "speedup"]



def measure_serial(fn: Callable[[Any, Any], Any], shared: Any, items: Sequence[Any], *,
                   labels: Sequence[str] | None = None,
                   budget_s: float | None = None) -> dict[str, Any]:
    """Run ``items`` one after another in this process: the serial time of the work.

    Parameters
    ----------
    fn, shared, items : the map, as ``executor.map(fn, items, shared=shared)`` ran it
    labels : one stratum per item (a tournament: each item's strategy); default one stratum
    budget_s : None (default) times every item: ``baseline_kind = "measured"``. A budget in
        seconds stops timing once it is spent and every stratum has an item timed; each
        stratum's mean item time is then multiplied by its item count and summed:
        ``baseline_kind = "sampled k/n items, stratified by strategy, extrapolated"``.

    Before any timing, the first item of every stratum runs once untimed (warm-up: numba
    kernels load from their cache, imports settle). Returns ``baseline_kind``, ``serial_s``,
    ``items``, ``sampled`` (items timed), ``warmed`` (items run untimed first), ``strata``
    and ``warmup_s`` (the warm-up's own seconds, not part of ``serial_s``).
    """
    n = len(items)
    if labels is not None and len(labels) != n:
        raise ValueError(f"measure_serial: {len(labels)} labels for {n} items; one per item")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"measure_serial: budget_s must be > 0 seconds or None (got {budget_s!r})")
    labs = list(labels) if labels is not None else [""] * n
    strata: dict[str, list[int]] = {}
    for i, lab in enumerate(labs):
        strata.setdefault(lab, []).append(i)
    base = {"items": n, "strata": len(strata)}
    if n == 0:
        return {"baseline_kind": "measured", "serial_s": 0.0, "sampled": 0, "warmed": 0,
                "warmup_s": 0.0, **base}
    t_w = time.perf_counter()
    for idx in strata.values():
        fn(shared, items[idx[0]])
    warmup_s = time.perf_counter() - t_w
    # round-robin over the strata, evenly spaced within each: any prefix of this order is a
    # sample of every stratum
    orders = {lab: _spread(len(idx)) for lab, idx in strata.items()}
    order = [strata[lab][orders[lab][r]] for r in range(max(len(v) for v in orders.values()))
             for lab in strata if r < len(orders[lab])]
    spent: dict[str, float] = dict.fromkeys(strata, 0.0)
    timed: dict[str, int] = dict.fromkeys(strata, 0)
    total = 0.0
    done = 0
    for i in order:
        t0 = time.perf_counter()
        fn(shared, items[i])
        dt = time.perf_counter() - t0
        spent[labs[i]] += dt
        timed[labs[i]] += 1
        total += dt
        done += 1
        if budget_s is not None and total > budget_s and done >= len(strata) and done < n:
            break
    extra = {"sampled": done, "warmed": len(strata), "warmup_s": warmup_s, **base}
    if done == n:
        return {"baseline_kind": "measured", "serial_s": total, **extra}
    est = sum(spent[lab] / timed[lab] * len(idx) for lab, idx in strata.items())
    by = "stratified by strategy" if labels is not None else "evenly spaced"
    return {"baseline_kind": f"sampled {done}/{n} items, {by}, extrapolated",
            "serial_s": est, **extra}


def _spread(k: int) -> list[int]:
    """``range(k)`` in an order whose every prefix is spread over it: 0, k/2, k/4, 3k/4, ..."""
    order: list[int] = []
    seen: set[int] = set()
    step = 1 << max(0, (k - 1).bit_length())
    while step >= 1:
        for i in range(0, k, step):
            if i not in seen:
                seen.add(i)
                order.append(i)
        step //= 2
    return order


def speedup(baseline: dict[str, Any], wall_s: float, workers: int) -> dict[str, Any]:
    """Speedup and parallel efficiency of a run that took ``wall_s`` on ``workers`` workers.

    ``valid`` is False (and ``speedup``, ``efficiency`` are None; ``ratio`` keeps the raw
    serial / wall and ``invalid_reason`` says why) when the ratio exceeds ``workers ×
    observe.spans.SPEEDUP_TOLERANCE``: such a figure is not a speedup and is never shown.
    """
    ratio = baseline["serial_s"] / wall_s if wall_s > 0 else float("nan")
    why = speedup_validity(ratio, workers)
    ok = why is None
    return {**baseline, "wall_s": wall_s, "workers": workers, "ratio": ratio, "valid": ok,
            "invalid_reason": why, "speedup": ratio if ok else None,
            "efficiency": ratio / workers if ok and workers else None}
