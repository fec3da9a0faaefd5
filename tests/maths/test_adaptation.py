"""Tests of kllab.maths.adaptation: entropy minimisation with a KL class-ratio prior (SFDA).

Oracles: scipy.stats.entropy (entropies and both KL directions, computed on NumPy probabilities,
independently of kllab's log-space code), the information-maximisation identity in closed form,
a hand-derived gradient in the output bias, and finite differences (torch.autograd.gradcheck).
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as sp_entropy

from kllab.maths import adaptation as ad
from kllab.maths.ensemble import EnsembleMLP


def _batch(shape, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(scale * torch.randn(*shape, generator=g, dtype=torch.float64), -1)


def _tau(k, seed=1):
    g = np.random.default_rng(seed)
    t = g.dirichlet(np.ones(k))
    return torch.tensor(t).log()


# ---------------------------------------------------------------------------------------- oracles

@pytest.mark.parametrize("k", [2, 3, 5])
def test_terms_match_scipy(k):
    logp = _batch((4, 50, k), seed=k)
    p = logp.exp().numpy()
    s_hat = p.mean(1)
    assert np.allclose(ad.class_ratio(logp).exp().numpy(), s_hat, atol=1e-14)
    h_cond = np.array([np.mean([sp_entropy(row) for row in img]) for img in p])
    h_marg = np.array([sp_entropy(s) for s in s_hat])
    im = ad.information_maximisation(logp)
    assert np.allclose(im.mean_entropy.numpy(), h_cond, atol=1e-13)
    assert np.allclose(ad.mean_entropy(logp).numpy(), h_cond, atol=1e-13)
    assert np.allclose(im.marginal_entropy.numpy(), h_marg, atol=1e-13)
    assert np.allclose(im.mutual_information.numpy(), h_marg - h_cond, atol=1e-13)
    assert (im.mutual_information >= -1e-15).all()                    # I(X;Y) >= 0 (concavity of H)
    tau = _tau(k)
    t = tau.exp().numpy()
    rev = np.array([sp_entropy(s, t) for s in s_hat])                  # KL(s_hat || tau)
    fwd = np.array([sp_entropy(t, s) for s in s_hat])                  # KL(tau || s_hat)
    assert np.allclose(ad.prior_kl(logp, tau).numpy(), rev, atol=1e-13)                      # default: the paper's
    assert np.allclose(ad.prior_kl(logp, tau, direction="reverse").numpy(), rev, atol=1e-13)
    assert np.allclose(ad.prior_kl(logp, tau, direction="forward").numpy(), fwd, atol=1e-13)
    for lam in (0.0, 0.37, 2.5):   # a dropped lambda or a dropped 1/N fails at 0.37 and 2.5
        assert np.allclose(ad.sfda_loss(logp, tau, lam).numpy(), h_cond + lam * rev, atol=1e-12)
        assert np.allclose(ad.sfda_loss(logp, tau, lam, direction="forward").numpy(), h_cond + lam * fwd, atol=1e-12)


@pytest.mark.parametrize("k", [2, 4, 7])
def test_information_maximisation_identity_is_exact(k):
    logp = _batch((6, 80, k), seed=10 + k, scale=3.0)
    u = torch.full((k,), -math.log(k), dtype=torch.float64)
    im = ad.information_maximisation(logp)
    lhs = ad.sfda_loss(logp, u, 1.0)                       # mean H(s_i) + KL(s_hat || u)
    assert torch.allclose(lhs, math.log(k) - im.mutual_information, atol=1e-13, rtol=0)
    # KL(s_hat || u) = log K - H(s_hat): the identity behind it
    assert torch.allclose(ad.prior_kl(logp, u), math.log(k) - im.marginal_entropy, atol=1e-13, rtol=0)
    # only the paper's direction gives the identity: the forward KL(u || s_hat) does not (for K = 2 the two
    # differ only at fourth order in s_hat - u, so the contrast is asserted for K > 2)
    fwd = ad.sfda_loss(logp, u, 1.0, direction="forward")
    if k > 2:
        assert (fwd - lhs).abs().max() > 1e-4


def test_collapse_reverse_finite_forward_infinite():
    # every input predicted class 0 with certainty: s_hat = (1, 0)
    logp = torch.tensor([[0.0, -math.inf]] * 10, dtype=torch.float64)
    tau = torch.tensor([0.7, 0.3], dtype=torch.float64).log()
    rev = ad.prior_kl(logp, tau).item()
    assert math.isclose(rev, math.log(1 / 0.7), rel_tol=1e-12)        # KL(s_hat || tau) = log 1/tau_0
    assert ad.prior_kl(logp, tau, direction="forward").item() == math.inf
    assert ad.mean_entropy(logp).item() == 0.0
    assert ad.information_maximisation(logp).mutual_information.item() == 0.0


def test_gradient_matches_finite_differences(one_thread):
    logits = 1.5 * torch.randn(2, 12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    tau = _tau(3, seed=4)
    for direction in ("reverse", "forward"):
        def f(z):
            return ad.sfda_loss(torch.log_softmax(z, -1), tau, 0.8, direction=direction, validate=False)
        assert torch.autograd.gradcheck(f, (logits.clone().requires_grad_(True),), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_bias_gradient_closed_form(direction):
    """Two classes, logit difference z_i + b: dL/db = -mean(z_i s_i (1-s_i)) + lam D'(f) mean(s_i (1-s_i))."""
    g = torch.Generator().manual_seed(5)
    z = 2.0 * torch.randn(3, 40, generator=g, dtype=torch.float64)
    tau_1, lam = 0.3, 1.7
    tau = torch.tensor([1 - tau_1, tau_1], dtype=torch.float64).log()
    b = torch.zeros(3, 1, dtype=torch.float64, requires_grad=True)
    zb = z + b
    logp = torch.stack([torch.nn.functional.logsigmoid(-zb), torch.nn.functional.logsigmoid(zb)], -1)
    ad.sfda_loss(logp, tau, lam, direction=direction).sum().backward()
    s = torch.sigmoid(z)
    v = (s * (1 - s)).mean(-1)
    f = s.mean(-1)
    if direction == "reverse":    # d/df KL((1-f, f) || (1-tau, tau)) = logit f - logit tau
        d_prime = torch.log(f / (1 - f)) - math.log(tau_1 / (1 - tau_1))
    else:                         # d/df KL((1-tau, tau) || (1-f, f)) = (f - tau) / (f (1 - f))
        d_prime = (f - tau_1) / (f * (1 - f))
    expected = -(z * s * (1 - s)).mean(-1) + lam * d_prime * v
    assert torch.allclose(b.grad[:, 0], expected, atol=1e-13, rtol=0)


def test_shapes_and_leading_axes():
    logp = _batch((2, 3, 20, 4))
    tau = _tau(4)
    assert ad.class_ratio(logp).shape == (2, 3, 4)
    assert ad.sfda_loss(logp, tau, 1.0).shape == (2, 3)
    lam = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    per = ad.sfda_loss(logp, tau, lam)
    assert torch.allclose(per[:, 0], ad.mean_entropy(logp)[:, 0])
    assert torch.allclose(per[:, 2], ad.sfda_loss(logp[:, 2], tau, 2.0))
    taus = torch.stack([_tau(4, seed=s) for s in range(3)])              # one prior per image
    assert torch.allclose(ad.prior_kl(logp, taus)[:, 1], ad.prior_kl(logp[:, 1], taus[1]))


# ---------------------------------------------------------------------------------------- the loop

def _toy(n=300, seed=0):
    g = np.random.default_rng(seed)
    y = (g.random(n) < 0.3).astype(np.int64)
    x = np.array([[-1.5, 0.0], [1.5, 0.0]])[y] + g.normal(size=(n, 2))
    return torch.tensor(x), torch.tensor(y)


def test_adapt_locks_the_ratio_and_lambda_zero_is_entropy_minimisation(one_thread):
    x, _ = _toy()
    tau = torch.tensor([0.7, 0.3], dtype=torch.float64).log()
    net = EnsembleMLP(2, 2, width=6, seeds=[0, 1])
    before = [p.detach().clone() for p in net.parameters()]
    run = ad.adapt(net, x, tau, torch.tensor([0.0, 20.0], dtype=torch.float64), steps=150, lr=0.03)
    assert run.loss.shape == (151, 2) and run.log_ratio.shape == (151, 2, 2)
    assert abs(run.log_ratio[-1, 1, 1].exp().item() - 0.3) < 0.01          # the prior pins s_hat to tau
    with torch.no_grad():   # the recorded loss of model 0 (lambda = 0) is its mean entropy
        net_0 = EnsembleMLP(2, 2, width=6, seeds=[0])
        for p, q in zip(net_0.parameters(), before):
            p.copy_(q[:1])
        h0 = ad.mean_entropy(torch.log_softmax(net_0(x), -1))[0]
    assert torch.isclose(run.loss[0, 0], h0)
    assert run.loss[-1, 0] < run.loss[0, 0]                                 # entropy went down
    assert torch.allclose(run.log_ratio[-1].exp().sum(-1), torch.ones(2, dtype=torch.float64))


# ---------------------------------------------------------------------------------------- bad input

def test_bad_input(one_thread):
    logp = _batch((10, 2))
    tau = torch.tensor([0.7, 0.3], dtype=torch.float64).log()
    with pytest.raises(ValueError, match=r"logp must have shape \(\.\.\., N, K\)"):
        ad.class_ratio(logp[0])
    with pytest.raises(ValueError, match="two classes"):
        ad.class_ratio(logp[:, :1])
    with pytest.raises(ValueError, match="logp must be log-probabilities"):
        ad.sfda_loss(logp + 1.0, tau, 1.0)
    with pytest.raises(ValueError, match="logp must not contain NaN"):
        ad.mean_entropy(torch.full((3, 2), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match="logp must be a torch.Tensor"):
        ad.class_ratio([[0.0, -math.inf]])
    with pytest.raises(ValueError, match=r"log_tau must hold log class ratios .* K = 2; got shape \(3,\)"):
        ad.prior_kl(logp, torch.full((3,), -math.log(3)))
    with pytest.raises(ValueError, match="log_tau must be log-probabilities"):
        ad.prior_kl(logp, torch.tensor([0.5, 0.3]).log())
    with pytest.raises(ValueError, match="direction must be one of 'forward', 'reverse'; got 'kl'"):
        ad.prior_kl(logp, tau, direction="kl")
    for bad in (-1.0, math.nan, math.inf, True):
        with pytest.raises(ValueError, match="lam must be"):
            ad.sfda_loss(logp, tau, bad)
    with pytest.raises(ValueError, match="lam must be finite and >= 0"):
        ad.sfda_loss(logp, tau, torch.tensor([-0.5]))
    net = EnsembleMLP(2, 2, width=3, seeds=[0, 1])
    x = torch.randn(20, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="steps must be >= 1; got 0"):
        ad.adapt(net, x, tau, 1.0, steps=0)
    with pytest.raises(ValueError, match="lr must be > 0; got 0.0"):
        ad.adapt(net, x, tau, 1.0, steps=5, lr=0.0)
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(N, d\) or \(R, N, d\); got \(20,\)"):
        ad.adapt(net, x[:, 0], tau, 1.0, steps=5)
    with pytest.raises(ValueError, match="x must not contain NaN"):
        ad.adapt(net, torch.full((20, 2), math.nan, dtype=torch.float64), tau, 1.0, steps=5)
    with pytest.raises(ValueError, match=r"lam must be a number or have shape \(R,\) = \(2,\); got shape \(3,\)"):
        ad.adapt(net, x, tau, torch.ones(3, dtype=torch.float64), steps=5)
    with pytest.raises(ValueError, match=r"model\(x\) must return logits of shape \(R, N, K\)"):
        ad.adapt(net, x, tau, 1.0, steps=5, logits=lambda v: net(v)[0])
    with pytest.raises(ValueError, match="log_tau must hold log class ratios"):
        ad.adapt(net, x, torch.full((3,), -math.log(3), dtype=torch.float64), 1.0, steps=5)
