"""Build the run report: ``RunView`` (what a run produced) in, one self-contained HTML file out.

The file embeds plotly.js once, inline; it loads no fonts, images or scripts from anywhere,
so it opens offline from disk. Every part of a ``RunView`` except ``run_id`` is optional; a
missing part renders as a section that says "Not part of this run."
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from quantfleet.errors import QuantfleetError
from quantfleet.report.view import _FRAME_PARTS, RunView, _check_frame

if TYPE_CHECKING:  # pandas only when a report is built
    import pandas as pd

__all__ = [
    "ABSENT",
    "SECTIONS",
    "build",
    "esc",
    "fmt",
    "frame_rows",
    "kv_table",
    "table",
]

#: Section ids in page order, with their headings. The ids are stable: links and tests use them.
SECTIONS: dict[str, str] = {
    "summary": "Summary",
    "lineage": "Lineage",
    "leaderboard": "Leaderboard",
    "equity": "Equity curves of the winners",
    "evolution": "Evolution",
    "portfolio": "Portfolio",
    "latency": "Where the time went",
    "utilisation": "Worker utilisation",
    "cost": "Cost",
    "speedup": "Speed-up",
}

ABSENT = "Not part of this run."

# Same thresholds as quantfleet.research.overfit (a test pins them); duplicated so that
# rendering a report does not import the research layer.
DSR_GOOD, DSR_LUCK, PBO_GOOD, PBO_BAD = 0.95, 0.5, 0.25, 0.5

# -- formatting ------------------------------------------------------------------------------


def esc(v: Any) -> str:
    """HTML-escape any value's text."""
    return html.escape(str(v), quote=True)


_PCT_WORDS = ("return", "drawdown", "cagr", "volatility", "weight", "efficiency", "busy",
              "fraction", "turnover_pct")


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN, NaT
    except (TypeError, ValueError):
        return False


def fmt(v: Any, column: str = "") -> str:
    """Plain text for a table cell; numbers formatted by what the column holds."""
    if _is_missing(v):
        return "—"
    if type(v).__name__ == "datetime64":
        import pandas as pd

        v = pd.Timestamp(v)
    elif hasattr(v, "item") and not hasattr(v, "isoformat"):
        v = v.item()
    col = column.lower()
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "∞" if v > 0 else "−∞"
        if any(w in col for w in _PCT_WORDS):
            return f"{v * 100:,.2f}%"
        if "usd" in col or col.startswith("cost"):
            return f"${v:,.2f}"
        if v != 0 and abs(v) < 0.01:
            return f"{v:.2g}"
        return f"{v:,.2f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, _dt.datetime):
        if (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0):
            return v.date().isoformat()
        return v.strftime("%Y-%m-%d %H:%M:%S") + (f" {v.tzname()}" if v.tzinfo else "")
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x, str(k))}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    return str(v)


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or (
        hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iuf")


def _grade(column: str, v: Any) -> str:
    """CSS class for DSR/PBO cells: good / warn / bad (same thresholds as research.overfit)."""
    if _is_missing(v) or not _numeric(v):
        return ""
    x = float(v)
    column = column.removeprefix("pair_")  # a tournament pair's own DSR/PBO: same thresholds
    if column == "dsr":
        return "good" if x >= DSR_GOOD else "warn" if x >= DSR_LUCK else "bad"
    if column == "pbo":
        return "good" if x <= PBO_GOOD else "warn" if x <= PBO_BAD else "bad"
    return ""


_GRADE_WORDS = {("dsr", "good"): "unlikely to be luck", ("dsr", "warn"): "inconclusive",
                ("dsr", "bad"): "likely luck", ("pbo", "good"): "holds up out of sample",
                ("pbo", "warn"): "some overfitting", ("pbo", "bad"): "likely overfit"}


def table(rows: list[dict], columns: list[str] | None = None, *, caption: str | None = None,
          graded: tuple[str, ...] = ()) -> str:
    """An HTML table of ``rows``; numeric cells right-aligned, DSR/PBO cells graded."""
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    out = ['<div class="scroll"><table>']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr></thead>")
    out.append("<tbody>")
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            cls = ["num"] if _numeric(v) else []
            title = ""
            g = _grade(c.lower(), v) if c.lower() in graded else ""
            if g:
                cls.append(g)
                title = (' title="'
                         f'{esc(_GRADE_WORDS[(c.lower().removeprefix("pair_"), g)])}"')
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{attr}{title}>{esc(fmt(v, c))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def kv_table(d: dict, *, skip: tuple[str, ...] = ()) -> str:
    """A two-column key/value table; nested dicts become nested tables."""
    rows = []
    for k, v in d.items():
        if k in skip:
            continue
        if isinstance(v, dict) and v:
            cell = kv_table(v)
        else:
            cell = esc(fmt(v, str(k)))
        cls = ' class="num"' if _numeric(v) else ""
        rows.append(f"<tr><th>{esc(k)}</th><td{cls}>{cell}</td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def frame_rows(df: pd.DataFrame, *, index: str | None = None) -> tuple[list[dict], list[str]]:
    """Rows and column order of a DataFrame; a named or labelled index becomes a column."""
    cols = [str(c) for c in df.columns]
    rows = [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]
    import pandas as pd

    plain = isinstance(df.index, pd.RangeIndex) and df.index.name is None
    if not plain:
        idx_name = index or (str(df.index.name) if df.index.name is not None else "index")
        if idx_name in cols:
            return rows, cols
        for r, i in zip(rows, df.index, strict=True):
            r[idx_name] = i
        cols = [idx_name, *cols]
    return rows, cols


def _present(v: Any) -> bool:
    if v is None:
        return False
    if hasattr(v, "empty"):
        return not v.empty
    return bool(v)


# -- figures ---------------------------------------------------------------------------------


class _Figures:
    """Turns plotly figures into <div>s; plotly.js itself goes once into the page head."""

    CONFIG = {"displaylogo": False, "responsive": True,
              "modeBarButtonsToRemove": ["sendDataToCloud", "lasso2d", "select2d"]}

    def __init__(self) -> None:
        self.n = 0

    def div(self, fig: Any, name: str) -> str:
        import plotly.io as pio

        self.n += 1
        height = fig.layout.height or 420
        return ('<div class="figure">'
                + pio.to_html(fig, full_html=False, include_plotlyjs=False,
                              div_id=f"fig-{name}-{self.n}", default_height=f"{height}px",
                              default_width="100%", config=self.CONFIG, validate=False)
                + "</div>")


# -- sections --------------------------------------------------------------------------------

_SUMMARY_KEYS = ("name", "status", "created", "finished", "executor", "workers", "data_source",
                 "store_url", "code_version")


def _parse_time(v: Any) -> _dt.datetime | None:
    if isinstance(v, _dt.datetime):
        return v
    if isinstance(v, str):
        try:
            return _dt.datetime.fromisoformat(v)
        except ValueError:
            return None
    return None


def _summary(view: RunView, figs: _Figures) -> str:
    s = dict(view.summary or {})
    if not s:
        return ""
    ordered = {"run_id": view.run_id}
    ordered.update({k: s[k] for k in _SUMMARY_KEYS if k in s})
    for k in ("created", "finished"):
        if isinstance(ordered.get(k), str) and _parse_time(ordered[k]):
            ordered[k] = _parse_time(ordered[k])
    ordered.update({k: v for k, v in s.items() if k not in ordered and k != "config"})
    t0, t1 = _parse_time(s.get("created")), _parse_time(s.get("finished"))
    if t0 and t1 and "duration" not in ordered:
        try:
            ordered["duration"] = _duration((t1 - t0).total_seconds())
        except TypeError:  # naive vs aware
            pass
    status = str(s.get("status", "")).lower()
    badge = ""
    if status:
        kind = ("good" if status in ("completed", "succeeded", "success", "done", "ok")
                else "bad" if status in ("failed", "crashed", "error", "cancelled") else "warn")
        badge = f'<p><span class="badge {kind}">{esc(s["status"])}</span></p>'
    out = [badge, kv_table(ordered)]
    cfg = s.get("config")
    if isinstance(cfg, dict) and cfg:
        out.append("<h3>Configuration</h3>" + kv_table(cfg))
    elif cfg:
        out.append(f"<h3>Configuration</h3><pre>{esc(cfg)}</pre>")
    return "".join(out)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s" if m else \
        f"{seconds:.1f} s"


def _hash_cell(h: Any, producer: str | None) -> str:
    text = str(h)
    short = text[:12] + ("…" if len(text) > 12 else "")
    src = f' <span class="muted">← {esc(producer)}</span>' if producer else ""
    return f'<code title="{esc(text)}">{esc(short)}</code>{src}'


def _lineage(view: RunView, figs: _Figures) -> str:
    steps = [s for s in (view.lineage or []) if isinstance(s, dict)]
    if not steps:
        return ""
    produced: dict[str, str] = {}
    for s in steps:
        for h in (s.get("outputs") or {}).values():
            produced.setdefault(str(h), str(s.get("step", "?")))
    rows = []
    for s in steps:
        step = str(s.get("step", "?"))

        def refs(d: Any, linked: bool, step: str = step) -> str:
            if not isinstance(d, dict) or not d:
                return '<span class="muted">—</span>'
            items = []
            for name, h in d.items():
                src = produced.get(str(h)) if linked else None
                items.append(f"<li>{esc(name)}: {_hash_cell(h, src if src != step else None)}"
                             "</li>")
            return "<ul class=\"refs\">" + "".join(items) + "</ul>"

        settings = s.get("settings")
        st = (esc(fmt(settings)) if settings not in (None, {}, []) else
              '<span class="muted">—</span>')
        rows.append(f"<tr><th>{esc(step)}</th><td>{refs(s.get('inputs'), True)}</td>"
                    f"<td>{refs(s.get('outputs'), False)}</td><td>{st}</td></tr>")
    return ('<p class="note">Artifacts are content-addressed: a hash names exact bytes; '
            '"← step" marks an input produced earlier in this run.</p>'
            '<div class="scroll"><table><thead><tr><th>step</th><th>inputs</th>'
            "<th>outputs</th><th>settings</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div>")


def _leaderboard(view: RunView, figs: _Figures, max_rows: int = 100) -> str:
    parts = []
    lb = view.leaderboard
    if _present(lb):
        rows, cols = frame_rows(lb)
        shown = rows[:max_rows]
        caption = (f"Top {len(shown)} of {len(rows)} rows" if len(rows) > len(shown)
                   else f"{len(rows)} rows")
        note = " — best first; DSR ≥ 0.95 and PBO ≤ 0.25 are green, DSR < 0.5 and PBO > 0.5 red"
        if "pair_dsr" in cols:
            note += ("; pair_dsr / pair_pbo judge each pair's walk-forward pick among its own "
                     "combos, not the winner among all rows (the verdict below)")
        if "bh_sharpe" in cols:
            note += ("; bh_ = buy-and-hold of the row's asset over the same bars, excess_ = the "
                     "row minus it")
        parts.append(table(shown, cols, caption=caption + note,
                           graded=("dsr", "pbo", "pair_dsr", "pair_pbo")))
    if _present(view.overfit):
        of = dict(view.overfit)
        lines = of.pop("verdict", None)
        if isinstance(lines, str):
            lines = [ln for chunk in lines.split("; ") for ln in chunk.splitlines() if ln]
        block = ['<div class="verdict"><h3>Overfitting verdict</h3>']
        if lines:
            block.append("<ul>" + "".join(f"<li>{esc(ln)}</li>" for ln in lines) + "</ul>")
        if of:
            block.append(kv_table(of))
        block.append("</div>")
        parts.append("".join(block))
    return "".join(parts)


def _equity(view: RunView, figs: _Figures, top: int = 5) -> str:
    r = view.oos_returns
    if not _present(r):
        return ""
    cols = [str(c) for c in r.columns]
    r = r.set_axis(cols, axis=1)
    chosen: list[str] = []
    lb = view.leaderboard
    if _present(lb) and "strategy" in lb.columns:
        for _, row in lb.iterrows():
            key = (f"{row['strategy']}/{row['asset']}" if "asset" in lb.columns
                   else str(row["strategy"]))
            if key in cols and key not in chosen:
                chosen.append(key)
            if len(chosen) == top:
                break
    how = "the top of the leaderboard"
    if not chosen:
        total = (1.0 + r.fillna(0.0)).prod()
        chosen = [str(c) for c in total.sort_values(ascending=False).index[:top]]
        how = "highest out-of-sample total return (no leaderboard match)"
    curves = (1.0 + r[chosen].fillna(0.0)).cumprod()
    from quantfleet.report import plots

    last = curves.iloc[-1]
    rows = [{"strategy/asset": c, "final growth of 1": float(last[c]),
             "total_return": float(last[c]) - 1.0} for c in chosen]
    return (f'<p class="note">{len(chosen)} of {len(cols)} out-of-sample return series, '
            f"chosen by {esc(how)}; growth of 1 with returns compounded per bar.</p>"
            + figs.div(plots.equity(curves), "equity") + table(rows))


def _evolution(view: RunView, figs: _Figures) -> str:
    import pandas as pd

    from quantfleet.report import plots

    parts = []
    hist = [h for h in (view.evolution_history or []) if isinstance(h, dict)]
    if hist:
        df = pd.DataFrame(hist)
        if "round" not in df:
            df["round"] = range(len(df))
        parts.append(figs.div(plots.evolution(df), "evolution"))
        totals = {}
        for k in ("evaluated", "failed", "wall_s"):
            if k in df:
                totals[k] = df[k].sum()
        if "best" in df:
            totals["best fitness"] = float(df["best"].max())
        totals["generations"] = len(df)
        parts.append(kv_table(totals))
        parts.append("<details><summary>Per generation</summary>" + table(hist) + "</details>")
    winners = [w for w in (view.evolution_winners or []) if isinstance(w, dict)]
    if winners:
        parts.append("<h3>Winners: in sample vs out of sample</h3>" + table(winners))
    return "".join(parts)


def _portfolio(view: RunView, figs: _Figures) -> str:
    from quantfleet.report import plots

    parts = []
    for note in view.portfolio_notes or []:
        parts.append(f'<p class="note">{esc(note)}</p>')
    pw = {str(k): _top_weights(v) for k, v in (view.portfolio_weights or {}).items()
          if _present(v)}
    if pw:
        parts.append("<h3>Weights over time</h3><p class=\"note\">Target weights at each "
                     "rebalance (window start), stacked; one panel per profile; columns never "
                     f"held are left out, beyond the {_MAX_WEIGHT_SERIES} most held the rest are "
                     "summed as 'other'.</p>" + figs.div(plots.weights(pw), "weights"))
    if _present(view.portfolio_metrics):
        rows, cols = frame_rows(view.portfolio_metrics, index="profile")
        parts.append("<h3>Out-of-sample metrics per profile</h3><p class=\"note\">bh_*: "
                     "buy-and-hold over the same bars; excess_*: the profile minus it.</p>"
                     + table(rows, cols))
    if _present(view.portfolio_members):
        rows, cols = frame_rows(view.portfolio_members)
        parts.append("<details><summary>Members: windows each column was chosen in</summary>"
                     + table(rows, cols) + "</details>")
    if _present(view.portfolio_returns):
        r = view.portfolio_returns.set_axis([str(c) for c in view.portfolio_returns.columns],
                                            axis=1)
        parts.append("<h3>Cumulative out-of-sample returns</h3>"
                     + figs.div(plots.cumulative(r), "portfolio-returns"))
    return "".join(parts)


_MAX_WEIGHT_SERIES = 20
"""Most columns drawn per profile in the weights plot; the rest are summed as 'other'."""


def _top_weights(w: pd.DataFrame) -> pd.DataFrame:
    """The columns a profile ever held, the most held first; beyond _MAX_WEIGHT_SERIES the
    rest summed into one 'other' column."""
    held = w.loc[:, (w.fillna(0.0) != 0.0).any(axis=0)]
    if held.shape[1] <= _MAX_WEIGHT_SERIES:
        return held
    order = held.fillna(0.0).mean(axis=0).sort_values(ascending=False, kind="stable").index
    top = held[order[:_MAX_WEIGHT_SERIES]]
    return top.assign(other=held[order[_MAX_WEIGHT_SERIES:]].sum(axis=1))


def _latency(view: RunView, figs: _Figures) -> str:
    from quantfleet.report import plots

    parts = []
    hm = view.heatmap
    if _present(hm):
        import numpy as np

        total = float(np.nansum(hm.to_numpy(dtype=float)))
        parts.append(f'<p class="note">Seconds per stage and component, summed over all '
                     f"tasks ({esc(fmt(total))} s of work in total).</p>"
                     + figs.div(plots.latency(hm), "latency"))
    bn = [b for b in (view.bottlenecks or []) if isinstance(b, dict)]
    if bn:
        cards = "".join(
            f'<div class="card"><div class="card-title">{esc(b.get("title", ""))}</div>'
            f'<div class="card-value">{esc(fmt(b.get("value")))}</div>'
            f'<div class="card-text">{esc(b.get("text", ""))}</div></div>' for b in bn)
        parts.append(f'<h3>Bottlenecks</h3><div class="cards">{cards}</div>')
    return "".join(parts)


def _utilisation(view: RunView, figs: _Figures) -> str:
    from quantfleet.report import plots

    u = view.utilisation
    if not _present(u):
        return ""
    vals = u.to_numpy(dtype=float)
    mean = float(vals[vals == vals].mean()) if (vals == vals).any() else float("nan")
    per_worker = u.mean(axis=1, skipna=True)
    rows = [{"worker": str(w), "mean busy": float(v)} for w, v in per_worker.items()]
    return (f'<p class="note">Busy fraction of each worker per time bin; the run kept its '
            f"workers {esc(fmt(mean, 'busy'))} busy on average.</p>"
            + figs.div(plots.utilisation(u), "utilisation")
            + "<details><summary>Mean per worker</summary>" + table(rows) + "</details>")


def _cost(view: RunView, figs: _Figures) -> str:
    from quantfleet.report import plots

    parts = []
    wi = view.cost_what_if
    if _present(wi):
        rows, cols = frame_rows(wi)
        parts.append("<h3>What if the run used more machines</h3>" + table(rows, cols))
        if "nodes" in wi.columns and ({"wall_s", "cost_usd"} & set(wi.columns)):
            parts.append(figs.div(plots.cost(wi), "cost"))
    if _present(view.break_even):
        be = dict(view.break_even)
        text = be.pop("text", None)
        parts.append("<h3>Break-even</h3>" + (f"<p>{esc(text)}</p>" if text else "")
                     + kv_table(be))
    return "".join(parts)


def _speedup(view: RunView, figs: _Figures) -> str:
    """The speed-up section, from ``view.speedup`` (the keys of
    ``observe.speedup.explain_speedup`` plus ``scope``): a headline that names the baseline's
    kind and the efficiency, or says why there is no valid speedup; the figures, each
    labelled with its unit; the efficiency loss by cause."""
    from quantfleet.report import plots

    sp = view.speedup
    if not _present(sp):
        return ""
    sp = dict(sp)

    def num(k: str) -> float | None:
        v = sp.get(k)
        return float(v) if _numeric(v) and math.isfinite(float(v)) else None

    w, serial, wall = num("workers"), num("serial_s"), num("wall_s")
    s, eff = num("speedup"), num("efficiency")
    if eff is None and s is not None and w:
        eff = s / w
    kind = str(sp.get("baseline_label") or "none")
    scope = str(sp.get("scope") or "run")
    valid = sp.get("valid", s is not None) and s is not None and eff is not None
    parts = []
    if valid and w is not None:
        parts.append(f'<p class="headline">{esc(scope)}: {s:.2f}× faster than its sequential '
                     f"baseline ({esc(kind)}) on {w:.0f} workers — efficiency {eff:.0%} "
                     f"(ideal {w:.0f}×, 100%).</p>")
    elif serial is not None:
        why = sp.get("invalid_reason") or "the baseline gives no finite ratio"
        parts.append(f'<p class="headline">{esc(scope)}: no valid speedup — {esc(why)}.</p>')
    else:
        parts.append(f'<p class="headline">{esc(scope)}: no sequential baseline was measured '
                     f"(opt in with --baseline or [baseline] enabled).</p>")
    rows: dict[str, str] = {"scope": scope, "baseline kind": kind}
    if serial is not None:
        rows["serial time (baseline)"] = f"{serial:,.2f} s"
    if wall is not None:
        rows["parallel wall time"] = f"{wall:,.2f} s"
    if w is not None:
        rows["workers"] = f"{w:.0f}"
    rows["speedup (serial / wall)"] = f"{s:.2f}×" if valid else "invalid (not shown)"
    rows["parallel efficiency (speedup / workers)"] = f"{eff:.0%}" if valid else "—"
    if not valid and num("ratio") is not None:
        rows["serial / wall ratio (not a speedup)"] = f"{num('ratio'):.2f}×"
    for k, label in (("busy_s", "busy worker-seconds"), ("work_s", "task worker-seconds"),
                     ("capacity_s", "capacity (workers × wall), worker-seconds")):
        if num(k) is not None:
            rows[label] = f"{num(k):,.2f} s"
    parts.append(kv_table(rows))
    text, notes = sp.get("text"), sp.get("notes")
    if text:
        parts.append(f"<p>{esc(text)}</p>")
    if notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    loss_seconds = sp.get("loss_seconds")
    losses = None
    if valid and isinstance(loss_seconds, dict) and w is not None and w > 0:
        # worker-seconds over W workers: wall seconds lost against ideal scaling
        losses = {k: float(v) / w for k, v in loss_seconds.items() if _numeric(v)}
    if losses:
        ideal = serial / w if serial is not None and w else None
        parts.append("<h3>Where the speed-up was lost</h3>"
                     + figs.div(plots.losses({str(k): float(v) for k, v in losses.items()},
                                             ideal), "speedup"))
    return "".join(parts)


_RENDER: dict[str, Callable[[RunView, _Figures], str]] = {
    "summary": _summary, "lineage": _lineage, "leaderboard": _leaderboard, "equity": _equity,
    "evolution": _evolution, "portfolio": _portfolio, "latency": _latency,
    "utilisation": _utilisation, "cost": _cost, "speedup": _speedup,
}


def _template() -> Template:
    from importlib.resources import files

    return Template(files("quantfleet.report").joinpath("template.html")
                    .read_text(encoding="utf-8"))


def build(view: RunView, path: str | Path, *, top: int = 5) -> Path:
    """Write the run report of ``view`` as one self-contained HTML file.

    Parameters
    ----------
    view : RunView
        What the run produced; missing parts render as "Not part of this run."
    path : str or Path
        The HTML file to write, or an existing directory (the file is then
        ``<dir>/report.html``). Parent directories are created.
    top : int
        How many leaderboard rows get an equity curve.

    Returns
    -------
    Path
        The file written.
    """
    if not isinstance(view, RunView):
        raise TypeError(f"build needs a RunView (got {type(view).__name__}); "
                        "e.g. RunView(run_id='...', leaderboard=df)")
    if not isinstance(top, int) or top < 1:
        raise QuantfleetError(f"top must be a positive int (got {top!r}); e.g. 5")
    for name in _FRAME_PARTS:
        if getattr(view, name) is not None:
            _check_frame(getattr(view, name), name)
    out = Path(path)
    if out.is_dir():
        out = out / "report.html"
    figs = _Figures()
    sections = []
    for sid, heading in SECTIONS.items():
        render = _RENDER[sid]
        try:
            body = render(view, figs, top=top) if sid == "equity" else render(view, figs)
        except Exception as e:  # one bad part must not cost the whole report
            warnings.warn(f"report section {sid!r} could not be rendered: {e!r}",
                          stacklevel=2)
            body = (f'<p class="error">Could not render this section: '
                    f"{esc(type(e).__name__)}: {esc(e)}</p>")
        if not body:
            body = f'<p class="absent">{ABSENT}</p>'
        sections.append(f'<section id="{sid}"><h2>{esc(heading)}</h2>{body}</section>')
    plotlyjs = ""
    if figs.n:
        from plotly.offline import get_plotlyjs

        plotlyjs = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    name = (view.summary or {}).get("name")
    title = f"quantfleet run {view.run_id}" + (f" — {name}" if name else "")
    nav = "".join(f'<a href="#{sid}">{esc(h)}</a>' for sid, h in SECTIONS.items())
    page = _template().substitute(
        title=esc(title), run_id=esc(view.run_id), nav=nav, body="\n".join(sections),
        plotlyjs=plotlyjs,
        footer=(f"{figs.n} figures &middot; plotly.js embedded inline" if figs.n
                else "no figures"),
        generated=esc(_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
