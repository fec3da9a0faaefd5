"""Tests of kllab.maths.deep_kernels: the zero-mean Gaussian KL against torch.distributions, the
arc-cosine NNGP recursion against wide random ReLU networks and a Monte-Carlo expectation, and the
deep kernel machine objective's gradient and limits."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from kllab.maths import deep_kernels as dk


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny tensors: one intra-op thread, restored after each test."""


def _spd(n, seed, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n + 3, generator=gen, dtype=torch.float64)
    return scale * a @ a.T / (n + 3) + 0.1 * torch.eye(n, dtype=torch.float64)


def _toy(n=10, d=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = (torch.sin(x[:, 0]) + 0.3 * x[:, 1]).unsqueeze(1)
    return x, x @ x.T / d, y


@pytest.mark.parametrize("n,seed", [(1, 0), (3, 1), (12, 2)])
def test_kl_matches_torch_distributions(n, seed):
    g, k = _spd(n, seed), _spd(n, seed + 100, scale=2.0)
    ours = dk.kl_mvn_zero_mean(g, k)
    ref = kl_divergence(MultivariateNormal(torch.zeros(n, dtype=torch.float64), g),
                        MultivariateNormal(torch.zeros(n, dtype=torch.float64), k))
    assert ours.shape == ()
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-12)
    # the reverse direction is a different number (math order: first argument is the reference)
    assert not torch.isclose(ours, dk.kl_mvn_zero_mean(k, g))


def test_kl_closed_forms_and_batch():
    eye = torch.eye(4, dtype=torch.float64)
    assert float(dk.kl_mvn_zero_mean(eye, eye)) == pytest.approx(0.0, abs=1e-14)
    # isotropic: n/2 (s - 1 - log s)
    assert float(dk.kl_mvn_zero_mean(3 * eye, eye)) == pytest.approx(2 * (3 - 1 - math.log(3)), rel=1e-12)
    batch = torch.stack([_spd(5, s) for s in range(3)])
    kb = torch.stack([_spd(5, s + 7) for s in range(3)])
    out = dk.kl_mvn_zero_mean(batch, kb)
    assert out.shape == (3,)
    for i in range(3):
        assert float(out[i]) == pytest.approx(float(dk.kl_mvn_zero_mean(batch[i], kb[i])), rel=1e-12)


def test_kl_monte_carlo():
    g, k = _spd(3, 5), _spd(3, 6)
    p, q = (MultivariateNormal(torch.zeros(3, dtype=torch.float64), c) for c in (g, k))
    torch.manual_seed(0)
    z = p.sample(torch.Size([200_000]))
    mc = float((p.log_prob(z) - q.log_prob(z)).mean())
    assert float(dk.kl_mvn_zero_mean(g, k)) == pytest.approx(mc, abs=0.02)


def test_arccos_kernel_against_monte_carlo_expectation():
    # K(G)_ij = 2 E[relu(u) relu(v)], (u, v) ~ N(0, G restricted to {i, j})
    g = torch.tensor([[1.5, 0.6, -0.9], [0.6, 0.8, 0.1], [-0.9, 0.1, 2.0]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(400_000, 3, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(g).T
    f = torch.relu(z)
    mc = 2 * f.T @ f / z.shape[0]
    assert torch.allclose(dk.layer_kernel(g), mc, atol=0.01)
    assert torch.allclose(torch.diagonal(dk.layer_kernel(g)), torch.diagonal(g))


def test_nngp_is_the_wide_network_limit():
    x, g0, _ = _toy(n=8, d=5)
    limit = dk.nngp(g0, 3)
    gaps = {w: max(float((m - k).norm() / k.norm()) for m, k in zip(dk.relu_features_gram(x, w, 3, seed=1), limit))
            for w in (256, 16384)}
    assert gaps[16384] < 8 / math.sqrt(16384)
    assert gaps[16384] < gaps[256]
    # a kernel off by a factor (e.g. 1/(2 pi) instead of 1/pi off the diagonal) is far outside that
    assert float((limit[0] - 0.5 * limit[0]).norm() / limit[0].norm()) > 10 * gaps[16384]


def test_sqexp_kernel():
    g = _spd(4, 3)
    k = dk.layer_kernel(g, "sqexp", bandwidth=0.7)
    d2 = torch.diagonal(g)[:, None] + torch.diagonal(g)[None, :] - 2 * g
    assert torch.allclose(k, torch.exp(-d2 / (2 * 0.49)))


def test_objective_gradient_finite_differences():
    _, g0, y = _toy(n=6)
    grams = [dk.layer_kernel(g0) + 0.05 * _spd(6, 1), None]
    grams[1] = dk.layer_kernel(grams[0]) + 0.05 * _spd(6, 2)
    direction = [_spd(6, 3), _spd(6, 4)]

    def f(t):
        gs = [g + t * d for g, d in zip(grams, direction)]
        return dk.dkm_objective(gs, g0, y, [3.0, 5.0], 0.2)["objective"]

    gs = [g.clone().requires_grad_(True) for g in grams]
    obj = dk.dkm_objective(gs, g0, y, [3.0, 5.0], 0.2)["objective"]
    grads = torch.autograd.grad(obj, gs)
    analytic = sum(float((gr * d).sum()) for gr, d in zip(grads, direction))
    h = 1e-5
    numeric = (float(f(h)) - float(f(-h))) / (2 * h)
    assert analytic == pytest.approx(numeric, rel=1e-6)
    # the KL part of the gradient is -nu/2 (K^-1 - G^-1) for the top layer's own KL
    own = torch.autograd.grad(dk.kl_mvn_zero_mean(gs[1], dk.layer_kernel(grams[0])), gs[1])[0]
    k = dk.layer_kernel(grams[0])
    assert torch.allclose(own, 0.5 * (torch.linalg.inv(k) - torch.linalg.inv(grams[1])), atol=1e-8)


def test_objective_parts_and_likelihood():
    _, g0, y = _toy(n=7)
    grams = dk.nngp(g0, 2)
    out = dk.dkm_objective(grams, g0, y, 4.0, 0.3)
    assert torch.allclose(out["kls"], torch.zeros(2, dtype=torch.float64), atol=1e-10)
    k = dk.layer_kernel(grams[1]) + 0.3 * torch.eye(7, dtype=torch.float64)
    ref = MultivariateNormal(torch.zeros(7, dtype=torch.float64), k).log_prob(y[:, 0])
    assert float(out["log_lik"]) == pytest.approx(float(ref), rel=1e-12)
    assert float(out["objective"]) == pytest.approx(float(ref), rel=1e-10)


def test_fit_tends_to_nngp_as_one_over_nu():
    _, g0, y = _toy(n=10)
    limit = dk.nngp(g0, 2)
    dist = {}
    for nu in (2000.0, 8000.0):
        fit = dk.fit_dkm(g0, y, nu, 0.2, depth=2, steps=100, tol=1e-13)
        dist[nu] = float((fit["grams"][1] - limit[1]).norm() / limit[1].norm())
    assert 0 < dist[8000.0] < 1e-3
    assert 8000 * dist[8000.0] / (2000 * dist[2000.0]) == pytest.approx(1.0, abs=0.02)


def test_fixed_point_agrees_with_adam_and_beats_nngp():
    _, g0, y = _toy(n=5)
    fp = dk.fit_dkm(g0, y, 4.0, 0.2, depth=2, steps=300, tol=1e-12)
    ad = dk.fit_dkm(g0, y, 4.0, 0.2, depth=2, method="adam", steps=500, lr=2e-2)
    assert fp["objective"] >= ad["objective"] - 1e-3
    assert fp["objective"] == pytest.approx(ad["objective"], abs=5e-3)
    for a, b in zip(fp["grams"], ad["grams"]):
        assert float((a - b).norm() / a.norm()) < 0.02
    nngp_obj = float(dk.dkm_objective(dk.nngp(g0, 2), g0, y, 4.0, 0.2)["objective"])
    assert fp["objective"] > nngp_obj + 1e-3
    assert all(b >= a - 1e-9 for a, b in zip(fp["trace"], fp["trace"][1:]))


def test_bad_input():
    g = _spd(3, 0)
    with pytest.raises(ValueError, match="square"):
        dk.kl_mvn_zero_mean(torch.ones(3, 2, dtype=torch.float64), g)
    with pytest.raises(ValueError, match="3 x 3"):
        dk.kl_mvn_zero_mean(g, _spd(4, 1))
    bad = g.clone()
    bad[0, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        dk.kl_mvn_zero_mean(bad, g)
    asym = g.clone()
    asym[0, 1] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        dk.kl_mvn_zero_mean(asym, g)
    with pytest.raises(ValueError, match="positive definite"):
        dk.kl_mvn_zero_mean(-g, g)
    with pytest.raises(ValueError, match="kernel"):
        dk.layer_kernel(g, "tanh")
    with pytest.raises(ValueError, match="bandwidth"):
        dk.layer_kernel(g, "sqexp", bandwidth=0.0)
    with pytest.raises(ValueError, match="positive diagonal"):
        dk.layer_kernel(torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="depth"):
        dk.nngp(g, 0)
    x, g0, y = _toy(n=5)
    with pytest.raises(ValueError, match="nu"):
        dk.dkm_objective(dk.nngp(g0, 2), g0, y, -1.0, 0.1)
    with pytest.raises(ValueError, match="one value per layer"):
        dk.dkm_objective(dk.nngp(g0, 2), g0, y, [1.0, 2.0, 3.0], 0.1)
    with pytest.raises(ValueError, match="noise_var"):
        dk.dkm_objective(dk.nngp(g0, 2), g0, y, 1.0, 0.0)
    with pytest.raises(ValueError, match="y"):
        dk.gp_log_likelihood(torch.ones(5, dtype=torch.float64), g0 + torch.eye(5, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match="method"):
        dk.fit_dkm(g0, y, 1.0, 0.1, method="lbfgs")
    with pytest.raises(ValueError, match="width"):
        dk.relu_features_gram(x, 0, 1)
    with pytest.raises(ValueError, match="grams"):
        dk.dkm_objective([], g0, y, 1.0, 0.1)
