"""Tests of kllab.maths.information: closed forms against direct summation, scipy entropies,
torch.distributions, Monte Carlo and a numerical maximisation of the KL ratio."""

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch

from kllab.maths import information as inf_


def _rand_joint(gen, nx, ny):
    p = torch.rand(nx, ny, generator=gen, dtype=torch.float64) + 0.01
    return (p / p.sum()).log()


def _rand_cov(gen, d):
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return a @ a.T / d + 0.3 * torch.eye(d, dtype=torch.float64)


def test_mi_matches_scipy_entropies():
    gen = torch.Generator().manual_seed(0)
    for nx, ny in ((2, 2), (3, 5), (7, 4)):
        lj = _rand_joint(gen, nx, ny)
        p = lj.exp().numpy()
        oracle = scipy.stats.entropy(p.sum(1)) + scipy.stats.entropy(p.sum(0)) - scipy.stats.entropy(p.ravel())
        assert inf_.mutual_information(lj).item() == pytest.approx(oracle, rel=1e-12, abs=1e-14)


def test_mi_direct_summation_batch_and_zeros():
    gen = torch.Generator().manual_seed(1)
    lj = torch.stack([_rand_joint(gen, 3, 3) for _ in range(4)])
    out = inf_.mutual_information(lj)
    assert out.shape == (4,)
    for b in range(4):
        p = lj[b].exp()
        px, py = p.sum(1), p.sum(0)
        direct = sum(p[i, j] * math.log(p[i, j] / (px[i] * py[j])) for i in range(3) for j in range(3))
        assert out[b].item() == pytest.approx(float(direct), rel=1e-12)
    # independence gives 0; a perfect copy gives H(X); zeros are allowed (no nan)
    indep = (torch.tensor([0.2, 0.8])[:, None] * torch.tensor([0.5, 0.3, 0.2])[None]).double().log()
    assert inf_.mutual_information(indep).item() == pytest.approx(0.0, abs=1e-14)
    copy = torch.diag(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)).log()
    assert inf_.mutual_information(copy).item() == pytest.approx(scipy.stats.entropy([0.2, 0.3, 0.5]), rel=1e-12)


def test_bsc_mi_closed_form():
    for p in (0.0, 0.05, 0.2, 0.5):
        lj = inf_.channel_joint(torch.tensor([0.5, 0.5], dtype=torch.float64).log(), inf_.bsc(p))
        h = 0.0 if p in (0.0, 1.0) else -(p * math.log(p) + (1 - p) * math.log(1 - p))
        assert inf_.mutual_information(lj).item() == pytest.approx(math.log(2) - h, abs=1e-12)


def test_discrete_dpi_random_markov_chains():
    gen = torch.Generator().manual_seed(2)
    for _ in range(20):
        px = torch.log_softmax(torch.randn(4, generator=gen, dtype=torch.float64), 0)
        k1 = torch.log_softmax(2 * torch.randn(4, 5, generator=gen, dtype=torch.float64), 1)
        k2 = torch.log_softmax(2 * torch.randn(5, 3, generator=gen, dtype=torch.float64), 1)
        i_xy = inf_.mutual_information(inf_.channel_joint(px, k1))
        i_xz = inf_.mutual_information(inf_.channel_joint(px, torch.logsumexp(k1[:, :, None] + k2[None], 1)))
        assert i_xz <= i_xy + 1e-12


def _kl_bern(a, b):
    return sum(x * math.log(x / y) for x, y in ((a, b), (1 - a, 1 - b)) if x > 0)


@pytest.mark.parametrize("p", [0.02, 0.1, 0.3, 0.45])
def test_sdpi_bsc_against_numerical_maximisation(p):
    eta = inf_.sdpi_bsc(p)
    assert eta == pytest.approx((1 - 2 * p) ** 2, abs=1e-15)

    def neg_ratio(v):
        a, b = 1 / (1 + math.exp(-v[0])), 1 / (1 + math.exp(-v[1]))
        if abs(a - b) < 1e-3:   # closer pairs lose digits to cancellation in both KLs
            return 0.0
        out = lambda t: t * (1 - p) + (1 - t) * p
        return -_kl_bern(out(a), out(b)) / _kl_bern(a, b)

    rng = np.random.default_rng(0)
    grid = rng.uniform(-6, 6, size=(3000, 2))
    ratios = np.array([-neg_ratio(v) for v in grid])
    assert ratios.max() <= eta + 1e-12           # no pair beats the closed form
    best = max((scipy.optimize.minimize(neg_ratio, [s, s + 0.05], method="Nelder-Mead",
                                        options={"xatol": 1e-10, "fatol": 1e-14}) for s in (-0.1, 0.0, 0.1)),
               key=lambda r: -r.fun)
    assert -best.fun == pytest.approx(eta, rel=2e-3)    # the sup is approached near the uniform law
    assert -best.fun <= eta + 1e-12


def test_gaussian_mi_matches_torch_entropies_and_monte_carlo():
    gen = torch.Generator().manual_seed(3)
    d, w, s = 4, 3, 0.7
    cov = _rand_cov(gen, d)
    W = torch.randn(w, d, generator=gen, dtype=torch.float64)
    mvn = torch.distributions.MultivariateNormal
    out_cov = W @ cov @ W.T + s ** 2 * torch.eye(w, dtype=torch.float64)
    oracle = mvn(torch.zeros(w, dtype=torch.float64), out_cov).entropy() - \
        mvn(torch.zeros(w, dtype=torch.float64), s ** 2 * torch.eye(w, dtype=torch.float64)).entropy()
    assert inf_.gaussian_mi(cov, W, s).item() == pytest.approx(oracle.item(), rel=1e-12)
    # scalar: 1/2 log(1 + snr), and a Monte Carlo estimate of E[log p(y|x) - log p(y)]
    snr = 2.5
    assert inf_.gaussian_channel_mi(snr).item() == pytest.approx(0.5 * math.log(3.5), rel=1e-14)
    x = math.sqrt(snr) * torch.randn(200_000, generator=gen, dtype=torch.float64)
    y = x + torch.randn(200_000, generator=gen, dtype=torch.float64)
    normal = torch.distributions.Normal
    terms = normal(x, 1.0).log_prob(y) - normal(0.0, math.sqrt(1 + snr)).log_prob(y)
    assert abs(terms.mean().item() - 0.5 * math.log(1 + snr)) < 5 * terms.std().item() / math.sqrt(len(terms))
    assert inf_.gaussian_mi([[snr]], [[1.0]], 1.0).item() == pytest.approx(0.5 * math.log(1 + snr), rel=1e-12)


def test_kl_mvn_matches_torch_distributions():
    gen = torch.Generator().manual_seed(4)
    mvn = torch.distributions.MultivariateNormal
    for d in (1, 3, 8):
        mp, mq = torch.randn(d, generator=gen, dtype=torch.float64), torch.randn(d, generator=gen, dtype=torch.float64)
        cp, cq = _rand_cov(gen, d), _rand_cov(gen, d)
        oracle = torch.distributions.kl_divergence(mvn(mp, cp), mvn(mq, cq)).item()
        assert inf_.kl_mvn(mp, cp, mq, cq).item() == pytest.approx(oracle, rel=1e-10)
        assert inf_.kl_mvn(mp, cp, mp, cp).item() == pytest.approx(0.0, abs=1e-12)


def test_scalar_chain_ratio_is_snr_over_one_plus_snr():
    # equal variances, shifted means: each layer contracts the KL by exactly SNR/(1 + SNR), SNR = g^2 var / s^2
    s, var = 0.8, 1.3
    weights = [torch.tensor([[g]], dtype=torch.float64) for g in (1.5, 0.4, 2.0, 1.0)]
    ch = inf_.noisy_chain([0.7], [[var]], [0.0], [[var]], weights, s)
    v = var
    for k, w_ in enumerate(weights):
        g = w_.item()
        snr = g ** 2 * v / s ** 2
        assert ch.eta[k].item() == pytest.approx(snr / (1 + snr), rel=1e-12)
        assert (ch.kl[k + 1] / ch.kl[k]).item() == pytest.approx(snr / (1 + snr), rel=1e-9)
        v = g ** 2 * v + s ** 2
    assert inf_.sdpi_gaussian(torch.tensor([0.0, 1.0, math.inf])).tolist() == [0.0, 0.5, 1.0]


def test_vector_chain_dpi_and_sdpi_hold_for_random_laws():
    gen = torch.Generator().manual_seed(5)
    for trial in range(6):
        d = 5
        widths = [d, 7, 3, 6]
        weights = [torch.randn(widths[k + 1], widths[k], generator=gen, dtype=torch.float64) / math.sqrt(widths[k])
                   for k in range(3)]
        mp, mq = torch.randn(d, generator=gen, dtype=torch.float64), torch.randn(d, generator=gen, dtype=torch.float64)
        ch = inf_.noisy_chain(mp, _rand_cov(gen, d), mq, _rand_cov(gen, d), weights, 0.3 + trial * 0.1)
        assert (ch.kl[1:] <= ch.kl[:-1] + 1e-12).all()
        assert (ch.kl[1:] <= ch.eta * ch.kl[:-1] * (1 + 1e-9)).all()
        assert ((ch.eta > 0) & (ch.eta < 1)).all()


def test_sdpi_gaussian_layer_is_the_sup_of_the_kl_ratio():
    # numerical maximisation of D(PK||QK)/D(P||Q) over mean shifts and covariance changes of P
    gen = torch.Generator().manual_seed(6)
    d, w, s = 3, 4, 0.9
    cov = _rand_cov(gen, d)
    W = torch.randn(w, d, generator=gen, dtype=torch.float64)
    eta = inf_.sdpi_gaussian_layer(cov, W, s)
    zero = torch.zeros(d, dtype=torch.float64)
    mq, cq = inf_.noisy_linear_layer(zero, cov, W, s)

    def ratio(delta, a=None):
        cp = cov if a is None else cov + a @ a.T
        mp, cpo = inf_.noisy_linear_layer(torch.as_tensor(delta, dtype=torch.float64), cp, W, s)
        return (inf_.kl_mvn(mp, cpo, mq, cq) / inf_.kl_mvn(torch.as_tensor(delta, dtype=torch.float64), cp, zero, cov)).item()

    best = scipy.optimize.minimize(lambda v: -ratio(v), np.ones(d), method="BFGS")
    assert -best.fun == pytest.approx(eta, rel=1e-7)
    for _ in range(40):
        delta = torch.randn(d, generator=gen, dtype=torch.float64)
        a = 0.5 * torch.randn(d, 2, generator=gen, dtype=torch.float64)
        assert ratio(delta, a) <= eta + 1e-12


def test_generalization_bound_closed_form():
    assert inf_.generalization_bound(0.5, 100, 0.5).item() == pytest.approx(0.05, rel=1e-14)
    assert inf_.generalization_bound(2.0, 400, 1.0).item() == pytest.approx(math.sqrt(4.0 / 400), rel=1e-14)
    b = inf_.generalization_bound(torch.tensor([1.0, 4.0]), 10, 1.0)
    assert (b[1] / b[0]).item() == pytest.approx(2.0, rel=1e-14)


def test_bad_input():
    with pytest.raises(ValueError, match="log_joint must be normalised"):
        inf_.mutual_information(torch.tensor([[0.5, 0.2], [0.1, 0.1]]))
    with pytest.raises(ValueError, match="log_joint must not contain NaN"):
        inf_.mutual_information(torch.tensor([[math.nan, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="log_joint must have at least 2 axes"):
        inf_.mutual_information(torch.tensor([0.0]))
    with pytest.raises(ValueError, match="p must be <= 1"):
        inf_.bsc(1.5)
    with pytest.raises(ValueError, match="p must be >= 0"):
        inf_.sdpi_bsc(-0.1)
    with pytest.raises(ValueError, match="snr must be >= 0"):
        inf_.gaussian_channel_mi(-1.0)
    with pytest.raises(ValueError, match="noise_std must be > 0"):
        inf_.sdpi_gaussian_layer(torch.eye(2), torch.ones(3, 2), 0.0)
    with pytest.raises(ValueError, match="cov must be positive definite"):
        inf_.gaussian_mi(torch.zeros(2, 2), torch.ones(3, 2), 1.0)
    with pytest.raises(ValueError, match=r"cov must have shape \(2, 2\)"):
        inf_.gaussian_mi(torch.eye(3), torch.ones(3, 2), 1.0)
    with pytest.raises(ValueError, match="cov_q must be symmetric"):
        inf_.kl_mvn([0.0, 0.0], torch.eye(2), [0.0, 0.0], torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="mean_p and mean_q must have the same shape"):
        inf_.kl_mvn([0.0], [[1.0]], [0.0, 0.0], torch.eye(2))
    with pytest.raises(ValueError, match="log_channel must be normalised"):
        inf_.channel_joint(torch.tensor([0.5, 0.5]).log(), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"weights\[0\] must have shape"):
        inf_.noisy_chain([0.0], [[1.0]], [0.0], [[1.0]], [torch.ones(2, 2)], 1.0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        inf_.generalization_bound(0.1, 0, 1.0)
    with pytest.raises(ValueError, match="mi must be >= 0"):
        inf_.generalization_bound(-0.1, 10, 1.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        inf_.generalization_bound(0.1, 10, 0.0)
