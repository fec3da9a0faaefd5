"""Tests for kllab.maths.sequences: enumeration, Markov/i.i.d. log-probabilities, the tilted posterior, families."""

import itertools
import math

import pytest
import torch

from kllab.maths import divergences, rlhf
from kllab.maths import sequences as S

W = [-1.0, 0.0, 0.3, 1.0]


def _toy(vocab=4, length=5, seed=0):
    seqs = S.enumerate_sequences(vocab, length)
    log_init, log_trans = S.random_bigram(vocab, seed=seed)
    return seqs, log_init, log_trans


# ---------------------------------------------------------------- enumeration
def test_enumerate_matches_itertools_product():
    seqs = S.enumerate_sequences(3, 4)
    assert seqs.shape == (81, 4) and seqs.dtype == torch.int64
    assert seqs.tolist() == [list(t) for t in itertools.product(range(3), repeat=4)]


def test_enumerate_index_is_base_v_number():
    seqs = S.enumerate_sequences(4, 3)
    index = (seqs * torch.tensor([16, 4, 1])).sum(-1)
    assert torch.equal(index, torch.arange(64))


@pytest.mark.parametrize("kwargs, match", [
    ({"vocab": 0, "length": 3}, "vocab must be >= 1"),
    ({"vocab": 4, "length": 0}, "length must be >= 1"),
    ({"vocab": 4, "length": 20}, "vocab\\*\\*length must be <="),
    ({"vocab": 2.0, "length": 3}, "vocab must be an integer"),
])
def test_enumerate_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        S.enumerate_sequences(**kwargs)


# ---------------------------------------------------------------- random bigram
def test_random_bigram_rows_are_distributions_and_seeded():
    li, lt = S.random_bigram(5, seed=3)
    assert li.dtype == torch.float64 and lt.shape == (5, 5)
    assert torch.allclose(li.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(lt.exp().sum(-1), torch.ones(5, dtype=torch.float64), atol=1e-12)
    li2, lt2 = S.random_bigram(5, seed=3)
    assert torch.equal(li, li2) and torch.equal(lt, lt2)
    assert not torch.equal(lt, S.random_bigram(5, seed=4)[1])


def test_random_bigram_concentration_controls_peakedness():
    # Mean row entropy of Dir(alpha) grows with alpha (averaged over many rows).
    ent = [divergences.entropy(S.random_bigram(6, concentration=a, seed=0)[1]).mean().item() for a in (0.1, 1.0, 10.0)]
    assert ent[0] < ent[1] < ent[2] < math.log(6)


@pytest.mark.parametrize("kwargs, match", [
    ({"vocab": 1}, "vocab must be >= 2"),
    ({"vocab": 3, "concentration": 0.0}, "concentration must be > 0"),
    ({"vocab": 3, "seed": -1}, "seed must be >= 0"),
])
def test_random_bigram_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.random_bigram(**kwargs)


# ---------------------------------------------------------------- log-probabilities
def test_markov_log_prob_against_a_python_loop():
    seqs, li, lt = _toy(3, 4, seed=2)
    got = S.markov_log_prob(seqs, li, lt)
    for n in (0, 17, 80):
        x = seqs[n].tolist()
        want = li[x[0]].item() + sum(lt[x[t - 1], x[t]].item() for t in range(1, 4))
        assert got[n].item() == pytest.approx(want, abs=1e-12)


def test_markov_log_prob_normalised_and_homogeneous_equals_repeated():
    seqs, li, lt = _toy(4, 5)
    logp = S.markov_log_prob(seqs, li, lt)
    assert abs(torch.logsumexp(logp, 0).item()) < 1e-12
    repeated = lt.expand(4, 4, 4).clone()
    assert torch.allclose(S.markov_log_prob(seqs, li, repeated), logp, atol=0, rtol=0)


def test_markov_log_prob_position_dependent_is_normalised():
    seqs = S.enumerate_sequences(3, 4)
    gen = torch.Generator().manual_seed(0)
    trans = torch.log_softmax(torch.randn(3, 3, 3, generator=gen, dtype=torch.float64), -1)
    init = torch.log_softmax(torch.randn(3, generator=gen, dtype=torch.float64), -1)
    assert abs(torch.logsumexp(S.markov_log_prob(seqs, init, trans), 0).item()) < 1e-12


def test_markov_log_prob_bad_input():
    seqs, li, lt = _toy(3, 4)
    with pytest.raises(ValueError, match="log_trans must be log-probabilities"):
        S.markov_log_prob(seqs, li, lt + 1.0)
    with pytest.raises(ValueError, match="log_trans must have shape"):
        S.markov_log_prob(seqs, li, lt.expand(2, 3, 3).clone())
    with pytest.raises(ValueError, match="token ids < 3"):
        S.markov_log_prob(seqs + 1, li, lt)
    with pytest.raises(ValueError, match="seqs must be an integer tensor"):
        S.markov_log_prob(seqs.double(), li, lt)


def test_iid_log_prob_is_a_product_and_normalised():
    seqs = S.enumerate_sequences(3, 3)
    u = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    got = S.iid_log_prob(seqs, u.log()).exp()
    want = u[seqs].prod(-1)
    assert torch.allclose(got, want, atol=1e-15)
    per_pos = torch.log_softmax(torch.arange(9.0, dtype=torch.float64).reshape(3, 3) / 3, -1)
    assert abs(torch.logsumexp(S.iid_log_prob(seqs, per_pos), 0).item()) < 1e-12
    with pytest.raises(ValueError, match="log_probs must have shape"):
        S.iid_log_prob(seqs, torch.full((2, 3), -math.log(3), dtype=torch.float64))


def test_token_reward():
    seqs = S.enumerate_sequences(4, 3)
    r = S.token_reward(seqs, W)
    assert r.max().item() == pytest.approx(3.0) and int(r.argmax()) == 63  # (3, 3, 3) is the unique argmax
    assert r.min().item() == pytest.approx(-3.0)
    with pytest.raises(ValueError, match="weights must be a finite"):
        S.token_reward(seqs, [0.0, math.inf, 0.0, 0.0])
    with pytest.raises(ValueError, match="token ids < 3"):
        S.token_reward(seqs, [0.0, 1.0, 2.0])


# ---------------------------------------------------------------- the tilted posterior
@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0, 4.0])
def test_tilted_markov_matches_brute_force_and_rlhf(beta):
    seqs, li, lt = _toy(4, 5, seed=1)
    logp0 = S.markov_log_prob(seqs, li, lt)
    r = S.token_reward(seqs, W)
    init_s, trans_s, log_z = S.tilted_markov(li, lt, W, beta, 5)
    assert trans_s.shape == (4, 4, 4)
    assert log_z.item() == pytest.approx(torch.logsumexp(logp0 + r / beta, 0).item(), abs=1e-12)
    assert log_z.item() == pytest.approx(rlhf.log_partition(logp0, r, beta).item(), abs=1e-12)
    post = S.markov_log_prob(seqs, init_s, trans_s)
    assert torch.allclose(post, rlhf.kl_regularized_policy(logp0, r, beta), atol=1e-11, rtol=0)


def test_tilted_markov_limits():
    seqs, li, lt = _toy(3, 4)
    # Zero reward: the posterior is the prior and Z = 1.
    init_s, trans_s, log_z = S.tilted_markov(li, lt, [0.0, 0.0, 0.0], 1.0, 4)
    assert abs(log_z.item()) < 1e-12
    assert torch.allclose(S.markov_log_prob(seqs, init_s, trans_s), S.markov_log_prob(seqs, li, lt), atol=1e-12)
    # Tiny beta: the posterior is (nearly) a Dirac on the unique reward maximiser (2, 2, 2, 2).
    init_s, trans_s, _ = S.tilted_markov(li, lt, [0.0, 0.5, 1.0], 0.01, 4)
    post = S.markov_log_prob(seqs, init_s, trans_s).exp()
    assert post[-1].item() > 1 - 1e-6


def test_tilted_markov_length_one_and_bad_input():
    li, lt = S.random_bigram(3, seed=0)
    init_s, trans_s, log_z = S.tilted_markov(li, lt, [0.0, 1.0, 2.0], 1.0, 1)
    assert trans_s.shape == (0, 3, 3)
    assert log_z.item() == pytest.approx(torch.logsumexp(li + torch.tensor([0.0, 1.0, 2.0]), 0).item(), abs=1e-12)
    with pytest.raises(ValueError, match="beta must be > 0"):
        S.tilted_markov(li, lt, [0.0, 1.0, 2.0], 0.0, 3)
    with pytest.raises(ValueError, match="weights must be a finite vector of shape"):
        S.tilted_markov(li, lt, [0.0, 1.0], 1.0, 3)


def test_variational_identity_for_random_policies():
    """J(pi) + beta KL(pi || pi*) - beta log Z = 0 for every pi (Korbak et al., 2022)."""
    seqs, li, lt = _toy(4, 4, seed=5)
    logp0 = S.markov_log_prob(seqs, li, lt)
    r = S.token_reward(seqs, W)
    beta = 0.7
    _, _, log_z = S.tilted_markov(li, lt, W, beta, 4)
    logp_star = rlhf.kl_regularized_policy(logp0, r, beta)
    gen = torch.Generator().manual_seed(0)
    logpi = torch.log_softmax(3 * torch.randn(50, len(seqs), generator=gen, dtype=torch.float64), -1)
    j = rlhf.objective(logpi, logp0.expand(50, -1), r.expand(50, -1), beta)
    gap = j + beta * divergences.kl(logpi, logp_star.expand(50, -1)) - beta * log_z
    assert gap.abs().max().item() < 1e-10


# ---------------------------------------------------------------- marginals and the unigram projection
def test_marginals_of_an_iid_model_are_its_token_distribution():
    seqs = S.enumerate_sequences(3, 4)
    u = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)
    m = S.marginals(seqs, S.iid_log_prob(seqs, u.log()), 3)
    assert m.shape == (4, 3)
    assert torch.allclose(m, u.expand(4, 3), atol=1e-14)


def test_marginals_of_a_markov_chain_follow_its_transition_matrix():
    # An i.i.d. model has the same marginal at every position, so it cannot tell positions apart; a Markov chain's
    # marginal at position t is init @ trans^t, a different distribution at each position.
    seqs, li, lt = _toy(3, 4, seed=2)
    m = S.marginals(seqs, S.markov_log_prob(seqs, li, lt), 3)
    init, trans = li.exp(), lt.exp()
    expected = torch.stack([init @ torch.linalg.matrix_power(trans, t) for t in range(4)])
    assert torch.allclose(m, expected, atol=1e-14, rtol=0)
    assert (m[0] - m[-1]).abs().max().item() > 1e-3          # the positions do differ here


def test_unigram_projection_is_the_forward_kl_minimiser():
    seqs, li, lt = _toy(3, 4, seed=7)
    logp = S.markov_log_prob(seqs, li, lt)
    logu = S.unigram_projection(seqs, logp, 3)
    best = divergences.kl(logp, S.iid_log_prob(seqs, logu)).item()
    gen = torch.Generator().manual_seed(1)
    for _ in range(200):
        other = torch.log_softmax(logu + 0.2 * torch.randn(3, generator=gen, dtype=torch.float64), -1)
        assert divergences.kl(logp, S.iid_log_prob(seqs, other)).item() >= best - 1e-12
    # Gradient with respect to the logits vanishes at the projection.
    z = logu.clone().requires_grad_(True)
    divergences.kl(logp, S.iid_log_prob(seqs, torch.log_softmax(z, -1))).backward()
    assert z.grad.abs().max().item() < 1e-12


def test_marginals_bad_input():
    seqs = S.enumerate_sequences(2, 2)
    with pytest.raises(ValueError, match="logq must have shape"):
        S.marginals(seqs, torch.full((3,), -math.log(3), dtype=torch.float64), 2)
    with pytest.raises(ValueError, match="logq must be log-probabilities"):
        S.marginals(seqs, torch.zeros(4, dtype=torch.float64), 2)


# ---------------------------------------------------------------- families
@pytest.mark.parametrize("family", S.FAMILIES)
def test_family_members_are_normalised(family):
    seqs = S.enumerate_sequences(3, 4)
    gen = torch.Generator().manual_seed(0)
    params = {k: 2 * torch.randn(v.shape, generator=gen, dtype=torch.float64)
              for k, v in S.init_family(family, 3, 4).items()}
    logq = S.family_log_prob(family, params, seqs)
    assert logq.shape == (81,)
    assert abs(torch.logsumexp(logq, 0).item()) < 1e-12


def test_init_family_starts_at_the_prior_when_it_can():
    seqs, li, lt = _toy(3, 4)
    logp0 = S.markov_log_prob(seqs, li, lt)
    for family in ("bigram", "table"):
        logq = S.family_log_prob(family, S.init_family(family, 3, 4, prior=(li, lt)), seqs)
        assert torch.allclose(logq, logp0, atol=1e-12)
    uni = S.family_log_prob("unigram", S.init_family("unigram", 3, 4, prior=(li, lt)), seqs)
    assert torch.allclose(uni, torch.full((81,), -4 * math.log(3), dtype=torch.float64), atol=1e-12)


def test_family_bad_input():
    seqs = S.enumerate_sequences(3, 3)
    with pytest.raises(ValueError, match="family must be one of"):
        S.init_family("trigram", 3, 3)
    with pytest.raises(ValueError, match="params must have keys"):
        S.family_log_prob("bigram", {"logits": torch.zeros(3, dtype=torch.float64)}, seqs)
    with pytest.raises(ValueError, match="must have shape"):
        S.family_log_prob("bigram", S.init_family("bigram", 3, 4), seqs)
    with pytest.raises(ValueError, match="one entry per sequence"):
        S.family_log_prob("table", {"logits": torch.zeros(5, dtype=torch.float64)}, seqs)


def test_fit_family_forward_recovers_an_iid_target():
    seqs = S.enumerate_sequences(3, 4)
    u = torch.tensor([0.15, 0.25, 0.6], dtype=torch.float64)
    target = S.iid_log_prob(seqs, u.log())
    fit = S.fit_family("unigram", lambda logq: divergences.kl(target, logq), seqs, S.init_family("unigram", 3, 4),
                       steps=400, lr=0.1, snapshots=[0, 400])
    assert torch.allclose(torch.softmax(fit.params["logits"], -1), u, atol=1e-5)
    assert len(fit.history) == 400 and fit.history[-1] < fit.history[0]
    assert set(fit.path) == {0, 400} and torch.equal(fit.path[400], fit.logq)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_fit_family_bigram_reaches_the_posterior(direction):
    """The position-dependent bigram family contains pi*, so both KL directions reach it."""
    seqs, li, lt = _toy(3, 4, seed=0)
    logp0 = S.markov_log_prob(seqs, li, lt)
    r = S.token_reward(seqs, [-1.0, 0.0, 1.0])
    logp_star = rlhf.kl_regularized_policy(logp0, r, 1.0)
    loss = ((lambda q: -rlhf.objective(q, logp0, r, 1.0)) if direction == "reverse"
            else (lambda q: divergences.kl(logp_star, q)))
    fit = S.fit_family("bigram", loss, seqs, S.init_family("bigram", 3, 4, prior=(li, lt)), steps=300, lr=0.1)
    assert divergences.kl(fit.logq, logp_star).item() < 1e-6


def test_fit_family_table_matches_rlhf_fit_policy():
    """The "table" family trained on the RL objective is exactly kllab.maths.rlhf.fit_policy."""
    seqs, li, lt = _toy(3, 3, seed=0)
    logp0 = S.markov_log_prob(seqs, li, lt)
    r = S.token_reward(seqs, [-1.0, 0.0, 1.0])
    fit = S.fit_family("table", lambda q: -rlhf.objective(q, logp0, r, 0.5), seqs,
                       S.init_family("table", 3, 3, prior=(li, lt)), steps=60, lr=0.05)
    ref, _ = rlhf.fit_policy(logp0, r, 0.5, steps=60, lr=0.05)
    assert torch.allclose(fit.logq, ref, atol=1e-10)


def test_fit_family_bad_input():
    seqs = S.enumerate_sequences(2, 2)
    start = S.init_family("unigram", 2, 2)
    with pytest.raises(ValueError, match="loss must be a callable"):
        S.fit_family("unigram", 3.0, seqs, start)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        S.fit_family("unigram", lambda q: q.sum(), seqs, start, steps=0)
    with pytest.raises(ValueError, match="snapshots must be <= 5"):
        S.fit_family("unigram", lambda q: q.sum(), seqs, start, steps=5, snapshots=[6])
    with pytest.raises(ValueError, match="loss must return a scalar"):
        S.fit_family("unigram", lambda q: q, seqs, start, steps=2)


def test_fit_family_batched_equals_separate_runs():
    """Two policies trained side by side follow exactly their separate paths (Adam is element-wise)."""
    seqs, li, lt = _toy(3, 4, seed=3)
    logp0 = S.markov_log_prob(seqs, li, lt)
    r = S.token_reward(seqs, [-1.0, 0.0, 1.0])
    logp_star = rlhf.kl_regularized_policy(logp0, r, 1.0)
    rev = lambda q: -rlhf.objective(q, logp0.expand_as(q), r.expand_as(q), 1.0)
    fwd = lambda q: divergences.kl(logp_star.expand_as(q), q)
    for family in S.FAMILIES:
        start = S.init_family(family, 3, 4, prior=(li, lt), batch=2)
        both = S.fit_family(family, lambda q: torch.stack([rev(q[0]), fwd(q[1])]), seqs, start, steps=40, lr=0.1,
                            snapshots=[40])
        assert both.logq.shape == (2, 81) and len(both.history[0]) == 2
        for i, loss in enumerate((rev, fwd)):
            alone = S.fit_family(family, loss, seqs, S.init_family(family, 3, 4, prior=(li, lt)), steps=40, lr=0.1)
            assert torch.allclose(both.logq[i], alone.logq, atol=1e-12, rtol=0)
            assert both.history[-1][i] == pytest.approx(alone.history[-1], abs=1e-12)


def test_family_log_prob_batched_shapes():
    seqs = S.enumerate_sequences(3, 3)
    params = S.init_family("bigram", 3, 3, batch=4)
    assert S.family_log_prob("bigram", params, seqs).shape == (4, 27)
    params["init"] = params["init"][:2]
    with pytest.raises(ValueError, match="share their leading batch shape"):
        S.family_log_prob("bigram", params, seqs)
