"""Tests for kllab.maths.kde: Gaussian KDE in log space, leave-one-out, KL risk, large-dimension thresholds."""

import math

import numpy as np
import pytest
from scipy.stats import gaussian_kde
from sklearn.neighbors import KernelDensity

from kllab.maths import kde


def data(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


@pytest.mark.parametrize("h", [0.5, 1.0, 3.0])
def test_log_density_matches_sklearn(h):
    # sklearn sums the kernel over a KD tree in linear space: close, not to the last digit, at small h
    y, x = data(300, 5), data(50, 5, seed=1)
    ref = KernelDensity(kernel="gaussian", bandwidth=h).fit(y).score_samples(x)
    got = kde.log_density(x, y, h)
    assert got.shape == (50,)
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-7)


def test_log_density_matches_scipy_gaussian_kde_on_whitened_data():
    # scipy's kernel covariance is bw^2 times the data's sample covariance: whiten the data so that it is h^2 I
    y = data(400, 3)
    y = y - y.mean(0)
    y = y @ np.linalg.inv(np.linalg.cholesky(np.cov(y.T)).T)
    x = data(40, 3, seed=2)
    for h in (0.2, 0.7):
        ref = gaussian_kde(y.T, bw_method=h).logpdf(x.T)
        np.testing.assert_allclose(kde.log_density(x, y, h), ref, rtol=1e-9, atol=1e-9)


def test_several_bandwidths_at_once_and_far_points_stay_finite():
    y, x = data(100, 4), data(10, 4, seed=3)
    hs = np.array([0.01, 0.5, 2.0])
    many = kde.log_density(x, y, hs)
    assert many.shape == (3, 10)
    for k, h in enumerate(hs):
        np.testing.assert_allclose(many[k], kde.log_density(x, y, h), rtol=1e-12)
    assert np.isfinite(many[0]).all()                 # exp underflows to 0, log-sum-exp does not
    x_far = np.full((1, 4), 50.0)
    exact = -np.sum((x_far - y) ** 2, 1).min() / (2 * 0.01**2)
    assert np.isfinite(kde.log_density(x_far, y, 0.01)).all() and exact < -1e6


def test_max_weight_limits():
    y, x = data(200, 6), data(30, 6, seed=4)
    w = kde.max_weight(x, y, np.array([0.01, 1.0, 100.0]))
    assert np.all(w[0] > 0.999)                        # a spike: the nearest point carries the sum
    assert np.all(np.abs(w[2] - 1 / 200) < 1e-4)       # a flat average
    assert np.all(np.diff(w, axis=0) <= 1e-12)         # softmax sharpness falls with temperature h^2


def test_loo_matches_refitting_without_each_point():
    y = data(60, 3)
    h = 0.6
    ref = np.array([KernelDensity(bandwidth=h, rtol=0, atol=0).fit(np.delete(y, i, 0)).score_samples(y[i:i + 1])[0]
                    for i in range(len(y))])
    np.testing.assert_allclose(kde.loo_log_density(y, h), ref, rtol=1e-9, atol=1e-9)


def test_kl_risk_of_one_point_matches_closed_form_by_monte_carlo():
    # R_1(h) = d/2 [log h^2 + 2/h^2 - 1]; a dropped factor (2/h^2 -> 1/h^2) moves it far outside the error bar
    d, h, reps = 3, 0.8, 20000
    rng = np.random.default_rng(5)
    y, x = rng.standard_normal((reps, d)), rng.standard_normal((reps, d))
    vals = np.array([kde.gaussian_kl_risk(x[i:i + 1], y[i:i + 1], h)[0] for i in range(reps)])
    se = vals.std() / math.sqrt(reps)
    assert abs(vals.mean() - kde.single_point_kl(h, d)) < 4 * se
    assert abs(kde.single_point_kl(h, d) - 1.5 * (math.log(h * h) + 2 / h**2 - 1)) < 1e-12


def test_kl_risk_of_many_points_approaches_smoothed_kl_and_is_bracketed():
    # fixed d = 1, n large: R_n(h) -> KL(N(0,1) || N(0, 1 + h^2)); and lower <= R_n <= R_1 at every n
    rng = np.random.default_rng(6)
    h = 0.7
    y, x = rng.standard_normal((20000, 1)), rng.standard_normal((4000, 1))
    vals = kde.gaussian_kl_risk(x, y, h)
    se = vals.std() / math.sqrt(len(vals))
    lower = kde.smoothed_kl(h, 1)
    assert abs(vals.mean() - lower) < 4 * se + 2e-3
    small = np.mean([kde.gaussian_kl_risk(rng.standard_normal((500, 4)), rng.standard_normal((5, 4)), h).mean()
                     for _ in range(40)])
    assert kde.smoothed_kl(h, 4) < small < kde.single_point_kl(h, 4)


def test_rate_function_is_the_legendre_transform_of_the_cumulant_generating_function():
    # independent route: Lambda(b) = -1/2 log(1 + 2b) - b/(1 + 2b) for the per-dimension squared distance;
    # I* = b Lambda'(b) - Lambda(b) at b = 1/(2 h^2), Lambda' by central finite differences
    lam = lambda b: -0.5 * math.log1p(2 * b) - b / (1 + 2 * b)
    for h in (0.3, 0.65, 1.0, 2.0):
        b, e = 1 / (2 * h * h), 1e-5
        dlam = (lam(b + e) - lam(b - e)) / (2 * e)
        assert abs(kde.rate_function(h) - (b * dlam - lam(b))) < 1e-7


def test_thresholds():
    for a in (0.25, 0.5, 1.0):
        hg = kde.condensation_bandwidth(a)
        assert abs(kde.rate_function(hg) - a) < 1e-12
        assert abs(kde.clt_bandwidth(a) - math.sqrt(2) * hg) < 1e-12
        hs = kde.asymptotic_optimal_bandwidth(a)
        assert hs < hg
        f = lambda h: kde.asymptotic_kl_per_dim(h, a)
        assert abs(kde.optimal_bandwidth(f, 0.05, 3.0, xatol=1e-7) - hs) < 1e-5
        assert abs(f(hg * (1 + 1e-10)) - f(hg * (1 - 1e-10))) < 1e-8          # continuous at h_G
        assert abs(f(1.3 * hg) - kde.smoothed_kl(1.3 * hg, 1) ) < 1e-12        # annealed above h_G
    assert kde.condensation_bandwidth(1.0) < kde.condensation_bandwidth(0.5) < kde.condensation_bandwidth(0.25)
    hs = np.linspace(0.05, 5, 200)
    assert np.all(np.diff([kde.rate_function(h) for h in hs]) < 0)


def test_finite_d_optimum_recovered_by_minimisation_matches_grid():
    y, x = data(148, 10), data(200, 10, seed=7)
    risk = lambda h: kde.gaussian_kl_risk(x, y, h).mean()
    h_opt = kde.optimal_bandwidth(risk, 0.2, 3.0, xatol=1e-4)
    grid = np.linspace(0.2, 3.0, 561)
    curve = kde.gaussian_kl_risk(x, y, grid).mean(1)
    assert abs(h_opt - grid[np.argmin(curve)]) < 0.01


@pytest.mark.parametrize("call, match", [
    (lambda: kde.log_density(np.zeros((2, 3)), np.zeros((4, 2)), 1.0), "x must have 2 columns"),
    (lambda: kde.log_density(np.zeros(3), np.zeros((4, 3)), 1.0), "x must have 2 axes"),
    (lambda: kde.log_density(np.zeros((2, 3)), np.full((4, 3), np.nan), 1.0), "data must not contain NaN"),
    (lambda: kde.log_density(np.zeros((2, 3)), np.zeros((4, 3)), 0.0), "bandwidth must be > 0"),
    (lambda: kde.log_density(np.zeros((2, 3)), np.zeros((4, 3)), [1.0, -1.0]), "bandwidth must be > 0"),
    (lambda: kde.log_density(np.zeros((2, 3)), np.zeros((0, 3)), 1.0), "data must hold at least one point"),
    (lambda: kde.loo_log_density(np.zeros((1, 3)), 1.0), "at least 2 points"),
    (lambda: kde.smoothed_kl(1.0, 0), "dim must be >= 1"),
    (lambda: kde.condensation_bandwidth(-0.1), "alpha must be >= 1e-06"),
    (lambda: kde.condensation_bandwidth(float("nan")), "alpha must be a finite"),
    (lambda: kde.optimal_bandwidth(lambda h: h, 1.0, 0.5), "high must be > 1"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
