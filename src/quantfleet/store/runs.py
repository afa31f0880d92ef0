"""The one run record: a run is one manifest in the store, and everything it read or made
(config, inputs, outputs, spans, summary, report view) is an artifact of it, with a kind.

A manifest lives at ``runs/<run_id>/manifest.json`` (rewritten while the run goes on) and,
when the run finishes, also as a content-addressed ``run_manifest`` artifact whose hash is
kept in the saved manifest's ``archived`` field. :class:`Store` is the artifact store plus its
runs: start, record, finish, find by id / unique prefix / ``latest``, list, trace lineage.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantfleet.errors import StoreError, did_you_mean
from quantfleet.store.artifacts import ArtifactRef, ArtifactStore, _hash_of, canonical_json
from quantfleet.store.keys import check_hash, check_kind, manifest_key
from quantfleet.store.redact import is_secret_option, redact

__all__ = [
    "PACKAGES",
    "SCHEMA",
    "STATUSES",
    "RunManifest",
    "Store",
    "code_version",
    "lineage",
    "new_run_id",
    "package_versions",
    "record_run",
    "scrub",
    "source_fingerprint",
]

SCHEMA = "quantfleet.run/1"
STATUSES = ("running", "succeeded", "failed")
PACKAGES = ("quantfleet", "numpy", "numba", "pandas", "pyarrow", "ray", "prefect", "skfolio",
            "duckdb", "fsspec", "s3fs")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_LAST_ID_US = 0


def new_run_id() -> str:
    """``20261123T101530123456Z-3fa9c1d2``: UTC time to the microsecond, then 32 random bits.
    Ids sort by creation time (strictly, within one process)."""
    global _LAST_ID_US
    now = _dt.datetime.now(_dt.UTC)
    us = int(now.timestamp() * 1_000_000)
    us = max(us, _LAST_ID_US + 1)
    _LAST_ID_US = us
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=us)
    return t.strftime("%Y%m%dT%H%M%S%fZ-") + secrets.token_hex(4)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` from package metadata (nothing is imported)."""
    from importlib import metadata

    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return out


_CODE: dict[str, Any] | None = None


def source_fingerprint() -> str:
    """sha256 (first 12 hex digits) of the installed quantfleet sources: it changes with any
    edit, so a stage cache key that holds it never serves results of other code."""
    import quantfleet

    root = Path(quantfleet.__file__).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def code_version() -> dict[str, Any]:
    """``{"version", "source", "git_commit", "git_dirty"}`` of the quantfleet code that runs:
    ``source`` is :func:`source_fingerprint`; git facts only when it runs from a checkout
    (``QUANTFLEET_GIT_COMMIT`` overrides, e.g. in images)."""
    global _CODE
    if _CODE is None:
        import quantfleet

        info: dict[str, Any] = {"version": getattr(quantfleet, "__version__", None),
                                "source": source_fingerprint(),
                                "git_commit": os.environ.get("QUANTFLEET_GIT_COMMIT"),
                                "git_dirty": None}
        if info["git_commit"] is None:
            here = Path(quantfleet.__file__).resolve().parent
            try:
                head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"],
                                      capture_output=True, text=True, timeout=5)
                if head.returncode == 0:
                    info["git_commit"] = head.stdout.strip()
                    st = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                         "--untracked-files=no", "--", str(here)],
                                        capture_output=True, text=True, timeout=10)
                    if st.returncode == 0:
                        info["git_dirty"] = bool(st.stdout.strip())
            except (OSError, subprocess.SubprocessError):
                pass
        _CODE = info
    return dict(_CODE)


def scrub(value: Any) -> Any:
    """A copy of ``value`` with secret-named keys dropped and credentials in strings redacted."""
    if isinstance(value, Mapping):
        return {str(k): scrub(v) for k, v in value.items() if not is_secret_option(str(k))}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def _hash_and_meta(v: Any, where: str) -> tuple[str, dict[str, Any] | None]:
    if isinstance(v, ArtifactRef):
        d = v.to_dict()
        d.pop("hash")
        return v.hash, d
    if isinstance(v, str):
        return check_hash(v), None
    raise TypeError(f"record: {where} must be an ArtifactRef or a hash (got {type(v).__name__})")


@dataclass
class RunManifest:
    """The record of one run. Build with :meth:`new` (or ``store.start_run``), add steps with
    :meth:`record`, attach run-level artifacts (spans, summary, report view) with
    :meth:`attach`, close with ``store.finish_run``.

    Attributes
    ----------
    run_id, command, status ("running" | "succeeded" | "failed"), created, finished (ISO UTC)
    config : the run's settings (secrets dropped)
    code : ``{"version", "git_commit", "git_dirty"}``
    packages : versions of numpy, numba, pandas, pyarrow, ray, prefect, ... (those installed)
    executor : executor and cluster facts, as passed in (e.g. ``{"name": "ray", "workers": 8,
        "nodes": 2}``)
    steps : ``[{"step", "inputs": {name: hash}, "outputs": {name: hash}, "settings", "at"}]``
    artifacts : ``{hash: {"kind", "key", "format", "bytes", "rows"}}`` of every recorded artifact
    metrics : headline numbers (what ``runs diff`` compares), e.g. the winner's Sharpe
    timing : timing-span summary, as passed in (e.g. ``{"wall_s": 12.3, "by_stage": {...}}``)
    error : one line, redacted, for a failed run
    archived : hash of the ``run_manifest`` artifact (the manifest without this field)
    """

    run_id: str
    command: str
    status: str = "running"
    created: str = ""
    finished: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    store: str | None = None
    archived: str | None = None

    @classmethod
    def new(cls, command: str, *, config: Mapping[str, Any] | None = None,
            executor: Mapping[str, Any] | None = None, run_id: str | None = None) -> RunManifest:
        if not isinstance(command, str) or not command:
            raise StoreError(f"run command must be a non-empty name like 'tournament' "
                             f"(got {command!r})")
        return cls(run_id=run_id or new_run_id(), command=command, created=_now(),
                   config=scrub(dict(config or {})), code=code_version(),
                   packages=package_versions(), executor=scrub(dict(executor or {})))

    def record(self, step: str, *, inputs: Mapping[str, Any] | None = None,
               outputs: Mapping[str, Any] | None = None,
               settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Add a step: which artifacts (``ArtifactRef`` or hash) it read and wrote, and the
        settings that shaped it. Returns the step record."""
        if not isinstance(step, str) or not step:
            raise StoreError(f"record: step must be a non-empty name (got {step!r})")
        rec: dict[str, Any] = {"step": step, "inputs": {}, "outputs": {},
                               "settings": scrub(dict(settings or {})), "at": _now()}
        for side in ("inputs", "outputs"):
            for name, v in dict((inputs if side == "inputs" else outputs) or {}).items():
                h, meta = _hash_and_meta(v, f"{side}[{name!r}]")
                rec[side][str(name)] = h
                if meta is not None:
                    self.artifacts[h] = {**self.artifacts.get(h, {}), **meta}
                else:
                    self.artifacts.setdefault(h, {})
        self.steps.append(rec)
        return rec

    def attach(self, name: str, ref: ArtifactRef) -> None:
        """Record a run-level artifact (``spans``, ``summary``, ``report_view``, ``config``) as
        an output of the step ``run``, so the catalog and lineage see it like any other."""
        run_step = next((s for s in self.steps if s["step"] == "run"), None)
        if run_step is None:
            run_step = {"step": "run", "inputs": {}, "outputs": {}, "settings": {},
                        "at": _now()}
            self.steps.append(run_step)
        run_step["outputs"][name] = ref.hash
        meta = ref.to_dict()
        meta.pop("hash")
        self.artifacts[ref.hash] = {**self.artifacts.get(ref.hash, {}), **meta}

    def output(self, kind: str) -> str | None:
        """Hash of the last output of ``kind`` (e.g. ``"leaderboard"``), or None."""
        found = None
        for s in self.steps:
            for h in s["outputs"].values():
                if self.artifacts.get(h, {}).get("kind") == kind:
                    found = h
        return found

    def close(self, status: str, *, metrics: Mapping[str, Any] | None = None,
              timing: Mapping[str, Any] | None = None,
              error: BaseException | str | None = None) -> None:
        if status not in STATUSES or status == "running":
            raise StoreError(f"finish status must be 'succeeded' or 'failed' (got {status!r})")
        self.status = status
        self.finished = _now()
        if metrics is not None:
            self.metrics = dict(metrics)
        if timing is not None:
            self.timing = dict(timing)
        if error is not None:
            msg = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
            self.error = redact(msg.splitlines()[0] if msg else msg)[:2000]

    @property
    def outputs(self) -> dict[str, str]:
        """Every step's outputs, later steps winning on a name clash."""
        out: dict[str, str] = {}
        for s in self.steps:
            out.update(s["outputs"])
        return out

    @property
    def duration_s(self) -> float | None:
        if not self.finished or not self.created:
            return None
        f = "%Y-%m-%dT%H:%M:%S.%fZ"
        return (_dt.datetime.strptime(self.finished, f)
                - _dt.datetime.strptime(self.created, f)).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        d = {"schema": SCHEMA}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            if k == "archived" and v is None:
                continue
            d[k] = v
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunManifest:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# ---------------------------------------------------------------- lineage

def lineage(manifests: list[RunManifest], h: str, *, max_depth: int = 32) -> dict[str, Any]:
    """Trace artifact ``h`` through ``manifests``.

    Returns ``{"hash", "kind", "produced_by": [{"run_id", "command", "step", "settings",
    "config", "inputs": {name: <lineage of that input>}}]}``; an artifact no manifest lists as an
    output (a raw input) has ``produced_by == []``. Cycles and depth past ``max_depth`` stop
    with ``"truncated": True``.
    """
    h = check_hash(h)
    producers: dict[str, list[tuple[RunManifest, dict[str, Any]]]] = {}
    kinds: dict[str, str] = {}
    for m in manifests:
        for a, meta in m.artifacts.items():
            if meta.get("kind"):
                kinds.setdefault(a, meta["kind"])
        for s in m.steps:
            for out in s["outputs"].values():
                producers.setdefault(out, []).append((m, s))
    if h not in producers and h not in kinds and not any(
            h in s["inputs"].values() for m in manifests for s in m.steps):
        raise StoreError(f"artifact {h} appears in no run manifest; it was put outside a run "
                         f"(record it with RunManifest.record or record_run)")

    def walk(x: str, seen: frozenset[str], depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {"hash": x, "kind": kinds.get(x, ""), "produced_by": []}
        if x in seen or depth > max_depth:
            node["truncated"] = True
            return node
        for m, s in producers.get(x, []):
            node["produced_by"].append({
                "run_id": m.run_id, "command": m.command, "step": s["step"],
                "settings": s["settings"], "config": m.config,
                "inputs": {n: walk(i, seen | {x}, depth + 1) for n, i in s["inputs"].items()},
            })
        return node

    return walk(h, frozenset(), 0)


# ---------------------------------------------------------------- one call per command

def _put_value(store: ArtifactStore, v: Any, kind: str) -> ArtifactRef | str:
    if isinstance(v, ArtifactRef):
        return v
    if isinstance(v, str):
        return check_hash(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return store.put_bytes(v, kind=kind)
    if isinstance(v, os.PathLike):
        p = Path(v)
        if p.suffix == ".parquet":
            import pyarrow.parquet as pq

            return store.put_table(pq.read_table(p), kind=kind)
        if p.suffix == ".json":
            return store.put_json(json.loads(p.read_text()), kind=kind)
        return store.put_bytes(p.read_bytes(), kind=kind)
    if isinstance(v, (dict, list, tuple)):
        return store.put_json(v, kind=kind)
    return store.put_table(v, kind=kind)


def record_run(store: Store | str | os.PathLike | None, command: str, *,
               outputs: Mapping[str, Any],
               inputs: Mapping[str, Any] | None = None,
               config: Mapping[str, Any] | None = None,
               settings: Mapping[str, Any] | None = None,
               metrics: Mapping[str, Any] | None = None,
               timing: Mapping[str, Any] | None = None,
               executor: Mapping[str, Any] | None = None,
               kinds: Mapping[str, str] | None = None,
               step: str | None = None,
               status: str = "succeeded",
               error: BaseException | str | None = None) -> RunManifest:
    """Store a finished command's inputs, outputs and manifest in one call.

    Parameters
    ----------
    store : a :class:`Store` or a store URL (``None``: ``./lakehouse``)
    command : ``"sweep"``, ``"tournament"``, ``"evolve"``, ...
    outputs, inputs : ``{name: value}``; a value is an ``ArtifactRef`` or hash (recorded as is),
        a ``pyarrow.Table`` / ``DataFrame`` (put as Parquet), a dict or list (JSON), bytes, or a
        path to a ``.parquet`` / ``.json`` / other file (its content is put)
    config : the command's settings (flags, config file): what ``runs diff`` compares
    settings : the step's own settings (default: ``config``)
    metrics, timing, executor : headline numbers, timing-span summary, executor/cluster facts
    kinds : ``{name: kind}``; by default an artifact's kind is its name (name outputs for what
        they are: ``leaderboard``, ``tournament_results``, ...), whichever command made it
    step : the step's name (default: ``command``)

    Returns the finished, saved :class:`RunManifest` (``.run_id``, ``.archived``).
    """
    st = Store.open(store)
    kinds = dict(kinds or {})
    m = RunManifest.new(command, config=config, executor=executor)
    m.store = st.url

    def put(side: Mapping[str, Any] | None) -> dict[str, Any]:
        return {n: _put_value(st, v, check_kind(kinds.get(n, n)))
                for n, v in dict(side or {}).items()}

    m.record(step or command, inputs=put(inputs), outputs=put(outputs),
             settings=settings if settings is not None else config)
    st.finish_run(m, status=status, metrics=metrics, timing=timing, error=error)
    return m


# ---------------------------------------------------------------- the store with its runs

class Store(ArtifactStore):
    """The artifact store at one URL with its runs: ``Store.open(url)``.

    ``url`` defaults to ``./lakehouse``; commands pass ``--store``, else ``QUANTFLEET_STORE``.
    """


    def save_run(self, manifest: RunManifest) -> None:
        """Write ``runs/<run_id>/manifest.json`` (overwrites the run's previous state)."""
        self._overwrite(manifest_key(manifest.run_id), canonical_json(manifest.to_dict()))

    def start_run(self, command: str, *, config: Mapping[str, Any] | None = None,
                  executor: Mapping[str, Any] | None = None,
                  run_id: str | None = None) -> RunManifest:
        """A new ``running`` manifest, already saved."""
        m = RunManifest.new(command, config=config, executor=executor, run_id=run_id)
        m.store = self.url
        self.save_run(m)
        return m

    def finish_run(self, manifest: RunManifest, *, status: str = "succeeded",
                   metrics: Mapping[str, Any] | None = None,
                   timing: Mapping[str, Any] | None = None,
                   error: BaseException | str | None = None) -> str:
        """Close a run: fill in its status, metrics and timing, put the manifest as a
        content-addressed ``run_manifest`` artifact and save it under ``runs/<run_id>/``.
        Returns the archived manifest's hash."""
        manifest.close(status, metrics=metrics, timing=timing, error=error)
        for h, meta in list(manifest.artifacts.items()):
            if not meta.get("key"):  # recorded by hash only: describe it from the store
                try:
                    manifest.artifacts[h] = {**meta, **{k: v for k, v in
                                             self.stat(h).to_dict().items()
                                             if k not in ("hash", "kind")}}
                except StoreError:
                    pass
        return self.amend_run(manifest)

    def amend_run(self, manifest: RunManifest) -> str:
        """Save a finished run after adding to it (e.g. its report view, built later): the
        ``run_manifest`` artifact is put again and ``archived`` points at the new one.
        Returns its hash."""
        manifest.archived = None
        ref = self.put_json(manifest.to_dict(), kind="run_manifest")
        manifest.archived = ref.hash
        self.save_run(manifest)
        return ref.hash

    @contextmanager
    def run(self, command: str, *, config: Mapping[str, Any] | None = None,
            executor: Mapping[str, Any] | None = None,
            run_id: str | None = None) -> Iterator[RunManifest]:
        """``with store.run("tournament", config=cfg) as run: ...``: a manifest saved as
        ``running`` now, closed as ``succeeded`` (or ``failed``, with the error) at the end.
        Set ``run.metrics`` / ``run.timing`` inside the block."""
        m = self.start_run(command, config=config, executor=executor, run_id=run_id)
        try:
            yield m
        except BaseException as e:
            self.finish_run(m, status="failed", error=e)
            raise
        self.finish_run(m)

    def get_run(self, run_id: str) -> RunManifest:
        """A run's manifest by id, unique id prefix, or ``"latest"``."""
        rid = self.resolve_run(run_id)
        try:
            return RunManifest.from_dict(json.loads(self._read(manifest_key(rid))))
        except FileNotFoundError:
            raise StoreError(f"run {rid!r} has no manifest in {self.url}") from None

    def run_ids(self) -> list[str]:
        """Ids of all runs, oldest first (ids sort by creation time)."""
        return [r for r in self._list("runs") if not r.startswith(".")]

    def resolve_run(self, run_id: str) -> str:
        ids = self.run_ids()
        if run_id == "latest":
            if not ids:
                raise StoreError(f"no runs in store {self.url} yet")
            return ids[-1]
        if run_id in ids:
            return run_id
        hits = [r for r in ids if r.startswith(run_id)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise StoreError(f"run {run_id!r} is ambiguous in {self.url}: matches "
                             f"{', '.join(hits[:5])}{'...' if len(hits) > 5 else ''}")
        raise StoreError(f"no run {run_id!r} in store {self.url}" + did_you_mean(run_id, ids)
                         + "; `quantfleet runs list` shows the runs")

    def list_runs(self, run_ids: list[str] | None = None) -> list[RunManifest]:
        """Every run's manifest (or those of ``run_ids``), oldest first (fetched concurrently
        on S3)."""
        ids = self.run_ids() if run_ids is None else list(run_ids)
        if not ids:
            return []
        paths = [self._path(manifest_key(r)) for r in ids]
        try:
            got = self.fs.cat(paths, on_error="omit")
        except Exception as e:
            raise self._fail("reading", "runs/*/manifest.json", e) from None
        if isinstance(got, bytes):
            got = {paths[0]: got}
        self._io("read", sum(len(v) for v in got.values() if isinstance(v, bytes)))
        out = []
        for p in paths:
            data = got.get(p)
            if data is None:
                alt = [v for k, v in got.items() if str(k).rstrip("/").endswith(p.lstrip("/"))]
                data = alt[0] if alt else None
            if data is not None:
                out.append(RunManifest.from_dict(json.loads(data)))
        return out

    def lineage(self, ref: ArtifactRef | str) -> dict[str, Any]:
        """Where an artifact came from: the runs and steps that output it, their settings, and
        (recursively) the lineage of their inputs. See :func:`lineage`."""
        return lineage(self.list_runs(), _hash_of(ref))
