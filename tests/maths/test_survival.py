"""Survival: Kaplan-Meier against SciPy's (scipy.stats.ecdf on CensoredData), its median, the naive estimate and
its closed-form bias under exponential censoring; bad input."""

import math

import numpy as np
import pytest
from scipy.stats import CensoredData, ecdf

from kllab.maths.survival import (kaplan_meier, km_median, naive_median, naive_median_exponential, naive_survival,
                                  survival_at)


def censored_sample(seed, n=300, mean=60.0, censored=0.4, rounding=True):
    g = np.random.default_rng(seed)
    life = g.exponential(mean, n)
    cens = g.exponential(mean * (1 - censored) / censored, n)
    t = np.minimum(life, cens)
    if rounding:
        t = np.round(t)      # ties between failures, and between failures and censorings
    return t, life <= cens


def scipy_sf(t, e):
    return ecdf(CensoredData(uncensored=t[e], right=t[~e])).sf


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rounding", [True, False])
def test_kaplan_meier_matches_scipy(seed, rounding):
    t, e = censored_sample(seed, rounding=rounding)
    s, S = kaplan_meier(t, e)
    x = np.unique(np.concatenate([[0.0], t, t + 0.25, [t.max() + 10]]))
    assert np.abs(survival_at(x, s, S) - scipy_sf(t, e).evaluate(x)).max() < 1e-12
    sf = scipy_sf(t, e)
    first = np.nonzero(sf.probabilities <= 0.5)[0]
    want = sf.quantiles[first[0]] if first.size else math.inf
    assert km_median(t, e) == want


def test_without_censoring_it_is_the_empirical_survival_function():
    t = np.random.default_rng(7).exponential(size=101)
    s, S = kaplan_meier(t, np.ones(101, dtype=bool))
    assert np.allclose(S, 1 - np.arange(1, 102) / 101)
    assert km_median(t, np.ones(101)) == np.median(t)          # odd n: the middle order statistic
    assert naive_median(t, np.ones(101)) == np.median(t)


def test_naive_curve_drops_the_censored_units():
    t, e = censored_sample(8)
    s, S = naive_survival(t, e)
    sf = ecdf(t[e]).sf
    assert np.abs(survival_at(s, s, S) - sf.evaluate(s)).max() < 1e-12


def test_all_censored_gives_no_median():
    s, S = kaplan_meier([1.0, 2.0], [0, 0])
    assert s.size == 0 and km_median([1.0, 2.0], [0, 0]) == math.inf
    assert survival_at([5.0], s, S).tolist() == [1.0]


def test_exponential_theory_large_sample():
    # KM is consistent for the true median 60 ln 2; the naive median tends to (1 - c) times it
    km, naive = [], []
    for seed in range(10):
        t, e = censored_sample(100 + seed, n=5000, censored=0.4, rounding=False)
        km.append(km_median(t, e))
        naive.append(naive_median(t, e))
    true = 60 * math.log(2)
    assert np.mean(km) == pytest.approx(true, rel=0.03)
    assert np.mean(naive) == pytest.approx(naive_median_exponential(60.0, 0.4), rel=0.03)
    assert naive_median_exponential(60.0, 0.4) == pytest.approx(0.6 * true)


def test_bad_input():
    with pytest.raises(ValueError, match="times must not contain NaN"):
        kaplan_meier([1.0, math.nan], [1, 0])
    with pytest.raises(ValueError, match="times must be finite and >= 0"):
        kaplan_meier([1.0, -2.0], [1, 0])
    with pytest.raises(ValueError, match="same shape"):
        kaplan_meier([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="events must be booleans or 0/1"):
        kaplan_meier([1.0, 2.0], [1, 2])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        kaplan_meier([], [])
    with pytest.raises(ValueError, match="at least one observed failure"):
        naive_median([1.0, 2.0], [0, 0])
    with pytest.raises(ValueError, match="censored_fraction must be < 1"):
        naive_median_exponential(60.0, 1.0)
    with pytest.raises(ValueError, match="mean_life must be > 0"):
        naive_median_exponential(0.0, 0.4)
    with pytest.raises(ValueError, match="same length"):
        survival_at([1.0], [1.0, 2.0], [0.5])
