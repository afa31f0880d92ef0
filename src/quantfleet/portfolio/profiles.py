"""Portfolio profiles: a named spec (kind + settings) that builds one skfolio estimator, and the
fit with its documented fallback chain (another solver or relaxed settings; the caller then
falls back to the previous window's weights, then inverse volatility).

skfolio and scikit-learn are imported inside functions only, so importing this module is cheap.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from quantfleet.errors import ConfigError, did_you_mean

__all__ = [
    "COVARIANCES",
    "FALLBACK_SOLVERS",
    "LINKAGES",
    "PROFILE_KINDS",
    "RELAXED_SOLVER_PARAMS",
    "WEIGHT_TOL",
    "Profile",
    "fit_profile",
    "inverse_volatility",
    "parse_profiles",
]

PROFILE_KINDS: dict[str, str] = {
    "hrp": "HierarchicalRiskParity (variance risk measure)",
    "herc": "HierarchicalEqualRiskContribution (variance risk measure)",
    "max_sharpe": "MeanRisk, ObjectiveFunction.MAXIMIZE_RATIO, variance",
    "min_variance": "MeanRisk, ObjectiveFunction.MINIMIZE_RISK, variance",
    "risk_parity": "RiskBudgeting, equal risk budgets, variance",
    "max_diversification": "MaximumDiversification",
    "inverse_volatility": "InverseVolatility",
    "equal_weight": "EqualWeighted",
}
"""Profile kinds and the skfolio estimator each builds."""

_SOLVER_KINDS = {"herc", "max_sharpe", "min_variance", "risk_parity", "max_diversification"}
_BOUNDED_KINDS = {"hrp", "herc", "max_sharpe", "min_variance", "risk_parity",
                  "max_diversification"}

COVARIANCES = ("empirical", "ledoit_wolf", "oas", "shrunk", "ew", "gerber", "denoise", "detone")
"""Covariance estimators by name (skfolio.moments: EmpiricalCovariance, LedoitWolf, OAS,
ShrunkCovariance, EWCovariance, GerberCovariance, DenoiseCovariance, DetoneCovariance)."""

LINKAGES = ("single", "complete", "average", "weighted", "centroid", "median", "ward")
"""Linkage methods of the hierarchical profiles (skfolio.cluster.LinkageMethod)."""

FALLBACK_SOLVERS = ("SCS", "ECOS")
"""Tried in order, when installed, after the profile's own solver fails."""

RELAXED_SOLVER_PARAMS = {"max_iter": 2000, "tol_gap_abs": 1e-6, "tol_gap_rel": 1e-6,
                         "tol_feas": 1e-6, "tol_ktratio": 1e-5}
"""CLARABEL with looser tolerances and 10x the iterations: the last solver attempt."""

WEIGHT_TOL = 1e-6
"""A fit whose weights miss the budget (sum 1) or the bounds by more than this has failed."""


@dataclass(frozen=True)
class Profile:
    """One portfolio profile: what to optimize and how.

    Parameters
    ----------
    kind : one of :data:`PROFILE_KINDS`
    name : label in results (default: ``kind``); lets two settings of one kind run side by side
    covariance : covariance estimator, one of :data:`COVARIANCES` (all but equal_weight)
    linkage : linkage method of hrp / herc, one of :data:`LINKAGES`
    risk_free_rate : annual rate for max_sharpe, turned into a per-period rate
        ``(1 + rf) ** (1 / ppy) - 1`` with the returns' periods per year
    min_weights, max_weights : per-asset weight bounds (long only by default); ignored by
        inverse_volatility and equal_weight, which have none
    solver : cvxpy solver of the convex profiles
    """

    kind: str
    name: str = ""
    covariance: str = "empirical"
    linkage: str = "ward"
    risk_free_rate: float = 0.0
    min_weights: float = 0.0
    max_weights: float = 1.0
    solver: str = "CLARABEL"

    def __post_init__(self) -> None:
        if self.kind not in PROFILE_KINDS:
            raise ConfigError(f"unknown portfolio profile {self.kind!r}"
                              f"{did_you_mean(self.kind, PROFILE_KINDS)}; choose from "
                              f"{', '.join(PROFILE_KINDS)}")
        if not self.name:
            object.__setattr__(self, "name", self.kind)
        if self.covariance not in COVARIANCES:
            raise ConfigError(f"profile {self.name!r}: unknown covariance {self.covariance!r}"
                              f"{did_you_mean(self.covariance, COVARIANCES)}; choose from "
                              f"{', '.join(COVARIANCES)}")
        if self.linkage not in LINKAGES:
            raise ConfigError(f"profile {self.name!r}: unknown linkage {self.linkage!r}"
                              f"{did_you_mean(self.linkage, LINKAGES)}; choose from "
                              f"{', '.join(LINKAGES)}")
        for k in ("risk_free_rate", "min_weights", "max_weights"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"profile {self.name!r}: {k} must be a finite number (got {v!r})")
            object.__setattr__(self, k, float(v))
        if self.min_weights > self.max_weights:
            raise ConfigError(f"profile {self.name!r}: min_weights {self.min_weights} is above "
                              f"max_weights {self.max_weights}")
        if not -1.0 < self.risk_free_rate < 1.0:
            raise ConfigError(f"profile {self.name!r}: risk_free_rate is an annual fraction "
                              f"(got {self.risk_free_rate}); typical values 0-0.05")

    @property
    def uses_solver(self) -> bool:
        return self.kind in _SOLVER_KINDS

    @property
    def bounded(self) -> bool:
        """Whether the weight bounds apply to this kind."""
        return self.kind in _BOUNDED_KINDS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            k = sorted(unknown)[0]
            raise ConfigError(f"profile setting {k!r} is unknown"
                              f"{did_you_mean(k, cls.__dataclass_fields__)}")
        return cls(**d)

    def rf_per_period(self, ppy: float) -> float:
        return (1.0 + self.risk_free_rate) ** (1.0 / ppy) - 1.0

    def build(self, ppy: float = 252.0, *, solver: str | None = None,
              solver_params: dict[str, Any] | None = None) -> Any:
        """The skfolio estimator (unfitted) these settings describe."""
        from skfolio.cluster import HierarchicalClustering, LinkageMethod
        from skfolio.optimization import (
            EqualWeighted,
            HierarchicalEqualRiskContribution,
            HierarchicalRiskParity,
            InverseVolatility,
            MaximumDiversification,
            MeanRisk,
            ObjectiveFunction,
            RiskBudgeting,
        )
        from skfolio.prior import EmpiricalPrior

        k = self.kind
        if k == "equal_weight":
            return EqualWeighted()
        prior = EmpiricalPrior(covariance_estimator=_covariance(self.covariance))
        if k == "inverse_volatility":
            return InverseVolatility(prior_estimator=prior)
        bounds = {"min_weights": self.min_weights, "max_weights": self.max_weights}
        if k in ("hrp", "herc"):
            clus = HierarchicalClustering(linkage_method=LinkageMethod[self.linkage.upper()])
            if k == "hrp":
                from skfolio.seriation import HierarchicalSeriation

                return HierarchicalRiskParity(
                    prior_estimator=prior,
                    seriation_estimator=HierarchicalSeriation(hierarchical_clustering_estimator=clus),
                    **bounds)
            return HierarchicalEqualRiskContribution(
                prior_estimator=prior, hierarchical_clustering_estimator=clus,
                solver=solver or self.solver, solver_params=solver_params, **bounds)
        conv = {"solver": solver or self.solver, "solver_params": solver_params, **bounds}
        if k == "max_sharpe":
            return MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
                            risk_free_rate=self.rf_per_period(ppy), prior_estimator=prior, **conv)
        if k == "min_variance":
            return MeanRisk(objective_function=ObjectiveFunction.MINIMIZE_RISK,
                            prior_estimator=prior, **conv)
        if k == "risk_parity":
            return RiskBudgeting(prior_estimator=prior, **conv)
        return MaximumDiversification(prior_estimator=prior, **conv)


def _covariance(name: str) -> Any:
    from skfolio import moments

    return {
        "empirical": moments.EmpiricalCovariance, "ledoit_wolf": moments.LedoitWolf,
        "oas": moments.OAS, "shrunk": moments.ShrunkCovariance, "ew": moments.EWCovariance,
        "gerber": moments.GerberCovariance, "denoise": moments.DenoiseCovariance,
        "detone": moments.DetoneCovariance,
    }[name]()


def parse_profiles(spec: str | list[str | Profile | dict[str, Any]],
                   **settings: Any) -> list[Profile]:
    """Profiles from ``"hrp,max_sharpe"``, a list of names, dicts or Profiles.

    ``settings`` (covariance, linkage, risk_free_rate, min_weights, max_weights, solver) apply
    to every profile given by name. Names must be unique.
    """
    items = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else spec
    if not items:
        raise ConfigError(f"no portfolio profiles given; choose from {', '.join(PROFILE_KINDS)}")
    out: list[Profile] = []
    for it in items:
        if isinstance(it, Profile):
            out.append(it)
        elif isinstance(it, dict):
            out.append(Profile.from_dict(it))
        elif isinstance(it, str):
            out.append(Profile(it, **settings))
        else:
            raise TypeError(f"a profile is a name, a dict or a Profile, got {type(it).__name__}")
    seen: set[str] = set()
    for p in out:
        if p.name in seen:
            raise ConfigError(f"profile name {p.name!r} appears twice; give each a unique name")
        seen.add(p.name)
    return out


def inverse_volatility(x: np.ndarray) -> np.ndarray:
    """Weights proportional to 1 / std (ddof=1) of each column of ``x`` (rows, assets); the
    last-resort fallback. Columns with zero or undefined volatility get the mean inverse
    volatility of the others; all such -> equal weights."""
    n = x.shape[1]
    sd = x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.full(n, np.nan)
    inv = np.where(np.isfinite(sd) & (sd > 0), 1.0 / np.where(sd > 0, sd, 1.0), np.nan)
    if not np.isfinite(inv).any():
        return np.full(n, 1.0 / n)
    inv = np.where(np.isfinite(inv), inv, np.nanmean(inv))
    return inv / inv.sum()


def _check_weights(p: Profile, w: Any, n: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all():
        raise ValueError(f"estimator returned weights of shape {w.shape} with non-finite values")
    if abs(w.sum() - 1.0) > WEIGHT_TOL:
        raise ValueError(f"weights sum to {w.sum():.6g}, not 1")
    if p.bounded and (w.min() < p.min_weights - WEIGHT_TOL or w.max() > p.max_weights + WEIGHT_TOL):
        raise ValueError(f"weights outside [{p.min_weights}, {p.max_weights}]")
    return w


def _solver_attempts(p: Profile) -> list[tuple[str, str | None, dict[str, Any] | None]]:
    """(fallback label, solver, solver_params) in the order tried."""
    attempts: list[tuple[str, str | None, dict[str, Any] | None]] = [("", None, None)]
    if not p.uses_solver:
        return attempts
    import cvxpy

    installed = set(cvxpy.installed_solvers())
    attempts += [(f"solver:{s}", s, None) for s in FALLBACK_SOLVERS
                 if s in installed and s != p.solver]
    attempts.append(("relaxed", "CLARABEL", dict(RELAXED_SOLVER_PARAMS)))
    return attempts


def fit_profile(profile: Profile, x: np.ndarray, ppy: float = 252.0) -> tuple[np.ndarray | None, str, str]:
    """Fit one profile on one window of returns.

    Parameters
    ----------
    profile : Profile
    x : float64 (rows, assets) simple returns of the train window
    ppy : periods per year (turns the annual risk-free rate into a per-period one)

    Returns ``(weights (assets,) or None, fallback, error)``: fallback is ``""`` when the
    profile's own settings worked, ``"solver:SCS"`` / ``"relaxed"`` when a later attempt did;
    weights is None when every attempt failed (the caller then uses the previous window's
    weights, then :func:`inverse_volatility`). ``error`` is the first failure's message.
    """
    n = x.shape[1]
    first_error = ""
    for label, solver, params in _solver_attempts(profile):
        try:
            est = profile.build(ppy, solver=solver, solver_params=params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(x)
            return _check_weights(profile, est.weights_, n), label, first_error
        except Exception as e:  # noqa: BLE001 - every failure moves down the fallback chain
            if not first_error:
                msg = str(e).strip().splitlines()
                first_error = f"{type(e).__name__}: {msg[0] if msg else ''}"[:300]
    return None, "failed", first_error

