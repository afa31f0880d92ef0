"""A checkpoint in a store: the bytes of one resumable state at one key, replaced atomically.

:class:`StoreCheckpoint` is what the pipeline hands a resumable driver (the evolution's
search loop) when the run has a store: an object with ``read() -> bytes | None``,
``write(bytes)`` and ``sibling(name)`` (the protocol of
:class:`quantfleet.research.searcher.Checkpoint`), so research never imports the store.
It pickles to the store's URL, its non-secret options and the key: a Ray coordinator on another
machine re-opens the same store with the credentials of its own environment
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_ENDPOINT_URL``) and resumes from it.
"""

from __future__ import annotations

from typing import Any

from quantfleet.store.keys import CHECKPOINTS, checkpoint_key
from quantfleet.store.redact import redact
from quantfleet.store.runs import Store

__all__ = ["StoreCheckpoint"]


class StoreCheckpoint:
    """``checkpoints/<path>`` in ``store`` (a :class:`~quantfleet.store.Store`, or its URL).

    ``write`` replaces the object atomically (a local store: a temporary file renamed over
    it; S3: one PutObject), so a reader sees the previous state or the new one, never part.
    """

    def __init__(self, store: Any, path: str) -> None:
        self.store = Store.open(store)
        self.key = checkpoint_key(path)

    def read(self) -> bytes | None:
        """The bytes last written, or None when nothing was written yet."""
        try:
            return self.store._read(self.key)
        except FileNotFoundError:
            return None

    def write(self, data: bytes) -> None:
        self.store._overwrite(self.key, bytes(data))

    def sibling(self, name: str) -> StoreCheckpoint:
        """The checkpoint ``name`` beside this one (same folder)."""
        folder = self.key[len(CHECKPOINTS) + 1:].rsplit("/", 1)[0]
        return StoreCheckpoint(self.store, f"{folder}/{name}")

    def delete(self) -> None:
        """Remove the object (nothing happens if it is absent)."""
        if self.store._size(self.key) is not None:
            try:
                self.store.fs.rm_file(self.store._path(self.key))
            except FileNotFoundError:
                pass
            except Exception as e:
                raise self.store._fail("deleting", self.key, e) from None

    @property
    def folder(self) -> str:
        """The URL of the folder holding it (credentials redacted), for messages."""
        return redact(self.store._uri_of(self.key).rsplit("/", 1)[0])

    def __str__(self) -> str:
        return redact(self.store._uri_of(self.key))

    def __repr__(self) -> str:
        return f"StoreCheckpoint({self.store.url!r}, {self.key!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, StoreCheckpoint) and other.store == self.store
                and other.key == self.key)

    def __hash__(self) -> int:
        return hash((self.store, self.key))
