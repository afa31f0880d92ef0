"""make_executor: an executor by name, or the one that fits the workload."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from quantfleet.compute.executor import BaseExecutor
from quantfleet.compute.serial import SerialExecutor
from quantfleet.errors import ExecutionError
from quantfleet.observe.spans import SpanRecorder

__all__ = ["AUTO_RAY_MIN_S", "AUTO_SERIAL_MAX_S", "auto_kind", "make_executor"]

AUTO_SERIAL_MAX_S = 2.0
"""auto: estimated total work below this runs serially (starting a spawned pool would cost
more than it saves)."""

AUTO_RAY_MIN_S = 600.0
"""auto: estimated total work above this runs on local Ray (its start-up is then a small share;
the object store shares ``shared`` zero-copy instead of one copy per worker process)."""


def make_executor(kind: str = "auto", workers: int | None = None, ray_address: str | None = None,
                  n_items_hint: int | None = None, *, item_cost_s: float | None = None,
                  timeout_s: float | None = None, recorder: SpanRecorder | None = None,
                  **options: Any) -> BaseExecutor:
    """An executor by name, or the one that fits the workload (``kind="auto"``).

    auto, in order:

    1. ``ray_address`` or ``RAY_ADDRESS`` set -> ``RayExecutor`` on that cluster;
    2. one CPU, or ``n_items_hint <= 1``, or an estimated total (``n_items_hint *
       item_cost_s``) under ``AUTO_SERIAL_MAX_S`` (2 s) -> ``SerialExecutor``, unless a
       ``timeout_s`` is asked for (serial cannot cancel) -> ``ProcessExecutor``;
    3. an estimated total over ``AUTO_RAY_MIN_S`` (600 s) with Ray installed -> local
       ``RayExecutor``;
    4. otherwise -> ``ProcessExecutor``.

    ``options`` go to the executor's constructor (``start_method``, ``max_retries``,
    ``init_kwargs``...).
    """
    kinds = ("auto", "serial", "processes", "ray")
    if kind not in kinds:
        from quantfleet.errors import did_you_mean

        raise ExecutionError(f"unknown executor kind {kind!r}{did_you_mean(kind, kinds)}; "
                             f"choose one of {', '.join(kinds)}")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ExecutionError(f"workers must be >= 1 or None (got {workers!r})")
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    reason = f"asked for {kind}"
    if kind == "auto":
        kind, reason = auto_kind(workers, address, n_items_hint, item_cost_s, timeout_s)
    if kind == "serial":
        ex: BaseExecutor = SerialExecutor(recorder=recorder, **options)
    elif kind == "processes":
        from quantfleet.compute.processes import ProcessExecutor

        ex = ProcessExecutor(workers, recorder=recorder, **options)
    else:
        from quantfleet.compute.ray import RayExecutor

        ex = RayExecutor(workers, address=address, recorder=recorder, **options)
    ex.reason = reason  # why this backend: what a run logs and records
    return ex


def auto_kind(workers: int | None, address: str | None, n_items_hint: int | None,
              item_cost_s: float | None, timeout_s: float | None = None) -> tuple[str, str]:
    """The backend ``make_executor("auto")`` picks, and why, in words a run log can show."""
    cpus = workers or os.cpu_count() or 1
    est = (n_items_hint * item_cost_s
           if n_items_hint is not None and item_cost_s is not None else None)
    work = (f"~{est:.1f} s of estimated work ({n_items_hint} items × {item_cost_s:.3g} s)"
            if est is not None else "no estimate of the work")
    if address:
        return "ray", f"auto: a Ray cluster is given ({address})"
    if cpus <= 1 or (n_items_hint is not None and n_items_hint <= 1) or (
            est is not None and est < AUTO_SERIAL_MAX_S):
        why = ("one CPU" if cpus <= 1 else "one item" if n_items_hint is not None
               and n_items_hint <= 1 else f"{work}, under {AUTO_SERIAL_MAX_S:g} s: starting "
               f"workers would cost more than they save")
        if timeout_s is not None:
            return "processes", f"auto: {why}; processes, since a timeout needs cancellable tasks"
        return "serial", f"auto: {why}"
    if est is not None and est >= AUTO_RAY_MIN_S and importlib.util.find_spec("ray"):
        return "ray", f"auto: {work}, over {AUTO_RAY_MIN_S:g} s: Ray's start-up is a small share"
    return "processes", (f"auto: {work}; too little for Ray's start-up (pays above "
                         f"{AUTO_RAY_MIN_S:g} s of work) and more than serial (above "
                         f"{AUTO_SERIAL_MAX_S:g} s) on {cpus} CPUs")
