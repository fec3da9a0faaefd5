"""RLHF: closed-form optima against independent solutions, the KL identity, KL estimators."""

import math

import pytest
import torch

from kllab.maths import rlhf
from kllab.maths.divergences import kl

pytestmark = pytest.mark.usefixtures("float64")


def problem(k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(k, generator=g), -1), torch.randn(k, generator=g)


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_reverse_optimum_identity(beta):
    # J(pi) = E_pi[r] - beta KL(pi || ref) = beta log Z - beta KL(pi || pi*) for every pi.
    ref, r = problem()
    star = rlhf.kl_regularized_policy(ref, r, beta)
    logz = rlhf.log_partition(ref, r, beta)
    for seed in range(5):
        pi = torch.log_softmax(torch.randn(6, generator=torch.Generator().manual_seed(100 + seed)), -1)
        lhs = rlhf.objective(pi, ref, r, beta)
        assert lhs.item() == pytest.approx((beta * logz - beta * kl(pi, star)).item(), abs=1e-12)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
@pytest.mark.parametrize("beta", [0.05, 0.3, 1.5])
def test_closed_form_matches_gradient_ascent(direction, beta):
    ref, r = problem(seed=1)
    star = rlhf.kl_regularized_policy(ref, r, beta, direction=direction).exp()
    trained, _ = rlhf.fit_policy(ref, r, beta, direction=direction, steps=3000, lr=0.05)
    torch.testing.assert_close(trained.exp(), star, atol=1e-3, rtol=0)


def test_forward_optimum_two_rewards_matches_quadratic():
    # One answer with mass eps and reward 1, the rest reward 0: pi*(0) solves a quadratic.
    for eps, beta in [(1e-6, 0.1), (1e-3, 0.5), (0.2, 1.5)]:
        ref = torch.tensor([eps] + [(1 - eps) / 4] * 4).log()
        r = torch.tensor([1.0, 0, 0, 0, 0])
        got = rlhf.kl_regularized_policy(ref, r, beta, direction="forward").exp()[0].item()
        expected = 0.5 * ((1 - beta) + math.sqrt((1 - beta) ** 2 + 4 * beta * eps))
        assert got == pytest.approx(expected, rel=1e-9)


def test_reverse_optimum_stays_in_support_forward_too():
    ref = torch.tensor([0.0, -math.inf])
    r = torch.tensor([0.0, 5.0])
    for d in ("reverse", "forward"):
        assert rlhf.kl_regularized_policy(ref, r, 0.1, direction=d).exp()[1].item() == 0.0


def test_batch_shape():
    ref = torch.log_softmax(torch.randn(3, 4, 5), -1)
    r = torch.randn(3, 4, 5)
    for d in ("reverse", "forward"):
        out = rlhf.kl_regularized_policy(ref, r, 0.7, direction=d)
        assert out.shape == (3, 4, 5)
        torch.testing.assert_close(out.exp().sum(-1), torch.ones(3, 4))
    assert rlhf.objective(ref, ref, r, 0.7).shape == (3, 4)


def test_kl_estimators_unbiased_and_k3_nonnegative():
    torch.manual_seed(0)
    q = torch.distributions.Normal(0.0, 1.0)
    p = torch.distributions.Normal(0.1, 1.0)
    x = q.sample((400_000,))
    ks = rlhf.kl_estimators(q.log_prob(x), p.log_prob(x))
    truth = torch.distributions.kl_divergence(q, p).item()
    assert ks["k1"].mean().item() == pytest.approx(truth, abs=0.001)  # truth 0.005, MC s.e. 1.6e-4
    assert ks["k3"].mean().item() == pytest.approx(truth, abs=0.001)
    assert (ks["k3"] >= 0).all() and (ks["k2"] >= 0).all()
    assert ks["k3"].std() < ks["k1"].std()  # the point of k3: lower variance when p and q are close


@pytest.mark.parametrize("call, message", [
    (lambda ref, r: rlhf.kl_regularized_policy(ref, r, 0.0), "beta must be > 0; got 0.0"),
    (lambda ref, r: rlhf.kl_regularized_policy(ref, r, 1.0, direction="up"), "direction must be one of"),
    (lambda ref, r: rlhf.kl_regularized_policy(ref, r[:3], 1.0), "reward and logp_ref must have the same shape"),
    (lambda ref, r: rlhf.kl_regularized_policy(ref + 1, r, 1.0), "logp_ref must be log-probabilities"),
    (lambda ref, r: rlhf.kl_regularized_policy(ref, r * math.nan, 1.0), "reward must be finite"),
    (lambda ref, r: rlhf.kl_estimators(torch.tensor([-math.inf]), torch.tensor([0.0])), "logq_x must be finite"),
])
def test_bad_input(call, message):
    ref, r = problem()
    with pytest.raises(ValueError) as err:
        call(ref, r)
    assert message in str(err.value)
