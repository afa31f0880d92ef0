"""``strategies`` and ``data info``: what can be tested, on what data."""

from __future__ import annotations

from typing import Annotated

import typer

from quantfleet.commands.options import AsJson, print_json

__all__ = ["app", "data_info", "strategies"]

app = typer.Typer(help="Inspect market data sources.", no_args_is_help=True)


def strategies(as_json: AsJson = False) -> None:
    """List the strategy seeds and their parameters."""
    from quantfleet.strategies import all_strategies

    rows = [
        {"name": s.name, "family": s.family, "description": s.description,
         "params": s.space.describe(), "constraints": [str(c) for c in s.space.constraints],
         "needs": list(s.needs) + list(s.extras)}
        for s in all_strategies()
    ]
    if as_json:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(rows)} strategies")
    for col in ("name", "family", "parameters (search range, default)", "description"):
        t.add_column(col)
    for r in rows:
        ps = ", ".join(
            f"{p['name']}[{p['low']}..{p['high']}]={p['default']}" if "low" in p
            else f"{p['name']}{p['options']}={p['default']}" for p in r["params"]
        )
        if r["constraints"]:
            ps += "; " + ", ".join(r["constraints"])
        t.add_row(r["name"], r["family"], ps, r["description"])
    Console().print(t)


@app.command("info")
def data_info(
    source: Annotated[str, typer.Argument(help="CSV/Parquet path, dataset name, or synthetic:gbm?...")],
    as_json: AsJson = False,
) -> None:
    """Load and validate a data source; print what was loaded."""
    from quantfleet.data import info, load

    d = info(load(source))
    if as_json:
        print_json(d)
        return
    for k, v in d.items():
        if isinstance(v, (list, dict)) and len(v) > 12:
            v = f"{len(v)} entries"
        typer.echo(f"{k:>18}: {v}")
