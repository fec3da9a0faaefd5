"""Tests for kllab.maths.transport: Sinkhorn against POT, exact OT three ways, envelope gradients, the
debiased divergence, Gaussian closed forms, the W2 projection of a mixture, and the OT-trained generator."""

import importlib
import math

import numpy as np
import ot
import pytest
import scipy.optimize
import torch

from kllab.maths import transport
from kllab.maths.distributions import GaussianMixture1D, Grid1D, discrete_gaussian, two_modes

D64 = torch.float64
X21 = torch.arange(21, dtype=D64)
C21 = transport.cost_matrix(X21, X21, p=1)


def random_pair(seed, n=21, alpha=0.5):
    rng = np.random.default_rng(seed)
    return tuple(torch.tensor(rng.dirichlet(np.full(n, alpha)), dtype=D64).log() for _ in range(2))


def two_mode_teacher():
    return torch.logaddexp(discrete_gaussian(X21, 6.0, 1.0), discrete_gaussian(X21, 14.0, 1.0)) - math.log(2)


# ----------------------------------------------------------------------------------------------- cost matrices
def test_cost_matrix_values_and_shapes():
    x, y = torch.tensor([0.0, 1.0, 3.0]), torch.tensor([0.5, 2.0])
    np.testing.assert_allclose(transport.cost_matrix(x, y, p=2).numpy(), (x[:, None] - y[None, :]).numpy() ** 2)
    pts_x, pts_y = torch.randn(4, 3, dtype=D64), torch.randn(5, 3, dtype=D64)
    np.testing.assert_allclose(transport.cost_matrix(pts_x, pts_y, p=1).numpy(),
                               torch.cdist(pts_x, pts_y).numpy(), rtol=1e-12)
    np.testing.assert_allclose(transport.cost_matrix(pts_x, pts_y, p=2).numpy(),
                               ot.dist(pts_x.numpy(), pts_y.numpy()), rtol=1e-12)


# -------------------------------------------------------------------------------------------- Sinkhorn vs POT
@pytest.mark.parametrize("eps", [0.2, 1.0, 5.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinkhorn_matches_pot(eps, seed):
    lp, lq = random_pair(seed)
    r = transport.sinkhorn(lp, lq, C21, eps)
    pot_plan = ot.sinkhorn(lp.exp(), lq.exp(), C21, eps, method="sinkhorn_log", numItermax=100_000, stopThr=1e-13)
    torch.testing.assert_close(r.plan, pot_plan, rtol=0, atol=1e-9)
    pot_cost = ot.sinkhorn2(lp.exp(), lq.exp(), C21, eps, method="sinkhorn_log", numItermax=100_000, stopThr=1e-13)
    assert abs(r.transport_cost.item() - pot_cost.item()) < 1e-8 * pot_cost.item()
    assert r.converged and r.marginal_error < 1e-9


def test_sinkhorn_marginals_value_and_plan_form():
    lp, lq = random_pair(3)
    eps = 0.7
    r = transport.sinkhorn(lp, lq, C21, eps)
    torch.testing.assert_close(r.plan.sum(1), lp.exp(), rtol=0, atol=1e-9)
    torch.testing.assert_close(r.plan.sum(0), lq.exp(), rtol=0, atol=1e-12)
    # value = <P, C> + eps KL(P || p x q) = <f, p> + <g, q>
    ref = (lp[:, None] + lq[None, :]).exp()
    kl_plan = (r.plan * (r.plan / ref).log()).sum()
    assert abs(r.value.item() - (r.transport_cost + eps * kl_plan).item()) < 1e-8
    assert abs(r.value.item() - ((lp.exp() * r.f).sum() + (lq.exp() * r.g).sum()).item()) < 1e-12


SOLVER = importlib.import_module("kllab.maths.transport.sinkhorn")   # the module (the package re-exports its functions)


def _spy(monkeypatch, name):
    """Count the calls to one of the solver module's helpers."""
    calls, inner = [], getattr(SOLVER, name)
    monkeypatch.setattr(SOLVER, name, lambda *a, **k: calls.append(1) or inner(*a, **k))
    return calls


def _pot_plan(lp, lq, cost, eps):
    return ot.sinkhorn(lp.exp(), lq.exp(), cost, eps, method="sinkhorn_log", numItermax=100_000, stopThr=1e-13)


def test_stabilised_kernel_handles_steep_costs_without_the_log_domain(monkeypatch):
    # Scaling the cost by 100 makes C / eps large (400 at eps = 5): the stabilised iterations absorb their
    # scalings into the potentials and converge; the log-domain fallback (the only user of _row_error) is not
    # needed here. The fallbacks are driven by the three tests below.
    lp, lq = random_pair(4)
    row_error = _spy(monkeypatch, "_row_error")
    small = transport.sinkhorn(lp, lq, C21, 0.5).value
    big = transport.sinkhorn(lp, lq, 100.0 * C21, 50.0).value
    assert abs(big.item() - 100.0 * small.item()) < 1e-7 * abs(100.0 * small.item())
    steep = transport.sinkhorn(lp, lq, 100.0 * C21, 5.0)
    scaled = 100.0 * transport.sinkhorn(lp, lq, C21, 0.05).value.item()
    assert steep.converged and abs(steep.value.item() - scaled) < 1e-6
    assert not row_error


def test_log_domain_fallback_of_the_cross_term_runs_and_is_right(monkeypatch):
    # A warm start whose potential g is 1e4 too low at one class: column 3 of the stabilised kernel
    # exp((f + g - C) / eps) underflows to 0, its scaling b is 1/0, the kernel path returns a non-finite error
    # and the log-domain iterations (the only user of _row_error) must take over from the same start.
    lp, lq = random_pair(4)
    eps = 0.5
    cold = transport.sinkhorn(lp, lq, C21, eps)
    g = cold.g.clone()
    g[3] -= 1e4
    row_error = _spy(monkeypatch, "_row_error")
    warm = transport.sinkhorn(lp, lq, C21, eps, init=(cold.f, g))
    assert len(row_error) > 0                                    # the fallback ran
    assert warm.converged
    torch.testing.assert_close(warm.plan, _pot_plan(lp, lq, C21, eps), rtol=0, atol=1e-9)
    assert abs(warm.value.item() - cold.value.item()) < 1e-9


def test_log_domain_fallback_of_the_self_terms_runs_and_is_right(monkeypatch):
    # The symmetric solver from a potential 1e4 too high at one class: the kernel overflows to inf, and the
    # averaged log-domain iterations f <- (f + T(f)) / 2 must take over. With a warm start the symmetric
    # solver calls the soft c-transform only in that fallback.
    lp, _ = random_pair(4)
    eps = 0.5
    for shift in (1e4, -1e4):
        f0 = SOLVER._solve_symmetric(lp, C21, eps)[0]
        bad = f0.clone()
        bad[3] += shift
        softmin = _spy(monkeypatch, "_softmin")
        f, _, err = SOLVER._solve_symmetric(lp, C21, eps, bad)
        monkeypatch.undo()
        assert len(softmin) > 0 and err < 1e-9                 # the fallback ran, and converged
        plan = (lp[:, None] + lp[None, :] + (f[:, None] + f[None, :] - C21) / eps).exp()
        torch.testing.assert_close(plan, _pot_plan(lp, lp, C21, eps), rtol=0, atol=1e-9)
        assert abs(2 * (lp.exp() * f).sum().item() - 2 * (lp.exp() * f0).sum().item()) < 1e-9


def test_log_domain_fallbacks_alone_give_the_divergence(monkeypatch):
    # Break the stabilised kernel's matrix-vector product: every solve of sinkhorn_divergence (cross term and
    # both self-terms, from a cold start) must then come from the log-domain fallbacks, and agree with the
    # kernel path and with POT's plan.
    lp, lq = random_pair(5)
    eps = 0.3
    kernel_path = transport.sinkhorn_divergence(lp, lq, C21, eps).item()
    monkeypatch.setattr(SOLVER, "_mv", lambda kernel, v, transpose=False: torch.full_like(v, math.nan))
    row_error = _spy(monkeypatch, "_row_error")
    r = transport.sinkhorn(lp, lq, C21, eps)
    assert len(row_error) > 0 and r.converged
    torch.testing.assert_close(r.plan, _pot_plan(lp, lq, C21, eps), rtol=0, atol=1e-9)
    log_path = transport.sinkhorn_divergence(lp, lq, C21, eps).item()
    assert abs(log_path - kernel_path) < 1e-9 * kernel_path


def test_batched_equals_one_at_a_time():
    lp = two_mode_teacher()
    mus = torch.tensor([3.0, 10.0, 16.5], dtype=D64)
    lq = discrete_gaussian(X21, mus, torch.tensor(2.0, dtype=D64))
    batched = transport.sinkhorn(lp, lq, C21, 0.5)
    assert batched.value.shape == (3,)
    for i in range(3):
        one = transport.sinkhorn(lp, lq[i], C21, 0.5)
        assert abs(one.value.item() - batched.value[i].item()) < 1e-8
    div = transport.sinkhorn_divergence(lp, lq, C21, 0.5)
    assert div.shape == (3,)
    assert abs(div[1].item() - transport.sinkhorn_divergence(lp, lq[1], C21, 0.5).item()) < 1e-8


def test_zero_mass_outcomes_are_legal():
    p = torch.zeros(21, dtype=D64)
    p[2], p[5] = 0.5, 0.5
    q = torch.zeros(21, dtype=D64)
    q[15] = 1.0
    r = transport.sinkhorn(p.log(), q.log(), C21, 0.3)
    assert torch.isfinite(r.value) and r.converged
    assert abs(r.transport_cost.item() - (0.5 * 13 + 0.5 * 10)) < 1e-9      # every unit of mass must go to class 15
    pot = ot.sinkhorn2(p, q, C21, 0.3, method="sinkhorn_log", numItermax=100_000, stopThr=1e-13)
    assert abs(r.transport_cost.item() - pot.item()) < 1e-8


def test_warm_start_reaches_the_same_fixed_point():
    lp, lq = random_pair(5)
    cold = transport.sinkhorn(lp, lq, C21, 0.4)
    warm = transport.sinkhorn(lp, lq, C21, 0.4, init=(cold.f, cold.g))
    assert warm.iterations <= 10 and abs(warm.value.item() - cold.value.item()) < 1e-10


# ------------------------------------------------------------------------------------------ exact OT, 1-D W1
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_ot_three_ways(seed):
    lp, lq = random_pair(seed)
    lp_cost = transport.exact_ot(lp, lq, C21).item()
    cdf = transport.w1_1d(lp, lq, X21).item()
    pot1d = float(ot.wasserstein_1d(X21.numpy(), X21.numpy(), lp.exp().numpy(), lq.exp().numpy(), p=1))
    assert abs(lp_cost - cdf) < 1e-10 and abs(pot1d - cdf) < 1e-10


def test_sinkhorn_tends_to_exact_ot_from_above():
    lp, lq = two_mode_teacher(), discrete_gaussian(X21, 10.0, 4.0)
    exact = transport.w1_1d(lp, lq, X21).item()
    costs = [transport.sinkhorn(lp, lq, C21, e).transport_cost.item() for e in (5.0, 1.0, 0.2, 0.02)]
    assert all(a >= b - 1e-9 for a, b in zip(costs, costs[1:]))
    assert costs[-1] >= exact - 1e-9 and (costs[-1] - exact) / exact < 1e-4
    # and it really comes down (a solver that returned the exact cost at every eps would pass the lines above):
    # 3.166 at eps = 5, 1.721 at eps = 1, against W1 = 1.457
    assert costs[0] > 2.0 * exact and costs[1] > 1.1 * exact


def test_w1_of_ordered_translates_is_the_mean_shift():
    lp, lq = discrete_gaussian(X21, 14.0, 1.0), discrete_gaussian(X21, 6.5, 1.0)
    shift = (lp.exp() * X21).sum() - (lq.exp() * X21).sum()
    assert abs(transport.w1_1d(lp, lq, X21).item() - shift.item()) < 1e-12


# ------------------------------------------------------------------------------------------ envelope gradients
def test_value_gradient_in_q_is_the_potential_g():
    lp, _ = random_pair(6)
    theta = torch.randn(21, dtype=D64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    value = transport.sinkhorn(lp, torch.log_softmax(theta, 0), C21, 0.5).value
    (grad,) = torch.autograd.grad(value, theta)
    h = 1e-6
    fd = torch.zeros(21, dtype=D64)
    for k in range(21):
        e = torch.zeros(21, dtype=D64)
        e[k] = h
        up = transport.sinkhorn(lp, torch.log_softmax(theta.detach() + e, 0), C21, 0.5, tol=1e-13).value
        down = transport.sinkhorn(lp, torch.log_softmax(theta.detach() - e, 0), C21, 0.5, tol=1e-13).value
        fd[k] = (up - down) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7)


def test_value_gradient_in_the_cost_is_the_plan():
    lp, lq = random_pair(7, n=6)
    x = torch.linspace(0.0, 2.0, 6, dtype=D64).requires_grad_(True)
    y = torch.linspace(0.5, 3.0, 6, dtype=D64)
    r = transport.sinkhorn(lp, lq, transport.cost_matrix(x, y, p=2), 0.3)
    (grad,) = torch.autograd.grad(r.value, x)
    expected = (r.plan * 2 * (x.detach()[:, None] - y[None, :])).sum(1)    # sum_j P_ij dC_ij/dx_i
    torch.testing.assert_close(grad, expected, rtol=1e-8, atol=1e-10)
    # For the squared cost this is 2 p_i (x_i - barycentric map), the push of section 2 of P21.
    bary = transport.barycentric_map(r, y)
    torch.testing.assert_close(grad, 2 * lp.exp() * (x.detach() - bary), rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------------------------- the Sinkhorn divergence
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sinkhorn_divergence_properties(seed):
    lp, lq = random_pair(seed)
    assert abs(transport.sinkhorn_divergence(lp, lp, C21, 0.5).item()) < 1e-10
    s = transport.sinkhorn_divergence(lp, lq, C21, 0.5).item()
    assert s > 0
    raw = transport.entropic_ot(lp, lq, C21, 0.5).item()
    assert s < raw                                                # the self-terms are positive


def test_sinkhorn_divergence_limits():
    lp, lq = two_mode_teacher(), discrete_gaussian(X21, 10.0, 4.0)
    w1 = transport.w1_1d(lp, lq, X21).item()
    assert abs(transport.sinkhorn_divergence(lp, lq, C21, 0.02).item() - w1) < 0.05 * w1
    t, s = lp.exp(), lq.exp()
    energy_half = ((t[:, None] * s - 0.5 * t[:, None] * t - 0.5 * s[:, None] * s) * C21).sum().item()
    assert abs(transport.sinkhorn_divergence(lp, lq, C21, 1e4).item() - energy_half) < 1e-3 * energy_half


def test_warm_started_loss_equals_the_function():
    lp = two_mode_teacher()
    loss = transport.SinkhornDivergence(0.5)
    for mu in (12.0, 11.5, 11.0):
        lq = discrete_gaussian(X21, mu, 2.0)
        assert abs(loss(lp, lq, C21).item() - transport.sinkhorn_divergence(lp, lq, C21, 0.5).item()) < 1e-9
    assert loss.iterations > 0
    budget = transport.SinkhornDivergence(0.5, tol=None, max_iter=3)
    budget(lp, discrete_gaussian(X21, 12.0, 2.0), C21)
    first = budget.iterations
    budget(lp, discrete_gaussian(X21, 12.0, 2.0), C21)
    assert budget.iterations - first == 3 + 2 * 3                 # warm: exactly the budget (self-terms get 3)


def _cloud_divergence(x, y, eps, p, loss=None):
    lx = torch.full((x.shape[0],), -math.log(x.shape[0]), dtype=D64)
    ly = torch.tensor([0.1, 0.3, 0.15, 0.25, 0.05, 0.15], dtype=D64).log()
    costs = (transport.cost_matrix(x, y, p=p), transport.cost_matrix(x, x, p=p), transport.cost_matrix(y, y, p=p))
    if loss is None:
        return transport.sinkhorn_divergence(lx, ly, costs[0], eps, cost_pp=costs[1], cost_qq=costs[2], tol=1e-13)
    return loss(lx, ly, costs[0], cost_pp=costs[1], cost_qq=costs[2])


@pytest.mark.parametrize("p, eps", [(2.0, 0.3), (2.0, 2.0), (1.0, 0.5)])
def test_divergence_gradient_in_the_points_includes_the_self_terms(p, eps):
    # S_eps between two point clouds (x: 5 equal weights, y: 6 unequal ones), differentiated in every point.
    # x enters OT(p, q) and OT(p, p), y enters OT(p, q) and OT(q, q): the autograd gradient (envelope theorem
    # through the cross term and both self-terms) must equal central finite differences of the value.
    x0 = torch.tensor([-1.0, -0.2, 0.4, 1.3, 2.0], dtype=D64)
    y0 = torch.tensor([-0.5, 0.1, 0.9, 1.1, 2.5, 3.0], dtype=D64)
    x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
    gx, gy = torch.autograd.grad(_cloud_divergence(x, y, eps, p), (x, y))
    h = 1e-5

    def fd(base, other, first):
        out = torch.zeros_like(base)
        for k in range(base.shape[0]):
            e = torch.zeros_like(base)
            e[k] = h
            args = [(base + e, other), (base - e, other)] if first else [(other, base + e), (other, base - e)]
            up, down = (_cloud_divergence(a, b, eps, p).item() for a, b in args)
            out[k] = (up - down) / (2 * h)
        return out

    fx, fy = fd(x0, y0, True), fd(y0, x0, False)
    torch.testing.assert_close(gx, fx, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(gy, fy, rtol=1e-6, atol=1e-8)
    # The self-terms carry a gradient far above that tolerance (a solver that dropped them would fail above):
    lx = torch.full((5,), -math.log(5), dtype=D64)
    ly = torch.tensor([0.1, 0.3, 0.15, 0.25, 0.05, 0.15], dtype=D64).log()
    xs = x0.clone().requires_grad_(True)
    cross = transport.sinkhorn(lx, ly, transport.cost_matrix(xs, y0, p=p), eps, tol=1e-13).value
    (gx_cross,) = torch.autograd.grad(cross, xs)
    assert (gx - gx_cross).abs().max().item() > 1e-2
    # The warm-started loss differentiates its self-terms the same way.
    loss = transport.SinkhornDivergence(eps, tol=1e-13)
    x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
    lx_, ly_ = torch.autograd.grad(_cloud_divergence(x, y, eps, p, loss=loss), (x, y))
    torch.testing.assert_close(lx_, fx, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(ly_, fy, rtol=1e-6, atol=1e-8)


def test_point_cloud_divergence_needs_its_self_costs():
    x, y = torch.randn(5, dtype=D64), torch.randn(7, dtype=D64)
    lx, ly = torch.full((5,), -math.log(5), dtype=D64), torch.full((7,), -math.log(7), dtype=D64)
    with pytest.raises(ValueError, match="cost_pp and cost_qq must be given"):
        transport.sinkhorn_divergence(lx, ly, transport.cost_matrix(x, y), 0.5)
    s = transport.sinkhorn_divergence(lx, ly, transport.cost_matrix(x, y), 0.5, cost_pp=transport.cost_matrix(x, x),
                                      cost_qq=transport.cost_matrix(y, y))
    assert s.item() > 0


# -------------------------------------------------------------------------------------------------- Gaussians
def test_w2_gaussian_matches_pot_bures():
    for (m1, s1, m2, s2) in [(0.0, 1.0, 3.0, 5.0), (-1.0, 0.3, 2.0, 0.7)]:
        pot = ot.gaussian.bures_wasserstein_distance(np.array([m1]), np.array([m2]), np.array([[s1 ** 2]]),
                                                     np.array([[s2 ** 2]]))
        assert abs(transport.w2_gaussian(m1, s1, m2, s2).item() - float(pot)) < 1e-10


@pytest.mark.parametrize("eps", [0.3, 1.0, 4.0])
def test_entropic_ot_gaussian_against_sinkhorn_on_a_grid(eps):
    grid = Grid1D(-16.0, 16.0, 641)
    lp = grid.discretize(torch.distributions.Normal(0.0, 1.5).log_prob(grid.x))
    lq = grid.discretize(torch.distributions.Normal(1.0, 2.0).log_prob(grid.x))
    cost = transport.cost_matrix(grid.x, grid.x, p=2)
    closed = transport.entropic_ot_gaussian(0.0, 1.5, 1.0, 2.0, eps).item()
    assert abs(transport.sinkhorn(lp, lq, cost, eps).value.item() - closed) < 2e-4 * closed
    s_closed = transport.sinkhorn_divergence_gaussian(0.0, 1.5, 1.0, 2.0, eps).item()
    assert abs(transport.sinkhorn_divergence(lp, lq, cost, eps).item() - s_closed) < 2e-3 * s_closed


def test_entropic_ot_gaussian_limits():
    w2sq = transport.w2_gaussian(0.5, 1.0, -1.0, 3.0, squared=True).item()
    assert abs(transport.entropic_ot_gaussian(0.5, 1.0, -1.0, 3.0, 1e-9).item() - w2sq) < 1e-6
    assert transport.sinkhorn_divergence_gaussian(0.0, 2.0, 0.0, 2.0, 3.0).item() == 0.0
    assert transport.sinkhorn_divergence_gaussian(0.0, 2.0, 0.0, 2.5, 3.0).item() > 0


# ------------------------------------------------------------------------------------ the W2 projection of p
def test_w2_to_gaussian_of_a_gaussian_is_bures():
    g = GaussianMixture1D([1.0], [2.0])
    bures = transport.w2_gaussian(1.0, 2.0, -0.5, 0.7, squared=True).item()
    assert abs(transport.w2_to_gaussian(g, -0.5, 0.7).item() - bures) < 1e-9
    mu, sigma, res = transport.w2_gaussian_projection(g)
    assert abs(mu - 1.0) < 1e-9 and abs(sigma - 2.0) < 1e-9 and abs(res) < 1e-9


def test_w2_projection_is_the_minimiser_and_pythagoras_holds():
    p = GaussianMixture1D([-2.0, 1.0, 4.0], [0.7, 1.0, 1.5], [0.2, 0.5, 0.3])
    mu, sigma, res = transport.w2_gaussian_projection(p)
    assert abs(mu - p.mean) < 1e-9 and sigma < math.sqrt(p.variance)
    best = scipy.optimize.minimize(lambda th: transport.w2_to_gaussian(p, th[0], th[1]).item(), [0.0, 1.0],
                                   method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-14})
    assert abs(best.x[0] - mu) < 1e-5 and abs(best.x[1] - sigma) < 1e-5
    assert abs(transport.w2_to_gaussian(p, mu, sigma).item() - res) < 1e-9
    assert abs(res - (p.variance - sigma ** 2)) < 1e-9
    # An independent oracle: POT's 1-D W2 between 20,000 quantiles of each.
    u = (torch.arange(20_000, dtype=D64) + 0.5) / 20_000
    pot = float(ot.wasserstein_1d(p.quantile(u).numpy(), (mu + sigma * torch.special.ndtri(u)).numpy(), p=2))
    assert abs(pot - res) < 1e-3


def test_w2_projection_of_two_modes():
    mu, sigma, res = transport.w2_gaussian_projection(two_modes(3.0))
    assert abs(mu) < 1e-12 and abs(sigma - 2.974019) < 1e-6 and abs(res - (10.0 - sigma ** 2)) < 1e-9


def test_monge_map_sends_quantiles_to_quantiles():
    p = two_modes(2.0)
    u = torch.tensor([0.05, 0.3, 0.5, 0.8], dtype=D64)
    x = 1.0 + 0.5 * torch.special.ndtri(u)                       # u-quantiles of N(1, 0.5^2)
    torch.testing.assert_close(transport.monge_map_1d(p, 1.0, 0.5, x), p.quantile(u), rtol=0, atol=1e-9)


def test_barycentric_map_tends_to_the_monge_map():
    p, n = two_modes(3.0), 200
    y = p.quantile((torch.arange(n, dtype=D64) + 0.5) / n)
    z = torch.special.ndtri((torch.arange(n, dtype=D64) + 0.5) / n)
    x = 3.0 + z
    w = torch.full((n,), -math.log(n), dtype=D64)
    r = transport.sinkhorn(w, w, transport.cost_matrix(x, y, p=2), 0.05)
    halves = torch.cat([torch.arange(20, 80), torch.arange(120, 180)])     # away from the jump between the modes
    assert (transport.barycentric_map(r, y)[halves] - y[halves]).abs().max().item() < 0.05


# ------------------------------------------------------------------------------------------ the OT generator
def test_quantile_points_are_standardised():
    z = transport.quantile_points(50)
    assert abs(z.mean().item()) < 1e-14 and abs((z ** 2).mean().item() - 1.0) < 1e-14 and (z[1:] > z[:-1]).all()


def test_train_affine_ot_lands_on_the_discrete_w2_optimum():
    p, n = two_modes(3.0), 48
    run = transport.train_affine_ot(p, eps=0.5, init=(3.0, 1.0), n_points=n)
    z, y = transport.quantile_points(n), p.quantile((torch.arange(n, dtype=D64) + 0.5) / n)
    assert abs(run.mu) < 0.02 and abs(run.sigma - (y * z).mean().item()) < 0.01
    assert run.path.shape == (201, 2) and run.iterations > 0


def test_train_affine_ot_reverse_only_stays_on_the_mode():
    run = transport.train_affine_ot(two_modes(3.0), ot_weight=0.0, kl_weight=1.0, init=(3.0, 1.0), steps=100,
                                    n_points=32)
    assert abs(run.mu - 3.0) < 0.1 and abs(run.sigma - 1.0) < 0.1 and run.iterations == 0


def test_train_affine_ot_forward_is_maximum_likelihood_on_the_teacher_points():
    p, n = two_modes(3.0), 32
    run = transport.train_affine_ot(p, ot_weight=0.0, kl_weight=1.0, kl="forward", init=(3.0, 1.0), n_points=n,
                                    betas=(0.9, 0.9))
    y = p.quantile((torch.arange(n, dtype=D64) + 0.5) / n)
    assert abs(run.mu - y.mean().item()) < 0.02 and abs(run.sigma - y.std(unbiased=False).item()) < 0.02


# -------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, message", [
    (lambda: transport.sinkhorn(torch.zeros(21, dtype=D64), torch.full((21,), -math.log(21), dtype=D64), C21, 1.0),
     "logp must be log-probabilities"),
    (lambda: transport.sinkhorn(*random_pair(0), C21, 0.0), "eps must be > 0; got 0.0"),
    (lambda: transport.sinkhorn(*random_pair(0), C21[:20], 1.0), "cost must have shape"),
    (lambda: transport.sinkhorn(*random_pair(0), C21 * math.nan, 1.0), "cost must be finite"),
    (lambda: transport.sinkhorn(*random_pair(0), C21, 1.0, tol=-1.0), "tol must be > 0"),
    (lambda: transport.cost_matrix(torch.zeros(3), torch.zeros(2, 2)), "x and y must both be"),
    (lambda: transport.cost_matrix(torch.zeros(3), torch.zeros(3), p=0.5), "p must be >= 1"),
    (lambda: transport.w1_1d(*random_pair(0), X21.flip(0)), "positions must be strictly increasing"),
    (lambda: transport.w1_1d(*random_pair(0), X21[:5]), "positions must be 1-D with one point per outcome"),
    (lambda: transport.exact_ot(*random_pair(0), C21[:, :3]), "cost must have shape"),
    (lambda: transport.w2_gaussian(0.0, 0.0, 0.0, 1.0), "sigma_p and sigma_q must be > 0"),
    (lambda: transport.entropic_ot_gaussian(0.0, 1.0, 0.0, 1.0, -1.0), "eps must be > 0"),
    (lambda: transport.w2_gaussian_projection("p"), "target must be a GaussianMixture1D"),
    (lambda: transport.monge_map_1d(two_modes(1.0), 0.0, -1.0, 0.0), "sigma must be > 0"),
    (lambda: transport.train_affine_ot(two_modes(1.0), ot_weight=0.0, kl_weight=0.0), "must not both be 0"),
    (lambda: transport.train_affine_ot(two_modes(1.0), n_points=1), "n_points must be >= 2"),
    (lambda: transport.SinkhornDivergence(-0.1), "eps must be > 0"),
    (lambda: transport.train_affine_ot(two_modes(1.0), kl="sideways"), "kl must be one of 'reverse', 'forward'"),
    (lambda: transport.train_affine_ot(two_modes(1.0), betas=(0.9, 1.0)), "betas[1] must be < 1"),
    (lambda: transport.quantile_points(1), "n must be >= 2"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
