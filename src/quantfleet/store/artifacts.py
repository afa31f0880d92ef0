"""The artifact store: content-addressed tables, JSON documents and bytes over one fsspec URL.

``file://`` (or a plain path; default ``./lakehouse``), ``s3://bucket/prefix`` through s3fs
(AWS, MinIO, any S3 endpoint) and ``memory://`` (tests) behave the same. Artifacts are named by
the sha256 of their canonical bytes, written once and atomically, and verified on every read.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from quantfleet.errors import CorruptArtifactError, StoreError, did_you_mean
from quantfleet.store.keys import (
    FORMATS,
    REFS,
    artifact_key,
    check_hash,
    check_kind,
    ref_key,
)
from quantfleet.store.redact import is_secret_option, redact, redact_options

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = [
    "DEFAULT_URL",
    "PARQUET_OPTIONS",
    "PARTS_FORMAT",
    "ArtifactRef",
    "ArtifactStore",
    "canonical_json",
    "table_bytes",
]

DEFAULT_URL = "./lakehouse"

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 1 << 20,
    "version": "2.6",
    "data_page_version": "1.0",
    "use_dictionary": True,
    "write_statistics": True,
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": False,
}
"""Fixed writer options: the same table gives the same bytes (for one pyarrow version)."""

PARTS_FORMAT = "quantfleet.parts/1"
"""A JSON artifact ``{"format": PARTS_FORMAT, "axis": "rows"|"columns", "parts": [hash, ...]}``
is a table kept as Parquet parts (written by the workers that computed them): ``get_table``
joins them (rows: one after another; columns: side by side)."""


# ---------------------------------------------------------------- canonical bytes

def _as_table(table: Any) -> pa.Table:
    """A ``pyarrow.Table`` / ``RecordBatch`` / ``pandas.DataFrame`` as one Arrow table with its
    chunks combined (what :data:`PARQUET_OPTIONS` writes to the same bytes every time)."""
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    elif not isinstance(table, pa.Table):
        if type(table).__name__ == "DataFrame" and hasattr(table, "columns"):
            table = pa.Table.from_pandas(table)
        else:
            raise TypeError(f"put_table expects a pyarrow.Table, RecordBatch or pandas.DataFrame "
                            f"(got {type(table).__name__}); use put_json for dicts and lists")
    return table.combine_chunks()


def _write_parquet(table: pa.Table, sink: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(table, sink, **PARQUET_OPTIONS)
    # Arrow's allocator keeps the writer's freed buffers for reuse: hand them back, or a
    # large table's encoding buffers stay in the process for the rest of the run
    pa.default_memory_pool().release_unused()


def table_bytes(table: Any) -> tuple[bytes, int]:
    """Deterministic Parquet bytes and row count of a ``pyarrow.Table`` / ``RecordBatch`` /
    ``pandas.DataFrame``.

    Parquet itself records no timestamps; the writer's options are fixed
    (:data:`PARQUET_OPTIONS`) and chunks are combined first, so equal tables give equal bytes.
    A DataFrame keeps its index the way ``DataFrame.to_parquet`` does (a RangeIndex as
    metadata, any other index as columns).
    """
    import tempfile

    table = _as_table(table)
    # through a temporary file, not a growing in-memory buffer: the writer's output would be
    # reallocated (and held twice) as it grows, then copied once more into bytes
    with tempfile.TemporaryFile() as f:
        _write_parquet(table, f)
        f.seek(0)
        return f.read(), table.num_rows


class _HashSink(io.RawIOBase):
    """A write-only file that keeps only the sha256 and the size of what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        self.sha.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size


def _clean(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, str, int)):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return 0.0 if v == 0 else v  # -0.0 and 0.0 are one value
    if isinstance(v, Mapping):
        out = {}
        for k, x in v.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"put_json: key {k!r} at {where} is a {type(k).__name__}; "
                                f"JSON object keys must be str (or int)")
            out[str(k)] = _clean(x, f"{where}.{k}")
        return out
    if isinstance(v, (list, tuple)):
        return [_clean(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, (set, frozenset)):
        return sorted((_clean(x, f"{where}[]") for x in v), key=repr)
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    if isinstance(v, PurePath):
        return str(v)
    if hasattr(v, "tolist") and callable(v.tolist):  # numpy scalars and arrays
        return _clean(v.tolist(), where)
    raise TypeError(f"put_json: value at {where} is a {type(v).__name__}, which JSON cannot hold; "
                    f"convert it to str, a number, a list or a dict first")


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8; NaN -> null, ±inf -> "inf"/"-inf",
    numpy values -> Python values, tuples -> lists. One document has one byte string."""
    return json.dumps(_clean(obj, "$"), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- references

@dataclass(frozen=True)
class ArtifactRef:
    """What a put returns: enough to read the artifact back and to describe it in a manifest.

    Attributes
    ----------
    hash : sha256 hex digest of the stored bytes (the artifact's address)
    key : object key under the store root, ``artifacts/sha256/<hh>/<hash>.<ext>``
    kind : the family the artifact belongs to (``"tournament_results"``); a catalog view name
    format : ``"parquet"``, ``"json"`` or ``"bytes"``
    bytes : size of the stored object
    rows : rows of a table, ``None`` otherwise
    """

    hash: str
    key: str
    kind: str
    format: str
    bytes: int
    rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArtifactRef:
        return cls(hash=d["hash"], key=d["key"], kind=d.get("kind", ""),
                   format=d.get("format", "bytes"), bytes=int(d.get("bytes", 0)),
                   rows=d.get("rows"))


def _hash_of(ref: Any) -> str:
    return ref.hash if isinstance(ref, ArtifactRef) else check_hash(ref)


# ---------------------------------------------------------------- the store

def _parse(url: str) -> tuple[str, str, str]:
    """``url`` -> (protocol, canonical url, root path for the filesystem)."""
    if "://" in url:
        protocol, rest = url.split("://", 1)
        protocol = protocol.lower()
    else:
        protocol, rest = "file", url
    if "@" in rest.split("/", 1)[0]:
        raise StoreError(f"store URL {redact(url)}: credentials in the URL are not accepted; set "
                         f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment (or pass "
                         f"key=/secret= to Store.open) instead")
    if protocol == "file":
        root = os.path.abspath(os.path.expanduser(rest or "."))
        return "file", "file://" + root, root
    if protocol in ("s3", "s3a"):
        rest = rest.strip("/")
        if not rest:
            raise StoreError(f"store URL {url!r} names no bucket; expected s3://bucket/prefix, "
                             f"e.g. s3://research/quantfleet")
        return "s3", "s3://" + rest, rest
    rest = rest.strip("/")
    if protocol == "memory":
        return "memory", "memory://" + rest, "/" + (rest or "quantfleet")
    return protocol, f"{protocol}://{rest}", rest


def _make_fs(protocol: str, options: Mapping[str, Any]):
    import fsspec

    opts = dict(options)
    if protocol == "file":
        return fsspec.filesystem("file")
    if protocol == "s3":
        try:
            import s3fs
        except ImportError as e:  # pragma: no cover - s3fs ships with quantfleet[state]
            raise StoreError("an s3:// store needs s3fs: pip install 'quantfleet[state]'") from e
        region = opts.pop("region", None) or opts.pop("region_name", None)
        if region:
            opts["client_kwargs"] = {**opts.get("client_kwargs", {}), "region_name": region}
        endpoint = (opts.pop("endpoint", None) or opts.get("endpoint_url")
                    or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
        if endpoint:
            opts["endpoint_url"] = endpoint
        # other writers add objects at any time: never answer exists() from a stale listing
        opts.setdefault("use_listings_cache", False)
        return s3fs.S3FileSystem(**opts)
    try:
        return fsspec.filesystem(protocol, **opts)
    except (ImportError, ValueError) as e:
        raise StoreError(f"store protocol {protocol!r} is not available: {redact(e)}; "
                         f"use file://, s3:// or memory://") from e


class ArtifactStore:
    """One artifact store at one URL: artifacts and named refs. Open with ``Store.open``
    (:class:`quantfleet.store.runs.Store` adds the run records on top of this class).

    Picklable: a copy sent to a Ray worker carries the URL and the non-secret storage options
    and re-opens its filesystem there; credentials come from the worker's environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ...).

    ``on_io``: optional callable ``(direction, n_bytes)`` told of every object this store
    reads (``"read"``) or writes (``"written"``; an artifact already present is not written
    again); e.g. ``observe.metrics.RunMetrics.store_io``. Not pickled.
    """

    on_io: Callable[[str, int], Any] | None

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self._protocol, self._url, self._root = _parse(url)
        self._options = dict(storage_options or {})
        self._fs: Any = None
        self._lock = threading.Lock()
        self._located: dict[str, tuple[str, str]] = {}  # hash -> (key, format)
        self.on_io = None

    @classmethod
    def open(cls, url: str | os.PathLike | ArtifactStore | None = None,
             **storage_options: Any) -> Any:
        """Open the store at ``url``.

        Parameters
        ----------
        url : ``./lakehouse`` by default; a path, ``file:///abs/dir``, ``s3://bucket/prefix``
            or ``memory://name``. An open store of this class is returned as is.
        **storage_options : passed to the fsspec filesystem. For S3: ``endpoint_url``
            (default ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``), ``region``, ``key``,
            ``secret``, ``token``, ``profile``, ``anon``, ``client_kwargs``. Credentials
            default to the standard AWS chain (environment, ``~/.aws``, instance role).
        """
        if isinstance(url, cls):
            return url
        if isinstance(url, ArtifactStore):
            return cls(url._url, url._options)
        if url is None:
            url = DEFAULT_URL
        if isinstance(url, os.PathLike):
            url = os.fspath(url)
        if not isinstance(url, str):
            raise TypeError(f"store URL must be a str or a path (got {type(url).__name__})")
        return cls(url, storage_options)

    # -- identity

    @property
    def url(self) -> str:
        """The store's URL, credentials redacted."""
        return redact(self._url)

    @property
    def protocol(self) -> str:
        return self._protocol

    @property
    def fs(self):
        """The fsspec filesystem (opened on first use, also after unpickling)."""
        if self._fs is None:
            with self._lock:
                if self._fs is None:
                    try:
                        self._fs = _make_fs(self._protocol, self._options)
                    except StoreError:
                        raise
                    except Exception as e:
                        raise StoreError(f"cannot open store {self.url}: {type(e).__name__}: "
                                         f"{redact(e)}") from None
        return self._fs

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArtifactStore) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    def __getstate__(self) -> dict[str, Any]:
        # secrets never travel: the receiving process takes credentials from its environment
        return {"url": self._url,
                "options": {k: v for k, v in self._options.items() if not is_secret_option(k)}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["options"])

    def describe(self) -> dict[str, Any]:
        """URL and non-secret options, for manifests and logs."""
        return {"url": self.url, "protocol": self._protocol,
                "options": redact_options(self._options)}

    # -- paths and raw I/O

    def _path(self, key: str) -> str:
        return f"{self._root.rstrip('/')}/{key}"

    def uri(self, ref: Any) -> str:
        """A URL of the artifact's object that DuckDB, pandas or pyarrow can read
        (a plain local path for a ``file://`` store)."""
        key = ref.key if isinstance(ref, ArtifactRef) else self._locate(_hash_of(ref))[0]
        return self._uri_of(key)

    def _uri_of(self, key: str) -> str:
        p = self._path(key)
        if self._protocol == "file":
            return p
        if self._protocol == "memory":
            return "memory://" + p
        return f"{self._protocol}://{p}"

    def _fail(self, action: str, key: str, e: BaseException) -> StoreError:
        return StoreError(redact(
            f"{action} {key} in store {self._url} failed: {type(e).__name__}: {e}; check the "
            f"store URL, the endpoint (AWS_ENDPOINT_URL) and the credentials "
            f"(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"))

    def _size(self, key: str) -> int | None:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        except Exception as e:
            raise self._fail("checking", key, e) from None
        if info.get("type") == "directory":
            return None
        return int(info.get("size") or 0)

    def _io(self, direction: str, n: int) -> None:
        if self.on_io is not None:
            self.on_io(direction, n)

    def _read(self, key: str) -> bytes:
        try:
            data = self.fs.cat_file(self._path(key))
            self._io("read", len(data))
            return data
        except FileNotFoundError:
            raise
        except IsADirectoryError:
            raise FileNotFoundError(key) from None
        except Exception as e:
            raise self._fail("reading", key, e) from None

    def _create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if absent, atomically. False if it already existed."""
        path = self._path(key)
        try:
            if self._protocol == "file":
                made = self._create_local(path, data)
                if made:
                    self._io("written", len(data))
                return made
            try:
                # S3: PutObject with IfNoneMatch="*" -> 412 PreconditionFailed if present
                self.fs.pipe_file(path, data, mode="create")
            except TypeError:  # a filesystem without exclusive create
                if self.fs.exists(path):
                    return False
                self.fs.pipe_file(path, data)
            self._io("written", len(data))
            return True
        except FileExistsError:
            return False
        except Exception as e:
            if self._size(key) is not None:  # e.g. 409 ConditionalRequestConflict: someone won
                return False
            raise self._fail("writing", key, e) from None

    @staticmethod
    def _create_local(path: str, data: bytes) -> bool:
        d = os.path.dirname(path)
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic create-if-absent: readers see all bytes or nothing
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here; equal bytes make a racing replace harmless
            os.replace(tmp, path)
            return True
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _overwrite(self, key: str, data: bytes) -> None:
        """Replace a mutable object (a manifest, a ref) atomically."""
        path = self._path(key)
        try:
            if self._protocol == "file":
                d = os.path.dirname(path)
                os.makedirs(d, exist_ok=True)
                tmp = os.path.join(d, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            else:
                self.fs.pipe_file(path, data)
        except Exception as e:
            raise self._fail("writing", key, e) from None
        self._io("written", len(data))

    def _list(self, prefix: str) -> list[str]:
        """Names (last path part) directly under ``prefix``; [] if it does not exist."""
        try:
            entries = self.fs.ls(self._path(prefix), detail=False)
        except FileNotFoundError:
            return []
        except Exception as e:
            raise self._fail("listing", prefix, e) from None
        return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in entries)

    # -- content-addressed artifacts

    def _corrupt(self, key: str, h: str, data: bytes) -> CorruptArtifactError:
        return CorruptArtifactError(redact(
            f"artifact {h} at {self._url}/{key} is corrupt: its {len(data)} bytes hash to "
            f"{_sha256(data)[:16]}..., not {h[:16]}...; it was changed or truncated after it was "
            f"written. Fix: delete it (store.delete('{h}')) and re-run the step that made it "
            f"(store.lineage('{h}') names it), or restore the previous object version"))

    def _put(self, data: bytes, fmt: str, kind: str, rows: int | None) -> ArtifactRef:
        kind = check_kind(kind)
        h = _sha256(data)
        key = artifact_key(h, fmt)
        ref = ArtifactRef(h, key, kind, fmt, len(data), rows)
        size = self._size(key)
        if size is None:
            if not self._create(key, data):
                # a concurrent writer of the same artifact won the race: check its bytes
                got = self._read(key)
                if _sha256(got) != h:
                    raise self._corrupt(key, h, got)
        elif size != len(data):
            raise CorruptArtifactError(redact(
                f"artifact {h} at {self._url}/{key} is corrupt: the stored object has {size} "
                f"bytes, the artifact {len(data)}. Fix: delete it (store.delete('{h}')) and put "
                f"it again"))
        self._located[h] = (key, fmt)
        return ref

    def _locate(self, h: str, fmt: str | None = None) -> tuple[str, str]:
        if h in self._located and (fmt is None or self._located[h][1] == fmt):
            return self._located[h]
        for f in ([fmt] if fmt else list(FORMATS)):
            key = artifact_key(h, f)
            if self._size(key) is not None:
                self._located[h] = (key, f)
                return key, f
        if fmt is not None:
            for f in FORMATS:
                if f != fmt and self._size(artifact_key(h, f)) is not None:
                    reader = {"parquet": "get_table", "json": "get_json", "bytes": "get_bytes"}[f]
                    raise StoreError(f"artifact {h} in {self.url} is {f}, not {fmt}; "
                                     f"read it with store.{reader}()")
        raise StoreError(f"no artifact {h} in store {self.url}; check the hash and the store URL "
                         f"(`quantfleet runs show RUN` lists a run's artifacts)")

    def _fetch(self, ref: Any, fmt: str | None) -> tuple[bytes, str]:
        if isinstance(ref, ArtifactRef):
            h, key = ref.hash, ref.key
            if fmt is not None and ref.format != fmt and fmt != "bytes":
                raise StoreError(f"artifact {h} ({ref.kind}) is {ref.format}, not {fmt}")
        else:
            h = check_hash(ref)
            key = self._locate(h, fmt if fmt != "bytes" else None)[0]
        try:
            data = self._read(key)
        except FileNotFoundError:
            self._located.pop(h, None)
            raise StoreError(f"no artifact {h} in store {self.url} (key {key}); it was deleted "
                             f"or the store URL is wrong") from None
        if _sha256(data) != h:
            raise self._corrupt(key, h, data)
        return data, h

    def put_table(self, table: Any, kind: str = "table") -> ArtifactRef:
        """Store a ``pyarrow.Table`` / ``DataFrame`` as deterministic Parquet; same table, same hash."""
        data, rows = table_bytes(table)
        return self._put(data, "parquet", kind, rows)

    def table_ref(self, table: Any, kind: str = "table") -> ArtifactRef:
        """The :class:`ArtifactRef` :meth:`put_table` would return, without storing anything:
        the Parquet bytes are hashed as the writer produces them, never held (an unrecorded
        run's market, whose bytes no one reads back). Nothing is added to the store."""
        kind = check_kind(kind)
        table = _as_table(table)
        sink = _HashSink()
        _write_parquet(table, sink)
        h = sink.sha.hexdigest()
        return ArtifactRef(h, artifact_key(h, "parquet"), kind, "parquet", sink.size,
                           table.num_rows)

    def put_parquet_file(self, path: str | os.PathLike, kind: str = "table") -> ArtifactRef:
        """Store a Parquet file's bytes as they are (no table in memory: a result a driver
        streamed to disk stays streamed); its hash is that of the file."""
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(path).metadata.num_rows
        with open(path, "rb") as f:
            data = f.read()
        return self._put(data, "parquet", kind, rows)

    def get_table(self, ref: ArtifactRef | str) -> pa.Table:
        """Read a table by :class:`ArtifactRef` or hash; raises ``CorruptArtifactError`` if the
        bytes no longer match the hash. A parts table (:meth:`put_parts`) is joined."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        fmt = ref.format if isinstance(ref, ArtifactRef) else self._locate(_hash_of(ref))[1]
        if fmt == "json":
            doc = self.get_json(ref)
            if isinstance(doc, dict) and doc.get("format") == PARTS_FORMAT:
                return self._join_parts(doc)
        data, _ = self._fetch(ref, "parquet")
        return pq.read_table(pa.BufferReader(data))

    def put_parts(self, parts: list[str], kind: str, axis: str = "rows",
                  rows: int | None = None) -> ArtifactRef:
        """Record the Parquet artifacts ``parts`` (hashes, in order) as one table of ``kind``
        (:data:`PARTS_FORMAT`): ``axis="rows"`` stacks them (same columns), ``"columns"``
        puts them side by side (same rows). Nothing is read or copied here."""
        if axis not in ("rows", "columns"):
            raise StoreError(f"put_parts: axis must be 'rows' or 'columns' (got {axis!r})")
        doc = {"format": PARTS_FORMAT, "axis": axis, "parts": [check_hash(h) for h in parts]}
        return self._put(canonical_json(doc), "json", kind, rows)

    def parts_of(self, ref: ArtifactRef | str) -> list[str] | None:
        """The part hashes of a parts table, or None for any other artifact."""
        fmt = ref.format if isinstance(ref, ArtifactRef) else self._locate(_hash_of(ref))[1]
        if fmt != "json":
            return None
        doc = self.get_json(ref)
        if isinstance(doc, dict) and doc.get("format") == PARTS_FORMAT:
            return list(doc["parts"])
        return None

    def _join_parts(self, doc: Mapping[str, Any]) -> pa.Table:
        import pyarrow as pa

        tables = [self.get_table(h) for h in doc["parts"]]
        if not tables:
            return pa.table({})
        if doc["axis"] == "rows":
            return pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
        names, cols = [], []
        for t in tables:
            names.extend(t.column_names)
            cols.extend(t.columns)
        return pa.Table.from_arrays(cols, names=names)

    def put_json(self, obj: Any, kind: str = "document") -> ArtifactRef:
        """Store a JSON-able value as canonical JSON (see :func:`canonical_json`)."""
        return self._put(canonical_json(obj), "json", kind, None)

    def get_json(self, ref: ArtifactRef | str) -> Any:
        data, _ = self._fetch(ref, "json")
        return json.loads(data)

    def put_bytes(self, data: bytes | bytearray | memoryview, kind: str = "blob") -> ArtifactRef:
        """Store raw bytes as they are."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"put_bytes expects bytes (got {type(data).__name__}); "
                            f"use put_table for tables and put_json for dicts")
        return self._put(bytes(data), "bytes", kind, None)

    def get_bytes(self, ref: ArtifactRef | str) -> bytes:
        """The stored bytes of any artifact (verified)."""
        return self._fetch(ref, "bytes")[0]

    def exists(self, ref: ArtifactRef | str) -> bool:
        """True if the artifact's object is in the store (not verified; reads verify)."""
        h = _hash_of(ref)
        if isinstance(ref, ArtifactRef):
            return self._size(ref.key) is not None
        try:
            self._locate(h)
            return True
        except StoreError:
            return False

    def verify(self, ref: ArtifactRef | str) -> bool:
        """True if the artifact is in the store and its bytes hash to its name (a cache hit
        may only be served when every output verifies)."""
        try:
            self._fetch(ref, None)
        except StoreError:
            return False
        return True

    def stat(self, ref: ArtifactRef | str) -> ArtifactRef:
        """Key, format and size of a stored artifact (kind unknown: ``""``)."""
        h = _hash_of(ref)
        key, fmt = self._locate(h)
        return ArtifactRef(h, key, ref.kind if isinstance(ref, ArtifactRef) else "", fmt,
                           self._size(key) or 0, ref.rows if isinstance(ref, ArtifactRef) else None)

    def discard(self) -> None:
        """Remove everything a throwaway ``memory://`` store holds (an unrecorded run's, at
        its end). In a process that never imported fsspec, whose memory filesystem keeps the
        bytes, it holds nothing: nothing to remove, and fsspec is not imported for it."""
        if self._protocol != "memory":
            raise StoreError(f"discard() empties a throwaway memory:// store, not {self.url}")
        if "fsspec" not in sys.modules:
            return
        try:
            self.fs.rm(self._root, recursive=True)
        except FileNotFoundError:
            pass

    def delete(self, ref: ArtifactRef | str) -> None:
        """Remove an artifact's object, e.g. a corrupt one before putting it again."""
        h = _hash_of(ref)
        key, _ = self._locate(h)
        try:
            self.fs.rm_file(self._path(key))
        except Exception as e:
            raise self._fail("deleting", key, e) from None
        self._located.pop(h, None)

    # -- named refs (mutable pointers)

    def set_ref(self, name: str, ref: ArtifactRef | str) -> None:
        """Point ``name`` (e.g. ``"latest/tournament"``) at an artifact; overwrites."""
        h = _hash_of(ref)
        doc: dict[str, Any] = {"hash": h, "updated": _now()}
        if isinstance(ref, ArtifactRef):
            doc.update(ref.to_dict())
        self._overwrite(ref_key(name), canonical_json(doc))

    def get_ref(self, name: str) -> ArtifactRef:
        """The artifact ``name`` points at."""
        key = ref_key(name)
        try:
            doc = json.loads(self._read(key))
        except FileNotFoundError:
            raise StoreError(f"no ref {name!r} in store {self.url}"
                             + did_you_mean(name, self.refs())) from None
        if "key" in doc:
            return ArtifactRef.from_dict(doc)
        return self.stat(doc["hash"])

    def refs(self) -> list[str]:
        """Names of all refs."""
        out: list[str] = []
        try:
            for p in self.fs.find(self._path(REFS)):
                rel = str(p)[len(self._path(REFS)) + 1:]
                if rel.endswith(".json") and not rel.rsplit("/", 1)[-1].startswith("."):
                    out.append(rel[: -len(".json")])
        except FileNotFoundError:
            return []
        except Exception as e:
            raise self._fail("listing", REFS, e) from None
        return sorted(out)
