"""Genetic search over the ParamSpace of one or several strategies (mixed populations).

An individual is a strategy seed plus its parameters. Each generation: elites survive,
immigrants arrive (more of them when diversity drops), the rest are children of tournament-
selected parents, crossed over (same strategy only) and mutated within bounds, types and
constraints. Pure Python and numpy: a generation is unit-testable without Ray, and the same
seed gives the same history on every executor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from quantfleet.errors import QuantfleetError
from quantfleet.research.searcher import Trial
from quantfleet.strategies.registry import get
from quantfleet.strategies.space import Choice, Float, Int, ParamSpace

__all__ = ["GeneticSearcher"]


class GeneticSearcher:
    """Ask/tell genetic algorithm.

    Parameters
    ----------
    strategies : names of the strategy seeds in the population
    population : individuals per generation (>= 4)
    generations : generations to evaluate (>= 1)
    seed : RNG seed; everything random flows from it
    elite : individuals copied unchanged into the next generation (their fitness is cached)
    tournament : tournament-selection size
    crossover : probability a child of two same-strategy parents is a crossover
    mutation : per-parameter mutation probability
    immigrants : fraction of each generation drawn fresh at random
    min_diversity : when the distinct fraction of a generation falls below this, the
        immigrant fraction doubles for the next one
    species_share : fraction of each generation reserved for the strategies, split equally,
        each slot bred from its own strategy's individuals: a mixed population keeps every
        seed alive instead of letting the early leader take over (niching)
    spaces : optional ParamSpace per strategy replacing its default search space (e.g. to
        search exactly a sweep's grid)
    """

    def __init__(self, strategies: Sequence[str], population: int = 100, generations: int = 20,
                 seed: int = 0, elite: int = 2, tournament: int = 3, crossover: float = 0.8,
                 mutation: float = 0.25, immigrants: float = 0.1,
                 min_diversity: float = 0.5, species_share: float = 0.2,
                 spaces: Mapping[str, ParamSpace] | None = None) -> None:
        if not strategies:
            raise QuantfleetError("no strategies given; e.g. --strategies sma_cross,rsi")
        if population < 4:
            raise QuantfleetError(f"population must be >= 4 (got {population}); typical: 50-1000")
        if generations < 1:
            raise QuantfleetError(f"generations must be >= 1 (got {generations}); typical: 10-50")
        for name, v in (("crossover", crossover), ("mutation", mutation),
                        ("species_share", species_share),
                        ("immigrants", immigrants), ("min_diversity", min_diversity)):
            if not 0.0 <= v <= 1.0:
                raise QuantfleetError(f"{name} must be in [0, 1] (got {v})")
        if not 0 <= elite < population:
            raise QuantfleetError(f"elite must be in [0, population) (got {elite})")
        if tournament < 1:
            raise QuantfleetError(f"tournament size must be >= 1 (got {tournament})")
        self.strategies = [get(s).name for s in strategies]
        self.spaces = dict(spaces or {})
        self.population, self.generations, self.seed = population, generations, seed
        self.elite, self.tournament = elite, tournament
        self.crossover, self.mutation = crossover, mutation
        self.immigrants, self.min_diversity = immigrants, min_diversity
        self.species_share = species_share
        self.rng = np.random.default_rng(seed)
        self.generation = 0
        self.next_id = 0
        self.pending: list[Trial] = self._random(population)
        self.history: list[tuple[Trial, float]] = []
        self.last: list[tuple[Trial, float]] = []
        self.boost = 1.0

    # -- ask / tell -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.generation >= self.generations

    def suggest(self, n: int | None = None) -> list[Trial]:
        """The current generation, whole (``n`` is ignored: a generation is the batch)."""
        return [] if self.done else list(self.pending)

    def observe(self, trials: Sequence[Trial], fitness: Sequence[float]) -> None:
        """Record the generation's fitness and breed the next one."""
        scored = list(zip(trials, (float(f) for f in fitness), strict=True))
        self.history.extend(scored)
        self.last = scored
        self.generation += 1
        if not self.done:
            self.pending = self._breed(scored)

    def best(self) -> tuple[Trial, float] | None:
        if not self.history:
            return None
        return max(self.history, key=lambda tf: (tf[1], -tf[0].id))

    # -- breeding ---------------------------------------------------------------------------

    def _space(self, strategy: str) -> ParamSpace:
        return self.spaces.get(strategy) or get(strategy).space

    def _trial(self, strategy: str, params: Sequence[float]) -> Trial:
        t = Trial(self.next_id, strategy, tuple(float(x) for x in params), self.generation)
        self.next_id += 1
        return t

    def _random(self, n: int) -> list[Trial]:
        out = []
        for _ in range(n):
            s = self.strategies[int(self.rng.integers(len(self.strategies)))]
            out.append(self._trial(s, self._space(s).sample(self.rng, 1)[0]))
        return out

    def _select(self, scored: Sequence[tuple[Trial, float]]) -> Trial:
        idx = self.rng.integers(0, len(scored), size=self.tournament)
        best = min(idx, key=lambda i: (-scored[i][1], i))
        return scored[int(best)][0]

    def _child(self, scored: Sequence[tuple[Trial, float]]) -> Trial:
        a, b = self._select(scored), self._select(scored)
        space = self._space(a.strategy)
        child = np.array(a.params)
        if b.strategy == a.strategy and self.rng.random() < self.crossover:
            child = self._cross(space, np.array(a.params), np.array(b.params))
        child = self._mutate(space, child)
        return self._trial(a.strategy, child)

    def _breed(self, scored: Sequence[tuple[Trial, float]]) -> list[Trial]:
        ranked = sorted(range(len(scored)), key=lambda i: (-scored[i][1], i))
        diversity = len({(t.strategy, t.params) for t, _ in scored}) / len(scored)
        self.boost = 2.0 if diversity < self.min_diversity else 1.0
        n_imm = min(self.population - self.elite,
                    int(round(self.immigrants * self.boost * self.population)))
        nxt = [self._trial(scored[i][0].strategy, scored[i][0].params) for i in ranked[:self.elite]]
        nxt += self._random(n_imm)
        if len(self.strategies) > 1:
            per = int(self.species_share * self.population) // len(self.strategies)
            for s in self.strategies:
                own = [tf for tf in scored if tf[0].strategy == s]
                for _ in range(min(per, self.population - len(nxt))):
                    nxt.append(self._child(own) if own else self._random(1)[0])
        while len(nxt) < self.population:
            nxt.append(self._child(scored))
        return nxt

    def _cross(self, space: ParamSpace, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Uniform crossover; floats blend (BLX-0.5) within bounds. Infeasible: parent a."""
        child = a.copy()
        for j, d in enumerate(space.dims):
            if isinstance(d, Float):
                lo, hi = min(a[j], b[j]), max(a[j], b[j])
                span = hi - lo
                child[j] = float(np.clip(self.rng.uniform(lo - 0.5 * span, hi + 0.5 * span),
                                         d.low, d.high))
            elif self.rng.random() < 0.5:
                child[j] = b[j]
        return child if space.feasible(child[None, :])[0] else a.copy()

    def _mutate(self, space: ParamSpace, x: np.ndarray, tries: int = 10) -> np.ndarray:
        """Per-parameter mutation within bounds and steps; repaired to feasibility."""
        for _ in range(tries):
            y = x.copy()
            for j, d in enumerate(space.dims):
                if self.rng.random() >= self.mutation:
                    continue
                if isinstance(d, Choice):
                    y[j] = d.options[int(self.rng.integers(len(d.options)))]
                elif isinstance(d, Int):
                    steps = (d.high - d.low) // d.step
                    k = round((y[j] - d.low) / d.step)
                    k += int(round(self.rng.normal(0.0, max(1.0, 0.1 * steps))))
                    y[j] = d.low + d.step * min(max(k, 0), steps)
                else:
                    y[j] = float(np.clip(y[j] + self.rng.normal(0.0, 0.1 * (d.high - d.low)),
                                         d.low, d.high))
            if space.feasible(y[None, :])[0]:
                return y
        return x if space.feasible(x[None, :])[0] else space.sample(self.rng, 1)[0]

    # -- state ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "kind": "genetic",
            "config": {"strategies": self.strategies, "population": self.population,
                       "generations": self.generations, "seed": self.seed, "elite": self.elite,
                       "tournament": self.tournament, "crossover": self.crossover,
                       "mutation": self.mutation, "immigrants": self.immigrants,
                       "min_diversity": self.min_diversity,
                       "species_share": self.species_share,
                       "spaces": {k: v.to_dict() for k, v in self.spaces.items()}},
            "rng": self.rng.bit_generator.state,
            "generation": self.generation,
            "next_id": self.next_id,
            "boost": self.boost,
            "pending": [asdict(t) for t in self.pending],
            "history": [(asdict(t), f) for t, f in self.history],
            "last": [(asdict(t), f) for t, f in self.last],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> GeneticSearcher:
        cfg = dict(state["config"])
        cfg["spaces"] = {k: ParamSpace.from_dict(v) for k, v in cfg.get("spaces", {}).items()}
        g = cls(**cfg)
        g.rng.bit_generator.state = state["rng"]
        g.generation, g.next_id, g.boost = state["generation"], state["next_id"], state["boost"]

        def trial(d: Mapping[str, Any]) -> Trial:
            return Trial(**{**d, "params": tuple(d["params"])})

        g.pending = [trial(t) for t in state["pending"]]
        g.history = [(trial(t), f) for t, f in state["history"]]
        g.last = [(trial(t), f) for t, f in state["last"]]
        return g
