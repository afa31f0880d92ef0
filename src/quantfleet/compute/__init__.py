"""Run ``fn(shared, item)`` over many items: serially, on a local process pool, or on Ray.

``make_executor`` picks one; every executor yields the same results in the same order.
``RayExecutor`` is resolved lazily so importing this package never imports ray. Modules:
tasks (what crosses to a worker and back), executor (protocol and driver loop), serial,
processes, ray (backends), codec (how results cross processes), chunking, factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantfleet.compute.chunking import (
    ChunkPlan,
    ChunkStore,
    adaptive_chunk_size,
    fingerprint,
    plan_chunk_size,
)
from quantfleet.compute.executor import Executor, MapSummary
from quantfleet.compute.factory import AUTO_RAY_MIN_S, AUTO_SERIAL_MAX_S, make_executor
from quantfleet.compute.processes import ProcessExecutor
from quantfleet.compute.serial import SerialExecutor
from quantfleet.compute.tasks import Failed

if TYPE_CHECKING:  # pragma: no cover
    from quantfleet.compute.ray import RayExecutor

__all__ = [
    "AUTO_RAY_MIN_S",
    "AUTO_SERIAL_MAX_S",
    "ChunkPlan",
    "ChunkStore",
    "Executor",
    "Failed",
    "MapSummary",
    "ProcessExecutor",
    "RayExecutor",
    "SerialExecutor",
    "adaptive_chunk_size",
    "fingerprint",
    "make_executor",
    "plan_chunk_size",
]


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":
        from quantfleet.compute.ray import RayExecutor

        return RayExecutor
    raise AttributeError(f"module 'quantfleet.compute' has no attribute {name!r}")
