"""Options and parsing every command shares, defined once: ``--grid``, ``--param``, costs,
executor options, ``--store`` / ``--no-store``, ``--json``; output helpers; and the config a
research command runs as (a one-stage run of the pipeline's stages)."""

from __future__ import annotations

import gc
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

__all__ = [
    "DEFAULT_STORE",
    "AsJson",
    "AssetOpt",
    "BorrowRate",
    "DataArg",
    "Executor",
    "Fee",
    "Fill",
    "Fraction",
    "LongShort",
    "NoStore",
    "Ppy",
    "RayAddress",
    "Slip",
    "StopLoss",
    "StoreUrl",
    "StrategyOpt",
    "TakeProfit",
    "TrailingStop",
    "VolCap",
    "VolTarget",
    "VolWindow",
    "Workers",
    "check_ppy",
    "execution_settings",
    "fail",
    "fmt",
    "gc_paused",
    "parse_grid",
    "parse_params",
    "print_json",
    "print_rows",
    "research_config",
    "run_research",
    "split",
    "store_url",
    "window_len",
]

DEFAULT_STORE = "./lakehouse"

DataArg = Annotated[str, typer.Argument(help="CSV/Parquet path, dataset name, or synthetic:gbm?...")]
Fee = Annotated[float, typer.Option("--fee-bps", help="Fee per fill in basis points of traded value.")]
Slip = Annotated[float, typer.Option("--slippage-bps", help="Slippage per fill in basis points.")]
Ppy = Annotated[float | None, typer.Option("--periods-per-year", help="Bars per year (default: inferred from timestamps).")]
LongShort = Annotated[bool, typer.Option("--long-short", help="Allow short positions.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
StrategyOpt = Annotated[str, typer.Option("--strategy", "-s", help="Strategy name.")]
AssetOpt = Annotated[list[str] | None, typer.Option("--asset", "-a",
                                                    help="Asset(s), repeatable (default: all).")]
Executor = Annotated[str, typer.Option("--executor", help="serial|processes|ray|auto")]
Workers = Annotated[int | None, typer.Option("--workers", help="Parallel workers (default: CPUs).")]
RayAddress = Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (default: embedded local Ray).")]
StoreUrl = Annotated[str | None, typer.Option("--store", help=f"Store URL: a folder, file://..., s3://bucket/prefix, memory://... (default: env QUANTFLEET_STORE, else {DEFAULT_STORE}).")]
NoStore = Annotated[bool, typer.Option("--no-store", help="Do not record the run in the store.")]

# execution options (docs/conventions.md, "Execution options"); every research command takes them
Fill = Annotated[str, typer.Option("--fill", help="close: fill at the decision bar's close; next_open: at the next bar's open.")]
StopLoss = Annotated[float | None, typer.Option("--stop-loss", help="Exit when price moves this fraction against the entry fill (e.g. 0.05).")]
TakeProfit = Annotated[float | None, typer.Option("--take-profit", help="Exit when price moves this fraction in favour of the entry fill (e.g. 0.10).")]
TrailingStop = Annotated[float | None, typer.Option("--trailing-stop", help="Exit this fraction below the highest high since entry (above the lowest low for shorts).")]
Fraction = Annotated[float, typer.Option("--fraction", help="Fraction of equity a position takes (size set at each entry).")]
VolTarget = Annotated[float | None, typer.Option("--vol-target", help="Annualised volatility an entry is sized to (e.g. 0.15).")]
VolWindow = Annotated[int, typer.Option("--vol-window", help="Bars of close-to-close returns --vol-target estimates volatility from.")]
VolCap = Annotated[float, typer.Option("--vol-cap", help="Largest size --vol-target may give.")]
BorrowRate = Annotated[float, typer.Option("--borrow-rate", help="Annual borrow rate charged per bar on short positions (e.g. 0.02).")]


def store_url(store: str | None) -> str:
    """``--store``, else ``$QUANTFLEET_STORE``, else ``./lakehouse``: the one default."""
    return store or os.environ.get("QUANTFLEET_STORE") or DEFAULT_STORE


def fail(msg: str) -> None:
    """Bad input: one line on stderr, exit code 2."""
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for a short command's body (as it was before,
    after). A short command is mostly start-up: numba's import and its target initialisation
    on the first compiled-kernel load create hundreds of thousands of long-lived objects, and
    the collector would walk them again and again as they grow; the body itself makes little
    cyclic garbage. Not for a command whose work grows with its input (a sweep, a tournament):
    its garbage would be kept until it ends."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def execution_settings(fill: str = "close", stop_loss: float | None = None,
                       take_profit: float | None = None, trailing_stop: float | None = None,
                       fraction: float = 1.0, vol_target: float | None = None,
                       vol_window: int = 20, vol_cap: float = 1.0,
                       borrow_rate: float = 0.0) -> dict[str, Any]:
    """The ``[execution]`` config table of the execution flags, validated (one-line errors
    naming the option and a typical value)."""
    from quantfleet.backtest.terms import Execution

    ex = Execution(fill=fill, stop_loss=stop_loss, take_profit=take_profit,
                   trailing_stop=trailing_stop, fraction=fraction, vol_target=vol_target,
                   vol_window=vol_window, vol_cap=vol_cap, borrow_rate=borrow_rate)
    return ex.settings()


def check_ppy(ppy: float | None) -> None:
    if ppy is not None and ppy <= 0:
        fail(f"--periods-per-year must be > 0 (got {ppy}); e.g. 252 for daily stocks")


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v


def print_json(obj: Any) -> None:
    def clean(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return _jsonable(o)

    typer.echo(json.dumps(clean(obj), indent=2, default=str))


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def print_rows(rows: list[dict], title: str = "", skip: tuple[str, ...] = ("params", "strategy"),
               first: tuple[str, ...] = ()) -> None:
    """A table of ``rows`` (their keys as columns, ``skip`` left out). When the terminal is
    too narrow for every column, whole columns are left out and named under the table —
    never printed cut to "0…": the columns in ``first`` are kept before the others (which go
    from the left); the kept ones stay in their order."""
    from rich.console import Console
    from rich.table import Table

    if not rows:
        typer.echo("(no rows)")
        return
    console = Console()
    cols = [c for c in rows[0] if c not in skip]
    cells = {c: [fmt(r[c]) for r in rows] for c in cols}
    # a column needs its widest cell or header, plus rich's padding and border (3)
    need = {c: max(len(str(c)), *(len(v) for v in cells[c])) + 3 for c in cols}
    keep, used = set(), 1
    for c in [c for c in first if c in need] + [c for c in cols if c not in first]:
        if keep and used + need[c] > console.width:
            break
        keep.add(c)
        used += need[c]
    shown = [c for c in cols if c in keep]
    t = Table(title=title)
    for c in shown:
        t.add_column(c, justify="right" if isinstance(rows[0][c], (int, float)) else "left",
                     no_wrap=True)
    for i in range(len(rows)):
        t.add_row(*[cells[c][i] for c in shown])
    console.print(t)
    hidden = [c for c in cols if c not in keep]
    if hidden:
        typer.echo(f"not shown ({console.width} columns wide): {', '.join(hidden)}; a wider "
                   f"terminal or --json shows them")


def _number(text: str, what: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        fail(f"{what}: {text!r} is not a number")
        raise  # unreachable


def parse_params(items: list[str]) -> dict[str, int | float]:
    """``["fast=10", "slow=50"]`` -> ``{"fast": 10, "slow": 50}``."""
    out: dict[str, int | float] = {}
    for it in items:
        if "=" not in it:
            fail(f"--param {it!r}: expected KEY=VALUE, e.g. --param fast=10")
        k, v = it.split("=", 1)
        out[k.strip()] = _number(v.strip(), f"--param {k.strip()}")
    return out


def parse_grid(items: list[str]) -> dict[str, list[int | float]]:
    """``K=START:STOP:STEP`` (inclusive) or ``K=v1,v2,...`` for each item."""
    grid: dict[str, list[int | float]] = {}
    for it in items:
        if "=" not in it:
            fail(f"--grid {it!r}: expected K=START:STOP:STEP or K=v1,v2")
        k, v = (s.strip() for s in it.split("=", 1))
        if ":" in v:
            parts = v.split(":")
            if len(parts) not in (2, 3):
                fail(f"--grid {it!r}: expected K=START:STOP:STEP (inclusive), e.g. fast=5:49:2")
            start, stop = (_number(p, f"--grid {k}") for p in parts[:2])
            step = _number(parts[2], f"--grid {k}") if len(parts) == 3 else 1
            if step <= 0:
                fail(f"--grid {k}: step must be > 0 (got {step})")
            if stop < start:
                fail(f"--grid {k}: stop {stop} is below start {start}")
            if all(isinstance(x, int) for x in (start, stop, step)):
                vals: list[int | float] = list(range(start, stop + 1, step))
            else:
                n = int(math.floor((stop - start) / step + 1e-9)) + 1
                vals = [round(start + i * step, 12) for i in range(n)]
        else:
            vals = [_number(x.strip(), f"--grid {k}") for x in v.split(",") if x.strip()]
        if not vals:
            fail(f"--grid {k}: no values")
        grid[k] = vals
    return grid


def split(text: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None stays None."""
    if text is None:
        return None
    return [x.strip() for x in text.split(",") if x.strip()]


def window_len(text: str | None) -> int | str | None:
    """A window length: bars (``252``) or a duration (``2Y``)."""
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text.strip()


_OFF = {"backtest", "sweep", "tournament", "evolution", "portfolio"}


def research_config(section: str, settings: dict[str, Any], *, data: str, store: str | None,
                    executor: str = "serial", workers: int | None = None,
                    ray_address: str | None = None, fee_bps: float = 0.0,
                    slippage_bps: float = 0.0, **sections: dict[str, Any]) -> Any:
    """The pipeline config of a research command: ``section`` on with ``settings``, every
    other research section off, no report."""
    from quantfleet.backtest.terms import Costs
    from quantfleet.pipeline.config import validate_config

    Costs(fee_bps, slippage_bps)  # its errors name the flag's range and a typical value
    doc: dict[str, Any] = {
        "name": section, "store": store_url(store), "data": {"source": data},
        "executor": {"kind": executor, "workers": workers, "ray_address": ray_address},
        "costs": {"fee_bps": fee_bps, "slippage_bps": slippage_bps},
        "report": {"enabled": False},
        **{s: {"enabled": False} for s in _OFF},
    }
    doc[section] = {"enabled": True, **settings}
    for name, extra in sections.items():
        doc[name] = {**doc.get(name, {}), **extra}
    return validate_config(doc, "options")


def run_research(config: Any, command: str, *, no_store: bool, quiet: bool = False,
                 progress: bool = False) -> Any:
    """Run a research command's stages (no Prefect) and record the run unless ``no_store``.
    ``backtest`` (one backtest, over in a moment) serves metrics only when asked for."""
    from quantfleet.pipeline.record import run_stages

    out = run_stages(config, command, record=not no_store, log=lambda m: None, progress=progress,
                     metrics_if_asked=command == "backtest")
    if out.run_id:
        typer.echo(f"recorded run {out.run_id} in {out.store_url}", err=True)
    return out
