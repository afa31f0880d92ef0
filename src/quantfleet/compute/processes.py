"""ProcessExecutor: a small pool of spawned worker processes on this machine.

Why not ``concurrent.futures.ProcessPoolExecutor``: it cannot kill one hung task (a worker
that is killed breaks the whole pool). Here each worker owns a pipe; the driver sends one
task at a time to an idle worker, waits on every pipe and process sentinel, and kills and
replaces exactly the worker whose task ran past its deadline or died.

Start method: ``spawn`` by default (``forkserver`` allowed). ``fork`` is refused: forking a
driver that runs threads (Ray's gRPC and object-store clients, numba's threading layer,
rich's refresh thread) can copy a lock held by another thread and deadlock the child.
Spawn behaves the same on Linux, macOS and Windows; it costs an interpreter start and the
imports per worker at pool start, paid once per ``shared`` object, not per task. Results come
back as plain pickles through the worker's pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import socket
import threading
from collections.abc import Callable, Hashable
from multiprocessing.connection import Connection, wait
from typing import Any

from quantfleet.compute.executor import BaseExecutor
from quantfleet.compute.tasks import ChunkResult, ChunkTask, Lost, run_chunk, unpicklable_result
from quantfleet.errors import ExecutionError
from quantfleet.observe.spans import SpanRecorder

__all__ = ["ProcessExecutor", "dumps_fn"]

_START_FAILURES_MAX = 3


def dumps_fn(fn: Callable[..., Any]) -> bytes:
    """Pickle ``fn`` by reference; fall back to cloudpickle (lambdas, closures) if installed."""
    try:
        data = pickle.dumps(fn, protocol=5)
        pickle.loads(data)
        return data
    except Exception as first:  # noqa: BLE001
        try:
            import cloudpickle
        except ImportError:
            raise TypeError(f"fn {fn!r} cannot be pickled ({first}); define it at module level "
                            f"or install cloudpickle") from first
        return cloudpickle.dumps(fn, protocol=5)


def _worker_main(conn: Connection) -> None:
    """A worker: receive the shared payload once, then tasks until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    pid, host = str(os.getpid()), socket.gethostname()
    try:
        shared = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return
    except BaseException as e:  # noqa: BLE001
        conn.send_bytes(pickle.dumps(("init_error", f"{type(e).__name__}: {e}")))
        return
    conn.send_bytes(pickle.dumps(("ready", pid)))
    fn_key: bytes | None = None
    fn: Callable[[Any, Any], Any] | None = None
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        msg = pickle.loads(data)
        if msg is None:
            return
        fn_bytes, task = msg
        if fn_bytes != fn_key:
            fn, fn_key = pickle.loads(fn_bytes), fn_bytes
        assert fn is not None
        try:  # the driver counts the task as started when it reads this
            conn.send_bytes(pickle.dumps(("started", task.uid)))
        except (BrokenPipeError, OSError):
            return
        res = run_chunk(fn, shared, task, worker=pid, node=host)
        # plain pickle, not compute.codec: through a local pipe the bytes cost the driver less
        # than decoding them would (the driver's CPU is what a parallel map waits on)
        try:
            out = pickle.dumps(("result", res), protocol=5)
        except Exception as e:  # noqa: BLE001
            out = pickle.dumps(("result", unpicklable_result(task, res, e)), protocol=5)
        try:
            conn.send_bytes(out)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    __slots__ = ("proc", "conn", "ready", "uid", "pid")

    def __init__(self, proc: Any, conn: Connection) -> None:
        self.proc, self.conn = proc, conn
        self.ready = False
        self.uid: int | None = None
        self.pid = proc.pid


class ProcessExecutor(BaseExecutor):
    """Run tasks on ``workers`` local processes (default: ``os.cpu_count()``).

    ``shared`` is pickled once per map and sent to each worker when it starts (the pool's
    initializer); a later map with the *same* shared object (identity) reuses the warm
    workers, a different one restarts the pool. A worker whose task exceeds its deadline is
    killed (SIGKILL) and replaced; a worker that dies is replaced and its task is lost.
    Spans name the worker by pid and the node by hostname.
    """

    name = "processes"
    start_signal = True

    def __init__(self, workers: int | None = None, *, start_method: str = "spawn",
                 recorder: SpanRecorder | None = None) -> None:
        super().__init__(recorder)
        if start_method not in ("spawn", "forkserver"):
            raise ExecutionError(
                f"ProcessExecutor: start_method {start_method!r} is not supported; use 'spawn' "
                f"(default) or 'forkserver' ('fork' can deadlock a driver that runs threads)")
        n = workers if workers is not None else (os.cpu_count() or 1)
        if isinstance(n, bool) or int(n) < 1:
            raise ExecutionError(f"ProcessExecutor: workers must be >= 1 (got {workers!r})")
        self._n = int(n)
        self._ctx = mp.get_context(start_method)
        self._pool: list[_Worker] = []
        self._shared_obj: Any = None
        self._shared_bytes: bytes | None = None
        self._fn_bytes = b""
        self._start_failures = 0

    @property
    def workers(self) -> int:
        return self._n

    # -- pool management
    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True,
                                 name="quantfleet-worker")
        proc.start()
        child.close()
        self._pool.append(_Worker(proc, parent))
        # the payload may be large: send it from a thread so the driver keeps polling
        threading.Thread(target=self._send_shared, args=(parent,), daemon=True).start()

    def _send_shared(self, conn: Connection) -> None:
        try:
            conn.send_bytes(self._shared_bytes or pickle.dumps(None))
        except (BrokenPipeError, OSError):
            pass  # the worker died; its sentinel tells the driver

    def _kill(self, w: _Worker) -> None:
        try:
            w.proc.kill()
        except (OSError, ValueError):
            pass
        w.proc.join(timeout=5)
        w.conn.close()
        if w in self._pool:
            self._pool.remove(w)

    def _stop_pool(self) -> None:
        for w in list(self._pool):
            try:
                w.conn.send_bytes(pickle.dumps(None))
            except (BrokenPipeError, OSError):
                pass
        for w in list(self._pool):
            w.proc.join(timeout=2)
            self._kill(w)
        self._pool.clear()

    def _open(self, fn: Callable[[Any, Any], Any], shared: Any) -> None:
        self._fn_bytes = dumps_fn(fn)
        if self._shared_bytes is None or shared is not self._shared_obj:
            self._stop_pool()
            self._shared_bytes = pickle.dumps(shared, protocol=5)
            self._shared_obj = shared
        self._start_failures = 0
        while len(self._pool) < self._n:
            self._spawn()

    # -- the backend hooks
    def _capacity(self) -> int:
        return sum(1 for w in self._pool if w.ready and w.uid is None)

    def _submit(self, task: ChunkTask) -> None:
        w = next(w for w in self._pool if w.ready and w.uid is None)
        w.uid = task.uid
        try:
            w.conn.send_bytes(pickle.dumps((self._fn_bytes, task), protocol=5))
        except (BrokenPipeError, OSError):
            pass  # the worker died; the sentinel reports it and the task is lost

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, ChunkResult | Lost]]:
        objs: dict[Any, _Worker] = {}
        for w in self._pool:
            objs[w.conn] = w
            objs[w.proc.sentinel] = w
        events: list[tuple[Hashable, ChunkResult | Lost]] = []
        ready = wait(list(objs), timeout)
        dead: list[_Worker] = []
        for obj in ready:
            w = objs[obj]
            if obj is w.conn:
                self._drain(w, events, dead)
            elif w not in dead:
                self._drain(w, events, dead)  # a result may precede the exit
                if w not in dead:
                    dead.append(w)
        for w in dead:
            if w.uid is not None:
                code = w.proc.exitcode
                events.append((w.uid, Lost("WorkerDied", f"worker process {w.pid} died "
                                                          f"(exit code {code}) running the task")))
            if not w.ready:
                self._start_failures += 1
            self._kill(w)
            if self._start_failures >= _START_FAILURES_MAX:
                raise ExecutionError(
                    f"ProcessExecutor: {self._start_failures} worker processes died before "
                    f"they were ready; check that `shared` unpickles in a fresh interpreter")
            self._spawn()
        return events

    def _drain(self, w: _Worker, events: list[tuple[Hashable, ChunkResult | Lost]],
               dead: list[_Worker]) -> None:
        try:
            while w.conn.poll():
                msg = pickle.loads(w.conn.recv_bytes())
                if msg[0] == "ready":
                    w.ready = True
                elif msg[0] == "started":
                    if w.uid == msg[1]:
                        self._on_started(msg[1])
                elif msg[0] == "result":
                    res: ChunkResult = msg[1]
                    if w.uid == res.uid:
                        w.uid = None
                        events.append((res.uid, res))
                elif msg[0] == "init_error":
                    self._stop_pool()
                    raise ExecutionError(
                        f"ProcessExecutor: a worker could not unpickle `shared`: {msg[1]}; "
                        f"shared objects must be importable in a fresh interpreter")
        except (EOFError, OSError):
            if w not in dead:
                dead.append(w)

    def _cancel(self, uid: int) -> None:
        for w in list(self._pool):
            if w.uid == uid:
                self._kill(w)
                self._spawn()
                return

    def _abandon(self) -> None:
        for w in list(self._pool):
            if w.uid is not None:
                self._kill(w)

    def close(self) -> None:
        if not self._closed:
            self._stop_pool()
            self._shared_obj = self._shared_bytes = None
        super().close()
