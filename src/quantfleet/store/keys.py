"""Where things live inside a store: the one function that builds artifact keys, and the
mutable names (runs, refs) kept apart from the write-once, content-addressed objects.

Layout under the store's root::

    artifacts/sha256/<hh>/<64 hex>.<parquet|json|bin>   write-once, named by the sha256 of the bytes
    runs/<run_id>/manifest.json                          one per run, rewritten while the run goes on
    refs/<name>.json                                     named pointers to a hash (``{"hash": ...}``)
    checkpoints/<stage>/<name>/<file>                    a resumable stage's state (overwritten)
"""

from __future__ import annotations

import re

from quantfleet.errors import StoreError

__all__ = [
    "ARTIFACTS",
    "CHECKPOINTS",
    "FORMATS",
    "REFS",
    "RESERVED_KINDS",
    "RUNS",
    "artifact_key",
    "check_hash",
    "check_kind",
    "checkpoint_key",
    "hash_from_key",
    "manifest_key",
    "ref_key",
]

ARTIFACTS = "artifacts/sha256"
RUNS = "runs"
REFS = "refs"
CHECKPOINTS = "checkpoints"

FORMATS = {"parquet": ".parquet", "json": ".json", "bytes": ".bin"}
"""Artifact format -> key suffix. The suffix tells a reader how to decode, never the hash."""

RESERVED_KINDS = frozenset({"runs", "artifacts", "lineage", "steps"})
"""Catalog table names; a kind becomes a view of the same name, so these are taken."""

_HASH = re.compile(r"^[0-9a-f]{64}$")
_HASH_IN = re.compile(r"([0-9a-f]{64})")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})*$")


def check_hash(h: object) -> str:
    """Return ``h`` as a lowercase sha256 hex digest, or raise naming what was given."""
    if not isinstance(h, str):
        raise TypeError(f"artifact hash must be a str or an ArtifactRef (got {type(h).__name__})")
    v = h.strip().lower().removeprefix("sha256:")
    if not _HASH.match(v):
        raise StoreError(f"{h!r} is not an artifact hash: expected 64 hex digits of a sha256, "
                         f"e.g. the .hash of what put_table/put_json/put_bytes returned")
    return v


def check_kind(kind: object) -> str:
    """A kind names a family of artifacts and becomes a catalog view: a lowercase identifier."""
    if not isinstance(kind, str):
        raise TypeError(f"artifact kind must be a str (got {type(kind).__name__})")
    if not _KIND.match(kind):
        raise StoreError(f"artifact kind {kind!r}: use a lowercase SQL identifier "
                         f"(letters, digits, '_', starting with a letter), e.g. 'tournament_results'")
    if kind in RESERVED_KINDS:
        raise StoreError(f"artifact kind {kind!r} is a catalog table name; pick another, "
                         f"e.g. '{kind}_table'")
    return kind


def artifact_key(h: str, fmt: str) -> str:
    """``artifacts/sha256/ab/ab12...ef.parquet``: the only place artifact keys are built."""
    if fmt not in FORMATS:
        raise StoreError(f"unknown artifact format {fmt!r}; expected one of {sorted(FORMATS)}")
    h = check_hash(h)
    return f"{ARTIFACTS}/{h[:2]}/{h}{FORMATS[fmt]}"


def hash_from_key(key: str) -> str | None:
    """The hash inside an artifact key or URL, or ``None``."""
    m = _HASH_IN.search(key.rsplit("/", 1)[-1])
    return m.group(1) if m else None


def manifest_key(run_id: str) -> str:
    """``runs/<run_id>/manifest.json``."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise StoreError(f"run id {run_id!r}: use letters, digits, '.', '_' and '-' "
                         f"(ids from new_run_id() look like 20261123T101530123456Z-3fa9c1d2)")
    return f"{RUNS}/{run_id}/manifest.json"


def ref_key(name: str) -> str:
    """``refs/<name>.json``; names may have '/'-separated parts, e.g. ``prod/market``."""
    if not isinstance(name, str) or not _REF.match(name) or ".." in name:
        raise StoreError(f"ref name {name!r}: use letters, digits, '.', '_', '-' and '/' "
                         f"between parts, e.g. 'latest/tournament'")
    return f"{REFS}/{name}.json"


def checkpoint_key(path: str) -> str:
    """``checkpoints/<path>``, e.g. ``checkpoints/evolution/3fa9c1d2e4b5a6f7/evolve.json``:
    '/'-separated parts of letters, digits, '.', '_' and '-'."""
    if not isinstance(path, str) or not _REF.match(path) or ".." in path:
        raise StoreError(f"checkpoint path {path!r}: use letters, digits, '.', '_', '-' and '/' "
                         f"between parts, e.g. 'evolution/3fa9c1d2/evolve.json'")
    return f"{CHECKPOINTS}/{path}"
