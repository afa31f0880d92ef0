"""The coordinator: a stateful loop (a search's ask → evaluate → tell) run inside a Ray actor
pinned to the head node, restarted by Ray when it dies, resuming from its checkpoint.

:meth:`RayExecutor.host` calls :func:`run_coordinated`. The actor runs
``fn(*args, executor=<a RayExecutor on the same Ray>, checkpoint=<path>, on_round=<report>,
**kwargs)`` (the signature of :func:`quantfleet.research.searcher.run_search`): the loop, its
state and its evaluation tasks live on the cluster; the driver starts the actor, follows what it
reports (rounds, spans, task counts) and waits for the result. ``fn`` must write its state to
``checkpoint`` after every round and resume from it when the file exists: a restarted actor
runs ``fn`` again (Ray retries the call) and it continues from the last finished round, so the
result is the one an uninterrupted run gives.

Placement: the actor reserves no CPU and has a hard node affinity to the head node (the node
Ray marks with its ``node:__internal_head__`` resource; the driver's node when none is marked),
so losing a worker node never takes the coordinator with it, and a restart finds a path
checkpoint on the same filesystem. A checkpoint may also be an object with ``read() -> bytes |
None``, ``write(bytes)`` and ``sibling(name)`` (a key in the run's store: the actor re-opens
the store where it runs). A run that names none gets a scratch one in memory
(:class:`ScratchCheckpoint`, held by a small :class:`Keeper` actor beside the coordinator,
with the log of its incarnations): both actors are owned by the driver, so when the run ends,
or the driver dies, Ray removes them and nothing is left on any disk. Ray is imported only
inside functions.
"""

from __future__ import annotations

import os
import threading
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quantfleet.errors import ExecutionError, QuantfleetError
from quantfleet.observe.spans import SpanRecorder

__all__ = ["HEAD_RESOURCE", "Coordinated", "Coordinator", "Keeper", "ScratchCheckpoint",
           "head_node_id", "run_coordinated"]

HEAD_RESOURCE = "node:__internal_head__"
"""The resource Ray itself puts on the head node (every Ray cluster has it; nothing to declare)."""



@dataclass
class Coordinated:
    """What a coordinated run returned, and where and how often its coordinator ran.

    ``incarnations``: one record per actor process that started the loop, in order
    (``node``, ``pid``, ``restarted``: Ray rebuilt it after a death); more than one means the
    coordinator died and resumed from its checkpoint.
    """

    value: Any
    node: str
    head: str
    incarnations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def restarts(self) -> int:
        return sum(1 for i in self.incarnations if i["restarted"])

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "on_head": self.node == self.head,
                "restarts": self.restarts, "incarnations": self.incarnations}


def head_node_id() -> str:
    """The id of the alive node carrying :data:`HEAD_RESOURCE` (the driver's node if none does)."""
    import ray

    for n in ray.nodes():
        if n.get("Alive") and HEAD_RESOURCE in (n.get("Resources") or {}):
            return str(n["NodeID"])
    return str(ray.get_runtime_context().get_node_id())


class Keeper:
    """Named bytes and the log of a run's coordinator incarnations, in this actor's memory.

    One per coordinated run, on the head beside the coordinator and owned by the driver: it
    outlives a coordinator's death (a restart resumes from the scratch checkpoint it holds) and
    goes when the run ends or the driver dies.
    """

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._log: list[dict[str, Any]] = []

    def get(self, name: str) -> bytes | None:
        return self._blobs.get(name)

    def put(self, name: str, data: bytes) -> None:
        self._blobs[name] = data

    def incarnation(self, record: dict[str, Any]) -> None:
        self._log.append(record)

    def incarnations(self) -> list[dict[str, Any]]:
        return list(self._log)


class ScratchCheckpoint:
    """A checkpoint (``read`` / ``write`` / ``sibling``) held by a :class:`Keeper` actor."""

    def __init__(self, keeper: Any, name: str = "checkpoint.json") -> None:
        self.keeper = keeper
        self.name = name

    def read(self) -> bytes | None:
        import ray

        return ray.get(self.keeper.get.remote(self.name))

    def write(self, data: bytes) -> None:
        import ray

        ray.get(self.keeper.put.remote(self.name, bytes(data)))

    def sibling(self, name: str) -> ScratchCheckpoint:
        return ScratchCheckpoint(self.keeper, name)

    def __str__(self) -> str:
        return f"(scratch, in memory on the head node: {self.name})"


def _found(checkpoint: Any) -> bool:
    if hasattr(checkpoint, "read"):
        return checkpoint.read() is not None
    return os.path.exists(checkpoint)


class Coordinator:
    """The actor body: runs ``fn`` once per :meth:`run` call on an executor of its own.

    Everything ``fn`` reports (``on_round`` records, spans, task events) waits in an outbox the
    driver empties with :meth:`drain`; ``max_concurrency=2`` lets ``drain`` run beside ``run``.
    """

    def __init__(self, checkpoint: Any, keeper_name: str,
                 make_executor: Callable[..., Any]) -> None:
        import ray

        # the keeper by name, not by handle: an actor handle among the constructor's arguments
        # makes Ray log an error about restarts at every start (core_worker.cc, ray#53727)
        keeper = ray.get_actor(keeper_name)
        if checkpoint is None:
            checkpoint = ScratchCheckpoint(keeper)
        self.checkpoint = checkpoint
        self._keeper = keeper
        self._make_executor = make_executor
        self._lock = threading.Lock()
        self._out: dict[str, list[Any]] = {"rounds": [], "spans": [], "events": []}
        ctx = ray.get_runtime_context()
        with warnings.catch_warnings():  # Ray 2.60 reads its own deprecated actor_id here
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = bool(ctx.was_current_actor_reconstructed)
        me = {"node": str(ctx.get_node_id()), "pid": os.getpid(), "restarted": restarted,
              "checkpoint_found": _found(checkpoint)}
        ray.get(keeper.incarnation.remote(me))

    def _put(self, box: str, item: Any) -> None:
        with self._lock:
            self._out[box].append(item)

    def drain(self) -> dict[str, Any]:
        """What happened since the last drain: rounds, spans, task events."""
        with self._lock:
            out, self._out = self._out, {"rounds": [], "spans": [], "events": []}
        return out

    def run(self, payload: list[Any]) -> dict[str, Any]:
        """``{"value": fn(*args, **kwargs), "incarnations": [...]}`` from ``payload = [ref of
        (fn, args, kwargs)]``: the driver holds the reference until the run ends, and Ray
        retries the call, with it, on a restarted actor."""
        import ray

        fn, args, kwargs = ray.get(payload[0])
        rec = SpanRecorder(on_add=lambda s: self._put("spans", s),
                           on_event=lambda k, st, n: self._put("events", (k, st, n)))
        ex = self._make_executor(recorder=rec)  # a RayExecutor: Ray is up, it attaches, never owns
        try:
            value = fn(*args, executor=ex, checkpoint=self.checkpoint,
                       on_round=lambda r: self._put("rounds", r), **kwargs)
        finally:
            ex.close()
        return {"value": value, "incarnations": ray.get(self._keeper.incarnations.remote())}


def run_coordinated(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
                    executor: Any, checkpoint: Any = None,
                    on_round: Callable[[dict[str, Any]], None] | None = None,
                    restarts: int = 3, poll_s: float = 0.5,
                    make_executor: Callable[..., Any] | None = None) -> Coordinated:
    """Run ``fn`` in a :class:`Coordinator` actor on the head node; follow it; return its value.

    ``executor``: the driver's RayExecutor; the spans and task events of the actor's maps are
    added to its recorder as they arrive. ``checkpoint``: where ``fn`` keeps its state: a path
    on the head node's filesystem, or an object with ``read`` / ``write`` / ``sibling`` (a key
    in a store, re-opened in the actor); None: a :class:`ScratchCheckpoint` in a
    :class:`Keeper` actor's memory, gone with the run (or with the driver). ``restarts``: how many times Ray restarts a dead coordinator
    (``max_restarts``); every restart resumes from the checkpoint. ``on_round`` receives each
    round record on the driver, in order, once (a round repeated after a restart is not
    reported again). ``make_executor(recorder=...)`` builds the actor's own executor (default:
    ``type(executor)()``, which attaches to the Ray the actor runs in).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = head_node_id()
    payload = ray.put((fn, tuple(args), dict(kwargs)))  # held here: a restart reads it again
    on_head = NodeAffinitySchedulingStrategy(node_id=head, soft=False)
    keeper_name = f"quantfleet-keeper-{uuid.uuid4().hex}"
    keeper = ray.remote(Keeper).options(num_cpus=0, scheduling_strategy=on_head,
                                        name=keeper_name).remote()
    if isinstance(checkpoint, os.PathLike):
        checkpoint = os.fspath(checkpoint)
    actor = ray.remote(Coordinator).options(
        num_cpus=0, max_restarts=int(restarts), max_task_retries=-1, max_concurrency=2,
        scheduling_strategy=on_head,
    ).remote(checkpoint, keeper_name, make_executor or type(executor))
    last_round = -1
    pending: Any = None

    def take(box: dict[str, Any]) -> None:
        nonlocal last_round
        for s in box["spans"]:
            executor.spans.add(s)
        for k, st, n in box["events"]:
            executor.spans.event(k, st, n)
        for r in box["rounds"]:
            if r.get("round", last_round + 1) > last_round:
                last_round = r.get("round", last_round + 1)
                if on_round is not None:
                    on_round(r)

    def follow(block: bool) -> None:
        # one drain call in flight at a time, never dropped: a call that waits through a
        # restart is served by the new incarnation, and its outbox must reach the driver
        nonlocal pending
        if pending is None:
            pending = actor.drain.remote()
        if ray.wait([pending], timeout=None if block else 0)[0]:
            try:
                take(ray.get(pending))
            except ray.exceptions.RayActorError:
                pass  # died with what it held; a restarted loop replays its rounds
            pending = None

    ref = actor.run.remote([payload])
    try:
        while not ray.wait([ref], timeout=poll_s)[0]:
            follow(block=False)
        try:
            out = ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, QuantfleetError):
                raise cause from None
            raise
        except ray.exceptions.RayActorError as e:
            msg = str(e).strip().splitlines()
            where = (f"its checkpoint {checkpoint} resumes the run when given again"
                     if checkpoint is not None else
                     "the run named no checkpoint, so it starts afresh when run again "
                     "(--resume DIR keeps one)")
            raise ExecutionError(
                f"the coordinator actor died more than {restarts} time(s) "
                f"({msg[0] if msg else type(e).__name__}); {where}") from e
        follow(block=True)  # the call in flight, then what came after it
        follow(block=True)
    finally:
        for a in (actor, keeper):
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
    incarnations = out["incarnations"]
    return Coordinated(out["value"], incarnations[-1]["node"], head, incarnations)
