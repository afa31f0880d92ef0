"""The terminal text of ``quantfleet profile``: totals, the stage × component heatmap, ranked
bottlenecks and, with a baseline, the speedup (heatmap.py and speedup.py put together)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from quantfleet.observe.heatmap import _pct, _secs, bottlenecks, heatmap, span_frame, timeline
from quantfleet.observe.speedup import explain_speedup

__all__ = ["format_profile"]


def _grid_text(table: pd.DataFrame, top: int) -> str:
    if table.empty:
        return "  (no spans)"
    totals = table.sum(axis=0).sort_values(ascending=False)
    keep = list(totals.index[:top])
    shown = table[keep].copy()
    if len(totals) > top:
        shown["(other)"] = table.drop(columns=keep).sum(axis=1)
    shown["total"] = table.sum(axis=1)
    names = [" / ".join(map(str, i)) if isinstance(i, tuple) else str(i) for i in shown.index]
    w0 = max(len(str(table.index.name or "")), *(len(n) for n in names))
    cells = [[f"{v:.2f}" for v in row] for row in shown.to_numpy()]
    widths = [max(len(str(c)), *(len(r[j]) for r in cells)) for j, c in enumerate(shown.columns)]
    head = "  " + str(table.index.name or "").ljust(w0) + "  " + "  ".join(
        str(c).rjust(w) for c, w in zip(shown.columns, widths, strict=True))
    lines = [head]
    for n, r in zip(names, cells, strict=True):
        lines.append("  " + n.ljust(w0) + "  " + "  ".join(
            c.rjust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def format_profile(spans: Any, wall_s: float | None = None, workers: int | None = None,
                   baseline: dict | None = None, *, top: int = 8,
                   title: str = "") -> str:
    """Terminal text for ``quantfleet profile``: totals, the stage × component heatmap
    (``top`` components by time), ranked bottlenecks and, with a baseline, the speedup."""
    df = span_frame(spans)
    tl = timeline(df, wall_s, workers)
    cpu = float(df["cpu_s"].fillna(0.0).sum())
    n_bad = int(((~df["ok"]) | (df["attempt"] > 1)).sum())
    lines = [
        (title + ": " if title else "")
        + f"{len(df)} spans ({n_bad} failed or retried) on {tl.workers} workers, "
        f"wall {_secs(tl.wall_s)}, task time {_secs(float(df['duration'].sum()))} "
        f"(CPU {_secs(cpu)}), utilisation {_pct(tl.busy_s / max(tl.capacity_s, 1e-12))}",
        f"of the wall: tasks ran {_secs(tl.parallel_s)}, only driver steps "
        f"{_secs(tl.driver_s)}, unaccounted (no span) {_secs(tl.unaccounted_s)} "
        f"({_pct(tl.unaccounted_share)})",
        "",
        f"Time by stage × component (wall seconds; top {top} components):",
        _grid_text(heatmap(df), top),
        "",
        "Bottlenecks (share of workers × wall):",
    ]
    found = bottlenecks(df, tl.wall_s, baseline, workers=tl.workers)
    lines += [f"  {i}. [{_pct(f.share):>4}] {f.text}" for i, f in enumerate(found, 1)] or [
        "  (none)"]
    if baseline is not None:
        sp = explain_speedup(df, tl.wall_s, tl.workers, baseline)
        lines += ["", sp["text"]]
    lines += [f"note: {n}" for n in tl.notes]
    return "\n".join(lines)
