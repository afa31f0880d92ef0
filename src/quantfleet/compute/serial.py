"""SerialExecutor: every task in the calling process, one after another (the reference)."""

from __future__ import annotations

import os
import socket
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from quantfleet.compute.executor import BaseExecutor
from quantfleet.compute.tasks import ChunkResult, ChunkTask, Lost, run_chunk
from quantfleet.observe.spans import SpanRecorder

__all__ = ["SerialExecutor"]

_HOST = socket.gethostname()


class SerialExecutor(BaseExecutor):
    """Runs every task in the calling process, one after another.

    The reference for results; spans name this process (pid) and host. It cannot cancel a
    running function, so ``timeout_s`` is ignored with a warning.
    """

    name = "serial"
    start_signal = True
    supports_timeout = False

    def __init__(self, recorder: SpanRecorder | None = None) -> None:
        super().__init__(recorder)
        self._queue: deque[ChunkTask] = deque()
        self._fn: Callable[[Any, Any], Any] | None = None
        self._shared: Any = None

    @property
    def workers(self) -> int:
        return 1

    def _open(self, fn: Callable[[Any, Any], Any], shared: Any) -> None:
        self._fn, self._shared = fn, shared
        self._queue.clear()

    def _capacity(self) -> int:
        return 0 if self._queue else 1

    def _submit(self, task: ChunkTask) -> None:
        self._queue.append(task)

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, ChunkResult | Lost]]:
        task = self._queue.popleft()
        assert self._fn is not None
        self._on_started(task.uid)
        res = run_chunk(self._fn, self._shared, task, worker=str(os.getpid()), node=_HOST)
        return [(task.uid, res)]

    def _cancel(self, uid: int) -> None:  # pragma: no cover - never has a deadline
        pass

    def _abandon(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        self._fn = self._shared = None
        super().close()
