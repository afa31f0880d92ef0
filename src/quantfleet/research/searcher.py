"""Search as an ask/tell state machine (in the spirit of Ray Tune's ``Searcher``).

A searcher proposes trials (``suggest``), is told their fitness (``observe``) and can be
saved and restored (``state`` / ``from_state``). It never touches execution: ``run_search``
is the one driver that runs any searcher on any Executor, checkpointing after every round.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from quantfleet.backtest.job import BacktestJob, JobBatch, JobResult, evaluate_jobs
from quantfleet.backtest.terms import Execution, Terms
from quantfleet.data.market import MarketData
from quantfleet.kernels.metrics import METRIC_NAMES, check_metric, metric_sign
from quantfleet.strategies.registry import get
from quantfleet.strategies.space import ParamSpace

__all__ = [
    "FALLBACK_FITNESS",
    "Checkpoint",
    "FileCheckpoint",
    "GridSearcher",
    "RandomSearcher",
    "SearchResult",
    "Searcher",
    "Trial",
    "as_checkpoint",
    "mean_over_assets",
    "run_search",
    "trial_job",
]

_ZERO_WHEN_UNDEFINED = ("sharpe", "sortino", "calmar", "total_return", "cagr")

FALLBACK_FITNESS = -1e9
"""Fitness given to a failed evaluation (exception, timeout, NaN metric): ranks last, never stops."""


@dataclass(frozen=True)
class Trial:
    """One candidate: a strategy seed plus its parameters, numbered in proposal order."""

    id: int
    strategy: str
    params: tuple[float, ...]
    generation: int = 0

    def params_dict(self) -> dict[str, Any]:
        return get(self.strategy).space.to_dicts(np.array([self.params]))[0]


@runtime_checkable
class Searcher(Protocol):
    """The ask/tell interface every searcher implements."""

    def suggest(self, n: int | None = None) -> list[Trial]:
        """Up to ``n`` new trials (the searcher's natural batch when None); [] when done."""

    def observe(self, trials: Sequence[Trial], fitness: Sequence[float]) -> None:
        """Fitness of ``trials`` (higher is better; failures get ``FALLBACK_FITNESS``)."""

    @property
    def done(self) -> bool: ...

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot from which ``from_state`` rebuilds the searcher."""

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Searcher: ...


def _best_of(history: Sequence[tuple[Trial, float]]) -> tuple[Trial, float] | None:
    best = None
    for t, f in history:
        if best is None or f > best[1]:
            best = (t, f)
    return best


class GridSearcher:
    """Every combo of each strategy's grid, in grid order, in batches of ``batch``."""

    def __init__(self, strategies: Mapping[str, np.ndarray], batch: int = 256) -> None:
        self._queue = [(s, tuple(float(x) for x in row)) for s, p in strategies.items() for row in p]
        self._next = 0
        self._observed = 0
        self.batch = batch
        self.history: list[tuple[Trial, float]] = []

    @property
    def done(self) -> bool:
        return self._observed >= len(self._queue)

    def suggest(self, n: int | None = None) -> list[Trial]:
        n = self.batch if n is None else n
        out = [Trial(i, *self._queue[i]) for i in range(self._next, min(self._next + n, len(self._queue)))]
        self._next += len(out)
        return out

    def observe(self, trials: Sequence[Trial], fitness: Sequence[float]) -> None:
        self.history.extend(zip(trials, (float(f) for f in fitness), strict=True))
        self._observed += len(trials)

    def best(self) -> tuple[Trial, float] | None:
        return _best_of(self.history)

    def state(self) -> dict[str, Any]:
        return {"kind": "grid", "queue": self._queue, "next": self._observed,
                "batch": self.batch, "history": [(asdict(t), f) for t, f in self.history]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> GridSearcher:
        g = cls({}, state["batch"])
        g._queue = [(s, tuple(p)) for s, p in state["queue"]]
        g._next = g._observed = state["next"]
        g.history = [(Trial(**{**t, "params": tuple(t["params"])}), f) for t, f in state["history"]]
        return g


class RandomSearcher:
    """``n_trials`` feasible parameter sets drawn uniformly within the search bounds
    (``spaces``: a ParamSpace per strategy replacing its default one, e.g. a restricted grid)."""

    def __init__(self, strategies: Sequence[str], n_trials: int, seed: int = 0,
                 batch: int = 256, spaces: Mapping[str, ParamSpace] | None = None) -> None:
        self.strategies = list(strategies)
        self.n_trials = n_trials
        self.seed = seed
        self.batch = batch
        self.spaces = dict(spaces or {})
        self._rng = np.random.default_rng(seed)
        self._next = 0
        self.history: list[tuple[Trial, float]] = []

    @property
    def done(self) -> bool:
        return len(self.history) >= self.n_trials

    def suggest(self, n: int | None = None) -> list[Trial]:
        n = min(self.batch if n is None else n, self.n_trials - self._next)
        out = []
        for _ in range(max(n, 0)):
            s = self.strategies[int(self._rng.integers(len(self.strategies)))]
            row = (self.spaces.get(s) or get(s).space).sample(self._rng, 1)[0]
            out.append(Trial(self._next, s, tuple(float(x) for x in row)))
            self._next += 1
        return out

    def observe(self, trials: Sequence[Trial], fitness: Sequence[float]) -> None:
        self.history.extend(zip(trials, (float(f) for f in fitness), strict=True))

    def best(self) -> tuple[Trial, float] | None:
        return _best_of(self.history)

    def state(self) -> dict[str, Any]:
        return {"kind": "random", "strategies": self.strategies, "n_trials": self.n_trials,
                "seed": self.seed, "batch": self.batch, "next": len(self.history),
                "spaces": {k: v.to_dict() for k, v in self.spaces.items()},
                "rng": self._rng.bit_generator.state,
                "history": [(asdict(t), f) for t, f in self.history]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RandomSearcher:
        spaces = {k: ParamSpace.from_dict(v) for k, v in state.get("spaces", {}).items()}
        r = cls(state["strategies"], state["n_trials"], state["seed"], state["batch"], spaces)
        r._rng.bit_generator.state = state["rng"]
        r._next = state["next"]
        r.history = [(Trial(**{**t, "params": tuple(t["params"])}), f) for t, f in state["history"]]
        return r


def trial_job(strategy: str, params: np.ndarray, assets: Sequence[int], start: int,
              stop: int | None, terms: Terms) -> BacktestJob:
    """The job evaluating trials of ``strategy`` (params (k, dims)) on bars ``[start, stop)``.

    Indicators warm up from each asset's first valid bar (the tournament's rule), so a trial's
    fitness does not depend on which other trials share its job, and recursive indicators are
    as converged as the history allows.
    """
    return BacktestJob(strategy, tuple(assets), params, start=start, stop=stop, warm_from=None,
                       terms=terms)


@dataclass
class SearchResult:
    """What a search run produced: the best trials and the per-round history."""

    best: list[tuple[Trial, float]]
    history: list[dict[str, Any]]
    n_evaluations: int
    n_failed: int
    n_cached: int
    state: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Checkpoint(Protocol):
    """Where a resumable loop keeps its state: the bytes at one location, replaced atomically.

    ``read()`` gives the bytes last written (None: nothing yet), ``write(data)`` replaces them
    so that a reader sees the old state or the new one, never part; ``sibling(name)`` is the
    checkpoint ``name`` beside it (the evolution keeps its record there). ``str()`` names the
    location in messages. Implementations: :class:`FileCheckpoint` (a path),
    ``quantfleet.store.StoreCheckpoint`` (a key in a store: local folder or S3; the pipeline
    passes one when the run has a store), the Ray coordinator's in-memory scratch one.
    """

    def read(self) -> bytes | None: ...

    def write(self, data: bytes) -> None: ...

    def sibling(self, name: str) -> Checkpoint: ...


class FileCheckpoint:
    """A :class:`Checkpoint` in a file (written to a temporary file beside it, then renamed)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, self.path)

    def sibling(self, name: str) -> FileCheckpoint:
        return FileCheckpoint(self.path.parent / name)

    @property
    def folder(self) -> str:
        return str(self.path.parent)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"FileCheckpoint({str(self.path)!r})"


def as_checkpoint(checkpoint: Any) -> Checkpoint | None:
    """None, a :class:`Checkpoint` as is, or a path as a :class:`FileCheckpoint`."""
    if checkpoint is None or isinstance(checkpoint, Checkpoint):
        return checkpoint
    if isinstance(checkpoint, (str, os.PathLike)):
        return FileCheckpoint(checkpoint)
    raise TypeError(f"checkpoint must be a path or an object with read()/write()/sibling() "
                    f"(got {type(checkpoint).__name__})")


def run_search(searcher: Any, market: MarketData, *, metric: str = "sharpe",
               assets: Sequence[int] | None = None, start: int = 0, stop: int | None = None,
               fee_rate: float = 0.0, ppy: float | None = None, long_short: bool = False,
               executor: Any = None, checkpoint: str | Path | Checkpoint | None = None,
               on_round: Callable[[dict[str, Any]], None] | None = None,
               stage: str = "search", execution: Any = None,
               searched: tuple[str, ...] = ()) -> SearchResult:
    """Drive ``searcher`` until done: suggest → evaluate on ``executor`` → observe → checkpoint.

    Fitness is the mean over ``assets`` of ``metric`` on bars ``[start, stop)`` (an asset on
    which a ratio is undefined because the trial never trades counts as 0; other undefined
    values are left out of the mean); an evaluation that raises, times out or has no finite
    value on any asset gets ``FALLBACK_FITNESS`` and is counted as failed.
    Identical (strategy, params) are evaluated once and served from a cache afterwards.
    ``checkpoint`` (a JSON file's path, or any :class:`Checkpoint`: e.g. a key in the run's
    store) receives the searcher's state after every round; pass the same one to resume. ``on_round`` receives each round's record as it ends (on a resume,
    first the records of the rounds the checkpoint holds). ``execution`` (an
    :class:`~quantfleet.backtest.terms.Execution`, None: the default) is how trials trade;
    ``searched`` names the execution options a trial's trailing parameters are
    (``Terms.searched``).
    """
    k = METRIC_NAMES.index(check_metric(metric))
    sign = metric_sign(metric)
    rows = list(range(market.n_assets)) if assets is None else list(assets)
    ppy = float(ppy) if ppy is not None else market.periods_per_year
    stop = market.n_bars if stop is None else stop
    terms = Terms(fee_rate=fee_rate, ppy=ppy, long_short=long_short,
                  execution=execution or Execution(), searched=tuple(searched))
    cache: dict[tuple[str, tuple[float, ...]], float] = {}
    history: list[dict[str, Any]] = []
    n_eval = n_failed = n_cached = 0
    ck = as_checkpoint(checkpoint)
    raw = ck.read() if ck is not None else None
    if raw is not None:
        saved = json.loads(raw)
        searcher = type(searcher).from_state(saved["searcher"])
        history = saved["history"]
        cache = {(s, tuple(p)): f for s, p, f in saved["cache"]}
        n_eval, n_failed, n_cached = saved["counts"]
        for rec in history if on_round is not None else ():
            on_round(rec)  # a follower (a coordinator's driver) sees every round, in order
    while not searcher.done:
        t0, c0 = time.perf_counter(), time.process_time()
        trials = searcher.suggest()
        if not trials:
            break
        fitness = np.full(len(trials), np.nan)
        todo: dict[str, list[int]] = {}
        for i, t in enumerate(trials):
            hit = cache.get((t.strategy, t.params))
            if hit is not None:
                fitness[i] = hit
                n_cached += 1
            else:
                todo.setdefault(t.strategy, []).append(i)
        items: list[tuple[JobBatch, list[int]]] = []
        # split each strategy's trials into batches: about 4 tasks per worker per round, so a
        # generation does not wait on one big task per strategy (the results do not depend on
        # the batching: the warm-up is per strategy, not per batch)
        workers = int(getattr(executor, "workers", 1) or 1) if executor is not None else 1
        total = sum(len(i) for i in todo.values())
        size = max(8, math.ceil(total / (4 * workers)))
        for s, idx in todo.items():
            for lo in range(0, len(idx), size):
                part = idx[lo:lo + size]
                params = np.array([trials[i].params for i in part], dtype=np.float64)
                items.append((JobBatch((trial_job(s, params, rows, start, stop, terms),)), part))
        if executor is None:
            results = [_safe(evaluate_jobs, market, it) for it, _ in items]
        else:
            results = list(executor.map(evaluate_jobs, [it for it, _ in items], shared=market,
                                        stage=f"{stage}/gen:{len(history)}",
                                        component=[it.jobs[0].strategy for it, _ in items],
                                        chunk_size=1))
        round_failed = 0
        for (_, idx), res in zip(items, results, strict=True):
            if not (isinstance(res, list) and isinstance(res[0], JobResult)):
                vals = np.full(len(idx), np.nan)
            else:
                vals = sign * mean_over_assets(res[0].metrics[:, :, k], metric)
            for j, i in enumerate(idx):
                f = vals[j]
                if not math.isfinite(f):
                    f = FALLBACK_FITNESS
                    round_failed += 1
                fitness[i] = f
                cache[(trials[i].strategy, trials[i].params)] = f
            n_eval += len(idx)
        n_failed += round_failed
        searcher.observe(trials, fitness.tolist())
        ok = fitness[fitness > FALLBACK_FITNESS]
        best = searcher.best() if hasattr(searcher, "best") else None
        rec = {
            "round": len(history), "trials": len(trials),
            "evaluated": int(sum(len(i) for _, i in items)),
            "failed": round_failed,
            "best": float(ok.max()) if ok.size else None,
            "mean": float(ok.mean()) if ok.size else None,
            "median": float(np.median(ok)) if ok.size else None,
            "best_so_far": best[1] if best else None,
            "diversity": _diversity(trials),
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
        }
        history.append(rec)
        if on_round is not None:
            on_round(rec)
        if ck is not None:
            ck.write(json.dumps({"searcher": searcher.state(), "history": history,
                                 "cache": [(s, list(p), f) for (s, p), f in cache.items()],
                                 "counts": [n_eval, n_failed, n_cached]}).encode())
    best_list = sorted(searcher.history, key=lambda tf: -tf[1])[:10] if hasattr(searcher, "history") else []
    return SearchResult(best=best_list, history=history, n_evaluations=n_eval,
                        n_failed=n_failed, n_cached=n_cached, state=searcher.state())


def mean_over_assets(values: np.ndarray, metric: str) -> np.ndarray:
    """Mean over assets (axis 0) of one metric, (assets, trials) -> (trials,).

    A ratio that is undefined because a trial never trades on an asset (Sharpe of all-zero
    returns) counts as 0 there; other undefined values are left out; NaN only when no asset
    has a value.
    """
    m = values
    if metric in _ZERO_WHEN_UNDEFINED:
        m = np.where(np.isnan(m), 0.0, m)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.where(np.isfinite(m), m, np.nan), axis=0)


def _safe(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as e:  # a failed evaluation is recorded, never stops the search
        return e


def _diversity(trials: Sequence[Trial]) -> float:
    """Fraction of distinct (strategy, params) among the round's trials."""
    if not trials:
        return 0.0
    return len({(t.strategy, t.params) for t in trials}) / len(trials)
