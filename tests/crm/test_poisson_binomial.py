"""Tests for crm.poisson_binomial: hand-worked values, SciPy cross-checks and properties
(moved from tests/quality/test_stats.py with the functions)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from crm.poisson_binomial import poisson_binomial, poisson_binomial_interval


def test_poisson_binomial_hand_values() -> None:
    # p = 0.2, 0.5: P(0) = 0.8 * 0.5 = 0.4, P(1) = 0.2 * 0.5 + 0.8 * 0.5 = 0.5, P(2) = 0.1
    np.testing.assert_allclose(poisson_binomial([0.2, 0.5]), [0.4, 0.5, 0.1])
    assert poisson_binomial([]).tolist() == [1.0]
    assert poisson_binomial([1.0, 0.0, 1.0]).tolist() == [0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize(("n", "p"), [(1, 0.3), (10, 0.5), (50, 0.07), (400, 0.9)])
def test_poisson_binomial_equals_binomial(n: int, p: float) -> None:
    np.testing.assert_allclose(
        poisson_binomial(np.full(n, p)), sps.binom.pmf(np.arange(n + 1), n, p), atol=1e-12
    )


def test_poisson_binomial_against_monte_carlo() -> None:
    rng = np.random.default_rng(20260329)
    probs = rng.uniform(0.02, 0.95, size=25)
    draws = 200_000
    successes = np.zeros(draws, dtype=np.int64)
    for p in probs:
        successes += rng.random(draws) < p
    empirical = np.bincount(successes, minlength=probs.size + 1) / draws
    pmf = poisson_binomial(probs)
    # 5 binomial standard errors per cell (plus a floor for near-empty cells)
    tolerance = 5 * np.sqrt(pmf * (1 - pmf) / draws) + 1e-4
    assert np.all(np.abs(empirical - pmf) <= tolerance)


def test_poisson_binomial_normal_approximation() -> None:
    rng = np.random.default_rng(7)
    probs = rng.uniform(0.05, 0.6, size=2000)
    exact = poisson_binomial(probs)
    approx = poisson_binomial(probs, exact_max_n=0)  # force the approximation
    assert approx.sum() == pytest.approx(1.0)
    assert np.abs(exact - approx).max() < 2e-4  # peak is about 0.02
    # above the default threshold (5000) the approximation is used automatically
    big = rng.uniform(0, 1, size=6000)
    pmf = poisson_binomial(big)
    assert pmf.shape == (6001,)
    assert float(np.arange(6001) @ pmf) == pytest.approx(big.sum(), rel=1e-6)


def test_poisson_binomial_rejects_invalid() -> None:
    with pytest.raises(ValueError):
        poisson_binomial([0.5, 1.2])
    with pytest.raises(ValueError):
        poisson_binomial([float("nan")])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=80))
def test_poisson_binomial_properties(probs: list[float]) -> None:
    pmf = poisson_binomial(probs)
    assert pmf.shape == (len(probs) + 1,)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(pmf >= -1e-15)
    assert float(np.arange(len(probs) + 1) @ pmf) == pytest.approx(sum(probs), abs=1e-9)


def test_poisson_binomial_interval() -> None:
    # p = 0.5, 0.5: pmf 0.25 0.5 0.25, cdf 0.25 0.75 1
    # level 0.5: low = first k with cdf >= 0.25 -> 0; high = first k with cdf >= 0.75 -> 1
    assert poisson_binomial_interval([0.5, 0.5], level=0.5) == (1.0, 0, 1)
    # equal p: quantiles of the binomial
    expected, low, high = poisson_binomial_interval([0.3] * 20)
    assert expected == pytest.approx(6.0)
    assert low == int(sps.binom.ppf(0.05, 20, 0.3))
    assert high == int(sps.binom.ppf(0.95, 20, 0.3))
    assert (low, high) == (3, 9)
    res = poisson_binomial_interval([])
    assert (res.expected, res.low, res.high) == (0.0, 0, 0)
    with pytest.raises(ValueError):
        poisson_binomial_interval([0.5], level=1.0)
