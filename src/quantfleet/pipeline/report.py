"""Turn a recorded run (its artifacts by kind, spans and summary) into the RunView the report
draws, keep that view as the run's ``report_view`` artifact, and write the HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_INSTANCE", "attach_view", "report_path", "run_view", "write_report"]

DEFAULT_INSTANCE = "c7i.2xlarge"


def run_view(run: Any) -> Any:
    """The RunView of ``run`` (a :class:`~quantfleet.pipeline.record.RunRecord`), whichever
    command recorded it: tables are found by kind (``leaderboard``, ``evolution``, ...)."""
    import numpy as np

    from quantfleet.observe.cost import break_even, run_inputs, what_if
    from quantfleet.observe.heatmap import bottlenecks, heatmap, utilisation
    from quantfleet.observe.speedup import explain_speedup
    from quantfleet.report.view import RunView

    m, store, meta = run.manifest, run.store, run.summary

    def table(kind: str) -> Any:
        h = m.output(kind)
        return store.get_table(h).to_pandas() if h else None

    cfg = m.config or {}
    view = RunView(
        run_id=m.run_id,
        summary={"name": cfg.get("name"), "command": m.command, "status": m.status,
                 "created": m.created, "finished": m.finished, "executor": run.executor,
                 "workers": run.workers, "data_source": (cfg.get("data") or {}).get("source"),
                 "store_url": store.url, "code_version": m.code, "wall_s": run.wall_s,
                 "stages": {k: ("served from cache" if v.get("cached") else "computed")
                            for k, v in (meta.get("stages") or {}).items()},
                 "config": cfg},
        lineage=[{"step": s["step"], "inputs": s.get("inputs", {}),
                  "outputs": s.get("outputs", {}), "settings": s.get("settings", {})}
                 for s in m.steps],
    )
    stages = meta.get("stages") or {}

    def stage_overfit(name: str) -> dict[str, Any]:
        return ((stages.get(name) or {}).get("summary") or {}).get("overfit") or {}

    board = table("leaderboard")
    if board is not None:
        view.leaderboard = board
        oos = table("oos_returns")
        view.oos_returns = oos.set_index("timestamp") if oos is not None else None
        # the winner judged among every (pair, combo) trial, then each top pair's own
        # walk-forward pick among its combos (runs recorded before the rename: "verdict")
        win = stage_overfit("tournament")
        col = "pair_verdict" if "pair_verdict" in board.columns else "verdict"
        verdicts = [str(v) for v in board.head(3).get(col, [])]
        lines = [f"winner {win['strategy']}/{win['asset']}: {win['verdict']}"] if win else []
        lines += [f"within {r.strategy}/{r.asset}: {v}" for r, v in
                  zip(board.head(3).itertuples(), verdicts, strict=False)]
        view.overfit = {"verdict": lines, **_winner_figures(win)}
    else:
        board = table("sweep_leaderboard")
        if board is not None:
            view.leaderboard = board
            win = stage_overfit("sweep")
            if win:
                view.overfit = {"verdict": [f"winner on {win['asset']}: {win['verdict']}"],
                                **_winner_figures(win)}
    winners = table("evolution")
    if winners is not None:
        view.evolution_winners = [{**w, "params": json.loads(w["params"])}
                                  for w in winners.to_dict("records")]
        hist = table("evolution_history")
        view.evolution_history = hist.to_dict("records") if hist is not None else None
        evo = ((meta.get("stages") or {}).get("evolution") or {}).get("summary") or {}
        if evo.get("overfit"):
            view.overfit = {**(view.overfit or {}), "evolution": evo["overfit"].get("verdict")}
    w = table("weights")
    if w is not None:
        view.portfolio_weights = {p: g.drop(columns=["profile"]).set_index("test_start")
                                  for p, g in w.groupby("profile", sort=False)}
        r = table("portfolio_returns")
        view.portfolio_returns = r.set_index("timestamp") if r is not None else None
        bench = table("portfolio_benchmark")
        if view.portfolio_returns is not None and bench is not None:
            view.portfolio_returns = view.portfolio_returns.join(
                bench.set_index("timestamp")["buy_and_hold"].rename("buy-and-hold"))
        view.portfolio_metrics = table("portfolio_metrics")
        port = ((meta.get("stages") or {}).get("portfolio") or {}).get("summary") or {}
        notes = [f"{label}{port[k][:1].upper()}{port[k][1:]}" for k, label in
                 (("selection", ""), ("buy_and_hold", "Buy-and-hold (bh_*): ")) if port.get(k)]
        view.portfolio_notes = notes or None
        members = table("portfolio_members")
        if members is not None and len(members):
            n_w = int(members["window"].nunique())
            freq = members.groupby("column", sort=False).size().sort_values(
                ascending=False, kind="stable")
            view.portfolio_members = freq.rename("windows").reset_index().assign(
                share=lambda d: d["windows"] / n_w)
    spans = run.spans
    if len(spans.spans):
        view.heatmap = heatmap(spans)
        view.utilisation = utilisation(spans, wall_s=run.wall_s)
        view.bottlenecks = [{"title": f.kind, "text": f.text, "value": f.value}
                            for f in bottlenecks(spans, wall_s=run.wall_s, baseline=run.baseline,
                                                 workers=run.workers)]
        inp = run_inputs(spans, run.wall_s, run.workers)
        view.cost_what_if = what_if(inp["cpu_s"], inp["wall_s"], inp["workers_local"],
                                    DEFAULT_INSTANCE)
        view.break_even = break_even(inp["cpu_s"], inp["wall_s"], inp["workers_local"],
                                     DEFAULT_INSTANCE)
        base = (meta.get("stage_baselines") or {}).get("tournament")
        if base:
            # the tournament stage's own baseline, against its own tasks and wall time
            from quantfleet.observe.spans import SpanRecorder

            tspans = SpanRecorder([sp for sp in spans.spans
                                   if sp.stage.split("/")[0] == "tournament"])
            # the workers the tournament ran on, as its baseline recorded them
            sp = explain_speedup(tspans, base["wall_s"], int(base.get("workers") or run.workers),
                                 base)
            view.speedup = {"scope": "tournament stage",
                            **{k: v for k, v in sp.items()
                               if not isinstance(v, float) or np.isfinite(v)}}
    return view


def _winner_figures(of: dict[str, Any]) -> dict[str, Any]:
    """The figures behind a leaderboard winner's verdict, labelled for the report."""
    if not of:
        return {}
    return {"winner DSR": of.get("dsr"), "trials compared (N)": of.get("n_trials"),
            "selected among": of.get("selected_among"),
            "variance of the trials' Sharpe (V, per bar)": of.get("var_trials"),
            "PBO": of.get("pbo")}


def attach_view(run: Any) -> Any:
    """Build the run's view and record it as its ``report_view`` artifact; returns the view.
    A finished run's manifest is amended (archived again), a running one just saved."""
    from quantfleet.report.view import save_view

    view = run_view(run)
    ref = save_view(view, run.store)
    run.manifest.attach("report_view", ref)
    if run.manifest.status == "running":
        run.store.save_run(run.manifest)
    else:
        run.store.amend_run(run.manifest)
    return view


def report_path(run_id: str) -> Path:
    """Where a run's HTML report goes by default: ``$QUANTFLEET_HOME/reports/<run_id>.html``."""
    from quantfleet.pipeline.home import state_dir

    return state_dir() / "reports" / f"{run_id}.html"


def write_report(store: Any, run: str, out: str | Path | None = None, *, top: int = 5) -> Path:
    """The HTML report of ``run`` (id, prefix or ``latest``) of ``store``: from its
    ``report_view`` artifact, built and recorded first if the run has none."""
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.report import build
    from quantfleet.report.view import load_view

    rec = load_run(store, run)
    h = rec.manifest.output("report_view")
    view = load_view(rec.store, h) if h else attach_view(rec)
    return build(view, out if out is not None else report_path(rec.run_id), top=top)
