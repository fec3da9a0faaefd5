"""Cauchy-Schwarz divergence: closed form against scipy quadrature, grid, kernel estimator (sign, convergence,
Monte Carlo), CS mutual information, bad input."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

from kllab.maths import cauchy_schwarz as C
from kllab.maths.divergences import kl_gaussian

pytestmark = pytest.mark.usefixtures("float64")


def cs_quad(m1, s1, m2, s2):
    # independent oracle: the three integrals by adaptive quadrature
    p, q = scipy.stats.norm(m1, s1).pdf, scipy.stats.norm(m2, s2).pdf
    lo, hi = min(m1 - 12 * s1, m2 - 12 * s2), max(m1 + 12 * s1, m2 + 12 * s2)
    pts = [m1, m2]
    pq = scipy.integrate.quad(lambda x: p(x) * q(x), lo, hi, points=pts, limit=200, epsabs=0, epsrel=1e-12)[0]
    pp = scipy.integrate.quad(lambda x: p(x) ** 2, lo, hi, points=pts, limit=200, epsabs=0, epsrel=1e-12)[0]
    qq = scipy.integrate.quad(lambda x: q(x) ** 2, lo, hi, points=pts, limit=200, epsabs=0, epsrel=1e-12)[0]
    return -math.log(pq ** 2 / (pp * qq))


@pytest.mark.parametrize("m1,s1,m2,s2", [(0, 1, 2, 1), (0, 1, 0, 3), (-1, 0.5, 1.5, 2), (3, 0.2, 2.5, 0.7)])
def test_gaussian_closed_form_matches_quadrature(m1, s1, m2, s2):
    assert C.cs_divergence_gaussian(m1, s1, m2, s2).item() == pytest.approx(cs_quad(m1, s1, m2, s2), rel=1e-7)


def test_gaussian_equal_variance_is_kl_and_factor_two_bound():
    d = C.cs_divergence_gaussian(0.0, 1.0, 2.0, 1.0).item()
    assert d == pytest.approx(2.0, abs=1e-12) == kl_gaussian(0.0, 1.0, 2.0, 1.0).item()
    g = torch.Generator().manual_seed(0)
    mu = 5 * torch.randn(4, 20000, generator=g)
    s1, s2 = torch.exp(2 * torch.randn(2, 20000, generator=g))
    cs = C.cs_divergence_gaussian(mu[0], s1, mu[1], s2)
    kmin = torch.minimum(kl_gaussian(mu[0], s1, mu[1], s2), kl_gaussian(mu[1], s2, mu[0], s1))
    assert (cs <= 2 * kmin + 1e-9).all()
    # the bound without the factor 2 fails (squared convention)
    assert C.cs_divergence_gaussian(0.0, 1.0, 10.0, 0.1).item() > kl_gaussian(10.0, 0.1, 0.0, 1.0).item()
    assert (cs >= 0).all() and torch.allclose(cs, C.cs_divergence_gaussian(mu[1], s2, mu[0], s1))


def test_grid_matches_closed_form_and_is_scale_invariant():
    x = torch.linspace(-30, 30, 60001)
    logp = torch.distributions.Normal(0.0, 1.0).log_prob(x)
    logq = torch.distributions.Normal(1.5, 2.0).log_prob(x)
    exact = C.cs_divergence_gaussian(0.0, 1.0, 1.5, 2.0).item()
    assert C.cs_divergence_grid(logp, logq).item() == pytest.approx(exact, rel=1e-9)
    assert C.cs_divergence_grid(logp + 3.0, logq - 7.0).item() == pytest.approx(exact, rel=1e-9)
    assert C.cs_divergence_grid(torch.stack([logp, logq]), torch.stack([logq, logq])).shape == (2,)
    far = torch.full_like(logp, -math.inf)
    far[-1] = 0.0
    near = torch.full_like(logp, -math.inf)
    near[0] = 0.0
    assert C.cs_divergence_grid(near, far).item() == math.inf


def test_kernel_estimator_converges_to_smoothed_closed_form():
    # E over samples -> D_CS(N(m1, s1^2 + h^2) || N(m2, s2^2 + h^2)); Monte Carlo over 20 seeds of n = 1500
    h = 0.5
    target = C.cs_divergence_gaussian(0.0, math.sqrt(1 + h ** 2), 1.0, math.sqrt(0.25 + h ** 2)).item()
    est = []
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        est.append(C.cs_divergence_kernel(torch.randn(1500, generator=g), 1.0 + 0.5 * torch.randn(1500, generator=g),
                                           h).item())
    est = np.array(est)
    assert abs(est.mean() - target) < 4 * est.std() / math.sqrt(20) + 0.01, (est.mean(), target)
    # and not to the unsmoothed divergence (the bandwidth is not a detail)
    assert abs(est.mean() - C.cs_divergence_gaussian(0.0, 1.0, 1.0, 0.5).item()) > 0.1


def test_kernel_estimator_equals_quadrature_of_the_kdes():
    g = torch.Generator().manual_seed(3)
    x, y, h = torch.randn(7, generator=g), 1 + torch.randn(5, generator=g), 0.4
    p = lambda t: scipy.stats.norm(x.numpy()[:, None], h).pdf(t).mean(0)
    q = lambda t: scipy.stats.norm(y.numpy()[:, None], h).pdf(t).mean(0)
    grid = np.linspace(-12, 12, 200001)
    val = C.cs_divergence_grid(torch.as_tensor(np.log(p(grid))), torch.as_tensor(np.log(q(grid)))).item()
    assert C.cs_divergence_kernel(x, y, h).item() == pytest.approx(val, rel=1e-7)


def test_kernel_estimator_sign():
    g = torch.Generator().manual_seed(1)
    vals = [C.cs_divergence_kernel(torch.randn(int(n), 2, generator=g), torch.randn(int(m), 2, generator=g), h).item()
            for n, m, h in zip(torch.randint(1, 30, (200,), generator=g), torch.randint(1, 30, (200,), generator=g),
                               torch.exp(torch.randn(200, generator=g)))]
    assert min(vals) >= -1e-12
    x = torch.randn(10, generator=g)
    assert C.cs_divergence_kernel(x, x.flip(0), 0.3).abs().item() < 1e-12
    unb = [C.cs_divergence_kernel(torch.randn(20, generator=g), torch.randn(20, generator=g), 0.5, unbiased=True).item()
           for _ in range(200)]
    assert min(unb) < 0  # dropping the diagonals breaks Cauchy-Schwarz


def test_mutual_information():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(400, generator=g)
    ind = C.cs_mutual_information(x, torch.randn(400, generator=g), 0.5, 0.5).item()
    dep = C.cs_mutual_information(x, x, 0.5, 0.5).item()
    assert 0 <= ind < 0.02 < 0.2 < dep
    # from scratch with normalised Gram matrices: the formula of the module docstring
    kx = torch.exp(-(x[:, None] - x[None]) ** 2 / 1.0)
    t = x ** 2
    kt = torch.exp(-(t[:, None] - t[None]) ** 2 / 1.0)
    n = 400
    ref = (torch.log((kx * kt).mean()) + torch.log(kx.mean() * kt.mean())
           - 2 * torch.log((kx.sum(1) * kt.sum(1)).mean() / n ** 2))
    assert C.cs_mutual_information(x, t, 0.5, 0.5).item() == pytest.approx(ref.item(), rel=1e-10)


def test_gradient_flows():
    y = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)
    C.cs_divergence_kernel(torch.tensor([0.5, 1.0, 3.0]), y, 1.0).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_bad_input():
    with pytest.raises(ValueError, match="sigma_q must be > 0"):
        C.cs_divergence_gaussian(0.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="mu_p must not contain NaN"):
        C.cs_divergence_gaussian(float("nan"), 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        C.cs_divergence_grid(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="logq must not contain NaN"):
        C.cs_divergence_grid(torch.zeros(3), torch.tensor([0.0, float("nan"), 0.0]))
    with pytest.raises(ValueError, match="logp must have a finite value"):
        C.cs_divergence_grid(torch.full((3,), -math.inf), torch.zeros(3))
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        C.cs_divergence_kernel(torch.zeros(3), torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="one number > 0 per dimension"):
        C.cs_divergence_kernel(torch.zeros(3, 2), torch.zeros(3, 2), [1.0])
    with pytest.raises(ValueError, match="x must have shape"):
        C.cs_divergence_kernel(torch.zeros(3, 2, 1), torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="y must be finite"):
        C.cs_divergence_kernel(torch.zeros(3), torch.tensor([0.0, math.inf]), 1.0)
    with pytest.raises(ValueError, match="same dimension"):
        C.cs_divergence_kernel(torch.zeros(3, 2), torch.zeros(3, 1), 1.0)
    with pytest.raises(ValueError, match="same number of paired samples"):
        C.cs_mutual_information(torch.zeros(3), torch.zeros(4), 1.0, 1.0)
    with pytest.raises(ValueError, match="bandwidth_t must be > 0"):
        C.cs_mutual_information(torch.zeros(3), torch.zeros(3), 1.0, -1.0)
