"""Fingerprints of the code a computation runs: the source files of a module and of every
quantfleet module it imports, transitively (function-level imports included).

A cache key or a checkpoint that holds :func:`code_fingerprint` of the modules that produce
its result changes when, and only when, one of those files changes: editing the report
template does not invalidate a tournament, editing a strategy kernel does. Standard library
only, so any layer may import it (like ``quantfleet.errors``).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["code_fingerprint", "module_closure"]

_ROOT = Path(__file__).resolve().parent
_PKG = "quantfleet"


def _file_of(module: str) -> Path | None:
    """The source file of a quantfleet module or package, or None when there is none."""
    if module != _PKG and not module.startswith(_PKG + "."):
        return None
    parts = module.split(".")[1:]
    base = _ROOT.joinpath(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if parts and cand.is_file():
            return cand
    return _ROOT / "__init__.py" if not parts else None


_FROM = re.compile(r"^[ \t]*from[ \t]+(quantfleet(?:\.\w+)*)[ \t]+import[ \t]+"
                   r"(\([^)]*\)|[^\n]*)", re.MULTILINE)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n]*)", re.MULTILINE)


@functools.cache
def _imports(path: Path) -> tuple[str, ...]:
    """quantfleet modules ``path`` imports anywhere in its body (``from pkg import name``
    counts as ``pkg.name`` when that is a module, else ``pkg``).

    Read with regular expressions, not ``ast.parse``: CPython 3.11's AST conversion keeps its
    recursion counter in state shared by threads, and a parse racing another thread's (a
    Prefect flow run has several) fails with "AST constructor recursion depth mismatch". An
    import-like line inside a string only adds a module: the fingerprint covers more code,
    never less.
    """
    text = path.read_text(encoding="utf-8")
    found: set[str] = set()
    for m in _FROM.finditer(text):
        found.add(m.group(1))
        names = m.group(2).split("#")[0] if not m.group(2).startswith("(") else m.group(2)
        for part in re.split(r"[\s,()]+", names):
            name = part.strip()
            if name and name.isidentifier() and name != "as":
                found.add(f"{m.group(1)}.{name}")
    for m in _IMPORT.finditer(text):
        for part in m.group(1).split("#")[0].split(","):
            name = part.strip().split(" as ")[0].strip()
            if name.startswith("quantfleet"):
                found.add(name)
    return tuple(sorted(m for m in found if _file_of(m) is not None))


def module_closure(modules: Iterable[str]) -> list[str]:
    """``modules`` and every quantfleet module they import, transitively, with the packages
    that contain them (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``); sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        path = _file_of(m)
        if path is None:
            raise ValueError(f"code_fingerprint: {m!r} is not a quantfleet module")
        seen.add(m)
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_imports(path))
    return sorted(seen)


@functools.lru_cache(maxsize=256)
def _fingerprint(modules: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for m in module_closure(modules):
        path = _file_of(m)
        h.update(m.encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def code_fingerprint(*modules: str) -> str:
    """sha256 (16 hex digits) of the sources of ``modules`` and their import closure.

    Computed once per process for each set of modules (the sources of a running process do
    not change under it in a way Python would notice either).
    """
    return _fingerprint(tuple(sorted(set(modules))))
