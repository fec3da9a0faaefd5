"""Plackett–Luce and PLD: brute force over permutations, Gumbel Monte Carlo, autograd, closed limits, bad input."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from kllab.maths import ranking as R

pytestmark = pytest.mark.usefixtures("float64")


def logits(*shape, seed=0, scale=2.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def all_perms(c):
    return torch.tensor(list(itertools.permutations(range(c))))


def test_probabilities_of_all_rankings_sum_to_one():
    s = logits(5, seed=1)
    perms = all_perms(5)
    total = R.plackett_luce_log_prob(s.expand(len(perms), 5), perms).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-12)


def test_log_prob_matches_the_product_of_stagewise_softmaxes():
    s = logits(6, seed=2)
    r = torch.tensor([3, 0, 5, 1, 2, 4])
    manual, remaining = 0.0, list(range(6))
    for cls in r.tolist():
        manual += s[cls].item() - torch.logsumexp(s[remaining], 0).item()
        remaining.remove(cls)
    assert R.plackett_luce_log_prob(s, r).item() == pytest.approx(manual, rel=1e-12)


def test_first_place_marginal_is_the_softmax():
    s = logits(4, seed=3)
    perms = all_perms(4)
    p = R.plackett_luce_log_prob(s.expand(24, 4), perms).exp()
    marginal = torch.zeros(4).index_add_(0, perms[:, 0], p)
    torch.testing.assert_close(marginal, torch.softmax(s, 0), rtol=0, atol=1e-12)


def test_gumbel_sampling_matches_the_exact_probabilities():
    s = torch.tensor([1.0, 0.0, -0.5, 0.5])
    n = 200_000
    draws = R.sample_rankings(s, n, generator=torch.Generator().manual_seed(0))
    perms = all_perms(4)
    exact = R.plackett_luce_log_prob(s.expand(24, 4), perms).exp()
    codes = (draws * torch.tensor([64, 16, 4, 1])).sum(-1)
    freq = torch.stack([(codes == (p * torch.tensor([64, 16, 4, 1])).sum()).double().mean() for p in perms])
    se = (exact * (1 - exact) / n).sqrt()
    assert ((freq - exact).abs() <= 5 * se + 1e-12).all()


def test_stage_nll_is_nonnegative_and_the_last_place_is_free():
    s = logits(7, 9, seed=4)
    r = torch.stack([torch.randperm(9, generator=torch.Generator().manual_seed(i)) for i in range(7)])
    nll = R.stage_nll(s, r)
    assert nll.shape == (7, 9)
    assert (nll >= -1e-12).all()
    assert (nll[:, -1] == 0).all()


def test_stage_nll_is_stable_for_logits_far_apart():
    s = torch.tensor([0.0, -900.0, -1800.0, 5.0])   # exp of the gaps underflows in float64
    r = torch.tensor([3, 0, 1, 2])
    expected = torch.tensor([math.log1p(math.exp(-5.0)), 0.0, 0.0, 0.0])
    nll = R.stage_nll(s, r)
    assert torch.isfinite(nll).all()
    torch.testing.assert_close(nll, expected, rtol=0, atol=1e-12)
    # in a batch, only the row that needs the slow path takes it; the other keeps its exact value
    ordinary = logits(4, seed=24)
    both = R.stage_nll(torch.stack([s, ordinary]), torch.stack([r, r]))
    torch.testing.assert_close(both[0], expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(both[1], R.stage_nll(ordinary, r), rtol=0, atol=1e-12)
    manual = torch.stack([torch.logsumexp(ordinary[r[k:]], 0) - ordinary[r[k]] for k in range(4)])
    torch.testing.assert_close(both[1], manual, rtol=0, atol=1e-12)


def test_teacher_ranking_puts_the_label_first_then_sorts():
    t = torch.tensor([[0.1, 2.0, -1.0, 0.7], [3.0, 1.0, 2.0, 0.0]])
    y = torch.tensor([2, 0])
    assert R.teacher_ranking(t, y).tolist() == [[2, 1, 3, 0], [0, 2, 1, 3]]
    assert R.teacher_ranking(t).tolist() == [[1, 3, 0, 2], [0, 2, 1, 3]]


def test_pld_with_unit_first_weight_is_cross_entropy():
    t, s = logits(20, 10, seed=5), logits(20, 10, seed=6)
    y = torch.randint(0, 10, (20,), generator=torch.Generator().manual_seed(7))
    e1 = torch.zeros(10)
    e1[0] = 1.0
    torch.testing.assert_close(R.pld_loss(t, s, y, weights=e1), F.cross_entropy(s, y, reduction="none"),
                               rtol=0, atol=1e-12)


def test_pld_first_term_is_teacher_weighted_cross_entropy():
    t, s = logits(8, 6, seed=8), logits(8, 6, seed=9)
    y = torch.arange(8) % 6
    r = R.teacher_ranking(t, y)
    alpha = R.rank_weights(t, r, 2.0)
    first = alpha[:, 0] * R.stage_nll(s, r)[:, 0]
    torch.testing.assert_close(first, torch.softmax(t / 2.0, -1)[torch.arange(8), y] * F.cross_entropy(s, y, reduction="none"))


def test_pld_is_translation_invariant_in_both_sets_of_logits():
    t, s = logits(10, 7, seed=10), logits(10, 7, seed=11)
    y = torch.arange(10) % 7
    shift = 5 * torch.randn(10, 1, generator=torch.Generator().manual_seed(12))
    base = R.pld_loss(t, s, y, 1.5)
    torch.testing.assert_close(R.pld_loss(t, s + shift, y, 1.5), base, rtol=0, atol=1e-10)
    torch.testing.assert_close(R.pld_loss(t + shift, s, y, 1.5), base, rtol=0, atol=1e-10)


def test_pld_is_convex_hessian_psd():
    for seed in range(20):
        t, s0 = logits(6, seed=100 + seed), logits(6, seed=200 + seed)
        y = torch.tensor(seed % 6)
        h = torch.autograd.functional.hessian(lambda s: R.pld_loss(t, s, y, 0.7), s0)
        eig = torch.linalg.eigvalsh(h)
        assert eig.min().item() >= -1e-10
        # translation invariance: the all-ones direction is flat
        assert (h @ torch.ones(6)).abs().max().item() < 1e-10


def test_pld_gradient_matches_autograd_and_sums_to_zero():
    t, s = logits(12, 8, seed=13), logits(12, 8, seed=14).requires_grad_()
    y = torch.arange(12) % 8
    R.pld_loss(t, s, y, 3.0).sum().backward()
    r = R.teacher_ranking(t, y)
    g = R.pld_gradient(s.detach(), r, R.rank_weights(t, r, 3.0))
    torch.testing.assert_close(g, s.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(g.sum(-1), torch.zeros(12), rtol=0, atol=1e-12)


def test_rank_weight_limits():
    t = logits(5, 6, seed=15)
    r = R.teacher_ranking(t)
    cold = R.rank_weights(t, r, 1e-4)
    torch.testing.assert_close(cold[:, 0], torch.ones(5), rtol=0, atol=1e-9)
    hot = R.rank_weights(t, r, 1e8)
    torch.testing.assert_close(hot, torch.full((5, 6), 1 / 6), rtol=0, atol=1e-7)


def test_weight_spreads_down_the_teachers_list_as_temperature_grows():
    t = logits(50, 10, seed=16)
    r = R.teacher_ranking(t)
    taus = torch.logspace(-1.5, 2, 40).tolist()
    top_k = torch.stack([R.rank_weights(t, r, tau).cumsum(-1) for tau in taus])   # (taus, 50, 10)
    assert (top_k.diff(dim=0) <= 1e-12).all()   # every top-k mass falls with tau
    # ... and really moves: from nearly all on place 1 to about 1/C there, so a tau that is ignored cannot pass
    assert top_k[0, :, 0].mean() > 0.9 and (top_k[-1, :, 0] < 0.2).all()


def test_top_k_mass_derivative_is_the_softmax_weighted_mean_logit_gap():
    # d M_k / d(1/tau) = M_k (E_{p | top k}[t] - E_p[t]), with softmax-weighted means (not the plain mean of the top k)
    t = logits(8, 6, seed=21)
    r = R.teacher_ranking(t)
    beta, h = 0.8, 1e-6
    mass = lambda b: R.rank_weights(t, r, 1 / b).cumsum(-1)
    numeric = (mass(beta + h) - mass(beta - h)) / (2 * h)
    p = torch.softmax(beta * t, -1).gather(-1, r)               # by place
    ordered = t.gather(-1, r)
    m_k = p.cumsum(-1)
    top_mean = (p * ordered).cumsum(-1) / m_k
    closed = m_k * (top_mean - (p * ordered).sum(-1, keepdim=True))
    torch.testing.assert_close(numeric, closed, rtol=0, atol=1e-7)
    plain = m_k * (ordered.cumsum(-1) / torch.arange(1, 7) - (p * ordered).sum(-1, keepdim=True))
    assert (plain - numeric).abs().max() > 1e-2                  # the plain mean would be wrong


def test_pld_hessian_is_the_weighted_sum_of_stage_covariances():
    # H = sum_k alpha_k (diag q_k - q_k q_k^T), q_k the softmax of stage k over the classes still unplaced
    for seed in range(5):
        t, s0 = logits(6, seed=300 + seed), logits(6, seed=400 + seed)
        y = torch.tensor(seed % 6)
        h = torch.autograd.functional.hessian(lambda s: R.pld_loss(t, s, y, 1.3), s0)
        r = R.teacher_ranking(t, y)
        a = R.rank_weights(t, r, 1.3)
        closed = torch.zeros(6, 6)
        for k in range(6):
            q = torch.zeros(6)
            q[r[k:]] = torch.softmax(s0[r[k:]], 0)
            closed += a[k] * (torch.diag(q) - torch.outer(q, q))
        torch.testing.assert_close(h, closed, rtol=0, atol=1e-12)
        assert torch.linalg.eigvalsh(h)[-1] > 1e-3              # not the zero matrix (which is PSD too)


def test_pld_gradient_with_weight_only_on_the_first_place_is_the_cross_entropy_gradient():
    # alpha = e1 puts log(0) = -inf into the log-space accumulation: the gradient must still be softmax - onehot
    s = logits(7, 5, seed=22)
    y = torch.arange(7) % 5
    r = R.teacher_ranking(logits(7, 5, seed=23), y)
    e1 = torch.zeros(7, 5)
    e1[:, 0] = 1.0
    g = R.pld_gradient(s, r, e1)
    torch.testing.assert_close(g, torch.softmax(s, -1) - F.one_hot(y, 5).double(), rtol=0, atol=1e-12)


def test_uniform_weights_give_listmle_over_c():
    t, s = logits(4, 5, seed=17), logits(4, 5, seed=18)
    y = torch.tensor([0, 1, 2, 3])
    listmle = -R.plackett_luce_log_prob(s, R.teacher_ranking(t, y))
    torch.testing.assert_close(R.pld_loss(t, s, y, weights=torch.full((5,), 0.2)), listmle / 5)
    torch.testing.assert_close(R.pld_loss(t, s, y, 1e9), listmle / 5, rtol=1e-6, atol=1e-8)


def test_shape_contract():
    t, s = logits(2, 3, 5, seed=19), logits(2, 3, 5, seed=20)
    y = torch.zeros(2, 3, dtype=torch.long)
    assert R.pld_loss(t, s, y).shape == (2, 3)
    r = R.teacher_ranking(t, y)
    assert r.shape == (2, 3, 5) and R.stage_nll(s, r).shape == (2, 3, 5)
    assert R.plackett_luce_log_prob(s, r).shape == (2, 3)
    assert R.sample_rankings(s, 4).shape == (4, 2, 3, 5)


def test_bad_input():
    t, s = logits(3, 4), logits(3, 4, seed=1)
    y = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="temperature must be > 0; got 0.0"):
        R.pld_loss(t, s, y, 0.0)
    with pytest.raises(ValueError, match="target must hold classes in 0..3"):
        R.pld_loss(t, s, torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="target must have shape"):
        R.pld_loss(t, s, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="dtype torch.long"):
        R.pld_loss(t, s, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="logits_teacher and logits_student must have the same shape"):
        R.pld_loss(t, logits(3, 5), y)
    with pytest.raises(ValueError, match="logits_student must not contain NaN"):
        R.pld_loss(t, torch.full((3, 4), math.nan), y)
    with pytest.raises(ValueError, match="logits_student must be finite"):
        R.pld_loss(t, torch.full((3, 4), -math.inf), y)
    with pytest.raises(ValueError, match="ranking must hold a permutation"):
        R.stage_nll(s, torch.tensor([[0, 0, 1, 2]] * 3))
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        R.pld_loss(t, s, y, weights=torch.tensor([1.0, -1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        R.sample_rankings(s, 0)
