"""KL estimators: exact moments against Monte Carlo, expected gradients against the closed forms."""

import math

import pytest
import torch

from kllab.maths import rlhf
from kllab.maths.divergences import kl

pytestmark = pytest.mark.usefixtures("float64", "one_thread")



def pair(seed=0, k=7, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.log_softmax(scale * torch.randn(k, generator=g), -1),
            torch.log_softmax(scale * torch.randn(k, generator=g), -1))


def test_moments_by_enumeration_match_monte_carlo():
    logq, logp = pair()
    moments = rlhf.estimator_moments(logq, logp)
    truth = kl(logq, logp).item()
    assert moments["k1"][0].item() == pytest.approx(truth, abs=1e-12)
    assert moments["k3"][0].item() == pytest.approx(truth, abs=1e-12)
    est = rlhf.sample_estimates(logq, logp, 50, 4000, generator=torch.Generator().manual_seed(1))
    for name, (mean, var) in moments.items():
        se_of_mean = math.sqrt(var.item() / 50 / 4000)
        assert est[name].mean().item() == pytest.approx(mean.item(), abs=5 * se_of_mean), name
        assert est[name].var().item() == pytest.approx(var.item() / 50, rel=0.1), name   # Var of an N-sample mean


def test_moments_shape_zero_mass_and_infinite_cases():
    logq = torch.log_softmax(torch.randn(3, 4, 5), -1)
    logp = torch.log_softmax(torch.randn(3, 4, 5), -1)
    m = rlhf.estimator_moments(logq, logp)
    assert all(v[0].shape == (3, 4) and v[1].shape == (3, 4) for v in m.values())
    assert all((v[1] >= 0).all() for v in m.values())
    q = torch.tensor([0.5, 0.5, 0.0]).log(); p = torch.tensor([0.2, 0.3, 0.5]).log()
    m = rlhf.estimator_moments(q, p)                 # q = 0 on the last outcome: never sampled
    assert m["k1"][0].item() == pytest.approx(kl(q, p).item(), abs=1e-12)
    m = rlhf.estimator_moments(p, q)                 # p > 0 = q: KL(p || q) is infinite
    assert all(v[0].item() == math.inf for v in m.values())
    same = rlhf.estimator_moments(q, q)              # q = p: every estimator is 0 on every sample
    assert all(v[0].item() == 0.0 and v[1].item() == 0.0 for v in same.values())


def test_sample_estimates_shape_and_seed():
    logq, logp = pair(k=4)
    a = rlhf.sample_estimates(logq.expand(2, 4), logp.expand(2, 4), 10, 3, generator=torch.Generator().manual_seed(0))
    b = rlhf.sample_estimates(logq.expand(2, 4), logp.expand(2, 4), 10, 3, generator=torch.Generator().manual_seed(0))
    assert set(a) == {"k1", "k2", "k3"} and a["k1"].shape == (2, 3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (a["k3"] >= 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_gradients_closed_form_against_autograd(seed):
    z, logp = pair(seed)
    z = z.clone().requires_grad_(True)
    closed = rlhf.kl_gradients(z, logp)
    (rev,) = torch.autograd.grad(kl(torch.log_softmax(z, -1), logp), z)
    (fwd,) = torch.autograd.grad(kl(logp, torch.log_softmax(z, -1)), z)
    torch.testing.assert_close(closed["reverse"], rev, atol=1e-14, rtol=0)
    torch.testing.assert_close(closed["forward"], fwd, atol=1e-14, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_gradients_as_losses(seed):
    z, logp = pair(seed)
    grads, exact = rlhf.estimator_gradients(z, logp), rlhf.kl_gradients(z, logp)
    assert grads["k1"].abs().max().item() < 1e-15                                # E[grad k1] = 0
    torch.testing.assert_close(grads["k2"], exact["reverse"], atol=1e-14, rtol=0)  # E[grad k2] = grad KL(pi || p)
    torch.testing.assert_close(grads["k3"], exact["forward"], atol=1e-14, rtol=0)  # E[grad k3] = grad KL(p || pi)
    assert (grads["k3"] - exact["reverse"]).abs().max().item() > 1e-2               # ... which is not the reverse one


@pytest.mark.parametrize("seed", [0, 1])
def test_expected_gradients_as_rewards_and_the_product_rule(seed):
    z, logp = pair(seed)
    loss, reward = rlhf.estimator_gradients(z, logp), rlhf.estimator_gradients(z, logp, mode="reward")
    exact = rlhf.kl_gradients(z, logp)
    torch.testing.assert_close(reward["k1"], exact["reverse"], atol=1e-14, rtol=0)  # k1 in the reward: reverse KL
    for name in rlhf.ESTIMATORS:   # loss + reward = grad of E_pi[k], by autograd through the exact mean
        zz = z.clone().requires_grad_(True)
        logpi = torch.log_softmax(zz, -1)
        mean = rlhf.estimator_moments(logpi, logp)[name][0]
        (full,) = torch.autograd.grad(mean, zz)
        torch.testing.assert_close(loss[name] + reward[name], full, atol=1e-13, rtol=0)


def test_expected_gradients_batch_and_bad_input():
    z = torch.randn(3, 5); logp = torch.log_softmax(torch.randn(3, 5), -1)
    g = rlhf.estimator_gradients(z, logp)
    assert g["k2"].shape == (3, 5)
    torch.testing.assert_close(g["k2"][1], rlhf.estimator_gradients(z[1], logp[1])["k2"])
    with pytest.raises(ValueError, match="mode must be one of"):
        rlhf.estimator_gradients(z, logp, mode="both")
    with pytest.raises(ValueError, match="logp_ref must be > -inf everywhere"):
        rlhf.estimator_gradients(torch.zeros(2), torch.tensor([0.0, -math.inf]))
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        rlhf.sample_estimates(logp, logp, 0)
