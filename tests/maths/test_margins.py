"""Tests of kllab.maths.margins: CosFace and UNPG logits, pair similarities, the box-and-whisker filter.

Oracles: scipy.stats.norm (the Gaussian fraction outside the fences, and a Monte-Carlo sample),
numpy.percentile (the quartiles), torch.nn.functional.cross_entropy and a from-scratch log-sum-exp
(the losses), scikit-learn's roc_auc_score (the overlap rate), numpy.histogram (the histogram).
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from kllab.maths import margins as M

D = torch.float64

@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 5, generator=g, dtype=D)
    w = torch.randn(6, 5, generator=g, dtype=D)
    y = torch.randint(0, 6, (24,), generator=g)
    return x, w, y


def test_cosine_and_cosface_against_from_scratch(batch):
    x, w, y = batch
    xn = x / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
    wn = w / np.linalg.norm(w.numpy(), axis=1, keepdims=True)
    cos = (xn @ wn.T).numpy()
    assert np.allclose(M.cosine_similarities(x, w).numpy(), cos, atol=1e-12)
    z = M.cosface_logits(x, w, y, scale=30.0, margin=0.35).numpy()
    expected = 30.0 * cos
    expected[np.arange(24), y.numpy()] -= 30.0 * 0.35     # the margin, on the true class only, times s
    assert np.allclose(z, expected, atol=1e-10)
    # invariant to the embeddings' and proxies' norms
    assert torch.allclose(M.cosface_logits(3.0 * x, 0.1 * w, y, 30.0, 0.35), torch.as_tensor(z))


def test_pair_similarities_against_double_loop(batch):
    x, _, y = batch
    xn = torch.nn.functional.normalize(x, dim=1)
    pos, neg = [], []
    for i in range(len(y)):
        for j in range(i + 1, len(y)):
            (pos if y[i] == y[j] else neg).append(float(xn[i] @ xn[j]))
    sp, sn = M.pair_similarities(x, y)
    assert np.allclose(sp.numpy(), pos) and np.allclose(sn.numpy(), neg)
    assert len(sp) + len(sn) == 24 * 23 // 2


@pytest.mark.parametrize("n", [1, 2, 7, 501, 8128])
def test_quantiles_against_numpy(n):
    a = np.random.default_rng(n).standard_t(3, size=n)
    v = torch.as_tensor(a)
    for q in (0.0, 0.25, 0.5, 0.75, 1.0):
        assert M.quantile(v, q) == pytest.approx(np.percentile(a, 100 * q), abs=1e-12)
        assert M.quantile(v, q, interpolation="order") == np.sort(a)[min(int(q * n), n - 1)]   # the public code's


@pytest.mark.parametrize("interpolation", ["linear", "order"])
def test_whisker_bounds_against_numpy(interpolation):
    a = np.random.default_rng(1).standard_t(3, size=501)
    v = torch.as_tensor(a)
    if interpolation == "linear":
        q1, q3 = np.percentile(a, [25, 75])
    else:
        q1, q3 = np.sort(a)[int(0.25 * 501)], np.sort(a)[int(0.75 * 501)]
    for w in (0.0, 1.0, 1.5):
        low, high = M.whisker_bounds(v, w, interpolation=interpolation)
        assert low == pytest.approx(q1 - w * (q3 - q1), abs=1e-12)
        assert high == pytest.approx(q3 + w * (q3 - q1), abs=1e-12)
        kept = M.whisker_filter(v, w, interpolation=interpolation).numpy()
        assert np.array_equal(kept, a[(a >= low) & (a <= high)])
        assert 0 < len(kept) < 501 or w == 0.0


def test_whisker_width_zero_keeps_the_box():
    v = torch.arange(9.0, dtype=D)    # quartiles 2 and 6
    assert M.whisker_filter(v, 0.0).tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_gaussian_fraction_against_scipy():
    for w in (0.0, 0.5, 1.0, 1.5, 3.0):
        z = norm.ppf(0.75) * (1 + 2 * w)
        assert M.gaussian_whisker_removed_fraction(w) == pytest.approx(2 * norm.sf(z), rel=1e-12)
    assert 100 * M.gaussian_whisker_removed_fraction(1.5) == pytest.approx(0.698, abs=5e-4)
    assert 100 * M.gaussian_whisker_removed_fraction(1.0) == pytest.approx(4.30, abs=5e-3)
    assert M.gaussian_whisker_removed_fraction(0.0) == pytest.approx(0.5, rel=1e-12)   # the box holds half


def test_gaussian_fraction_monte_carlo():
    # 2e5 draws (scipy's sampler) of a shifted, scaled Gaussian: the fraction outside the fences agrees
    # with the closed form within 5 binomial standard errors (the fences themselves are estimated too).
    v = torch.as_tensor(norm.rvs(loc=0.3, scale=0.1, size=200_000, random_state=2))
    for w in (1.0, 1.5):
        removed = 1 - M.whisker_mask(v, w).double().mean().item()
        p = M.gaussian_whisker_removed_fraction(w)
        assert abs(removed - p) < 5 * math.sqrt(p * (1 - p) / len(v)) + 3e-4


def test_unpg_logits_and_loss_against_torch_cross_entropy(batch):
    x, w, y = batch
    s, m, width = 16.0, 0.2, 1.5
    z = M.unpg_logits(x, w, y, s, m, width)
    _, sn = M.pair_similarities(x, y)
    a = sn.numpy()
    q1, q3 = np.percentile(a, [25, 75])
    kept = a[(a >= q1 - width * (q3 - q1)) & (a <= q3 + width * (q3 - q1))]
    assert z.shape == (24, 6 + len(kept))
    assert np.allclose(z[:, :6].numpy(), M.cosface_logits(x, w, y, s, m).numpy())
    assert np.allclose(z[:, 6:].numpy(), s * np.broadcast_to(kept, (24, len(kept))))   # the scale applies to S_n' too
    wide = torch.nn.functional.cross_entropy(z, y, reduction="none")
    assert torch.allclose(M.unpg_cross_entropy(x, w, y, s, m, width), wide, atol=1e-12)
    # from scratch: log(sum_c e^{z_c} + sum_k e^{s s_k}) - z_y
    cf = M.cosface_logits(x, w, y, s, m).numpy()
    scratch = np.log(np.exp(cf).sum(1) + np.exp(s * kept).sum()) - cf[np.arange(24), y.numpy()]
    assert np.allclose(wide.numpy(), scratch, atol=1e-10)
    # the negatives raise the loss of every example
    assert (wide > torch.nn.functional.cross_entropy(M.cosface_logits(x, w, y, s, m), y, reduction="none")).all()


def test_unpg_gradients_match_the_wide_form(batch):
    x, w, y = batch
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    M.unpg_cross_entropy(x1, w, y, 8.0, 0.3, 1.0).sum().backward()
    torch.nn.functional.cross_entropy(M.unpg_logits(x2, w, y, 8.0, 0.3, 1.0), y, reduction="sum").backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)


def test_unpg_single_identity_appends_nothing():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=D)
    y = torch.zeros(4, dtype=torch.long)
    assert torch.equal(M.unpg_logits(x, torch.eye(3, dtype=D), y, 10.0, 0.1, 1.5), M.cosface_logits(x, torch.eye(3, dtype=D), y, 10.0, 0.1))


def test_overlap_rate_against_sklearn_auc():
    rng = np.random.default_rng(4)
    sp = np.round(rng.normal(0.5, 0.2, 300), 2)   # rounded: ties between the two sets occur
    sn = np.round(rng.normal(0.2, 0.2, 700), 2)
    auc = roc_auc_score(np.r_[np.ones(300), np.zeros(700)], np.r_[sp, sn])
    assert M.overlap_rate(torch.as_tensor(sp), torch.as_tensor(sn)) == pytest.approx(1 - auc, abs=1e-12)
    brute = ((sn[None, :] > sp[:, None]) + 0.5 * (sn[None, :] == sp[:, None])).mean()
    assert M.overlap_rate(torch.as_tensor(sp), torch.as_tensor(sn)) == pytest.approx(brute, abs=1e-12)


def test_similarity_histogram_against_numpy():
    v = np.random.default_rng(5).uniform(-1, 1, 1000)
    counts, _ = np.histogram(v, bins=40, range=(-1, 1))
    logp = M.similarity_histogram(torch.as_tensor(v), 40)
    assert np.allclose(logp.exp().numpy(), counts / counts.sum())
    smooth = M.similarity_histogram(torch.as_tensor(v), 40, smoothing=0.5)
    assert np.allclose(smooth.exp().numpy(), (counts + 0.5) / (counts.sum() + 20))
    assert M.similarity_histogram(torch.tensor([1.0, -1.0]), 4).exp().tolist() == [0.5, 0.0, 0.0, 0.5]


def test_bad_input(batch):
    x, w, y = batch
    with pytest.raises(ValueError, match="scale must be > 0; got 0.0"):
        M.cosface_logits(x, w, y, 0.0, 0.2)
    with pytest.raises(ValueError, match="margin must be <= 2"):
        M.cosface_logits(x, w, y, 10.0, 2.5)
    with pytest.raises(ValueError, match="width must be >= 0"):
        M.unpg_logits(x, w, y, 10.0, 0.2, -1.0)
    with pytest.raises(ValueError, match="labels must be < the number of proxies 6; got 6"):
        M.cosface_logits(x, w, torch.full((24,), 6), 10.0, 0.2)
    with pytest.raises(ValueError, match=r"labels must have shape \(24,\)"):
        M.cosface_logits(x, w, y[:3], 10.0, 0.2)
    with pytest.raises(ValueError, match="labels must be an integer"):
        M.pair_similarities(x, y.double())
    with pytest.raises(ValueError, match="same feature dimension; got 5 and 4"):
        M.cosine_similarities(x, w[:, :4])
    with pytest.raises(ValueError, match="same dtype"):
        M.cosine_similarities(x, w.float())
    with pytest.raises(ValueError, match="zero row"):
        M.normalize(torch.zeros(2, 3), "embeddings")
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="embeddings must not contain NaN"):
        M.cosine_similarities(bad, w)
    with pytest.raises(ValueError, match="2-D"):
        M.cosine_similarities(x[0], w)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        M.whisker_bounds(x[:, 0], 1.5, interpolation="cubic")
    with pytest.raises(ValueError, match="q must be <= 1"):
        M.quantile(x[:, 0], 1.5)
    with pytest.raises(ValueError, match="values must lie in"):
        M.similarity_histogram(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="1-D tensor"):
        M.overlap_rate(torch.zeros(2, 2), torch.zeros(3))
