"""The artifact store, the run record and the SQL catalog (layer 4).

``Store.open(url)`` gives one API over ``file://``, ``s3://`` and ``memory://``: content-addressed
tables, JSON and bytes, named refs and runs (``store/runs.py``: one manifest per run, every
artifact recorded with its kind); ``record_run`` stores a command's outputs and manifest in one
call; ``Catalog`` queries runs and artifacts with DuckDB. See docs/store.md.
"""

from __future__ import annotations

from quantfleet.store.artifacts import ArtifactRef, canonical_json, table_bytes
from quantfleet.store.checkpoints import StoreCheckpoint
from quantfleet.store.runs import RunManifest, Store, code_version, new_run_id, record_run

__all__ = [
    "ArtifactRef",
    "Catalog",
    "RunManifest",
    "Store",
    "StoreCheckpoint",
    "canonical_json",
    "code_version",
    "new_run_id",
    "record_run",
    "table_bytes",
]


def __getattr__(name: str):
    if name == "Catalog":  # duckdb is imported only by who queries
        from quantfleet.store.catalog import Catalog

        return Catalog
    raise AttributeError(f"module 'quantfleet.store' has no attribute {name!r}")
