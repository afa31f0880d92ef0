"""``runs list|show|diff`` and ``query``: the runs of a store, whichever command recorded them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from quantfleet.commands.options import AsJson, StoreUrl, fmt, print_json, print_rows, store_url

__all__ = [
    "RunArg",
    "app",
    "query",
    "runs_diff",
    "runs_list",
    "runs_show",
]

app = typer.Typer(help="Runs recorded in a store: list, show, diff.", no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="Run id, unique id prefix, or 'latest'.")]


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


@app.command("list")
def runs_list(store: StoreUrl = None, as_json: AsJson = False) -> None:
    """List the runs in a store, oldest first."""
    from quantfleet.store import Store

    st = Store.open(store_url(store))
    rows = [{"run_id": m.run_id, "command": m.command, "status": m.status, "created": m.created,
             "duration_s": m.duration_s, "git_commit": (m.code.get("git_commit") or "")[:10],
             "artifacts": len(m.artifacts)} for m in st.list_runs()]
    if as_json:
        print_json(rows)
        return
    print_rows(rows, title=f"{len(rows)} runs in {st.url}", skip=())


@app.command("show")
def runs_show(run: RunArg, store: StoreUrl = None, as_json: AsJson = False) -> None:
    """Show one run's manifest: config, code, executor, steps and artifacts with their kinds."""
    from quantfleet.store import Store

    m = Store.open(store_url(store)).get_run(run)
    if as_json:
        print_json(m.to_dict())
        return
    for k in ("run_id", "command", "status", "created", "finished", "duration_s", "error",
              "archived"):
        typer.echo(f"{k:>12}: {getattr(m, k)}")
    typer.echo(f"{'code':>12}: {m.code}")
    for k in ("config", "executor", "metrics", "timing"):
        for fk, v in _flat(getattr(m, k)).items():
            if fk:
                typer.echo(f"{k:>12}: {fk} = {fmt(v)}")
    print_rows([{"step": s["step"], "direction": d[:-1], "name": n, "hash": h[:16],
                 "kind": m.artifacts.get(h, {}).get("kind", ""),
                 "rows": m.artifacts.get(h, {}).get("rows")}
                for s in m.steps for d in ("inputs", "outputs") for n, h in s[d].items()],
               title="Lineage", skip=())


@app.command("diff")
def runs_diff(
    run_a: Annotated[str, typer.Argument(help="First run (id, prefix or 'latest').")],
    run_b: Annotated[str, typer.Argument(help="Second run.")],
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """Config and metric differences between two runs."""
    from quantfleet.store import Store

    st = Store.open(store_url(store))
    a, b = st.get_run(run_a), st.get_run(run_b)
    out: dict[str, Any] = {"a": a.run_id, "b": b.run_id}
    for part in ("config", "metrics"):
        fa, fb = _flat(a.to_dict()[part]), _flat(b.to_dict()[part])
        rows = []
        for k in sorted(set(fa) | set(fb)):
            va, vb = fa.get(k), fb.get(k)
            if k and va != vb:
                num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
                rows.append({"field": k, "a": va, "b": vb, "delta": vb - va if num else None})
        out[part] = rows
    if as_json:
        print_json(out)
        return
    typer.echo(f"a = {a.run_id} ({a.command}), b = {b.run_id} ({b.command})")
    for part in ("config", "metrics"):
        if out[part]:
            print_rows([{k: fmt(v) if v is not None else "" for k, v in r.items()}
                        for r in out[part]], title=f"{part} differences", skip=())
        else:
            typer.echo(f"{part}: identical")


def query(
    sql: Annotated[str, typer.Argument(help="SQL over tables runs, artifacts, lineage and one view per artifact kind (leaderboard, tournament_results, sweep_results, evolution, weights, spans, ...), each with a run_id column.")],
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """Query runs and artifacts of a store with SQL (DuckDB)."""
    from quantfleet.store import Catalog

    with Catalog(store_url(store)) as cat:
        rows = cat.rows(sql)
    if as_json:
        print_json(rows)
        return
    print_rows(rows, skip=())
