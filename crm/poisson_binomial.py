"""The Poisson-binomial distribution: the number of successes of independent Bernoulli trials
with different probabilities. The need forecast (:mod:`crm.needs`) uses it for the number of
customers expected to need help, with an interval.

Pure functions over NumPy arrays (SciPy for the normal approximation); no database, no I/O.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

__all__ = [
    "EXACT_POISSON_BINOMIAL_MAX_N",
    "PoissonBinomialInterval",
    "poisson_binomial",
    "poisson_binomial_interval",
]

FloatArray = NDArray[np.float64]

#: Largest number of trials for which :func:`poisson_binomial` runs the exact O(n^2) DP.
EXACT_POISSON_BINOMIAL_MAX_N = 5000


class PoissonBinomialInterval(NamedTuple):
    """Expected number of successes and an equal-tailed interval ``[low, high]``."""

    expected: float
    low: int
    high: int


def _probabilities(probabilities: ArrayLike) -> FloatArray:
    """Validate a 1-D array of probabilities within [0, 1]."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("probabilities must be a 1-D sequence")
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError("probabilities must be within [0, 1]")
    return p


def _poisson_binomial_exact(p: FloatArray) -> FloatArray:
    """Exact pmf by dynamic programming, adding one trial at a time (O(n^2)).

    After trial ``i`` with probability ``p_i``:
    ``pmf'[j] = pmf[j] · (1 - p_i) + pmf[j - 1] · p_i``.
    """
    pmf = np.zeros(p.size + 1)
    pmf[0] = 1.0
    for i, pi in enumerate(p):
        pmf[1 : i + 2] = pmf[1 : i + 2] * (1.0 - pi) + pmf[: i + 1] * pi
        pmf[0] *= 1.0 - pi
    return pmf


def _poisson_binomial_normal(p: FloatArray) -> FloatArray:
    """Normal approximation with continuity correction.

    With ``mu = Σ p_i`` and ``var = Σ p_i (1 - p_i)``:
    ``pmf[k] = Φ((k + 0.5 - mu) / sd) - Φ((k - 0.5 - mu) / sd)``, with the two ends
    taking the whole tails (``pmf[0] = Φ((0.5 - mu)/sd)``, ``pmf[n] = 1 - Φ((n - 0.5 - mu)/sd)``)
    so the result sums to 1. Degenerate ``var == 0`` gives a point mass at ``mu``.
    """
    n = p.size
    mu = float(p.sum())
    sd = math.sqrt(float(np.sum(p * (1.0 - p))))
    if sd == 0.0:
        pmf = np.zeros(n + 1)
        pmf[round(mu)] = 1.0
        return pmf
    cdf = sps.norm.cdf((np.arange(n) + 0.5 - mu) / sd)
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


def poisson_binomial(
    probabilities: ArrayLike, *, exact_max_n: int = EXACT_POISSON_BINOMIAL_MAX_N
) -> FloatArray:
    """Distribution of the number of successes of independent Bernoulli trials.

    Returns ``pmf`` of length ``n + 1`` with ``pmf[k] = P(k successes)``. Up to
    ``exact_max_n`` trials the pmf is exact (vectorised dynamic programming, O(n^2));
    above that a normal approximation with continuity correction is used
    (mean ``Σ p``, variance ``Σ p(1 - p)``; accurate when the variance is large, which
    it is for thousands of trials unless nearly all ``p`` are 0 or 1). With equal ``p``
    the exact result is the binomial pmf. No trials gives ``[1.0]``.
    """
    p = _probabilities(probabilities)
    if p.size > exact_max_n:
        return _poisson_binomial_normal(p)
    return _poisson_binomial_exact(p)


def poisson_binomial_interval(
    probabilities: ArrayLike, level: float = 0.90
) -> PoissonBinomialInterval:
    """Expected successes ``Σ p`` and the equal-tailed ``level`` interval of the count.

    ``low`` is the smallest ``k`` with ``P(X <= k) >= (1 - level) / 2`` and ``high`` the
    smallest ``k`` with ``P(X <= k) >= (1 + level) / 2``, so
    ``P(low <= X <= high) >= level``. Unpacks as ``(expected, low, high)``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be within (0, 1)")
    p = _probabilities(probabilities)
    cdf = np.cumsum(poisson_binomial(p))
    n = p.size
    eps = 1e-12  # absorb rounding in the cumulative sum
    low = int(np.searchsorted(cdf, (1.0 - level) / 2.0 - eps, side="left"))
    high = int(np.searchsorted(cdf, (1.0 + level) / 2.0 - eps, side="left"))
    return PoissonBinomialInterval(float(p.sum()), min(low, n), min(high, n))
