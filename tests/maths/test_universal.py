"""Bayes mixtures under log loss: the chain rule against direct enumeration, KT against its Beta/Gamma closed forms,
the regret bounds on every sequence, the KL reading against enumeration and the uniform-prior closed form, bad input."""

import itertools
import math

import numpy as np
import pytest
from scipy.special import betaln, gammaln, logsumexp

from kllab.maths import universal as U


def all_sequences(n):
    return [np.array(s, dtype=np.int64) for s in itertools.product([0, 1], repeat=n)]


def kt_by_hand(x, order):
    """The KT sequence probability with plain Python counting (no library code)."""
    counts, logp, hist = {}, 0.0, [0] * order + list(x)
    for t, sym in enumerate(x):
        ctx = tuple(hist[t:t + order])
        c = counts.setdefault(ctx, [0, 0])
        logp += math.log((c[sym] + 0.5) / (c[0] + c[1] + 1.0))
        c[sym] += 1
    return logp


def random_tables(n, k, a=2, seed=0):
    rng = np.random.default_rng(seed)
    logits = 2 * rng.standard_normal((n, k, a))
    return logits - logsumexp(logits, axis=-1, keepdims=True), rng.integers(0, a, n)


# --- oracles ---------------------------------------------------------------------------------------------------

def test_log_sum_exp_matches_scipy():
    a = np.random.default_rng(1).normal(size=(4, 7)) * 30
    a[0, 2] = -np.inf
    np.testing.assert_allclose(U.log_sum_exp(a), logsumexp(a, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(U.log_sum_exp(a, axis=0), logsumexp(a, axis=0), rtol=1e-14)
    assert U.log_sum_exp(np.array([-np.inf, -np.inf])) == -np.inf


def test_mixture_log_prob_matches_scipy_logsumexp():
    rng = np.random.default_rng(2)
    seq = -rng.gamma(3.0, 20.0, size=(5, 6))
    w = rng.dirichlet(np.ones(6))
    np.testing.assert_allclose(U.mixture_log_prob(seq, np.log(w)), logsumexp(seq, b=w, axis=-1), rtol=1e-13)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_kt_closed_form_against_hand_counting_and_beta(order):
    rng = np.random.default_rng(order)
    for _ in range(5):
        x = rng.integers(0, 2, 40)
        hand = kt_by_hand(x, order)
        assert U.kt_log_prob(x, order) == pytest.approx(hand, abs=1e-10)
        assert U.kt_predictive(x, order)[np.arange(40), x].sum() == pytest.approx(hand, abs=1e-10)
    x = rng.integers(0, 2, 30)
    a, b = int((x == 1).sum()), int((x == 0).sum())
    # order 0: Beta(1/2, 1/2) mixture, B(a + 1/2, b + 1/2) / B(1/2, 1/2)
    assert U.kt_log_prob(x, 0) == pytest.approx(betaln(a + 0.5, b + 0.5) - betaln(0.5, 0.5), abs=1e-12)


def test_kt_three_symbols_gamma_closed_form():
    x = np.array([2, 0, 2, 2, 1, 0, 2])
    n = np.bincount(x, minlength=3)
    expected = gammaln(1.5) - 3 * gammaln(0.5) + gammaln(n + 0.5).sum() - gammaln(n.sum() + 1.5)
    assert U.kt_log_prob(x, 0, alphabet=3) == pytest.approx(expected, abs=1e-12)
    assert U.kt_predictive(x, 0, alphabet=3)[np.arange(7), x].sum() == pytest.approx(expected, abs=1e-12)


def test_kt_sums_to_one_over_all_sequences():
    for order in (0, 2):
        total = logsumexp([U.kt_log_prob(s, order) for s in all_sequences(8)])
        assert total == pytest.approx(0.0, abs=1e-12)


def test_chain_rule_equals_direct_enumeration_of_the_mixture():
    n, orders = 9, [0, 1, 2, 3]
    w = np.array([0.1, 0.4, 0.3, 0.2])
    totals = []
    for x in all_sequences(n):
        tables = np.stack([U.kt_predictive(x, k) for k in orders], axis=1)
        seq = U.sequential_mixture(tables, x, np.log(w))
        direct = math.log(sum(wk * math.exp(kt_by_hand(x, k)) for wk, k in zip(w, orders)))
        assert -seq.log_loss.sum() == pytest.approx(direct, abs=1e-12)
        totals.append(-seq.log_loss.sum())
    assert logsumexp(totals) == pytest.approx(0.0, abs=1e-12)       # Q is a distribution over sequences


def test_posterior_is_bayes_rule():
    tables, x = random_tables(12, 4, seed=3)
    w = np.array([0.4, 0.3, 0.2, 0.1])
    out = U.sequential_mixture(tables, x, np.log(w))
    joint = np.log(w) + np.cumsum(tables[np.arange(12), :, x], axis=0)[-1]
    np.testing.assert_allclose(out.log_post[-1], joint - logsumexp(joint), atol=1e-12)
    np.testing.assert_allclose(out.log_post[0], np.log(w), atol=1e-15)


def test_geometric_pool_matches_normalised_product():
    tables, x = random_tables(6, 3, a=4, seed=4)
    out = U.sequential_mixture(tables, x, np.log([0.5, 0.3, 0.2]), direction="reverse", temperature=2.0)
    v = np.exp(out.log_post[:-1])
    p = np.exp(tables)
    prod = np.prod(p ** v[:, :, None], axis=1)
    np.testing.assert_allclose(np.exp(out.log_pred), prod / prod.sum(1, keepdims=True), rtol=1e-12)


# --- the bounds --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [1.0, 1.7, 5.0])
def test_regret_bound_on_every_prefix(temperature):
    for seed in range(20):
        tables, x = random_tables(60, 5, a=3, seed=seed)
        w = np.random.default_rng(seed).dirichlet(np.ones(5))
        out = U.sequential_mixture(tables, x, np.log(w), temperature=temperature)
        L = U.cumulative_log_loss(out.log_loss)
        Lk = U.cumulative_log_loss(-tables[np.arange(60), :, x].T).T
        bound = U.tempered_regret_bound(np.log(w), temperature)
        assert (L[:, None] - Lk <= bound + 1e-10).all()
        np.testing.assert_allclose(bound, -temperature * np.log(w))


def test_bayes_bound_is_attained_when_one_component_takes_the_posterior():
    # two components, one certain of the sequence: L_Q -> log(1/w_1)
    n = 40
    tables = np.log(np.stack([np.tile([1e-300, 1.0], (n, 1)), np.tile([0.5, 0.5], (n, 1))], axis=1))
    out = U.sequential_mixture(tables, np.ones(n, dtype=int), np.log([0.25, 0.75]))
    assert out.log_loss.sum() == pytest.approx(math.log(4), abs=1e-9)


def test_cold_posterior_has_no_bound():
    n = 100
    x = (np.arange(n) % 2 == 0).astype(int)
    tables = np.broadcast_to(np.log([[0.1, 0.9], [0.9, 0.1]]), (n, 2, 2))
    best = -tables[np.arange(n), :, x].sum(0).max()          # the best expert's log loss
    cold = U.sequential_mixture(tables, x, np.log([0.5, 0.5]), temperature=0.05).log_loss.sum()
    bayes = U.sequential_mixture(tables, x, np.log([0.5, 0.5])).log_loss.sum()
    assert bayes - best <= math.log(2) + 1e-12
    assert cold - best > 0.9 * (n / 2) * math.log(1.8)


def test_both_pools_lose_at_most_the_posterior_averaged_loss():
    tables, x = random_tables(50, 4, a=3, seed=7)
    lp = np.log(np.full(4, 0.25))
    for d in ("forward", "reverse"):
        out = U.sequential_mixture(tables, x, lp, direction=d, temperature=0.5)
        gibbs = -(np.exp(out.log_post[:-1]) * tables[np.arange(50), :, x]).sum(1)
        assert (out.log_loss <= gibbs + 1e-12).all()


def test_kt_regret_bound_on_every_sequence():
    for order in (0, 1):
        for x in all_sequences(10):
            # maximum-likelihood chain of this order, per context
            ids = U.context_ids(x, order)
            ml = 0.0
            for s in np.unique(ids):
                c = np.bincount(x[ids == s], minlength=2)
                ml += sum(ci * math.log(ci / c.sum()) for ci in c if ci > 0)
            assert -U.kt_log_prob(x, order) - (-ml) <= U.kt_regret_bound(x, order) + 1e-12


def test_markov_predictive_and_context_ids():
    x = np.array([1, 1, 0, 1, 0, 0])
    assert U.context_ids(x, 2).tolist() == [0, 1, 3, 2, 1, 2]
    assert U.context_ids(x, 0).tolist() == [0] * 6
    trans = np.log([[0.8, 0.2], [0.3, 0.7]])
    pred = U.markov_predictive(x, trans)
    np.testing.assert_allclose(pred, trans[[0, 1, 1, 0, 1, 0]])


# --- the KL reading ----------------------------------------------------------------------------------------------

def test_bernoulli_mixture_kl_against_enumeration():
    n, theta0 = 10, 0.3
    thetas = np.array([0.1, 0.35, 0.6, 0.9])
    lw = np.log([0.1, 0.2, 0.3, 0.4])
    kl = 0.0
    for x in all_sequences(n):
        m = x.sum()
        lp0 = m * math.log(theta0) + (n - m) * math.log(1 - theta0)
        lq = U.mixture_log_prob(m * np.log(thetas) + (n - m) * np.log(1 - thetas), lw)
        kl += math.exp(lp0) * (lp0 - lq)
    assert U.bernoulli_mixture_kl(theta0, thetas, lw, n) == pytest.approx(kl, rel=1e-12)


def test_fine_uniform_grid_tends_to_the_uniform_prior_closed_form():
    n, theta0 = 300, 0.2
    m = np.arange(n + 1)
    log_p0 = m * math.log(theta0) + (n - m) * math.log(1 - theta0)
    log_binom = gammaln(n + 1) - gammaln(m + 1) - gammaln(n - m + 1)
    log_q = betaln(m + 1, n - m + 1)                     # the uniform prior's sequence probability
    exact = float(np.sum(np.exp(log_binom + log_p0) * (log_p0 - log_q)))
    M = 2000
    thetas = (np.arange(M) + 0.5) / M
    assert U.bernoulli_mixture_kl(theta0, thetas, np.full(M, -math.log(M)), n) == pytest.approx(exact, abs=1e-8)


def test_kl_ball_bound_against_brute_force_and_the_exact_kl():
    rng = np.random.default_rng(5)
    kl = rng.exponential(3.0, 30)
    w = rng.dirichlet(np.ones(30))
    brute = min(r + -math.log(w[kl <= r].sum()) for r in kl)
    value, radius = U.kl_ball_bound(kl, np.log(w))
    assert value == pytest.approx(brute, abs=1e-12)
    assert radius in kl
    n, theta0 = 200, 0.25
    thetas = (np.arange(64) + 0.5) / 64
    lw = np.full(64, -math.log(64))
    per = theta0 * np.log(theta0 / thetas) + (1 - theta0) * np.log((1 - theta0) / (1 - thetas))
    assert U.bernoulli_mixture_kl(theta0, thetas, lw, n) <= U.kl_ball_bound(n * per, lw)[0] + 1e-12


# --- bad input ---------------------------------------------------------------------------------------------------

def test_bad_input_is_named():
    tables, x = random_tables(5, 3)
    lp = np.log(np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="log_prior must be normalised"):
        U.sequential_mixture(tables, x, np.log([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="log_prior must have one entry per component"):
        U.sequential_mixture(tables, x, np.log([0.5, 0.5]))
    with pytest.raises(ValueError, match="pred_log_probs must be log-probabilities"):
        U.sequential_mixture(tables + 1.0, x, lp)
    with pytest.raises(ValueError, match="pred_log_probs must have shape"):
        U.sequential_mixture(tables[0], x, lp)
    bad = tables.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="pred_log_probs must not contain NaN"):
        U.sequential_mixture(bad, x, lp)
    with pytest.raises(ValueError, match="x must hold integer symbols"):
        U.sequential_mixture(tables, [0, 1, 2, 0, 1], lp)
    with pytest.raises(ValueError, match="x must have one symbol per step"):
        U.sequential_mixture(tables, [0, 1], lp)
    with pytest.raises(ValueError, match="temperature must be >= 0.001"):
        U.sequential_mixture(tables, x, lp, temperature=0.0)
    with pytest.raises(ValueError, match="direction must be one of"):
        U.sequential_mixture(tables, x, lp, direction="js")
    with pytest.raises(ValueError, match="temperature must be >= 1"):
        U.tempered_regret_bound(lp, 0.5)
    with pytest.raises(ValueError, match="order must keep alphabet"):
        U.context_ids([0, 1], 63)
    with pytest.raises(ValueError, match="order must be >= 0"):
        U.kt_predictive([0, 1], -1)
    with pytest.raises(ValueError, match="thetas must lie in"):
        U.bernoulli_mixture_kl(0.2, [0.0, 0.5], np.log([0.5, 0.5]), 10)
    with pytest.raises(ValueError, match="theta0 must be"):
        U.bernoulli_mixture_kl(1.0, [0.5], [0.0], 10)
    with pytest.raises(ValueError, match="kl_totals must be >= 0"):
        U.kl_ball_bound([-1.0, 2.0], np.log([0.5, 0.5]))
    with pytest.raises(ValueError, match="log_loss must be >= 0"):
        U.cumulative_log_loss([1.0, -0.5])
    with pytest.raises(ValueError, match="log_trans must be log-probabilities"):
        U.markov_predictive([0, 1], np.log([[0.5, 0.6], [0.5, 0.5]]))
