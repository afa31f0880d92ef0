"""An embedded DuckDB catalog over a store: runs, artifacts and lineage as tables, and one view
per table kind (``tournament_results``, ...) unioning every run's tables with a ``run_id``.

The database is in memory by default or a local file; :meth:`Catalog.refresh` re-reads the
manifests of new and still-running runs. S3 and memory stores are read through their fsspec
filesystem registered with DuckDB (no httpfs extension needed).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import TYPE_CHECKING, Any

from quantfleet.errors import StoreError
from quantfleet.store.keys import RESERVED_KINDS
from quantfleet.store.redact import redact
from quantfleet.store.runs import Store

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = ["Catalog"]

_SCHEMA = [
    """create table if not exists runs (
        run_id varchar primary key, command varchar, status varchar,
        created timestamptz, finished timestamptz, duration_s double,
        version varchar, git_commit varchar, git_dirty boolean,
        config json, metrics json, executor json, timing json, error varchar,
        archived varchar)""",
    """create table if not exists artifacts (
        hash varchar, kind varchar, format varchar, key varchar, uri varchar,
        bytes bigint, rows bigint, primary key (hash, kind))""",
    """create table if not exists lineage (
        run_id varchar, step varchar, direction varchar, name varchar, hash varchar,
        kind varchar, settings json)""",
]


def _ts(s: str | None) -> _dt.datetime | None:
    if not s:
        return None
    return _dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_dt.UTC)


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class Catalog:
    """SQL over a store's runs and artifacts.

    Parameters
    ----------
    store : a :class:`Store` or store URL
    path : DuckDB database file (kept between sessions, refreshed incrementally);
        ``None``: in memory, rebuilt from the manifests
    refresh : index the store now

    Tables: ``runs`` (one row per run: status, times, git commit, config/metrics/executor/timing
    as JSON), ``artifacts`` (hash, kind, format, key, uri, bytes, rows), ``lineage`` (run_id,
    step, direction 'input'|'output', name, hash, kind, settings). Views: one per Parquet kind
    that some run output, with ``run_id`` and ``artifact`` (the output's name) in front.
    """

    def __init__(self, store: Store | str | os.PathLike | None = None,
                 path: str | os.PathLike | None = None, *, refresh: bool = True) -> None:
        import duckdb

        self.store = Store.open(store)
        self.path = None if path is None else os.fspath(path)
        if self.path:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.con = duckdb.connect(self.path or ":memory:")
        if self.store.protocol != "file":
            self.con.register_filesystem(self.store.fs)
        for ddl in _SCHEMA:
            self.con.execute(ddl)
        if refresh:
            self.refresh()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def __repr__(self) -> str:
        return f"Catalog({self.store.url!r}, path={self.path!r})"

    # -- indexing

    def refresh(self) -> int:
        """Index runs that are new or were still running; drop runs gone from the store;
        rebuild the kind views. Returns the number of manifests read."""
        ids = self.store.run_ids()
        known = dict(self.con.execute("select run_id, status from runs").fetchall())
        todo = [r for r in ids if known.get(r) in (None, "running")]
        gone = [r for r in known if r not in set(ids)]
        manifests = self.store.list_runs(todo) if todo else []
        con = self.con
        con.execute("begin transaction")
        try:
            for rid in gone + [m.run_id for m in manifests]:
                con.execute("delete from runs where run_id = ?", [rid])
                con.execute("delete from lineage where run_id = ?", [rid])
            for m in manifests:
                con.execute(
                    "insert into runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [m.run_id, m.command, m.status, _ts(m.created), _ts(m.finished),
                     m.duration_s, m.code.get("version"), m.code.get("git_commit"),
                     m.code.get("git_dirty"), json.dumps(m.config, default=str),
                     json.dumps(m.metrics, default=str), json.dumps(m.executor, default=str),
                     json.dumps(m.timing, default=str), m.error, m.archived])
                arts = [[h, a.get("kind", ""), a.get("format"), a.get("key"),
                         self.store._uri_of(a["key"]) if a.get("key") else None,
                         a.get("bytes"), a.get("rows")] for h, a in m.artifacts.items()]
                if arts:
                    con.executemany("insert or ignore into artifacts values (?, ?, ?, ?, ?, ?, ?)",
                                    arts)
                rows = []
                for s in m.steps:
                    settings = json.dumps(s.get("settings", {}), default=str)
                    for direction in ("inputs", "outputs"):
                        for name, h in s[direction].items():
                            rows.append([m.run_id, s["step"], direction[:-1], name, h,
                                         m.artifacts.get(h, {}).get("kind", ""), settings])
                if rows:
                    con.executemany("insert into lineage values (?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        self._rebuild_views()
        return len(manifests)

    def _rebuild_views(self) -> None:
        for (name,) in self.con.execute(
                "select view_name from duckdb_views() where not internal "
                "and comment = 'quantfleet kind'").fetchall():
            self.con.execute(f"drop view if exists {_quote(name)}")
        kinds = self.con.execute(
            "select distinct l.kind, a.uri, a.hash, a.format from lineage l join artifacts a "
            "on a.hash = l.hash and a.kind = l.kind "
            "where l.direction = 'output' and a.uri is not null "
            "and (a.format = 'parquet' or (a.format = 'json' and a.rows is not null)) "
            "order by 1, 2").fetchall()
        by_kind: dict[str, list[str]] = {}
        # tables kept as parts (Store.put_parts: a shard tournament's results, oos_returns):
        # row parts are read like files and mapped to their table's hash; column parts are
        # joined side by side (positional join), one select per table
        side: dict[str, list[str]] = {}
        part_of: list[tuple[str, str]] = []
        for kind, uri, h, fmt in kinds:
            if not kind or kind in RESERVED_KINDS:
                continue
            if fmt == "parquet":
                by_kind.setdefault(kind, []).append(uri)
                continue
            parts = self.store.parts_of(h)
            if not parts:
                continue
            uris = [self.store.uri(p) for p in parts]
            doc_axis = self.store.get_json(h)["axis"]
            if doc_axis == "rows":
                by_kind.setdefault(kind, []).extend(uris)
                part_of.extend((p, h) for p in parts)
            else:
                body = " positional join ".join(f"read_parquet({_lit(u)})" for u in uris)
                side.setdefault(kind, []).append(f"select {_lit(h)} as __hash, * from {body}")
        # a table, not a temp one: a catalog file reopened without refresh keeps its views
        self.con.execute("create or replace table __part_of (part varchar, hash varchar)")
        if part_of:
            self.con.executemany("insert into __part_of values (?, ?)", part_of)
        name_re = "'([0-9a-f]{64})\\.parquet$'"
        for kind in sorted(set(by_kind) | set(side)):
            selects = list(side.get(kind, []))
            uris = list(dict.fromkeys(by_kind.get(kind, [])))
            if uris:
                files = "[" + ", ".join(_lit(u) for u in uris) + "]"
                selects.insert(0, (
                    f"select coalesce(pm.hash, regexp_extract(t.filename, {name_re}, 1)) "
                    f"as __hash, t.* exclude (filename) "
                    f"from read_parquet({files}, union_by_name = true, filename = true) t "
                    f"left join __part_of pm "
                    f"on pm.part = regexp_extract(t.filename, {name_re}, 1)"))
            sql = (f"create or replace view {_quote(kind)} as "
                   f"select l.run_id, l.name as artifact, t.* exclude (__hash) "
                   f"from ({' union all by name '.join(selects)}) t "
                   f"join (select distinct run_id, name, hash from lineage "
                   f"where direction = 'output' and kind = {_lit(kind)}) l "
                   f"on t.__hash = l.hash")
            try:
                self.con.execute(sql)
                self.con.execute(f"comment on view {_quote(kind)} is 'quantfleet kind'")
            except Exception as e:  # a missing or unreadable object must not hide the rest
                import warnings

                warnings.warn(f"catalog: no view {kind!r}: {redact(e)}", stacklevel=2)

    # -- querying

    @property
    def views(self) -> list[str]:
        """The kind views, e.g. ``["sweep_results", "tournament_results"]``."""
        return [r[0] for r in self.con.execute(
            "select view_name from duckdb_views() where not internal "
            "and comment = 'quantfleet kind' order by 1").fetchall()]

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run SQL; the result as a ``pyarrow.Table``. ``read_parquet('s3://...')`` works on an
        S3 store (its filesystem is registered), as do the tables and views above."""
        import duckdb
        import pyarrow as pa

        if not isinstance(sql, str) or not sql.strip():
            raise StoreError("query: give a SQL statement, e.g. "
                             "\"select run_id, status from runs order by created\"")
        try:
            rel = self.con.sql(sql, params=params) if params else self.con.sql(sql)
            if rel is None:  # a statement without a result (DDL, insert)
                return pa.table({})
            return rel.to_arrow_table()
        except duckdb.Error as e:
            msg = str(e).splitlines()[0]
            raise StoreError(redact(
                f"query failed: {msg}; tables: runs, artifacts, lineage; views: "
                f"{', '.join(self.views) or '(none yet)'}")) from None

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """:meth:`query` as a list of dicts."""
        return self.query(sql, params).to_pylist()
