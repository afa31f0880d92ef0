"""``profile``, ``cost`` and ``report``: where a recorded run's time went, what it would cost
in the cloud, and its HTML report. RUN is found in the store like ``runs show`` finds it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from quantfleet.commands.options import AsJson, StoreUrl, fail, print_json, print_rows, store_url

__all__ = [
    "RunArg",
    "cost",
    "profile",
    "report",
]

RunArg = Annotated[str, typer.Argument(help="Run id, unique id prefix, or 'latest' (any command's run).")]


def profile(
    run: RunArg,
    top: Annotated[int, typer.Option("--top", help="Components shown in the heatmap.")] = 8,
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """Where a run's time went: stage x component heatmap, bottlenecks, speedup."""
    from quantfleet.observe.heatmap import bottlenecks, heatmap, timeline, utilisation
    from quantfleet.observe.profile import format_profile
    from quantfleet.observe.speedup import explain_speedup
    from quantfleet.pipeline.run_record import load_run

    if top < 1:
        fail(f"--top must be >= 1 (got {top})")
    r = load_run(store_url(store), run)
    if not len(r.spans):
        fail(f"run {r.run_id} recorded no spans (nothing ran on an executor); "
             f"`quantfleet runs show {r.run_id}` shows what it did")
    if not as_json:
        typer.echo(format_profile(r.spans, r.wall_s, r.workers, r.baseline, top=top,
                                  title=f"{r.run_id} ({r.executor or 'executor?'})"))
        return
    hm = heatmap(r.spans)
    tl = timeline(r.spans, r.wall_s, r.workers)
    sp = explain_speedup(r.spans, r.wall_s, r.workers, r.baseline)
    util = utilisation(r.spans, bins=1, wall_s=r.wall_s)
    print_json({"run_id": r.run_id, "executor": r.executor, "wall_s": r.wall_s,
                "workers": r.workers, "spans": len(r.spans),
                # seconds of the wall: only driver steps ran / no span at all
                "driver_s": tl.driver_s, "unaccounted_s": tl.unaccounted_s,
                "unaccounted_share": tl.unaccounted_share,
                "heatmap": {str(i): {str(c): float(v) for c, v in row.items()}
                            for i, row in hm.iterrows()},
                "utilisation": {str(w): float(u) for w, u in util.iloc[:, 0].items()}
                if not util.empty else {},
                "bottlenecks": [f.to_dict() for f in bottlenecks(r.spans, r.wall_s, r.baseline,
                                                                 workers=r.workers)],
                "speedup": {k: v for k, v in sp.items() if k != "text"}})


def cost(
    run: RunArg,
    instance: Annotated[str, typer.Option("--instance", help="Instance type from the catalog, e.g. c7i.2xlarge, c3-standard-8, F8s_v2.")] = "c7i.2xlarge",
    nodes: Annotated[int | None, typer.Option("--nodes", help="Node count (default: a table for 1, 2, 4, ..., 32).")] = None,
    spot: Annotated[bool, typer.Option("--spot", help="Spot prices instead of on-demand.")] = False,
    laptop_usd_per_h: Annotated[float, typer.Option("--laptop-usd-per-h", help="Cost of the local machine per hour (0: marginal).")] = 0.0,
    prices: Annotated[Path | None, typer.Option("--prices", help="Your own price list (JSON shaped like quantfleet/observe/instances.json) instead of the bundled catalog.")] = None,
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """What the run would cost, and how long it would take, on N cloud nodes (simulated from
    a price list: approximate list prices of its date, not a quote)."""
    from quantfleet.observe import cost as qc
    from quantfleet.pipeline.run_record import load_run

    if nodes is not None and nodes < 1:
        fail(f"--nodes must be >= 1 (got {nodes})")
    if laptop_usd_per_h < 0:
        fail(f"--laptop-usd-per-h must be >= 0 (got {laptop_usd_per_h})")
    catalog = qc.load_catalog(prices)
    inst = qc.get_instance(instance, catalog)
    r = load_run(store_url(store), run)
    inputs = qc.run_inputs(r.spans, r.wall_s, r.workers)
    counts = [nodes] if nodes is not None else list(qc.DEFAULT_NODES)
    table = qc.what_if(**inputs, instance=inst["name"], nodes=counts, spot=spot,
                       laptop_usd_per_h=laptop_usd_per_h, catalog=catalog)
    be = qc.break_even(**inputs, instance=inst["name"], nodes=counts, spot=spot,
                       laptop_usd_per_h=laptop_usd_per_h, catalog=catalog)
    info = qc.describe(catalog, inst["name"], spot)
    if as_json:
        print_json({"run_id": r.run_id, "label": info["label"], "inputs": inputs,
                    "instance": inst, "spot": spot, "catalog": info["catalog"],
                    "assumptions": info["assumptions"], "table": table.to_dict("records"),
                    "break_even": be})
        return
    shown = [{"nodes": "local" if t["nodes"] == 0 else t["nodes"], "workers": t["workers"],
              "wall_s": t["wall_s"], "speedup": t["speedup"], "billed_s": t["billed_s"],
              "cost_usd": t["cost_usd"]} for t in table.to_dict("records")]
    print_rows(shown,
               title=f"{r.run_id}: simulated on {inst['name']} ({inst['vcpus']} vCPU, "
                     f"{inst.get('provider', '')} {'spot' if spot else 'on-demand'} "
                     f"${table['usd_per_h'].iloc[-1]:.4g}/h)",
               skip=())
    if be["best_nodes"] is None:
        typer.echo("No node count is faster than the local run.")
    else:
        typer.echo(f"Most time saved per dollar: {be['best_nodes']} node(s), "
                   f"${be['best_usd_per_hour_saved']:.3g} per hour of waiting saved.")
    typer.echo(f"Costs {info['label']}.")
    typer.echo("Assumptions: " + "; ".join(f"{k}: {v}" for k, v in info["assumptions"].items()))


def report(
    run: RunArg,
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: $QUANTFLEET_HOME/reports/<run_id>.html).")] = None,
    top: Annotated[int, typer.Option("--top", help="Equity curves of this many leaderboard rows.")] = 5,
    prices: Annotated[Path | None, typer.Option("--prices", help="Simulate the cost section from your own price list (JSON shaped like quantfleet/observe/instances.json); the view is rebuilt, not recorded.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the report in the default web browser.")] = False,
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """Build the run's HTML report (one self-contained file that opens offline) from its
    report view in the store; a run without one gets it built and recorded first."""
    from quantfleet.pipeline.report import write_report
    from quantfleet.store import Store

    if top < 1:
        fail(f"--top must be >= 1 (got {top}); e.g. 5")
    st = Store.open(store_url(store))
    run_id = st.resolve_run(run)
    path = write_report(st, run_id, out, top=top, prices=prices).resolve()
    if as_json:
        print_json({"run_id": run_id, "report": str(path), "bytes": path.stat().st_size})
    else:
        typer.echo(f"report written to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if open_:
        import webbrowser

        webbrowser.open(path.as_uri())
