"""Tests of kllab.maths.expfamily: oracles are torch.distributions, scipy.optimize, finite differences of the
log-partition, closed forms (a Gaussian's kurtosis formula, a target inside the family) and Monte Carlo."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch.distributions import Categorical, Normal, kl_divergence

from kllab.maths import expfamily as ef

X = torch.linspace(-1, 1, 41, dtype=torch.float64)


def bimodal(x=X):
    d = 0.6 * torch.exp(-0.5 * ((x + 0.45) / 0.18) ** 2) / 0.18 + 0.4 * torch.exp(-0.5 * ((x - 0.4) / 0.25) ** 2) / 0.25
    return (d / d.sum()).log()


def test_legendre_stats_span_the_monomials():
    T = ef.legendre_stats(X, 4)
    mono = torch.stack([X ** k for k in range(0, 5)], 1)
    # the Legendre columns plus a constant are an invertible linear map of 1, x, ..., x^4
    coef = torch.linalg.lstsq(mono, torch.cat([torch.ones(41, 1, dtype=torch.float64), T], 1)).solution
    assert torch.allclose(mono @ coef, torch.cat([torch.ones(41, 1, dtype=torch.float64), T], 1), atol=1e-12)
    assert abs(torch.linalg.det(coef).item()) > 1e-3


def test_log_probs_and_kl_match_torch_categorical():
    T = ef.legendre_stats(X, 3)
    a, b = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([[-0.3, 0.2, 0.1], [1.0, 1.0, -1.0]])
    la = ef.log_probs(a, T)
    assert torch.allclose(la, Categorical(logits=a.double() @ T.T).logits)
    assert torch.allclose(ef.log_partition(a, T), torch.logsumexp(a.double() @ T.T, -1))
    fwd = ef.kl_members(a, b, T, direction="forward")
    rev = ef.kl_members(a, b, T, direction="reverse")
    assert fwd.shape == (2,)
    assert torch.allclose(fwd, kl_divergence(Categorical(logits=la), Categorical(logits=ef.log_probs(b, T))))
    assert torch.allclose(rev, kl_divergence(Categorical(logits=ef.log_probs(b, T)), Categorical(logits=la)))
    # the Bregman form A(b) - A(a) - (b - a) . grad A(a)
    bregman = ef.log_partition(b, T) - ef.log_partition(a, T) - ((b.double() - a.double()) * ef.mean_stats(a, T)).sum(-1)
    assert torch.allclose(fwd, bregman)


def test_mean_and_fisher_are_finite_differences_of_log_partition():
    T = ef.legendre_stats(X, 3)
    theta = torch.tensor([0.4, -0.7, 1.1], dtype=torch.float64)
    h = 1e-5
    eye = torch.eye(3, dtype=torch.float64)
    A = lambda th: ef.log_partition(th, T).item()
    grad = torch.tensor([(A(theta + h * e) - A(theta - h * e)) / (2 * h) for e in eye], dtype=torch.float64)
    assert torch.allclose(grad, ef.mean_stats(theta, T), atol=1e-8)
    h = 1e-4
    hess = torch.tensor([[(A(theta + h * ei + h * ej) - A(theta + h * ei - h * ej) - A(theta - h * ei + h * ej)
                           + A(theta - h * ei - h * ej)) / (4 * h * h) for ej in eye] for ei in eye], dtype=torch.float64)
    assert torch.allclose(hess, ef.fisher_information(theta, T), atol=1e-6)


def test_mle_matches_scipy_and_is_batched():
    T = ef.legendre_stats(X, 4)
    rng = np.random.default_rng(0)
    counts = torch.from_numpy(rng.multinomial(60, bimodal().exp().numpy(), size=3).astype(np.float64))
    theta, ok = ef.mle(counts, T)
    assert ok.all() and theta.shape == (3, 4)
    Tn = T.numpy()
    for c, th in zip(counts.numpy(), theta):
        def nll(t):
            z = Tn @ t
            return -(c @ z) / c.sum() + np.log(np.exp(z - z.max()).sum()) + z.max()
        ref = minimize(nll, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
        assert np.allclose(th.numpy(), ref, atol=1e-4)
        # and the moments match
        assert torch.allclose(ef.mean_stats(th, T), torch.from_numpy(c @ Tn / c.sum()), atol=1e-9)


def test_information_projection_minimises_forward_kl_like_scipy():
    T = ef.legendre_stats(X, 2)
    g = bimodal()
    theta = ef.information_projection(g, T)
    kl = lambda t: float(kl_divergence(Categorical(logits=g), Categorical(logits=ef.log_probs(torch.tensor(t), T))))
    ref = minimize(kl, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000}).x
    assert np.allclose(theta.numpy(), ref, atol=1e-4)
    assert kl(theta.numpy()) <= kl(ref) + 1e-12


def test_trace_is_dimension_when_target_in_family():
    T = ef.legendre_stats(X, 5)
    g = ef.log_probs(torch.tensor([0.3, -1.0, 0.5, 0.2, -0.4]), T)
    assert math.isclose(ef.risk_trace(g, T).item(), 5.0, rel_tol=1e-8)
    assert math.isclose(ef.asymptotic_risk(g, T, 100).item(), 5.0 / 200, rel_tol=1e-8)
    assert abs(ef.risk_trace(bimodal(), T).item() - 5.0) > 0.1        # misspecified: not p


def test_gaussian_model_closed_forms():
    # T = (x, x^2) on a fine wide grid is the Gaussian family; members agree with torch's Normal and
    # tr(I^-1 Cov_g T) = 1 + (kurtosis - 1) / 2 for a target of mean 0 (Laplace: kurtosis 6, trace 3.5).
    x = torch.linspace(-20, 20, 4001, dtype=torch.float64)
    dx = (x[1] - x[0]).item()
    T = torch.stack([x, x * x], 1)
    mu, sigma = 0.7, 1.3
    theta = torch.tensor([mu / sigma ** 2, -0.5 / sigma ** 2], dtype=torch.float64)
    assert torch.allclose(ef.log_probs(theta, T)[1500:2500], Normal(mu, sigma).log_prob(x)[1500:2500] + math.log(dx),
                          atol=1e-9)
    b = 1 / math.sqrt(2)                                               # Laplace of unit variance
    g = torch.distributions.Laplace(0.0, b).log_prob(x) + math.log(dx)
    g = g - torch.logsumexp(g, 0)
    assert abs(ef.risk_trace(g, T).item() - 3.5) < 1e-3
    ts = ef.information_projection(g, T)
    s2 = -0.5 / ts[1].item()
    assert abs(s2 - 1.0) < 1e-4 and abs(ts[0].item()) < 1e-8      # moment matching: N(0, 1)
    # a Gaussian target: trace 2 = p
    gn = Normal(0.0, 1.0).log_prob(x) + math.log(dx)
    assert abs(ef.risk_trace(gn - torch.logsumexp(gn, 0), T).item() - 2.0) < 1e-6


def test_monte_carlo_risk_matches_leading_term():
    T = ef.legendre_stats(X, 2)
    g = bimodal()
    ts = ef.information_projection(g, T)
    n, reps = 1000, 1500
    rng = np.random.default_rng(1)
    counts = torch.from_numpy(rng.multinomial(n, g.exp().numpy(), size=reps).astype(np.float64))
    theta, ok = ef.mle(counts, T, theta0=ts)
    assert ok.all()
    tr = ef.risk_trace(g, T).item()
    for direction in ("forward", "reverse"):
        risk = 2 * n * ef.kl_members(ts, theta, T, direction=direction)
        se = risk.std().item() / math.sqrt(reps)
        assert abs(risk.mean().item() - tr) < 4 * se + 0.02 * tr, (direction, risk.mean().item(), tr, se)


def test_mle_does_not_exist_with_too_few_points():
    T = ef.legendre_stats(X, 3)
    counts = torch.zeros(2, 41, dtype=torch.float64)
    counts[0, [3, 10, 20]] = 5.0                                       # three distinct points: on a face
    counts[1, [3, 10, 20, 30]] = 5.0                                   # four: interior
    _, ok = ef.mle(counts, T)
    assert ok.tolist() == [False, True]


def test_bad_input():
    T = ef.legendre_stats(X, 2)
    with pytest.raises(ValueError, match="stats must have shape"):
        ef.log_partition(torch.zeros(2), T[:2])
    with pytest.raises(ValueError, match="stats must be finite"):
        ef.log_partition(torch.zeros(2), T * float("nan"))
    with pytest.raises(ValueError, match="theta must have last axis"):
        ef.log_probs(torch.zeros(3), T)
    with pytest.raises(ValueError, match="theta must be finite"):
        ef.log_probs(torch.tensor([0.0, float("nan")]), T)
    with pytest.raises(ValueError, match="logp must be log-probabilities"):
        ef.risk_trace(torch.zeros(41, dtype=torch.float64), T)
    with pytest.raises(ValueError, match="logp must have last axis"):
        ef.risk_trace(torch.full((40,), -math.log(40), dtype=torch.float64), T)
    with pytest.raises(ValueError, match="n must be >= 1"):
        ef.asymptotic_risk(bimodal(), T, 0)
    with pytest.raises(ValueError, match="direction must be one of"):
        ef.kl_members(torch.zeros(2), torch.zeros(2), T, direction="sideways")
    with pytest.raises(ValueError, match="target_mean must lie inside"):
        ef.moment_match(torch.tensor([1.5, 0.0]), T, max_iter=50)     # P1 = x never exceeds 1
    with pytest.raises(ValueError, match="counts must be non-negative"):
        ef.sample_mean_stats(-torch.ones(41), T)
    with pytest.raises(ValueError, match="degree must be <= 40"):
        ef.legendre_stats(X, 41)
