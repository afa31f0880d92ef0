"""Turn a finished run (its artifacts, spans and run.json) into the RunView the report draws."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_view", "write_report"]

DEFAULT_INSTANCE = "c7i.2xlarge"


def _table(store: Any, h: str | None) -> Any:
    if not h:
        return None
    return store.get_table(h).to_pandas()


def run_view(run_dir: str | Path, store: Any = None) -> Any:
    """The RunView of the run in ``run_dir`` (reads ``run.json``, ``spans.parquet`` and the
    stage outputs from the run's store)."""
    from quantfleet.observe.cost import break_even, run_inputs, what_if
    from quantfleet.observe.heatmap import bottlenecks, heatmap, utilisation
    from quantfleet.observe.speedup import explain_speedup, load_run
    from quantfleet.report.build import RunView
    from quantfleet.store.artifacts import Store

    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    store = store or Store.open(meta["store"])
    run = load_run(run_dir)
    stages = meta.get("stages", {})

    def out(stage: str, name: str) -> str | None:
        return (stages.get(stage) or {}).get("outputs", {}).get(name)

    manifest = store.get_run(meta["run_id"])
    cfg = meta.get("config", {})
    view = RunView(
        run_id=meta["run_id"],
        summary={"name": cfg.get("name"), "status": manifest.status,
                 "created": manifest.created, "finished": manifest.finished,
                 "executor": meta.get("executor"), "workers": meta.get("workers"),
                 "data_source": (cfg.get("data") or {}).get("source"),
                 "store_url": meta.get("store"), "code_version": meta.get("code"),
                 "wall_s": meta.get("wall_s"),
                 "stages": {k: ("served from cache" if v.get("cached") else "computed")
                            for k, v in stages.items()},
                 "config": cfg},
        lineage=[{"step": s["step"], "inputs": s.get("inputs", {}),
                  "outputs": s.get("outputs", {}), "settings": s.get("settings", {})}
                 for s in manifest.to_dict().get("steps", [])],
    )
    board = _table(store, out("tournament", "leaderboard"))
    if board is not None:
        view.leaderboard = board
        oos = _table(store, out("tournament", "oos_returns"))
        view.oos_returns = oos.set_index("timestamp") if oos is not None else None
        verdicts = [str(v) for v in board.head(3).get("verdict", [])]
        view.overfit = {"verdict": [f"{r.strategy}/{r.asset}: {v}" for r, v in
                                    zip(board.head(3).itertuples(), verdicts, strict=False)]}
    evo_h = out("evolution", "evolution")
    if evo_h:
        evo = store.get_json(evo_h)
        view.evolution_history = evo.get("history")
        view.evolution_winners = evo.get("winners")
        if evo.get("overfit"):
            view.overfit = {**(view.overfit or {}),
                            "evolution": evo["overfit"].get("verdict")}
    w = _table(store, out("portfolio", "weights"))
    if w is not None:
        view.portfolio_weights = {p: g.drop(columns=["profile"]).set_index("test_start")
                                  for p, g in w.groupby("profile", sort=False)}
        r = _table(store, out("portfolio", "returns"))
        view.portfolio_returns = r.set_index("timestamp") if r is not None else None
        view.portfolio_metrics = _table(store, out("portfolio", "metrics"))
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
            sp = explain_speedup(tspans, base["wall_s"], run.workers, base)
            view.speedup = {"scope": "tournament stage",
                            **{k: v for k, v in sp.items()
                               if not isinstance(v, float) or np.isfinite(v)}}
    return view


def write_report(outcome: Any) -> Path:
    """Build ``report.html`` in the run's directory and save the RunView next to it."""
    from quantfleet.report.build import build

    view = run_view(outcome.run_dir)
    view.save(outcome.run_dir / "view")
    return build(view, outcome.run_dir / "report.html")
