"""Distillation: the T² factor, directions, and the closed-form gradient against autograd."""

import math

import pytest
import torch

from kllab.maths.distill import kd_gradient, kd_loss
from kllab.maths.divergences import js, kl

pytestmark = pytest.mark.usefixtures("float64")


def logits(seed, shape=(6, 10)):
    return 3 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
def test_kd_loss_is_t2_times_kl(T):
    t, s = logits(0), logits(1)
    p, q = torch.log_softmax(t / T, -1), torch.log_softmax(s / T, -1)
    torch.testing.assert_close(kd_loss(t, s, T), T ** 2 * kl(p, q))
    torch.testing.assert_close(kd_loss(t, s, T, direction="reverse"), T ** 2 * kl(q, p))
    torch.testing.assert_close(kd_loss(t, s, T, direction="js"), T ** 2 * js(p, q))
    torch.testing.assert_close(kd_loss(t, s, T, t2_scaling=False), kl(p, q))


def test_gradient_closed_form_matches_autograd():
    t, s = logits(2), logits(3).requires_grad_(True)
    kd_loss(t, s, 3.0, t2_scaling=False).sum().backward()
    torch.testing.assert_close(s.grad, kd_gradient(t, s.detach(), 3.0))


@pytest.mark.parametrize("T", [1e3, 2e3])
def test_t2_keeps_gradient_scale_at_high_temperature(T):
    # The gradient of T² KL(p_T || q_T) in the student's logits is T (q_T - p_T), which tends to the
    # T-free limit (centred(z_s) - centred(z_t)) / K: autograd through kd_loss must land on it at every
    # high T. Dropping the T² factor (or replacing it by T or T³) moves the gradient by a factor T.
    t, s = logits(4, (1, 10)), logits(5, (1, 10)).requires_grad_(True)
    kd_loss(t, s, T).sum().backward()
    limit = ((s.detach() - s.detach().mean()) - (t - t.mean())) / 10
    torch.testing.assert_close(s.grad, limit, rtol=1e-2, atol=1e-6)
    # Without T² the same gradient is T² times smaller: the closed form (q_T - p_T) / T.
    torch.testing.assert_close(kd_gradient(t, s.detach(), T), limit / T ** 2, rtol=1e-2, atol=1e-12)


def test_high_temperature_limit_is_logit_matching():
    # As T -> inf, T² KL(p_T || q_T) -> (1 / 2K) * ||centred(z_t - z_s)||² (Hinton et al., 2015).
    t, s = logits(6, (10,)), logits(7, (10,))
    d = (t - t.mean()) - (s - s.mean())
    limit = (d ** 2).sum().item() / (2 * 10)
    assert kd_loss(t, s, 1e3).item() == pytest.approx(limit, rel=1e-2)


def test_shape_contract():
    assert kd_loss(logits(0, (2, 3, 5)), logits(1, (2, 3, 5)), 2.0).shape == (2, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0.0}, "temperature must be > 0; got 0.0"),
    ({"direction": "both"}, "direction must be one of 'forward', 'reverse', 'js'; got 'both'"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError) as err:
        kd_loss(logits(0), logits(1), **kwargs)
    assert message in str(err.value)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="logits_teacher and logits_student must have the same shape"):
        kd_loss(logits(0, (2, 5)), logits(1, (2, 4)))


# --- The bucketed (clipped) KL of MGSR's DAC-KL ------------------------------------------------------

from scipy.special import rel_entr  # noqa: E402

from kllab.maths.distill import (bucket_kd_loss, bucket_kl, fit_low_rank_student, teacher_head,  # noqa: E402
                                 truncated_kl)


def log_probs(seed, shape=(6, 10), scale=2.0):
    return torch.log_softmax(logits(seed, shape) * scale / 3, -1)


def merged_by_hand(p, keep):
    """Oracle in NumPy: the kept probabilities, then one bucket with the rest, per row."""
    import numpy as np
    p, keep = p.numpy(), keep.numpy()
    return [np.append(row[k], row[~k].sum()) for row, k in zip(p, keep)]


@pytest.mark.parametrize("k", [1, 3, 9])
def test_bucket_kl_matches_scipy_on_the_merged_distributions(k):
    lp, lq = log_probs(0), log_probs(1)
    keep = teacher_head(lp, top_k=k)
    want = [rel_entr(a, b).sum() for a, b in zip(merged_by_hand(lp.exp(), keep), merged_by_hand(lq.exp(), keep))]
    torch.testing.assert_close(bucket_kl(lp, lq, keep), torch.tensor(want))
    back = [rel_entr(b, a).sum() for a, b in zip(merged_by_hand(lp.exp(), keep), merged_by_hand(lq.exp(), keep))]
    torch.testing.assert_close(bucket_kl(lp, lq, keep, direction="reverse"), torch.tensor(back))


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_chain_rule_and_data_processing(direction):
    # KL = KL_S + m(R) KL(. | R): exact, so KL_S <= KL, with equality when nothing is merged.
    lp, lq = log_probs(2, (200, 12)), log_probs(3, (200, 12))
    for k in (1, 4, 11, 12):
        keep = teacher_head(lp, top_k=k)
        full = kl(lp, lq, direction=direction)
        ref, mod = (lp, lq) if direction == "forward" else (lq, lp)
        mass = torch.where(keep, -math.inf, ref).logsumexp(-1)
        tail = torch.where(torch.isfinite(mass), mass.exp() * truncated_kl(ref, mod, ~keep), torch.zeros(()))
        torch.testing.assert_close(bucket_kl(lp, lq, keep, direction=direction) + tail, full, rtol=0, atol=1e-12)
        assert (bucket_kl(lp, lq, keep, direction=direction) <= full + 1e-12).all()
    everything = torch.ones_like(lp, dtype=torch.bool)
    torch.testing.assert_close(bucket_kl(lp, lq, everything, direction=direction), kl(lp, lq, direction=direction))


def test_bucket_equals_full_when_q_is_proportional_on_the_tail():
    # Equality in the data processing inequality: q / p constant on the merged outcomes.
    lp = log_probs(4, (1, 8))[0]
    keep = teacher_head(lp, top_k=3)
    q = lp.exp().clone()
    q[keep] = torch.tensor([0.2, 0.1, 0.1])
    q[~keep] *= 0.6 / q[~keep].sum()
    assert bucket_kl(lp, q.log(), keep).item() == pytest.approx(kl(lp, q.log()).item(), abs=1e-12)


def test_teacher_head_top_k_and_mass():
    lp = log_probs(5, (50, 20))
    keep = teacher_head(lp, top_k=4)
    assert (keep.sum(-1) == 4).all()
    assert (lp.masked_fill(~keep, math.inf).min(-1).values >= lp.masked_fill(keep, -math.inf).max(-1).values).all()
    for m in (0.3, 0.9, 1.0):
        keep = teacher_head(lp, mass=m)
        kept = torch.where(keep, lp.exp(), torch.zeros(())).sum(-1)
        smallest = torch.where(keep, lp.exp(), torch.full((), 2.0)).min(-1).values
        assert (kept >= m - 1e-12).all() and (kept - smallest < m).all()   # reaches m, and is the smallest such set


def test_bucket_kd_loss_is_kd_loss_when_nothing_is_merged_and_t2_scaled():
    t, s = logits(6), logits(7)
    torch.testing.assert_close(bucket_kd_loss(t, s, 2.0, top_k=10), kd_loss(t, s, 2.0))
    torch.testing.assert_close(bucket_kd_loss(t, s, 3.0, top_k=4),
                               9 * bucket_kd_loss(t, s, 3.0, top_k=4, t2_scaling=False))


def test_bucket_inf_cases():
    p = torch.tensor([[0.0, -math.inf, -math.inf]])
    q = torch.tensor([[-math.inf, 0.0, -math.inf]])
    keep = torch.tensor([[True, False, False]])
    assert bucket_kl(p, q, keep).item() == math.inf
    # q's only mass is merged with p's zero: the bucket of p is empty, no nan
    assert bucket_kl(q, q, keep).item() == 0.0


def test_low_rank_student_wins_its_own_loss():
    # Each student must win its own loss by a clear margin, not merely tie: two identical students
    # (e.g. the bucket student trained on the forward loss by mistake) would pass a "<=" comparison.
    # Margins measured over initial seeds 0-4: the forward student's KL(t||s) is 2.4-3.4 nats below
    # the bucket student's, the bucket student's head KL_S 0.14-0.20 below the forward student's,
    # and the reverse student's KL(s||t) 0.28-0.73 below the better of the other two.
    lp = log_probs(8, (2, 12, 30), scale=3.0)
    keep = teacher_head(lp, top_k=3)
    s = fit_low_rank_student(lp, 2, keep, losses=("forward", "bucket", "reverse"), steps=300, lr=0.1, seed=0)
    assert s.shape == (3, 2, 12, 30) and s.dtype == torch.float64
    fwd, head, rev = ([f(i).mean().item() for i in range(3)] for f in
                      (lambda i: kl(lp, s[i]), lambda i: bucket_kl(lp, s[i], keep), lambda i: kl(s[i], lp)))
    assert fwd[0] < fwd[1] - 1.0 and fwd[0] < fwd[2] - 1.0, fwd
    assert head[1] < head[0] - 0.05 and head[1] < head[2] - 0.05, head
    assert rev[2] < min(rev[0], rev[1]) - 0.1, rev
    # one loss alone trains the same student as in company (nothing is shared)
    alone = fit_low_rank_student(lp, 2, keep, losses=("forward",), steps=50, seed=0)
    pair = fit_low_rank_student(lp, 2, keep, losses=("forward", "reverse"), steps=50, seed=0)
    torch.testing.assert_close(alone[0], pair[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda: teacher_head(log_probs(0), top_k=0), "top_k must be >= 1; got 0"),
    (lambda: teacher_head(log_probs(0), top_k=11), "top_k must be <= 10; got 11"),
    (lambda: teacher_head(log_probs(0), mass=0.0), "mass must be > 0; got 0.0"),
    (lambda: teacher_head(log_probs(0)), "exactly one of top_k and mass must be given"),
    (lambda: bucket_kl(log_probs(0), log_probs(1), torch.ones(6, 10)), "keep must be a boolean tensor"),
    (lambda: bucket_kl(log_probs(0), log_probs(1), torch.ones(3, dtype=torch.bool)), "keep must have the shape of logp"),
    (lambda: bucket_kl(logits(0), log_probs(1), torch.ones(6, 10, dtype=torch.bool)), "logp must be log-probabilities"),
    (lambda: bucket_kl(log_probs(0), log_probs(1), torch.ones(6, 10, dtype=torch.bool), direction="up"),
     "direction must be one of 'forward', 'reverse'; got 'up'"),
    (lambda: fit_low_rank_student(log_probs(0), 0, torch.ones(6, 10, dtype=torch.bool)), "rank must be >= 1; got 0"),
    (lambda: fit_low_rank_student(log_probs(0), 2, torch.ones(6, 10, dtype=torch.bool), losses=("js",)),
     "losses must be one of 'forward', 'reverse', 'bucket', 'truncated'; got 'js'"),
])
def test_clipping_bad_input(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


# --- Entropy-balanced forward/reverse KD (BD-KD) -----------------------------------------------------

from kllab.maths.distill import (ONLINE_LOSSES, balanced_kd_loss, distill_students,  # noqa: E402
                                 entropy_balance_weight, train_teacher)
from kllab.maths.divergences import entropy, f_divergence  # noqa: E402


def test_entropy_balance_weight_closed_form():
    lp, lq = log_probs(11, (50, 7)), log_probs(12, (50, 7), scale=0.5)
    w = entropy_balance_weight(lp, lq, 3.0)
    torch.testing.assert_close(w, torch.sigmoid(3.0 * (entropy(lq) - entropy(lp))))
    torch.testing.assert_close(entropy_balance_weight(lp, lq, 0.0), torch.full((50,), 0.5))
    assert w.shape == (50,)


def test_balanced_loss_limits_and_t2():
    t, s = logits(13), logits(14)
    p, q = torch.log_softmax(t / 2, -1), torch.log_softmax(s / 2, -1)
    half_jeffreys = 0.5 * (kl(p, q) + kl(q, p))
    torch.testing.assert_close(balanced_kd_loss(t, s, 2.0, sharpness=0.0), 4 * half_jeffreys)
    hard = balanced_kd_loss(t, s, 2.0, sharpness=1e4, t2_scaling=False)
    student_unsure = entropy(q) > entropy(p)
    torch.testing.assert_close(hard, torch.where(student_unsure, kl(q, p), kl(p, q)))


def test_balanced_loss_weight_carries_no_gradient():
    t, s = logits(15), logits(16).requires_grad_(True)
    balanced_kd_loss(t, s, 1.5, sharpness=2.0).sum().backward()
    w = entropy_balance_weight(torch.log_softmax(t / 1.5, -1), torch.log_softmax(s.detach() / 1.5, -1), 2.0)
    s2 = s.detach().clone().requires_grad_(True)
    ((1 - w) * kd_loss(t, s2, 1.5) + w * kd_loss(t, s2, 1.5, direction="reverse")).sum().backward()
    torch.testing.assert_close(s.grad, s2.grad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_and_reverse_agree_to_second_order(seed):
    # KL(p||q) = chi2/2 - sum d^3/(3 p^2) + sum d^4/(4 p^3) - ..., KL(q||p) = chi2/2 - sum d^3/(6 p^2) + sum d^4/(12 p^3)
    # + ..., with d = q - p: both are half of Pearson's chi2(q||p) to second order, and their difference is
    # -sum d^3/(6 p^2) + sum d^4/(6 p^3) + O(d^5).
    lp = log_probs(20 + seed, (100, 6))
    direction = torch.randn(100, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for eps in (1e-1, 1e-2):   # smaller steps drown the fifth-order bound in rounding (KL ~ 1e-7 from terms ~ 1e-3)
        lq = torch.log_softmax(lp + eps * direction, -1)
        d, p = lq.exp() - lp.exp(), lp.exp()
        half_chi2 = 0.5 * f_divergence(lq, lp, "chi2")          # sum (q - p)^2 / p, p the denominator
        torch.testing.assert_close(half_chi2, 0.5 * (d ** 2 / p).sum(-1))
        fwd, rev = kl(lp, lq), kl(lq, lp)
        assert ((fwd / half_chi2 - 1).abs() < 20 * eps).all() and ((rev / half_chi2 - 1).abs() < 20 * eps).all()
        series = -(d ** 3 / p ** 2).sum(-1) / 6 + (d ** 4 / p ** 3).sum(-1) / 6
        assert ((fwd - rev - series).abs() <= (d.abs() ** 5 / p ** 4).sum(-1) + 1e-15).all()


def _two_blobs(n=120, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64) + 2.0 * torch.stack(
        [torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 0.87]), torch.tensor([-0.5, -0.87])]).double()[y]
    return x, y


def test_online_teacher_and_students():
    x, y = _two_blobs()
    run = train_teacher(x, y, width=16, seeds=(0, 1), steps=120, batch=32, lr=1e-2)
    assert run.batches.shape == (120, 2, 32) and run.logits.shape == (120, 2, 32, 3)
    assert ((run.teacher(x.float()).argmax(-1) == y).float().mean(-1) > 0.8).all()
    students = distill_students(run, x, y, width=4, temperature=2.0, lr=1e-2)
    assert students(x.float()).shape == (len(ONLINE_LOSSES) * 2, len(x), 3)
    # nothing is shared: the forward students are the same trained alone or with the others
    alone = distill_students(run, x, y, width=4, losses=("forward",), temperature=2.0, lr=1e-2)
    torch.testing.assert_close(alone(x.float()), students(x.float())[2:4], rtol=0, atol=1e-5)
    # the CE student ignores the temperature
    ce_t1 = distill_students(run, x, y, width=4, losses=("ce",), temperature=1.0, lr=1e-2)
    torch.testing.assert_close(ce_t1(x.float()), students(x.float())[0:2], rtol=0, atol=1e-5)


@pytest.mark.parametrize("loss", ["forward", "reverse", "balanced"])
def test_online_students_follow_ce_plus_t2_kd(loss):
    # An oracle for the scale of the distillation term: the same student trained by hand with
    # torch.optim.Adam on CE + T^2 D(p_T, q_T). Adam divides out the scale of the whole loss but not
    # the ratio of its two terms, so a distillation term weighted by 1, T or T^3 instead of T^2 trains
    # another student (at T = 3 the logits end up more than 0.05 apart; the oracle agrees to 1e-9).
    from kllab.maths.ensemble import EnsembleMLP

    x, y = _two_blobs()
    T, kappa, lr = 3.0, 2.0, 1e-2
    run = train_teacher(x, y, width=16, seeds=(0,), steps=40, batch=32, lr=lr, dtype=torch.float64)
    got = distill_students(run, x, y, width=4, losses=(loss,), temperature=T, sharpness=kappa, lr=lr,
                           dtype=torch.float64)
    net = EnsembleMLP(2, 3, 4, [0], depth=1, dtype=torch.float64)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for idx, z_t in zip(run.batches[:, 0], run.logits[:, 0]):
        z_s = net(x[idx])[0]
        p, q = torch.log_softmax(z_t / T, -1), torch.log_softmax(z_s / T, -1)
        fwd, rev = (p.exp() * (p - q)).sum(-1), (q.exp() * (q - p)).sum(-1)
        w = torch.sigmoid(kappa * (entropy(q.detach()) - entropy(p)))
        d = {"forward": fwd, "reverse": rev, "balanced": (1 - w) * fwd + w * rev}[loss]
        total = (torch.nn.functional.cross_entropy(z_s, y[idx], reduction="none") + T ** 2 * d).mean()
        opt.zero_grad()
        total.backward()
        opt.step()
    torch.testing.assert_close(got(x), net(x), rtol=0, atol=1e-9)


@pytest.mark.parametrize("call, message", [
    (lambda: entropy_balance_weight(log_probs(0), log_probs(1), -1.0), "sharpness must be >= 0; got -1.0"),
    (lambda: balanced_kd_loss(logits(0), logits(1), 0.0), "temperature must be > 0; got 0.0"),
    (lambda: train_teacher(torch.zeros(5, 2), torch.zeros(4, dtype=torch.long)), "x must have shape (n, d)"),
    (lambda: train_teacher(*_two_blobs(), seeds=()), "seeds must name at least one teacher"),
    (lambda: distill_students(train_teacher(*_two_blobs(), steps=2), *_two_blobs(), width=2, losses=("kd",)),
     "losses must be one of 'ce', 'forward', 'reverse', 'balanced'; got 'kd'"),
])
def test_balancing_bad_input(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


# --- Pass-rate weights (PACED) -----------------------------------------------------------------------

from scipy import integrate, optimize, special, stats  # noqa: E402

from kllab.maths.distill import estimated_pass_rate_weight, pass_rate_weight, pass_rate_weight_mode  # noqa: E402


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (2.0, 0.5), (0.3, 3.0)])
def test_beta_kernel_mode_integral_and_density(alpha, beta):
    w = lambda p: pass_rate_weight(torch.tensor(p), alpha, beta).item()
    mode, top = pass_rate_weight_mode(alpha, beta)
    found = optimize.minimize_scalar(lambda p: -w(p), bounds=(0, 1), method="bounded", options={"xatol": 1e-10})
    assert found.x == pytest.approx(mode, abs=1e-6) and -found.fun == pytest.approx(top, rel=1e-10)
    area = integrate.quad(w, 0, 1)[0]
    assert area == pytest.approx(special.beta(alpha + 1, beta + 1), rel=1e-8)
    grid = torch.linspace(0.01, 0.99, 17)
    torch.testing.assert_close(pass_rate_weight(grid, alpha, beta) / area,
                               torch.tensor(stats.beta.pdf(grid.numpy(), alpha + 1, beta + 1)))


def test_beta_kernel_edges():
    assert pass_rate_weight(torch.tensor([0.0, 1.0]), 0.0, 0.0).tolist() == [1.0, 1.0]   # uniform weights
    assert pass_rate_weight(torch.tensor([0.0, 1.0]), 1.0, 0.0).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("k", [1, 2, 8, 32])
def test_estimated_weight_closed_form_and_monte_carlo(k):
    p = torch.tensor([0.01, 0.3, 0.5, 0.9])
    torch.testing.assert_close(estimated_pass_rate_weight(p, k), (1 - 1 / k) * p * (1 - p), rtol=0, atol=1e-12)
    gen = torch.Generator().manual_seed(k)
    successes = (torch.rand(200_000, 4, k, generator=gen) < p[:, None]).sum(-1).double()   # k Bernoulli rollouts each
    mc = pass_rate_weight(successes / k, 2.0, 1.0).mean(0)
    exact = estimated_pass_rate_weight(p, k, 2.0, 1.0)
    assert (mc - exact).abs().max() < 5 * pass_rate_weight(successes / k, 2.0, 1.0).std(0).max() / math.sqrt(200_000) + 1e-12


@pytest.mark.parametrize("call, message", [
    (lambda: pass_rate_weight(torch.tensor([1.5])), "pass_rate must be in [0, 1]"),
    (lambda: pass_rate_weight(torch.tensor([0.5]), -1.0), "alpha must be >= 0; got -1.0"),
    (lambda: pass_rate_weight_mode(0.0, 0.0), "alpha + beta must be > 0"),
    (lambda: estimated_pass_rate_weight(0.5, 0), "rollouts must be >= 1; got 0"),
])
def test_pass_rate_bad_input(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
