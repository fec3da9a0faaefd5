"""The chain model of on-policy distillation and the efficiency of problem weights: closed forms against
Monte Carlo and brute force, the zero of the signal, the delta^2 robustness bound, bad input."""

import math

import pytest
import torch

from kllab.maths.curriculum import (chain_gradient_moments, chain_snr, on_track_pmf, optimal_weights,
                                    sample_chain_gradients, step_signal, weight_efficiency)

pytestmark = pytest.mark.usefixtures("float64")


def test_step_signal_is_minus_the_logit_derivative_of_the_per_step_kl():
    eps = 0.02
    z = torch.linspace(-4, 4, 9).requires_grad_(True)
    s = torch.sigmoid(z)
    t = torch.tensor([1 - eps, eps])
    q = torch.stack([s, 1 - s], -1)
    fwd = (t * (t.log() - q.log())).sum(-1)          # KL(t || s)
    rev = (q * (q.log() - t.log())).sum(-1)          # KL(s || t)
    for loss, direction in ((fwd, "forward"), (rev, "reverse")):
        (g,) = torch.autograd.grad(loss.sum(), z, retain_graph=True)
        torch.testing.assert_close(-g, step_signal(s.detach(), direction, eps))


def test_on_track_law_by_enumeration():
    # Enumerate all 2^L step outcomes: N_on = index of the first error (or L).
    s, length = 0.7, 5
    pmf = torch.zeros(length)
    for code in range(2 ** length):
        steps = [(code >> i) & 1 for i in range(length)]         # 1 = right
        prob = math.prod(s if r else 1 - s for r in steps)
        n_on = next((i + 1 for i, r in enumerate(steps) if not r), length)
        pmf[n_on - 1] += prob
    torch.testing.assert_close(on_track_pmf(torch.tensor(s), length), pmf)
    assert on_track_pmf(torch.tensor([0.2, 0.9]), 7).sum(-1).tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("p", [0.02, 0.4, 0.9])
def test_moments_match_monte_carlo(direction, p):
    n = 40_000
    g = sample_chain_gradients(torch.tensor(p), 12, n, direction=direction, teacher_eps=0.01, off_track_noise=0.7,
                               generator=torch.Generator().manual_seed(1))
    mean, var = chain_gradient_moments(torch.tensor(p), 12, direction=direction, teacher_eps=0.01, off_track_noise=0.7)
    m4 = ((g - g.mean()) ** 4).mean()
    assert abs(g.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(g.var() - var) < 5 * math.sqrt((m4 - g.var() ** 2) / n)


def test_mean_closed_form_and_its_zero():
    # E G = g(s) (1 - s^L) / (1 - s); the forward mean is (1 - p) when eps -> 0.
    p = torch.tensor([0.1, 0.5, 0.8])
    mean, _ = chain_gradient_moments(p, 8, teacher_eps=1e-12)
    torch.testing.assert_close(mean, 1 - p, rtol=1e-9, atol=1e-9)
    for direction in ("forward", "reverse"):
        match = torch.tensor((1 - 0.05) ** 8)                 # the student's step probability equals the teacher's
        assert abs(chain_gradient_moments(match, 8, direction=direction, teacher_eps=0.05)[0].item()) < 1e-12
        below, above = chain_snr(torch.tensor([0.5 * match, 0.5 + 0.5 * match]), 8, 4, direction=direction,
                                 teacher_eps=0.05)
        assert below > 0 > above


def test_snr_limits():
    # Forward, p -> 0 (s -> 0): G -> (1 - eps) + noise of L - 1 off-track steps: SNR -> (1 - eps) sqrt(k) / (c sqrt(L - 1)).
    snr = chain_snr(torch.tensor(1e-60), 4, 8, teacher_eps=0.01, off_track_noise=2.0)
    assert snr.item() == pytest.approx(0.99 * math.sqrt(8) / (2.0 * math.sqrt(3)), rel=1e-6)
    # Reverse, p -> 0: the mode-seeking signal s(1 - s)(z* - z) -> 0.
    assert chain_snr(torch.tensor(1e-60), 4, 8, direction="reverse").item() < 1e-6


def test_optimal_weights_maximise_the_efficiency():
    gen = torch.Generator().manual_seed(3)
    mean, var = torch.rand(50, generator=gen) + 0.1, torch.rand(50, generator=gen) + 0.1
    best = optimal_weights(mean, var)
    assert weight_efficiency(best, mean, var).item() == pytest.approx(1.0, abs=1e-12)
    for _ in range(20):
        w = torch.rand(50, generator=gen)
        assert 0 <= weight_efficiency(w, mean, var).item() <= 1 + 1e-12
    # brute force: the aggregate squared SNR (sum w mu)^2 / sum w^2 sigma^2 is largest at w* among 2000 random w
    ws = torch.rand(2000, 50, generator=gen)
    snr2 = (ws * mean).sum(-1) ** 2 / (ws ** 2 * var).sum(-1)
    assert snr2.max() <= ((best * mean).sum() ** 2 / (best ** 2 * var).sum()) + 1e-12


@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5])
def test_multiplicative_misspecification_costs_exactly_up_to_delta_squared(delta):
    gen = torch.Generator().manual_seed(4)
    mean, var = torch.rand(40, generator=gen) + 0.1, torch.rand(40, generator=gen) + 0.1
    best = optimal_weights(mean, var)
    pi = mean ** 2 / var
    pi = pi / pi.sum()
    for _ in range(50):
        h = 2 * torch.rand(40, generator=gen) - 1
        loss = 1 - weight_efficiency(best * (1 + delta * h), mean, var)
        eh, eh2 = (pi * h).sum(), (pi * h ** 2).sum()
        exact = delta ** 2 * (eh2 - eh ** 2) / (1 + 2 * delta * eh + delta ** 2 * eh2)
        assert loss.item() == pytest.approx(exact.item(), abs=1e-12)
        assert loss <= delta ** 2 + 1e-12
    # the worst case: h = +-1 with pi-mean -delta attains delta^2 (build it by splitting the problems by pi mass)
    order = torch.argsort(pi)
    cum = torch.cumsum(pi[order], 0)
    h = torch.ones(40)
    h[order[cum <= (1 + delta) / 2]] = -1.0        # pi mass about (1 + delta)/2 on -1: E h about -delta
    eh = (pi * h).sum()
    loss = 1 - weight_efficiency(best * (1 + delta * h), mean, var)
    assert loss.item() == pytest.approx((delta ** 2 * (1 - eh ** 2) / (1 + 2 * delta * eh + delta ** 2)).item(), abs=1e-12)
    assert loss.item() >= 0.8 * delta ** 2


def test_shapes():
    p = torch.full((3, 4), 0.3)
    mean, var = chain_gradient_moments(p, 6)
    assert mean.shape == var.shape == (3, 4)
    assert sample_chain_gradients(p, 6, 10).shape == (3, 4, 10)
    assert on_track_pmf(p, 6).shape == (3, 4, 6)


@pytest.mark.parametrize("call, message", [
    (lambda: chain_gradient_moments(torch.tensor(0.0), 4), "pass_rate must be in (0, 1)"),
    (lambda: chain_gradient_moments(torch.tensor(1.0), 4), "pass_rate must be in (0, 1)"),
    (lambda: chain_gradient_moments(torch.tensor(0.5), 0), "length must be >= 1; got 0"),
    (lambda: chain_gradient_moments(torch.tensor(0.5), 4, direction="both"), "direction must be one of 'forward', 'reverse'"),
    (lambda: chain_gradient_moments(torch.tensor(0.5), 4, teacher_eps=0.0), "teacher_eps must be > 0; got 0.0"),
    (lambda: chain_gradient_moments(torch.tensor(0.5), 4, off_track_noise=-1.0), "off_track_noise must be >= 0"),
    (lambda: chain_snr(torch.tensor(0.5), 4, 0), "rollouts must be >= 1; got 0"),
    (lambda: optimal_weights(torch.ones(2), torch.zeros(2)), "var must be > 0"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
