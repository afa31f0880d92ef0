"""ParamSpace: the typed, bounded, constrained parameters of a strategy.

Bounds are *search defaults* (what grids, random and genetic search draw from). A value given
explicitly is accepted whenever it is valid for the data: a window only has to be at least its
hard minimum and shorter than the series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from quantfleet.errors import StrategyError, did_you_mean

__all__ = ["Choice", "Constraint", "Dim", "Float", "Int", "ParamSpace"]


@dataclass(frozen=True)
class Int:
    """An integer parameter. ``window=True`` marks a look-back length (must be < bars)."""

    name: str
    low: int
    high: int
    step: int = 1
    default: int | None = None
    hard_min: int = 1
    window: bool = True
    kind: str = field(default="int", init=False)

    def check(self, value: Any, n_bars: int | None, strategy: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
            raise TypeError(f"{strategy}: {self.name} must be an integer, got {type(value).__name__}")
        if float(value) != math.floor(float(value)):
            raise StrategyError(f"{strategy}: {self.name} must be a whole number (got {value})")
        v = int(value)
        if v < self.hard_min:
            raise StrategyError(
                f"{strategy}: {self.name} must be >= {self.hard_min} (got {v}); "
                f"search range is {self.low}..{self.high}"
            )
        if self.window and n_bars is not None and v >= n_bars:
            raise StrategyError(
                f"{strategy}: {self.name}={v} needs more than {v} bars but the data has {n_bars}; "
                f"use a window below {n_bars} or longer data"
            )
        return v

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def sample(self, rng: np.random.Generator) -> int:
        k = (self.high - self.low) // self.step
        return int(self.low + self.step * rng.integers(0, k + 1))


@dataclass(frozen=True)
class Float:
    """A real parameter; ``hard_min``/``hard_max`` are the validity limits (None: unbounded)."""

    name: str
    low: float
    high: float
    default: float | None = None
    hard_min: float | None = None
    hard_max: float | None = None
    kind: str = field(default="float", init=False)

    def check(self, value: Any, n_bars: int | None, strategy: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{strategy}: {self.name} must be a number, got {type(value).__name__}")
        v = float(value)
        if not math.isfinite(v):
            raise StrategyError(f"{strategy}: {self.name} must be finite (got {v})")
        if self.hard_min is not None and v < self.hard_min:
            raise StrategyError(
                f"{strategy}: {self.name} must be >= {self.hard_min} (got {v}); "
                f"search range is {self.low}..{self.high}"
            )
        if self.hard_max is not None and v > self.hard_max:
            raise StrategyError(
                f"{strategy}: {self.name} must be <= {self.hard_max} (got {v}); "
                f"search range is {self.low}..{self.high}"
            )
        return v

    def values(self, n: int = 5) -> list[float]:
        return [float(x) for x in np.linspace(self.low, self.high, n)]

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class Choice:
    """One of a few numeric options."""

    name: str
    options: tuple[float, ...]
    default: float | None = None
    kind: str = field(default="choice", init=False)

    def check(self, value: Any, n_bars: int | None, strategy: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{strategy}: {self.name} must be a number, got {type(value).__name__}")
        v = float(value)
        if v not in self.options:
            raise StrategyError(
                f"{strategy}: {self.name} must be one of {list(self.options)} (got {value})"
            )
        return int(v) if v.is_integer() else v

    def values(self) -> list[float]:
        return list(self.options)

    def sample(self, rng: np.random.Generator) -> float:
        return self.options[int(rng.integers(0, len(self.options)))]


Dim = Int | Float | Choice

_OPS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


@dataclass(frozen=True)
class Constraint:
    """``left op right`` between two parameters, e.g. ``Constraint("fast", "<", "slow")``."""

    left: str
    op: str
    right: str

    def holds(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        return _OPS[self.op](np.asarray(table[self.left]), np.asarray(table[self.right]))

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class ParamSpace:
    """Ordered parameter dimensions plus pairwise constraints."""

    dims: tuple[Dim, ...]
    constraints: tuple[Constraint, ...] = ()
    strategy: str = "strategy"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dims)

    def dim(self, name: str) -> Dim:
        for d in self.dims:
            if d.name == name:
                return d
        raise StrategyError(
            f"{self.strategy}: unknown parameter {name!r}{did_you_mean(name, self.names)}; "
            f"parameters are {', '.join(self.names)}"
        )

    def defaults(self) -> dict[str, Any]:
        out = {}
        for d in self.dims:
            if d.default is not None:
                out[d.name] = d.default
            elif isinstance(d, Choice):
                out[d.name] = d.options[0]
            else:
                out[d.name] = d.low
        return out

    def validate(self, params: Mapping[str, Any], n_bars: int | None = None,
                 fill_defaults: bool = True) -> dict[str, Any]:
        """Check one parameter set: names, types, validity for ``n_bars``, constraints."""
        for k in params:
            self.dim(k)  # raises with a hint on unknown names
        missing = [n for n in self.names if n not in params]
        if missing and not fill_defaults:
            raise StrategyError(f"{self.strategy}: missing parameter(s) {', '.join(missing)}")
        merged = {**self.defaults(), **dict(params)} if fill_defaults else dict(params)
        out = {d.name: d.check(merged[d.name], n_bars, self.strategy) for d in self.dims}
        for c in self.constraints:
            if not bool(c.holds({k: np.array([v]) for k, v in out.items()})[0]):
                raise StrategyError(
                    f"{self.strategy}: constraint {c} violated "
                    f"({c.left}={out[c.left]}, {c.right}={out[c.right]})"
                )
        return out

    def grid(self, spec: Mapping[str, Sequence[Any]] | None = None,
             n_bars: int | None = None) -> tuple[np.ndarray, int]:
        """Cartesian product of ``spec`` (missing names: their search values).

        Returns ``(params, skipped)``: a float64 array (combos, dims) in ``names`` order of the
        combos that satisfy every constraint, and how many were skipped for violating one.
        Every value is checked for validity against ``n_bars``.
        """
        axes = self.grid_axes(spec, n_bars)
        total = math.prod(len(a) for a in axes)
        if total == 0:
            return np.empty((0, len(self.dims))), 0
        mesh = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
        keep = self.feasible(mesh)
        return np.ascontiguousarray(mesh[keep]), int((~keep).sum())

    def grid_axes(self, spec: Mapping[str, Sequence[Any]] | None = None,
                  n_bars: int | None = None) -> list[np.ndarray]:
        """Sorted, validated values per dimension (``names`` order) for a grid ``spec``."""
        spec = dict(spec or {})
        for k in spec:
            self.dim(k)
        axes = []
        for d in self.dims:
            vals = spec.get(d.name)
            if vals is None:
                vals = d.values()
            vals = [d.check(v, n_bars, self.strategy) for v in vals]
            if not vals:
                raise StrategyError(f"{self.strategy}: empty value list for {d.name}")
            axes.append(np.asarray(sorted(set(vals)), dtype=np.float64))
        return axes

    def restrict(self, spec: Mapping[str, Sequence[Any]] | None = None,
                 n_bars: int | None = None) -> ParamSpace:
        """This space narrowed to a grid ``spec`` ``{param: values}``, constraints kept.

        Evenly spaced values of an integer parameter become a stepped ``Int`` range (so genetic
        mutation still moves in steps), any other list a ``Choice`` of exactly those values;
        parameters ``spec`` does not name keep their search range. Every value is checked for
        validity against ``n_bars``; a restriction no parameter set satisfies is an error.
        """
        spec = dict(spec or {})
        if not spec:
            return self
        for k in spec:
            self.dim(k)  # unknown names: a hint and the list of parameters
        dims: list[Dim] = []
        for d in self.dims:
            if d.name not in spec:
                dims.append(d)
                continue
            raw = list(spec[d.name])
            if not raw:
                raise StrategyError(f"{self.strategy}: empty value list for {d.name}; "
                                    f"give at least one value, e.g. {d.name}=5,10,20")
            vals = sorted(set(d.check(v, n_bars, self.strategy) for v in raw))
            steps = {b - a for a, b in zip(vals, vals[1:], strict=False)}
            if isinstance(d, Int) and len(steps) <= 1:
                step = steps.pop() if steps else 1
                default = d.default if d.default in range(vals[0], vals[-1] + 1, step) else None
                dims.append(Int(d.name, vals[0], vals[-1], step, default, d.hard_min, d.window))
            else:
                default = d.default if d.default is not None and float(d.default) in vals else None
                dims.append(Choice(d.name, tuple(float(v) for v in vals), default))
        out = ParamSpace(tuple(dims), self.constraints, self.strategy)
        # values are checked above; the other dims' search values need no n_bars check here
        if not any(p.shape[0] for p, _ in out.grid_chunks()):
            rules = ", ".join(str(c) for c in self.constraints)
            raise StrategyError(
                f"{self.strategy}: no parameter set in the grid satisfies {rules}; "
                f"widen the grid of {', '.join(spec)}")
        return out

    def grid_chunks(self, spec: Mapping[str, Sequence[Any]] | None = None,
                    n_bars: int | None = None, chunk: int = 4096):
        """Yield ``(params, skipped)`` chunks of the grid without building it whole.

        Each chunk holds up to ``chunk`` cartesian rows before the constraint filter, so memory
        stays flat however large the grid is.
        """
        axes = self.grid_axes(spec, n_bars)
        shape = tuple(len(a) for a in axes)
        total = math.prod(shape)
        for lo in range(0, total, chunk):
            flat = np.arange(lo, min(lo + chunk, total))
            idx = np.unravel_index(flat, shape)
            rows = np.stack([a[i] for a, i in zip(axes, idx, strict=True)], axis=1)
            keep = self.feasible(rows)
            yield np.ascontiguousarray(rows[keep]), int((~keep).sum())

    def grid_size(self, spec: Mapping[str, Sequence[Any]] | None = None,
                  n_bars: int | None = None) -> int:
        """Number of cartesian rows of the grid, before constraints."""
        return math.prod(len(a) for a in self.grid_axes(spec, n_bars))

    def feasible(self, params: np.ndarray) -> np.ndarray:
        """Boolean mask of rows of ``params`` (combos, dims) satisfying every constraint."""
        table = {n: params[:, i] for i, n in enumerate(self.names)}
        keep = np.ones(params.shape[0], dtype=bool)
        for c in self.constraints:
            keep &= c.holds(table)
        return keep

    def sample(self, rng: np.random.Generator, n: int, max_tries: int = 100) -> np.ndarray:
        """``n`` random feasible parameter sets within the search bounds, (n, dims)."""
        rows: list[list[float]] = []
        tries = 0
        while len(rows) < n:
            tries += 1
            if tries > max_tries * max(n, 1):
                raise StrategyError(f"{self.strategy}: could not sample feasible parameters")
            row = [float(d.sample(rng)) for d in self.dims]
            if self.feasible(np.array([row]))[0]:
                rows.append(row)
        return np.array(rows, dtype=np.float64).reshape(n, len(self.dims))

    def to_dicts(self, params: np.ndarray) -> list[dict[str, Any]]:
        """Rows of a params array as dicts with ints for Int dims."""
        out = []
        for row in params:
            d = {}
            for dim, v in zip(self.dims, row, strict=True):
                d[dim.name] = int(v) if isinstance(dim, Int) else (int(v) if float(v).is_integer() and isinstance(dim, Choice) else float(v))
            out.append(d)
        return out

    def to_array(self, params: Iterable[Mapping[str, Any]]) -> np.ndarray:
        rows = [[float(p[n]) for n in self.names] for p in params]
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(self.names))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form; ``ParamSpace.from_dict`` rebuilds it."""
        dims = []
        for d in self.dims:
            item = {f.name: getattr(d, f.name) for f in fields(d) if f.init}
            item["kind"] = d.kind
            if isinstance(d, Choice):
                item["options"] = list(d.options)
            dims.append(item)
        return {"strategy": self.strategy, "dims": dims,
                "constraints": [[c.left, c.op, c.right] for c in self.constraints]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParamSpace:
        kinds = {"int": Int, "float": Float, "choice": Choice}
        dims = []
        for item in data["dims"]:
            kw = {k: v for k, v in item.items() if k != "kind"}
            if item["kind"] == "choice":
                kw["options"] = tuple(kw["options"])
            dims.append(kinds[item["kind"]](**kw))
        return cls(tuple(dims), tuple(Constraint(*c) for c in data["constraints"]),
                   data["strategy"])

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for d in self.dims:
            item: dict[str, Any] = {"name": d.name, "type": d.kind}
            if isinstance(d, Choice):
                item["options"] = list(d.options)
            else:
                item["low"], item["high"] = d.low, d.high
            item["default"] = self.defaults()[d.name]
            out.append(item)
        return out


