"""Turn a recorded run (its artifacts by kind, spans and summary) into the RunView the report
draws, keep that view as the run's ``report_view`` artifact, and write the HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_INSTANCE",
    "attach_view",
    "report_path",
    "run_view",
    "verdict_summary",
    "write_report",
]

DEFAULT_INSTANCE = "c7i.2xlarge"


def run_view(run: Any, *, prices: str | Path | None = None,
             instance: str | None = None) -> Any:
    """The RunView of ``run`` (a :class:`~quantfleet.pipeline.record.RunRecord`), whichever
    command recorded it: tables are found by kind (``leaderboard``, ``evolution``, ...).

    The simulated cost uses the price list ``prices`` (a JSON file shaped like the bundled
    catalog), else the run config's ``report.prices``, else the bundled catalog; and the
    instance type ``instance``, else ``report.instance``, else :data:`DEFAULT_INSTANCE`."""
    import numpy as np

    from quantfleet.observe.cost import break_even, describe, load_catalog, run_inputs, what_if
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
        if view.oos_returns is not None and "asset" in board.columns:
            view.asset_returns = _asset_returns(run, list(board["asset"].head(20).unique()),
                                                view.oos_returns.index)
        # the winner judged among every (pair, combo) trial, then each top pair's own
        # walk-forward pick among its combos (runs recorded before the rename: "verdict")
        win = stage_overfit("tournament")
        col = "pair_verdict" if "pair_verdict" in board.columns else "verdict"
        verdicts = [str(v) for v in board.head(3).get(col, [])]
        lines = [f"winner {win['strategy']}/{win['asset']}: {win['verdict']}"] if win else []
        lines += [f"within {r.strategy}/{r.asset}: {v}" for r, v in
                  zip(board.head(3).itertuples(), verdicts, strict=False)]
        view.overfit = {"verdict": lines, **_winner_figures(win)}
        conf = ((stages.get("tournament") or {}).get("summary") or {}).get("confidence")
        view.confidence = conf or None
        stab = ((stages.get("tournament") or {}).get("summary") or {}).get("stability")
        view.stability = stab or None
        view.cpcv = table("tournament_cpcv")  # cv = "cpcv" only
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
        from quantfleet.research.confidence import confidence_line

        # each profile's bootstrap intervals of its OOS Sharpe and max drawdown
        notes += [confidence_line({**c, "profile": name})
                  for name, c in (port.get("confidence") or {}).items()]
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
        rcfg = cfg.get("report") or {}
        catalog = load_catalog(prices if prices is not None else rcfg.get("prices"))
        inst = instance or rcfg.get("instance") or DEFAULT_INSTANCE
        inp = run_inputs(spans, run.wall_s, run.workers)
        view.cost_what_if = what_if(inp["cpu_s"], inp["wall_s"], inp["workers_local"],
                                    inst, catalog=catalog)
        view.break_even = break_even(inp["cpu_s"], inp["wall_s"], inp["workers_local"],
                                     inst, catalog=catalog)
        view.cost_assumptions = describe(catalog, inst)
        view.utilisation, view.workers = _name_workers(view.utilisation, spans)
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


def _asset_returns(run: Any, assets: list[str], index: Any) -> Any:
    """Per-bar close-to-close returns of ``assets`` on ``index``, from the run's ``market``
    artifact (None when the run recorded no market)."""
    import pandas as pd

    # a run on a shard dataset recorded its manifest (kind dataset_manifest) as its market
    h = run.manifest.output("market") or run.manifest.output("dataset_manifest")
    if not h or not assets:
        return None
    if run.store.stat(h).format == "json":  # a shard dataset's manifest: read those assets
        return _shard_returns(run, h, assets, index)
    mk = run.store.get_table(h).to_pandas()
    if not {"timestamp", "asset", "close"} <= set(mk.columns):
        return None
    mk = mk[mk["asset"].isin(assets)]
    close = mk.pivot(index="timestamp", columns="asset", values="close")
    close.index = pd.DatetimeIndex(close.index)
    idx = pd.DatetimeIndex(index)
    if close.index.tz is None and idx.tz is not None:
        close.index = close.index.tz_localize(idx.tz)
    out = close.pct_change(fill_method=None).reindex(idx)
    return out[[a for a in assets if a in out.columns]]


def _shard_returns(run: Any, h: str, assets: list[str], index: Any) -> Any:
    """:func:`_asset_returns` of a run on a shard dataset: only ``assets``' shards are read."""
    import pandas as pd

    from quantfleet.store.datasets import DATASET_FORMAT, ShardDataset

    doc = run.store.get_json(h)
    if not isinstance(doc, dict) or doc.get("format") != DATASET_FORMAT:
        return None
    ds = ShardDataset(run.store, h, doc)
    have = [a for a in assets if a in ds.view.assets]
    if not have:
        return None
    m = ds.load(have)
    close = pd.DataFrame(m.close.T, index=pd.DatetimeIndex(m.timestamps), columns=list(have))
    idx = pd.DatetimeIndex(index)
    if close.index.tz is None and idx.tz is not None:
        close.index = close.index.tz_localize(idx.tz)
    return close.pct_change(fill_method=None).reindex(idx)


def _name_workers(util: Any, spans: Any) -> tuple[Any, list[dict[str, Any]] | None]:
    """Utilisation rows renamed "node N / worker I" (nodes numbered in the order of their
    first task, workers numbered within their node), and the names with the ids."""
    if util is None or util.empty:
        return util, None
    nodes: dict[str, int] = {}
    node_of: dict[str, str] = {}
    from quantfleet.observe.spans import DRIVER_NODE

    for sp in sorted(spans.spans, key=lambda s: s.start):
        if sp.worker and sp.node != DRIVER_NODE:  # the driver's steps are no worker's
            nodes.setdefault(sp.node, len(nodes))
            node_of.setdefault(sp.worker, sp.node)
            node_of.setdefault(f"{sp.node}/{sp.worker}", sp.node)
    per_node: dict[str, int] = {}
    names, rows = {}, []
    for key in util.index:
        node = node_of.get(str(key))
        if node is None:
            names[key] = str(key)
            continue
        i = per_node.get(node, 0)
        per_node[node] = i + 1
        names[key] = f"node {nodes[node]} / worker {i}"
        rows.append({"name": names[key], "node": node,
                     "worker": str(key).split("/", 1)[-1] if "/" in str(key) else str(key)})
    return util.rename(index=names), rows or None


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


def write_report(store: Any, run: str, out: str | Path | None = None, *, top: int = 5,
                 prices: str | Path | None = None) -> Path:
    """The HTML report of ``run`` (id, prefix or ``latest``) of ``store``: from its
    ``report_view`` artifact, built and recorded first if the run has none (or has one
    recorded before costs were labelled). With ``prices``
    (a price list file) the view is rebuilt with those prices and not recorded."""
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.report import build
    from quantfleet.report.view import load_view

    rec = load_run(store, run)
    h = rec.manifest.output("report_view")
    if prices is not None:
        view = run_view(rec, prices=prices)
    else:
        view = load_view(rec.store, h) if h else attach_view(rec)
        if view.cost_what_if is not None and view.cost_assumptions is None:
            # recorded before costs were labelled (and workers named, buy-and-hold drawn):
            # build it again from the run's artifacts and record that one
            view = attach_view(rec)
    return build(view, out if out is not None else report_path(rec.run_id), top=top)


def _dsr_words(dsr: Any) -> str:
    from quantfleet.research.overfit import DSR_GOOD, DSR_LUCK

    if dsr is None or dsr != dsr:
        return "n/a"
    return ("unlikely to be luck" if dsr >= DSR_GOOD else "inconclusive" if dsr >= DSR_LUCK
            else "likely luck")


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x else None


def verdict_summary(view: Any, top: int = 5) -> dict[str, Any]:
    """What a run found, as data (what ``quantfleet run`` / ``demo`` print and put in JSON):
    ``top_pairs`` (the first ``top`` leaderboard rows: pair, OOS Sharpe, buy-and-hold
    Sharpe, the pair's DSR and its verdict in words; ``in_sample`` True when the board is a
    sweep's, whose Sharpe is in sample), ``winner`` (the winner's DSR among every
    trial, in words), ``profiles`` (each portfolio profile's OOS Sharpe, and the
    buy-and-hold's), ``speedup`` (its sentence, or None) and ``cost`` (the largest what-if row
    with its label, or None). Missing parts are None or empty, never made up."""
    out: dict[str, Any] = {"top_pairs": [], "in_sample": False, "winner": None,
                           "profiles": [], "speedup": None, "cost": None}
    lb = view.leaderboard
    if lb is not None and len(lb) and "strategy" in lb.columns:
        out["in_sample"] = "oos_sharpe" not in lb.columns  # a sweep's board
        for r in lb.head(top).to_dict("records"):
            dsr = _f(r.get("pair_dsr", r.get("dsr")))
            out["top_pairs"].append({
                "pair": f"{r['strategy']}/{r['asset']}" if "asset" in r else str(r["strategy"]),
                "oos_sharpe": _f(r.get("oos_sharpe", r.get("sharpe"))),
                "bh_sharpe": _f(r.get("bh_sharpe")), "pair_dsr": dsr,
                "verdict": _dsr_words(dsr)})
    of = view.overfit or {}
    dsr = _f(of.get("winner DSR", of.get("dsr")))
    if dsr is not None:
        out["winner"] = {"dsr": dsr, "trials": of.get("trials compared (N)", of.get("n_trials")),
                         "verdict": _dsr_words(dsr), "pbo": _f(of.get("PBO", of.get("pbo")))}
    pm = view.portfolio_metrics
    if pm is not None and len(pm):
        df = pm.set_index("profile") if "profile" in pm.columns else pm
        out["profiles"] = [{"profile": str(p), "oos_sharpe": _f(r.get("sharpe"))}
                           for p, r in df.iterrows()]
        if "bh_sharpe" in df.columns:
            out["profiles"].append({"profile": "buy-and-hold",
                                    "oos_sharpe": _f(df["bh_sharpe"].iloc[0])})
    sp = view.speedup or {}
    if sp:
        out["speedup"] = sp.get("text") or (
            f"{float(sp['speedup']):.2f}x" if _f(sp.get("speedup")) is not None else None)
    wi = view.cost_what_if
    if wi is not None and len(wi) and "cost_usd" in wi.columns:
        from quantfleet.report.build import cost_label

        # the smallest cloud setup (as the report's first screen shows it), not the last
        # what-if row (the largest node count)
        cloud = wi[wi["nodes"] > 0] if "nodes" in wi.columns else wi
        r = (cloud if len(cloud) else wi).iloc[0].to_dict()
        out["cost"] = {"setup": r.get("setup") or r.get("nodes"), "wall_s": _f(r.get("wall_s")),
                       "cost_usd": _f(r.get("cost_usd")),
                       "label": cost_label(view.cost_assumptions),
                       "assumptions": (view.cost_assumptions or {}).get("assumptions")}
    return out
