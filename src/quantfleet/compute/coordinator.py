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
so losing a worker node never takes the coordinator with it, and a restart finds the
checkpoint on the same filesystem. Ray is imported only inside functions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantfleet.errors import ExecutionError, QuantfleetError
from quantfleet.observe.spans import SpanRecorder

__all__ = ["HEAD_RESOURCE", "Coordinated", "Coordinator", "head_node_id", "run_coordinated"]

HEAD_RESOURCE = "node:__internal_head__"
"""The resource Ray itself puts on the head node (every Ray cluster has it; nothing to declare)."""

_SCRATCH = "quantfleet-coordinator"
"""Directory under the head's temp dir holding the checkpoint of a run that names none."""


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


class Coordinator:
    """The actor body: runs ``fn`` once per :meth:`run` call on an executor of its own.

    Everything ``fn`` reports (``on_round`` records, spans, task events) waits in an outbox the
    driver empties with :meth:`drain`; ``max_concurrency=2`` lets ``drain`` run beside ``run``.
    """

    def __init__(self, checkpoint: str | None, token: str,
                 make_executor: Callable[..., Any]) -> None:
        import ray

        # this run's directory on the head: the log of incarnations (and the checkpoint when
        # the run names none), removed when the run ends
        self._dir = Path(tempfile.gettempdir()) / _SCRATCH / token
        self._dir.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            checkpoint = str(self._dir / "checkpoint.json")
        self.checkpoint = checkpoint
        self._make_executor = make_executor
        self._lock = threading.Lock()
        self._out: dict[str, list[Any]] = {"rounds": [], "spans": [], "events": []}
        ctx = ray.get_runtime_context()
        with warnings.catch_warnings():  # Ray 2.60 reads its own deprecated actor_id here
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = bool(ctx.was_current_actor_reconstructed)
        me = {"node": str(ctx.get_node_id()), "pid": os.getpid(), "restarted": restarted,
              "checkpoint_found": Path(checkpoint).exists()}
        with open(self._dir / "incarnations.jsonl", "a") as fh:
            fh.write(json.dumps(me) + "\n")

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
            log = (self._dir / "incarnations.jsonl").read_text().splitlines()
            shutil.rmtree(self._dir, ignore_errors=True)
        return {"value": value, "incarnations": [json.loads(x) for x in log]}


def run_coordinated(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
                    executor: Any, checkpoint: str | os.PathLike[str] | None = None,
                    on_round: Callable[[dict[str, Any]], None] | None = None,
                    restarts: int = 3, poll_s: float = 0.5,
                    make_executor: Callable[..., Any] | None = None) -> Coordinated:
    """Run ``fn`` in a :class:`Coordinator` actor on the head node; follow it; return its value.

    ``executor``: the driver's RayExecutor; the spans and task events of the actor's maps are
    added to its recorder as they arrive. ``checkpoint``: the file ``fn`` keeps its state in, a
    path on the head node's filesystem (None: a scratch file under the head's temp dir, removed
    when the run ends). ``restarts``: how many times Ray restarts a dead coordinator
    (``max_restarts``); every restart resumes from the checkpoint. ``on_round`` receives each
    round record on the driver, in order, once (a round repeated after a restart is not
    reported again). ``make_executor(recorder=...)`` builds the actor's own executor (default:
    ``type(executor)()``, which attaches to the Ray the actor runs in).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = head_node_id()
    payload = ray.put((fn, tuple(args), dict(kwargs)))  # held here: a restart reads it again
    token = uuid.uuid4().hex
    actor = ray.remote(Coordinator).options(
        num_cpus=0, max_restarts=int(restarts), max_task_retries=-1, max_concurrency=2,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=head, soft=False),
    ).remote(None if checkpoint is None else os.fspath(checkpoint), token,
             make_executor or type(executor))
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
            if str(ray.get_runtime_context().get_node_id()) == head:  # its directory is here
                shutil.rmtree(Path(tempfile.gettempdir()) / _SCRATCH / token, ignore_errors=True)
            msg = str(e).strip().splitlines()
            raise ExecutionError(
                f"the coordinator actor died more than {restarts} time(s) "
                f"({msg[0] if msg else type(e).__name__}); its checkpoint "
                f"{checkpoint or '(scratch, on the head node)'} resumes the run when given "
                f"again (--resume DIR)") from e
        follow(block=True)  # the call in flight, then what came after it
        follow(block=True)
    finally:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
    incarnations = out["incarnations"]
    return Coordinated(out["value"], incarnations[-1]["node"], head, incarnations)
