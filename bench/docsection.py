"""Helpers shared by the bench scripts: a named section of docs/BENCHMARKS.md, a stderr log."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def write_section(name: str, text: str, path: Path = DOC) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->``, or append
    the section at the end; written to a temp file and renamed, so a crash leaves the old doc."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    i, j = old.find(start), old.find(end)
    if i >= 0 and j > i:
        new = old[:i] + block + old[j + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def logger(tag: str):
    """``log(msg)`` printing ``[tag HH:MM:SS] msg`` to stderr."""
    def log(msg: str) -> None:
        print(f"[{tag} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
    return log
