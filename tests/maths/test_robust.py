"""KL-regularised DRO: closed forms against SLSQP and the 1-D dual, limits with rates, the LDR special cases, bad input."""

import math

import numpy as np
import pytest
import torch

from kllab.maths import rlhf, robust
from kllab.maths.divergences import kl

pytestmark = pytest.mark.usefixtures("float64")


def problem(n=6, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
@pytest.mark.parametrize("r", [0.003, 0.05, 0.5, 5.0, 500.0])
def test_closed_form_equals_slsqp(direction, r):
    # The oracle: SciPy's SLSQP over the simplex, which uses no closed form.
    for seed in range(8):
        ell = problem(seed=seed)
        logw, value = robust.kl_dro(ell, r, direction=direction)
        w_num, v_num = robust.solve_dro(ell, r, direction=direction)
        assert v_num == pytest.approx(value.item(), rel=1e-8, abs=1e-8)
        np.testing.assert_allclose(w_num, logw.exp().numpy(), atol=1e-4)
        assert v_num <= value.item() + 1e-10  # the closed form is the maximum


@pytest.mark.parametrize("r", [0.01, 0.3, 3.0, 300.0])
def test_reverse_value_equals_dual_and_logmeanexp(r):
    for seed in range(5):
        ell = problem(n=30, seed=seed)
        value = robust.kl_dro(ell, r)[1].item()
        assert value == pytest.approx(robust.kl_dro_dual(ell, r), abs=1e-8)
        lme = r * (np.logaddexp.reduce(ell.numpy() / r) - math.log(30))
        assert value == pytest.approx(lme, abs=1e-12)


def test_weights_achieve_the_value_and_beat_random_weights():
    ell = problem(n=50, seed=3)
    for direction in ("reverse", "forward"):
        logw, value = robust.kl_dro(ell, 0.4, direction=direction)
        assert robust.dro_objective(logw, ell, 0.4, direction=direction).item() == pytest.approx(value.item(), abs=1e-9)
        others = torch.log_softmax(logw + 0.3 * torch.randn(500, 50, generator=torch.Generator().manual_seed(1)), -1)
        scores = robust.dro_objective(others, ell.expand(500, -1), 0.4, direction=direction)
        assert (scores <= value + 1e-12).all()


def test_gibbs_gap_is_r_times_kl():
    # For every w: V - (Σ w ℓ - r KL(w‖u)) = r KL(w‖w*).
    ell = problem(n=8, seed=4)
    logw_star, value = robust.kl_dro(ell, 0.7)
    logw = torch.log_softmax(torch.randn(100, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64), -1)
    gap = value - robust.dro_objective(logw, ell.expand(100, -1), 0.7)
    torch.testing.assert_close(gap, 0.7 * kl(logw, logw_star.expand(100, -1)), atol=1e-12, rtol=0)


def test_matches_the_rlhf_optimum():
    ell = problem(n=5, seed=5)
    logu = torch.full((5,), -math.log(5), dtype=torch.float64)
    for direction in ("reverse", "forward"):
        logw, value = robust.kl_dro(ell, 0.3, direction=direction)
        torch.testing.assert_close(logw, rlhf.kl_regularized_policy(logu, ell, 0.3, direction=direction))
    assert robust.kl_dro(ell, 0.3)[1].item() == pytest.approx(0.3 * rlhf.log_partition(logu, ell, 0.3).item(), abs=1e-12)


def test_non_uniform_reference():
    ell = problem(n=4, seed=6)
    logp = torch.log_softmax(torch.tensor([0.0, 1.0, -1.0, 2.0], dtype=torch.float64), -1)
    for direction in ("reverse", "forward"):
        _, value = robust.kl_dro(ell, 0.5, logp_ref=logp, direction=direction)
        _, v_num = robust.solve_dro(ell, 0.5, logp_ref=logp, direction=direction)
        assert v_num == pytest.approx(value.item(), abs=1e-8)


def test_zero_reference_mass_gets_zero_weight():
    ell = torch.tensor([5.0, 0.0, 1.0], dtype=torch.float64)
    logp = torch.tensor([-math.inf, math.log(0.5), math.log(0.5)], dtype=torch.float64)
    for direction in ("reverse", "forward"):
        logw, value = robust.kl_dro(ell, 0.5, logp_ref=logp, direction=direction)
        assert logw[0].item() == -math.inf and math.isfinite(value.item())


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_limits_mean_and_max(direction):
    ell = problem(n=7, seed=7)
    values = [robust.kl_dro(ell, r, direction=direction)[1].item() for r in np.logspace(-3, 4, 30)]
    assert all(a >= b - 1e-12 for a, b in zip(values, values[1:])), "value must decrease in r"
    assert all(ell.mean().item() - 1e-12 <= v <= ell.max().item() + 1e-12 for v in values)
    # r -> infinity: mean + Var_u/(2r), the same second-order term for both KLs.
    r = 1e4
    hot = robust.kl_dro(ell, r, direction=direction)[1].item()
    assert abs(hot - ell.mean().item() - ell.var(unbiased=False).item() / (2 * r)) < 1e-6
    logw_hot = robust.kl_dro(ell, r, direction=direction)[0]
    assert (logw_hot.exp() * 7 - 1).abs().max().item() < 1e-3
    # r -> 0: the maximum, and all weight on the argmax.
    cold_logw, cold = robust.kl_dro(ell, 1e-3, direction=direction)
    assert ell.max().item() - cold.item() < (1e-3 * math.log(7) if direction == "reverse" else 0.02)
    assert cold_logw.exp()[ell.argmax()].item() > 0.99


def test_reverse_lower_bound_max_minus_r_log_n():
    for seed in range(10):
        ell = problem(n=9, seed=seed)
        for r in (0.01, 0.3, 2.0):
            value = robust.kl_dro(ell, r)[1].item()
            assert ell.max().item() - r * math.log(9) - 1e-12 <= value <= ell.max().item()


def test_batches_are_per_row():
    ell = torch.stack([problem(seed=s) for s in range(4)])
    logw, value = robust.kl_dro(ell, 0.5)
    assert logw.shape == (4, 6) and value.shape == (4,)
    for i in range(4):
        assert value[i].item() == pytest.approx(robust.kl_dro(ell[i], 0.5)[1].item(), abs=1e-14)


def test_forward_value_gradient_is_the_weights():
    ell = problem(n=5, seed=8).requires_grad_(True)
    logw, value = robust.kl_dro(ell, 0.4, direction="forward")
    value.backward()
    torch.testing.assert_close(ell.grad, logw.exp().detach(), atol=1e-12, rtol=0)


# --- LDR losses ------------------------------------------------------------------------------------------

def logits_labels(n=20, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n, k, generator=g, dtype=torch.float64), torch.randint(0, k, (n,), generator=g)


def test_label_margins():
    f, y = logits_labels()
    d = robust.label_margins(f, y, 0.7)
    assert d.shape == f.shape
    assert torch.all(d.gather(-1, y[:, None]) == 0)
    i, k = 3, (int(y[3]) + 1) % 5
    assert d[i, k].item() == pytest.approx(f[i, k].item() - f[i, y[i]].item() + 0.7)


def test_ldr_at_one_is_cross_entropy_minus_log_k():
    f, y = logits_labels()
    ce = torch.nn.functional.cross_entropy(f, y, reduction="none")
    torch.testing.assert_close(robust.ldr_loss(f, y, 1.0), ce - math.log(5), atol=1e-12, rtol=0)


@pytest.mark.parametrize("lam", [0.05, 0.5, 3.0, 40.0])
def test_ldr_is_temperature_scaled_cross_entropy(lam):
    f, y = logits_labels(seed=1)
    ce_t = torch.nn.functional.cross_entropy(f / lam, y, reduction="none")
    torch.testing.assert_close(robust.ldr_loss(f, y, lam), lam * (ce_t - math.log(5)), atol=1e-10, rtol=0)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_ldr_limits(direction):
    f, y = logits_labels(seed=2)
    hinge = robust.crammer_singer_loss(f, y, 1.0)
    mean = robust.mean_margin_loss(f, y, 1.0)
    cold = robust.ldr_loss(f, y, 1e-3, 1.0, direction=direction)
    hot = robust.ldr_loss(f, y, 1e4, 1.0, direction=direction)
    assert (hinge - cold).max().item() <= (1e-3 * math.log(5) if direction == "reverse" else 0.02) + 1e-12
    assert (hot - mean).abs().max().item() < 1e-2
    # the Crammer-Singer hinge by hand
    other = f.clone()
    other[torch.arange(20), y] = -math.inf
    by_hand = torch.clamp(other.amax(-1) - f[torch.arange(20), y] + 1.0, min=0.0)
    torch.testing.assert_close(hinge, by_hand)


def test_ldr_gradient_is_q_star_minus_one_hot():
    f, y = logits_labels(seed=3)
    f = f.requires_grad_(True)
    robust.ldr_loss(f, y, 0.8, 0.5).sum().backward()
    q = robust.kl_dro(robust.label_margins(f.detach(), y, 0.5), 0.8)[0].exp()
    torch.testing.assert_close(f.grad, q - torch.nn.functional.one_hot(y, 5), atol=1e-12, rtol=0)


def test_mean_margin_is_symmetric():
    f, _ = logits_labels(n=6, seed=4)
    total = sum(robust.mean_margin_loss(f, torch.full((6,), k), 0.3) for k in range(5))
    torch.testing.assert_close(total, torch.full((6,), 4 * 0.3, dtype=torch.float64))


def test_normalize_logits():
    f, _ = logits_labels(seed=5)
    g = robust.normalize_logits(f)
    torch.testing.assert_close(g.mean(-1), torch.ones(20, dtype=torch.float64))
    assert (g >= 0).all() and (g <= 5).all()


# --- bad input -------------------------------------------------------------------------------------------

def test_bad_input():
    ell = problem()
    with pytest.raises(ValueError, match="temperature must be > 0; got 0.0"):
        robust.kl_dro(ell, 0.0)
    with pytest.raises(ValueError, match="temperature must be a finite real number"):
        robust.kl_dro(ell, math.inf)
    with pytest.raises(ValueError, match="direction must be one of"):
        robust.kl_dro(ell, 1.0, direction="sideways")
    with pytest.raises(ValueError, match="losses must not contain NaN"):
        robust.kl_dro(torch.tensor([0.0, math.nan]), 1.0)
    with pytest.raises(ValueError, match="losses must be finite"):
        robust.kl_dro(torch.tensor([0.0, math.inf]), 1.0)
    with pytest.raises(ValueError, match="losses must have at least one axis"):
        robust.kl_dro(torch.tensor(1.0), 1.0)
    with pytest.raises(ValueError, match="logp_ref must be log-probabilities"):
        robust.kl_dro(ell, 1.0, logp_ref=torch.zeros(6, dtype=torch.float64))
    with pytest.raises(ValueError, match="logp_ref must have the shape of losses"):
        robust.kl_dro(ell, 1.0, logp_ref=torch.full((3,), -math.log(3), dtype=torch.float64))
    with pytest.raises(ValueError, match="losses must have one axis"):
        robust.solve_dro(ell.reshape(2, 3), 1.0)
    with pytest.raises(ValueError, match="losses must have one axis"):
        robust.kl_dro_dual(ell.reshape(2, 3), 1.0)
    f, y = logits_labels()
    with pytest.raises(ValueError, match="margin must be >= 0"):
        robust.ldr_loss(f, y, 1.0, -0.5)
    with pytest.raises(ValueError, match="labels must be class indices in 0..4"):
        robust.ldr_loss(f, torch.full((20,), 5), 1.0)
    with pytest.raises(ValueError, match="labels must have shape"):
        robust.ldr_loss(f, y[:3], 1.0)
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        robust.ldr_loss(f, y.double(), 1.0)


# --- the forward LDR loss at finite lambda, where the two directions differ ---------------------------

def forward_ldr_by_hand(f, y, lam, c):
    """max_q sum_k q_k d_k - lam KL(u || q), one example at a time, from scratch: margins written out, then
    the optimality condition q_k = lam u_k / (Lam - d_k) with sum_k q_k = 1, solved for Lam > max d by brentq."""
    from scipy.optimize import brentq

    out = []
    for row, label in zip(f.tolist(), y.tolist()):
        k = len(row)
        d = np.array([row[j] - row[label] + (c if j != label else 0.0) for j in range(k)])
        lo = d.max() + lam / k * (1 - 1e-12)          # total weight >= 1 there (the top class alone gets ~1)
        hi = d.max() + lam                            # total weight <= 1 there (every term <= lam/k / lam)
        big = brentq(lambda t: (lam / k / (t - d)).sum() - 1.0, lo, hi, xtol=1e-15, rtol=1e-15, maxiter=500)
        q = lam / k / (big - d)
        out.append(q @ d - lam * np.sum(np.log(1 / k) - np.log(q)) / k)
    return np.array(out)


@pytest.mark.parametrize("lam", [0.05, 0.4, 1.0, 3.0, 20.0])
@pytest.mark.parametrize("c", [0.0, 1.0])
def test_forward_ldr_loss_at_finite_lambda_matches_a_computation_by_hand(lam, c):
    f, y = logits_labels(n=30, k=5, seed=9)
    forward = robust.ldr_loss(f, y, lam, c, direction="forward")
    np.testing.assert_allclose(forward.numpy(), forward_ldr_by_hand(f, y, lam, c), rtol=0, atol=1e-10)
    # and it is not the reverse loss: at finite lambda the directions differ by far more than the tolerance
    reverse = robust.ldr_loss(f, y, lam, c)
    assert (forward - reverse).abs().max().item() > 1e-3


def test_forward_ldr_loss_gradient_is_its_weights_minus_one_hot():
    # Envelope theorem for the forward penalty: d psi / d f = q*_fwd - e_y, with q*_fwd the forward weights.
    f, y = logits_labels(n=10, k=4, seed=10)
    f = f.requires_grad_(True)
    robust.ldr_loss(f, y, 0.7, 0.5, direction="forward").sum().backward()
    q = robust.kl_dro(robust.label_margins(f.detach(), y, 0.5), 0.7, direction="forward")[0].exp()
    torch.testing.assert_close(f.grad, q - torch.nn.functional.one_hot(y, 4).double(), atol=1e-10, rtol=0)


def test_dual_with_a_non_uniform_reference():
    # The 1-D dual must use the reference's weights, not 1/n: against r log sum_i p_i e^{l_i / r} in NumPy.
    ell = problem(n=6, seed=11)
    p = np.array([0.4, 0.05, 0.2, 0.1, 0.2, 0.05])
    for r in (0.1, 1.0, 10.0):
        expected = r * np.log(p @ np.exp(ell.numpy() / r))
        assert robust.kl_dro_dual(ell, r, logp_ref=torch.tensor(np.log(p))) == pytest.approx(expected, abs=1e-8)
        assert robust.kl_dro(ell, r, logp_ref=torch.tensor(np.log(p)))[1].item() == pytest.approx(expected, abs=1e-12)
        # and the uniform-reference value is different here, so a dual that ignored p could not pass
        assert abs(robust.kl_dro_dual(ell, r) - expected) > 1e-3


def test_label_margins_every_entry_by_hand():
    f, y = logits_labels(n=7, k=4, seed=12)
    expected = [[f[i, k].item() - f[i, y[i]].item() + (0.3 if k != y[i] else 0.0) for k in range(4)] for i in range(7)]
    np.testing.assert_allclose(robust.label_margins(f, y, 0.3).numpy(), expected, rtol=0, atol=1e-15)
