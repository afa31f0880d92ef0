"""Build the run report: ``RunView`` (what a run produced) in, one self-contained HTML file out.

Figures are inline SVG (``report.plots``); the page has no scripts and loads no fonts, images
or styles from anywhere, so it opens offline from disk and stays small. Every part of a ``RunView`` except ``run_id`` is optional; a
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
    "cost_label",
    "esc",
    "fmt",
    "frame_rows",
    "kv_table",
    "table",
]

#: Section ids in page order, with their headings. The ids are stable: links and tests use them.
SECTIONS: dict[str, str] = {
    "verdict": "Verdict",
    "leaderboard": "Leaderboard",
    "equity": "Equity curves of the winners",
    "portfolio": "Portfolio",
    "evolution": "Evolution",
    "speedup": "Speed-up",
    "cost": "Simulated cost",
    "latency": "Where the time went",
    "utilisation": "Worker utilisation",
    "summary": "Run and configuration",
    "lineage": "Lineage",
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
              "fraction", "turnover_pct", "share")
# fractions of capital whose names would otherwise read as dollars or plain numbers
_PCT_EXACT = ("costs", "loss", "exposure", "win_rate")


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
        if col.endswith("_s") or col.endswith(" (s)"):  # seconds, whatever else the name says
            return f"{v:,.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"
        if (any(col == w or col.endswith("_" + w) for w in _PCT_EXACT)
                or any(w in col for w in _PCT_WORDS)):
            return f"{v * 100:,.2f}%"
        if "usd" in col or col.startswith("cost"):
            # cents hide a simulated cost of a fraction of a cent: two significant digits
            return f"${v:,.2f}" if abs(v) >= 1 or v == 0 else f"${v:.2g}"
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
    if column == "plateau_drop":  # research.stability: above CLIFF_DROP, a spike on a cliff
        from quantfleet.research.stability import CLIFF_DROP

        return "good" if x <= CLIFF_DROP else "bad"
    if column == "dsr":
        return "good" if x >= DSR_GOOD else "warn" if x >= DSR_LUCK else "bad"
    if column == "pbo":
        return "good" if x <= PBO_GOOD else "warn" if x <= PBO_BAD else "bad"
    return ""


_GRADE_WORDS = {("dsr", "good"): "unlikely to be luck", ("dsr", "warn"): "inconclusive",
                ("dsr", "bad"): "likely luck", ("pbo", "good"): "holds up out of sample",
                ("pbo", "warn"): "some overfitting", ("pbo", "bad"): "likely overfit",
                ("plateau_drop", "good"): "a plateau: its grid neighbours do about as well",
                ("plateau_drop", "bad"): "a spike on a cliff edge: its grid neighbours do worse"}


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
    """Turns figures (inline SVG, see ``report.plots``) into numbered ``<div>``s."""

    def __init__(self) -> None:
        self.n = 0

    def div(self, fig: Any, name: str) -> str:
        self.n += 1
        return (f'<div class="figure" id="fig-{esc(name)}-{self.n}" '
                f'data-series="{int(getattr(fig, "series", 0))}">{fig.svg}</div>')


class _NoFigures(_Figures):
    """Draws nothing: for a section rendered again in brief (the first screen)."""

    def div(self, fig: Any, name: str) -> str:
        return ""


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


def _words(kind: str, v: Any) -> str:
    """A DSR or PBO figure in words (the thresholds of research.overfit)."""
    g = _grade(kind, v)
    return _GRADE_WORDS[(kind, g)] if g else "n/a"


def _pct(v: Any) -> str:
    return fmt(v, "return") if _numeric(v) else "n/a"


def _num(v: Any) -> str:
    return fmt(float(v)) if _numeric(v) and not _is_missing(v) else "n/a"


def _signed(v: Any) -> str:
    return f"{float(v):+,.2f}" if _numeric(v) and not _is_missing(v) else "n/a"


def _winner_html(view: RunView) -> str:
    lb = view.leaderboard
    if not _present(lb) or "strategy" not in lb.columns:
        return "<p class=\"absent\">No leaderboard in this run.</p>"
    top = lb.iloc[0]
    name = f"{top['strategy']}/{top['asset']}" if "asset" in lb.columns else str(top["strategy"])
    sharpe = next((top[c] for c in ("oos_sharpe", "sharpe") if c in lb.columns), None)
    bh = top.get("bh_sharpe")
    what = ("out-of-sample Sharpe" if "oos_sharpe" in lb.columns
            else "Sharpe (in sample: a sweep has no out-of-sample test)")
    out = [f'<p class="big" id="winner">Winner: <b>{esc(name)}</b> — {esc(what)} '
           f'<b class="fig">{esc(_num(sharpe))}</b> vs buy-and-hold '
           f'<b class="fig" id="bh">{esc(_num(bh))}</b>'
           + (f" (excess {esc(_signed(float(sharpe) - float(bh)))})"
              if _numeric(sharpe) and _numeric(bh) and not _is_missing(bh) else "") + "</p>"]
    if "oos_total_return" in lb.columns:
        out.append(f'<p class="note">Total return out of sample {esc(_pct(top["oos_total_return"]))}'
                   + (f" vs {esc(_pct(top['bh_total_return']))} buy-and-hold of "
                      f"{esc(top['asset'])} over the same bars" if "bh_total_return" in lb.columns
                      else "") + "; "
                   + f"{len(lb):,} strategy × asset rows ranked.</p>")
    of = view.overfit or {}
    dsr, pbo, n = of.get("winner DSR", of.get("dsr")), of.get("PBO", of.get("pbo")), \
        of.get("trials compared (N)", of.get("n_trials"))
    if _numeric(dsr) or _numeric(pbo):
        bits = []
        if _numeric(dsr):
            bits.append(f'<span class="{_grade("dsr", dsr)}">DSR {esc(_num(dsr))}: '
                        f"{esc(_words('dsr', dsr))}</span>"
                        + (f" as the best of {esc(fmt(n))} trials" if _numeric(n) else ""))
        if _numeric(pbo):
            bits.append(f'<span class="{_grade("pbo", pbo)}">PBO {esc(_num(pbo))}: '
                        f"{esc(_words('pbo', pbo))}</span>")
        out.append('<p id="overfit-words">Overfitting: ' + "; ".join(bits) + ".</p>")
    return "".join(out)


def _profiles_html(view: RunView) -> str:
    pm = view.portfolio_metrics
    if not _present(pm):
        return ""
    df = pm.set_index("profile") if "profile" in pm.columns else pm
    ew = df.loc["equal_weight"] if "equal_weight" in df.index else None
    rows = []
    for prof, r in df.iterrows():
        rows.append({"profile": str(prof), "OOS Sharpe": r.get("sharpe"),
                     "vs equal weight": (float(r["sharpe"]) - float(ew["sharpe"]))
                     if ew is not None and _numeric(r.get("sharpe")) else None,
                     "total return": r.get("total_return"), "max drawdown": r.get("max_drawdown")})
    if "bh_sharpe" in df.columns:
        first = df.iloc[0]
        dd = None
        pr = view.portfolio_returns
        if _present(pr) and "buy-and-hold" in pr.columns:
            eq = (1.0 + pr["buy-and-hold"].fillna(0.0)).cumprod()
            dd = float((1.0 - eq / eq.cummax()).max())
        rows.append({"profile": "buy-and-hold", "OOS Sharpe": first.get("bh_sharpe"),
                     "vs equal weight": (float(first["bh_sharpe"]) - float(ew["sharpe"]))
                     if ew is not None and _numeric(first.get("bh_sharpe")) else None,
                     "total return": first.get("bh_total_return"), "max drawdown": dd})
    bh_note = next((n for n in (view.portfolio_notes or []) if "buy-and-hold" in n.lower()),
                   "buy-and-hold over the same bars")
    body = []
    for r in rows:
        cls = (f' class="bh" title="{esc(bh_note)}"' if r["profile"] == "buy-and-hold"
               else "")
        body.append(f"<tr{cls}><th>{esc(r['profile'])}</th>"
                    f'<td class="num">{esc(_num(r["OOS Sharpe"]))}</td>'
                    f'<td class="num">{esc(_signed(r["vs equal weight"]))}</td>'
                    f'<td class="num">{esc(_pct(r["total return"]))}</td>'
                    f'<td class="num">{esc(_pct(r["max drawdown"]))}</td></tr>')
    return ('<table class="compact" id="profiles"><thead><tr><th>portfolio profile</th>'
            "<th>OOS Sharpe</th><th>Sharpe − equal weight</th><th>total return</th>"
            "<th>max drawdown</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def cost_label(info: dict | None) -> str:
    """'simulated from <catalog> of <date>, approximate list prices' (+ the assumptions)."""
    if not info:
        return ("simulated from a price catalog of unknown date (recorded before cost labels); "
                "approximate list prices")
    return str(info.get("label") or "")


def _cost_brief(view: RunView) -> str:
    wi = view.cost_what_if
    if not _present(wi) or "cost_usd" not in wi.columns:
        return '<p class="absent">n/a: no executor task was timed in this run.</p>'
    rows = wi[wi["nodes"] > 0] if "nodes" in wi.columns else wi
    if not len(rows):
        return '<p class="absent">n/a</p>'
    first = rows.iloc[0]
    be = view.break_even or {}
    price = (f", {fmt(float(first['usd_per_h']), 'usd_per_h')}/h"
             if _numeric(first.get("usd_per_h")) else "")
    setup = first.get("setup")
    if not isinstance(setup, str) or not setup:
        setup = " × ".join(str(first[c]) for c in ("nodes", "instance") if c in rows.columns)
    wall = (f": {fmt(float(first['wall_s']))} s wall" if _numeric(first.get("wall_s"))
            else "")
    out = [f'<p><b class="fig">{esc(fmt(float(first["cost_usd"]), "cost_usd"))}</b> on '
           f"{esc(setup)}{esc(price)}{esc(wall)}</p>"]
    best = be.get("best_nodes")
    if best is not None and "nodes" in rows.columns and (rows["nodes"] == best).any():
        b = rows[rows["nodes"] == best].iloc[0]
        out.append(f"<p>Most time saved per dollar: {esc(best)} node(s), "
                   f"{esc(fmt(float(b['wall_s'])))} s, {esc(fmt(float(b['cost_usd']), 'cost_usd'))}"
                   "</p>")
    elif "best_nodes" in be:
        out.append("<p>No node count is faster than the local run.</p>")
    out.append(f'<p class="label">{esc(cost_label(view.cost_assumptions))}</p>')
    return "".join(out)


def _verdict(view: RunView, figs: _Figures) -> str:
    if not (_present(view.leaderboard) or _present(view.portfolio_metrics)
            or _present(view.speedup) or _present(view.cost_what_if)):
        return ""
    # the speed-up section's own renderer, shown briefly: its figures left out, its tables
    # hidden by the page's style (.sp-brief)
    sp = _speedup(view, _NoFigures())
    speed = (f'<div class="sp-brief">{sp}</div>' if sp else
             '<p class="absent">n/a: no sequential baseline was measured for this run.</p>')
    left = [_winner_html(view)]
    prof = _profiles_html(view)
    if prof:
        left.append("<h3>Portfolio profiles against equal weight and buy-and-hold</h3>" + prof)
    return ('<div class="first"><div class="col-main">' + "".join(left) + "</div>"
            '<div class="col-side"><div class="card" id="card-speedup"><div class="card-title">'
            'Speed-up</div>' + speed + '</div><div class="card" id="card-cost">'
            '<div class="card-title">Simulated cloud cost</div>' + _cost_brief(view)
            + "</div></div></div>")


_LEADER_COLS = (("oos_sharpe", "OOS Sharpe"), ("bh_sharpe", "B&H Sharpe"),
                ("excess_sharpe", "excess Sharpe"), ("oos_total_return", "OOS return"),
                ("bh_total_return", "B&H return"), ("oos_max_drawdown", "max drawdown"),
                ("mean_is_sharpe", "IS Sharpe"), ("pair_dsr", "pair DSR"),
                ("pair_pbo", "pair PBO"), ("dsr", "DSR"), ("pbo", "PBO"),
                ("plateau_drop", "plateau drop"))


def _board_rows(lb: pd.DataFrame, start: int, cols: list[tuple[str, str]]) -> str:
    out = []
    name_cols = [c for c in ("strategy", "asset") if c in lb.columns]
    for i, r in enumerate(lb.to_dict("records"), start=start):
        title = ""
        for vc in ("pair_verdict", "verdict"):
            if r.get(vc):
                title = f' title="{esc(r[vc])}"'
        name = "/".join(str(r[c]) for c in name_cols)
        cells = [f'<td class="num">{i}</td><td{title}>{esc(name)}</td>']
        for c, _ in cols:
            v = r.get(c)
            g = _grade(c, v)
            cls = "num" + (f" {g}" if g else "")
            tip = (f' title="{esc(_GRADE_WORDS[(c.removeprefix("pair_"), g)])}"' if g else "")
            cells.append(f'<td class="{cls}"{tip}>{esc(fmt(v, c))}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out)


def _leaderboard(view: RunView, figs: _Figures, shown: int = 20) -> str:
    parts = []
    lb = view.leaderboard
    if _present(lb):
        known = [(c, h) for c, h in _LEADER_COLS if c in lb.columns]
        if {"strategy", "oos_sharpe"} <= set(lb.columns):  # a tournament's
            head = ('<thead><tr><th>#</th><th>strategy/asset</th>'
                    + "".join(f"<th>{esc(h)}</th>" for _, h in known) + "</tr></thead>")
            top = lb.head(shown)
            parts.append('<div class="scroll"><table class="compact board">' + head
                         + "<tbody>" + _board_rows(top, 1, known) + "</tbody></table></div>")
            if len(lb) > shown:
                parts.append(f"<details><summary>The other {len(lb) - shown:,} rows</summary>"
                             '<div class="scroll"><table class="compact board">' + head
                             + "<tbody>" + _board_rows(lb.iloc[shown:], shown + 1, known)
                             + "</tbody></table></div></details>")
        else:  # a leaderboard of another shape (a sweep's): every column as it is
            rows, cols = frame_rows(lb)
            graded = ("dsr", "pbo", "pair_dsr", "pair_pbo")
            parts.append(table(rows[:shown], cols, graded=graded))
            if len(rows) > shown:
                parts.append(f"<details><summary>The other {len(rows) - shown:,} rows</summary>"
                             + table(rows[shown:], cols, graded=graded) + "</details>")
        note = ("Best first. OOS = out of sample (stitched walk-forward test windows); B&H = "
                "buy-and-hold of the row's asset over the same bars; excess = the row minus "
                "it. DSR ≥ 0.95 and PBO ≤ 0.25 are green, DSR < 0.5 and PBO > 0.5 red; "
                "pair DSR/PBO judge each pair's walk-forward pick among its own combos, not "
                "the winner among all rows (below); hover a name for its verdict.")
        parts.append(f'<p class="note">{esc(note)}</p>')
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
    parts.append(_confidence_html(view.confidence))
    parts.append(_stability_html(view.stability, figs))
    parts.append(_cpcv_html(view.cpcv))
    return "".join(parts)


def _stability_html(blocks: list[dict] | None, figs: _Figures) -> str:
    """Each strategy's parameter-stability heatmap and its plateau drop
    (``TournamentResult.stability``; docs/overfit.md, "Parameter stability")."""
    if not blocks:
        return ""
    from quantfleet.report import plots
    from quantfleet.research.stability import CLIFF_DROP, stability_line

    note = ("Each strategy's out-of-sample metric (mean over windows and assets) over its two "
            "most important parameters, averaged over the others; ● the combo chosen in most "
            "windows; darker = higher. Plateau drop: how far the mean of its ±1-grid-step "
            "neighbours falls below it, in cross-grid standard deviations; above "
            f"{CLIFF_DROP:g} the pick is a spike on a cliff edge.")
    out = ['<div class="verdict" id="stability"><h3>Parameter stability</h3>'
           f'<p class="note">{esc(note)}</p>']
    for b in blocks:
        drop = b.get("plateau_drop")
        nan = not _numeric(drop) or _is_missing(drop)
        line = stability_line({**b, "plateau_drop": math.nan if nan else drop})
        badge = ('<span class="badge warn">n/a</span>' if nan else
                 '<span class="badge good">plateau</span>'
                 if _grade("plateau_drop", drop) == "good"
                 else '<span class="badge bad">cliff</span>')
        out.append(f"<p>{badge} {esc(line)}</p>")
        fig = plots.stability(b)
        if fig.svg:
            out.append(figs.div(fig, f"stability-{b.get('strategy')}"))
    out.append("</div>")
    return "".join(out)


def _cpcv_html(df: pd.DataFrame | None) -> str:
    """The tournament's combinatorial purged cross-validation, one row per pair: PBO over the
    C(N, k) splits and the φ out-of-sample paths' annualised Sharpe distribution."""
    if not _present(df):
        return ""
    r0 = df.iloc[0]
    head = (f"{fmt(r0['groups'])} groups, {fmt(r0['test_groups'])} tested per split, "
            f"embargo {fmt(r0['embargo'])} bars: {fmt(r0['splits'])} splits, "
            f"{fmt(r0['paths'])} out-of-sample paths per pair")
    rows, cols = frame_rows(df.drop(columns=["groups", "test_groups", "embargo", "splits",
                                             "paths"]))
    note = ("Each pair's bars cut into N groups; every choice of k test groups trains on the "
            "rest (minus one purged bar before and the embargo after each test group), picks "
            "the best combo in sample and books it on the test groups; the splits' test groups "
            "make φ = C(N, k)·k/N full out-of-sample paths. PBO: share of splits whose "
            "in-sample winner ranks in the bottom half out of sample. Sharpe columns describe "
            "the paths' annualised Sharpe ratios; — where undefined (n/a).")
    return ('<div class="verdict" id="cpcv"><h3>Combinatorial purged cross-validation</h3>'
            f"<p>{esc(head)}</p>" + table(rows, cols, graded=("pbo",))
            + f'<p class="note">{esc(note)}</p></div>')


def _confidence_html(c: dict | None) -> str:
    """The winner's "How sure are we?" block: bootstrap intervals and the permutation p-value
    (``TournamentResult.confidence``); n/a for a figure that is undefined."""
    if not c:
        return ""

    def ci(key: str, pct: bool) -> str:
        lo, hi = (c.get(key) or [None, None])[:2]
        show = _pct if pct else _num
        return (f"[{show(lo)}, {show(hi)}]" if _numeric(lo) and _numeric(hi)
                and not _is_missing(lo) and not _is_missing(hi) else "n/a")

    level = c.get("level")
    lv = f"{float(level) * 100:g} %" if _numeric(level) else "n/a"
    p = c.get("p_value")
    p_txt = f"{float(p):.3f}" if _numeric(p) and not _is_missing(p) else "n/a"
    grade = "good" if _numeric(p) and not _is_missing(p) and p < 0.05 else "warn"
    who = f"{c.get('strategy')}/{c.get('asset')}"
    words = (f"Out-of-sample Sharpe {_num(c.get('sharpe'))}, {lv} interval {ci('sharpe_ci', False)}; "
             f"max drawdown {_pct(c.get('max_drawdown'))}, {lv} interval "
             f"{ci('max_drawdown_ci', True)} (stationary block bootstrap, {fmt(c.get('n_boot'))} "
             f"resamples, mean block {fmt(c.get('block_length'))} bars).")
    perm = (f"Permutation p-value of its timing: <span class=\"{grade}\">p = {esc(p_txt)}</span> "
            f"— the share of {esc(fmt(c.get('n_perm')))} circular shifts of every pair's positions "
            f"in which the best of the {esc(fmt(c.get('n_pairs')))} pairs did at least as well "
            f"(seed {esc(fmt(c.get('seed')))}; small p: the winner's edge is unlikely to be the "
            f"luck of picking the best pair).")
    return ('<div class="verdict" id="how-sure"><h3>How sure are we?</h3>'
            f"<p>Winner {esc(who)}: {esc(words)}</p><p>{perm}</p></div>")


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
    # buy-and-hold of each drawn asset, held over the bars its first curve trades
    bench = {}
    ar = view.asset_returns
    if _present(ar):
        ar = ar.set_axis([str(c) for c in ar.columns], axis=1).reindex(r.index)
        for c in chosen:
            asset = c.rsplit("/", 1)[-1]
            name = f"buy-and-hold {asset}"
            if asset in ar.columns and name not in bench:
                live = r[c].notna()
                start = live.idxmax() if live.any() else r.index[0]
                bench[name] = (1.0 + ar[asset].where(r.index >= start, 0.0).fillna(0.0)).cumprod()
    import pandas as pd

    bh = pd.DataFrame(bench, index=r.index) if bench else None
    from quantfleet.report import plots

    last = curves.iloc[-1]
    rows = [{"series": c, "final growth of 1": float(last[c]),
             "total_return": float(last[c]) - 1.0} for c in chosen]
    if bh is not None:
        rows += [{"series": c, "final growth of 1": float(bh[c].iloc[-1]),
                  "total_return": float(bh[c].iloc[-1]) - 1.0} for c in bh.columns]
    bh_note = (" Dashed: buy-and-hold of the asset (close to close, no fees) from the first "
               "bar its curve trades." if bh is not None else
               " (No buy-and-hold curve: the run's view holds no asset returns.)")
    return (f'<p class="note">{len(chosen)} of {len(cols)} out-of-sample return series, '
            f"chosen by {esc(how)}; growth of 1 with returns compounded per bar, on a log "
            f"axis.{esc(bh_note)}</p>"
            + figs.div(plots.equity(curves, bh), "equity") + table(rows))


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
        parts.append("<h3>Cumulative out-of-sample returns</h3><p class=\"note\">Growth of 1 "
                     "per profile on a log axis; dashed: the buy-and-hold benchmark.</p>"
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
    ids = {str(w.get("name")): w for w in (view.workers or []) if isinstance(w, dict)}
    rows = [{"worker": str(w), "mean busy": float(v),
             **({"node id": ids[str(w)].get("node"), "worker id": ids[str(w)].get("worker")}
                if str(w) in ids else {})} for w, v in per_worker.items()]
    return (f'<p class="note">Busy fraction of each worker per time bin; the run kept its '
            f"workers {esc(fmt(mean, 'busy'))} busy on average. Workers are named by node "
            f"(in order of first task) and index on that node; their ids are listed below.</p>"
            + figs.div(plots.utilisation(u), "utilisation")
            + "<details><summary>Mean per worker (and ids)</summary>" + table(rows)
            + "</details>")


def _cost(view: RunView, figs: _Figures) -> str:
    from quantfleet.report import plots

    parts = []
    info = view.cost_assumptions
    text = cost_label(info)
    parts.append(f'<p class="label" id="cost-label">{esc(text[:1].upper() + text[1:])}.</p>')
    if info and info.get("assumptions"):
        parts.append("<details><summary>Assumptions of the simulation</summary>"
                     + kv_table(info["assumptions"]) + "</details>")
    wi = view.cost_what_if
    if _present(wi):
        rows, cols = frame_rows(wi)
        parts.append("<h3>What if the run used more machines</h3>" + table(rows, cols))
        if "nodes" in wi.columns and ({"wall_s", "cost_usd"} & set(wi.columns)):
            parts.append(figs.div(plots.cost(wi), "cost"))
    if _present(view.break_even):
        be = dict(view.break_even)
        text = be.pop("text", None)
        brow = be.pop("rows", None)
        parts.append("<h3>Break-even</h3>" + (f"<p>{esc(text)}</p>" if text else "")
                     + kv_table(be))
        if isinstance(brow, list) and brow:
            parts.append("<details><summary>Per node count</summary>" + table(brow)
                         + "</details>")
    if not (_present(wi) or _present(view.break_even)):
        return ""
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
    "verdict": _verdict, "summary": _summary, "lineage": _lineage, "leaderboard": _leaderboard, "equity": _equity,
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
    name = (view.summary or {}).get("name")
    title = f"quantfleet run {view.run_id}" + (f" — {name}" if name else "")
    nav = "".join(f'<a href="#{sid}">{esc(h)}</a>' for sid, h in SECTIONS.items())
    page = _template().substitute(
        title=esc(title), run_id=esc(view.run_id), nav=nav, body="\n".join(sections),
        footer=f"{figs.n} figures, inline SVG &middot; no scripts",
        generated=esc(_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
