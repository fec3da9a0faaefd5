"""Targets: mixtures against scipy, sampling, score, grid discretisation."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from kllab.maths.distributions import GaussianMixture1D, Grid1D, two_modes


def test_mixture_log_prob_matches_scipy():
    gm = GaussianMixture1D([-1.0, 2.0], [0.5, 1.5], [0.3, 0.7])
    x = np.linspace(-4, 6, 101)
    expected = np.log(0.3 * scipy.stats.norm.pdf(x, -1, 0.5) + 0.7 * scipy.stats.norm.pdf(x, 2, 1.5))
    np.testing.assert_allclose(gm.log_prob(x).numpy(), expected, rtol=1e-12)


def test_two_modes_moments():
    gm = two_modes(3.0)
    assert gm.mean == pytest.approx(0.0)
    assert gm.variance == pytest.approx(10.0)


def test_samples_reproducible_and_moments():
    gm = two_modes(2.0)
    a, b = gm.sample(50_000, seed=3), gm.sample(50_000, seed=3)
    assert torch.equal(a, b)
    assert a.mean().item() == pytest.approx(0.0, abs=0.05)
    assert a.var().item() == pytest.approx(5.0, rel=0.03)


def test_samples_follow_an_asymmetric_mixture():
    # The symmetric two_modes test above cannot tell a sampler that ignores the weights or swaps the sigmas: here a
    # Kolmogorov-Smirnov test against the mixture's own cdf (and scipy's, for the parameters) can.
    gm = GaussianMixture1D([-2.0, 1.0], [0.7, 1.2], [0.25, 0.75])
    x = gm.sample(50_000, seed=5).numpy()

    def cdf(v):
        return 0.25 * scipy.stats.norm.cdf(v, -2.0, 0.7) + 0.75 * scipy.stats.norm.cdf(v, 1.0, 1.2)

    assert scipy.stats.kstest(x, cdf).pvalue > 1e-3
    assert x.mean() == pytest.approx(gm.mean, abs=0.03) and x.var() == pytest.approx(gm.variance, rel=0.03)


def test_score_matches_finite_difference():
    gm = GaussianMixture1D([-1.0, 2.0], [0.5, 1.5], [0.3, 0.7])
    x = torch.linspace(-3, 4, 15, dtype=torch.float64)
    h = 1e-5
    fd = (gm.log_prob(x + h) - gm.log_prob(x - h)) / (2 * h)
    torch.testing.assert_close(gm.score(x), fd, rtol=1e-6, atol=1e-6)


def test_smooth_adds_variance():
    gm = two_modes(3.0).smooth(2.0)
    assert gm.variance == pytest.approx(9.0 + 1.0 + 4.0)


def test_grid_discretisation_approximates_integral_kl():
    grid = Grid1D(-20, 20, 8001)
    p = grid.discretize(torch.distributions.Normal(0.0, 1.0).log_prob(grid.x))
    q = grid.discretize(torch.distributions.Normal(1.0, 2.0).log_prob(grid.x))
    from kllab.maths.divergences import kl, kl_gaussian

    assert kl(p, q).item() == pytest.approx(kl_gaussian(0.0, 1.0, 1.0, 2.0).item(), rel=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: Grid1D(1.0, 0.0, 10), "high must be > low"),
    (lambda: Grid1D(0.0, 1.0, 1), "n must be >= 2; got 1"),
    (lambda: GaussianMixture1D([0.0], [0.0]), "sigmas[0] must be > 0; got 0.0"),
    (lambda: GaussianMixture1D([0.0, 1.0], [1.0]), "equal length"),
    (lambda: two_modes(-1.0), "separation must be >= 0"),
    (lambda: Grid1D(0, 1, 5).discretize(torch.zeros(4)), "log_density must have 5 values"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


# ------------------------------------------------------------------ distribution and quantile functions
from kllab.maths.distributions import discrete_gaussian, with_floor  # noqa: E402


def test_cdf_and_sf_match_scipy():
    gm = GaussianMixture1D([-1.0, 2.0], [0.5, 1.5], [0.3, 0.7])
    x = np.linspace(-6, 9, 61)
    expected = 0.3 * scipy.stats.norm.cdf(x, -1, 0.5) + 0.7 * scipy.stats.norm.cdf(x, 2, 1.5)
    np.testing.assert_allclose(gm.cdf(x).numpy(), expected, rtol=1e-12, atol=1e-15)
    tail = 0.3 * scipy.stats.norm.sf(x, -1, 0.5) + 0.7 * scipy.stats.norm.sf(x, 2, 1.5)
    np.testing.assert_allclose(gm.sf(x).numpy(), tail, rtol=1e-10, atol=1e-300)


def test_quantile_inverts_the_cdf_in_both_tails():
    gm = GaussianMixture1D([-1.0, 2.0], [0.5, 1.5], [0.3, 0.7])
    u = torch.tensor([1e-12, 1e-4, 0.2, 0.5, 0.9, 1 - 1e-6], dtype=torch.float64)
    x = gm.quantile(u)
    torch.testing.assert_close(gm.cdf(x)[:4], u[:4], rtol=1e-9, atol=0)
    torch.testing.assert_close(gm.sf(x)[4:], 1 - u[4:], rtol=1e-9, atol=0)
    single = GaussianMixture1D([1.0], [2.0])                       # a Gaussian: scipy's ppf is the oracle
    np.testing.assert_allclose(single.quantile(u).numpy(), scipy.stats.norm.ppf(u.numpy(), 1.0, 2.0), rtol=1e-9)
    q = gm.quantile(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert q[0].item() == -math.inf and q[1].item() == math.inf


def test_discrete_gaussian_is_normalised_and_centred():
    x = torch.arange(41, dtype=torch.float64)
    q = discrete_gaussian(x, torch.tensor([[20.0], [25.5]], dtype=torch.float64),
                          torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).exp()
    assert q.shape == (2, 3, 41)
    torch.testing.assert_close(q.sum(-1), torch.ones(2, 3, dtype=torch.float64))
    means = (q * x).sum(-1)               # about 5 sd inside the support: the mean is mu to 1e-5
    torch.testing.assert_close(means, torch.tensor([[20.0] * 3, [25.5] * 3], dtype=torch.float64), atol=1e-5, rtol=0)
    mu = torch.tensor(15.0, dtype=torch.float64, requires_grad=True)
    (discrete_gaussian(x, mu, 2.0).exp() * x).sum().backward()
    assert abs(mu.grad.item() - 1.0) < 1e-9          # d E[x] / d mu = Var / sigma^2 = 1 well inside the support


def test_with_floor():
    logp = torch.tensor([0.0, -math.inf, -math.inf, -math.inf], dtype=torch.float64)
    p = with_floor(logp, 0.2).exp()
    torch.testing.assert_close(p, torch.tensor([0.85, 0.05, 0.05, 0.05], dtype=torch.float64))
    assert torch.equal(with_floor(logp, 0.0), logp)
    torch.testing.assert_close(with_floor(logp, 1.0).exp(), torch.full((4,), 0.25, dtype=torch.float64))


@pytest.mark.parametrize("call, message", [
    (lambda: two_modes(1.0).quantile(torch.tensor([0.5, 1.5])), "u must be probabilities in [0, 1]; got 1.5"),
    (lambda: discrete_gaussian(torch.arange(3.0), 0.0, 0.0), "sigma must be > 0; got 0.0"),
    (lambda: discrete_gaussian(torch.zeros(2, 2), 0.0, 1.0), "positions must be a 1-D tensor"),
    (lambda: with_floor(torch.zeros(1), 1.5), "floor must be <= 1; got 1.5"),
])
def test_new_bad_input(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
