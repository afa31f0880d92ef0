"""RayExecutor: tasks on an embedded local Ray or an existing cluster.

The only module that imports ray, and only inside functions, so importing
``quantfleet.compute`` stays slim. ``shared`` goes into the object store with one
``ray.put`` per distinct object; tasks receive the ObjectRef inside a list (so Ray does not
resolve it per task) and each worker process deserializes it once and caches it. Results
come back as :func:`quantfleet.compute.codec.dumps` bytes: they pass through Ray's transport
(and a network, on a cluster), where fewer bytes pay for the coding. A task is a streaming
generator: it first yields an empty marker as its worker starts it (the driver then counts
the task as started), then its result.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from quantfleet.compute.codec import dumps as dumps_result
from quantfleet.compute.executor import BaseExecutor
from quantfleet.compute.tasks import ChunkResult, ChunkTask, Lost, run_chunk, unpicklable_result
from quantfleet.errors import ExecutionError
from quantfleet.observe.spans import SpanRecorder

__all__ = ["RayExecutor", "embedded_system_config"]

# worker-side cache: ObjectRef hex -> deserialized object (the latest fn and shared only)
_CACHE: dict[str, tuple[str, Any]] = {}
_REMOTE: Any = None


def _resolve(slot: str, ref: Any) -> Any:
    import ray

    if ref is None:
        return None
    key = ref.hex()
    hit = _CACHE.get(slot)
    if hit is not None and hit[0] == key:
        return hit[1]
    _CACHE.pop(slot, None)  # drop the previous object before fetching the next
    value = ray.get(ref)
    _CACHE[slot] = (key, value)
    return value


def _ray_chunk(refs: list[Any], task: ChunkTask) -> Iterator[bytes]:
    """The Ray task body, a generator: ``b""`` as it starts (the start signal), then the
    ChunkResult as :func:`codec.dumps` bytes (plain, writable arrays on the driver, like the
    other backends; an unpicklable result becomes Failed records)."""
    yield b""
    import ray

    fn = _resolve("fn", refs[0])
    shared = _resolve("shared", refs[1])
    ctx = ray.get_runtime_context()
    res = run_chunk(fn, shared, task, worker=ctx.get_worker_id(), node=ctx.get_node_id())
    try:
        out = dumps_result(res)
    except Exception as e:  # noqa: BLE001
        out = dumps_result(unpicklable_result(task, res, e))
    yield out


def _by_reference(fn: Any) -> bool:
    """True if pickle stores ``fn`` as its module and name (a module-level function)."""
    import sys

    mod = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None)
    if not mod or not name or mod == "__main__" or "<" in name:
        return False
    obj: Any = sys.modules.get(mod)
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj is fn


def embedded_system_config(dashboard: bool) -> dict[str, Any]:
    """Ray system settings for an embedded local Ray (``init_kwargs["_system_config"]``
    overrides them).

    On a small machine Ray's own processes take CPU from the tasks: task results up to 8 MB
    return inline to the driver instead of through the shared-memory object store (less work
    for the raylet), and without a dashboard nothing reads Ray's metrics, so they are not
    collected. Measurements: docs/BENCHMARKS.md, "Notes moved from code comments".
    """
    cfg: dict[str, Any] = {"max_direct_call_object_size": 8 * 1024 * 1024}
    if not dashboard:
        cfg["enable_metrics_collection"] = False
    return cfg


def _remote() -> Any:
    global _REMOTE
    if _REMOTE is None:
        import ray

        _REMOTE = ray.remote(_ray_chunk)
    return _REMOTE


class RayExecutor(BaseExecutor):
    """Run tasks on Ray.

    Parameters
    ----------
    workers : tasks running at once; default: the cluster's CPUs / ``num_cpus_per_task``,
        re-read every ``refresh_s`` seconds while a map runs (an elastic map: nodes that
        join or leave raise or lower the tasks in flight). For the embedded Ray, also its
        CPUs.
    address : ``None`` -> ``RAY_ADDRESS`` if set, else an embedded local Ray
        (``ray.init(address="local", num_cpus=workers, include_dashboard=False)`` with
        :func:`embedded_system_config`: results inline, no metrics without a dashboard);
        ``"auto"`` -> the cluster running on this machine; ``"ray://host:10001"`` -> Ray Client.
        If Ray is already initialized in this process it is used as is, and left running.
    max_retries : Ray's own retries of a task whose worker or node died (system failures)
    num_cpus_per_task : CPUs Ray reserves per task
    init_kwargs : extra ``ray.init`` arguments
    """

    name = "ray"
    start_signal = True
    timeout_grace_s = 2.0  # a force-cancelled task's worker is replaced by a cold process
    refresh_s = 2.0
    """Seconds between re-reads of the cluster's CPUs during a map (``workers=None``)."""
    slots_per_worker = 2
    """Tasks in flight per worker: the next task waits on the worker, hiding Ray's round trip
    (and on an autoscaling cluster the queued tasks are the demand it scales up for)."""

    def __init__(self, workers: int | None = None, address: str | None = None, *,
                 max_retries: int = 3, num_cpus_per_task: float = 1.0,
                 init_kwargs: dict[str, Any] | None = None,
                 recorder: SpanRecorder | None = None) -> None:
        super().__init__(recorder)
        import ray

        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise ExecutionError(f"RayExecutor: workers must be >= 1 or None (got {workers!r})")
        self._n = int(workers) if workers is not None else None
        self.max_retries = int(max_retries)
        self.num_cpus_per_task = float(num_cpus_per_task)
        address = address or os.environ.get("RAY_ADDRESS") or None
        self._owns = False
        if not ray.is_initialized():
            # Ray starts its workers at nice 15: on a shared machine they then lose the CPU to
            # everything else and a parallel run can be slower than serial
            os.environ.setdefault("RAY_worker_niceness", "0")
            kw = dict(init_kwargs or {})
            try:
                if address:
                    ray.init(address=address, **kw)
                else:
                    kw.setdefault("include_dashboard", False)
                    kw["_system_config"] = {**embedded_system_config(bool(kw["include_dashboard"])),
                                            **(kw.get("_system_config") or {})}
                    ray.init(address="local", num_cpus=self._n or os.cpu_count() or 1, **kw)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ExecutionError(
                    f"RayExecutor: cannot start or reach Ray at "
                    f"{address or 'local (embedded)'}: {e}; check the address / RAY_ADDRESS, "
                    f"or unset it to start an embedded Ray") from e
            self._owns = True
        self._refs: dict[Any, int] = {}
        self._by_uid: dict[int, Any] = {}
        self._shared_obj: Any = None
        self._shared_ref: Any = None
        self._fn_ref: Any = None
        self._fn_obj: Any = None
        self._slots = 1
        self.puts = 0  # ray.put calls made, for tests and the curious

    def host(self, fn: Callable[..., Any], *args: Any, checkpoint: Any = None,
             on_round: Callable[[dict[str, Any]], None] | None = None, restarts: int = 3,
             **kwargs: Any) -> Any:
        """Run a stateful loop ``fn`` (e.g. ``run_search``) in a coordinator actor pinned to the
        head node and restarted from its checkpoint when it dies; return a
        :class:`~quantfleet.compute.coordinator.Coordinated` (see
        :func:`~quantfleet.compute.coordinator.run_coordinated`). The actor's maps use this
        executor's settings and report their spans to its recorder.
        """
        from quantfleet.compute.coordinator import run_coordinated

        return run_coordinated(fn, args, kwargs, executor=self, checkpoint=checkpoint,
                               on_round=on_round, restarts=restarts,
                               make_executor=functools.partial(
                                   type(self), self._n, max_retries=self.max_retries,
                                   num_cpus_per_task=self.num_cpus_per_task))

    @property
    def workers(self) -> int:
        if self._n is not None:
            return self._n
        import ray

        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        return max(1, int(cpus // self.num_cpus_per_task))

    def _open(self, fn: Callable[[Any, Any], Any], shared: Any) -> None:
        import ray

        if shared is None:
            self._shared_obj, self._shared_ref = None, None
        elif self._shared_ref is None or shared is not self._shared_obj:
            self._shared_ref = ray.put(shared)
            self._shared_obj = shared
            self.puts += 1
        if fn is not self._fn_obj or not _by_reference(fn):
            # a function importable by name pickles to its name, so its reference can be
            # reused by the next map (workers then skip fetching it again); anything else (a
            # closure, a lambda) is put anew, it may capture state that changed
            self._fn_ref = ray.put(fn)
            self._fn_obj = fn
            self.puts += 1
        self._refresh_capacity()
        self._task = _remote().options(num_cpus=self.num_cpus_per_task,
                                       max_retries=self.max_retries, retry_exceptions=False)

    @property
    def capacity_refresh_s(self) -> float | None:
        return self.refresh_s if self._n is None else None

    def _refresh_capacity(self) -> int:
        # deadlines run from a task's start signal, so queued tasks do not use up their
        # timeout; fewer workers lower the cap and the running tasks finish
        w = self.workers
        self._slots = w * self.slots_per_worker
        return w

    def _capacity(self) -> int:
        return self._slots - len(self._refs)

    def _submit(self, task: ChunkTask) -> None:
        ref = self._task.remote([self._fn_ref, self._shared_ref], task)
        self._refs[ref] = task.uid
        self._by_uid[task.uid] = ref

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, ChunkResult | Lost]]:
        import ray

        refs = list(self._refs)
        if not refs:
            return []
        # one result per call: the map polls again at once, and a second ray.wait to sweep
        # up the others cost more driver CPU than it saved
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        events: list[tuple[Hashable, ChunkResult | Lost]] = []
        for gen in ready:  # a task's generator with its next item ready: next() won't block
            uid = self._refs[gen]
            try:
                data = ray.get(next(gen))
                if data == b"":  # the worker started the task; its result comes later
                    self._on_started(uid)
                    continue
                out: ChunkResult | Lost = pickle.loads(data)
            except StopIteration:
                out = Lost("RayError", "the task ended without a result")
            except ray.exceptions.RayError as e:
                msg = str(e).strip().splitlines()
                out = Lost(type(e).__name__, msg[0] if msg else type(e).__name__)
            del self._refs[gen]
            self._by_uid.pop(uid, None)
            events.append((uid, out))
        return events

    def _cancel(self, uid: int) -> None:
        import ray

        gen = self._by_uid.pop(uid, None)
        if gen is None:
            return
        self._refs.pop(gen, None)
        done, _ = ray.wait([gen.completed()], timeout=0)
        if done:  # finished just now: cancelling it would race Ray's completion callback
            return
        try:
            ray.cancel(gen, force=True)  # kills the worker process: numba code cannot be interrupted
        except Exception:  # noqa: BLE001 - already finished or gone
            pass

    def _abandon(self) -> None:
        # the tasks in flight (at most slots_per_worker per worker) are left to finish and their results
        # dropped with the references: ray.cancel on a task that is completing at that moment
        # crashes the driver in Ray 2.60 ("Check failed: it != submissible_tasks_.end() Tried
        # to complete task that was not pending", ray-project/ray#54846), seen here after a
        # KeyboardInterrupt mid-map
        self._refs.clear()
        self._by_uid.clear()

    def close(self) -> None:
        if not self._closed:
            self._abandon()
            self._shared_obj = self._shared_ref = self._fn_ref = self._fn_obj = None
            if self._owns:
                import ray

                ray.shutdown()
        super().close()
