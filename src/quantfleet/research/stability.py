"""Parameter stability of a tournament's picks: is the chosen combo on a plateau or a spike?

For each (strategy, asset) pair and for each strategy (its assets averaged), every combo of
the strategy's grid has one out-of-sample score: its ``metric`` on each window's test bars,
averaged over the windows (:func:`combo_metric`). On that grid:

- the **two most important parameters** are the two dimensions whose marginal means of the
  score vary most (range of the per-value means; :func:`important_dims`); a strategy with
  one varying parameter gets a 1-D profile;
- the **map** is the score averaged over the other dimensions on the grid of those two
  (:func:`stability_map`);
- the **plateau drop** at the chosen combo (the one the walk-forward selected in most
  windows; :func:`chosen_combo`) is how far the score falls from it to the mean of its
  ±1-grid-step neighbours, in cross-grid standard deviations (:func:`plateau_drop`). A drop
  above :data:`CLIFF_DROP` flags the pick as a spike on a cliff edge (``stable`` False).

Definitions, formulas and references: docs/overfit.md, "Parameter stability".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quantfleet.kernels.metrics import metric_sign

__all__ = [
    "CLIFF_DROP",
    "chosen_combo",
    "combo_metric",
    "important_dims",
    "pair_stability",
    "plateau_drop",
    "stability_line",
    "stability_map",
    "stability_table",
    "strategy_stability",
]

CLIFF_DROP = 1.0
"""A chosen combo whose ±1-step neighbours score on average more than this many cross-grid
standard deviations below it is flagged: ``stable`` is False."""


def combo_metric(oos: np.ndarray) -> np.ndarray:
    """Each combo's out-of-sample score: the mean over windows of its metric, NaN windows
    skipped (NaN when every window is NaN). ``oos``: (windows, combos)."""
    oos = np.asarray(oos, dtype=np.float64)
    fin = np.isfinite(oos)
    n = fin.sum(axis=0)
    s = np.where(fin, oos, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def chosen_combo(chosen: np.ndarray, n_combos: int) -> int:
    """The combo selected in most windows (``chosen``: each window's combo index, negative
    for a window that selected none); ties go to the lowest combo index; -1 when no window
    selected anything."""
    c = np.asarray(chosen, dtype=np.int64).ravel()
    c = c[c >= 0]
    if c.size == 0:
        return -1
    counts = np.bincount(c, minlength=n_combos)
    return int(np.argmax(counts))


def _levels(params: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Each dimension's sorted distinct values present on the grid and every combo's position
    among them (combos, dims): a grid step is one position."""
    vals, pos = [], np.empty(params.shape, dtype=np.int64)
    for d in range(params.shape[1]):
        u, inv = np.unique(params[:, d], return_inverse=True)
        vals.append(u)
        pos[:, d] = inv.ravel()
    return vals, pos


def important_dims(params: np.ndarray, score: np.ndarray) -> list[int]:
    """The (at most two) dimensions that matter most: among dimensions with at least two
    values on the grid, the largest range (max − min) of the marginal means of ``score``
    (the mean over the finite-score combos having each value); ties in dimension order.
    A dimension whose marginal means are all NaN has importance 0."""
    params = np.asarray(params, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    vals, pos = _levels(params)
    imp = []
    for d, u in enumerate(vals):
        if u.size < 2:
            continue
        means = _group_means(pos[:, d], u.size, score)
        fin = means[np.isfinite(means)]
        imp.append((-(float(fin.max() - fin.min()) if fin.size else 0.0), d))
    return [d for _, d in sorted(imp)[:2]]


def _group_means(groups: np.ndarray, n: int, score: np.ndarray) -> np.ndarray:
    fin = np.isfinite(score)
    cnt = np.bincount(groups[fin], minlength=n)
    tot = np.bincount(groups[fin], weights=score[fin], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def stability_map(params: np.ndarray, score: np.ndarray, dims: Sequence[int]
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """The values of ``dims`` (one or two) present on the grid and the mean of the
    finite scores of the combos at each of their cells, averaging over the other dimensions:
    (len(v1),) or (len(v1), len(v2)); NaN where no combo has a finite score."""
    params = np.asarray(params, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    vals, pos = _levels(params)
    dims = list(dims)
    shape = tuple(vals[d].size for d in dims)
    flat = np.ravel_multi_index(tuple(pos[:, d] for d in dims), shape)
    m = _group_means(flat, int(np.prod(shape)), score).reshape(shape)
    return [vals[d] for d in dims], m


def plateau_drop(params: np.ndarray, score: np.ndarray, chosen: int,
                 metric: str = "sharpe") -> tuple[float, int]:
    """How far the score falls from the chosen combo to its neighbours, scale-free:

        drop = sign · (s₀ − mean_{j ∈ N} s_j) / std_{all combos}(s)

    ``N``: the other combos within one grid step of the chosen one on every dimension (a step
    is one position among the values present on the grid for that dimension; Chebyshev
    distance 1), finite scores only; ``sign`` −1 for a lower-is-better metric; the standard
    deviation (ddof 0) over every finite-score combo. Returns (drop, |N|); drop is NaN when
    the chosen combo has no finite score or no neighbour does, 0 when every score is equal."""
    params = np.asarray(params, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if chosen < 0 or not np.isfinite(score[chosen]):
        return float("nan"), 0
    _, pos = _levels(params)
    near = np.max(np.abs(pos - pos[chosen]), axis=1) <= 1
    near[chosen] = False
    near &= np.isfinite(score)
    n = int(near.sum())
    if n == 0:
        return float("nan"), 0
    fin = score[np.isfinite(score)]
    diff = metric_sign(metric) * (score[chosen] - score[near].mean())
    sd = fin.std()
    if sd == 0.0:
        return 0.0, n
    return float(diff / sd), n


def _summary(params: np.ndarray, score: np.ndarray, chosen: int, metric: str,
             names: Sequence[str] | None) -> dict[str, Any]:
    drop, n_near = plateau_drop(params, score, chosen, metric)
    out: dict[str, Any] = {
        "chosen": chosen, "plateau_drop": drop, "neighbours": n_near,
        "stable": None if drop != drop else bool(drop <= CLIFF_DROP),
    }
    if names is None:
        return out
    dims = important_dims(params, score)
    out["chosen_params"] = ({n: float(v) for n, v in zip(names, params[chosen], strict=True)}
                            if chosen >= 0 else None)
    out["chosen_score"] = float(score[chosen]) if chosen >= 0 else float("nan")
    out["params"] = [names[d] for d in dims]
    if dims:
        vals, m = stability_map(params, score, dims)
        out["values"] = [v.tolist() for v in vals]
        out["map"] = m.tolist()
    else:
        out["values"], out["map"] = [], []
    return out


def pair_stability(params: np.ndarray, oos: np.ndarray, chosen: np.ndarray,
                   metric: str = "sharpe") -> dict[str, Any]:
    """One (strategy, asset)'s stability (computed in the tournament's worker):
    ``score`` (each combo's :func:`combo_metric` of ``oos`` (windows, combos)), ``chosen``
    (the windows' picks), ``pick`` (:func:`chosen_combo`), ``plateau_drop``, ``neighbours``
    and ``stable`` (None when the drop is NaN)."""
    score = combo_metric(oos)
    pick = chosen_combo(chosen, score.size)
    s = _summary(np.asarray(params, dtype=np.float64), score, pick, metric, None)
    return {"score": score, "chosen": np.asarray(chosen, dtype=np.int64),
            "pick": pick, "plateau_drop": s["plateau_drop"], "neighbours": s["neighbours"],
            "stable": s["stable"]}


def strategy_stability(strategy: str, names: Sequence[str], params: np.ndarray,
                       scores: Sequence[np.ndarray], chosen: Sequence[np.ndarray],
                       metric: str = "sharpe") -> dict[str, Any]:
    """A strategy's stability block over its assets: the score of each combo is the mean
    over assets (NaN skipped) of the pairs' scores; the chosen combo is the one selected in
    most windows over all its pairs (ties: lowest index). Keys: ``strategy``, ``metric``,
    ``assets``, ``params`` (the important dimensions' names, 0-2), ``values`` (their grid
    values), ``map`` (nested lists), ``chosen`` (index), ``chosen_params``,
    ``chosen_score``, ``plateau_drop``, ``neighbours``, ``stable``."""
    params = np.asarray(params, dtype=np.float64)
    score = combo_metric(np.vstack([np.asarray(s, dtype=np.float64) for s in scores]))
    picks = np.concatenate([np.asarray(c, dtype=np.int64).ravel() for c in chosen])
    pick = chosen_combo(picks, score.size)
    return {"strategy": strategy, "metric": metric, "assets": len(scores),
            **_summary(params, score, pick, metric, list(names))}


def stability_line(block: dict[str, Any]) -> str:
    """One labelled line of a strategy's block, e.g. ``stability rsi (sharpe, mean OOS over
    windows and 2 assets): plateau drop 1.86 std at window=30, lower=40, upper=60 (5
    neighbours) — a spike on a cliff edge (> 1 std)``; n/a when the drop is undefined."""
    head = (f"stability {block['strategy']} ({block['metric']}, mean OOS over windows and "
            f"{block['assets']} asset{'s' if block['assets'] != 1 else ''}): ")
    cp = block.get("chosen_params")
    at = ", ".join(f"{k}={v:g}" for k, v in cp.items()) if cp else "no chosen combo"
    drop = block["plateau_drop"]
    if drop != drop:
        why = "no neighbour with a score" if cp else "no window selected a combo"
        return head + f"plateau drop n/a at {at} ({why})"
    verdict = (f"a plateau (<= {CLIFF_DROP:g} std)" if block["stable"]
               else f"a spike on a cliff edge (> {CLIFF_DROP:g} std)")
    return head + (f"plateau drop {drop:.2f} std at {at} ({block['neighbours']} "
                   f"neighbour{'s' if block['neighbours'] != 1 else ''}) — {verdict}")


def stability_table(blocks: Sequence[dict[str, Any]]) -> Any:
    """The stability maps as one long table: strategy, param1, value1, param2, value2 (None
    for a 1-D profile), metric, score (the map's cell), chosen (the cell holds the chosen
    combo's values of those parameters)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for b in blocks:
        p = b.get("params") or []
        cp = b.get("chosen_params") or {}
        if len(p) == 1:
            for v, s in zip(b["values"][0], b["map"], strict=True):
                rows.append({"strategy": b["strategy"], "param1": p[0], "value1": v,
                             "param2": None, "value2": None, "metric": b["metric"],
                             "score": s, "chosen": cp.get(p[0]) == v})
        elif len(p) == 2:
            for i, v1 in enumerate(b["values"][0]):
                for j, v2 in enumerate(b["values"][1]):
                    rows.append({"strategy": b["strategy"], "param1": p[0], "value1": v1,
                                 "param2": p[1], "value2": v2, "metric": b["metric"],
                                 "score": b["map"][i][j],
                                 "chosen": cp.get(p[0]) == v1 and cp.get(p[1]) == v2})
    cols = ["strategy", "param1", "value1", "param2", "value2", "metric", "score", "chosen"]
    return pd.DataFrame(rows, columns=cols)
