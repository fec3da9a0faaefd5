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
