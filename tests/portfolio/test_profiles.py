from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from quantfleet.errors import ConfigError
from quantfleet.portfolio import PROFILE_KINDS, Profile, fit_profile, parse_profiles
from quantfleet.portfolio.profiles import inverse_volatility


def _skfolio_direct(kind: str, ppy: float):
    """The estimator each profile should equal, built by hand from skfolio's own classes."""
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.moments import LedoitWolf
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
    from skfolio.seriation import HierarchicalSeriation

    prior = EmpiricalPrior(covariance_estimator=LedoitWolf())
    clus = HierarchicalClustering(linkage_method=LinkageMethod.SINGLE)
    b = {"min_weights": 0.02, "max_weights": 0.4}
    return {
        "hrp": HierarchicalRiskParity(
            prior_estimator=prior,
            seriation_estimator=HierarchicalSeriation(hierarchical_clustering_estimator=clus), **b),
        "herc": HierarchicalEqualRiskContribution(prior_estimator=prior, hierarchical_clustering_estimator=clus, **b),
        "max_sharpe": MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
                               risk_free_rate=1.02 ** (1 / ppy) - 1, prior_estimator=prior, **b),
        "min_variance": MeanRisk(objective_function=ObjectiveFunction.MINIMIZE_RISK, prior_estimator=prior, **b),
        "risk_parity": RiskBudgeting(prior_estimator=prior, **b),
        "max_diversification": MaximumDiversification(prior_estimator=prior, **b),
        "inverse_volatility": InverseVolatility(prior_estimator=prior),
        "equal_weight": EqualWeighted(),
    }[kind]


@pytest.mark.parametrize("kind", list(PROFILE_KINDS))
def test_weights_equal_skfolio_direct(kind, small):
    x = small.to_numpy()[:252]
    p = Profile(kind, covariance="ledoit_wolf", linkage="single", risk_free_rate=0.02,
                min_weights=0.02, max_weights=0.4)
    w, fb, err = fit_profile(p, x, 252.0)
    assert fb == "" and err == ""
    ref = _skfolio_direct(kind, 252.0).fit(x).weights_
    np.testing.assert_allclose(w, ref, atol=1e-8, rtol=0)


def test_defaults_equal_skfolio_defaults(small):
    from skfolio.optimization import HierarchicalRiskParity, MeanRisk

    x = small.to_numpy()[:252]
    np.testing.assert_allclose(fit_profile(Profile("hrp"), x)[0],
                               HierarchicalRiskParity().fit(x).weights_, atol=1e-8)
    np.testing.assert_allclose(fit_profile(Profile("min_variance"), x)[0],
                               MeanRisk().fit(x).weights_, atol=1e-8)


def test_infeasible_bounds_fail_without_raising(small):
    x = small.to_numpy()[:252]  # 6 assets: max 0.1 each cannot sum to 1
    for kind in ("hrp", "min_variance", "risk_parity"):
        w, fb, err = fit_profile(Profile(kind, max_weights=0.1), x)
        assert w is None and fb == "failed" and err


def test_profile_validation():
    with pytest.raises(ConfigError, match=r"unknown portfolio profile 'max_sharp' \(did you mean 'max_sharpe'"):
        Profile("max_sharp")
    with pytest.raises(ConfigError, match=r"unknown covariance 'ledoit' \(did you mean 'ledoit_wolf'"):
        Profile("hrp", covariance="ledoit")
    with pytest.raises(ConfigError, match="min_weights 0.5 is above max_weights 0.2"):
        Profile("hrp", min_weights=0.5, max_weights=0.2)
    with pytest.raises(ConfigError, match="appears twice"):
        parse_profiles("hrp,hrp")
    with pytest.raises(ConfigError, match="no portfolio profiles"):
        parse_profiles(" , ")
    ps = parse_profiles(["hrp", {"kind": "hrp", "name": "hrp_single", "linkage": "single"}],
                        covariance="oas")
    assert [p.name for p in ps] == ["hrp", "hrp_single"] and ps[0].covariance == "oas"
    assert Profile.from_dict(ps[1].to_dict()) == ps[1]


def test_inverse_volatility_fallback():
    rng = np.random.default_rng(0)
    x = rng.normal(0, [0.01, 0.02, 0.04], size=(100, 3))
    w = inverse_volatility(x)
    sd = x.std(axis=0, ddof=1)
    np.testing.assert_allclose(w, (1 / sd) / (1 / sd).sum())
    np.testing.assert_allclose(inverse_volatility(np.zeros((10, 4))), 0.25)


def test_importing_portfolio_does_not_import_skfolio():
    code = ("import sys, quantfleet.portfolio; "
            "print(any(m.split('.')[0] in ('skfolio', 'sklearn', 'ray') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
