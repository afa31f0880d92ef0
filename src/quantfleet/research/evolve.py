"""Genetic evolution of strategy parameters: in-sample fitness, out-of-sample check of winners.

``evolve`` runs a ``GeneticSearcher`` through the shared search driver on any Executor. With a
Ray executor the whole ask → evaluate → tell loop runs in a coordinator actor on the head node
(``executor.host``, :mod:`quantfleet.compute.coordinator`) that Ray restarts when it dies and
that resumes from the checkpoint; the driver starts it and follows its rounds. Elsewhere the
loop runs in the driver. Checkpoints after every generation make ``--resume`` (and a restarted
coordinator) end exactly where an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.backtest.execution import execution_rows, execution_space, searched_in
from quantfleet.backtest.job import BacktestJob, evaluate
from quantfleet.backtest.terms import Costs, Execution, Terms
from quantfleet.codeprint import code_fingerprint
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.kernels.metrics import METRIC_NAMES, check_metric, metric_sign
from quantfleet.research.genetic import GeneticSearcher
from quantfleet.research.searcher import (
    FALLBACK_FITNESS,
    Checkpoint,
    GridSearcher,
    RandomSearcher,
    as_checkpoint,
    mean_over_assets,
    run_search,
    trial_job,
)
from quantfleet.strategies.registry import get
from quantfleet.strategies.space import ParamSpace

__all__ = ["CHECKPOINT", "RECORD", "SEARCHERS", "EvolveResult", "check_searcher",
           "checked_search", "data_fingerprint", "evolve", "make_searcher"]

CHECKPOINT = "evolve.json"
RECORD = "evolve.config.json"
SEARCHERS = ("genetic", "random", "grid", "optuna:tpe", "optuna:cmaes", "optuna:nsgaii",
             "optuna:random")
"""What ``evolve(searcher=...)`` / ``--searcher`` accepts."""


def check_searcher(searcher: str) -> str:
    """``searcher`` if it is one of :data:`SEARCHERS`; else a one-line error listing them."""
    if searcher not in SEARCHERS:
        raise QuantfleetError(f"searcher {searcher!r}: unknown; use one of {', '.join(SEARCHERS)}")
    return searcher


def make_searcher(searcher: str, strategies: Sequence[str], *, population: int,
                  generations: int, seed: int, spaces: Mapping[str, ParamSpace] | None = None,
                  n_bars: int | None = None, **ga: Any) -> Any:
    """The searcher ``evolve`` runs, by name (:data:`SEARCHERS`).

    Every searcher proposes ``population`` trials a round for ``generations`` rounds
    (``population * generations`` in all), within ``spaces`` (default: each strategy's search
    space): ``genetic`` breeds each round from the last (``ga``: GeneticSearcher's options),
    ``random`` draws uniformly, ``optuna:NAME`` asks Optuna's sampler NAME
    (:class:`~quantfleet.research.optuna_search.OptunaSearcher`). ``grid`` ignores the budget:
    it evaluates every feasible combo of each space's grid (Float dims: 5 values), in grid
    order, ``population`` a round.
    """
    check_searcher(searcher)
    if ga and searcher != "genetic":
        raise QuantfleetError(f"{', '.join(sorted(ga))}: genetic-algorithm option(s), but the "
                              f"searcher is {searcher}; drop them or use --searcher genetic")
    if population < 1:
        raise QuantfleetError(f"population must be >= 1 (got {population})")
    if generations < 1:
        raise QuantfleetError(f"generations must be >= 1 (got {generations})")
    spaces = dict(spaces or {})
    if searcher == "genetic":
        return GeneticSearcher(strategies, population, generations, seed, spaces=spaces, **ga)
    if searcher == "random":
        return RandomSearcher(strategies, population * generations, seed, batch=population,
                              spaces=spaces)
    if searcher == "grid":
        return GridSearcher({s: (spaces.get(s) or get(s).space).grid(n_bars=n_bars)[0]
                             for s in strategies}, batch=population)
    from quantfleet.research.optuna_search import OptunaSearcher

    return OptunaSearcher(strategies, searcher.partition(":")[2], population * generations,
                          seed, batch=population, spaces=spaces)


@dataclass
class EvolveResult:
    """Winners (in and out of sample), per-generation history and overfitting statistics."""

    winners: list[dict[str, Any]]
    history: list[dict[str, Any]]
    n_evaluations: int
    n_failed: int
    n_cached: int
    split: int
    overfit: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    coordinator: dict[str, Any] | None = None


def _config(strategies, population, generations, seed, metric, train_frac, costs, long_short,
            assets, ga) -> dict[str, Any]:
    return {"strategies": list(strategies), "population": population,
            "generations": generations, "seed": seed, "metric": metric,
            "train_frac": train_frac, "fee_rate": costs.fee_rate, "long_short": long_short,
            "assets": list(assets), "ga": dict(sorted(ga.items()))}


def evolve(market: MarketData, strategies: Sequence[str], *, population: int = 100,
           generations: int = 20, seed: int = 0, metric: str = "sharpe",
           train_frac: float = 0.7, costs: Costs | None = None, long_short: bool = False,
           ppy: float | None = None, assets: Sequence[str] | None = None,
           executor: Any = None, checkpoint_dir: str | Path | Checkpoint | None = None,
           top: int = 5,
           spaces: Mapping[str, ParamSpace] | None = None,
           grid: Mapping[str, Sequence[Any]] | None = None,
           grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
           on_round: Callable[[dict[str, Any]], None] | None = None,
           execution: Execution | None = None, searcher: str = "genetic",
           **ga: Any) -> EvolveResult:
    """Evolve (strategy, params) individuals on the first ``train_frac`` of the bars.

    Fitness is the mean over assets of ``metric`` in sample; the ``top`` distinct winners are
    then evaluated on the remaining bars (out of sample).

    ``searcher`` (:data:`SEARCHERS`, :func:`make_searcher`) proposes the trials: the genetic
    algorithm by default; ``random``, ``grid`` or an Optuna sampler (``optuna:tpe``,
    ``optuna:cmaes``, ``optuna:nsgaii``, ``optuna:random``: ``pip install
    'quantfleet[search]'``) run through the same driver, executors, checkpoints and deflated
    Sharpe.

    ``grid`` / ``grids`` restrict the search space as the tournament's explicit grids do
    (:func:`quantfleet.research.tournament.resolve_grids`: a ``grid`` key applies to every
    strategy that has the parameter, ``grids[name]`` to one strategy and wins): each named
    parameter may only take the listed values (:meth:`ParamSpace.restrict`), so every candidate
    lies in the grid; strategies no key names search their full space.

    ``execution`` (:class:`~quantfleet.backtest.terms.Execution`; None: fill at the close, no
    stops) is how every trial trades. An execution option named in ``grid`` (e.g.
    ``{"stop_loss": [0.02, 0.04, 0.06]}``) is searched like a parameter: every strategy's
    space gains it as a last dimension (``backtest.execution.execution_space``), restricted to
    the listed values; winners' ``params`` then name it.

    ``checkpoint_dir`` keeps ``evolve.json`` after every generation beside
    ``evolve.config.json``, the record of what it is computed from (settings, a fingerprint
    of the data, the parameter spaces after restriction). Running again with the same record
    resumes; any difference is refused with one line naming what changed. A directory, or a
    :class:`~quantfleet.research.searcher.Checkpoint` standing for ``evolve.json`` itself (its
    ``sibling`` holds the record): the pipeline passes a
    ``quantfleet.store.StoreCheckpoint`` in the run's store (local folder or S3), which the
    Ray coordinator re-opens wherever it runs. Further keyword
    arguments go to GeneticSearcher (elite, tournament, crossover, mutation, immigrants,
    min_diversity).
    """
    check_metric(metric)
    check_searcher(searcher)
    if not 0.0 < train_frac <= 1.0:
        raise QuantfleetError(f"train_frac must be in (0, 1] (got {train_frac}); e.g. 0.7")
    costs = costs or Costs()
    rows = list(range(market.n_assets)) if assets is None else [market.asset_index(a) for a in assets]
    names = [get(s).name for s in strategies]
    for s in names:
        get(s).check_market(market)
    ppy = float(ppy) if ppy is not None else market.periods_per_year
    split = int(round(market.n_bars * train_frac))
    if split < 10:
        raise QuantfleetError(f"the in-sample part has {split} bars; use more data or a larger train_frac")
    execution = execution or Execution()
    searched = searched_in(get(names[0]), grid) if names else ()
    for name in names[1:]:
        if searched_in(get(name), grid) != searched:
            raise QuantfleetError(f"grid: execution option(s) {', '.join(searched)} are "
                                  f"parameters of strategy {name}; search them one at a time")
    cfg = _config(names, population, generations, seed, metric, train_frac, costs, long_short,
                  [market.assets[a] for a in rows], ga)
    if searcher != "genetic":  # absent: the genetic algorithm (records made before the choice)
        cfg["searcher"] = searcher
    if not execution.is_default or searched:
        cfg["execution"] = execution.settings()
        cfg["searched"] = list(searched)
    ex_spec = {k: v for k, v in (grid or {}).items() if k in searched}
    strat_grid = {k: v for k, v in (grid or {}).items() if k not in searched}
    spaces = _restricted(names, spaces, strat_grid, grids, market.n_bars)
    if searched:
        spaces = _with_execution(names, spaces, searched, execution, ex_spec, market.n_bars)
        execution_rows(Terms.of(costs, ppy, long_short, execution, searched),
                       np.array([[min(ex_spec[n]) for n in searched],
                                 [max(ex_spec[n]) for n in searched]]))
    search = make_searcher(searcher, names, population=population, generations=generations,
                           seed=seed, spaces=spaces, n_bars=market.n_bars, **ga)
    ck = record = None
    if checkpoint_dir is not None:
        ck = (checkpoint_dir if isinstance(checkpoint_dir, Checkpoint)
              else Path(checkpoint_dir) / CHECKPOINT)
        record = {**cfg, "data": data_fingerprint(market), "ppy": ppy,
                  "spaces": {n: (spaces.get(n) or get(n).space).to_dict() for n in names},
                  "code": code_fingerprint(__name__)}
    kw = dict(metric=metric, assets=rows, start=0, stop=split, fee_rate=costs.fee_rate,
              ppy=ppy, long_short=long_short, checkpoint=ck, on_round=on_round, stage="evolve")
    if "execution" in cfg:
        kw.update(execution=execution, searched=searched)
    host = getattr(executor, "host", None)
    coordinator = None
    if host is not None:
        # Ray: the loop lives in a coordinator actor pinned to the head, restarted from the
        # checkpoint when it dies (a path: on the head's filesystem; a store checkpoint: in
        # the store, which the actor re-opens there)
        hosted = host(checked_search, record, search, market, **kw)
        res, coordinator = hosted.value, hosted.to_dict()
    else:
        res = checked_search(record, search, market, executor=executor, **kw)
    terms = Terms.of(costs, ppy, long_short, execution, searched)
    winners = _out_of_sample(res.best, market, rows, split, metric, terms, top)
    overfit = _winner_dsr(winners, market, rows, split, terms, res)
    return EvolveResult(winners=winners, history=res.history, n_evaluations=res.n_evaluations,
                        n_failed=res.n_failed, n_cached=res.n_cached, split=split,
                        overfit=overfit, config=cfg, coordinator=coordinator)


def checked_search(record: dict[str, Any] | None, searcher: Any, market: MarketData, *,
                   checkpoint: Path | str | Checkpoint | None, **kw: Any) -> Any:
    """``run_search`` after checking that ``checkpoint`` was computed from ``record`` (refused
    in one line if not; the record is written beside it, ``sibling(RECORD)``, when new). Runs
    where the loop runs: in the driver, or in the Ray coordinator actor on the head node."""
    ck = as_checkpoint(checkpoint)
    if record is not None and ck is not None:
        _check_checkpoint(ck, record)
    return run_search(searcher, market, checkpoint=ck, **kw)


def data_fingerprint(market: MarketData) -> str:
    """A hex digest of the market's content: assets, timestamps and every price column.

    Two markets with the same digest give the same backtests; an evolution checkpoint records
    it so a resume on other data is refused instead of serving the old run's winners.
    """
    h = hashlib.sha256()
    h.update(json.dumps(list(market.assets)).encode() + b"\0")
    h.update(np.ascontiguousarray(market.timestamps).view(np.uint8).tobytes())
    cols = [(n, getattr(market, n)) for n in ("close", "open", "high", "low", "volume")]
    for name, arr in [*cols, *sorted(market.extra.items())]:
        if arr is None:
            continue
        h.update(b"\0" + name.encode() + b"\0")
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def _restricted(names, spaces, grid, grids, n_bars) -> dict[str, ParamSpace]:
    """Each strategy's search space narrowed to its explicit grid (absent: unchanged)."""
    out = dict(spaces or {})
    if not (grid or grids):
        return out
    from quantfleet.research.tournament import resolve_grids

    for name, spec in resolve_grids(names, grid, grids).items():
        out[name] = (out.get(name) or get(name).space).restrict(spec, n_bars)
    return out


def _with_execution(names, spaces, searched, execution, spec, n_bars) -> dict[str, ParamSpace]:
    """Each strategy's space (restricted or not) with the searched execution options appended,
    restricted to their listed values."""
    out = {}
    for name in names:
        base = spaces.get(name) or get(name).space
        view = execution_space(dataclasses.replace(get(name), space=base), searched, execution)
        out[name] = view.space.restrict(spec, n_bars)
    return out


def _params_dict(strategy: str, params: Sequence[float], terms: Terms) -> dict[str, Any]:
    """A trial's parameters by name, searched execution options included."""
    space = execution_space(get(strategy), terms.searched).space
    return space.to_dicts(np.array([params]))[0]


# what a checkpoint record's keys are called in messages
_LABELS = {"data": "data", "spaces": "parameter spaces (grid)", "ppy": "periods_per_year",
           "fee_rate": "costs", "execution": "execution options", "searched": "searched "
           "execution options", "code": "code (the quantfleet modules an evolution runs)"}


def _check_checkpoint(ck: Checkpoint, record: dict[str, Any]) -> None:
    """Resume only from a checkpoint computed from exactly ``record``; else write the record."""
    meta = ck.sibling(RECORD)
    root = getattr(ck, "folder", None) or str(ck)
    raw = meta.read()
    if raw is not None:
        old = json.loads(raw)
        if old != record:
            diff = [_LABELS.get(k, k) for k in {**old, **record} if old.get(k) != record.get(k)]
            raise QuantfleetError(
                f"{root}: the checkpoint there was made with other settings "
                f"({', '.join(diff)} differ); resume only with the same data and settings, "
                f"or use another checkpoint directory (or remove it) to start afresh")
    elif ck.read() is not None:
        raise QuantfleetError(
            f"{root}: the checkpoint there records nothing of the data and settings it was "
            f"computed from, so it cannot be resumed safely; remove it or use another directory")
    else:
        meta.write(json.dumps(record).encode())


def _out_of_sample(best, market, rows, split, metric, terms, top):
    k = METRIC_NAMES.index(metric)
    sign = metric_sign(metric)
    seen = set()
    out = []
    for trial, fit in best:
        key = (trial.strategy, trial.params)
        if key in seen or fit <= FALLBACK_FITNESS:
            continue
        seen.add(key)
        row: dict[str, Any] = {"strategy": trial.strategy,
                               "params": _params_dict(trial.strategy, trial.params, terms),
                               "generation": trial.generation, f"is_{metric}": sign * fit}
        if split < market.n_bars:
            m = evaluate(market, trial_job(trial.strategy, np.array([trial.params]), rows,
                                           split, market.n_bars, terms)).metrics
            vals = [float(mean_over_assets(m[:, :1, j], name)[0])
                    for j, name in enumerate(METRIC_NAMES)]
            row[f"oos_{metric}"] = vals[k]
            for j, name in enumerate(METRIC_NAMES):
                row[f"oos_mean_{name}"] = vals[j]
        out.append(row)
        if len(out) >= top:
            break
    return out


def _pooled_returns(market, rows, strategy, params, split, terms):
    """Per-bar in-sample returns of each params row, averaged over the assets: (k, bars)."""
    res = evaluate(market, BacktestJob(strategy, tuple(rows), params, stop=split, terms=terms,
                                       keep="returns"))
    acc = None
    for r in res.series:
        r = r[:, -split:] if r.shape[1] >= split else np.pad(r, ((0, 0), (split - r.shape[1], 0)))
        acc = r if acc is None else acc + r
    return acc / len(rows)


def _winner_dsr(winners, market, rows, split, terms, res, max_trials: int = 400):
    """Deflated Sharpe of the winner, deflated by every distinct evaluation it was chosen among.

    N = the distinct (strategy, params) evaluated with a finite fitness over all generations:
    a repeat served from the cache is the same trial again, and a failed evaluation (exception,
    timeout, NaN metric: ``FALLBACK_FITNESS``) never competed. The statistic is the Sharpe of
    the winner's in-sample returns averaged over the assets (an equal-weight book); V is the
    variance of the same statistic over the trials, measured on up to ``max_trials`` of them
    (evenly sampled in evaluation order when there are more), finite Sharpes only.
    """
    if not winners:
        return None
    from quantfleet.research.overfit import deflated_sharpe, return_moments, verdict

    hist = _history(res)
    ok = [(t, f) for t, f in hist if math.isfinite(f) and f > FALLBACK_FITNESS]
    uniq = list(dict.fromkeys((t.strategy, t.params) for t, _ in ok))
    n_trials = len(uniq)
    n_failed_distinct = len({(t.strategy, t.params) for t, _ in hist} - set(uniq))
    w = winners[0]
    wspace = execution_space(get(w["strategy"]), terms.searched).space
    wkey = (w["strategy"], tuple(float(x) for x in wspace.to_array([w["params"]])[0]))
    sample = uniq
    if len(uniq) > max_trials:
        idx = np.unique(np.linspace(0, len(uniq) - 1, max_trials).round().astype(int))
        sample = [uniq[i] for i in idx]
    by_strategy: dict[str, list[tuple[float, ...]]] = {}
    for s, p in dict.fromkeys([*sample, wkey]):
        by_strategy.setdefault(s, []).append(p)
    in_sample = set(sample)
    sharpes = []
    winner_series = None
    for s, plist in by_strategy.items():
        pooled = _pooled_returns(market, rows, s, np.array(plist), split, terms)
        for p, series in zip(plist, pooled, strict=True):
            if (s, p) in in_sample:
                sr = return_moments(series)[0]
                if math.isfinite(sr):
                    sharpes.append(sr)
            if (s, p) == wkey:
                winner_series = series
    sr, nb, skew, kurt = return_moments(winner_series)
    var = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    n_trials = max(n_trials, 1)
    dsr = deflated_sharpe(sr, nb, skew, kurt, n_trials, var)
    strategies = sorted({s for s, _ in uniq}) or [w["strategy"]]
    gens = len(res.history)
    among = (f"distinct parameter sets of {', '.join(strategies)} evaluated over {gens} "
             f"generation{'s' if gens != 1 else ''}")
    repeats = len(hist) - len({(t.strategy, t.params) for t, _ in hist})
    if repeats:
        among += f"; {repeats} repeat{'s' if repeats != 1 else ''} not counted again"
    if n_failed_distinct:
        among += (f"; {n_failed_distinct} failed evaluation{'s' if n_failed_distinct != 1 else ''}"
                  " left out")
    return {"dsr": dsr, "n_trials": n_trials, "sharpe_per_bar": sr, "var_trials": var,
            "sampled_trials": len(sharpes), "n_repeats": repeats,
            "n_failed": n_failed_distinct, "selected_among": among,
            "verdict": verdict(dsr=dsr, n_trials=n_trials, among=among)}


def _history(res):
    from quantfleet.research.searcher import Trial

    out = []
    for t, f in res.state.get("history", []):
        out.append((Trial(**{**t, "params": tuple(t["params"])}), f))
    return out
