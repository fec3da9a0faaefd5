"""Fitting: the forward-KL optimum matches moments; the reverse-KL one seeks a mode."""

import math

import pytest
import torch

from kllab.maths.distributions import GaussianMixture1D, two_modes
from kllab.maths.fitting import fit_gaussian, fit_mixture


@pytest.mark.parametrize("s", [1.0, 2.0, 3.0])
def test_forward_kl_is_moment_matching(s):
    fit = fit_gaussian(two_modes(s), divergence="forward", steps=1500, lr=0.05)
    assert fit.mu == pytest.approx(0.0, abs=1e-3)
    assert fit.sigma == pytest.approx(math.sqrt(1 + s * s), rel=1e-3)


def test_forward_kl_moment_matching_asymmetric_mixture():
    gm = GaussianMixture1D([-2.0, 1.0], [0.7, 1.2], [0.25, 0.75])
    fit = fit_gaussian(gm, divergence="forward", steps=2000, lr=0.05)
    assert fit.mu == pytest.approx(gm.mean, abs=1e-3)
    assert fit.sigma == pytest.approx(math.sqrt(gm.variance), rel=1e-3)


def test_reverse_kl_seeks_a_mode_from_off_centre():
    fit = fit_gaussian(two_modes(3.0), divergence="reverse", init=(2.0, 1.0), steps=1500, lr=0.05)
    assert fit.mu == pytest.approx(3.0, abs=0.05)
    assert fit.sigma == pytest.approx(1.0, abs=0.05)
    assert fit.loss == pytest.approx(math.log(2), abs=0.01)  # a mode of a well-separated 50/50 mixture


def test_reverse_kl_middle_start_stalls_higher():
    # Started near the middle, the fit widens first and is pulled to the symmetric point,
    # a wide solution whose reverse KL is higher than the one-mode solution's.
    mid = fit_gaussian(two_modes(3.0), divergence="reverse", init=(1.0, 1.0), steps=1500, lr=0.05)
    side = fit_gaussian(two_modes(3.0), divergence="reverse", init=(2.0, 1.0), steps=1500, lr=0.05)
    assert abs(mid.mu) < 1e-3
    assert mid.sigma > 2.0
    assert mid.loss > side.loss + 0.05


def test_history_and_path_lengths():
    fit = fit_gaussian(two_modes(1.0), steps=37)
    assert len(fit.history) == 37 and len(fit.path) == 37
    assert fit.logq.shape == (4001,)


def test_history_is_the_loss_before_each_step_and_path_the_point_after_it():
    # Notebooks draw history[k] at the point the step starts from (init, then path[k - 1]); pin that alignment, and
    # that loss is the divergence at the last point of the path.
    from kllab.maths.distributions import Grid1D
    from kllab.maths.divergences import kl
    from kllab.maths.fitting import gaussian_logq

    grid = Grid1D(-12.0, 12.0, 2001)
    target = two_modes(2.0)
    fit = fit_gaussian(target, divergence="reverse", grid=grid, init=(1.0, 1.5), steps=6, lr=0.1)
    logp = grid.discretize(target.log_prob(grid.x))
    starts = [(1.0, 1.5)] + fit.path[:-1]
    at_start = [kl(gaussian_logq(grid, m, s), logp).item() for m, s in starts]
    assert fit.history == pytest.approx(at_start, rel=1e-12)
    assert fit.loss == pytest.approx(kl(gaussian_logq(grid, *fit.path[-1]), logp).item(), rel=1e-12)
    assert (fit.mu, fit.sigma) == pytest.approx(fit.path[-1], rel=1e-15)
    assert len(set(fit.history)) == 6                      # the steps move: each entry is a different point


def test_mixture_recovers_components_forward_kl():
    fit = fit_mixture(two_modes(3.0), 2, init_means=[-1.0, 1.0], steps=1500)
    assert sorted(fit.means) == pytest.approx([-3.0, 3.0], abs=0.02)
    assert fit.sigmas == pytest.approx([1.0, 1.0], abs=0.02)
    assert fit.loss < 1e-4


@pytest.mark.parametrize("kwargs, message", [
    ({"divergence": "l2"}, "divergence must be one of"),
    ({"steps": 0}, "steps must be >= 1; got 0"),
    ({"lr": 0.0}, "lr must be > 0; got 0.0"),
    ({"init": (0.0, -1.0)}, "init[1] (sigma) must be > 0"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError) as err:
        fit_gaussian(two_modes(1.0), **kwargs)
    assert message in str(err.value)


def test_bad_target():
    with pytest.raises(ValueError, match="target must be"):
        fit_gaussian("not a density")


def _centred_reverse_fit(s, w):
    """The centred stationary point of KL(q || p) (mu = 0 by symmetry, sigma by a 1-D minimisation) and the
    Hessian of the grid loss there in (mu, log sigma)."""
    from scipy.optimize import minimize_scalar

    from kllab.maths.distributions import Grid1D
    from kllab.maths.divergences import kl
    from kllab.maths.fitting import gaussian_logq
    from kllab.maths.fitting import gaussian_logq

    half = s + 8 * w + 6 * math.hypot(s, w)
    grid = Grid1D(-half, half, max(2001, math.ceil(8 * 2 * half / w) + 1))
    logp = grid.discretize(two_modes(s, w).log_prob(grid.x))

    def loss(mu, log_sigma):
        return kl(gaussian_logq(grid, mu, log_sigma.exp()), logp, validate=False)

    res = minimize_scalar(lambda u: loss(torch.tensor(0.0, dtype=torch.float64),
                                         torch.tensor(u, dtype=torch.float64)).item(),
                          bounds=(math.log(0.5 * s), math.log(2 * s + 2 * w)), method="bounded",
                          options={"xatol": 1e-10})
    h = torch.autograd.functional.hessian(loss, (torch.tensor(0.0, dtype=torch.float64),
                                                 torch.tensor(res.x, dtype=torch.float64)))
    return math.exp(res.x), torch.tensor([[h[0][0], h[0][1]], [h[1][0], h[1][1]]])


@pytest.mark.parametrize("s_over_w", [0.5, 2.0, 3.0, 10.0, 40.0])
def test_centred_reverse_fit_is_a_local_minimum_not_a_saddle(s_over_w):
    sigma_c, hess = _centred_reverse_fit(1.0, 1.0 / s_over_w)
    assert abs(hess[0, 1].item()) < 1e-8 * hess.abs().max().item()   # even in mu: no mixed term at mu = 0
    assert (torch.linalg.eigvalsh(hess) > 0).all(), hess


def test_centred_reverse_fit_curvatures_for_narrow_modes():
    # w -> 0: sigma_c -> s sqrt(2/pi); d2/dmu2 -> pi / (2 s^2); d2/dlog(sigma)2 -> 1 + sigma_c^2 / w^2.
    s, w = 2.0, 0.05
    sigma_c, hess = _centred_reverse_fit(s, w)
    assert sigma_c == pytest.approx(s * math.sqrt(2 / math.pi), rel=1e-3)
    assert hess[0, 0].item() == pytest.approx(math.pi / (2 * s * s), rel=0.05)
    assert hess[1, 1].item() == pytest.approx(1 + sigma_c ** 2 / w ** 2, rel=0.01)


def test_gaussian_logq_is_the_discretised_normal():
    from kllab.maths.distributions import Grid1D
    from kllab.maths.fitting import gaussian_logq

    grid = Grid1D(-8.0, 8.0, 801)
    mu, sigma = torch.tensor([[0.3], [-1.0]], dtype=torch.float64), torch.tensor([[0.7], [2.5]], dtype=torch.float64)
    oracle = grid.discretize(torch.distributions.Normal(mu, sigma).log_prob(grid.x))
    torch.testing.assert_close(gaussian_logq(grid, mu, sigma), oracle, rtol=0, atol=1e-12)
    assert torch.logsumexp(gaussian_logq(grid, 0.0, 1.0), -1).abs() < 1e-12
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gaussian_logq(grid, 0.0, -1.0)
