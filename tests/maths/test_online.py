"""Online learning on the simplex: Bregman divergences against autograd, mirror steps against their objectives and
kllab.maths.rlhf, FTRL = mirror descent, stability terms against a numerical supremum, estimators, bandit runs."""

import math

import pytest
import torch
from scipy.optimize import brentq, minimize_scalar

from kllab.maths import divergences, online, rlhf

pytestmark = pytest.mark.usefixtures("float64")
INF = math.inf


def random_logp(*shape, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(scale * torch.randn(*shape, generator=g, dtype=torch.float64), -1)


def bregman_autograd(psi, p, q):
    q = q.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(psi(q).sum(), q)
    return psi(p) - psi(q.detach()) - (grad * (p - q.detach())).sum(-1)


PSI = {"entropy": lambda p: (p * p.log()).sum(-1), "log_barrier": lambda p: -p.log().sum(-1)}


# ---------------------------------------------------------------------------------------- regularisers, Bregman

def test_regularizer_values():
    logp = random_logp(4, 6)
    torch.testing.assert_close(online.regularizer(logp, "entropy"), -divergences.entropy(logp))
    torch.testing.assert_close(online.regularizer(logp, "log_barrier"), -logp.sum(-1))
    assert online.regularizer(torch.tensor([0.0, -INF], dtype=torch.float64), "log_barrier").item() == INF
    assert online.regularizer(torch.tensor([0.0, -INF], dtype=torch.float64), "entropy").item() == 0.0


@pytest.mark.parametrize("name", ["entropy", "log_barrier"])
def test_bregman_matches_autograd(name):
    logp, logq = random_logp(50, 7, seed=1), random_logp(50, 7, seed=2)
    expected = bregman_autograd(PSI[name], logp.exp(), logq.exp())
    torch.testing.assert_close(online.bregman(logp, logq, name), expected, atol=1e-12, rtol=1e-12)


def test_entropic_bregman_is_kl_and_barrier_is_itakura_saito():
    logp, logq = random_logp(10, 5, seed=3), random_logp(10, 5, seed=4)
    torch.testing.assert_close(online.bregman(logp, logq, "entropy"), divergences.kl(logp, logq))
    p, q = logp.exp(), logq.exp()
    torch.testing.assert_close(online.bregman(logp, logq, "log_barrier"), (p / q - (p / q).log() - 1).sum(-1))


@pytest.mark.parametrize("name", ["entropy", "log_barrier"])
def test_bregman_properties_and_inf(name):
    logp, logq = random_logp(20, 4, seed=5), random_logp(20, 4, seed=6)
    d = online.bregman(logp, logq, name)
    assert d.shape == (20,) and (d > 0).all()
    assert online.bregman(logp, logp, name).abs().max() < 1e-13
    edge = torch.tensor([0.0, -INF], dtype=torch.float64)
    assert online.bregman(torch.tensor([-0.5, -1.0], dtype=torch.float64).log_softmax(-1), edge, name).item() == INF
    if name == "log_barrier":   # the barrier: any zero is infinitely far
        assert online.bregman(edge, torch.tensor([-1.0, -0.5], dtype=torch.float64).log_softmax(-1), name).item() == INF


# ---------------------------------------------------------------------------------------- mirror steps

def _objective(logpi_new, logpi, reward, eta, divergence, beta=0.0, logp_ref=None):
    def d(a, b):   # D(pi, anchor), with pi first
        if divergence == "reverse":
            return divergences.kl(a, b)
        if divergence == "forward":
            return divergences.kl(b, a)
        return online.bregman(a, b, "log_barrier")
    value = eta * (logpi_new.exp() * reward).sum(-1) - d(logpi_new, logpi)
    return value - eta * beta * d(logpi_new, logp_ref) if beta > 0 else value


@pytest.mark.parametrize("divergence", online.DIVERGENCES)
@pytest.mark.parametrize("beta", [0.0, 0.3])
def test_mirror_step_maximises_its_objective(divergence, beta):
    logpi, ref = random_logp(6, seed=7, scale=1.0), random_logp(6, seed=8, scale=1.0)
    reward = torch.randn(6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    step = online.mirror_step(logpi, reward, 0.7, divergence=divergence, beta=beta, logp_ref=ref)
    assert step.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    best = _objective(step, logpi, reward, 0.7, divergence, beta, ref)
    noise = 0.05 * torch.randn(3000, 6, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    others = torch.log_softmax(step + noise, -1)
    values = _objective(others, logpi.expand(3000, 6), reward.expand(3000, 6), 0.7, divergence, beta,
                        ref.expand(3000, 6))
    assert (values <= best + 1e-12).all()


def test_reverse_step_is_a_gibbs_step_with_a_moved_reference():
    logpi, ref = random_logp(5, seed=11), random_logp(5, seed=12)
    r = torch.randn(5, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    eta, beta = 1.5, 0.2
    expected = torch.log_softmax((logpi + eta * beta * ref + eta * r) / (1 + eta * beta), -1)
    torch.testing.assert_close(online.mirror_step(logpi, r, eta, beta=beta, logp_ref=ref), expected)
    torch.testing.assert_close(online.mirror_step(logpi, r, eta), rlhf.kl_regularized_policy(logpi, r, 1 / eta))


def test_forward_step_is_the_forward_kl_optimum_of_the_arithmetic_mixture():
    # Oracle: kllab.maths.rlhf's forward-KL optimum (a brentq solve) with reference (pi_k + eta beta pi_ref)/(1 + eta beta).
    logpi, ref = random_logp(5, seed=14), random_logp(5, seed=15)
    r = torch.randn(5, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    eta, beta = 0.8, 0.5
    mixture = ((logpi.exp() + eta * beta * ref.exp()) / (1 + eta * beta)).log()
    expected = rlhf.kl_regularized_policy(mixture, r, beta + 1 / eta, direction="forward")
    got = online.mirror_step(logpi, r, eta, divergence="forward", beta=beta, logp_ref=ref)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


def test_forward_step_keeps_zero_mass_arms_at_zero_and_batches():
    logpi = torch.tensor([[-0.1, -INF, -2.35], [-1.2, -0.4, -2.2]], dtype=torch.float64).log_softmax(-1)
    r = torch.tensor([[0.0, 5.0, 1.0], [1.0, 0.0, -1.0]], dtype=torch.float64)
    out = online.mirror_step(logpi, r, 0.5, divergence="forward")
    assert out[0, 1].item() == -INF and torch.isfinite(out[1]).all()
    torch.testing.assert_close(out[1], online.mirror_step(logpi[1], r[1], 0.5, divergence="forward"))


@pytest.mark.parametrize("regularizer, divergence", [("entropy", "reverse"), ("log_barrier", "itakura_saito")])
def test_ftrl_equals_mirror_descent_even_with_very_negative_losses(regularizer, divergence):
    g = torch.Generator().manual_seed(17)
    logp = torch.full((3, 5), -math.log(5), dtype=torch.float64)
    total = torch.zeros(3, 5, dtype=torch.float64)
    for _ in range(100):
        loss = torch.randn(3, 5, generator=g, dtype=torch.float64) * 20
        logp = online.mirror_step(logp, -loss, 0.05, divergence=divergence)
        total = total + loss
    torch.testing.assert_close(logp, online.ftrl(total, 0.05, regularizer=regularizer), atol=1e-9, rtol=0)


def test_ftrl_closed_forms_against_scipy():
    L = torch.tensor([0.3, -5.0, 2.0, 10.0], dtype=torch.float64)
    torch.testing.assert_close(online.ftrl(L, 0.4).exp(), torch.softmax(-0.4 * L, -1))
    # Log-barrier: p_i = 1 / (1/p_1 + eta L_i + lam), lam by brentq.
    theta = 4 + 0.4 * L.numpy()
    lam = brentq(lambda c: (1 / (theta + c)).sum() - 1, -theta.min() + 1e-12, 10.0, xtol=1e-15)
    torch.testing.assert_close(online.ftrl(L, 0.4, regularizer="log_barrier").exp(),
                               torch.as_tensor(1 / (theta + lam)), atol=1e-12, rtol=0)


def test_ftrl_huge_losses_and_excluded_arms():
    L = torch.tensor([1e9, -1e9, 0.0], dtype=torch.float64)
    p = online.ftrl(L, 0.5, regularizer="log_barrier").exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12) and (p > 0).all()
    init = torch.tensor([math.log(0.5), -INF, math.log(0.5)], dtype=torch.float64)
    for reg in online.REGULARIZERS:
        assert online.ftrl(torch.tensor([1.0, -3.0, 0.0], dtype=torch.float64), 0.5, regularizer=reg,
                           logp_init=init)[1].item() == -INF


# ---------------------------------------------------------------------------------------- estimates, stability

@pytest.mark.parametrize("shift", [0.0, 0.5, 1.0])
def test_loss_estimate_is_unbiased(shift):
    logp = random_logp(5, seed=18)
    losses = torch.tensor([0.1, 0.9, 0.5, 0.0, 1.0], dtype=torch.float64)
    expectation = sum(logp[a].exp() * online.loss_estimate(losses[a], torch.tensor(a), logp, shift=shift) for a in range(5))
    torch.testing.assert_close(expectation, losses, atol=1e-12, rtol=0)


def test_shifted_estimate_is_very_negative_for_rare_arms():
    logp = torch.tensor([1 - 1e-4, 1e-4], dtype=torch.float64).log()
    est = online.loss_estimate(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1), logp, shift=1.0)
    assert est.tolist() == pytest.approx([1.0, 1 - 1e4])


@pytest.mark.parametrize("divergence", online.DIVERGENCES)
def test_stability_matches_a_numerical_supremum(divergence):
    # sup over q > 0 of <l, p - q> - D(q, p)/eta, coordinate by coordinate (D separates), by a bounded 1-D search.
    p = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    est = torch.tensor([0.5, -1.5, 3.0], dtype=torch.float64)
    eta = 0.4

    def term(q, pi, li):
        if divergence == "reverse":
            d = q * math.log(q / pi) - q + pi
        elif divergence == "forward":
            d = pi * math.log(pi / q) - pi + q
        else:
            d = q / pi - math.log(q / pi) - 1
        return li * (pi - q) - d / eta

    total = 0.0
    for pi, li in zip(p.tolist(), est.tolist()):
        res = minimize_scalar(lambda x: -term(math.exp(x) * pi, pi, li), bounds=(-30, 30), method="bounded",
                              options={"xatol": 1e-12})
        total += -res.fun
    assert online.stability(p.log(), est, eta, divergence=divergence).item() == pytest.approx(total, rel=1e-7)


def test_stability_infinite_cases():
    p = torch.tensor([0.5, 0.5], dtype=torch.float64).log()
    est = torch.tensor([-10.0, 1.0], dtype=torch.float64)
    assert online.stability(p, est, 0.2, divergence="forward").item() == INF          # eta l = -2 <= -1
    assert math.isfinite(online.stability(p, est, 0.2, divergence="reverse").item())  # finite, but e^2-sized
    assert math.isfinite(online.stability(p, est / 2, 0.2, divergence="itakura_saito").item())   # eta p l = -0.5
    assert online.stability(p, 2 * est, 0.2, divergence="itakura_saito").item() == INF          # eta p l = -2


# ---------------------------------------------------------------------------------------- bounds

def test_regret_bounds_closed_forms():
    assert online.regret_bound(5, 3000, online.tuned_eta(5, 3000)) == pytest.approx(math.sqrt(2 * 3000 * 5 * math.log(5)))
    assert online.regret_bound(5, 3000, 0.01, shift=1.0) == INF
    assert online.regret_bound(5, 3000, 0.01, divergence="forward") == INF
    assert online.regret_bound(5, 3000, 1.0, divergence="itakura_saito") == INF
    eta = online.tuned_eta(8, 1000, divergence="itakura_saito")
    for d in ("reverse", "itakura_saito"):   # strictly: a bound that ignored eta would tie
        e = online.tuned_eta(8, 1000, divergence=d)
        assert online.regret_bound(8, 1000, e, divergence=d) < min(
            online.regret_bound(8, 1000, f * e, divergence=d) for f in (0.8, 1.25))
    c_k = float(online.barrier_penalty(8, 1000))
    assert online.regret_bound(8, 1000, 0.2, divergence="itakura_saito") == pytest.approx(c_k / 0.2 + 0.2 * 1000 / 2 + 1)
    assert online.regret_bound(8, 1000, 0.2, divergence="itakura_saito", shift=0.5) == pytest.approx(
        c_k / 0.2 + 0.2 * 1000 / (2 * 0.8) + 1)
    assert online.regret_bound(8, 1000, eta, divergence="itakura_saito", shift=1.0) > \
        online.regret_bound(8, 1000, eta, divergence="itakura_saito")


def test_barrier_penalty_is_the_regulariser_range():
    k, t = 6, 500
    u = torch.full((k,), 1 / (t * k), dtype=torch.float64)
    u[0] = 1 - (k - 1) / (t * k)
    uniform = torch.full((k,), -math.log(k), dtype=torch.float64)
    expected = online.regularizer(u.log(), "log_barrier") - online.regularizer(uniform, "log_barrier")
    assert float(online.barrier_penalty(k, t)) == pytest.approx(expected.item(), rel=1e-12)


# ---------------------------------------------------------------------------------------- bandit runs

@pytest.mark.parametrize("divergence", online.DIVERGENCES)
def test_play_bandit_shapes_pathwise_decomposition_and_absent_arms(divergence):
    means = torch.tensor([[0.3, 0.5, 0.6, math.nan], [0.2, 0.4, 0.45, 0.7]], dtype=torch.float64)
    run = online.play_bandit(means, 300, torch.tensor([0.1, 0.2]), divergence=divergence, shift=torch.tensor([1.0, 0.0]),
                             n_runs=5, seed=3)
    assert run.regret.shape == (2, 5, 300) and run.stability.shape == (2, 5)
    assert (run.regret.diff(dim=-1) >= -1e-12).all() and (run.regret >= -1e-12).all()   # pseudo-regret only grows
    assert (run.min_prob > 0).all() and (run.min_prob <= 1).all()
    if divergence != "forward":
        slack = run.penalty[:, None] + run.stability - run.estimated_regret
        assert (slack >= -1e-9 * (1 + run.stability.abs())).all()
    else:
        assert torch.isnan(run.penalty).all()


def test_play_bandit_is_reproducible_and_starts_uniform():
    means = torch.tensor([[0.3, 0.6]], dtype=torch.float64)
    a = online.play_bandit(means, 50, 0.3, divergence="itakura_saito", shift=1.0, n_runs=2, seed=1)
    b = online.play_bandit(means, 50, 0.3, divergence="itakura_saito", shift=1.0, n_runs=2, seed=1)
    assert torch.equal(a.regret, b.regret)
    # The first round plays the uniform policy: pseudo-regret 0.15 per run.
    assert a.regret[0, :, 0].tolist() == pytest.approx([0.15, 0.15])


@pytest.mark.parametrize("divergence", online.DIVERGENCES)
def test_play_bandit_steps_down_the_loss_exactly_as_mirror_step(divergence):
    # Deterministic losses (means 0 and 1): only the arm drawn is random. The pseudo-regret increment of round t is
    # p_t(bad arm) exactly, so the record gives the whole path of the bad arm's probability. Each round either leaves
    # it alone (the estimate is the same for both arms) or takes one mirror step from p_t against the one estimate
    # that moves it: the bad arm played at loss 1 (s = 0), or the good arm played at loss 0 (s = 1). A learner that
    # climbed the loss would raise p_t(bad) instead.
    t, eta = 300, 0.2
    shifts = torch.tensor([0.0, 1.0], dtype=torch.float64)
    run = online.play_bandit(torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64), t, eta, divergence=divergence,
                             shift=shifts, n_runs=6, seed=4)
    p_bad = torch.cat([run.regret[..., :1], run.regret.diff(dim=-1)], -1)           # (2, 6, T)
    assert (p_bad[..., 0] == 0.5).all()
    for row, (shift, arm, loss) in enumerate([(0.0, 1, 1.0), (1.0, 0, 0.0)]):
        # Rounds whose p_t(bad) is still resolved (Exp3 drives it to 1e-300 and below within the run).
        live = p_bad[row, :, :-1] > 1e-6
        before, after = p_bad[row, :, :-1][live], p_bad[row, :, 1:][live]
        logp = torch.stack([torch.log1p(-before), before.log()], -1)                # p_t = (good, bad)
        est = online.loss_estimate(torch.full(before.shape, loss, dtype=torch.float64),
                                   torch.full(before.shape, arm), logp, shift=shift)
        moved = online.mirror_step(logp, -est, eta, divergence=divergence).exp()[..., 1]
        assert (moved < before).all()                                               # that step lowers the bad arm
        same = (after - before).abs() <= 1e-12
        stepped = (after - moved).abs() <= 1e-9 * moved + 1e-12                     # the record is a cumulative sum
        assert (same | stepped).all(), f"{divergence}, s={shift}: a round neither stayed nor took the mirror step"
        assert stepped.sum() >= 10                                                  # and the step was taken often
    assert (p_bad[..., -1] < 0.05).all()                                            # from 0.5: it learned


@pytest.mark.parametrize("divergence", online.DIVERGENCES)
def test_play_bandit_learns_on_a_stochastic_bandit(divergence):
    # K = 8 Bernoulli arms with means 0.3..0.6, the standard estimate, the tuned step: the uniform policy pays 0.15 per
    # round. Every learner ends below 0.75 of that and pays less in the second half than in the first (seen: 0.47 to
    # 0.61 of uniform; a learner climbing the loss pays more than uniform). Not with the shifted estimate: there Exp3's
    # second half can cost more than its first, which is the instability P16 is about.
    k, t = 8, 1000
    means = torch.linspace(0.3, 0.6, k, dtype=torch.float64)[None]
    run = online.play_bandit(means, t, online.tuned_eta(k, t, divergence=divergence), divergence=divergence,
                             n_runs=20, seed=0)
    uniform = t * (means[0] - 0.3).mean().item()
    final, half = run.regret[0, :, -1].mean().item(), run.regret[0, :, t // 2 - 1].mean().item()
    assert final < 0.75 * uniform, (final, uniform)
    assert final - half < half, (half, final - half)


def test_log_barrier_regret_within_its_bound_with_negative_estimates():
    k, t = 4, 800
    means = torch.linspace(0.3, 0.6, k, dtype=torch.float64)[None].expand(2, k).clone()
    eta = online.tuned_eta(k, t, divergence="itakura_saito")
    run = online.play_bandit(means, t, eta, divergence="itakura_saito", shift=torch.tensor([0.0, 1.0]), n_runs=8, seed=0)
    for row, shift in enumerate((0.0, 1.0)):
        assert run.regret[row, :, -1].mean().item() <= online.regret_bound(k, t, eta, divergence="itakura_saito",
                                                                           shift=shift)
    assert run.min_prob.min().item() > 1e-4      # the barrier keeps every arm in play


# ---------------------------------------------------------------------------------------- bad input

def test_bad_input():
    u = torch.full((3,), -math.log(3), dtype=torch.float64)
    with pytest.raises(ValueError, match="divergence must be one of"):
        online.mirror_step(u, torch.zeros(3), 0.1, divergence="sideways")
    with pytest.raises(ValueError, match="regularizer must be one of"):
        online.ftrl(torch.zeros(3), 0.1, regularizer="kl")
    with pytest.raises(ValueError, match="eta must be > 0"):
        online.mirror_step(u, torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="logp_ref must be given"):
        online.mirror_step(u, torch.zeros(3), 0.1, beta=0.5)
    with pytest.raises(ValueError, match="reward and logpi must have the same shape"):
        online.mirror_step(u, torch.zeros(4), 0.1)
    with pytest.raises(ValueError, match="must be finite for the itakura_saito step"):
        online.mirror_step(torch.tensor([0.0, -INF], dtype=torch.float64), torch.zeros(2), 0.1, divergence="itakura_saito")
    with pytest.raises(ValueError, match="log-probabilities"):
        online.bregman(torch.zeros(3), u, "entropy")
    with pytest.raises(ValueError, match="cum_loss must be finite"):
        online.ftrl(torch.tensor([0.0, INF]), 0.1)
    with pytest.raises(ValueError, match="arm must have positive probability"):
        online.loss_estimate(torch.tensor(0.0), torch.tensor(1), torch.tensor([0.0, -INF], dtype=torch.float64))
    with pytest.raises(ValueError, match="means must lie in"):
        online.play_bandit(torch.tensor([[0.5, 1.5]]), 10, 0.1)
    with pytest.raises(ValueError, match="at least 2 arms"):
        online.play_bandit(torch.tensor([[0.5, math.nan]]), 10, 0.1)
    with pytest.raises(ValueError, match="shift must be in"):
        online.play_bandit(torch.tensor([[0.5, 0.2]]), 10, 0.1, shift=2.0)
    with pytest.raises(ValueError, match="n_arms must be >= 2"):
        online.regret_bound(1, 10, 0.1)
