"""Best-of-n: the closed form against brute-force enumeration and Monte Carlo, its KL bound, iterated rounds."""

import itertools
import math

import pytest
import torch

from kllab.maths import rlhf
from kllab.maths.divergences import kl

pytestmark = pytest.mark.usefixtures("float64", "one_thread")



def brute_force_best_of_n(pi, reward, n):
    """Enumerate all K**n draws; the kept one is uniform among the draws at the highest reward."""
    k = len(pi)
    out = [0.0] * k
    for draw in itertools.product(range(k), repeat=n):
        prob = math.prod(pi[i] for i in draw)
        top = max(reward[i] for i in draw)
        winners = [i for i in draw if reward[i] == top]
        for i in winners:
            out[i] += prob / len(winners)
    return torch.tensor(out)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_matches_brute_force_enumeration_with_ties(n):
    pi = [0.1, 0.25, 0.05, 0.3, 0.2, 0.1]
    reward = [0.3, -1.0, 0.3, 2.0, 0.3, -1.0]          # two tied levels
    got = rlhf.best_of_n(torch.tensor(pi).log(), torch.tensor(reward), n).exp()
    torch.testing.assert_close(got, brute_force_best_of_n(pi, reward, n), atol=1e-14, rtol=0)


def test_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(8, generator=g), -1)
    reward = torch.randn(8, generator=g)
    draws = torch.multinomial(logp.exp(), 200_000 * 4, replacement=True, generator=g).reshape(-1, 4)
    best = draws.gather(1, reward[draws].argmax(1, keepdim=True)).squeeze(1)
    freq = torch.bincount(best, minlength=8) / best.numel()
    exact = rlhf.best_of_n(logp, reward, 4).exp()
    se = (exact * (1 - exact) / best.numel()).sqrt()
    assert ((freq - exact).abs() <= 4 * se + 1e-12).all(), (freq, exact)


@pytest.mark.parametrize("n", [2, 4, 16])
def test_kl_below_the_continuous_bound_for_every_policy(n):
    g = torch.Generator().manual_seed(n)
    alpha = torch.distributions.Dirichlet(torch.full((12,), 0.3))
    torch.manual_seed(n)
    pis = alpha.sample((300,)).clamp_min(1e-300)
    logp = (pis / pis.sum(-1, keepdim=True)).log()
    reward = torch.randn(300, 12, generator=g)
    bon = rlhf.best_of_n(logp, reward, n)
    assert (kl(bon, logp) <= rlhf.best_of_n_kl_bound(n) + 1e-12).all()
    assert kl(bon, logp).max() < rlhf.best_of_n_kl_bound(n)   # never reached with finite support


@pytest.mark.parametrize("n", [3, 4, 8])
def test_gap_closes_like_one_over_k_squared(n):
    # Uniform pi on K answers, distinct rewards: bound - KL = n (n-1)^2 / (24 (n-2) K^2) + o(1/K^2).
    for k in (100, 1000):
        logp = torch.full((k,), -math.log(k))
        gap = rlhf.best_of_n_kl_bound(n) - kl(rlhf.best_of_n(logp, torch.arange(k, dtype=torch.float64), n), logp).item()
        assert gap * k ** 2 == pytest.approx(n * (n - 1) ** 2 / (24 * (n - 2)), rel=2e-2 if k == 100 else 2e-3)


def test_ties_are_the_kl_of_the_coarsened_problem():
    # A tie makes its level one answer as far as KL(P_n || pi) is concerned (best-of-n is prop. to pi inside it).
    pi = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25])
    tied = rlhf.best_of_n(pi.log(), torch.tensor([0.0, 1.0, 1.0, 2.0, 2.0]), 3)
    coarse_pi = torch.tensor([0.1, 0.5, 0.4])
    coarse = rlhf.best_of_n(coarse_pi.log(), torch.tensor([0.0, 1.0, 2.0]), 3)
    assert kl(tied, pi.log()).item() == pytest.approx(kl(coarse, coarse_pi.log()).item(), abs=1e-14)
    distinct = rlhf.best_of_n(pi.log(), torch.arange(5.0), 3)
    assert kl(tied, pi.log()) < kl(distinct, pi.log())


def test_edge_cases_and_shape():
    logp = torch.log_softmax(torch.randn(2, 3, 5), -1)
    r = torch.randn(2, 3, 5)
    torch.testing.assert_close(rlhf.best_of_n(logp, r, 1), logp)                # n = 1 is pi itself
    out = rlhf.best_of_n(logp, r, 7)
    assert out.shape == (2, 3, 5)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, 3))
    tiny = torch.tensor([1e-300, 1e-300, 1 - 2e-300]).log()                      # tiny masses stay finite
    assert torch.isfinite(rlhf.best_of_n(tiny, torch.tensor([2.0, 1.0, 0.0]), 50)).all()
    deep = torch.tensor([-1000.0, -1200.0, 0.0])                               # below the smallest double
    out = rlhf.best_of_n(deep, torch.tensor([3.0, 0.0, 2.0]), 3)
    assert out[1].item() == pytest.approx(3 * -1200.0, rel=1e-12)            # the worst answer: pi^n
    assert out[0].item() == pytest.approx(math.log(3) - 1000.0, rel=1e-12)   # the best: 1 - (1 - pi)^n ~ n pi
    zero = torch.tensor([0.5, 0.0, 0.5]).log()
    assert rlhf.best_of_n(zero, torch.tensor([0.0, 5.0, 1.0]), 3)[1].item() == -math.inf
    assert rlhf.best_of_n_kl_bound(1) == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda: rlhf.best_of_n(torch.zeros(2).log_softmax(0), torch.zeros(2), 0), "n must be >= 1"),
    (lambda: rlhf.best_of_n(torch.zeros(2).log_softmax(0), torch.tensor([0.0, math.nan]), 2), "reward must be finite"),
    (lambda: rlhf.best_of_n(torch.zeros(2), torch.zeros(2), 2), "logp must be log-probabilities"),
    (lambda: rlhf.best_of_n(torch.zeros(2).log_softmax(0), torch.zeros(3), 2), "must have the same shape"),
    (lambda: rlhf.superhf_rounds(torch.zeros(2).log_softmax(0), torch.zeros(2), 2, 1.0, rounds=-1), "rounds must be >= 0"),
    (lambda: rlhf.superhf_rounds(torch.zeros(2).log_softmax(0), torch.zeros(2), 2, 0.0, rounds=1), "beta must be > 0"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_superhf_rounds_equal_the_loop_they_describe(direction):
    g = torch.Generator().manual_seed(1)
    base = torch.log_softmax(torch.randn(9, generator=g), -1)
    reward = torch.randn(9, generator=g)
    path = rlhf.superhf_rounds(base, reward, 3, 0.4, rounds=6, direction=direction)
    assert path.shape == (7, 9)
    logpi = base
    for t in range(1, 7):
        bon = rlhf.best_of_n(logpi, reward, 3)
        if direction == "forward":   # the mixture (P_n + beta pi0) / (1 + beta), written out
            logpi = torch.log((bon.exp() + 0.4 * base.exp()) / 1.4)
        else:
            logpi = rlhf.kl_prior_fit(bon, base, 0.4, direction="reverse")
        torch.testing.assert_close(path[t], logpi, atol=1e-12, rtol=0)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_superhf_rounds_limits_and_a_beta_per_row(direction):
    g = torch.Generator().manual_seed(2)
    base = torch.log_softmax(torch.randn(6, generator=g), -1)
    reward = torch.randn(6, generator=g)
    betas = torch.tensor([1e-3, 1.0, 1e3])
    batch = rlhf.superhf_rounds(base.expand(3, 6), reward.expand(3, 6), 4, betas, rounds=40, direction=direction)
    for i, beta in enumerate(betas.tolist()):
        single = rlhf.superhf_rounds(base, reward, 4, beta, rounds=40, direction=direction)
        torch.testing.assert_close(batch[:, i], single, atol=1e-12, rtol=0)
    assert batch[-1, 0].exp()[reward.argmax()] > 0.99            # beta -> 0: the argmax of the reward
    assert kl(batch[-1, 2], base).item() < 1e-3                    # beta -> inf: the base policy
