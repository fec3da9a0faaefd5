"""Tests for kllab.maths.matching: the f-distill gradient of an affine Gaussian student."""

import math

import pytest
import torch

from kllab.maths.distributions import GaussianMixture1D, Grid1D, two_modes
from kllab.maths.divergences import F_DIVERGENCES, f_divergence
from kllab.maths.fitting import gaussian_logq
from kllab.maths.matching import (MATCHING_DIVERGENCES, fdistill_gradient, gaussian_score, log_weight,
                            mixture_score, surrogate_loss, train_affine)

D64 = torch.float64
SKEWED = GaussianMixture1D([-2.0, 1.0, 4.0], [0.7, 1.0, 1.5], [0.2, 0.5, 0.3])


def grid_gradient(target, mu, sigma, f, grid=Grid1D(-25.0, 25.0, 20001)):
    """Oracle: autograd of the discretised D_f(p || N(mu, sigma^2)) from kllab.maths.divergences."""
    logp = grid.discretize(target.log_prob(grid.x))
    m = torch.tensor(mu, dtype=D64, requires_grad=True)
    s = torch.tensor(sigma, dtype=D64, requires_grad=True)
    d = f_divergence(logp, gaussian_logq(grid, m, s), f, validate=False)
    return torch.stack(torch.autograd.grad(d, (m, s)))


@pytest.mark.parametrize("f", MATCHING_DIVERGENCES)
def test_log_weight_matches_the_library_weight(f):
    r = torch.logspace(-6, 6, 49, dtype=D64)
    expected = F_DIVERGENCES[f].weight(r).log()
    assert torch.allclose(log_weight(r.log(), f), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("f", MATCHING_DIVERGENCES)
def test_weight_is_r_squared_f_second_derivative(f):
    # Independent oracle: h(r) = r^2 f''(r) with f'' from double autograd of the generator f.
    r = torch.logspace(-2, 2, 17, dtype=D64).requires_grad_(True)
    (d1,) = torch.autograd.grad(F_DIVERGENCES[f].f(r).sum(), r, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), r)
    assert torch.allclose(log_weight(r.detach().log(), f).exp(), r.detach() ** 2 * d2, rtol=1e-10)


@pytest.mark.parametrize("f", MATCHING_DIVERGENCES)
def test_log_weight_is_finite_in_the_far_tails(f):
    out = log_weight(torch.tensor([-800.0, 0.0, 800.0], dtype=D64), f)
    assert torch.isfinite(out).all()


def test_js_weight_saturates_at_one_half():
    assert log_weight(torch.tensor(1e4, dtype=D64), "js").exp().item() == pytest.approx(0.5)


def test_mixture_score_matches_autograd():
    x = torch.linspace(-10.0, 10.0, 201, dtype=D64)
    assert torch.allclose(mixture_score(SKEWED, x), SKEWED.score(x), atol=1e-10)
    assert mixture_score(SKEWED, x.reshape(3, 67)).shape == (3, 67)


def test_gaussian_score_matches_autograd():
    x = torch.linspace(-5.0, 5.0, 11, dtype=D64).requires_grad_(True)
    (g,) = torch.autograd.grad(torch.distributions.Normal(0.5, 1.7).log_prob(x).sum(), x)
    assert torch.allclose(gaussian_score(x.detach(), 0.5, 1.7), g)


@pytest.mark.parametrize("f", MATCHING_DIVERGENCES)
@pytest.mark.parametrize("target,mu,sigma", [(two_modes(3.0), 1.0, 1.5), (SKEWED, -0.5, 2.0)])
def test_gradient_identity_against_autograd_of_the_divergence(f, target, mu, sigma):
    formula = fdistill_gradient(target, mu, sigma, f)
    oracle = grid_gradient(target, mu, sigma, f)
    assert torch.allclose(formula, oracle, rtol=1e-6, atol=1e-9), (formula, oracle)


def test_gradient_matches_finite_differences():
    target, f, eps = two_modes(3.0), "js", 1e-5
    grid = Grid1D(-25.0, 25.0, 20001)
    logp = grid.discretize(target.log_prob(grid.x))

    def d(m, s):
        return f_divergence(logp, gaussian_logq(grid, m, s), f, validate=False).item()

    fd = [(d(1 + eps, 1.5) - d(1 - eps, 1.5)) / (2 * eps), (d(1, 1.5 + eps) - d(1, 1.5 - eps)) / (2 * eps)]
    assert torch.allclose(fdistill_gradient(target, 1.0, 1.5, f), torch.tensor(fd, dtype=D64), rtol=1e-6)


def test_forward_gradient_is_the_moment_matching_closed_form():
    mu, sigma = 0.7, 1.3
    mean = float((SKEWED.weights * SKEWED.means).sum())
    second = float((SKEWED.weights * (SKEWED.sigmas ** 2 + (SKEWED.means - mu) ** 2)).sum())
    expected = torch.tensor([(mu - mean) / sigma ** 2, 1 / sigma - second / sigma ** 3], dtype=D64)
    assert torch.allclose(fdistill_gradient(SKEWED, mu, sigma, "forward"), expected, rtol=1e-9)


def test_reverse_gradient_for_a_gaussian_teacher_matches_torch_kl():
    teacher = GaussianMixture1D([1.0], [2.0])
    m = torch.tensor(-0.3, dtype=D64, requires_grad=True)
    s = torch.tensor(0.8, dtype=D64, requires_grad=True)
    kl_qp = torch.distributions.kl_divergence(torch.distributions.Normal(m, s),
                                              torch.distributions.Normal(torch.tensor(1.0, dtype=D64), 2.0))
    oracle = torch.stack(torch.autograd.grad(kl_qp, (m, s)))
    assert torch.allclose(fdistill_gradient(teacher, -0.3, 0.8, "reverse"), oracle, rtol=1e-9)


@pytest.mark.parametrize("f", MATCHING_DIVERGENCES)
def test_gradient_vanishes_when_the_student_equals_the_teacher(f):
    teacher = GaussianMixture1D([0.4], [1.3])
    assert fdistill_gradient(teacher, 0.4, 1.3, f).abs().max().item() < 1e-12


def test_surrogate_autograd_equals_the_sample_formula():
    target, mu, sigma = two_modes(3.0), 1.0, 1.5
    z = torch.randn(4096, generator=torch.Generator().manual_seed(1), dtype=D64)
    m = torch.tensor(mu, dtype=D64, requires_grad=True)
    s = torch.tensor(sigma, dtype=D64, requires_grad=True)
    x = m + s * z
    xd = x.detach()
    logq = torch.distributions.Normal(mu, sigma).log_prob(xd)
    diff = mixture_score(target, xd) - gaussian_score(xd, mu, sigma)
    surrogate_loss(x, target.log_prob(xd) - logq, diff, "js").mean().backward()
    h = log_weight(target.log_prob(xd) - logq, "js").exp()
    by_hand = torch.stack([-(h * diff).mean(), -(h * diff * z).mean()])
    assert torch.allclose(torch.stack([m.grad, s.grad]), by_hand, rtol=1e-12)


@pytest.mark.parametrize("f", ["reverse", "js"])
def test_surrogate_is_an_unbiased_estimate_of_the_exact_gradient(f):
    target, mu, sigma, n = two_modes(3.0), 1.0, 1.5, 200_000
    z = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=D64)
    x = mu + sigma * z
    logq = torch.distributions.Normal(mu, sigma).log_prob(x)
    diff = mixture_score(target, x) - gaussian_score(x, mu, sigma)
    per = -log_weight(target.log_prob(x) - logq, f).exp() * diff * torch.stack([torch.ones_like(z), z])
    estimate, stderr = per.mean(1), per.std(1) / math.sqrt(n)
    exact = fdistill_gradient(target, mu, sigma, f)
    assert ((estimate - exact).abs() < 4 * stderr).all(), (estimate, exact, stderr)


@pytest.mark.parametrize("f", ["forward", "js", "reverse"])
def test_normalized_surrogate_only_rescales_the_weights(f):
    # Divided by the batch mean of the weight h(r) itself: for forward KL h = r, so that case alone could not tell a
    # division by mean(r) from one by mean(h); JS (h = r / (2 (1 + r))) and reverse (h = 1, no change) can.
    x = torch.tensor([0.5, -1.0, 2.0], dtype=D64)
    lr = torch.tensor([0.3, -2.0, 1.0], dtype=D64)
    d = torch.tensor([1.0, 2.0, -1.0], dtype=D64)
    plain = surrogate_loss(x, lr, d, f)
    norm = surrogate_loss(x, lr, d, f, normalize=True)
    assert torch.allclose(norm, plain / log_weight(lr, f).exp().mean(), rtol=1e-12)
    if f == "reverse":
        assert torch.equal(norm, plain)



def test_exact_training_reaches_the_forward_moment_match(one_thread):
    run = train_affine(SKEWED, "forward", init=(0.0, 1.0), steps=400, lr=0.1, batch=None)
    mean = float((SKEWED.weights * SKEWED.means).sum())
    assert run.mu == pytest.approx(mean, abs=1e-3)
    assert run.sigma == pytest.approx(math.sqrt(SKEWED.variance), abs=1e-3)


def test_sampled_training_reverse_locks_onto_a_mode_and_is_reproducible(one_thread):
    p = two_modes(3.0)
    a = train_affine(p, "reverse", init=(2.0, 1.5), steps=300, lr=0.1, seed=3)
    b = train_affine(p, "reverse", init=(2.0, 1.5), steps=300, lr=0.1, seed=3)
    assert torch.equal(a.path, b.path)
    assert a.path.shape == (301, 2)
    assert a.path[0].tolist() == [2.0, 1.5]
    # The reverse-KL optimum next to the right mode: stationary point of the exact gradient.
    assert fdistill_gradient(p, a.mu, a.sigma, "reverse").abs().max().item() < 0.02
    assert a.mu == pytest.approx(3.0, abs=0.05) and a.sigma == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("call,match", [
    (lambda: fdistill_gradient(two_modes(3.0), 0.0, 0.0), "sigma must be > 0"),
    (lambda: fdistill_gradient(two_modes(3.0), 0.0, 1.0, "tv"), "f must be one of"),
    (lambda: fdistill_gradient(two_modes(3.0), 0.0, 1.0, n=10), "n must be >= 101"),
    (lambda: fdistill_gradient(lambda x: -x ** 2, 0.0, 1.0), "target must be a GaussianMixture1D"),
    (lambda: log_weight(torch.zeros(2), "kl"), "f must be one of"),
    (lambda: train_affine(two_modes(3.0), batch=0), "batch must be >= 1"),
    (lambda: train_affine(two_modes(3.0), init=(0.0, -1.0)), r"init\[1\] \(sigma\) must be > 0"),
    (lambda: surrogate_loss(torch.zeros(3), torch.zeros(2), torch.zeros(3)), "log_ratio must have the shape"),
    (lambda: surrogate_loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2)), "x must be a 1-D"),
])
def test_bad_input_names_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_train_affine_is_torch_adam_with_a_linear_decay():
    # The same iterates as torch.optim.Adam with LambdaLR(1 - t / steps), on the same noise.
    p, steps, lr = two_modes(3.0), 40, 0.1
    run = train_affine(p, "js", init=(2.0, 1.5), steps=steps, batch=64, lr=lr, seed=5)
    mu = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(1.5), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 - t / steps)
    gen = torch.Generator().manual_seed(5)
    for t in range(steps):
        opt.zero_grad()
        z = torch.randn(64, generator=gen, dtype=torch.float64)
        x = mu + log_sigma.exp() * z
        with torch.no_grad():
            logr = p.log_prob(x) - torch.distributions.Normal(mu, log_sigma.exp()).log_prob(x)
            diff = mixture_score(p, x) + z / log_sigma.exp()
        surrogate_loss(x, logr, diff, "js", normalize=True).mean().backward()
        opt.step()
        sched.step()
        assert torch.allclose(run.path[t + 1], torch.stack([mu, log_sigma.exp()]).detach(), rtol=1e-12, atol=1e-12), t
