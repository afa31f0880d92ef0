"""Where a run's time went, from its spans: latency heatmap, worker utilisation, bottlenecks.

Layer 4. The timeline analysis here (busy workers over time, idle time split into serial,
overhead and imbalance) is shared with :mod:`quantfleet.observe.speedup`; see docs/observe.md
for the label convention and the definitions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from quantfleet.errors import QuantfleetError
from quantfleet.observe.spans import DRIVER_NODE, SPAN_FIELDS, Span, SpanRecorder

__all__ = [
    "ITEMS_TAG",
    "NONE_LABEL",
    "SECONDS_TAG",
    "TRANSFER_STAGES",
    "Finding",
    "Label",
    "Timeline",
    "bottlenecks",
    "heatmap",
    "parse_label",
    "span_frame",
    "timeline",
    "utilisation",
]

#: stage names (the part before any ``/tag``) whose spans are data transfer, not compute
TRANSFER_STAGES = frozenset({"transfer", "put", "get"})
_DIMS = ("stage", "component", "worker", "node", "ok", "attempt")
_VALUES = ("wall", "cpu", "items", "tasks")
NONE_LABEL = "-"


# ----------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class Label:
    """One part of a stage or component label: ``base`` and its ``key:value`` tags."""

    base: str
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, key: str) -> str | None:
        for k, v in self.tags:
            if k == key:
                return v
        return None


@lru_cache(maxsize=4096)
def parse_label(label: str, split_mixed: bool = True) -> tuple[Label, ...]:
    """Parse ``base[/key:value]*`` labels; ``+`` joins the labels of a mixed chunk.

    ``"sma_cross+rsi"`` → two parts; ``"portfolio.hrp/w:0-99"`` → base ``portfolio.hrp`` with
    tags ``w=0-99`` and (implicit, from the ``portfolio.`` prefix) ``profile=hrp``;
    ``"evolve/gen:3"`` → base ``evolve``, tag ``gen=3``. A label made of tags only
    (``"profile:hrp/w:0-99"``) takes its first tag's value as base. With
    ``split_mixed=False`` a mixed label stays one part: bases joined by ``+`` and the tags
    every part agrees on.
    """
    parts = []
    for raw in (label.split("+") if label else [""]):
        segs = raw.split("/")
        base = "/".join(s for s in segs if ":" not in s)
        tags: dict[str, str] = {}
        for s in segs:
            if ":" in s:
                k, v = s.split(":", 1)
                tags.setdefault(k.strip(), v.strip())
        if not base and tags:
            base = next(iter(tags.values()))
        if base.startswith("portfolio.") and "profile" not in tags:
            tags["profile"] = base.removeprefix("portfolio.")
        parts.append(Label(base, tuple(tags.items())))
    if split_mixed or len(parts) == 1:
        return tuple(dict.fromkeys(parts))
    common = dict(parts[0].tags)
    for p in parts[1:]:
        common = {k: v for k, v in common.items() if p.tag(k) == v}
    return (Label("+".join(dict.fromkeys(p.base for p in parts)), tuple(common.items())),)


# ----------------------------------------------------------------------------- input


def span_frame(spans: Any) -> pd.DataFrame:
    """Spans as a DataFrame with the span columns, from a SpanRecorder, a DataFrame, a
    ``pyarrow.Table`` or an iterable of :class:`Span`."""
    if isinstance(spans, pd.DataFrame):
        df = spans
    elif isinstance(spans, SpanRecorder):
        df = pd.DataFrame(spans.to_dicts(), columns=list(SPAN_FIELDS))
    elif hasattr(spans, "column_names") and hasattr(spans, "to_pandas"):
        df = spans.to_pandas()
    elif isinstance(spans, Iterable) and not isinstance(spans, (str, bytes)):
        rows = list(spans)
        bad = [type(r).__name__ for r in rows if not isinstance(r, Span)]
        if bad:
            raise TypeError(f"spans: expected Span records, got {bad[0]}")
        df = pd.DataFrame([r.to_dict() for r in rows], columns=list(SPAN_FIELDS))
    else:
        raise TypeError(f"spans: expected a SpanRecorder, DataFrame, pyarrow Table or "
                        f"Span list, got {type(spans).__name__}")
    missing = [f for f in SPAN_FIELDS if f not in df.columns]
    if missing:
        raise QuantfleetError(f"spans lack column(s) {', '.join(missing)}; a span table has "
                              f"{', '.join(SPAN_FIELDS)} (SpanRecorder.to_arrow)")
    df = df[list(SPAN_FIELDS)].copy()
    for c in ("stage", "component", "worker", "node"):
        df[c] = df[c].astype(str)
    for c in ("start", "end", "cpu_s"):
        df[c] = df[c].astype("float64")
    df["items"] = df["items"].astype("int64")
    df["attempt"] = df["attempt"].astype("int64")
    df["ok"] = df["ok"].astype(bool)
    df["duration"] = (df["end"] - df["start"]).clip(lower=0.0)
    return df.reset_index(drop=True)


def _unit_keys(df: pd.DataFrame) -> pd.Series:
    """One key per execution slot: the worker, node-qualified when a worker id repeats on
    several nodes; each lost span (``worker == ""``) is its own unit."""
    w = df["worker"]
    multi = df[w != ""].groupby("worker")["node"].nunique()
    clash = set(multi[multi > 1].index)
    keys = [f"{n}/{x}" if x in clash else x for x, n in zip(w, df["node"], strict=True)]
    keys = [k if k != "" else f"(lost #{i})" for i, k in enumerate(keys)]
    return pd.Series(keys, index=df.index, dtype=object)


def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals: disjoint, sorted."""
    if len(starts) == 0:
        return starts, ends
    o = np.argsort(starts, kind="stable")
    s, e = starts[o], ends[o]
    reach = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > reach[:-1]
    idx = np.flatnonzero(new)
    return s[idx], np.maximum.reduceat(e, idx)


# ----------------------------------------------------------------------------- heatmap


def _natural(v: Any) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                 for t in re.split(r"(\d+)", str(v)) if t != "")


def _bucketed(v: str, width: int | None) -> str:
    if width is None or v == NONE_LABEL:
        return v
    m = re.match(r"^\s*(-?\d+)", v)
    if m is None:
        return v
    lo = (int(m.group(1)) // width) * width
    return f"{lo}-{lo + width - 1}"


def _resolve(dim: str, stage: tuple[Label, ...], part: Label, row: Any) -> str:
    if dim == "stage":
        return stage[0].base
    if dim == "component":
        return part.base
    if dim == "worker":
        return row.worker or "(lost)"
    if dim in ("node", "ok", "attempt"):
        return str(getattr(row, dim))
    v = part.tag(dim)
    if v is None:
        v = stage[0].tag(dim)
    return NONE_LABEL if v is None else v


#: tags of a mixed chunk's label parts: the part's measured seconds and its item count
#: (``compute.tasks.breakdown_label``), e.g. ``"sma_cross/sec:0.41/n:3+rsi/sec:1.2/n:3"``
SECONDS_TAG, ITEMS_TAG = "sec", "n"


def _shares(parts: tuple[Label, ...], value: str, total: float) -> list[float]:
    """``total`` split over the parts of a label: by their measured seconds (``wall``,
    ``cpu``) or item counts (``items``) when every part carries them, else equally."""
    tag = ITEMS_TAG if value == "items" else SECONDS_TAG if value in ("wall", "cpu") else None
    if len(parts) > 1 and tag is not None:
        try:
            w = [float(p.tag(tag)) for p in parts]  # type: ignore[arg-type]
        except (TypeError, ValueError):
            w = []
        if w and all(math.isfinite(x) and x >= 0 for x in w) and sum(w) > 0:
            return [total * x / sum(w) for x in w]
    return [total / len(parts)] * len(parts)


def heatmap(spans: Any, rows: str = "stage", cols: str = "component", value: str = "wall",
            bucket: str | None = None, *, bucket_width: int | None = None,
            split_mixed: bool = True) -> pd.DataFrame:
    """Time (or CPU, items, tasks) summed by ``rows`` × ``cols`` (× ``bucket``).

    Parameters
    ----------
    spans : SpanRecorder, DataFrame, pyarrow Table or Span list
    rows, cols : ``"stage"``, ``"component"`` (label bases), ``"worker"``, ``"node"``,
        ``"ok"``, ``"attempt"``, or a tag key of the label convention (``"profile"``,
        ``"gen"``, ``"w"``, ...); a span without the tag lands in ``"-"``
    value : ``"wall"`` (span seconds), ``"cpu"`` (CPU seconds, NaN as 0), ``"items"`` or
        ``"tasks"``
    bucket : a tag key adding a second index level, e.g. ``"w"`` for the window of a
        portfolio fit (``rows="stage", cols="profile", bucket="w"``)
    bucket_width : group integer tag values (``"17"``, ``"0-99"`` by their start) into
        ranges of this width, e.g. 100 → ``"0-99"``, ``"100-199"``
    split_mixed : a chunk labelled ``"a+b"`` is split over ``a`` and ``b``: by the seconds
        and items its worker measured for each (``sec``/``n`` tags, see
        :func:`~quantfleet.compute.tasks.breakdown_label`), equally when the label has no
        breakdown; False keeps ``"a+b"``

    Returns
    -------
    DataFrame indexed by ``rows`` (or ``[rows, bucket]``) with one column per ``cols``
    value, zeros where nothing ran. Its grand total equals the span total of ``value``.
    """
    if value not in _VALUES:
        raise QuantfleetError(f"heatmap value {value!r} is not one of {', '.join(_VALUES)}")
    if bucket_width is not None and (isinstance(bucket_width, bool) or int(bucket_width) < 1):
        raise QuantfleetError(f"bucket_width must be >= 1 (got {bucket_width!r}); e.g. 100")
    for name, dim in (("rows", rows), ("cols", cols), ("bucket", bucket)):
        if dim is not None and (not isinstance(dim, str) or not dim):
            raise QuantfleetError(f"heatmap {name}={dim!r}: expected one of "
                                  f"{', '.join(_DIMS)} or a label tag key like 'w'")
    df = span_frame(spans)
    index = [rows] if bucket is None else [rows, bucket]
    if df.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_arrays([[]] * len(index), names=index)
                            if bucket else pd.Index([], name=rows),
                            columns=pd.Index([], name=cols), dtype="float64")
    vals = {"wall": df["duration"], "cpu": df["cpu_s"].fillna(0.0), "items": df["items"],
            "tasks": pd.Series(1.0, index=df.index)}[value].astype("float64").to_numpy()
    recs: list[tuple[str, str, str, float]] = []
    for i, row in enumerate(df.itertuples(index=False)):
        stage = parse_label(row.stage, True)
        parts = parse_label(row.component, split_mixed)
        for p, share in zip(parts, _shares(parts, value, vals[i]), strict=True):
            b = "" if bucket is None else _bucketed(_resolve(bucket, stage, p, row),
                                                    bucket_width)
            recs.append((_resolve(rows, stage, p, row), b, _resolve(cols, stage, p, row),
                         share))
    long = pd.DataFrame(recs, columns=["r", "b", "c", "v"])
    grouped = long.groupby(["r", "b", "c"], sort=False)["v"].sum()
    table = grouped.unstack("c", fill_value=0.0)
    table = table.reindex(sorted(table.columns, key=_natural), axis=1)
    table = table.reindex(sorted(table.index, key=lambda t: (_natural(t[0]), _natural(t[1]))))
    if bucket is None:
        table.index = pd.Index(table.index.get_level_values(0), name=rows)
    else:
        table.index = table.index.set_names([rows, bucket])
    table.columns.name = cols
    return table.astype("float64")


# ----------------------------------------------------------------------------- timeline


@dataclass
class Timeline:
    """The run as busy execution units over time, and its idle time classified.

    All ``*_s`` quantities are worker-seconds within the window ``[t0, t0 + wall_s]``
    except ``wall_s``, ``extent_s`` and ``parallel_s`` (seconds of the run).
    """

    t0: float
    wall_s: float
    workers: int
    capacity_s: float            # workers × wall_s
    busy_s: float                # ∑ min(busy units, workers) dt
    work_s: float                # busy in compute spans (first attempts that succeeded)
    retry_s: float               # busy in retried attempts (attempt > 1) or failed spans
    transfer_s: float            # busy in transfer spans (stage in TRANSFER_STAGES)
    serial_s: float              # idle while no span ran and outside every stage's extent
    overhead_s: float            # other idle: gaps between tasks, ramp-up
    imbalance_s: float           # idle in a stage's tail, after its last full-width moment
    oversubscribed_s: float      # busy units beyond ``workers``, ignored above
    extent_s: float              # last span end − first span start
    parallel_s: float            # seconds of the run when any span ran
    n_spans: int
    n_tasks: int                 # spans outside transfer stages
    units: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    driver_s: float = 0.0        # seconds of the run when a driver step ran and no task
    unaccounted_s: float = 0.0   # seconds of the run no span covers (nothing recorded)

    @property
    def idle_s(self) -> float:
        return self.serial_s + self.overhead_s + self.imbalance_s

    @property
    def unaccounted_share(self) -> float:
        """``unaccounted_s / wall_s``: the share of the run's wall no span explains."""
        return self.unaccounted_s / self.wall_s if self.wall_s > 0 else 0.0


def timeline(spans: Any, wall_s: float | None = None, workers: int | None = None) -> Timeline:
    """Sweep-line over the spans (definitions in docs/observe.md, "Timeline").

    Driver spans (``node == DRIVER_NODE``) are not tasks: they never count as a busy worker;
    they give ``driver_s`` (seconds when a driver step ran and no task) and, with every other
    span, ``unaccounted_s`` (seconds of the wall no span covers)."""
    df = span_frame(spans)
    drv = df[df["node"] == DRIVER_NODE]
    df = df[df["node"] != DRIVER_NODE].reset_index(drop=True)
    notes: list[str] = []
    units = _unit_keys(df)
    real = sorted({u for u, w in zip(units, df["worker"], strict=True) if w != ""})
    if workers is None:
        workers = max(1, len(real))
    if isinstance(workers, bool) or int(workers) < 1:
        raise QuantfleetError(f"workers must be >= 1 (got {workers!r})")
    W = int(workers)
    if wall_s is not None and (not math.isfinite(float(wall_s)) or float(wall_s) < 0):
        raise QuantfleetError(f"wall_s must be a finite number >= 0 (got {wall_s!r})")
    if df.empty and drv.empty:
        T = float(wall_s or 0.0)
        return Timeline(0.0, T, W, W * T, 0.0, 0.0, 0.0, 0.0, W * T, 0.0, 0.0, 0.0, 0.0, 0.0,
                        0, 0, [], ["no spans: the whole run counts as serial"], 0.0, T)
    if df.empty:
        last = float(drv["end"].max())
        T = max(float(wall_s) if wall_s is not None else 0.0,
                last - float(drv["start"].min()))
        d_cov = _covered(drv, last - T, last)
        return Timeline(last - T, T, W, W * T, 0.0, 0.0, 0.0, 0.0, W * T, 0.0, 0.0, 0.0, 0.0,
                        0.0, len(drv), 0, [], ["no task spans: the whole run counts as serial"],
                        d_cov, T - d_cov)
    allspans = pd.concat([df, drv]) if not drv.empty else df
    first, last = float(allspans["start"].min()), float(allspans["end"].max())
    extent = last - first
    T = extent if wall_s is None else float(wall_s)
    if T < extent - 1e-6:
        notes.append(f"spans cover {extent:.3f} s but the run's wall time is {T:.3f} s "
                     f"(clocks of different nodes?); the span extent is used")
        T = extent
    t1 = last
    t0 = t1 - T

    stage_base = df["stage"].map(lambda s: parse_label(s, True)[0].base)
    is_x = stage_base.isin(TRANSFER_STAGES).to_numpy()
    is_r = (~df["ok"].to_numpy() | (df["attempt"].to_numpy() > 1)) & ~is_x
    st, en = df["start"].to_numpy(), df["end"].to_numpy()
    en = np.maximum(en, st)

    def intervals(mask: np.ndarray, by: pd.Series) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for _, idx in by[mask].groupby(by[mask], sort=False).groups.items():
            ii = np.asarray(idx)
            out.append(_merge(st[ii], en[ii]))
        return out

    everything = np.ones(len(df), dtype=bool)
    all_iv = intervals(everything, units)
    x_iv = intervals(is_x, units) if is_x.any() else []
    r_iv = intervals(is_r, units) if is_r.any() else []
    stages = sorted(df["stage"].unique())
    stage_iv = {s: intervals((df["stage"] == s).to_numpy(), units) for s in stages}

    bp = np.unique(np.concatenate([st, en, [t0, t1]]))
    d = np.diff(bp)

    def count(ivs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        delta = np.zeros(len(bp), dtype=np.int64)
        for s, e in ivs:
            np.add.at(delta, np.searchsorted(bp, s), 1)
            np.add.at(delta, np.searchsorted(bp, e), -1)
        return np.cumsum(delta)[:-1]

    n = count(all_iv)
    nx = count(x_iv) if x_iv else np.zeros(len(d), dtype=np.int64)
    nr = count(r_iv) if r_iv else np.zeros(len(d), dtype=np.int64)
    busy = np.minimum(n, W).astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        fx = np.where(n > 0, nx / np.maximum(n, 1), 0.0)
        fr = np.where(n > 0, np.minimum(nr, n - nx) / np.maximum(n, 1), 0.0)
    idle = W - busy
    seg_lo = bp[:-1]
    in_stage = np.zeros(len(d), dtype=bool)
    tail = np.zeros(len(d), dtype=bool)
    for s in stages:
        ns = count(stage_iv[s])
        sel = df["stage"] == s
        lo, hi = float(df.loc[sel, "start"].min()), float(df.loc[sel, "end"].max())
        inside = (seg_lo >= lo) & (seg_lo < hi)
        in_stage |= inside
        full = np.flatnonzero(inside & (ns >= W))
        tau = bp[full[-1] + 1] if len(full) else lo
        tail |= (seg_lo >= tau) & (seg_lo < hi)
    run = n > 0
    serial = float(np.sum((idle * d)[~run & ~in_stage]))
    imbalance = float(np.sum((idle * d)[run & tail]))
    overhead = float(np.sum((idle * d)[(~run & in_stage) | (run & ~tail)]))
    busy_s = float(np.sum(busy * d))
    transfer_s = float(np.sum(busy * fx * d))
    retry_s = float(np.sum(busy * fr * d))
    over = float(np.sum(np.maximum(n - W, 0) * d))
    if over > 1e-9:
        notes.append(f"{over:.3f} worker-seconds ran beyond {W} workers at once "
                     f"(more concurrent workers than declared); not counted as busy")
    task_cov = _covered(df, t0, t1)
    any_cov = _covered(allspans, t0, t1)
    return Timeline(
        t0=t0, wall_s=T, workers=W, capacity_s=W * T, busy_s=busy_s,
        work_s=busy_s - transfer_s - retry_s, retry_s=retry_s, transfer_s=transfer_s,
        serial_s=serial, overhead_s=overhead, imbalance_s=imbalance, oversubscribed_s=over,
        extent_s=extent, parallel_s=float(np.sum(d[run])), n_spans=len(allspans),
        n_tasks=int((~is_x).sum()), units=real, notes=notes,
        driver_s=any_cov - task_cov, unaccounted_s=max(0.0, T - any_cov),
    )


def _covered(df: pd.DataFrame, t0: float, t1: float) -> float:
    """Seconds of ``[t0, t1]`` covered by at least one of the spans in ``df``."""
    if df.empty:
        return 0.0
    s = np.clip(df["start"].to_numpy(float), t0, t1)
    e = np.clip(np.maximum(df["end"].to_numpy(float), df["start"].to_numpy(float)), t0, t1)
    ms, me = _merge(s, e)
    return float(np.sum(me - ms))


def utilisation(spans: Any, bins: int = 50, wall_s: float | None = None) -> pd.DataFrame:
    """Busy fraction of each worker in each of ``bins`` equal time bins.

    Rows: workers (lost tasks, ``worker == ""``, have no worker and driver spans are not a
    worker's: both are left out); columns:
    each bin's start in seconds from the run's start (the first span's start, or
    ``last end − wall_s`` when ``wall_s`` is given). Values in [0, 1]; overlapping spans of
    one worker count once.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise QuantfleetError(f"bins must be a whole number >= 1 (got {bins!r}); e.g. 50")
    df = span_frame(spans)
    df = df[df["node"] != DRIVER_NODE].reset_index(drop=True)
    df["unit"] = _unit_keys(df)
    df = df[df["worker"] != ""]
    if df.empty:
        return pd.DataFrame(dtype="float64")
    t1 = float(df["end"].max())
    extent = t1 - float(df["start"].min())
    T = extent if wall_s is None or float(wall_s) < extent else float(wall_s)
    t0 = t1 - T
    edges = np.linspace(t0, t1, int(bins) + 1)
    width = np.diff(edges)
    out = {}
    for unit, g in df.groupby("unit", sort=False):
        s, e = _merge(g["start"].to_numpy(), np.maximum(g["end"].to_numpy(),
                                                        g["start"].to_numpy()))
        cum = np.concatenate([[0.0], np.cumsum(e - s)])

        def busy_until(t: np.ndarray, s=s, e=e, cum=cum) -> np.ndarray:
            k = np.searchsorted(s, t, side="right") - 1
            kk = np.maximum(k, 0)
            inside = np.clip(t - s[kk], 0.0, e[kk] - s[kk])
            return np.where(k >= 0, cum[kk] + inside, 0.0)

        b = np.diff(busy_until(edges))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[unit] = np.where(width > 0, b / np.where(width > 0, width, 1.0), 1.0)
    cols = pd.Index(np.round(edges[:-1] - t0, 6), name="t_s")
    table = pd.DataFrame(out, index=cols).T.clip(0.0, 1.0)
    table.index.name = "worker"
    return table.reindex(sorted(table.index, key=_natural))


# ----------------------------------------------------------------------------- bottlenecks


@dataclass(frozen=True)
class Finding:
    """One bottleneck: what, how big (``value`` in ``unit``), its ``share`` of the run's
    worker capacity (workers × wall), and a plain-words line."""

    kind: str
    subject: str
    value: float
    unit: str
    share: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "value": self.value,
                "unit": self.unit, "share": self.share, "text": self.text}


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if abs(x) >= 0.01 or x == 0 else f"{100 * x:.1f}%"


def _secs(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f} s"
    if abs(x) >= 1:
        return f"{x:.1f} s"
    return f"{1000 * x:.0f} ms" if abs(x) >= 0.001 else f"{1e6 * x:.0f} µs"


def bottlenecks(spans: Any, wall_s: float | None = None, baseline: dict | None = None, *,
                workers: int | None = None, top: int = 3,
                idle_below: float = 0.5) -> list[Finding]:
    """Ranked findings: where the run's worker capacity (workers × wall) went.

    Kinds: ``component`` (the ``top`` components by total task time), ``per_item`` (the
    slowest component per work item), ``idle_workers`` (workers busy less than
    ``idle_below`` × the busiest worker's time, and declared workers that ran nothing),
    ``overhead``, ``imbalance``, ``serial`` (its text splits the wall it covers into recorded
    driver steps and unaccounted time), ``transfer``, ``retries`` and, with a
    ``baseline``, ``work_inflation`` (task time beyond the serial baseline). Sorted by
    ``share`` (of workers × wall), largest first; empty kinds are left out.
    """
    df = span_frame(spans)
    tl = timeline(df, wall_s, workers)
    C = tl.capacity_s
    if C <= 0 or df.empty:
        return []

    def share(x: float) -> float:
        return x / C

    cap = f"{tl.workers} workers × {_secs(tl.wall_s)}"
    out: list[Finding] = []
    work = df[~df["stage"].map(lambda s: parse_label(s, True)[0].base).isin(TRANSFER_STAGES)]
    if not work.empty:
        by = heatmap(work, rows="stage", cols="component").sum(axis=0)
        items = heatmap(work, rows="stage", cols="component", value="items").sum(axis=0)
        for comp, t in by.sort_values(ascending=False).head(top).items():
            if t <= 0:
                continue
            out.append(Finding("component", str(comp), float(t), "s", share(t),
                               f"{comp} takes {_secs(t)} of task time "
                               f"({_pct(t / max(by.sum(), 1e-12))} of all task time, "
                               f"{_pct(share(t))} of {cap})"))
        per = (by / items.replace(0, np.nan)).dropna()
        if len(per) > 1:
            comp = str(per.idxmax())
            out.append(Finding("per_item", comp, float(per.max()), "s/item", share(by[comp]),
                               f"{comp} is the slowest per work item: {_secs(per.max())} per "
                               f"item (median component {_secs(float(per.median()))})"))
    util = utilisation(df, bins=1, wall_s=tl.wall_s)
    if not util.empty:
        frac = util.iloc[:, 0]
        low = frac[frac < idle_below * frac.max()]
        missing = max(0, tl.workers - len(frac))
        idle_t = float(((1 - low) * tl.wall_s).sum()) + missing * tl.wall_s
        if len(low) or missing:
            who = ", ".join(f"{w} ({_pct(f)} busy)" for w, f in low.sort_values().head(4).items())
            more = f"; {missing} of {tl.workers} declared workers ran no task" if missing else ""
            out.append(Finding("idle_workers", who or f"{missing} workers", idle_t, "s",
                               share(idle_t),
                               (f"idle workers: {who}" if who else "idle workers") + more
                               + f" — {_secs(idle_t)} of idle capacity"))
    per_task = tl.overhead_s / max(tl.n_tasks, 1)
    rows = [
        ("overhead", "scheduling", tl.overhead_s,
         f"task overhead: {_secs(tl.overhead_s)} of worker time idle between tasks inside "
         f"the parallel stages (≈ {_secs(per_task)} per task over {tl.n_tasks} tasks); "
         f"bigger chunks amortize it"),
        ("imbalance", "tail", tl.imbalance_s,
         f"imbalance: {_secs(tl.imbalance_s)} of worker time idle while the last tasks of a "
         f"stage ran on other workers (or a stage had fewer tasks than workers)"),
        ("serial", "driver", tl.serial_s,
         f"serial: {_secs(tl.serial_s / tl.workers)} of the {_secs(tl.wall_s)} wall ran no "
         f"task at all — {_secs(tl.serial_s)} of worker time; of the wall, "
         f"{_secs(tl.driver_s)} ran recorded driver steps (spans of node 'driver') and "
         f"{_secs(tl.unaccounted_s)} ({_pct(tl.unaccounted_share)}) is unaccounted (no span)"),
        ("transfer", "data", tl.transfer_s,
         f"data transfer: {_secs(tl.transfer_s)} of worker time in transfer spans "
         f"(stages {', '.join(sorted(TRANSFER_STAGES))})"),
    ]
    retried = df[(~df["ok"]) | (df["attempt"] > 1)]
    if len(retried):
        rows.append(("retries", "attempts", tl.retry_s,
                     f"retries/failures: {len(retried)} of {len(df)} task attempts were "
                     f"retries or failed, {_secs(tl.retry_s)} of worker time "
                     f"({_pct(tl.retry_s / max(tl.busy_s, 1e-12))} of busy time)"))
    if baseline is not None and baseline.get("serial_s") is not None:
        infl = tl.work_s - float(baseline["serial_s"])
        if infl > 0:
            rows.append(("work_inflation", "tasks", infl,
                         f"work inflation: tasks took {_secs(infl)} more in total than the "
                         f"serial baseline ({_secs(float(baseline['serial_s']))}): per-task "
                         f"start-up, cold caches, CPU contention"))
    for kind, subj, v, text in rows:
        if v > 1e-9:
            out.append(Finding(kind, subj, float(v), "s", share(v), text))
    out.sort(key=lambda f: -f.share)
    return out


# ----------------------------------------------------------------------------- terminal
