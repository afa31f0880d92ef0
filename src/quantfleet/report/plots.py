"""The run report's charts as inline SVG, one function per chart: no JavaScript, no plotting
library, so a report stays small (the demo's is well under 2 MB) and opens offline anywhere.

Every function takes plain pandas/dict data and returns a :class:`Figure` (its ``svg`` markup
and pixel ``height``). Every text that ends up in a figure (series names, ticks) goes through
``label`` (HTML-escaped). Long series are thinned to at most ``MAX_POINTS`` points per line
(always keeping the first and last point); hovering a line shows its name and last value.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FONT",
    "MAX_POINTS",
    "PALETTE",
    "Figure",
    "cost",
    "cumulative",
    "equity",
    "evolution",
    "label",
    "latency",
    "losses",
    "stability",
    "utilisation",
    "weights",
]

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
MAX_POINTS = 600
_W = 1200  # viewBox width; the SVG scales to the page width


@dataclass
class Figure:
    """One chart: ``svg`` (markup of one or more ``<svg>`` elements) and its ``height`` in
    px at the viewBox width; ``series`` counts the lines/areas/bars/cells drawn."""

    svg: str
    height: int
    series: int = 0


def label(text: Any) -> str:
    """A string safe to show inside SVG text: HTML special characters become entities."""
    return html.escape(str(text), quote=True)


def _f(v: float) -> str:
    return f"{v:.1f}"


def _thin(n: int, limit: int = MAX_POINTS) -> Any:
    import numpy as np

    if n <= limit:
        return np.arange(n)
    idx = np.linspace(0, n - 1, limit).round().astype(int)
    return np.unique(idx)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    out, v = [], start
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mult = (1,) if b - a > 3 else (1, 2, 5)
    return [m * 10.0 ** e for e in range(a, b + 1) for m in mult if lo <= m * 10.0 ** e <= hi]


def _tick_text(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:,.4g}"


def _xinfo(x: Any) -> tuple[Any, bool]:
    """x values as floats (days since epoch for datetimes) and whether they were dates."""
    import numpy as np
    import pandas as pd

    if isinstance(x, pd.DatetimeIndex) or np.issubdtype(np.asarray(x).dtype, np.datetime64):
        xs = pd.DatetimeIndex(x)
        if xs.tz is not None:
            xs = xs.tz_convert(None)
        return xs.asi8.astype(float) / 86_400e9, True
    return np.asarray(x, dtype=float), False


def _date_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    import pandas as pd

    t0, t1 = pd.Timestamp(lo * 86_400e9), pd.Timestamp(hi * 86_400e9)
    years = (t1 - t0).days / 365.25
    if years >= 3:
        step = max(1, math.ceil(years / 8))
        ticks = [pd.Timestamp(year=y, month=1, day=1) for y in range(t0.year + 1, t1.year + 1)
                 if (y - t0.year - 1) % step == 0]
        fmt = "%Y"
    else:
        months = max(1, math.ceil(years * 12 / 8))
        ticks = list(pd.date_range(t0.normalize() + pd.offsets.MonthBegin(1), t1,
                                   freq=f"{months}MS"))
        fmt = "%Y-%m"
    return [(t.value / 86_400e9, t.strftime(fmt)) for t in ticks if t0 <= t <= t1]


def _chart(series: list[dict], *, height: int = 380, width: int = _W, log: bool = False,
           ytitle: str = "", xtitle: str = "", legend: bool = True, pct: bool = False,
           markers: bool = False) -> tuple[str, int]:
    """Lines: each series a dict ``name, x, y`` (+ ``color``, ``dash``, ``width``)."""
    import numpy as np

    ml, mr, mt, mb = 70, 20, 12, 44
    pw, ph = width - ml - mr, height - mt - mb
    prepared, dates = [], False
    for s in series:
        x, dates = _xinfo(s["x"])
        y = np.asarray(s["y"], dtype=float)
        ok = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log else True)
        x, y = x[ok], y[ok]
        if len(x):
            keep = _thin(len(x))
            prepared.append({**s, "x": x[keep], "y": y[keep], "last": float(y[-1])})
    if not prepared:
        return (f'<svg viewBox="0 0 {width} 60" width="100%" role="img"><text x="10" y="30" '
                f'class="ax">no finite values to draw</text></svg>', 60)
    xs = np.concatenate([p["x"] for p in prepared])
    ys = np.concatenate([p["y"] for p in prepared])
    x0, x1 = float(xs.min()), float(xs.max())
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if log:
        y0, y1 = float(ys.min()), float(ys.max())
        if y1 <= y0 * 1.0001:
            y0, y1 = y0 / 1.5, y1 * 1.5
        ly0, ly1 = math.log10(y0), math.log10(y1)
        pad = (ly1 - ly0) * 0.04
        ly0, ly1 = ly0 - pad, ly1 + pad

        def sy(v: Any) -> Any:
            return mt + ph - (np.log10(v) - ly0) / (ly1 - ly0) * ph
        yt = _log_ticks(10 ** ly0, 10 ** ly1)
    else:
        y0, y1 = float(ys.min()), float(ys.max())
        if y1 == y0:
            y0, y1 = y0 - 1, y1 + 1
        pad = (y1 - y0) * 0.05
        y0, y1 = y0 - pad, y1 + pad

        def sy(v: Any) -> Any:
            return mt + ph - (np.asarray(v, dtype=float) - y0) / (y1 - y0) * ph
        yt = _nice_ticks(y0, y1)

    def sx(v: Any) -> Any:
        return ml + (np.asarray(v, dtype=float) - x0) / (x1 - x0) * pw

    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'class="chart">']
    for t in yt:
        yy = float(sy(t))
        text = f"{t * 100:,.4g}%" if pct else _tick_text(t)
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{_f(yy)}" y2="{_f(yy)}" class="grid"/>'
                   f'<text x="{ml - 6}" y="{_f(yy + 4)}" class="ax" text-anchor="end">'
                   f"{label(text)}</text>")
    xt = (_date_ticks(x0, x1) if dates else
          [(t, _tick_text(t)) for t in _nice_ticks(x0, x1, 8)])
    for t, text in xt:
        xx = float(sx(t))
        out.append(f'<line x1="{_f(xx)}" x2="{_f(xx)}" y1="{mt + ph}" y2="{mt + ph + 4}" '
                   f'class="axl"/><text x="{_f(xx)}" y="{mt + ph + 18}" class="ax" '
                   f'text-anchor="middle">{label(text)}</text>')
    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" class="frame"/>')
    if ytitle:
        out.append(f'<text transform="translate(16 {mt + ph / 2:.0f}) rotate(-90)" '
                   f'class="ax" text-anchor="middle">{label(ytitle)}'
                   f'{" (log scale)" if log else ""}</text>')
    if xtitle:
        out.append(f'<text x="{ml + pw / 2:.0f}" y="{height - 6}" class="ax" '
                   f'text-anchor="middle">{label(xtitle)}</text>')
    keys = []
    for i, p in enumerate(prepared):
        color = p.get("color") or PALETTE[i % len(PALETTE)]
        dash = f' stroke-dasharray="{p["dash"]}"' if p.get("dash") else ""
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(sx(p["x"]), sy(p["y"]), strict=True))
        tip = f"{p['name']}: last {_tick_text(p['last'])}"
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                   f'stroke-width="{p.get("width", 1.6)}"{dash} class="series">'
                   f"<title>{label(tip)}</title></polyline>")
        if legend:
            style = "dashed" if p.get("dash") else "solid"
            keys.append(f'<span class="key"><b style="border-top: 3px {style} {color}"></b>'
                        f"{label(p['name'])}</span>")
        if markers:
            out.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{color}"/>'
                       for a, b in zip(sx(p["x"]), sy(p["y"]), strict=True))
    out.append("</svg>")
    head = f'<div class="keys">{"".join(keys)}</div>' if keys else ""
    return head + "".join(out), height


def equity(curves: Any, benchmark: Any = None, *, log: bool = True) -> Figure:
    """Growth of 1 for each column of ``curves`` (DatetimeIndex x "strategy/asset"), on a
    log axis; ``benchmark`` (same index, columns named e.g. "buy-and-hold AAPL") dashed."""
    series = [{"name": c, "x": curves.index, "y": curves[c].to_numpy()} for c in curves.columns]
    if benchmark is not None:
        series += [{"name": c, "x": benchmark.index, "y": benchmark[c].to_numpy(),
                    "color": "#444", "dash": "5 4", "width": 1.4} for c in benchmark.columns]
    svg, h = _chart(series, height=420, log=log, ytitle="growth of 1 (out of sample)")
    return Figure(svg, h, len(series))


def cumulative(returns: Any, *, log: bool = True) -> Figure:
    """Cumulative out-of-sample growth of 1 per column of per-bar ``returns`` (log axis); a
    ``buy-and-hold`` column is drawn dashed."""
    growth = (1.0 + returns.fillna(0.0)).cumprod()
    series = [{"name": c, "x": growth.index, "y": growth[c].to_numpy(),
               **({"color": "#444", "dash": "5 4"} if "buy-and-hold" in str(c) else {})}
              for c in growth.columns]
    svg, h = _chart(series, height=380, log=log, ytitle="growth of 1 (out of sample)")
    return Figure(svg, h, len(series))


def evolution(history: Any) -> Figure:
    """Best, mean and median fitness per generation (DataFrame with a ``round`` column)."""
    x = history["round"] if "round" in history else history.index
    styles = {"best": {"width": 2.5}, "mean": {"dash": "6 4"}, "median": {"dash": "2 3"}}
    series = [{"name": n, "x": x, "y": history[n], **st} for n, st in styles.items()
              if n in history]
    svg, h = _chart(series, height=340, ytitle="fitness (in sample)", xtitle="generation",
                    markers=True)
    return Figure(svg, h, len(series))


def _color_for(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def weights(by_profile: dict[str, Any]) -> Figure:
    """Stacked target weights over time, one panel per profile, one colour per column."""
    import numpy as np

    colours: dict[str, str] = {}
    panels, total, n = [], 0, 0
    for df in by_profile.values():
        for c in df.columns:
            if str(c) == "other":  # the sum of the columns beyond the most held
                colours.setdefault("other", "#c7c7c7")
            else:
                colours.setdefault(str(c), _color_for(len(colours)))
    legend = "".join(f'<span class="key"><i style="background:{col}"></i>{label(c)}</span>'
                     for c, col in colours.items())
    for name, df in by_profile.items():
        height, ml, mr, mt, mb = 200, 70, 20, 22, 30
        pw, ph = _W - ml - mr, height - mt - mb
        x, dates = _xinfo(df.index)
        keep = _thin(len(x), 240)
        x = x[keep]
        vals = np.nan_to_num(df.to_numpy(dtype=float)[keep], nan=0.0)
        top = max(1.0, float(vals.clip(min=0).sum(axis=1).max()) if len(vals) else 1.0)
        x0, x1 = (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)
        if x1 == x0:
            x1 = x0 + 1

        def sx(v: Any, x0: float = x0, x1: float = x1, ml: int = ml, pw: int = pw) -> Any:
            return ml + (v - x0) / (x1 - x0) * pw

        def sy(v: Any, top: float = top, mt: int = mt, ph: int = ph) -> Any:
            return mt + ph - v / top * ph

        out = [f'<svg viewBox="0 0 {_W} {height}" width="100%" role="img" class="chart">',
               f'<text x="{ml}" y="15" class="lg"><tspan font-weight="600">{label(name)}'
               f"</tspan></text>"]
        for t in _nice_ticks(0, top, 4):
            out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{_f(sy(t))}" y2="{_f(sy(t))}" '
                       f'class="grid"/><text x="{ml - 6}" y="{_f(sy(t) + 4)}" class="ax" '
                       f'text-anchor="end">{t * 100:.0f}%</text>')
        if dates and len(x):
            for t, text in _date_ticks(x0, x1):
                out.append(f'<text x="{_f(sx(t))}" y="{height - 10}" class="ax" '
                           f'text-anchor="middle">{label(text)}</text>')
        base = np.zeros(len(x))
        step = len(x) <= 150  # each window's weights hold until the next rebalance
        if step and len(x):
            xs = np.append(np.repeat(sx(x), 2)[1:], ml + pw)
        else:
            xs = sx(x)
        for j, c in enumerate(df.columns):
            upper = base + vals[:, j].clip(min=0)
            if not upper.any() and not base.any():
                base = upper
                continue
            yu, yb = sy(upper), sy(base)
            if step:
                yu, yb = np.repeat(yu, 2), np.repeat(yb, 2)
            pts = list(zip(xs, yu, strict=True)) + list(zip(xs[::-1], yb[::-1], strict=True))
            out.append(f'<polygon points="{" ".join(f"{a:.0f},{b:.0f}" for a, b in pts)}" '
                       f'fill="{colours[str(c)]}" fill-opacity="0.85" stroke="none">'
                       f"<title>{label(f'{name}: {c}')}</title></polygon>")
            base = upper
            n += 1
        out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" class="frame"/></svg>')
        panels.append("".join(out))
        total += height
    return Figure(f'<div class="keys">{legend}</div>' + "".join(panels), total + 30, n)


def _heat(z: Any, rows: list[str], cols: list[str], *, zmax: float, rgb: tuple[int, int, int],
          text: list[list[str]] | None = None, unit: str = "", cell_h: int = 26,
          left: int = 200, col_every: int = 1, zmin: float = 0.0,
          width: int = _W) -> tuple[str, int]:
    import numpy as np

    z = np.asarray(z, dtype=float)
    top, bottom = 70, 10
    pw = width - left - 20
    cw = pw / max(1, len(cols))
    height = top + cell_h * len(rows) + bottom
    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" class="chart">']
    for j, c in enumerate(cols):
        if j % col_every == 0:
            x = left + (j + 0.5) * cw
            out.append(f'<text transform="translate({x:.1f} {top - 6}) rotate(-35)" '
                       f'class="ax">{label(c)}</text>')
    for i, r in enumerate(rows):
        y = top + i * cell_h
        out.append(f'<text x="{left - 6}" y="{y + cell_h / 2 + 4:.1f}" class="ax" '
                   f'text-anchor="end">{label(r)}</text>')
        for j, c in enumerate(cols):
            v = z[i, j]
            if v != v:
                fill = "#f5f5f5"
                a = 0.0
            else:
                span = zmax - zmin
                a = max(0.0, min(1.0, (v - zmin) / span)) if span > 0 else 0.0
                fill = "#" + "".join(f"{int(255 - (255 - k) * a):02x}" for k in rgb)
            out.append(f'<rect x="{left + j * cw:.1f}" y="{y}" width="{cw:.1f}" '
                       f'height="{cell_h}" fill="{fill}" stroke="#fff">'
                       f"<title>{label(f'{r} / {c}: {v:.3g}{unit}')}</title></rect>")
            if text is not None and text[i][j]:
                colour = "#fff" if a > 0.6 else "#1d232b"
                out.append(f'<text x="{left + (j + 0.5) * cw:.1f}" y="{y + cell_h / 2 + 4:.1f}" '
                           f'class="ax" text-anchor="middle" fill="{colour}">'
                           f"{label(text[i][j])}</text>")
    out.append("</svg>")
    return "".join(out), height


def latency(seconds: Any) -> Figure:
    """Heatmap of seconds spent per stage (rows) and component (columns)."""
    import numpy as np

    z = seconds.to_numpy(dtype=float)
    text = [[("" if v != v else f"{v:,.2f} s") for v in row] for row in z]
    zmax = float(np.nanmax(z)) if np.isfinite(z).any() else 1.0
    svg, h = _heat(z, [str(i) for i in seconds.index], [str(c) for c in seconds.columns],
                   zmax=zmax, rgb=(31, 95, 168), text=text, unit=" s", cell_h=34)
    return Figure(svg, h, int(np.isfinite(z).sum()))


def stability(block: dict[str, Any]) -> Figure:
    """Heatmap of one strategy's parameter-stability map (``TournamentResult.stability``'s
    block): rows the first important parameter's grid values, columns the second's (one
    column for a 1-D profile); darker = a higher value of the metric, from the map's minimum
    to its maximum; the chosen combo's cell is marked ●; grey: no combo with a score."""
    import numpy as np

    params, values = block.get("params") or [], block.get("values") or []
    if not params:
        return Figure("", 0, 0)
    z = np.array([[np.nan if v is None else v for v in (row if len(params) == 2 else [row])]
                  for row in block["map"]], dtype=float)
    cp = block.get("chosen_params") or {}
    rows = [f"{params[0]}={v:g}" for v in values[0]]
    cols = [f"{params[1]}={v:g}" for v in values[1]] if len(params) == 2 else [block["metric"]]
    text = []
    for i, v1 in enumerate(values[0]):
        line = []
        for j in range(z.shape[1]):
            hit = cp.get(params[0]) == v1 and (len(params) == 1
                                               or cp.get(params[1]) == values[1][j])
            cell = "" if z[i, j] != z[i, j] else f"{z[i, j]:.2f}"
            line.append(("● " if hit else "") + cell)
        text.append(line)
    fin = z[np.isfinite(z)]
    lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
    svg, h = _heat(z, rows, cols, zmin=lo, zmax=hi, rgb=(31, 95, 168), text=text,
                   cell_h=24, left=150, width=700)
    svg = svg.replace('width="100%"', 'width="100%" style="max-width:700px"', 1)
    return Figure(svg, h, int(fin.size))


def utilisation(busy: Any) -> Figure:
    """Busy fraction per worker (rows) and time bin (columns, seconds from the start), 0..1."""
    cols = [f"{float(c):,.0f} s" if isinstance(c, (int, float)) else str(c)
            for c in busy.columns]
    every = max(1, len(cols) // 12)
    svg, h = _heat(busy.to_numpy(dtype=float), [str(i) for i in busy.index], cols, zmax=1.0,
                   rgb=(44, 160, 44), cell_h=20, col_every=every)
    return Figure(svg, h, busy.size)


def cost(what_if: Any) -> Figure:
    """Wall time and simulated cost against the number of nodes (a what-if table), side by
    side; the local run (``nodes`` 0) is left out."""
    df = what_if[what_if["nodes"] > 0] if "nodes" in what_if else what_if
    parts, n = [], 0
    for col, title in (("wall_s", "wall time (s)"), ("cost_usd", "simulated cost (USD)")):
        if col in df:
            svg, _ = _chart([{"name": title, "x": df["nodes"], "y": df[col]}], height=300,
                            width=590, ytitle=title, xtitle="nodes", legend=False,
                            markers=True)
            parts.append(f'<div class="half">{svg}</div>')
            n += 1
    return Figure(f'<div class="pair">{"".join(parts)}</div>', 300, n)


def losses(breakdown: dict[str, float], ideal_s: float | None = None) -> Figure:
    """Horizontal bars: where the time between ideal and actual wall time went (seconds)."""
    names = list(breakdown)
    vals = [max(0.0, float(breakdown[k])) for k in names]
    left, bar = 160, 26
    height = 40 + bar * len(names) + 30
    top = max(vals) if vals and max(vals) > 0 else 1.0
    pw = _W - left - 120
    out = [f'<svg viewBox="0 0 {_W} {height}" width="100%" role="img" class="chart">']
    for i, (k, v) in enumerate(zip(names, vals, strict=True)):
        y = 20 + i * bar
        w = v / top * pw
        out.append(f'<text x="{left - 8}" y="{y + bar / 2 + 4:.0f}" class="ax" '
                   f'text-anchor="end">{label(k)}</text><rect x="{left}" y="{y + 3}" '
                   f'width="{w:.1f}" height="{bar - 6}" fill="#d62728"><title>'
                   f"{label(f'{k}: {v:.3f} s')}</title></rect><text x=\"{left + w + 6:.1f}\" "
                   f'y="{y + bar / 2 + 4:.0f}" class="ax">{v:,.3g} s</text>')
    xt = "seconds lost against ideal scaling" + (
        f" (ideal wall {ideal_s:,.2f} s)" if ideal_s is not None else "")
    out.append(f'<text x="{left}" y="{height - 8}" class="ax">{label(xt)}</text></svg>')
    return Figure("".join(out), height, len(names))
