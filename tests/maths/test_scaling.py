"""Tests for kllab.maths.scaling: power-law fits, the low-rank softmax source, random-feature regression."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from kllab.maths import scaling


# ---------------------------------------------------------------- power laws

@pytest.mark.parametrize("l_inf, a, alpha", [(3.0, 2.0, 0.7), (0.0, 5.0, 1.5), (-1.0, 0.3, 0.25)])
def test_fit_power_law_recovers_exact_parameters(l_inf, a, alpha):
    x = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64.0])
    fit = scaling.fit_power_law(x, l_inf + a * x ** -alpha)
    assert fit.l_inf == pytest.approx(l_inf, abs=1e-7)
    assert fit.a == pytest.approx(a, rel=1e-6)
    assert fit.alpha == pytest.approx(alpha, rel=1e-6)
    assert fit.rms < 1e-9
    np.testing.assert_allclose(fit(x), l_inf + a * x ** -alpha, atol=1e-8)


def test_fit_power_law_without_constant_matches_loglog_line():
    # Oracle: for exact power-law data, a pure power-law fit and the log-log regression agree.
    x = np.geomspace(1, 100, 9)
    y = 4.0 * x ** -1.3
    fit = scaling.fit_power_law(x, y, irreducible=False)
    assert fit.l_inf == 0.0
    assert fit.alpha == pytest.approx(-scaling.loglog_slope(x, y), rel=1e-8)
    assert fit.alpha == pytest.approx(1.3, rel=1e-8) and fit.a == pytest.approx(4.0, rel=1e-8)


def test_fit_power_law_noisy_data_close_to_truth():
    rng = np.random.default_rng(0)
    x = np.geomspace(1, 64, 12)
    y = 2.0 + 1.0 * x ** -0.8 + 1e-4 * rng.standard_normal(x.size)
    fit = scaling.fit_power_law(x, y)
    assert abs(fit.l_inf - 2.0) < 2e-3 and abs(fit.alpha - 0.8) < 0.05


def test_loglog_slope_oracle_polyfit():
    x = np.array([1.0, 3.0, 7.0, 20.0])
    y = np.array([2.0, 0.9, 0.5, 0.1])
    assert scaling.loglog_slope(x, y) == pytest.approx(np.polyfit(np.log(x), np.log(y), 1)[0], rel=1e-12)


@pytest.mark.parametrize("x, y, match", [
    ([1, 2, 3], [1, 2, 3], "at least 4"),
    ([1, 2, 0, 4], [1, 2, 3, 4], "x must be > 0"),
    ([1, 2, 3, 4], [1, 2, np.nan, 4], "y must be finite"),
    ([1, 2, 3, 4], [1, 2, 3], "same shape"),
])
def test_fit_power_law_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        scaling.fit_power_law(x, y)


def test_loglog_slope_bad_input():
    with pytest.raises(ValueError, match="y must be > 0"):
        scaling.loglog_slope([1, 2], [1, -1])
    with pytest.raises(ValueError, match="two distinct"):
        scaling.loglog_slope([2, 2], [1, 3])


# ---------------------------------------------------------------- low-rank source

def _source(**kw):
    args = dict(spectrum_decay=1.0, scale=20.0, generator=torch.Generator().manual_seed(0))
    args.update(kw)
    return scaling.low_rank_source(32, 24, **args)


def test_source_singular_values_oracle_svd():
    src = _source()
    z = scaling.source_logits(src)
    sv = torch.linalg.svdvals(z)
    torch.testing.assert_close(sv, src.sigma, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(src.sigma, 20.0 * torch.arange(1, 25, dtype=torch.float64) ** -1.0)


def test_truncation_is_eckart_young_and_tail_energy():
    src = _source()
    z = scaling.source_logits(src)
    u, s, vh = torch.linalg.svd(z, full_matrices=False)
    for r in (1, 5, 24):
        zr = scaling.source_logits(src, r)
        torch.testing.assert_close(zr, (u[:, :r] * s[:r]) @ vh[:r], rtol=1e-9, atol=1e-9)
        assert torch.linalg.norm(z - zr).item() ** 2 == pytest.approx(scaling.tail_energy(src.sigma, [r])[0], rel=1e-9, abs=1e-18)
    torch.testing.assert_close(scaling.source_logits(src, 3, temperature=2.0), scaling.source_logits(src, 3) / 2)


def test_cross_entropy_terms_oracle_scipy_and_identity():
    src = _source()
    logp = torch.log_softmax(scaling.source_logits(src, temperature=0.7), -1)
    logq = torch.log_softmax(scaling.source_logits(src, 2, temperature=0.7), -1)
    ce, h, kl = scaling.cross_entropy_terms(logp, logq)
    assert ce.shape == (32,)
    p, q = logp.exp().numpy(), logq.exp().numpy()
    np.testing.assert_allclose(h.numpy(), scipy_entropy(p, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(kl.numpy(), scipy_entropy(p, q, axis=-1), rtol=1e-10)
    np.testing.assert_allclose(ce.numpy(), -(p * np.log(q)).sum(-1), rtol=1e-12)
    torch.testing.assert_close(ce, h + kl, rtol=0, atol=1e-12)


def test_small_logit_kl_matches_tail_energy():
    # KL(p || q_r) ~ S(r) / (2 C V T^2) at high temperature: fails if a factor 2, C, V or T^2 is dropped.
    src = scaling.low_rank_source(64, 64, spectrum_decay=1.0, scale=10.0, generator=torch.Generator().manual_seed(1))
    t = 4.0
    logp = torch.log_softmax(scaling.source_logits(src, temperature=t), -1)
    for r in (1, 4, 16):
        logq = torch.log_softmax(scaling.source_logits(src, r, temperature=t), -1)
        kl = scaling.cross_entropy_terms(logp, logq)[2].mean().item()
        theory = scaling.tail_energy(src.sigma, [r])[0] / (2 * 64 * 64 * t ** 2)
        assert kl == pytest.approx(theory, rel=0.05)


def test_source_and_terms_bad_input():
    with pytest.raises(ValueError, match="spectrum_decay must be <= 10"):
        _source(spectrum_decay=11.0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        _source(scale=0.0)
    with pytest.raises(TypeError, match="generator"):
        _source(generator=0)
    src = _source()
    with pytest.raises(ValueError, match="rank must be <= 24"):
        scaling.source_logits(src, 25)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        scaling.source_logits(src, 2, temperature=0.0)
    good = torch.log_softmax(torch.zeros(3, 4, dtype=torch.float64), -1)
    with pytest.raises(ValueError, match="logq must be log-probabilities"):
        scaling.cross_entropy_terms(good, torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="same shape"):
        scaling.cross_entropy_terms(good, good[:2])
    with pytest.raises(ValueError, match="ranks must be integers"):
        scaling.tail_energy([1.0, 2.0], [3])


# ---------------------------------------------------------------- random-feature regression

def test_population_mse_oracle_monte_carlo():
    rng = np.random.default_rng(0)
    lam = scaling.power_law_spectrum(6, 1.0)
    w = rng.standard_normal(6)
    a = scaling.random_features(4, 6, rng)
    theta = rng.standard_normal(4)
    x = rng.standard_normal((400_000, 6)) * np.sqrt(lam)
    mc = np.mean((x @ w - (x @ a.T) @ theta) ** 2)
    assert scaling.population_mse(theta, lam, w, a) == pytest.approx(mc, rel=0.01)


def test_infinite_data_mse_closed_forms():
    lam = scaling.power_law_spectrum(5, 1.0)
    w = np.arange(1.0, 6.0)
    select = np.eye(5)[:3]                                  # features = the top three coordinates
    assert scaling.infinite_data_mse(lam, w, select) == pytest.approx(float((lam * w ** 2)[3:].sum()), rel=1e-10)
    assert scaling.infinite_data_mse(lam, None, select) == pytest.approx(float(lam[3:].sum()), rel=1e-10)
    rng = np.random.default_rng(0)
    assert scaling.infinite_data_mse(lam, w, scaling.random_features(8, 5, rng)) == pytest.approx(0.0, abs=1e-12)


def test_teacher_average_oracle_sampled_teachers():
    # The exact mean over teachers w ~ N(0, I) against the mean over 4000 sampled teachers, same inputs and features.
    lam = scaling.power_law_spectrum(8, 1.0)
    a = scaling.random_features(5, 8, np.random.default_rng(1))
    exact = scaling.train_random_features(lam, None, a, 12, np.random.default_rng(2))
    rng = np.random.default_rng(3)
    sampled = [scaling.train_random_features(lam, rng.standard_normal(8), a, 12, np.random.default_rng(2))
               for _ in range(4000)]
    assert exact == pytest.approx(np.mean(sampled), rel=0.05)
    exact_inf = scaling.infinite_data_mse(lam, None, a)
    sampled_inf = [scaling.infinite_data_mse(lam, rng.standard_normal(8), a) for _ in range(4000)]
    assert exact_inf == pytest.approx(np.mean(sampled_inf), rel=0.05)


def test_variance_limited_law_oracle_monte_carlo():
    # E L = L_inf (1 + P / (D - P - 1)) for least squares with P Gaussian features, averaged over training sets.
    lam = scaling.power_law_spectrum(30, 1.0)
    a = scaling.random_features(4, 30, np.random.default_rng(0))
    l_inf = scaling.infinite_data_mse(lam, None, a)
    rng = np.random.default_rng(1)
    for d in (10, 40):
        mc = np.mean([scaling.train_random_features(lam, None, a, d, rng) for _ in range(3000)])
        assert mc == pytest.approx(float(scaling.variance_limited_mse(l_inf, 4, d)), rel=0.04)
    assert float(scaling.variance_limited_mse(2.0, 3, 9)) == pytest.approx(2.0 * (1 + 3 / 5))


def test_infinite_width_student_interpolates_and_limits():
    lam = scaling.power_law_spectrum(10, 1.0)
    w = np.random.default_rng(0).standard_normal(10)
    assert scaling.train_random_features(lam, w, None, 20, np.random.default_rng(1)) == pytest.approx(0.0, abs=1e-18)
    # With D < M, the min-norm student on x is the P -> infinity limit of random features.
    wide = scaling.random_features(20_000, 10, np.random.default_rng(2))
    l_wide = scaling.train_random_features(lam, w, wide, 4, np.random.default_rng(3))
    l_limit = scaling.train_random_features(lam, w, None, 4, np.random.default_rng(3))
    assert l_wide == pytest.approx(l_limit, rel=0.05)


def test_regression_bad_input():
    lam = scaling.power_law_spectrum(4, 1.0)
    with pytest.raises(ValueError, match="exponent must be > 0"):
        scaling.power_law_spectrum(4, 0.0)
    with pytest.raises(ValueError, match="teacher must be None or a finite vector of shape"):
        scaling.population_mse(np.zeros(4), lam, np.zeros(3))
    with pytest.raises(ValueError, match="features must be None or a finite"):
        scaling.infinite_data_mse(lam, None, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="spectrum must be > 0"):
        scaling.infinite_data_mse(np.array([1.0, -1.0]), None, None)
    with pytest.raises(ValueError, match="n_train must be > n_features"):
        scaling.variance_limited_mse(1.0, 5, [6, 20])
    with pytest.raises(ValueError, match="n_train must be >= 1"):
        scaling.train_random_features(lam, None, None, 0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        scaling.random_features(3, 4, 0)
    with pytest.raises(ValueError, match="theta must be a finite vector"):
        scaling.population_mse(np.zeros(3), lam, np.zeros(4))
    assert math.isfinite(scaling.population_mse(np.zeros(4), lam, np.ones(4)))
