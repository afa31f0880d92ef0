"""make_executor: an executor by name, or the one that fits the workload."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from quantfleet.compute.executor import BaseExecutor
from quantfleet.compute.serial import SerialExecutor
from quantfleet.errors import ExecutionError
from quantfleet.observe.spans import SpanRecorder

__all__ = ["AUTO_RAY_MIN_S", "AUTO_SERIAL_MAX_S", "make_executor"]

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
    if kind == "auto":
        cpus = workers or os.cpu_count() or 1
        est = (n_items_hint * item_cost_s
               if n_items_hint is not None and item_cost_s is not None else None)
        if address:
            kind = "ray"
        elif cpus <= 1 or (n_items_hint is not None and n_items_hint <= 1) or (
                est is not None and est < AUTO_SERIAL_MAX_S):
            kind = "processes" if timeout_s is not None else "serial"
        elif est is not None and est >= AUTO_RAY_MIN_S and importlib.util.find_spec("ray"):
            kind = "ray"
        else:
            kind = "processes"
    if kind == "serial":
        return SerialExecutor(recorder=recorder, **options)
    if kind == "processes":
        from quantfleet.compute.processes import ProcessExecutor

        return ProcessExecutor(workers, recorder=recorder, **options)
    from quantfleet.compute.ray import RayExecutor

    return RayExecutor(workers, address=address, recorder=recorder, **options)
