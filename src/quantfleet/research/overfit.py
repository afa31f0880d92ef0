"""Overfitting statistics: probabilistic and deflated Sharpe ratios, minimum track record length,
and the probability of backtest overfitting (PBO) by combinatorially symmetric cross-validation.

Conventions (docs/overfit.md): every Sharpe ratio here is **per period** (per bar, not
annualized: divide an annualized Sharpe by ``sqrt(periods_per_year)``), and kurtosis is
**Pearson** kurtosis (a normal distribution has 3; "excess" kurtosis is this minus 3).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from quantfleet.backtest.blocks import BlockStats, block_stats
from quantfleet.backtest.job import NO_COMBO, best_combo
from quantfleet.errors import QuantfleetError
from quantfleet.kernels.cscv import cscv_select
from quantfleet.kernels.metrics import metric_sign

__all__ = [
    "DSR_GOOD",
    "DSR_LUCK",
    "OVERFIT_COLUMNS",
    "PBO_BAD",
    "PBO_GOOD",
    "PBOResult",
    "combo_sharpes",
    "deflated_sharpe",
    "deflated_sharpe_from_returns",
    "expected_max_sharpe",
    "min_track_record_length",
    "pair_overfit",
    "pbo",
    "pbo_from_blocks",
    "probabilistic_sharpe",
    "return_moments",
    "tournament_overfit",
    "tournament_winner_overfit",
    "verdict",
]

#: DSR at or above this: the winner's Sharpe is unlikely to be luck (a one-sided 5% test).
DSR_GOOD = 0.95
#: DSR below this: the winner's Sharpe is more likely luck than not.
DSR_LUCK = 0.5
#: PBO above this: the in-sample winner usually lands in the bottom half out of sample.
PBO_BAD = 0.5
#: PBO at or below this: the in-sample winner usually holds up out of sample.
PBO_GOOD = 0.25

_N = NormalDist()
_EULER_GAMMA = 0.5772156649015329
_MAX_COMBINATIONS = 1_000_000


# ---------------------------------------------------------------------------------------------
# Sharpe-ratio statistics


def _finite_returns(returns: Any, what: str) -> np.ndarray:
    try:
        r = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a 1-D array of per-bar returns, "
                        f"got {type(returns).__name__}") from None
    if r.ndim != 1:
        raise QuantfleetError(f"{what} must be 1-D (one return per bar), got shape {r.shape}; "
                              "pass one strategy's returns, e.g. returns[:, k]")
    fin = np.isfinite(r)
    # a contiguous series with every bar finite is read in place (the same values, in the same
    # layout, as its finite copy would be: the same sums), not copied
    return r if r.flags.c_contiguous and fin.all() else r[fin]


def return_moments(returns: Any) -> tuple[float, int, float, float]:
    """Per-period Sharpe ratio, bar count, skewness and Pearson kurtosis of a return series.

    Parameters
    ----------
    returns : array-like, shape (bars,)
        Per-bar returns; NaN and inf entries are dropped (bars without data).

    Returns
    -------
    (sr, n, skew, kurt)
        ``sr = mean / std(ddof=1)`` per bar (not annualized; NaN when std is 0), ``n`` the
        number of finite bars, ``skew = m3 / m2**1.5`` and ``kurt = m4 / m2**2`` from the
        population central moments ``m_k`` (the defaults of ``scipy.stats.skew`` and
        ``scipy.stats.kurtosis(fisher=False)``; a normal sample gives about 0 and 3).
    """
    r = _finite_returns(returns, "returns")
    n = int(r.size)
    if n < 2:
        raise QuantfleetError(f"returns: need at least 2 finite bars to estimate a Sharpe ratio, "
                              f"got {n}")
    mean = r.mean()
    d = r - mean
    # the powers of d by multiplication (np.power with an integer exponent calls pow() per
    # element): d * d, then d**3 over d and d**4 over the squares
    buf = np.multiply(d, d)
    m2 = float(np.mean(buf))
    if m2 <= 0.0:
        return math.nan, n, 0.0, 3.0
    sd = math.sqrt(m2 * n / (n - 1))
    skew = float(np.mean(np.multiply(d, buf, out=d))) / m2**1.5
    kurt = float(np.mean(np.multiply(buf, buf, out=buf))) / m2**2
    return float(mean) / sd, n, skew, kurt


def _sr_variance_factor(sr: float, skew: float, kurt: float) -> float:
    """``1 - skew*SR + (kurt-1)/4*SR^2``: n times the variance of the Sharpe estimator (Mertens)."""
    if not (math.isfinite(skew) and math.isfinite(kurt)):
        raise QuantfleetError(f"skew and kurt must be finite, got skew={skew}, kurt={kurt}")
    if kurt < 1.0 + skew * skew - 1e-9:
        raise QuantfleetError(
            f"kurt={kurt:g} is impossible with skew={skew:g} (Pearson kurtosis >= 1 + skew^2); "
            "kurt is Pearson kurtosis (normal = 3) — if you have excess kurtosis, add 3"
        )
    v = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if v <= 0.0:
        raise QuantfleetError(
            f"the Sharpe estimator's variance factor 1 - skew*SR + (kurt-1)/4*SR^2 is {v:g} "
            f"(SR={sr:g}, skew={skew:g}, kurt={kurt:g}); the moments are degenerate"
        )
    return v


def probabilistic_sharpe(returns: Any = None, sr_benchmark: float = 0.0, *,
                         sr: float | None = None, n_bars: float | None = None,
                         skew: float = 0.0, kurt: float = 3.0) -> float:
    """Probabilistic Sharpe ratio: the probability that the true Sharpe exceeds a benchmark.

    ``PSR = Φ( (SR - SR*) √(n-1) / √(1 - γ3·SR + (γ4-1)/4·SR²) )`` (Bailey & López de Prado
    2012), where the denominator is the asymptotic standard deviation of the Sharpe
    estimator under non-normal i.i.d. returns (Mertens 2002).

    Give either ``returns`` (the moments are estimated with :func:`return_moments`) or the
    moments ``sr``, ``n_bars``, ``skew`` and ``kurt``.

    Parameters
    ----------
    returns : array-like, shape (bars,), optional
        Per-bar returns of one strategy.
    sr_benchmark : float
        SR*, **per period** (per bar, not annualized).
    sr : float, optional
        Observed Sharpe ratio, **per period**: ``mean / std`` of per-bar returns. An annualized
        Sharpe ``S`` with ``ppy`` bars a year is ``S / sqrt(ppy)`` per period.
    n_bars : float, optional
        Number of returns the Sharpe was estimated on (n > 1; need not be an integer).
    skew : float
        Skewness γ3 of the returns (0 for normal).
    kurt : float
        **Pearson** kurtosis γ4 of the returns (3 for normal; excess kurtosis + 3).

    Returns
    -------
    float in [0, 1]

    References
    ----------
    Bailey, D. H. and López de Prado, M. (2012). "The Sharpe Ratio Efficient Frontier".
    Journal of Risk 15(2), 3–44.
    Mertens, E. (2002). "Comments on the variance of the IID estimator in Lo (2002)".
    """
    if returns is not None:
        if sr is not None or n_bars is not None:
            raise QuantfleetError("probabilistic_sharpe: give either returns or (sr, n_bars, "
                                  "skew, kurt), not both")
        sr, n_bars, skew, kurt = return_moments(returns)
    elif sr is None or n_bars is None:
        raise QuantfleetError("probabilistic_sharpe: give returns, or sr= and n_bars= "
                              "(with skew= and kurt= for non-normal returns)")
    return _psr(float(sr), float(n_bars), float(skew), float(kurt), float(sr_benchmark))


def _psr(sr: float, n: float, skew: float, kurt: float, sr0: float) -> float:
    if not n > 1:
        raise QuantfleetError(f"n_bars must be > 1 (the number of returns), got {n:g}")
    if not (math.isfinite(sr) and math.isfinite(sr0)):
        return math.nan
    z = (sr - sr0) * math.sqrt(n - 1.0) / math.sqrt(_sr_variance_factor(sr, skew, kurt))
    return _N.cdf(z)


def expected_max_sharpe(n_trials: int, var_trials: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe estimates whose true Sharpe is 0.

    ``E[max SR] ≈ √V · ((1-γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))`` with γ the Euler–Mascheroni
    constant (Bailey, Borwein, López de Prado & Zhu 2014, "False Strategy" theorem; Bailey &
    López de Prado 2014). It is the Sharpe a researcher should expect from the best of N
    independent skill-less trials; the deflated Sharpe ratio uses it as the benchmark SR*.

    Parameters
    ----------
    n_trials : int
        N >= 1, the number of (independent) trials run. One trial means no selection: 0.
    var_trials : float
        V, the variance of the trials' Sharpe ratios, in the same units as the answer
        (per-period Sharpe ratios give a per-period answer).

    Returns
    -------
    float
        The expected maximum Sharpe ratio (same units as ``sqrt(var_trials)``).

    References
    ----------
    Bailey, D. H., Borwein, J. M., López de Prado, M. and Zhu, Q. J. (2014). "Pseudo-mathematics
    and financial charlatanism". Notices of the AMS 61(5), 458–471.
    Bailey, D. H. and López de Prado, M. (2014). "The Deflated Sharpe Ratio". Journal of
    Portfolio Management 40(5), 94–107.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int | np.integer | float):
        raise TypeError(f"n_trials must be an int, got {type(n_trials).__name__}")
    if not (math.isfinite(n_trials) and n_trials >= 1 and float(n_trials) == int(n_trials)):
        raise QuantfleetError(f"n_trials must be a whole number >= 1 (the number of trials "
                              f"run), got {n_trials}")
    v = float(var_trials)
    if not (math.isfinite(v) and v >= 0.0):
        raise QuantfleetError(f"var_trials must be a finite variance >= 0, got {var_trials}; "
                              "it is the variance of the trials' Sharpe ratios")
    n = int(n_trials)
    if n == 1:
        return 0.0
    g = _EULER_GAMMA
    return math.sqrt(v) * ((1.0 - g) * _N.inv_cdf(1.0 - 1.0 / n)
                           + g * _N.inv_cdf(1.0 - 1.0 / (n * math.e)))


def deflated_sharpe(sr: float, n_bars: float, skew: float, kurt: float, n_trials: int,
                    var_trials: float) -> float:
    """Deflated Sharpe ratio: the PSR of the selected strategy against the expected best of N.

    ``DSR = PSR(SR* = E[max SR])`` with ``E[max SR] = expected_max_sharpe(n_trials,
    var_trials)`` (Bailey & López de Prado 2014). It is the probability that the
    winner's true Sharpe is positive once the selection among ``n_trials`` trials, the track
    record length and the non-normality of the returns are accounted for.

    Parameters
    ----------
    sr : float
        The selected strategy's Sharpe ratio, **per period** (not annualized).
    n_bars : float
        Number of returns ``sr`` was estimated on.
    skew, kurt : float
        Skewness and **Pearson** kurtosis (normal = 3) of the selected strategy's returns.
    n_trials : int
        Number of trials run before picking the winner (every one, not only the good ones).
    var_trials : float
        Variance of the trials' Sharpe ratios, **per period** (an annualized variance divided
        by ``periods_per_year``).

    Returns
    -------
    float in [0, 1]; ``DSR >= 0.95`` is the paper's usual bar.

    References
    ----------
    Bailey, D. H. and López de Prado, M. (2014). "The Deflated Sharpe Ratio: Correcting for
    Selection Bias, Backtest Overfitting and Non-Normality". Journal of Portfolio Management
    40(5), 94–107.
    """
    sr0 = expected_max_sharpe(n_trials, var_trials)
    return _psr(float(sr), float(n_bars), float(skew), float(kurt), sr0)


def deflated_sharpe_from_returns(winner_returns: Any, trial_sharpes: Any, *,
                                 periods_per_year: float | None = None) -> float:
    """Deflated Sharpe ratio of a winner, from its returns and the Sharpe of every trial run.

    The winner's per-period Sharpe, bar count, skewness and kurtosis come from
    :func:`return_moments`; N is ``len(trial_sharpes)`` (NaN entries included: a trial that
    could not be scored was still tried) and V is the sample variance (ddof=1) of the finite
    trial Sharpes.

    Parameters
    ----------
    winner_returns : array-like, shape (bars,)
        Per-bar returns of the selected strategy (NaN bars dropped).
    trial_sharpes : array-like, shape (trials,)
        Sharpe ratio of every trial, the winner's included, **per period** — unless
        ``periods_per_year`` is given, in which case they are annualized with it.
    periods_per_year : float, optional
        Bars per year the ``trial_sharpes`` were annualized with.

    Returns
    -------
    float in [0, 1]
    """
    s = np.asarray(trial_sharpes, dtype=np.float64).ravel()
    if s.size < 1:
        raise QuantfleetError("trial_sharpes is empty; pass the Sharpe ratio of every trial run")
    if periods_per_year is not None:
        if not (math.isfinite(periods_per_year) and periods_per_year > 0):
            raise QuantfleetError(f"periods_per_year must be > 0, got {periods_per_year}; "
                                  "e.g. 252 for daily stock bars, 365 for daily crypto")
        s = s / math.sqrt(periods_per_year)
    fin = s[np.isfinite(s)]
    var = float(np.var(fin, ddof=1)) if fin.size > 1 else 0.0
    sr, n, skew, kurt = return_moments(winner_returns)
    return deflated_sharpe(sr, n, skew, kurt, int(s.size), var)


def min_track_record_length(sr: float, skew: float = 0.0, kurt: float = 3.0,
                            sr_benchmark: float = 0.0, confidence: float = 0.95) -> float:
    """Minimum track record length: bars needed for ``PSR(sr_benchmark) >= confidence``.

    ``MinTRL = 1 + (1 - γ3·SR + (γ4-1)/4·SR²) · (Φ⁻¹(confidence) / (SR - SR*))²``
    (Bailey & López de Prado 2012). By construction
    ``probabilistic_sharpe(sr=sr, n_bars=MinTRL, ...) == confidence``.

    Parameters
    ----------
    sr : float
        Observed Sharpe ratio, **per period**.
    skew, kurt : float
        Skewness and **Pearson** kurtosis (normal = 3) of the returns.
    sr_benchmark : float
        SR*, per period.
    confidence : float
        In (0, 1), e.g. 0.95.

    Returns
    -------
    float
        Number of bars (not rounded; ``math.ceil`` it for a count). ``inf`` when
        ``sr <= sr_benchmark``: no track record is long enough.

    References
    ----------
    Bailey, D. H. and López de Prado, M. (2012). "The Sharpe Ratio Efficient Frontier".
    Journal of Risk 15(2), 3–44.
    """
    if not 0.0 < confidence < 1.0:
        raise QuantfleetError(f"confidence must be in (0, 1), got {confidence}; e.g. 0.95")
    sr, sr0 = float(sr), float(sr_benchmark)
    v = _sr_variance_factor(sr, float(skew), float(kurt))
    if not sr > sr0:
        return math.inf
    return 1.0 + v * (_N.inv_cdf(confidence) / (sr - sr0)) ** 2


# ---------------------------------------------------------------------------------------------
# Probability of backtest overfitting (CSCV)


@dataclass(frozen=True, eq=False)
class PBOResult:
    """Probability of backtest overfitting and the per-combination detail behind it.

    Attributes
    ----------
    pbo : float
        Fraction of combinations whose logit is <= 0 (the in-sample best trial ranks at or
        below the out-of-sample median), among the combinations with a selection (NaN if none).
    logits : ndarray, shape (combinations,)
        λ_c = ln(ω̄_c / (1 - ω̄_c)), ω̄_c the out-of-sample relative rank of the IS-best trial;
        NaN where no trial had a finite in-sample metric (nothing selected).
    relative_rank : ndarray, shape (combinations,)
        ω̄_c = rank / (N + 1), rank 1 = worst out of sample, N = best (ties: average rank).
    best_trial : ndarray of int, shape (combinations,)
        Column index (in the input) of the in-sample best trial of each combination (only
        finite metrics win, ties to the lowest column); ``NO_COMBO`` (-1) where none is finite.
    is_perf, oos_perf : ndarray, shape (combinations,)
        The metric of the IS-best trial in sample and out of sample (the pairs for the
        performance-degradation plot).
    degradation_slope, degradation_intercept : float
        OLS fit ``oos_perf ≈ intercept + slope · is_perf`` over the combinations (NaN if
        undefined); a negative slope means a better in-sample score predicts a worse
        out-of-sample one.
    prob_loss : float
        Fraction of combinations with a selection whose IS-best trial has ``oos_perf < 0``.
    n_splits, n_trials, n_combinations : int
        S, N (after dropping trials without data) and C(S, S/2).
    rows_dropped : int
        Rows dropped at the start so that the S blocks are equal (T mod S).
    trials_dropped : tuple
        Labels (DataFrame columns) or indices of trials dropped for having no finite return
        in the blocks.
    metric : str
    """

    pbo: float
    logits: np.ndarray
    relative_rank: np.ndarray
    best_trial: np.ndarray
    is_perf: np.ndarray
    oos_perf: np.ndarray
    degradation_slope: float
    degradation_intercept: float
    prob_loss: float
    n_splits: int
    n_trials: int
    n_combinations: int
    rows_dropped: int
    trials_dropped: tuple
    metric: str

    def __repr__(self) -> str:
        return (f"PBOResult(pbo={self.pbo:.3f}, n_trials={self.n_trials}, "
                f"n_splits={self.n_splits}, n_combinations={self.n_combinations}, "
                f"slope={self.degradation_slope:.3f}, prob_loss={self.prob_loss:.3f})")


def _relative_rank(is_perf: np.ndarray, oos_perf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IS-best column per row and its out-of-sample rank / (N + 1).

    The in-sample selection is :func:`~quantfleet.backtest.job.best_combo`'s rule: only finite
    values compete (NaN, +inf and -inf never win), ties go to the lowest column; a row without
    a finite value selects nothing (best ``NO_COMBO``, rank NaN). Out of sample rank 1 is the
    worst and N the best; non-finite values rank below every finite one (tied among
    themselves) and ties share their average rank.
    """
    n = is_perf.shape[1]
    fin = np.isfinite(is_perf)
    # argmax returns the first of equal values: ties go to the lowest column
    best = np.argmax(np.where(fin, is_perf, -np.inf), axis=1)
    v = np.where(np.isfinite(oos_perf), oos_perf, -np.inf)
    x = v[np.arange(v.shape[0]), best][:, None]
    rank = (v < x).sum(axis=1) + ((v == x).sum(axis=1) + 1) / 2.0
    omega = rank / (n + 1.0)
    none = ~fin.any(axis=1)
    best[none] = NO_COMBO
    omega[none] = np.nan
    return best, omega


def _as_matrix(returns: Any) -> tuple[np.ndarray, list[Any]]:
    cols = getattr(returns, "columns", None)
    try:
        x = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("returns must be a (bars, trials) array or DataFrame of per-bar returns, "
                        f"got {type(returns).__name__}") from None
    if x.ndim != 2:
        raise QuantfleetError(f"returns must be 2-D (bars × trials), got shape {x.shape}; "
                              "put one trial per column")
    labels = list(cols) if cols is not None else list(range(x.shape[1]))
    return x, labels


def _check_splits(n_splits: Any) -> int:
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise TypeError(f"n_splits must be an int, got {type(n_splits).__name__}")
    s = int(n_splits)
    if s < 2 or s % 2:
        raise QuantfleetError(f"n_splits must be an even number >= 2 (in and out of sample take "
                              f"half the blocks each), got {s}; the paper uses 16")
    if math.comb(s, s // 2) > _MAX_COMBINATIONS:
        raise QuantfleetError(f"n_splits={s} gives {math.comb(s, s // 2):,} combinations; use "
                              "n_splits <= 20 (16 is the usual choice)")
    return s


def _check_trials(n_trials: int, dropped: tuple) -> None:
    if n_trials < 2:
        raise QuantfleetError(f"pbo needs at least 2 trials with data (columns), got {n_trials}"
                              + (f" after dropping {len(dropped)} all-NaN" if dropped else "")
                              + "; PBO measures selection among several trials")


def _check_rows(t: int, s: int) -> None:
    block = t // s
    if block < 1 or block * (s // 2) < 2:
        raise QuantfleetError(f"returns has {t} rows, too few for n_splits={s}; need at least "
                              f"{max(s, 4)} rows, or a smaller n_splits")


def _combination_mask(s: int) -> np.ndarray:
    """(C(S, S/2), S) bool: row c marks the in-sample blocks of combination c."""
    combos = np.array(list(itertools.combinations(range(s), s // 2)), dtype=np.intp)
    mask = np.zeros((combos.shape[0], s), dtype=bool)
    mask[np.arange(combos.shape[0])[:, None], combos] = True
    return mask


@functools.cache
def _cscv_layout(s: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_combination_mask` and, for each combination, the row whose in-sample blocks are
    its out-of-sample blocks (both read-only, built once per S)."""
    mask = _combination_mask(s)
    row = {r.tobytes(): i for i, r in enumerate(mask)}
    pair = np.array([row[(~r).tobytes()] for r in mask], dtype=np.intp)
    mask.setflags(write=False)
    pair.setflags(write=False)
    return mask, pair


def pbo(returns: Any, n_splits: int = 16,
        metric: str | Callable[[np.ndarray], np.ndarray] = "sharpe") -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

    The T rows are cut into S equal contiguous blocks. For each of the C(S, S/2) ways to pick
    half of the blocks, the picked blocks (in time order) are the in-sample set and the rest
    the out-of-sample set; the trial with the best in-sample metric is located in the
    out-of-sample ranking, ω̄ = rank / (N + 1), and λ = ln(ω̄ / (1 - ω̄)). PBO is the fraction of
    combinations with λ <= 0: how often the in-sample winner is at or below the out-of-sample
    median. Pure noise gives about 0.5 (exactly (N+1)/(2N) in expectation for odd N, since the
    median rank itself counts); a trial that truly dominates gives about 0.

    For ``"sharpe"`` and ``"mean"`` each trial's returns are reduced to per-block statistics
    (:func:`~quantfleet.backtest.blocks.block_stats`: count, mean and M2 per block) and scored
    by :func:`pbo_from_blocks`, the one implementation: S = 16 (12,870 combinations) costs
    O(C · S · N) flops. A callable metric is evaluated on every combination's rows (slow).

    Parameters
    ----------
    returns : array or DataFrame, shape (T bars, N trials)
        Per-bar returns of every trial (one column each), aligned in time.
    n_splits : int
        S, even, >= 2 (paper: 16). The first ``T mod S`` rows are dropped so that the blocks
        are equal; ``rows_dropped`` reports how many.
    metric : "sharpe", "mean" or callable
        ``"sharpe"``: per-period ``mean / std(ddof=1)`` (NaN when std is 0 or fewer than 2
        finite bars); ``"mean"``: mean return; a callable maps a (rows, N) array (NaN =
        missing bar) to N scores. Higher is better. Only finite scores win in sample (ties:
        the lowest column; a combination without one selects nothing and is left out); out of
        sample non-finite scores rank below every finite one.

    Returns
    -------
    PBOResult

    Notes
    -----
    NaN and ±inf returns are missing bars: each trial's metric uses its finite bars only.
    Trials with no finite return in the blocks (after the first ``T mod S`` rows) are dropped
    (``trials_dropped``). The result is deterministic.

    References
    ----------
    Bailey, D. H., Borwein, J. M., López de Prado, M. and Zhu, Q. J. (2017, SSRN 2015). "The
    Probability of Backtest Overfitting". Journal of Computational Finance 20(4), 39–69.
    """
    x, labels = _as_matrix(returns)
    s = _check_splits(n_splits)
    if not callable(metric):
        if metric not in ("sharpe", "mean"):
            raise QuantfleetError(f"unknown metric {metric!r}; use 'sharpe', 'mean' or a "
                                  "callable mapping a (rows, trials) array to one score per "
                                  "trial")
        return pbo_from_blocks(block_stats(x.T, s), metric, labels=labels)

    name = getattr(metric, "__name__", "custom")
    t = x.shape[0]
    rows_dropped = t - (t // s) * s
    keep = np.isfinite(x[rows_dropped:]).any(axis=0)
    dropped = tuple(lab for lab, k in zip(labels, keep, strict=True) if not k)
    x = x[:, keep]
    kept_idx = np.flatnonzero(keep)
    n_trials = x.shape[1]
    _check_rows(t, s)
    _check_trials(n_trials, dropped)
    x = x[rows_dropped:]
    mask = _combination_mask(s)
    n_comb = mask.shape[0]
    is_p = np.empty((n_comb, n_trials))
    oos_p = np.empty((n_comb, n_trials))
    blocks = x.reshape(s, t // s, n_trials)
    for c in range(n_comb):
        is_p[c] = np.asarray(metric(blocks[mask[c]].reshape(-1, n_trials)), dtype=np.float64)
        oos_p[c] = np.asarray(metric(blocks[~mask[c]].reshape(-1, n_trials)), dtype=np.float64)
    best, omega = _relative_rank(is_p, oos_p)
    return _pbo_result(best, omega, is_p, oos_p, kept_idx, s, n_trials, rows_dropped, dropped,
                       name)


def pbo_from_blocks(blocks: BlockStats, metric: str = "sharpe", *,
                    labels: Sequence[Any] | None = None) -> PBOResult:
    """PBO (CSCV) of N trials from their per-block statistics: :func:`pbo` without the
    per-bar returns.

    ``blocks`` holds each trial's count of finite bars, mean and M2 in each of S blocks
    (:func:`~quantfleet.backtest.blocks.block_stats`; a sweep's jobs return them with
    ``BacktestJob(blocks=S)``), so memory is O(N · S) whatever the number of bars. The counts,
    sums and sums of squares of any union of blocks follow exactly (Chan et al.): centred at
    each trial's overall mean m0, block b contributes ``n_b``, ``n_b (mean_b - m0)`` and
    ``M2_b + n_b (mean_b - m0)²``; per pair of complementary combinations, the blocks of the
    one with the lower index are added in block order and the other half is the total minus
    them (:func:`~quantfleet.kernels.cscv.cscv_select`, one pass per pair).
    ``pbo(returns)`` is ``pbo_from_blocks(block_stats(returns.T, S))``.

    Parameters
    ----------
    blocks : BlockStats
        S = ``blocks.n_splits`` blocks (even, >= 2) of N trials.
    metric : "sharpe" or "mean"
        As in :func:`pbo`.
    labels : sequence, optional
        A name per trial, for ``trials_dropped`` (default: the column indices).

    Returns
    -------
    PBOResult (``best_trial`` indexes the trials of ``blocks``)
    """
    if not isinstance(blocks, BlockStats):
        raise TypeError(f"blocks must be a BlockStats (quantfleet.backtest.blocks.block_stats), "
                        f"got {type(blocks).__name__}")
    s = _check_splits(blocks.n_splits)
    if metric not in ("sharpe", "mean"):
        raise QuantfleetError(f"unknown metric {metric!r} for pbo_from_blocks; use 'sharpe' or "
                              "'mean' (a callable metric needs the per-bar returns: pbo())")
    labels = list(range(blocks.n_trials)) if labels is None else list(labels)
    if len(labels) != blocks.n_trials:
        raise QuantfleetError(f"labels: {len(labels)} names for {blocks.n_trials} trials")
    n_all = blocks.count.sum(axis=0)
    keep = n_all > 0
    dropped = tuple(lab for lab, k in zip(labels, keep, strict=True) if not k)
    kept_idx = np.flatnonzero(keep)
    n_trials = int(kept_idx.size)
    _check_rows(blocks.bars, s)
    _check_trials(n_trials, dropped)
    cnt = blocks.count[:, keep]
    mean = blocks.mean[:, keep]
    # centred at each trial's mean: the sums of squares stay well conditioned
    m0 = (cnt * mean).sum(axis=0) / n_all[keep]
    d = mean - m0
    s1 = cnt * d
    s2 = blocks.m2[:, keep] + s1 * d
    tot = (cnt.sum(axis=0), s1.sum(axis=0), s2.sum(axis=0))
    mask, pair = _cscv_layout(s)
    n_comb = mask.shape[0]
    best = np.empty(n_comb, dtype=np.intp)
    omega = np.empty(n_comb)
    is_best = np.empty(n_comb)
    oos_best = np.empty(n_comb)
    # one pass per pair of complementary combinations, no (combinations, trials) temporaries
    cscv_select(mask, pair, np.ascontiguousarray(cnt, dtype=np.float64),
                np.ascontiguousarray(s1), np.ascontiguousarray(s2), *tot, m0,
                metric == "sharpe", best, omega, is_best, oos_best)
    return _pbo_result(best, omega, is_best, oos_best, kept_idx, s, n_trials,
                       blocks.rows_dropped, dropped, metric, picked=True)


def _pbo_result(best: np.ndarray, omega: np.ndarray, is_p: np.ndarray, oos_p: np.ndarray,
                kept_idx: np.ndarray, s: int, n_trials: int, rows_dropped: int, dropped: tuple,
                name: str, picked: bool = False) -> PBOResult:
    """The PBOResult of per-combination selections (``picked``: ``is_p``/``oos_p`` are already
    the selected trial's values, else (combinations, trials))."""
    sel = best != NO_COMBO
    if not picked:
        r = np.arange(best.shape[0])
        is_p, oos_p = is_p[r, best], oos_p[r, best]
    is_best = np.where(sel, is_p, np.nan)
    oos_best = np.where(sel, oos_p, np.nan)
    with np.errstate(divide="ignore"):
        logits = np.log(omega / (1.0 - omega))
    ok = np.isfinite(is_best) & np.isfinite(oos_best)
    slope = intercept = math.nan
    if ok.sum() >= 2 and np.ptp(is_best[ok]) > 0:
        slope, intercept = (float(v) for v in np.polyfit(is_best[ok], oos_best[ok], 1))
    return PBOResult(
        pbo=float(np.mean(logits[sel] <= 0.0)) if sel.any() else math.nan, logits=logits,
        relative_rank=omega, best_trial=np.where(sel, kept_idx[np.where(sel, best, 0)], NO_COMBO),
        is_perf=is_best, oos_perf=oos_best, degradation_slope=slope,
        degradation_intercept=intercept,
        prob_loss=float(np.mean(oos_best[sel] < 0.0)) if sel.any() else math.nan,
        n_splits=s, n_trials=n_trials, n_combinations=int(best.shape[0]),
        rows_dropped=rows_dropped, trials_dropped=dropped, metric=name,
    )


# ---------------------------------------------------------------------------------------------
# Plain words


def verdict(dsr: float | None = None, pbo: float | None = None, *,
            n_trials: int | None = None, among: str | None = None,
            pbo_among: str | None = None, subject: str = "the winner's Sharpe") -> str:
    """Plain-words reading of a deflated Sharpe ratio and/or a PBO.

    Thresholds: DSR >= ``DSR_GOOD`` (0.95) unlikely luck; ``DSR_LUCK`` (0.5) <= DSR < 0.95
    inconclusive; DSR < 0.5 likely luck. PBO <= ``PBO_GOOD`` (0.25) holds up out of sample;
    0.25 < PBO <= ``PBO_BAD`` (0.5) some overfitting; PBO > 0.5 likely overfit.

    Parameters
    ----------
    dsr : float, optional
        Deflated Sharpe ratio in [0, 1].
    pbo : float or PBOResult, optional
        Probability of backtest overfitting in [0, 1].
    n_trials : int, optional
        Number of trials behind the DSR, quoted in the sentence.
    among : str, optional
        What the winner was selected among, e.g. ``"20 assets × 9 combos"``; with
        ``n_trials`` the sentence says "as the best of 180 trials (20 assets × 9 combos)".
    pbo_among : str, optional
        What the PBO was measured on, e.g. ``"the 9 combos on AAPL"``, when that differs from
        the DSR's trials.
    subject : str
        What the DSR judges, e.g. ``"the walk-forward pick's OOS Sharpe"`` for a tournament
        pair's own DSR.

    Returns
    -------
    str
        One sentence per statistic given, joined by "; " (e.g. ``"DSR 0.97: the winner's
        Sharpe is unlikely to be luck among 994 trials"``).
    """
    if dsr is None and pbo is None:
        raise QuantfleetError("verdict needs dsr= and/or pbo=")
    what = among
    among = f" among {n_trials:,} trials" if n_trials is not None else ""
    if what is not None:
        among = (f" as the best of {n_trials:,} trials ({what})" if n_trials is not None
                 else f" as the best of {what}")
    parts = []
    if dsr is not None:
        d = float(dsr)
        if not math.isfinite(d):
            parts.append(f"DSR n/a: too little data to judge {subject}")
        elif d >= DSR_GOOD:
            parts.append(f"DSR {d:.2f}: {subject} is unlikely to be luck{among}")
        elif d >= DSR_LUCK:
            parts.append(f"DSR {d:.2f}: inconclusive — {subject} could be luck{among}; "
                         "a longer record or fewer trials would tell")
        else:
            parts.append(f"DSR {d:.2f}: {subject} is likely luck{among}")
    if pbo is not None:
        p = float(getattr(pbo, "pbo", pbo))
        on = f" (on {pbo_among})" if pbo_among else ""
        if not math.isfinite(p):
            parts.append("PBO n/a: too few windows or trials to judge overfitting")
        elif p <= PBO_GOOD:
            parts.append(f"PBO {p:.2f}{on}: the in-sample winner usually holds up out of "
                         "sample")
        elif p <= PBO_BAD:
            parts.append(f"PBO {p:.2f}{on}: the in-sample winner often lands in the bottom half "
                         "out of sample — some overfitting")
        else:
            parts.append(f"PBO {p:.2f}{on}: the in-sample winner usually underperforms out of "
                         "sample — likely overfit")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Tournament tables


def tournament_overfit(table: Any, oos_returns: Any = None, *, metric: str = "sharpe",
                       periods_per_year: float | None = None) -> Any:
    """PBO (walk-forward variant) and deflated Sharpe per (strategy, asset) of a tournament.

    **PBO, walk-forward variant.** The tournament's windows play the role of CSCV's
    combinations: in each window the in-sample best combo (the row marked ``selected``, else
    the best finite ``is_<metric>``, ties to the lowest combo; a window with no finite
    ``is_<metric>`` has no selection and is left out) is ranked among all combos by
    ``oos_<metric>``, ω̄ = rank/(N+1),
    λ = ln(ω̄/(1-ω̄)), and PBO is the fraction of windows with λ <= 0 — the IS-best ranks at or
    below the OOS median. Unlike CSCV the splits are the walk-forward train/test pairs (train
    before test, not all C(S, S/2) symmetric splits), so with few windows the estimate is
    coarse: with W windows it moves in steps of 1/W.

    **Deflated Sharpe.** The selected combos' out-of-sample returns stitched over the windows
    (``oos_returns[f"{strategy}/{asset}"]``) are deflated with N = number of combos tried per
    window and V = variance across combos of each combo's mean out-of-sample Sharpe over the
    windows (converted to per period with ``periods_per_year``), a proxy for each combo's
    Sharpe over the stitched span.

    Parameters
    ----------
    table : pandas.DataFrame or pyarrow.Table
        ``TournamentResult.table`` / ``results.parquet``: one row per (strategy, asset, window,
        combo) with columns ``strategy, asset, window, combo, is_<metric>, oos_<metric>`` and
        optionally ``selected``.
    oos_returns : pandas.DataFrame, optional
        ``TournamentResult.oos_returns`` / ``oos_returns.parquet``: timestamps × "strategy/asset"
        per-bar returns. Without it the DSR columns are NaN.
    metric : str
        The selection metric whose ranks define PBO (higher is better; ``max_drawdown`` and
        ``turnover`` lower). The DSR always uses Sharpe.
    periods_per_year : float, optional
        Bars per year the table's Sharpe ratios were annualized with; inferred from the
        ``oos_returns`` timestamps when omitted (needed only for the DSR).

    Returns
    -------
    pandas.DataFrame
        One row per (strategy, asset): ``strategy, asset, n_windows, n_combos, pbo,
        pbo_windows`` (the windows PBO was measured on: those with a selection) ``,
        mean_logit, sharpe`` (per period, stitched OOS), ``n_bars, skew, kurt, sr0`` (expected
        max Sharpe, per period), ``dsr, verdict``; sorted by strategy and asset. These judge
        each pair's own walk-forward pick (the leaderboard calls them ``pair_pbo``,
        ``pair_dsr``, ``pair_verdict``); the leaderboard's winner, chosen among every pair, is
        deflated by :func:`tournament_winner_overfit`.
    """
    import pandas as pd

    if hasattr(table, "to_pandas") and not isinstance(table, pd.DataFrame):
        table = table.to_pandas()
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame or pyarrow Table, "
                        f"got {type(table).__name__}")
    need = ["strategy", "asset", "window", "combo", f"is_{metric}", f"oos_{metric}"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise QuantfleetError(f"tournament table lacks column(s) {', '.join(missing)}; pass "
                              "TournamentResult.table or results.parquet (with metric= one of "
                              "its is_/oos_ metrics)")
    need_sharpe = oos_returns is not None
    if need_sharpe and "oos_sharpe" not in table.columns:
        raise QuantfleetError("tournament table lacks oos_sharpe, needed for the deflated Sharpe")
    sign = metric_sign(metric)
    ppy = periods_per_year
    if need_sharpe and ppy is None:
        from quantfleet.data.market import infer_periods_per_year

        ppy = infer_periods_per_year(np.asarray(oos_returns.index))
    # one sort, then numpy slices per (strategy, asset) and per window: a groupby per group
    # cost more than the tournament's backtests on small windows
    t = table.sort_values(["strategy", "asset", "window", "combo"], kind="stable")
    strat_a = t["strategy"].to_numpy(dtype=object)
    asset_a = t["asset"].to_numpy(dtype=object)
    win_a = t["window"].to_numpy()
    combo_a = t["combo"].to_numpy()
    is_a = sign * t[f"is_{metric}"].to_numpy(dtype=np.float64)
    oos_a = sign * t[f"oos_{metric}"].to_numpy(dtype=np.float64)
    sel_a = t["selected"].to_numpy(dtype=bool) if "selected" in t.columns else None
    osr_a = t["oos_sharpe"].to_numpy(dtype=np.float64) if need_sharpe else None
    n = len(t)
    pair_break = np.ones(n, dtype=bool)
    if n:
        pair_break[1:] = (strat_a[1:] != strat_a[:-1]) | (asset_a[1:] != asset_a[:-1])
    pair_starts = np.flatnonzero(pair_break)
    rows = []
    for gi, a0 in enumerate(pair_starts):
        a1 = pair_starts[gi + 1] if gi + 1 < len(pair_starts) else n
        strat, asset = strat_a[a0], asset_a[a0]
        col = f"{strat}/{asset}"
        r = None
        if need_sharpe and col in oos_returns.columns:
            r = oos_returns[col].to_numpy(dtype=np.float64)
        rows.append(pair_overfit(
            strat, asset, win_a[a0:a1], combo_a[a0:a1], is_a[a0:a1], oos_a[a0:a1],
            sel_a[a0:a1] if sel_a is not None else None,
            osr_a[a0:a1] if need_sharpe else None, r, periods_per_year=ppy,
            judge_dsr=need_sharpe, signed=True))
    return pd.DataFrame(rows, columns=list(OVERFIT_COLUMNS))


OVERFIT_COLUMNS = ("strategy", "asset", "n_windows", "n_combos", "pbo", "pbo_windows",
                   "mean_logit", "sharpe", "n_bars", "skew", "kurt", "sr0", "dsr", "verdict")
"""Columns of :func:`tournament_overfit`'s frame and of each :func:`pair_overfit` row (one
row per pair: its ``dsr`` judges that pair's walk-forward pick among its own combos, not the
leaderboard's winner; see :func:`tournament_winner_overfit`)."""


def pair_overfit(strategy: str, asset: str, window: np.ndarray, combo: np.ndarray,
                 is_metric: np.ndarray, oos_metric: np.ndarray, selected: np.ndarray | None,
                 oos_sharpe: np.ndarray | None, returns: np.ndarray | None, *,
                 metric: str = "sharpe", periods_per_year: float | None = None,
                 judge_dsr: bool | None = None, signed: bool = False) -> dict[str, Any]:
    """One (strategy, asset)'s row of :func:`tournament_overfit`, from its own rows.

    The rows must be sorted by window, then combo. The tournament computes this inside each
    worker task (one task item = one strategy on one asset over all windows), so the driver
    only concatenates; :func:`tournament_overfit` calls it per group of a finished table.

    Parameters
    ----------
    window, combo : the rows' window index and combo index
    is_metric, oos_metric : the selection metric in and out of sample (as stored, unless
        ``signed``: already multiplied by -1 for lower-is-better metrics)
    selected : the rows marked selected, or None (then the best finite ``is_metric`` per window
        by :func:`~quantfleet.backtest.job.best_combo`; windows with none are left out of PBO)
    oos_sharpe : per-row out-of-sample Sharpe (annualized), or None (no DSR)
    returns : the selected combos' stitched out-of-sample returns (NaN where no data), or None
    periods_per_year : bars per year the Sharpe ratios were annualized with (for the DSR)
    judge_dsr : whether the verdict speaks of the DSR (default: returns given)
    """
    if not signed and metric_sign(metric) < 0:
        is_metric, oos_metric = -np.asarray(is_metric, float), -np.asarray(oos_metric, float)
    n = len(window)
    brk = np.ones(n, dtype=bool)
    if n:
        brk[1:] = window[1:] != window[:-1]
    wstarts = np.flatnonzero(brk)
    logits = []
    n_combos = 0
    for wi, w0 in enumerate(wstarts):
        w1 = wstarts[wi + 1] if wi + 1 < len(wstarts) else n
        n_combos = max(n_combos, len(np.unique(combo[w0:w1])))
        if w1 - w0 < 2:
            continue
        sel = selected[w0:w1] if selected is not None else None
        if sel is not None and sel.sum() == 1:
            best = int(np.flatnonzero(sel)[0])
        else:
            # signed: higher is better; the drivers' rule (finite only, ties to the lowest)
            best = best_combo(is_metric[w0:w1], "sharpe")
            if best == NO_COMBO:
                continue  # no finite in-sample metric: nothing was selected in this window
        v = np.where(np.isnan(oos_metric[w0:w1]), -np.inf, oos_metric[w0:w1])
        rank = (v < v[best]).sum() + ((v == v[best]).sum() + 1) / 2.0
        omega = rank / (len(v) + 1.0)
        logits.append(math.log(omega / (1.0 - omega)))
    lg = np.asarray(logits)
    row: dict[str, Any] = {
        "strategy": strategy, "asset": asset, "n_windows": int(len(wstarts)),
        "n_combos": n_combos,
        "pbo": float(np.mean(lg <= 0.0)) if lg.size else math.nan,
        "pbo_windows": int(lg.size),
        "mean_logit": float(np.mean(lg)) if lg.size else math.nan,
        "sharpe": math.nan, "n_bars": 0, "skew": math.nan, "kurt": math.nan,
        "sr0": math.nan, "dsr": math.nan,
    }
    if judge_dsr is None:
        judge_dsr = returns is not None
    if returns is not None and oos_sharpe is not None:
        if periods_per_year is None:
            raise QuantfleetError("pair_overfit: periods_per_year is needed for the deflated "
                                  "Sharpe (e.g. 252 for daily bars)")
        r = np.asarray(returns, dtype=np.float64)
        r = r[np.isfinite(r)]
        # mean out-of-sample Sharpe of each combo over the windows (NaN left out)
        ok = np.isfinite(oos_sharpe)
        ids, inv = np.unique(combo, return_inverse=True)
        tot = np.bincount(inv, weights=np.where(ok, oos_sharpe, 0.0), minlength=len(ids))
        cnt = np.bincount(inv, weights=ok.astype(float), minlength=len(ids))
        with np.errstate(invalid="ignore", divide="ignore"):
            per_combo = tot / cnt
        per_combo = per_combo[np.isfinite(per_combo)] / math.sqrt(periods_per_year)
        var = float(np.var(per_combo, ddof=1)) if per_combo.size > 1 else 0.0
        if r.size >= 2:
            sr, nb, skew, kurt = return_moments(r)
            sr0 = expected_max_sharpe(n_combos, var)
            row.update(sharpe=sr, n_bars=nb, skew=skew, kurt=kurt, sr0=sr0,
                       dsr=_psr(sr, nb, skew, kurt, sr0) if math.isfinite(sr) else math.nan)
    row["verdict"] = verdict(row["dsr"] if judge_dsr else None, row["pbo"], n_trials=n_combos,
                             among=f"this pair's {n_combos} combo{'s' if n_combos != 1 else ''}"
                                   " in each window", subject=_PAIR_SUBJECT)
    return row


_PAIR_SUBJECT = "the walk-forward pick's OOS Sharpe"
"""What a tournament pair's own DSR judges (its verdict's subject)."""


def combo_sharpes(oos_sharpe: np.ndarray, n_combos: int, periods_per_year: float) -> np.ndarray:
    """Each combo's Sharpe over a tournament pair's test windows, per bar: the mean of its
    per-window out-of-sample Sharpe ratios, a window where it never trades (Sharpe NaN: no
    variance) counting as 0, as its flat bars would in a stitched record; NaN when it never
    trades in any window (it is then no trial: :func:`tournament_winner_overfit`).

    With W windows of T/W bars each window's Sharpe has sampling variance ≈ W/T, so the mean
    of W of them has ≈ 1/T, the variance of one Sharpe over the T stitched bars: the trials'
    variance V is on the scale of the winner's stitched Sharpe.

    Parameters
    ----------
    oos_sharpe : float (windows × combos,)
        Annualized out-of-sample Sharpe of every (window, combo), window-major (the
        tournament's row order).
    n_combos : the pair's grid size
    periods_per_year : bars per year the Sharpe ratios were annualized with

    Returns
    -------
    float (combos,), per bar.
    """
    v = np.asarray(oos_sharpe, dtype=np.float64).reshape(-1, n_combos)
    ok = np.isfinite(v)
    with np.errstate(invalid="ignore"):
        mean = np.where(ok, v, 0.0).sum(axis=0) / v.shape[0]
    return np.where(ok.any(axis=0), mean, np.nan) / math.sqrt(periods_per_year)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def tournament_winner_overfit(pair_rows: Any, trial_sharpes: Any, winner: int) -> dict[str, Any]:
    """Deflated Sharpe of a tournament's leaderboard winner, deflated by every trial it was
    chosen among, with the tournament's pooled walk-forward PBO.

    The leaderboard ranks every (strategy, asset) pair by the out-of-sample Sharpe of its
    walk-forward record, and each pair's record was assembled from its grid's combos, every one
    of which was scored out of sample in every window. So the trials are all (pair, combo)s:
    N = the number of them with an out-of-sample Sharpe (:func:`combo_sharpes` finite; one that
    never trades in any test window is left out and counted in ``n_unscored``) and V = the
    sample variance (ddof=1) of those trials' Sharpe ratios (per bar), pooled over all pairs.
    The winner's own Sharpe, bar count, skewness and kurtosis are those of its stitched
    out-of-sample returns (its :func:`pair_overfit` row).

    PBO is pooled over the pairs: the fraction of all (pair, window) selections whose in-sample
    pick ranked at or below the out-of-sample median (each pair's ``pbo`` weighted by its
    ``pbo_windows``); the winner's own PBO would be biased low, since the leaderboard picked
    the pair whose picks did well out of sample.

    Parameters
    ----------
    pair_rows : sequence of :func:`pair_overfit` rows, one per finished pair
    trial_sharpes : sequence of float arrays, parallel to ``pair_rows``: each pair's
        :func:`combo_sharpes` (per bar)
    winner : index of the leaderboard's first row in ``pair_rows``

    Returns
    -------
    dict with ``strategy, asset, dsr, sharpe`` (per bar) ``, n_bars, skew, kurt, sr0, n_trials,
    n_pairs, n_combos`` (the grid sizes, ``[min, max]``) ``, n_unscored, var_trials`` (V, per
    bar) ``, selected_among, pbo, pbo_windows, verdict``.
    """
    rows = list(pair_rows)
    sharpes = [np.asarray(t, dtype=np.float64) for t in trial_sharpes]
    if len(rows) != len(sharpes) or not rows:
        raise QuantfleetError(f"tournament_winner_overfit: {len(rows)} pair rows and "
                              f"{len(sharpes)} trial Sharpe arrays; pass one array per pair")
    every = np.concatenate(sharpes)
    fin = every[np.isfinite(every)]
    n_trials = int(fin.size)
    var = float(np.var(fin, ddof=1)) if fin.size > 1 else 0.0
    w = rows[winner]
    sizes = sorted({s.size for s in sharpes})
    combos = (_plural(sizes[0], "combo") if len(sizes) == 1
              else f"{sizes[0]}–{sizes[-1]} combos each")
    among = f"{_plural(len(rows), 'strategy × asset pair')} × {combos}"
    unscored = int(every.size - n_trials)
    if unscored:
        among += (f"; {_plural(unscored, 'trial')} without an out-of-sample Sharpe (never "
                  "traded) left out")
    sr, nb = float(w["sharpe"]), int(w["n_bars"])
    sr0 = dsr = math.nan
    if n_trials >= 1 and nb >= 2 and math.isfinite(sr):
        sr0 = expected_max_sharpe(n_trials, var)
        dsr = _psr(sr, nb, float(w["skew"]), float(w["kurt"]), sr0)
    pw = np.array([int(r.get("pbo_windows", 0)) for r in rows])
    pp = np.array([float(r["pbo"]) for r in rows])
    used = (pw > 0) & np.isfinite(pp)
    n_win = int(pw[used].sum())
    pooled = float((pp[used] * pw[used]).sum() / n_win) if n_win else math.nan
    text = verdict(dsr=dsr, pbo=pooled, n_trials=n_trials, among=among,
                   pbo_among=f"{_plural(n_win, 'walk-forward window')} of "
                             f"{_plural(int(used.sum()), 'pair')}, pooled")
    return {"strategy": w["strategy"], "asset": w["asset"], "dsr": dsr, "sharpe": sr,
            "n_bars": nb, "skew": float(w["skew"]), "kurt": float(w["kurt"]), "sr0": sr0,
            "n_trials": n_trials, "n_pairs": len(rows), "n_combos": [sizes[0], sizes[-1]],
            "n_unscored": unscored, "var_trials": var, "selected_among": among,
            "pbo": pooled, "pbo_windows": n_win, "verdict": text}
