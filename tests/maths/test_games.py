"""Preference games: the equilibrium against closed forms and a convex minimisation, the dynamics against the
theorem, the linear theory against the Jacobian of the actual map (autograd), bad input."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from kllab.maths import games, online, rlhf
from kllab.maths.divergences import kl

pytestmark = pytest.mark.usefixtures("float64")


def zipf(k):
    return torch.log_softmax(-torch.log(torch.arange(1.0, k + 1, dtype=torch.float64)), -1)


def random_ref(k, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(k, generator=g, dtype=torch.float64), -1)


GAMES = [(games.cyclic_preference(3), zipf(3)), (games.cyclic_preference(6), random_ref(6, 1)),
         (games.random_preference(5, seed=2), random_ref(5, 3)), (games.random_preference(16, seed=4), zipf(16))]


# ---------------------------------------------------------------------------------------- preference matrices

def test_cyclic_is_rock_paper_scissors_and_balanced():
    P = games.cyclic_preference(3)
    assert P.tolist() == [[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.5]]
    for k in (2, 3, 4, 7, 10):
        P = games.cyclic_preference(k, margin=0.3)
        torch.testing.assert_close(P + P.T, torch.ones(k, k, dtype=torch.float64))
        torch.testing.assert_close(P.sum(1), torch.full((k,), k / 2, dtype=torch.float64))  # wins as often as it loses


def test_random_preference_is_a_preference_matrix_and_seeded():
    P = games.random_preference(7, seed=5)
    games.check_preference(P)
    assert torch.equal(P, games.random_preference(7, seed=5)) and not torch.equal(P, games.random_preference(7, seed=6))


@pytest.mark.parametrize("bad, match", [([[0.5, 0.7], [0.7, 0.5]], "P \\+ P.T = 1"), ([[0.5, 1.2], [-0.2, 0.5]], "in \\[0, 1\\]"),
                                        ([[0.5, 0.5, 0.5]], "square"), ([[0.5]], "at least 2")])
def test_bad_preference(bad, match):
    with pytest.raises(ValueError, match=match):
        games.check_preference(bad)


# ---------------------------------------------------------------------------------------- the equilibrium

def test_two_actions_closed_form():
    # K = 2: the win-rate difference P(0 > pi) - P(1 > pi) = p - 1/2 does not depend on pi, so pi* is one Gibbs step.
    for p, beta in [(0.9, 0.1), (0.3, 0.02), (0.5, 1.0)]:
        P = torch.tensor([[0.5, p], [1 - p, 0.5]], dtype=torch.float64)
        ref = torch.tensor([0.2, 0.8], dtype=torch.float64).log()
        expected = rlhf.kl_regularized_policy(ref, torch.tensor([p - 0.5, 0.0], dtype=torch.float64), beta)
        torch.testing.assert_close(games.regularized_nash(P, ref, beta), expected, atol=1e-12, rtol=0)


def test_symmetric_game_uniform_reference_gives_uniform_equilibrium():
    for k in (3, 4, 9):
        u = torch.full((k,), -math.log(k), dtype=torch.float64)
        torch.testing.assert_close(games.regularized_nash(games.cyclic_preference(k), u, 0.01), u, atol=1e-12, rtol=0)


@pytest.mark.parametrize("P, ref", GAMES)
@pytest.mark.parametrize("beta", [0.01, 0.2, 5.0])
def test_equilibrium_is_a_fixed_point_and_unexploitable(P, ref, beta):
    star = games.regularized_nash(P, ref, beta)
    torch.testing.assert_close(star, rlhf.kl_regularized_policy(ref, games.win_rate(P, star), beta), atol=1e-10, rtol=0)
    assert abs(games.exploitability(star, P, ref, beta).item()) < 1e-12
    # No deviation of either player gains: J(pi', pi*) <= 1/2 <= J(pi*, pi').
    dev = torch.log_softmax(2 * torch.randn(500, len(ref), generator=torch.Generator().manual_seed(0),
                                            dtype=torch.float64), -1)
    first = games.game_value(dev, star.expand_as(dev), P, ref.expand_as(dev), beta)
    second = games.game_value(star.expand_as(dev), dev, P, ref.expand_as(dev), beta)
    assert (first <= 0.5 + 1e-12).all() and (second >= 0.5 - 1e-12).all()


def test_equilibrium_minimises_the_convex_exploitability():
    # Oracle: BFGS on the exploitability over logits, an optimisation that never sees the fixed-point equation.
    P, ref = games.random_preference(4, seed=7), random_ref(4, 8)
    beta = 0.1
    Pn, lr = P.numpy(), ref.numpy()

    def gap(z):
        pi, logpi = softmax(z), z - logsumexp(z)
        br = lr + Pn @ pi / beta
        g = Pn.T @ softmax(br) + beta * (logpi - lr + 1)
        return beta * logsumexp(br) + beta * pi @ (logpi - lr) - 0.5, pi * (g - pi @ g)

    res = minimize(gap, lr.copy(), jac=True, method="BFGS", options={"gtol": 1e-13})
    star = games.regularized_nash(P, ref, beta).exp().numpy()
    assert np.abs(softmax(res.x) - star).sum() / 2 < 1e-7


def test_limits_in_beta():
    P, ref = games.cyclic_preference(5), zipf(5)
    torch.testing.assert_close(games.regularized_nash(P, ref, 100.0).exp(), ref.exp(), atol=5e-3, rtol=0)
    assert (games.regularized_nash(P, ref, 1e-3).exp() - 0.2).abs().max() < 0.02   # the uniform Nash of the tournament


def test_warm_start_agrees_with_continuation():
    P, ref = games.random_preference(12, seed=1), zipf(12)
    near = games.regularized_nash(P, ref, 0.05)
    torch.testing.assert_close(games.regularized_nash(P, ref, 0.04, logp_start=near),
                               games.regularized_nash(P, ref, 0.04), atol=1e-11, rtol=0)


def test_exploitability_is_nonnegative_and_batched():
    P, ref = GAMES[2]
    pis = torch.log_softmax(torch.randn(50, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64), -1)
    e = games.exploitability(pis, P, ref, 0.3)
    assert e.shape == (50,) and (e >= -1e-14).all()
    assert (e > games.exploitability(games.regularized_nash(P, ref, 0.3), P, ref, 0.3)).all()


def test_game_value_is_constant_sum():
    P, ref = GAMES[3]
    g = torch.Generator().manual_seed(1)
    a, b = (torch.log_softmax(torch.randn(16, generator=g, dtype=torch.float64), -1) for _ in range(2))
    total = games.game_value(a, b, P, ref, 0.2) + games.game_value(b, a, P, ref, 0.2)
    assert total.item() == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------------------------------- the dynamics

@pytest.mark.parametrize("P, ref", GAMES)
@pytest.mark.parametrize("beta, eta", [(0.01, 2.0), (0.1, 0.5), (1.0, 2.0), (0.03, 1.0)])
def test_mirror_prox_obeys_the_theorem(P, ref, beta, eta):
    star = games.regularized_nash(P, ref, beta)
    path = games.mirror_prox(P, ref, beta, eta, 150)
    kl_path = kl(star.expand_as(path), path)
    assert (kl_path <= games.kl_bound(kl_path[0], beta, eta, 150) * (1 + 1e-9) + 1e-15).all()


def test_mirror_prox_is_two_mirror_steps():
    P, ref = GAMES[0]
    path = games.mirror_prox(P, ref, 0.05, 1.5, 2)
    half = online.mirror_step(path[1], games.win_rate(P, path[1]), 1.5, beta=0.05, logp_ref=ref)
    full = online.mirror_step(path[1], games.win_rate(P, half), 1.5, beta=0.05, logp_ref=ref)
    torch.testing.assert_close(path[2], full, atol=1e-14, rtol=0)
    md = games.mirror_descent(P, ref, 0.05, 1.5, 1)
    torch.testing.assert_close(md[1], online.mirror_step(ref, games.win_rate(P, ref), 1.5, beta=0.05, logp_ref=ref))


def test_mirror_descent_cycles_on_rock_paper_scissors_unless_beta_is_large():
    P, ref = GAMES[0]
    assert games.linear_rates(P, ref, 0.02, 1.0)["mirror_descent"] > 1          # eta omega^2 > 2 beta + eta beta^2
    assert games.span(games.mirror_descent(P, ref, 0.02, 1.0, 400)[-1], games.regularized_nash(P, ref, 0.02)) > 0.1
    assert games.linear_rates(P, ref, 0.2, 1.0)["mirror_descent"] < 0.96
    assert games.span(games.mirror_descent(P, ref, 0.2, 1.0, 400)[-1], games.regularized_nash(P, ref, 0.2)) < 1e-6


def test_dynamics_batch_over_starting_points():
    P, ref = GAMES[1]
    starts = torch.log_softmax(torch.randn(3, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64), -1)
    path = games.mirror_prox(P, ref.expand(3, 6), 0.1, 1.0, 4, logpi0=starts)
    assert path.shape == (5, 3, 6)
    torch.testing.assert_close(path[:, 1], games.mirror_prox(P, ref, 0.1, 1.0, 4, logpi0=starts[1]))


# ---------------------------------------------------------------------------------------- linear theory

def _jacobian_radius(P, ref, beta, eta, extragradient):
    star = games.regularized_nash(P, ref, beta)

    def one_iteration(z):
        logpi = torch.log_softmax(z, -1)
        opp = logpi
        if extragradient:
            opp = online.mirror_step(logpi, logpi.exp() @ P.T, eta, beta=beta, logp_ref=ref)
        return online.mirror_step(logpi, opp.exp() @ P.T, eta, beta=beta, logp_ref=ref)

    J = torch.autograd.functional.jacobian(one_iteration, star.clone())
    return float(np.abs(np.linalg.eigvals(J.numpy())).max())


@pytest.mark.parametrize("P, ref", GAMES[:3])
@pytest.mark.parametrize("beta, eta", [(0.02, 1.0), (0.2, 2.0), (0.05, 0.3)])
def test_linear_rates_match_the_jacobian_of_the_actual_map(P, ref, beta, eta):
    rates = games.linear_rates(P, ref, beta, eta)
    assert rates["mirror_prox"] == pytest.approx(_jacobian_radius(P, ref, beta, eta, True), rel=1e-8)
    assert rates["mirror_descent"] == pytest.approx(_jacobian_radius(P, ref, beta, eta, False), rel=1e-8)


def _own_step_jacobian(P, ref, star, beta, eta, method):
    # The Jacobian (autograd) of one iteration of games.mirror_prox / games.mirror_descent themselves, at pi*.
    step = lambda z: method(P, ref, beta, eta, 1, logpi0=torch.log_softmax(z, -1))[1]
    return torch.autograd.functional.jacobian(step, star.clone()).numpy()


def _slowest_mode_rate(P, ref, star, beta, eta, amplitude=1e-6, iters=40):
    # Start mirror prox at pi* moved by `amplitude` along the slowest eigenvector of its own iteration, and measure the
    # per-iteration contraction of sum_y pi*(y) (delta_y - mean delta)^2, delta = log pi_k - log pi* (the KL to second
    # order), until it has fallen by 1e-8. Two-sided: a run that is too fast fails as surely as one that is too slow.
    w, vecs = np.linalg.eig(_own_step_jacobian(P, ref, star, beta, eta, games.mirror_prox))
    v = np.real(vecs[:, int(np.argmax(np.abs(w)))])
    v = (v - v.mean()) / np.abs(v - v.mean()).max()
    path = games.mirror_prox(P, ref, beta, eta, iters, logpi0=torch.log_softmax(star + amplitude * torch.as_tensor(v), -1))
    pi, d = star.exp(), path - star
    d = d - (d * pi).sum(-1, keepdim=True)
    s2 = (pi * d ** 2).sum(-1).numpy()
    below = np.nonzero(s2 < 1e-8 * s2[0])[0]
    n = max(1, int(below[0]) if len(below) else iters)
    return (s2[n] / s2[0]) ** (1 / n)


@pytest.mark.parametrize("P, ref", GAMES[:3])
@pytest.mark.parametrize("beta, eta", [(0.02, 2.0), (0.2, 0.5), (3.0, 2.0)])
def test_the_dynamics_own_step_contracts_at_the_linear_rate_two_sided(P, ref, beta, eta):
    # The Jacobian of games.mirror_prox's and games.mirror_descent's own iteration has the theory's spectral radius,
    # and a run along the slowest direction contracts at rho_MP^2 per iteration (seen: within 1.1e-5 relative over
    # K = 2..64 and beta = 1e-3..100 wherever pi* > 1e-12; a step-size error in either half step moves it by far more).
    star = games.regularized_nash(P, ref, beta)
    rates = games.linear_rates(P, ref, beta, eta)
    for name, method in (("mirror_prox", games.mirror_prox), ("mirror_descent", games.mirror_descent)):
        radius = float(np.abs(np.linalg.eigvals(_own_step_jacobian(P, ref, star, beta, eta, method))).max())
        assert radius == pytest.approx(rates[name], rel=1e-8)
    assert _slowest_mode_rate(P, ref, star, beta, eta) == pytest.approx(rates["mirror_prox"] ** 2, rel=1e-4)


def test_frequencies_are_at_most_one_half_and_even_games_have_a_still_direction():
    for seed in range(6):
        for k in (2, 4, 7, 10):
            P, ref = games.random_preference(k, seed=seed), random_ref(k, seed + 10)
            w = games.mode_frequencies(P, ref, 0.05)
            assert len(w) == k - 1 and w.max() <= 0.5 + 1e-12
            if k % 2 == 0:
                assert w.min() < 1e-10
                assert games.linear_rates(P, ref, 0.05, 2.0)["mirror_prox"] == pytest.approx(1 / 1.1, rel=1e-9)


def test_contraction_rates_closed_forms_and_the_bound():
    r = games.contraction_rates([0.0], 0.5, 2.0)
    assert r == {"mirror_descent": 0.5, "mirror_prox": 0.5}
    for w in np.linspace(0, 0.5, 11):
        for beta in (1e-3, 0.1, 3.0):
            assert games.contraction_rates([w], beta, 2.0)["mirror_prox"] <= 1 / (1 + 2 * beta) + 1e-15
    with pytest.raises(ValueError, match="omega must be"):
        games.contraction_rates([], 0.1, 1.0)


def test_kl_bound_and_span():
    torch.testing.assert_close(games.kl_bound(2.0, 0.5, 1.0, 3), 2.0 * torch.tensor([1, 1 / 1.5, 1 / 2.25, 1 / 3.375],
                                                                                    dtype=torch.float64))
    a, b = random_ref(5, 0), random_ref(5, 1)
    assert games.span(a, a).item() == 0.0 and games.span(a + 3.0, a).item() == pytest.approx(0.0, abs=1e-14)
    assert games.span(a, b).item() == pytest.approx(games.span(b, a).item())


# ---------------------------------------------------------------------------------------- bad input

def test_bad_input():
    P, ref = GAMES[0]
    with pytest.raises(ValueError, match="beta must be > 0"):
        games.regularized_nash(P, ref, 0.0)
    with pytest.raises(ValueError, match="eta must be > 0"):
        games.mirror_prox(P, ref, 0.1, -1.0, 3)
    with pytest.raises(ValueError, match="full support"):
        games.regularized_nash(P, torch.tensor([0.0, -math.inf, -math.inf], dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match="logp_ref must have 3 actions"):
        games.regularized_nash(P, zipf(4), 0.1)
    with pytest.raises(ValueError, match="log-probabilities"):
        games.exploitability(torch.zeros(3, dtype=torch.float64), P, ref, 0.1)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        games.mirror_descent(P, ref, 0.1, 1.0, -1)
