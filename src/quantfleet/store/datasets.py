"""Shard datasets: a market written once to the store as one Parquet artifact per asset plus a
manifest, read back asset by asset where the work runs.

``put_dataset`` writes the shards (content-addressed artifacts of kind ``market_shard``) and
a manifest (kind ``dataset_manifest``: assets, columns, bars, each shard's sha256 and size,
each asset's first priced bar, the source's fingerprint) and points the ref
``datasets/<name>`` at it. :class:`ShardDataset` is what a run holds instead of the market: a
:class:`~quantfleet.data.shards.MarketView` for the driver and ``load(assets)`` for a worker,
which reads each shard from the store once per process (an LRU cache; optionally a
node-local directory of verified shard files). docs/data.md, "Shard datasets in the store".
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from quantfleet.errors import DataError, StoreError
from quantfleet.store.artifacts import ArtifactStore

__all__ = [
    "CACHE_DIR_ENV",
    "CACHE_MB_ENV",
    "DATASET_FORMAT",
    "SHARDS_PREFIX",
    "ShardDataset",
    "clear_process_cache",
    "dataset_name",
    "open_dataset",
    "parse_shards",
    "process_loads",
    "put_dataset",
]

SHARDS_PREFIX = "shards:"
"""A data source ``shards:NAME`` or ``shards:NAME@HASH`` names a dataset in the run's store."""

DATASET_FORMAT = "quantfleet.dataset/1"
CACHE_MB_ENV = "QUANTFLEET_SHARD_CACHE_MB"
"""Megabytes of loaded shards a worker process keeps (least recently used dropped first)."""
CACHE_DIR_ENV = "QUANTFLEET_SHARD_DIR"
"""A node-local directory of shard files: processes of one node read a shard from the store
once, the others read the verified local copy."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REF = "datasets/{}"


def dataset_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise DataError(f"dataset name {name!r}: use letters, digits, '.', '_' and '-' (at most "
                        f"64, starting with a letter or digit), e.g. --name crypto-1m")
    return name


def parse_shards(source: object) -> tuple[str, str | None] | None:
    """``"shards:NAME[@HASH]"`` -> (NAME, HASH prefix or None); None for any other source."""
    if not isinstance(source, str) or not source.startswith(SHARDS_PREFIX):
        return None
    spec = source[len(SHARDS_PREFIX):]
    name, _, version = spec.partition("@")
    dataset_name(name)
    if version and not re.fullmatch(r"[0-9a-f]{6,64}", version):
        raise DataError(f"{source}: the version after '@' is a manifest hash (6 to 64 hex "
                        f"digits, as `quantfleet data put` prints it)")
    return name, version or None


def _default_name(source: str) -> str:
    base = os.path.basename(str(source).rstrip("/")) or "data"
    if str(source).startswith("synthetic:"):
        import hashlib

        return "synthetic-" + hashlib.sha256(str(source).encode()).hexdigest()[:8]
    for ext in (".csv.gz", ".csv.bz2", ".csv.zst", ".parquet", ".csv", ".pq"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
            break
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._") or "data"
    return base[:64]


def _shard_table(market: Any, a: int) -> Any:
    import pyarrow as pa

    cols: dict[str, Any] = {"timestamp": pa.array(market.timestamps)}
    for f in market.columns():
        cols[f] = pa.array(np.ascontiguousarray(market.field(f)[a]))
    return pa.table(cols)


def put_dataset(store: ArtifactStore, market: Any, *, name: str | None = None,
                fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``market`` (MarketData) to ``store`` as one Parquet shard per asset and a manifest.

    Returns ``{"name", "reference" ("shards:NAME@HASH12"), "manifest" (its hash), "created"
    (False: the latest version already held the same shards: nothing new was written),
    "previous" (the version it replaced, or None), "assets", "bars", "bytes"}``. A different
    market under an existing name becomes a new version; the old manifest and its shards stay
    (``shards:NAME@OLDHASH`` still reads them).
    """
    import pandas as pd

    name = dataset_name(name or _default_name(market.source))
    ts = market.timestamps
    first = market.first_valid()
    shards = []
    total = 0
    for a, asset in enumerate(market.assets):
        ref = store.put_table(_shard_table(market, a), kind="market_shard")
        total += ref.bytes
        shards.append({"asset": asset, "sha256": ref.hash, "bytes": ref.bytes,
                       "first_valid": int(first[a])})
    times = store.put_table(pd.DataFrame({"timestamp": ts}), kind="market_shard")
    body = {"format": DATASET_FORMAT, "name": name, "source": str(market.source),
            "fingerprint": fingerprint or {}, "n_bars": int(market.n_bars),
            "n_assets": int(market.n_assets), "columns": market.columns(),
            "periods_per_year": float(market.periods_per_year),
            "start": str(ts[0]) if len(ts) else None, "end": str(ts[-1]) if len(ts) else None,
            "timestamps": times.hash, "shards": shards}
    previous = None
    try:
        previous = store.get_ref(_REF.format(name)).hash
    except StoreError:
        pass
    if previous is not None:
        old = store.get_json(previous)
        if {k: v for k, v in old.items() if k != "previous"} == body:
            return {"name": name, "reference": f"{SHARDS_PREFIX}{name}@{previous[:12]}",
                    "manifest": previous, "created": False, "previous": old.get("previous"),
                    "assets": market.n_assets, "bars": market.n_bars, "bytes": total}
    ref = store.put_json({**body, "previous": previous}, kind="dataset_manifest")
    store.set_ref(_REF.format(name), ref)
    return {"name": name, "reference": f"{SHARDS_PREFIX}{name}@{ref.hash[:12]}",
            "manifest": ref.hash, "created": True, "previous": previous,
            "assets": market.n_assets, "bars": market.n_bars, "bytes": total}


def open_dataset(store: ArtifactStore, source: str, *, assets: Sequence[str] | None = None,
                 cache_dir: str | None = None) -> ShardDataset:
    """The dataset ``shards:NAME`` (latest version) or ``shards:NAME@HASH`` names in
    ``store``; ``assets`` keeps only those (the run's ``data.assets``)."""
    parsed = parse_shards(source)
    if parsed is None:
        raise DataError(f"{source!r} is not a shard dataset; expected shards:NAME or "
                        f"shards:NAME@HASH (see `quantfleet data put`)")
    name, version = parsed
    try:
        h = store.get_ref(_REF.format(name)).hash
    except StoreError:
        raise DataError(f"{source}: no dataset {name!r} in store {store.url}; write it with "
                        f"`quantfleet data put SOURCE --store {store.url} --name {name}`, or "
                        f"pass the store it was put in (--store)") from None
    doc = store.get_json(h)
    seen = []
    while version is not None and not h.startswith(version):
        seen.append(h[:12])
        h = doc.get("previous")
        if h is None:
            raise DataError(f"{source}: dataset {name!r} has no version {version} in store "
                            f"{store.url} (versions: {', '.join(seen)}); use one of those")
        doc = store.get_json(h)
    if doc.get("format") != DATASET_FORMAT:
        raise DataError(f"{source}: manifest {h[:12]} is not a {DATASET_FORMAT} document; "
                        f"write the dataset again with `quantfleet data put`")
    ds = ShardDataset(store, h, doc, cache_dir=cache_dir)
    return ds.select(assets) if assets else ds


# ---------------------------------------------------------------- the worker's cache

_LOCK = threading.Lock()
_CACHE: OrderedDict[str, Any] = OrderedDict()  # shard sha256 -> one-asset MarketData
_CACHE_BYTES = [0]
_LOADS: list[str] = []  # shard hashes this process read (from the store or the node's dir)
_TIMES: dict[str, np.ndarray] = {}  # one timestamps array shared by the shards that have it


def process_loads() -> tuple[int, tuple[str, ...]]:
    """This process's id and the shards it has read so far, in order (a shard read twice
    appears twice: evicted from the cache in between)."""
    return os.getpid(), tuple(_LOADS)


def clear_process_cache() -> None:
    """Drop this process's loaded shards and its record of reads."""
    with _LOCK:
        _CACHE.clear()
        _CACHE_BYTES[0] = 0
        _LOADS.clear()
        _TIMES.clear()


def _budget() -> int:
    try:
        return int(float(os.environ.get(CACHE_MB_ENV, "256")) * 2**20)
    except ValueError:
        raise DataError(f"{CACHE_MB_ENV}={os.environ[CACHE_MB_ENV]!r}: give megabytes as a "
                        f"number, e.g. 2048") from None


class ShardDataset:
    """A shard dataset in a store: the driver's :attr:`view`, a worker's :meth:`load`.

    Picklable and small (the store URL and the manifest): it is the ``shared`` value a
    tournament's tasks receive instead of the market.
    """

    def __init__(self, store: ArtifactStore, manifest_hash: str, manifest: dict[str, Any],
                 cache_dir: str | None = None) -> None:
        self.store = store
        self.manifest_hash = manifest_hash
        self.manifest = manifest
        self.cache_dir = cache_dir if cache_dir is not None else os.environ.get(CACHE_DIR_ENV)
        self._by_asset = {s["asset"]: s for s in manifest["shards"]}
        self._view: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "manifest_hash": self.manifest_hash,
                "manifest": self.manifest, "cache_dir": self.cache_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["store"], state["manifest_hash"], state["manifest"],
                      state["cache_dir"])

    @property
    def reference(self) -> str:
        return f"{SHARDS_PREFIX}{self.manifest['name']}@{self.manifest_hash[:12]}"

    @property
    def source(self) -> str:
        return self.reference

    @property
    def view(self) -> Any:
        """The :class:`~quantfleet.data.shards.MarketView` (timestamps read once)."""
        if self._view is None:
            from quantfleet.data.shards import MarketView

            m = self.manifest
            ts = self.store.get_table(m["timestamps"]).column("timestamp").to_numpy()
            self._view = MarketView(
                timestamps=np.asarray(ts, dtype="datetime64[ns]"),
                assets=tuple(s["asset"] for s in m["shards"]), fields=tuple(m["columns"]),
                first_valid_bars=np.array([s["first_valid"] for s in m["shards"]],
                                          dtype=np.int64),
                periods_per_year=float(m["periods_per_year"]), source=self.reference)
        return self._view

    def select(self, assets: Sequence[str]) -> ShardDataset:
        """The same dataset restricted to ``assets`` (in that order)."""
        for a in assets:
            self.view.asset_index(a)
        doc = {**self.manifest, "shards": [self._by_asset[a] for a in assets],
               "n_assets": len(assets)}
        out = ShardDataset(self.store, self.manifest_hash, doc, self.cache_dir)
        out._view = self.view.select(assets)
        return out

    # -- worker side

    def _shard_bytes(self, h: str) -> bytes:
        d = self.cache_dir
        if d:
            import hashlib

            path = os.path.join(d, f"{h}.parquet")
            try:
                with open(path, "rb") as f:
                    data = f.read()
                if hashlib.sha256(data).hexdigest() == h:
                    return data
            except FileNotFoundError:
                pass
            data = self.store.get_bytes(h)
            os.makedirs(d, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            return data
        return self.store.get_bytes(h)

    def _one(self, asset: str) -> Any:
        shard = self._by_asset.get(asset)
        if shard is None:
            self.view.asset_index(asset)  # raises with hints
        h = shard["sha256"]
        with _LOCK:
            if h in _CACHE:
                _CACHE.move_to_end(h)
                return _CACHE[h]
        import pyarrow as pa
        import pyarrow.parquet as pq

        from quantfleet.data.market import FIELDS, MarketData

        table = pq.read_table(pa.BufferReader(self._shard_bytes(h)))
        ts = np.asarray(table.column("timestamp").to_numpy(), dtype="datetime64[ns]")
        key = f"{len(ts)}:{ts[0] if len(ts) else ''}:{ts[-1] if len(ts) else ''}"
        shared = _TIMES.get(key)
        if shared is not None and np.array_equal(shared, ts):
            ts = shared
        else:
            _TIMES[key] = ts
        arrays = {c: np.ascontiguousarray(table.column(c).to_numpy(), dtype=np.float64)[None, :]
                  for c in table.column_names if c != "timestamp"}
        del table
        m = MarketData(timestamps=ts, assets=(asset,),
                       extra={k: v for k, v in arrays.items() if k not in FIELDS},
                       source=self.reference, **{k: v for k, v in arrays.items() if k in FIELDS})
        size = sum(v.nbytes for v in arrays.values())
        with _LOCK:
            _LOADS.append(h)
            _CACHE[h] = m
            _CACHE_BYTES[0] += size
            budget = _budget()
            while _CACHE_BYTES[0] > budget and len(_CACHE) > 1:
                _, old = _CACHE.popitem(last=False)
                _CACHE_BYTES[0] -= sum(old.field(c).nbytes for c in old.columns())
        return m

    def load(self, assets: Sequence[str]) -> Any:
        """MarketData of ``assets`` over every bar, each shard read once per process."""
        from quantfleet.data.market import MarketData

        parts = [self._one(a) for a in assets]
        if len(parts) == 1:
            return parts[0]
        first = parts[0]

        def stack(f: str) -> Any:
            v = [p.field(f) for p in parts]
            return None if v[0] is None else np.concatenate(v, axis=0)

        return MarketData(timestamps=first.timestamps, assets=tuple(assets), close=stack("close"),
                          open=stack("open"), high=stack("high"), low=stack("low"),
                          volume=stack("volume"),
                          extra={k: stack(k) for k in first.extra}, source=self.reference)

    def load_all(self) -> Any:
        """Every asset of the dataset as one MarketData (what stages other than the
        tournament work on)."""
        return self.load(list(self.view.assets))

    def loads(self) -> tuple[int, tuple[str, ...]]:
        """:func:`process_loads`: this process's id and the shards it has read."""
        return process_loads()

    def put_part(self, table: Any, kind: str) -> dict[str, Any]:
        """Store a result part (a worker's rows or returns); its hash, rows and bytes."""
        ref = self.store.put_table(table, kind=kind)
        return {"hash": ref.hash, "rows": ref.rows, "bytes": ref.bytes}

    def __repr__(self) -> str:
        return f"ShardDataset({self.reference!r}, assets={len(self.manifest['shards'])})"
