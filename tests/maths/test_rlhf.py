"""RLHF: closed-form optima against independent solutions, the KL identity, KL estimators."""

import math

import pytest
import torch

from kllab.maths import rlhf
from kllab.maths.divergences import kl

pytestmark = pytest.mark.usefixtures("float64", "one_thread")



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


def test_kl_estimators_pinned_to_their_formulas():
    # One sample with q(x) = 0.5 and p(x) = 0.2, so rho = p/q = 0.4: three different numbers, one per formula.
    ks = rlhf.kl_estimators(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.2)]))
    assert ks["k1"].item() == pytest.approx(math.log(0.5) - math.log(0.2), rel=1e-12)   # log q - log p = 0.9163
    assert ks["k2"].item() == pytest.approx(0.5 * math.log(0.4) ** 2, rel=1e-12)        # (log rho)^2 / 2 = 0.4198
    assert ks["k3"].item() == pytest.approx((0.4 - 1) - math.log(0.4), rel=1e-12)       # (rho - 1) - log rho = 0.3163


def test_kl_estimators_bias_by_exact_enumeration():
    # Far-apart q and p on 6 outcomes: E_q[k] is an exact sum over the outcomes, no sampling.
    g = torch.Generator().manual_seed(3)
    logq = torch.log_softmax(2.0 * torch.randn(6, generator=g), -1)
    logp = torch.log_softmax(2.0 * torch.randn(6, generator=g), -1)
    ks = rlhf.kl_estimators(logq, logp)          # one value per outcome x, as if x had been sampled
    q, truth = logq.exp(), kl(logq, logp).item()
    mean = {k: (q * v).sum().item() for k, v in ks.items()}
    assert mean["k1"] == pytest.approx(truth, abs=1e-12)    # unbiased
    assert mean["k3"] == pytest.approx(truth, abs=1e-12)    # unbiased
    half_square = 0.5 * (q * (logq - logp) ** 2).sum().item()
    assert mean["k2"] == pytest.approx(half_square, abs=1e-12)
    assert abs(mean["k2"] - truth) > 0.2 * truth            # biased, by much, when q and p are far apart
    assert (ks["k3"] >= 0).all() and (ks["k1"] < 0).any()    # k3 >= 0 sample by sample; k1 is not


def test_kl_estimators_monte_carlo():
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


# --- the forward optimum, solved for all rows at once, against a per-row scipy root solve ---------

def _forward_brentq(p_ref, r, beta):
    """pi = beta p / (Lambda - r), Sum pi = 1, by scipy's brentq on one row (an independent solver)."""
    from scipy.optimize import brentq

    support = p_ref > 0
    gap = float(r[support].max()) - r
    excess = lambda t: float((beta * p_ref[support] / (t + gap[support])).sum()) - 1.0  # noqa: E731
    t = brentq(excess, 1e-300, beta, xtol=1e-300, rtol=1e-15) if excess(beta) < 0 else beta
    pi = torch.where(support, beta * p_ref / (t + gap), torch.zeros(()))
    return pi / pi.sum()


@pytest.mark.parametrize("beta", [0.01, 0.3, 1.0, 7.0])
def test_forward_optimum_matches_a_per_row_root_solve(beta):
    g = torch.Generator().manual_seed(4)
    ref = torch.log_softmax(3 * torch.randn(20, 7, generator=g), -1)
    ref[3, 2] = -math.inf                                   # a zero of the reference stays a zero
    ref[3] = ref[3] - torch.logsumexp(ref[3], 0)
    r = torch.randn(20, 7, generator=g)
    r[5, :3] = r[5].max() + 1.0                              # tied maximisers
    got = rlhf.kl_regularized_policy(ref, r, beta, direction="forward").exp()
    expected = torch.stack([_forward_brentq(p, rr, beta) for p, rr in zip(ref.exp(), r)])
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-9)


def test_forward_optimum_tiny_mass_on_the_maximiser_does_not_underflow():
    # eps = 1e-300 on the best answer and beta = 1e-3: t = Lambda - r_max is far below the smallest double.
    ref = torch.tensor([1e-300, 1 - 1e-300]).log()
    pi = rlhf.kl_regularized_policy(ref, torch.tensor([1.0, 0.0]), 1e-3, direction="forward").exp()
    expected = 0.5 * ((1 - 1e-3) + math.sqrt((1 - 1e-3) ** 2 + 4e-3 * 1e-300))
    assert pi[0].item() == pytest.approx(expected, rel=1e-12) and torch.isfinite(pi).all()


# --- cross-entropy to data plus a KL prior (the SuperHF fine-tuning step) -------------------------

@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("beta", [0.05, 0.5, 3.0])
def test_kl_prior_fit_matches_gradient_descent(direction, beta):
    g = torch.Generator().manual_seed(5)
    data = torch.log_softmax(2 * torch.randn(3, 6, generator=g), -1)
    prior = torch.log_softmax(torch.randn(3, 6, generator=g), -1)
    exact = rlhf.kl_prior_fit(data, prior, beta, direction=direction)

    def loss(lq):
        p0 = prior.expand_as(lq)
        d = kl(p0, lq) if direction == "forward" else kl(lq, p0)
        return -(data.exp() * lq).sum(-1) + beta * d

    trained, _ = rlhf.minimise_softmax(loss, torch.zeros(3, 6), steps=4000, lr=0.05)
    torch.testing.assert_close(trained.exp(), exact.exp(), atol=2e-4, rtol=0)
    # and no random perturbation of the exact answer does better
    noise = 0.05 * torch.randn(200, 3, 6, generator=g)
    others = loss(torch.log_softmax(exact + noise, -1))
    assert (others >= loss(exact) - 1e-12).all()


def test_kl_prior_fit_reverse_is_the_wright_omega_stationary_point():
    # Stationarity of CE(b, pi) + beta KL(pi || pi0): -b/pi + beta (log(pi / pi0) + 1) = const, with scipy's lambertw.
    from scipy.special import lambertw

    b = torch.tensor([0.1, 0.0, 0.6, 0.3]); p0 = torch.tensor([0.4, 0.3, 0.2, 0.1])
    beta = 0.7
    pi = rlhf.kl_prior_fit(b.log(), p0.log(), beta, direction="reverse").exp()
    lam = -b / pi + beta * (torch.log(pi / p0) + 1)
    torch.testing.assert_close(lam, lam[0].expand(4), atol=1e-10, rtol=0)
    c = 1 - lam[0].item() / beta     # lam is minus the multiplier of Sum pi = 1
    # b > 0: pi = b / (beta W(b e^c / (beta pi0))) with the principal branch of Lambert W
    w = lambertw((b[[0, 2, 3]] * math.exp(c) / (beta * p0[[0, 2, 3]])).numpy()).real
    torch.testing.assert_close(pi[[0, 2, 3]], b[[0, 2, 3]] / (beta * torch.from_numpy(w)), atol=1e-12, rtol=0)
    assert pi[1].item() == pytest.approx(p0[1].item() * math.exp(-c), rel=1e-10)  # b = 0: pi = pi0 e^-c


def test_kl_prior_fit_forward_is_a_mixture_and_accepts_a_beta_per_row():
    b = torch.log_softmax(torch.randn(4, 5), -1); p0 = torch.log_softmax(torch.randn(5), -1).expand(4, 5)
    betas = torch.tensor([0.1, 1.0, 2.0, 10.0])
    out = rlhf.kl_prior_fit(b, p0, betas).exp()
    expected = (b.exp() + betas[:, None] * p0.exp()) / (1 + betas[:, None])
    torch.testing.assert_close(out, expected)
    for i, beta in enumerate(betas.tolist()):
        for d in ("forward", "reverse"):
            torch.testing.assert_close(rlhf.kl_prior_fit(b, p0, betas, direction=d)[i],
                                       rlhf.kl_prior_fit(b[i], p0[i], beta, direction=d))


def test_kl_prior_fit_bad_input():
    b = torch.tensor([0.5, 0.5]).log(); p0 = torch.tensor([1.0, 0.0]).log()
    with pytest.raises(ValueError, match="logp_data must be 0 wherever logp_prior is 0"):
        rlhf.kl_prior_fit(b, p0, 1.0, direction="reverse")
    assert rlhf.kl_prior_fit(b, p0, 1.0).exp().tolist() == pytest.approx([0.75, 0.25])  # forward: fine
    with pytest.raises(ValueError, match="beta must be > 0"):
        rlhf.kl_prior_fit(b, b, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="beta must broadcast"):
        rlhf.kl_prior_fit(b, b, torch.ones(3))


def test_minimise_softmax_bad_input():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        rlhf.minimise_softmax(lambda lq: lq.sum(), torch.zeros(2), steps=0)
    with pytest.raises(ValueError, match="init_logits must have at least one axis"):
        rlhf.minimise_softmax(lambda lq: lq.sum(), torch.tensor(0.0), steps=1)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_kl_regularized_policy_accepts_a_beta_per_row(direction):
    g = torch.Generator().manual_seed(6)
    ref = torch.log_softmax(torch.randn(4, 3, 5, generator=g), -1)
    r = torch.randn(4, 3, 5, generator=g)
    betas = torch.tensor([0.05, 0.5, 2.0, 30.0])[:, None]                # broadcast over the middle axis
    out = rlhf.kl_regularized_policy(ref, r, betas, direction=direction)
    for i, b in enumerate(betas.flatten().tolist()):
        torch.testing.assert_close(out[i], rlhf.kl_regularized_policy(ref[i], r[i], b, direction=direction),
                                   atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        rlhf.kl_regularized_policy(ref, r, -betas, direction=direction)
