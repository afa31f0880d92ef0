"""Optuna's samplers (TPE, CMA-ES, NSGA-II, random) as an ask/tell :class:`Searcher`.

``OptunaSearcher`` runs through the same driver as the grid, random and genetic searchers
(``run_search``: batched asks mapped on any executor, fitness fallback, checkpoint and resume,
the trial count behind the deflated Sharpe). Optuna is imported only inside these functions,
and only when an Optuna searcher is built: ``pip install 'quantfleet[search]'``.

Design (docs/research.md, "Searchers"):

- **One study per strategy.** Each strategy's parameters are one study's search space (Int:
  ``suggest_int`` with its step, Float: ``suggest_float``, Choice: ``suggest_categorical``),
  so CMA-ES and NSGA-II see a fixed numeric space instead of a conditional one. A batch of
  ``n`` trials is dealt to the strategies in turn (trial ``id`` modulo the number of
  strategies), so each strategy gets an equal share of the budget.
- **Batches.** ``suggest(n)`` asks ``n`` trials before any is told (the driver maps the batch
  on the executor, then tells every fitness in the batch's order).
- **Determinism.** Before each ask the study gets a fresh sampler seeded from ``(seed,
  strategy, trials in that study so far)``; everything else a sampler keeps lives in the study
  (its trials, their system attributes). So the trials depend only on the seed and the fitness
  values told, in order: the same on serial, processes and Ray, and the same after a resume.
- **Constraints.** A proposal that violates the space's constraints (e.g. ``fast < slow``) is
  told to its study as PRUNED (TPE ranks it below every completed trial; CMA-ES, NSGA-II and
  random ignore it) and the study is asked again, up to ``max_resample`` times; then a feasible
  point drawn from a seeded RNG is enqueued and asked (the sampler's model never holds it
  otherwise). The searcher never proposes an
  infeasible trial, and only proposed trials are evaluated and counted.
- **Failures.** A trial whose evaluation failed (``FALLBACK_FITNESS``: exception, timeout, no
  finite metric) is told as FAIL, which every sampler leaves out of its model.
- **Checkpoint.** ``state()`` holds every trial of every study (params, state, value, system
  attributes) and each study's system attributes (a sampler's cache: NSGA-II's parents per
  generation); ``from_state`` replays them into fresh in-memory studies
  (``study.add_trial(create_trial(...))``), after which the searcher suggests exactly what an
  uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from quantfleet.errors import ConfigError, QuantfleetError
from quantfleet.research.searcher import FALLBACK_FITNESS, Trial
from quantfleet.strategies.registry import get
from quantfleet.strategies.space import Choice, Float, ParamSpace

__all__ = ["INSTALL_HINT", "SAMPLERS", "OptunaSearcher", "import_optuna"]

SAMPLERS = ("tpe", "cmaes", "nsgaii", "random")
"""The Optuna samplers ``--searcher optuna:NAME`` accepts."""

INSTALL_HINT = "pip install 'quantfleet[search]'"


def import_optuna() -> Any:
    """The ``optuna`` module, quiet (warnings and above); a one-line error when it is missing."""
    try:
        import optuna
    except ImportError as e:
        raise ConfigError(f"the Optuna searchers need optuna: {INSTALL_HINT} (or use "
                          f"--searcher genetic|random|grid)") from e
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _sampler(optuna: Any, kind: str, seed: int, population: int) -> Any:
    s = optuna.samplers
    if kind == "tpe":
        return s.TPESampler(seed=seed)
    if kind == "cmaes":
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if kind == "nsgaii":
        return s.NSGAIISampler(seed=seed, population_size=max(2, population))
    return s.RandomSampler(seed=seed)


class OptunaSearcher:
    """Ask/tell over Optuna studies, one per strategy (see the module docstring).

    Parameters
    ----------
    strategies : strategy names; the budget is dealt to them in turn
    sampler : one of :data:`SAMPLERS`
    n_trials : trials to propose in all
    seed : everything random flows from it
    batch : trials per ``suggest()`` (the driver's round)
    spaces : optional ParamSpace per strategy replacing its default search space
    max_resample : times the sampler is asked again after an infeasible proposal; then the
        trial is a random feasible point (drawn from the seed)
    """

    def __init__(self, strategies: Sequence[str], sampler: str = "tpe", n_trials: int = 100,
                 seed: int = 0, batch: int = 20,
                 spaces: Mapping[str, ParamSpace] | None = None,
                 max_resample: int = 50) -> None:
        if not strategies:
            raise QuantfleetError("no strategies given; e.g. --strategies sma_cross,rsi")
        if sampler not in SAMPLERS:
            raise ConfigError(f"searcher optuna:{sampler}: unknown sampler; use one of "
                              f"{', '.join('optuna:' + s for s in SAMPLERS)}")
        if n_trials < 1:
            raise QuantfleetError(f"n_trials must be >= 1 (got {n_trials})")
        if batch < 1:
            raise QuantfleetError(f"batch must be >= 1 (got {batch})")
        self._optuna = import_optuna()
        self.strategies = [get(s).name for s in strategies]
        self.sampler, self.n_trials, self.seed, self.batch = sampler, n_trials, seed, batch
        self.spaces = dict(spaces or {})
        self.max_resample = max_resample
        self.next_id = 0
        self.round = 0
        self.history: list[tuple[Trial, float]] = []
        self._studies = {s: self._optuna.create_study(direction="maximize")
                         for s in self.strategies}
        self._pending: dict[int, Any] = {}  # trial id -> the study's open trial

    # -- ask / tell -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return len(self.history) >= self.n_trials

    def suggest(self, n: int | None = None) -> list[Trial]:
        """Up to ``n`` (default ``batch``) new trials, all asked before any is told."""
        n = min(self.batch if n is None else n, self.n_trials - self.next_id)
        out = []
        for _ in range(max(n, 0)):
            s = self.strategies[self.next_id % len(self.strategies)]
            trial, params = self._ask(s)
            t = Trial(self.next_id, s, params, self.round)
            self._pending[t.id] = trial
            self.next_id += 1
            out.append(t)
        return out

    def observe(self, trials: Sequence[Trial], fitness: Sequence[float]) -> None:
        """Tell each trial's fitness to its study, in the batch's order."""
        TrialState = self._optuna.trial.TrialState
        for t, f in zip(trials, fitness, strict=True):
            f = float(f)
            study = self._studies[t.strategy]
            ot = self._pending.pop(t.id)
            if np.isfinite(f) and f > FALLBACK_FITNESS:
                study.tell(ot, f)
            else:
                study.tell(ot, state=TrialState.FAIL)
            self.history.append((t, f))
        self.round += 1

    def best(self) -> tuple[Trial, float] | None:
        if not self.history:
            return None
        return max(self.history, key=lambda tf: (tf[1], -tf[0].id))

    # -- asking -----------------------------------------------------------------------------

    def _space(self, strategy: str) -> ParamSpace:
        return self.spaces.get(strategy) or get(strategy).space

    def _seed(self, strategy: str, k: int) -> int:
        i = self.strategies.index(strategy)
        return int(np.random.SeedSequence([self.seed & (2**64 - 1), i, k]).generate_state(1)[0])

    def _ask(self, strategy: str) -> tuple[Any, tuple[float, ...]]:
        study = self._studies[strategy]
        space = self._space(strategy)
        for attempt in range(self.max_resample + 2):
            k = len(study.trials)
            if attempt > self.max_resample:
                # the sampler keeps proposing infeasible points: a seeded feasible one instead
                row = space.sample(np.random.default_rng(self._seed(strategy, k)), 1)[0]
                study.enqueue_trial(dict(zip(space.names, _values(space, row), strict=True)))
            study.sampler = _sampler(self._optuna, self.sampler, self._seed(strategy, k),
                                     -(-self.batch // len(self.strategies)))
            trial = study.ask()
            row = np.array([_suggest(trial, d) for d in space.dims], dtype=np.float64)
            if space.feasible(row[None, :])[0]:
                return trial, tuple(float(x) for x in row)
            study.tell(trial, state=self._optuna.trial.TrialState.PRUNED)
        raise QuantfleetError(f"{strategy}: the Optuna sampler proposed no feasible parameters")

    # -- state ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Settings, the proposed trials and every study's trials (for ``from_state``)."""
        if self._pending:
            raise QuantfleetError("an Optuna searcher's state is taken between rounds only "
                                  "(trials are still open)")
        dist_json = self._optuna.distributions.distribution_to_json
        studies, attrs = {}, {}
        for s, study in self._studies.items():
            studies[s] = [{"state": t.state.name, "value": t.value, "params": t.params,
                           "distributions": {k: dist_json(v) for k, v in t.distributions.items()},
                           "system_attrs": t.system_attrs}
                          for t in study.trials]
            # what a sampler caches in the study (NSGA-II: each generation's parents, chosen
            # with its RNG at the time): replayed too, or a resume would choose again
            attrs[s] = study._storage.get_study_system_attrs(study._study_id)
        return {"kind": f"optuna:{self.sampler}",
                "config": {"strategies": self.strategies, "sampler": self.sampler,
                           "n_trials": self.n_trials, "seed": self.seed, "batch": self.batch,
                           "spaces": {k: v.to_dict() for k, v in self.spaces.items()},
                           "max_resample": self.max_resample},
                "next_id": self.next_id, "round": self.round,
                "history": [(asdict(t), f) for t, f in self.history],
                "studies": studies, "study_attrs": attrs}

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # pickled as its state (a study holds locks): how the Ray coordinator receives it
        return _restore, (self.state(),)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OptunaSearcher:
        cfg = dict(state["config"])
        cfg["spaces"] = {k: ParamSpace.from_dict(v) for k, v in cfg.get("spaces", {}).items()}
        o = cls(**cfg)
        optuna = o._optuna
        from_json = optuna.distributions.json_to_distribution
        for s, trials in state["studies"].items():
            study = o._studies[s]
            for t in trials:
                st = optuna.trial.TrialState[t["state"]]
                study.add_trial(optuna.trial.create_trial(
                    state=st, value=t["value"] if st == optuna.trial.TrialState.COMPLETE else None,
                    params=t["params"],
                    distributions={k: from_json(v) for k, v in t["distributions"].items()},
                    system_attrs=t["system_attrs"]))
            for k, v in state.get("study_attrs", {}).get(s, {}).items():
                study._storage.set_study_system_attr(study._study_id, k, v)
        o.next_id, o.round = state["next_id"], state["round"]
        o.history = [(Trial(**{**t, "params": tuple(t["params"])}), f)
                     for t, f in state["history"]]
        return o


def _suggest(trial: Any, d: Any) -> float:
    if isinstance(d, Choice):
        return float(trial.suggest_categorical(d.name, list(d.options)))
    if isinstance(d, Float):
        return float(trial.suggest_float(d.name, float(d.low), float(d.high)))
    return float(trial.suggest_int(d.name, int(d.low), int(d.high), step=int(d.step)))


def _values(space: ParamSpace, row: np.ndarray) -> list[Any]:
    """A row as the values ``_suggest`` would return them (ints for Int dims)."""
    return [float(v) if isinstance(d, (Float, Choice)) else int(v)
            for d, v in zip(space.dims, row, strict=True)]


def _restore(state: Mapping[str, Any]) -> OptunaSearcher:
    return OptunaSearcher.from_state(state)
