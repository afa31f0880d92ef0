"""``strategies`` and ``data info``: what can be tested, on what data."""

from __future__ import annotations

from typing import Annotated

import typer

from quantfleet.commands.options import AsJson, StoreUrl, print_json, store_url

__all__ = ["app", "data_info", "data_put", "strategies"]

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
    source: Annotated[str, typer.Argument(help="CSV/Parquet path, dataset name, synthetic:gbm?..., or shards:NAME[@HASH] (with --store).")],
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """Load and validate a data source; print what was loaded. A shard dataset: its manifest
    (nothing is loaded)."""
    from quantfleet.data import info, load
    from quantfleet.store.datasets import parse_shards

    if parse_shards(source) is not None:
        d = _shards_info(source, store_url(store))
    else:
        d = info(load(source))
    if as_json:
        print_json(d)
        return
    for k, v in d.items():
        if isinstance(v, (list, dict)) and len(v) > 12:
            v = f"{len(v)} entries"
        typer.echo(f"{k:>18}: {v}")


def _shards_info(source: str, url: str) -> dict:
    from quantfleet.store import Store
    from quantfleet.store.datasets import open_dataset

    ds = open_dataset(Store.open(url), source)
    m = ds.manifest
    return {"source": ds.reference, "store": ds.store.url, "manifest": ds.manifest_hash,
            "previous": m.get("previous"), "from": m["source"], "fingerprint": m["fingerprint"],
            "assets": [s["asset"] for s in m["shards"]], "n_assets": len(m["shards"]),
            "bars": m["n_bars"], "start": m["start"], "end": m["end"], "columns": m["columns"],
            "periods_per_year": m["periods_per_year"],
            "shard_bytes": sum(s["bytes"] for s in m["shards"])}


@app.command("put")
def data_put(
    source: Annotated[str, typer.Argument(help="CSV/Parquet path, dataset name, or synthetic:gbm?...")],
    store: StoreUrl = None,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name (default: from the source, e.g. the file's stem).")] = None,
    as_json: AsJson = False,
) -> None:
    """Write a data source to the store as one Parquet shard per asset plus a manifest;
    print the reference (shards:NAME@HASH) a research command's data argument takes."""
    from quantfleet.data import load
    from quantfleet.data.loaders import fingerprint_source
    from quantfleet.store import Store
    from quantfleet.store.datasets import dataset_name, put_dataset

    if name is not None:
        dataset_name(name)
    market = load(source)
    st = Store.open(store_url(store))
    out = put_dataset(st, market, name=name, fingerprint=fingerprint_source(source))
    out["store"] = st.url
    if as_json:
        print_json(out)
        return
    state = "written" if out["created"] else "unchanged (the latest version holds these shards)"
    typer.echo(f"{out['name']}: {out['assets']} assets x {out['bars']} bars, "
               f"{out['bytes']} bytes of shards in {out['store']}; {state}")
    if out["created"] and out["previous"]:
        typer.echo(f"new version; the previous one stays readable as "
                   f"shards:{out['name']}@{out['previous'][:12]}")
    typer.echo(out["reference"])
