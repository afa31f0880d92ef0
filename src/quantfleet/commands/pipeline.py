"""``run``, ``demo``, ``ui`` and ``health``: the Prefect pipeline and its services."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from quantfleet.commands.options import AsJson, NoStore, StoreUrl, fail, print_json

__all__ = ["demo", "health", "run", "serve", "ui"]


def _view_of(out: Any) -> Any:
    """The recorded run's report view (None when the run was not recorded)."""
    if not out.run_id:
        return None
    from quantfleet.pipeline.report import run_view
    from quantfleet.pipeline.run_record import load_run
    from quantfleet.report.view import load_view

    rec = load_run(out.store_url, out.run_id)
    h = rec.manifest.output("report_view")
    return load_view(rec.store, h) if h else run_view(rec)


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _print_verdict(v: dict[str, Any]) -> None:
    """The run's findings as a few aligned lines: what `demo` (and `run`) print at the end."""
    pairs = v["top_pairs"]
    if pairs:
        w = max(20, *(len(r["pair"]) for r in pairs))
        if v["in_sample"]:
            typer.echo(f"Top {len(pairs)} rows of the sweep, in sample (a sweep has no "
                       f"out-of-sample test):")
        else:
            typer.echo(f"Top {len(pairs)} pairs, out of sample (walk-forward); DSR of each "
                       f"pair's pick among its own combos:")
        head = "Sharpe" if v["in_sample"] else "OOS Sharpe"
        typer.echo(f"  {'#':>2}  {'pair':<{w}}  {head:>10}  {'buy-and-hold':>12}  "
                   f"{'DSR':>4}  verdict")
        for i, r in enumerate(pairs, 1):
            typer.echo(f"  {i:>2}  {r['pair']:<{w}}  {_num(r['oos_sharpe']):>10}  "
                       f"{_num(r['bh_sharpe']):>12}  {_num(r['pair_dsr']):>4}  {r['verdict']}")
    if v["winner"]:
        x = v["winner"]
        trials = f" as the best of {x['trials']:,} trials" if isinstance(x["trials"], int) else ""
        typer.echo(f"  the winner's DSR {x['dsr']:.2f}{trials}: {x['verdict']}"
                   + (f"; PBO {x['pbo']:.2f}" if x["pbo"] is not None else ""))
    if v["profiles"]:
        w = max(12, *(len(r["profile"]) for r in v["profiles"]))
        typer.echo("Portfolio profiles, out of sample:")
        typer.echo(f"  {'profile':<{w}}  {'OOS Sharpe':>10}")
        for r in v["profiles"]:
            typer.echo(f"  {r['profile']:<{w}}  {_num(r['oos_sharpe']):>10}")
    typer.echo(f"Speedup: {v['speedup'] or 'n/a: no sequential baseline was measured'}")
    c = v["cost"]
    if c:
        typer.echo(f"Simulated cost: ${c['cost_usd']:.4f} on {c['setup']}, {c['label']}")


def _run_config(config: Any, as_json: bool, no_store: bool = False,
                run_id: str | None = None) -> None:
    from quantfleet.pipeline.flow import run_pipeline
    from quantfleet.pipeline.report import verdict_summary

    out = run_pipeline(config, run_id=run_id, record=not no_store,
                       log=(lambda m: None) if as_json else typer.echo)
    report = out.report  # written by the flow from the recorded run: none without one
    view = _view_of(out)
    summary = {"store": out.store_url, "report": str(report) if report else None,
               "wall_s": round(out.wall_s, 2),
               "verdict": verdict_summary(view) if view is not None else None,
               "stages": {k: {"cached": v["cached"], "outputs": v["outputs"],
                              "summary": v["summary"]} for k, v in out.stages.items()}}
    if out.run_id:
        summary = {"run_id": out.run_id, **summary}
    if as_json:
        print_json(summary)
        return
    if not out.run_id:
        typer.echo(f"run finished in {out.wall_s:.1f} s (not recorded: --no-store; the "
                   f"summary and the report are drawn from the recorded run)")
        return
    if summary["verdict"] is not None:
        _print_verdict(summary["verdict"])
    typer.echo(f"run {out.run_id} finished in {out.wall_s:.1f} s")
    typer.echo(f"  recorded:  {out.store_url} (runs/{out.run_id}/manifest.json)")
    if report:
        typer.echo(f"  report:    {report}")
        if config.report.open:
            import webbrowser

            webbrowser.open(report.as_uri())


def _parse_sets(items: list[str]) -> dict[str, Any]:
    import tomllib

    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            fail(f"--set {it!r}: expected KEY=VALUE, e.g. --set tournament.max_combos=8")
        k, v = (x.strip() for x in it.split("=", 1))
        try:
            out[k] = tomllib.loads(f"v = {v}")["v"]
        except tomllib.TOMLDecodeError:
            out[k] = v
    return out


def run(
    config: Annotated[Path, typer.Argument(help="Pipeline config (TOML); see docs/pipeline.md.")],
    store: StoreUrl = None,
    executor: Annotated[str | None, typer.Option("--executor", help="serial|processes|ray|auto (executor.kind).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="executor.workers")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="executor.ray_address")] = None,
    prefect_api: Annotated[str | None, typer.Option("--prefect-api", help="Prefect API URL (prefect.api_url); default: embedded local API.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="data.source")] = None,
    fee_bps: Annotated[float | None, typer.Option("--fee-bps", help="costs.fee_bps")] = None,
    slippage_bps: Annotated[float | None, typer.Option("--slippage-bps", help="costs.slippage_bps")] = None,
    open_report: Annotated[bool | None, typer.Option("--open/--no-open", help="report.open")] = None,
    baseline: Annotated[bool | None, typer.Option("--baseline/--no-baseline", help="baseline.enabled: also run the tournament serially and report the speedup.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any field: KEY=VALUE with a dotted key, e.g. --set tournament.max_combos=8 (value parsed as TOML).")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Record the run under this new id (default: a fresh one; `quantfleet submit` sets it to print it before the job starts).")] = None,
    no_store: NoStore = False,
    as_json: AsJson = False,
) -> None:
    """Run the pipeline of CONFIG: data, tournament, evolution, portfolio, report.

    The run is recorded in --store, else $QUANTFLEET_STORE, else the config's store."""
    from quantfleet.pipeline.config import load_config

    cfg = load_config(config)
    cfg = cfg.with_overrides({**_parse_sets(set_ or []),
                              "store": store or os.environ.get("QUANTFLEET_STORE"),
                              "executor.kind": executor, "executor.workers": workers,
                              "executor.ray_address": ray_address,
                              "prefect.api_url": prefect_api, "data.source": data,
                              "costs.fee_bps": fee_bps, "costs.slippage_bps": slippage_bps,
                              "report.open": open_report, "baseline.enabled": baseline})
    if run_id is not None:
        _check_new_run_id(run_id, cfg.store, no_store)
    _run_config(cfg, as_json, no_store, run_id)


def _check_new_run_id(run_id: str, store: str, no_store: bool) -> None:
    """``--run-id`` names a new run: a valid id, not already in the store."""
    from quantfleet.store import Store
    from quantfleet.store.keys import manifest_key

    if no_store:
        fail("--run-id names a recorded run; drop it or drop --no-store")
    manifest_key(run_id)  # the id's characters, in one line
    st = Store.open(store)
    if run_id in st.run_ids():
        fail(f"--run-id {run_id!r}: a run with this id is already in {st.url}; pick a new id "
             f"or leave --run-id out")


def serve(
    config: Annotated[Path, typer.Argument(help="Pipeline config (TOML) whose validated contents become the deployment's default parameter.")],
    name: Annotated[str | None, typer.Option("--name", help="Deployment name (default: the config's name).")] = None,
    prefect_api: Annotated[str | None, typer.Option("--prefect-api", help="Prefect API URL (default: the server of `quantfleet ui` if up).")] = None,
) -> None:
    """Serve the pipeline flow as a Prefect deployment: runs started from the UI (or
    `prefect deployment run`) execute here, with CONFIG as their default parameter."""
    from quantfleet.pipeline.config import load_config
    from quantfleet.pipeline.flow import prefect_api as pick_api
    from quantfleet.pipeline.home import prefect_env, state_dir

    cfg = load_config(config)
    api, said = pick_api(prefect_api or cfg.prefect.api_url)
    if api is None and not os.environ.get("PREFECT_API_URL"):
        fail("serve needs a Prefect server to register with: start `quantfleet ui` (or give "
             "--prefect-api URL)")
    prefect_env(state_dir(), api)
    from quantfleet.pipeline.prefect_flow import FLOW_NAME, pipeline_flow

    dep = name or cfg.name
    typer.echo(f"prefect API: {said}")
    typer.echo(f"serving deployment {FLOW_NAME}/{dep}; start a run from the UI or with "
               f"`prefect deployment run '{FLOW_NAME}/{dep}'`; Ctrl-C stops")
    pipeline_flow.serve(name=dep, parameters={"config": cfg.model_dump(mode="json")},
                        print_starting_message=False)


def demo(
    executor: Annotated[str | None, typer.Option("--executor", help="serial|processes|ray|auto (default: ray).")] = None,
    baseline: Annotated[bool, typer.Option("--baseline", help="Also run the tournament serially and report the speedup (baseline.enabled).")] = False,
    store: StoreUrl = None,
    no_store: NoStore = False,
    as_json: AsJson = False,
) -> None:
    """Run the bundled demo config: every strategy x the 20 sp500 stocks, an evolution,
    5 portfolio profiles walk-forward, on local Ray; records the run and writes its report."""
    from importlib.resources import files

    from quantfleet.commands.options import store_url
    from quantfleet.pipeline.config import load_config

    path = files("quantfleet.pipeline").joinpath("demo.toml")
    cfg = load_config(Path(str(path)))
    cfg = cfg.with_overrides({"executor.kind": executor, "store": store_url(store),
                              "baseline.enabled": baseline or None})
    _run_config(cfg, as_json, no_store)


def ui(
    port: Annotated[int, typer.Option("--port", help="Prefect UI port on 127.0.0.1.")] = 4200,
) -> None:
    """Start the Prefect server (UI) on 127.0.0.1 and print the Prefect and Ray dashboards."""
    import subprocess

    from quantfleet.pipeline.home import prefect_env, state_dir

    home = state_dir()
    prefect_env(home)
    exe = Path(sys.executable).with_name("prefect")
    cmd = [str(exe), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    typer.echo(f"Prefect UI:     http://127.0.0.1:{port}  (state in {home / 'prefect'})")
    typer.echo("Ray dashboard:  http://127.0.0.1:8265  (when a Ray cluster with the dashboard "
               "runs; see docs/deploy.md)")
    typer.echo(f"point runs at it with --prefect-api http://127.0.0.1:{port}/api; Ctrl-C stops")
    try:
        subprocess.run(cmd, check=False)
    except KeyboardInterrupt:
        pass


def health(
    store: StoreUrl = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster to check (default: embedded local Ray).")] = None,
    prefect_api: Annotated[str | None, typer.Option("--prefect-api", help="Prefect API to check (default: embedded local API).")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="store|catalog|metrics|ray|prefect; repeatable.")] = None,
    prices: Annotated[Path | None, typer.Option("--prices", help="Check this price list instead of the bundled catalog.")] = None,
) -> None:
    """Functional checks, not pings: store round trip, the price catalog, the metrics
    endpoint, a backtest as a Ray task, a tiny flow; each removes what it wrote."""
    from quantfleet.commands.options import store_url
    from quantfleet.pipeline.health import run_checks

    results = run_checks(store=store_url(store), ray_address=ray_address,
                         prefect_api=prefect_api, skip=set(skip or []),
                         prices=str(prices) if prices is not None else None)
    for r in results:
        typer.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.name:<8} {r.detail} ({r.seconds:.1f} s)")
    if not all(r.ok for r in results):
        raise typer.Exit(1)
