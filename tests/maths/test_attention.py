"""kllab.maths.attention: the bigram source's floor, the tiny attention model, its diagnostics, LR sensitivity."""

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from kllab.maths import attention as A
from kllab.maths.optim import Adam


@pytest.fixture(autouse=True)
def one_thread():
    # tiny tensors in a tight loop: several threads only add hand-off costs (tens of times slower on 2 busy cores)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _source(V=4, conc=0.5, seed=0):
    return A.random_bigram(V, conc, torch.Generator().manual_seed(seed))


def test_random_bigram_rows_are_distributions():
    logP = _source(6)
    assert logP.shape == (6, 6) and logP.dtype == torch.float64
    assert torch.allclose(logP.exp().sum(-1), torch.ones(6, dtype=torch.float64), atol=1e-12)
    # concentration moves the entropy rate: peaked rows at small concentration, near log V at large
    g = torch.Generator().manual_seed(1)
    assert A.entropy_rate(A.random_bigram(8, 0.05, g)) < A.entropy_rate(A.random_bigram(8, 100.0, g)) < math.log(8)
    assert A.entropy_rate(A.random_bigram(8, 100.0, g)) > math.log(8) - 0.05


def test_stationary_distribution_against_numpy_eigenvector():
    logP = _source(5)
    P = logP.exp().numpy()
    w, vecs = np.linalg.eig(P.T)
    v = np.real(vecs[:, np.argmin(abs(w - 1))])
    pi = A.stationary_distribution(logP).numpy()
    np.testing.assert_allclose(pi, v / v.sum(), atol=1e-12)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)


def test_entropy_rate_against_enumeration_of_all_sequences():
    # Oracle: for a stationary chain H(X_1..X_n) - H(X_1..X_{n-1}) = H exactly; enumerate all V^n sequences.
    logP = _source(3, 0.7, seed=2)
    P, pi = logP.exp().numpy(), A.stationary_distribution(logP).numpy()

    def block_entropy(n):
        probs = [pi[s[0]] * np.prod([P[a, b] for a, b in zip(s, s[1:])]) for s in itertools.product(range(3), repeat=n)]
        probs = np.array(probs)
        assert abs(probs.sum() - 1) < 1e-12
        return scipy.stats.entropy(probs)

    assert A.entropy_rate(logP) == pytest.approx(block_entropy(6) - block_entropy(5), abs=1e-12)
    assert A.entropy_rate(logP) == pytest.approx((block_entropy(6) - scipy.stats.entropy(pi)) / 5, abs=1e-12)


def test_sample_bigram_frequencies_match_the_chain():
    logP = _source(4, 1.0, seed=3)
    x = A.sample_bigram(logP, 4000, 20, torch.Generator().manual_seed(0))
    assert x.shape == (4000, 20) and x.dtype == torch.long
    counts = torch.zeros(4, 4, dtype=torch.float64)
    counts.index_put_((x[:, :-1].flatten(), x[:, 1:].flatten()), torch.ones(4000 * 19, dtype=torch.float64),
                      accumulate=True)
    freq = counts / counts.sum(-1, keepdim=True)
    assert (freq - logP.exp()).abs().max() < 0.02          # ~76000 transitions: sd about 0.004 per entry
    first = torch.bincount(x[:, 0], minlength=4).double() / 4000
    assert (first - A.stationary_distribution(logP)).abs().max() < 0.03


def test_layer_norm_against_torch():
    x = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0)) * 4 + 2
    assert torch.allclose(A.layer_norm(x), F.layer_norm(x, (7,), eps=1e-6), atol=1e-5)
    # its output has norm sqrt(d) (up to eps): the basis of the qk-layernorm bound
    assert torch.allclose(A.layer_norm(x).norm(dim=-1), torch.full((3, 5), math.sqrt(7)), atol=1e-4)


def test_attention_entropy_against_scipy():
    a = torch.softmax(torch.randn(4, 6, 6, generator=torch.Generator().manual_seed(0)).double()
                      .masked_fill(torch.triu(torch.ones(6, 6, dtype=torch.bool), 1), float("-inf")), -1)
    ours = A.attention_entropy(a)
    ref = scipy.stats.entropy(a.numpy(), axis=-1)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)
    assert torch.all(ours[:, 0] == 0)                                   # one key: entropy 0
    assert torch.all(ours <= torch.log(torch.arange(1, 7, dtype=torch.float64)) + 1e-12)   # <= log(#keys)


def test_expected_cross_entropy_is_entropy_plus_kl():
    logP = _source(5)
    g = torch.Generator().manual_seed(0)
    logq = torch.log_softmax(torch.randn(7, 3, 5, generator=g, dtype=torch.float64), -1)
    prev = torch.randint(0, 5, (7, 3), generator=g)
    ce, h = A.expected_cross_entropy(logq, logP, prev)
    kl = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=logP[prev]),
                                           torch.distributions.Categorical(logits=logq))
    assert torch.allclose(ce - h, kl, atol=1e-12)
    assert torch.all(ce >= h)
    assert torch.allclose(h, torch.distributions.Categorical(logits=logP[prev]).entropy(), atol=1e-12)


def _reference_forward(model, tokens, r):
    # From scratch for model r, with torch.nn.functional only.
    W = {k: v[r].detach() for k, v in model.params.items()}
    d = model.width
    ln = lambda t: F.layer_norm(t, (t.shape[-1],), eps=1e-6)  # noqa: E731
    x = W["emb"][tokens]
    h = ln(x)
    q, k, v = h @ W["wq"], h @ W["wk"], h @ W["wv"]
    if bool(model.qk_norm[r]):
        q, k = ln(q), ln(k)
    s = q @ k.transpose(-1, -2) / math.sqrt(d)
    s = s.masked_fill(torch.triu(torch.ones(s.shape[-1], s.shape[-1], dtype=torch.bool), 1), float("-inf"))
    x = x + torch.softmax(s, -1) @ v @ W["wo"]
    x = x + torch.relu(ln(x) @ W["w1"]) @ W["w2"]
    return ln(x) @ W["wu"], s


def test_tiny_attention_matches_a_from_scratch_forward():
    g = torch.Generator().manual_seed(0)
    model = A.TinyAttention(3, 6, 8, 5, [False, True, False], g, same_init=False)
    tokens = torch.randint(0, 6, (4, 5), generator=g)
    z, logits, a = model.forward(tokens)
    assert z.shape == (3, 4, 5, 6) and logits.shape == (3, 4, 5, 5)
    for r in range(3):
        zr, sr = _reference_forward(model, tokens, r)
        assert torch.allclose(z[r], zr, atol=1e-4)
        assert torch.allclose(logits[r], sr, atol=1e-4)
    # query t attends to keys <= t only
    assert torch.all(a[..., torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)] == 0)


def test_qk_layernorm_bounds_the_logits_and_without_it_they_grow():
    g = torch.Generator().manual_seed(0)
    d = 8
    model = A.TinyAttention(2, 5, d, 6, [True, False], g)
    with torch.no_grad():
        for k in ("wq", "wk"):
            model.params[k].mul_(30.0)                      # what large steps do to W_Q and W_K
    tokens = torch.randint(0, 5, (16, 6), generator=g)
    _, logits, _ = model.forward(tokens)
    finite = logits.masked_fill(torch.triu(torch.ones(6, 6, dtype=torch.bool), 1), 0.0).abs()
    assert A.qk_logit_bound(d) == math.sqrt(d)
    assert finite[0].max() <= math.sqrt(d) + 1e-4
    assert finite[1].max() > 10 * math.sqrt(d)
    # the bound is attained: with W_K = W_Q, a query against its own key gives LN(q).LN(q)/sqrt(d) = sqrt(d)
    with torch.no_grad():
        model.params["wk"].copy_(model.params["wq"])
    _, logits, _ = model.forward(tokens)
    diag = torch.diagonal(logits[0], dim1=-2, dim2=-1)
    assert torch.allclose(diag, torch.full_like(diag, math.sqrt(d)), atol=1e-3)


def test_adam_step_per_model_equals_one_adam_per_model():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 10, 4, generator=g)
    w0 = torch.randn(3, 4, 2, generator=g)
    lrs = torch.tensor([0.001, 0.03, 0.5])
    stacked = w0.clone().requires_grad_(True)
    opt = Adam([stacked], lr=1.0, betas=(0.9, 0.95))
    singles = [w0[r].clone().requires_grad_(True) for r in range(3)]
    opts = [Adam([singles[r]], lr=float(lrs[r]), betas=(0.9, 0.95)) for r in range(3)]
    for _ in range(30):
        opt.zero_grad()
        ((torch.bmm(x, stacked) - 1) ** 2).sum().backward()
        A.adam_step_per_model(opt, lrs)
        for r in range(3):
            opts[r].zero_grad()
            ((x[r] @ singles[r] - 1) ** 2).sum().backward()
            opts[r].step()
    for r in range(3):
        assert torch.allclose(stacked[r], singles[r], atol=1e-5, rtol=1e-5), r
    # a frozen model does not move, and weight decay shrinks by the given factor
    before = stacked.detach().clone()
    opt.zero_grad()
    ((torch.bmm(x, stacked) - 1) ** 2).sum().backward()
    A.adam_step_per_model(opt, torch.zeros(3), frozen=torch.tensor([True, False, False]), weight_decay=0.1)
    assert torch.equal(stacked[0], before[0])
    assert torch.allclose(stacked[1], 0.9 * before[1])


def test_training_keeps_ce_above_the_floor_and_bounds_qk_logits():
    logP = _source(6, 0.3)
    hist = None
    for _, hist in A.train_side_by_side(logP, [0.01, 0.3, 0.01, 0.3], [False, False, True, True], width=8,
                                        length=6, steps=40, batch=8, seed=0, eval_every=20, n_eval=32):
        pass
    assert hist["step"] == [0, 20, 40]
    assert torch.all(hist["loss"] >= hist["floor"])
    assert hist["max_logit"][:, 2:].max() <= math.sqrt(8) + 1e-4
    assert hist["loss"][-1].max() < hist["init_loss"].min()             # every run learned something


def test_z_loss_pulls_log_z_towards_zero():
    logP = _source(6, 0.3)
    for _, hist in A.train_side_by_side(logP, [0.1, 0.1], [True, True], z_loss=[0.0, 1e-2], width=8, length=6,
                                        steps=60, batch=8, seed=0, eval_every=60, n_eval=32):
        pass
    assert hist["log_z"][-1, 1].abs() < hist["log_z"][-1, 0].abs()


def test_lr_sensitivity_closed_form():
    # losses 2, 5 (clipped to L0 = 4), inf (diverged: L0); floor 1 -> mean(1, 3, 3) = 7/3
    assert A.lr_sensitivity([2.0, 5.0, float("inf")], 4.0, 1.0) == pytest.approx(7 / 3)
    assert A.lr_sensitivity([2.0, 3.0], [4.0, 2.5], 2.0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="best must be <="):
        A.lr_sensitivity([2.0, 3.0], 4.0, 2.5)


@pytest.mark.parametrize("call, match", [
    (lambda: A.random_bigram(1, 0.5, torch.Generator()), "vocab must be >= 2"),
    (lambda: A.random_bigram(4, 0.0, torch.Generator()), "concentration must be >= 0.01"),
    (lambda: A.random_bigram(4, 0.5, None), "generator must be a torch.Generator"),
    (lambda: A.entropy_rate(torch.zeros(3, 3)), "logP must"),
    (lambda: A.entropy_rate(torch.zeros(3, 4)), "square"),
    (lambda: A.sample_bigram(_source(), 0, 5, torch.Generator()), "n_seq must be >= 1"),
    (lambda: A.attention_entropy(torch.full((2, 3), 0.5)), "summing to 1"),
    (lambda: A.attention_entropy(torch.tensor([[float("nan"), 1.0]])), "NaN"),
    (lambda: A.expected_cross_entropy(torch.zeros(2, 4), _source(), torch.zeros(2, dtype=torch.long)), "logq"),
    (lambda: A.expected_cross_entropy(torch.full((2, 4), -math.log(4)), _source(), torch.zeros(3, dtype=torch.long)),
     "prev must be int64"),
    (lambda: A.qk_logit_bound(1), "d_head must be >= 2"),
    (lambda: A.TinyAttention(2, 4, 8, 5, [True], torch.Generator()), "qk_norm must be 2 bools"),
    (lambda: A.TinyAttention(1, 4, 8, 5, [True], torch.Generator()).forward(torch.zeros(2, 4, dtype=torch.long)),
     r"tokens must be int64 of shape \(batch, 5\)"),
    (lambda: next(A.train_side_by_side(_source(), [0.0], [True], width=8, length=5, steps=2, batch=2, seed=0)),
     "lrs must be >= 1e-06"),
    (lambda: next(A.train_side_by_side(_source(), [0.1], [True], z_loss=[0.1, 0.2], width=8, length=5, steps=2,
                                       batch=2, seed=0)), "z_loss must be one number or 1 numbers"),
    (lambda: next(A.train_side_by_side(_source(), [0.1], [True], width=8, length=5, steps=0, batch=2, seed=0)),
     "steps must be >= 1"),
    (lambda: A.lr_sensitivity([], 1.0, 0.0), "final_loss must hold"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
