"""Divergences: closed forms, oracles (scipy, torch), properties, shapes, inf cases, bad input."""

import math

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.special
import scipy.stats
import torch
import torch.nn.functional as F

from kllab.maths import divergences as D

pytestmark = pytest.mark.usefixtures("float64")
INF = math.inf


def random_logp(*shape, seed=0, zeros=0):
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(*shape, generator=g)
    if zeros:
        logits[..., :zeros] = -INF
    return torch.log_softmax(logits, -1)


@pytest.fixture
def pq():
    return random_logp(5, 7, seed=1), random_logp(5, 7, seed=2)


def test_kl_matches_scipy_rel_entr(pq):
    logp, logq = pq
    expected = scipy.special.rel_entr(logp.exp().numpy(), logq.exp().numpy()).sum(-1)
    np.testing.assert_allclose(D.kl(logp, logq).numpy(), expected, rtol=1e-12)


def test_kl_matches_scipy_entropy_with_qk(pq):
    logp, logq = pq
    expected = scipy.stats.entropy(logp.exp().numpy(), logq.exp().numpy(), axis=-1)
    np.testing.assert_allclose(D.kl(logp, logq).numpy(), expected, rtol=1e-10)


def test_kl_matches_torch_kl_div_with_arguments_swapped(pq):
    logp, logq = pq
    # torch's F.kl_div(input, target) is KL(target || input): the model goes first.
    torch_value = F.kl_div(logq, logp, reduction="none", log_target=True).sum(-1)
    torch.testing.assert_close(D.kl(logp, logq), torch_value)


def test_kl_matches_torch_distributions_categorical(pq):
    logp, logq = pq
    cat = torch.distributions.Categorical
    expected = torch.distributions.kl_divergence(cat(logits=logp), cat(logits=logq))
    torch.testing.assert_close(D.kl(logp, logq), expected)


def test_reverse_is_swap(pq):
    logp, logq = pq
    torch.testing.assert_close(D.kl(logp, logq, direction="reverse"), D.kl(logq, logp))


def test_kl_closed_form_two_outcomes():
    p = torch.tensor([0.5, 0.5]).log()
    q = torch.tensor([0.9, 0.1]).log()
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert D.kl(p, q).item() == pytest.approx(expected, rel=1e-14)


def test_shape_contract(pq):
    logp, logq = pq
    assert D.kl(logp, logq).shape == (5,)
    assert D.js(logp, logq).shape == (5,)
    assert D.total_variation(logp, logq).shape == (5,)
    assert D.hellinger(logp, logq).shape == (5,)
    assert D.alpha_divergence(logp, logq, 0.3).shape == (5,)
    assert D.renyi(logp, logq, 2.0).shape == (5,)
    assert D.f_divergence(logp, logq, "js").shape == (5,)
    assert D.entropy(logp).shape == (5,)
    batch = random_logp(2, 3, 4, seed=3)
    assert D.kl(batch, batch).shape == (2, 3)


@pytest.mark.parametrize("name", ["forward", "reverse", "js", "tv", "hellinger"])
def test_nonnegative_and_zero_iff_equal(name, pq):
    logp, logq = pq
    d = D.divergence(logp, logq, name)
    assert (d > 0).all()
    assert torch.allclose(D.divergence(logp, logp, name), torch.zeros(5), atol=1e-7)


def test_js_bounded_by_log2_and_symmetric(pq):
    logp, logq = pq
    assert (D.js(logp, logq) <= math.log(2)).all()
    torch.testing.assert_close(D.js(logp, logq), D.js(logq, logp))
    disjoint = D.js(torch.tensor([0.0, -INF]), torch.tensor([-INF, 0.0]))
    assert disjoint.item() == pytest.approx(math.log(2), rel=1e-12)


def test_js_matches_scipy(pq):
    logp, logq = pq
    expected = scipy.spatial.distance.jensenshannon(logp.exp().numpy(), logq.exp().numpy(), axis=-1) ** 2
    np.testing.assert_allclose(D.js(logp, logq).numpy(), expected, rtol=1e-8)


def test_pinsker_and_hellinger_tv_bounds(pq):
    logp, logq = pq
    tv = D.total_variation(logp, logq)
    assert (tv <= torch.sqrt(0.5 * D.kl(logp, logq))).all()  # Pinsker
    h = D.hellinger(logp, logq)
    assert (h ** 2 <= tv + 1e-12).all() and (tv <= math.sqrt(2) * h + 1e-12).all()


def test_disjoint_support_gives_inf_not_nan():
    p = torch.tensor([0.0, -INF])
    q = torch.tensor([-INF, 0.0])
    assert D.kl(p, q).item() == INF
    assert D.kl(p, q, direction="reverse").item() == INF
    assert D.total_variation(p, q).item() == 1.0
    assert D.hellinger(p, q).item() == 1.0
    assert D.f_divergence(p, q, "forward").item() == INF
    assert D.f_divergence(p, q, "chi2").item() == INF
    assert D.renyi(p, q, 2.0).item() == INF
    assert D.alpha_divergence(p, q, 2.0).item() == INF


def test_zero_mass_in_both_contributes_zero():
    p = torch.tensor([-INF, math.log(0.5), math.log(0.5)])
    q = torch.tensor([-INF, math.log(0.25), math.log(0.75)])
    expected = 0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75)
    assert D.kl(p, q).item() == pytest.approx(expected, rel=1e-12)
    for name in ("js", "tv", "hellinger"):
        assert math.isfinite(D.divergence(p, q, name).item())


def test_p_zero_q_positive_is_finite_forward_inf_reverse():
    p = torch.tensor([-INF, 0.0])
    q = torch.tensor([math.log(0.5), math.log(0.5)])
    assert D.kl(p, q).item() == pytest.approx(math.log(2))
    assert D.kl(p, q, direction="reverse").item() == INF


def test_alpha_family_limits_and_hellinger(pq):
    logp, logq = pq
    torch.testing.assert_close(D.alpha_divergence(logp, logq, 1.0), D.kl(logp, logq))
    torch.testing.assert_close(D.alpha_divergence(logp, logq, 0.0), D.kl(logq, logp))
    torch.testing.assert_close(D.alpha_divergence(logp, logq, 1 - 1e-6), D.kl(logp, logq), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(D.alpha_divergence(logp, logq, 1e-6), D.kl(logq, logp), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(D.alpha_divergence(logp, logq, 0.5), 4 * D.hellinger(logp, logq) ** 2)


def test_renyi_limits_and_order(pq):
    logp, logq = pq
    torch.testing.assert_close(D.renyi(logp, logq, 1 + 1e-7), D.kl(logp, logq), rtol=1e-5, atol=1e-7)
    # Renyi divergence is non-decreasing in its order.
    orders = [0.25, 0.5, 1.0, 2.0, 4.0]
    values = torch.stack([D.renyi(logp, logq, a) for a in orders])
    assert (values[1:] >= values[:-1] - 1e-12).all()
    torch.testing.assert_close(D.renyi(logp, logq, 0.5), -2 * torch.log(1 - D.hellinger(logp, logq) ** 2))


@pytest.mark.parametrize("name", ["forward", "reverse", "js", "tv", "hellinger2"])
def test_f_divergence_matches_named(name, pq):
    logp, logq = pq
    expected = {"forward": D.kl(logp, logq), "reverse": D.kl(logq, logp), "js": D.js(logp, logq),
                "tv": D.total_variation(logp, logq), "hellinger2": D.hellinger(logp, logq) ** 2}[name]
    torch.testing.assert_close(D.f_divergence(logp, logq, name), expected)


def test_f_divergence_weights_are_r2_fpp():
    r = torch.linspace(0.1, 5.0, 50).requires_grad_(True)
    for name, fd in D.F_DIVERGENCES.items():
        if fd.weight is None:
            continue
        (g1,) = torch.autograd.grad(fd.f(r).sum(), r, create_graph=True)
        (g2,) = torch.autograd.grad(g1.sum(), r)
        torch.testing.assert_close(r.detach() ** 2 * g2, fd.weight(r.detach()), msg=name)


def test_kl_gaussian_matches_formula_and_monte_carlo():
    mp, sp, mq, sq = 0.3, 1.2, -0.5, 0.7
    formula = math.log(sq / sp) + (sp ** 2 + (mp - mq) ** 2) / (2 * sq ** 2) - 0.5
    assert D.kl_gaussian(mp, sp, mq, sq).item() == pytest.approx(formula, rel=1e-12)
    g = torch.Generator().manual_seed(0)
    x = mp + sp * torch.randn(400_000, generator=g)
    p, q = torch.distributions.Normal(mp, sp), torch.distributions.Normal(mq, sq)
    mc = (p.log_prob(x) - q.log_prob(x)).mean().item()
    assert mc == pytest.approx(formula, abs=0.01)  # MC standard error here is about 0.002


def test_kl_from_logits_matches_torch_where_torch_is_finite():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 50, generator=g), torch.randn(8, 50, generator=g)
    T = 3.0
    ref = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="none", log_target=True).sum(-1)
    torch.testing.assert_close(D.kl_from_logits(t, s, T), ref)
    torch.testing.assert_close(D.kl_from_logits(t, s, T, direction="reverse"), D.kl_from_logits(s, t, T))


def test_kl_from_logits_is_correct_where_torch_gives_nan():
    t = torch.tensor([[1.0, 2.0, -INF], [0.0, -INF, 1.0]])
    s = torch.tensor([[0.5, 1.0, -INF], [0.0, 0.0, 0.0]])
    torch_value = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), reduction="none", log_target=True).sum(-1)
    assert torch.isnan(torch_value).any()  # the case this function exists for
    ours = D.kl_from_logits(t, s)
    assert not torch.isnan(ours).any()
    torch.testing.assert_close(ours, D.kl(torch.log_softmax(t, -1), torch.log_softmax(s, -1)))
    # Student masks an outcome the teacher uses: +inf, not nan.
    assert D.kl_from_logits(torch.tensor([0.0, 0.0]), torch.tensor([0.0, -INF])).item() == INF


def test_kl_from_logits_float32_big_batch_no_nan():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(4, 1000, generator=g, dtype=torch.float32)
    s = torch.randn(4, 1000, generator=g, dtype=torch.float32)
    t[:, :10] = -INF
    s[:, :10] = -INF
    out = D.kl_from_logits(t, s, 2.0)
    assert out.dtype == torch.float32 and torch.isfinite(out).all() and (out >= 0).all()


@pytest.mark.parametrize("call, message", [
    (lambda p, q: D.kl(p, q, direction="sideways"), "direction must be one of 'forward', 'reverse'; got 'sideways'"),
    (lambda p, q: D.kl_from_logits(p, q, temperature=0.0), "temperature must be > 0; got 0.0"),
    (lambda p, q: D.kl_from_logits(p, q, temperature=-1), "temperature must be > 0; got -1"),
    (lambda p, q: D.kl(p, random_logp(5, 3)), "logp and logq must have the same shape"),
    (lambda p, q: D.kl(p + 1.0, q), "Did you pass logits?"),
    (lambda p, q: D.kl(p, torch.full_like(q, math.nan)), "logq must not contain NaN"),
    (lambda p, q: D.alpha_divergence(p, q, math.nan), "alpha must be a finite real number"),
    (lambda p, q: D.renyi(p, q, -1.0), "alpha must be >= 0; got -1.0"),
    (lambda p, q: D.divergence(p, q, "wasserstein"), "divergence must be one of"),
    (lambda p, q: D.divergence(p, q, "alpha"), "alpha must be given"),
    (lambda p, q: D.kl_from_logits(torch.tensor([math.nan, 0.0]), torch.tensor([0.0, 0.0])), "logits_p must not contain NaN"),
    (lambda p, q: D.kl_gaussian(0.0, -1.0, 0.0, 1.0), "sigma_p must be > 0"),
])
def test_bad_input_names_the_parameter(call, message, pq):
    logp, logq = pq
    with pytest.raises(ValueError, match=None) as err:
        call(logp, logq)
    assert message in str(err.value)


def test_gradients_are_finite_with_masked_outcomes():
    logits = torch.tensor([0.0, 1.0, -INF], requires_grad=True)
    target = torch.tensor([math.log(0.3), math.log(0.7), -INF])
    loss = D.kl(target, torch.log_softmax(logits, -1))
    loss.backward()
    assert torch.isfinite(logits.grad[:2]).all()


def test_jeffreys_is_the_symmetrised_kl_and_bounds_eight_js_sharply():
    logp, logq = random_logp(100_000, 6, seed=21), random_logp(100_000, 6, seed=22)
    j = D.jeffreys(logp, logq)
    torch.testing.assert_close(j, D.kl(logp, logq) + D.kl(logq, logp))
    torch.testing.assert_close(j, D.jeffreys(logq, logp))
    # J >= 8 JS: both are f-divergences and (r - 1) log r >= 8 f_JS(r) for every r > 0, with equality to second
    # order at r = 1. Lin's (1991) J >= 4 JS would let a JS twice too large pass. The constant 8 is sharp: for nearby
    # p and q both tend to chi^2 (J) and chi^2 / 8 (JS), so their ratio tends to 8.
    assert (j - 8 * D.js(logp, logq)).min().item() >= -1e-12
    near = torch.log_softmax(logp[:1000] + 1e-3 * torch.randn(1000, 6, generator=torch.Generator().manual_seed(24)), -1)
    ratio = D.jeffreys(logp[:1000], near) / D.js(logp[:1000], near)
    assert (ratio - 8).abs().max().item() < 1e-4, ratio
    p, q = logp.exp().numpy(), logq.exp().numpy()
    np.testing.assert_allclose(j.numpy(), ((p - q) * np.log(p / q)).sum(-1), rtol=1e-10)


def test_jeffreys_zero_iff_equal_and_inf_on_disjoint_support():
    logp = random_logp(4, 5, seed=23)
    assert D.jeffreys(logp, logp).abs().max().item() < 1e-12
    assert D.jeffreys(torch.tensor([0.0, -INF]), torch.tensor([-INF, 0.0])).item() == INF
    one_sided = D.jeffreys(torch.tensor([-INF, 0.0]), torch.tensor([math.log(0.5), math.log(0.5)]))
    assert one_sided.item() == INF   # KL(q || p) is infinite even though KL(p || q) is log 2
    with pytest.raises(ValueError, match="logp must be log-probabilities"):
        D.jeffreys(torch.tensor([1.0, 2.0]), torch.tensor([0.0, -INF]))
