"""Plotly figures of the run report, one function per chart; plotly is imported inside each.

Every function takes plain pandas/dict data and returns a ``plotly.graph_objects.Figure``.
Text that ends up inside a figure (trace names, axis ticks) goes through ``label`` because
plotly renders a subset of HTML in labels: escaping makes a name like ``<b>x`` show literally.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = [
    "FONT",
    "PALETTE",
    "cost",
    "cumulative",
    "equity",
    "evolution",
    "label",
    "latency",
    "losses",
    "utilisation",
    "weights",
]

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def label(text: Any) -> str:
    """A string safe to show as plotly text: HTML special characters become entities."""
    return html.escape(str(text), quote=False)


def _layout(fig: Any, *, height: int, title: str | None = None, **kw: Any) -> Any:
    fig.update_layout(template="plotly_white", height=height,
                      margin={"l": 60, "r": 30, "t": 50 if title else 20, "b": 50},
                      font={"family": FONT, "size": 12},
                      title={"text": label(title)} if title else None,
                      legend={"orientation": "h", "y": -0.15}, **kw)
    return fig


def equity(curves: Any) -> Any:
    """Growth of 1 for each column of ``curves`` (DatetimeIndex x "strategy/asset")."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, col in enumerate(curves.columns):
        fig.add_trace(go.Scatter(x=curves.index, y=curves[col].to_numpy(), mode="lines",
                                 name=label(col), line={"color": PALETTE[i % len(PALETTE)]}))
    return _layout(fig, height=420, yaxis_title="growth of 1 (out of sample)",
                   hovermode="x unified")


def evolution(history: Any) -> Any:
    """Best, mean and median fitness per generation (DataFrame with a ``round`` column)."""
    import plotly.graph_objects as go

    x = history["round"] if "round" in history else history.index
    fig = go.Figure()
    styles = {"best": {"width": 2.5}, "mean": {"dash": "dash"}, "median": {"dash": "dot"}}
    for name, line in styles.items():
        if name in history:
            fig.add_trace(go.Scatter(x=x, y=history[name], mode="lines+markers", name=name,
                                     line=line))
    return _layout(fig, height=360, xaxis_title="generation", yaxis_title="fitness (in sample)")


def weights(by_profile: dict[str, Any]) -> Any:
    """Stacked weights over time, one row of the figure per profile, one colour per asset."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(by_profile)
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=False, vertical_spacing=0.08,
                        subplot_titles=[label(n) for n in names])
    colours: dict[str, str] = {}
    for r, name in enumerate(names, start=1):
        df = by_profile[name]
        for col in df.columns:
            first = col not in colours
            colours.setdefault(col, PALETTE[len(colours) % len(PALETTE)])
            fig.add_trace(go.Scatter(x=df.index, y=df[col].to_numpy(), mode="lines",
                                     name=label(col), legendgroup=label(col), showlegend=first,
                                     stackgroup=f"p{r}", line={"width": 0.5, "shape": "hv",
                                                               "color": colours[col]}),
                          row=r, col=1)
        fig.update_yaxes(title_text="weight", row=r, col=1)
    fig.update_annotations(font={"size": 13})
    _layout(fig, height=110 + 230 * len(names))
    fig.update_layout(legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0.0},
                      margin={"t": 70})
    return fig


def cumulative(returns: Any) -> Any:
    """Cumulative out-of-sample growth of 1 per column of per-bar ``returns``."""
    import plotly.graph_objects as go

    growth = (1.0 + returns.fillna(0.0)).cumprod()
    fig = go.Figure()
    for i, col in enumerate(growth.columns):
        fig.add_trace(go.Scatter(x=growth.index, y=growth[col].to_numpy(), mode="lines",
                                 name=label(col), line={"color": PALETTE[i % len(PALETTE)]}))
    return _layout(fig, height=380, yaxis_title="growth of 1 (out of sample)",
                   hovermode="x unified")


def latency(seconds: Any) -> Any:
    """Heatmap of seconds spent per stage (rows) and component (columns)."""
    import plotly.graph_objects as go

    z = seconds.to_numpy(dtype=float)
    text = [[("" if v != v else f"{v:,.2f} s") for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=[label(c) for c in seconds.columns],
                               y=[label(i) for i in seconds.index], text=text,
                               texttemplate="%{text}", colorscale="Blues",
                               colorbar={"title": {"text": "s"}},
                               hovertemplate="%{y} / %{x}: %{z:.3f} s<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=max(260, 60 + 40 * len(seconds.index)))


def utilisation(busy: Any) -> Any:
    """Busy fraction per worker (rows) and time bin (columns), 0..1."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=busy.to_numpy(dtype=float),
                               x=[label(c) for c in busy.columns],
                               y=[label(i) for i in busy.index], zmin=0.0, zmax=1.0,
                               colorscale="Greens", colorbar={"title": {"text": "busy"}},
                               hovertemplate="%{y} @ %{x}: %{z:.0%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=max(240, 80 + 26 * len(busy.index)), xaxis_title="time bin")


def cost(what_if: Any) -> Any:
    """Wall time and dollar cost against the number of nodes (a what-if table)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = what_if["nodes"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if "wall_s" in what_if:
        fig.add_trace(go.Scatter(x=x, y=what_if["wall_s"], name="wall time (s)",
                                 mode="lines+markers"), secondary_y=False)
    if "cost_usd" in what_if:
        fig.add_trace(go.Scatter(x=x, y=what_if["cost_usd"], name="cost (USD)",
                                 mode="lines+markers", line={"dash": "dash"}), secondary_y=True)
    fig.update_xaxes(title_text="nodes")
    fig.update_yaxes(title_text="wall time (s)", secondary_y=False)
    fig.update_yaxes(title_text="cost (USD)", tickprefix="$", secondary_y=True)
    return _layout(fig, height=340)


def losses(breakdown: dict[str, float], ideal_s: float | None = None) -> Any:
    """Horizontal bars: where the time between ideal and actual wall time went (seconds)."""
    import plotly.graph_objects as go

    names = list(breakdown)
    vals = [float(breakdown[n]) for n in names]
    fig = go.Figure(go.Bar(x=vals, y=[label(n) for n in names], orientation="h",
                           marker={"color": "#d62728"},
                           hovertemplate="%{y}: %{x:.3f} s<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=max(200, 60 + 34 * len(names)),
                   xaxis_title="seconds lost against ideal scaling"
                   + (f" (ideal wall {ideal_s:,.2f} s)" if ideal_s is not None else ""))
