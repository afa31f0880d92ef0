"""What a run would cost and how long it would take on N cloud nodes (Amdahl-style model).

Layer 4. Prices come from the versioned catalog ``instances.json`` beside this module
(approximate list prices; its ``date`` and ``source`` say where they come from).
The model and the break-even criterion are defined in docs/observe.md, "Cost".
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantfleet.errors import QuantfleetError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CATALOG_PATH",
    "DEFAULT_NODES",
    "IDLE_TAIL_S",
    "STARTUP_S",
    "break_even",
    "describe",
    "get_instance",
    "load_catalog",
    "run_inputs",
    "simulate",
    "what_if",
]

CATALOG_PATH = Path(__file__).with_name("instances.json")
DEFAULT_NODES = (1, 2, 4, 8, 16, 32)
STARTUP_S = 90.0
"""Assumed seconds from asking for a node to its first task (boot, image pull, join)."""
IDLE_TAIL_S = 60.0
"""Assumed seconds a node stays billed after its last task (teardown)."""
_ENTRY_KEYS = ("vcpus", "memory_gib", "on_demand_usd_h")
_NUMERIC = ("vcpus", "memory_gib", "on_demand_usd_h", "spot_usd_h", "min_billed_s")


def load_catalog(path: str | Path | None = None) -> dict[str, Any]:
    """The instance catalog: ``{"version", "date", "source", "currency", "instances":
    {name: {provider, region, arch, vcpus, memory_gib, on_demand_usd_h, spot_usd_h,
    min_billed_s}}}`` from ``path`` (default: the bundled ``instances.json``), plus
    ``file``: where it was read from (what the cost label names). A bad file raises a
    one-line :class:`QuantfleetError` naming the file and the field."""
    p = Path(path) if path is not None else CATALOG_PATH
    try:
        cat = json.loads(p.read_text())
    except FileNotFoundError:
        raise QuantfleetError(f"price list {str(p)!r} not found; give an existing JSON file "
                              f"shaped like quantfleet/observe/instances.json") from None
    except (OSError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise QuantfleetError(f"price list {str(p)!r} is not valid JSON ({msg})") from None
    _check_catalog(cat, str(p))
    cat = dict(cat)
    cat["file"] = ("quantfleet/observe/instances.json (bundled)" if path is None
                   else str(p))
    return cat


def _check_catalog(cat: Any, where: str) -> None:
    if not isinstance(cat, dict) or not isinstance(cat.get("instances"), dict):
        raise QuantfleetError(f"instance catalog {where}: expected an object with "
                              f"'instances' (name -> entry)")
    for k in ("version", "date", "source"):
        if k not in cat:
            raise QuantfleetError(f"price list {where}: lacks {k!r} (the label says where "
                                  f"and when the prices come from)")
    if not isinstance(cat["date"], str) or not cat["date"].strip():
        raise QuantfleetError(f"price list {where}: 'date' must be a date string, e.g. "
                              f"\"2024-06-01\" (got {cat['date']!r})")
    if not cat["instances"]:
        raise QuantfleetError(f"price list {where}: 'instances' is empty; add at least one "
                              f"instance type")
    for name, e in cat["instances"].items():
        if not isinstance(e, dict):
            raise QuantfleetError(f"price list {where}: instances.{name} must be an object")
        miss = [k for k in _ENTRY_KEYS if k not in e]
        if miss:
            raise QuantfleetError(f"price list {where}: instances.{name} lacks "
                                  f"{', '.join(miss)}")
        for k in _NUMERIC:
            v = e.get(k)
            if k in e and (isinstance(v, bool) or not isinstance(v, (int, float))
                           or not math.isfinite(v) or v < 0):
                raise QuantfleetError(f"price list {where}: instances.{name}.{k} must be a "
                                      f"number >= 0 (got {v!r})")
        if e["vcpus"] < 1:
            raise QuantfleetError(f"price list {where}: instances.{name}.vcpus must be >= 1 "
                                  f"(got {e['vcpus']!r})")


def get_instance(instance: str | Mapping[str, Any],
                 catalog: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The catalog entry of ``instance`` (a name) with its ``name``; a mapping with at least
    ``vcpus`` and ``on_demand_usd_h`` is accepted as a custom type."""
    if isinstance(instance, Mapping):
        miss = [k for k in ("vcpus", "on_demand_usd_h") if k not in instance]
        if miss:
            raise QuantfleetError(f"custom instance lacks {', '.join(miss)}; e.g. "
                                  f"{{'vcpus': 8, 'on_demand_usd_h': 0.357}}")
        return {"name": "custom", **instance}
    if not isinstance(instance, str):
        raise TypeError(f"instance must be a name or a mapping, got {type(instance).__name__}")
    cat = catalog if catalog is not None else load_catalog()
    table = cat["instances"]
    if instance in table:
        return {"name": instance, **table[instance]}
    lower = {k.lower(): k for k in table}
    if instance.lower() in lower:
        k = lower[instance.lower()]
        return {"name": k, **table[k]}
    close = difflib.get_close_matches(instance.lower(), list(lower), n=3, cutoff=0.5)
    hint = (f"did you mean {', '.join(lower[c] for c in close)}?" if close
            else f"known: {', '.join(sorted(table))}")
    raise QuantfleetError(f"unknown instance type {instance!r}; {hint}")


def _num(name: str, v: Any, *, low: float = 0.0, strict: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise QuantfleetError(f"{name} must be a finite number (got {v!r})")
    if v < low or (strict and v == low):
        raise QuantfleetError(f"{name} must be {'>' if strict else '>='} {low:g} (got {v!r})")
    return float(v)


def _whole(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise QuantfleetError(f"{name} must be a whole number >= 1 (got {v!r})")
    return v


def simulate(cpu_s: float, wall_s: float, workers_local: int, instance: str | Mapping[str, Any],
             nodes: int, spot: bool = False, startup_s: float = STARTUP_S,
             idle_tail_s: float = IDLE_TAIL_S, parallel_fraction: float | None = None, *,
             vcpu_speed: float = 1.0, min_billed_s: float | None = None,
             catalog: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Wall time and cost of the same work on ``nodes`` nodes of ``instance``.

    The local run took ``wall_s`` on ``workers_local`` workers and its tasks spent
    ``cpu_s`` CPU seconds (the parallel work P). The serial part S is what the local wall
    does not explain by perfectly spread work, ``max(0, wall_s − P / workers_local)``, or
    ``(1 − parallel_fraction) × wall_s`` when given. On the cluster (one worker per vCPU,
    each ``vcpu_speed`` × a local core)::

        compute_s = (S + P / (nodes × vcpus)) / vcpu_speed
        wall      = startup_s + compute_s
        billed    = max(min_billed_s, startup_s + compute_s + idle_tail_s)   per node
        cost      = nodes × billed / 3600 × price per hour (on-demand or spot)

    Returns a dict: ``instance, provider, nodes, vcpus, workers, spot, usd_per_h`` (per
    node), ``serial_s, parallel_s, compute_s, wall_s, billed_s`` (per node),
    ``cost_usd``, ``speedup`` (local wall / cluster wall).
    """
    P = _num("cpu_s", cpu_s)
    wall = _num("wall_s", wall_s, strict=True)
    wl = _whole("workers_local", workers_local)
    n = _whole("nodes", nodes)
    startup = _num("startup_s", startup_s)
    tail = _num("idle_tail_s", idle_tail_s)
    speed = _num("vcpu_speed", vcpu_speed, strict=True)
    inst = get_instance(instance, catalog)
    if parallel_fraction is None:
        S = max(0.0, wall - P / wl)
    else:
        f = _num("parallel_fraction", parallel_fraction)
        if f > 1:
            raise QuantfleetError(f"parallel_fraction must be in [0, 1] (got {f!r})")
        S = (1.0 - f) * wall
    if spot:
        price = inst.get("spot_usd_h")
        if price is None:
            raise QuantfleetError(f"instance {inst['name']} has no spot price in the catalog; "
                                  f"drop --spot or add spot_usd_h")
    else:
        price = inst["on_demand_usd_h"]
    price = float(price)
    vcpus = int(inst["vcpus"])
    minimum = _num("min_billed_s", min_billed_s if min_billed_s is not None
                   else inst.get("min_billed_s", 60))
    compute = (S + P / (n * vcpus)) / speed
    cluster_wall = startup + compute
    billed = max(minimum, startup + compute + tail)
    return {
        "instance": inst["name"], "provider": inst.get("provider", ""), "nodes": n,
        "vcpus": vcpus, "workers": n * vcpus, "spot": bool(spot), "usd_per_h": price,
        "serial_s": S, "parallel_s": P, "compute_s": compute, "wall_s": cluster_wall,
        "billed_s": billed, "cost_usd": n * billed / 3600.0 * price,
        "speedup": wall / cluster_wall if cluster_wall > 0 else math.inf,
    }


def what_if(cpu_s: float, wall_s: float, workers_local: int, instance: str | Mapping[str, Any],
            nodes: Sequence[int] = DEFAULT_NODES, spot: bool = False, *,
            laptop_usd_per_h: float = 0.0, **kw: Any) -> pd.DataFrame:
    """One row for the local run (``setup="local"``, ``nodes=0``, cost at
    ``laptop_usd_per_h``) and one per node count; keyword options go to :func:`simulate`."""
    rate = _num("laptop_usd_per_h", laptop_usd_per_h)
    wall = _num("wall_s", wall_s, strict=True)
    wl = _whole("workers_local", workers_local)
    if not nodes:
        raise QuantfleetError("nodes: give at least one node count, e.g. [1, 2, 4, 8]")
    rows = [{"setup": f"local ({wl} workers)", "nodes": 0, "workers": wl, "wall_s": wall,
             "speedup": 1.0, "billed_s": wall, "usd_per_h": rate,
             "cost_usd": wall / 3600.0 * rate}]
    for n in nodes:
        r = simulate(cpu_s, wall, wl, instance, n, spot, **kw)
        rows.append({"setup": f"{n} × {r['instance']} " + ("spot" if spot else "on-demand"),
                     "nodes": n, "workers": r["workers"], "wall_s": r["wall_s"],
                     "speedup": r["speedup"], "billed_s": r["billed_s"],
                     "usd_per_h": r["usd_per_h"], "cost_usd": r["cost_usd"]})
    import pandas as pd

    return pd.DataFrame(rows)


def break_even(cpu_s: float, wall_s: float, workers_local: int,
               instance: str | Mapping[str, Any], nodes: Sequence[int] = DEFAULT_NODES,
               spot: bool = False, *, laptop_usd_per_h: float = 0.0,
               value_usd_per_h: float | None = None, budget_usd: float | None = None,
               **kw: Any) -> dict[str, Any]:
    """Where the cluster beats the laptop on time per dollar.

    For each node count N: ``saved_s`` = local wall − cluster wall, ``extra_usd`` = cluster
    cost − laptop cost of the local run, and ``usd_per_hour_saved = extra_usd / (saved_s /
    3600)`` (the price of one hour of waiting saved; defined when ``saved_s > 0``).

    - ``best_nodes``: among N faster than the laptop and within ``budget_usd``, the N with
      the lowest ``usd_per_hour_saved`` (most time saved per dollar); if some N is also
      cheaper than the laptop (``extra_usd <= 0``), the fastest of those. None if no N is
      faster.
    - with ``value_usd_per_h`` (what an hour of waiting is worth to you):
      ``pays_off_from`` = the smallest N whose ``usd_per_hour_saved <= value_usd_per_h``,
      and ``best_net_nodes`` = the N maximizing ``value × saved_h − extra_usd`` (if > 0).
    """
    rate = _num("laptop_usd_per_h", laptop_usd_per_h)
    if budget_usd is not None:
        _num("budget_usd", budget_usd)
    if value_usd_per_h is not None:
        _num("value_usd_per_h", value_usd_per_h)
    table = what_if(cpu_s, wall_s, workers_local, instance, nodes, spot,
                    laptop_usd_per_h=rate, **kw)
    local = table.iloc[0]
    rows = []
    for r in table.iloc[1:].to_dict("records"):
        saved = float(local["wall_s"] - r["wall_s"])
        extra = float(r["cost_usd"] - local["cost_usd"])
        per_h = extra / (saved / 3600.0) if saved > 0 else math.inf
        rows.append({"nodes": int(r["nodes"]), "wall_s": r["wall_s"], "cost_usd": r["cost_usd"],
                     "saved_s": saved, "extra_usd": extra, "usd_per_hour_saved": per_h})
    ok = [r for r in rows if r["saved_s"] > 0
          and (budget_usd is None or r["cost_usd"] <= budget_usd)]
    free = [r for r in ok if r["extra_usd"] <= 0]
    if free:
        best = max(free, key=lambda r: r["saved_s"])
    elif ok:
        best = min(ok, key=lambda r: (r["usd_per_hour_saved"], r["nodes"]))
    else:
        best = None
    out: dict[str, Any] = {
        "instance": get_instance(instance, kw.get("catalog"))["name"], "spot": bool(spot),
        "laptop_usd_per_h": rate, "local_wall_s": float(local["wall_s"]),
        "local_cost_usd": float(local["cost_usd"]), "budget_usd": budget_usd,
        "rows": rows, "best_nodes": best["nodes"] if best else None,
        "best_usd_per_hour_saved": best["usd_per_hour_saved"] if best else None,
        "criterion": "most waiting time saved per extra dollar: min over N faster than the "
                     "laptop (and within budget) of (cluster cost - laptop cost) / hours saved",
        "value_usd_per_h": value_usd_per_h, "pays_off_from": None, "best_net_nodes": None,
    }
    if value_usd_per_h is not None:
        pays = [r["nodes"] for r in ok if r["usd_per_hour_saved"] <= value_usd_per_h]
        out["pays_off_from"] = min(pays) if pays else None
        net = [(value_usd_per_h * r["saved_s"] / 3600.0 - r["extra_usd"], r["nodes"])
               for r in ok]
        net = [x for x in net if x[0] > 0]
        out["best_net_nodes"] = max(net)[1] if net else None
    return out


def run_inputs(spans: Any, wall_s: float, workers: int) -> dict[str, Any]:
    """``cpu_s`` (∑ task span CPU seconds, NaN as 0; the driver's own steps are the serial
    part, not parallel work), ``wall_s`` and ``workers_local`` of a run, the first three
    arguments of :func:`simulate`."""
    from quantfleet.observe.heatmap import span_frame
    from quantfleet.observe.spans import DRIVER_NODE

    df = span_frame(spans)
    df = df[df["node"] != DRIVER_NODE]
    return {"cpu_s": float(df["cpu_s"].fillna(0.0).sum()), "wall_s": float(wall_s),
            "workers_local": int(workers)}


def describe(catalog: Mapping[str, Any], instance: str, spot: bool = False, *,
             startup_s: float = STARTUP_S, idle_tail_s: float = IDLE_TAIL_S,
             vcpu_speed: float = 1.0) -> dict[str, Any]:
    """The label every simulated cost carries, and its assumptions.

    Returns ``label`` ("simulated from <file> v<version> of <date>, approximate list
    prices; assumes ..."), ``catalog`` {file, version, date, currency, source},
    ``instance``, ``spot`` and ``assumptions`` {name: value} (the model's inputs that are
    not measured: start-up, idle tail, vCPU speed, minimum billing, one worker per vCPU,
    what is excluded).
    """
    inst = get_instance(instance, catalog)
    minimum = inst.get("min_billed_s", 60)
    price = (inst["spot_usd_h"] if spot and inst.get("spot_usd_h") is not None
             else inst["on_demand_usd_h"])
    file = catalog.get("file", "quantfleet/observe/instances.json (bundled)")
    assumptions = {
        "start-up per node (s)": float(startup_s),
        "idle tail billed per node (s)": float(idle_tail_s),
        "vCPU speed (x one local core)": float(vcpu_speed),
        "minimum billed per node (s)": float(minimum),
        "workers": "one per vCPU",
        "price": f"{'spot' if spot else 'on-demand'} {inst['name']} ${float(price):.4g}/h",
        "serial part": "what the local wall time does not explain by the tasks' CPU seconds "
                       "spread over the local workers",
        "excluded": "storage, network egress, taxes, data transfer to the cluster",
    }
    label = (f"simulated from {file} v{catalog.get('version')} of {catalog.get('date')}, "
             f"approximate list prices; assumes {startup_s:g} s start-up and {idle_tail_s:g} s "
             f"idle tail per node, 1 vCPU = {vcpu_speed:g}x a local core, {minimum:g} s "
             f"minimum billing; excludes storage, egress and taxes")
    return {"label": label,
            "catalog": {"file": file, "version": catalog.get("version"),
                        "date": catalog.get("date"), "currency": catalog.get("currency", "USD"),
                        "source": catalog.get("source")},
            "instance": inst["name"], "spot": bool(spot), "assumptions": assumptions}
