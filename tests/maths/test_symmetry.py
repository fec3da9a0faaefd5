"""Scale symmetry: Noether's identity and the charge's exact per-step law, against autograd, finite differences
and the identity recomputed from the iterates; the fixed point; bad input."""

import math

import pytest
import torch

from kllab.maths import symmetry as sy

pytestmark = pytest.mark.usefixtures("float64")


def toy(seed=0, n=40, d=5, k=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.arange(n) % k
    w = torch.randn(2, k, d, generator=g, dtype=torch.float64) * torch.tensor([0.3, 4.0])[:, None, None]
    return x, y, w


def autograd_loss(w, x, y, gain):
    # from scratch: weight-normalised logits, torch's cross-entropy
    z = gain * x @ (w / w.norm(dim=-1, keepdim=True)).transpose(-1, -2)
    return torch.stack([torch.nn.functional.cross_entropy(zc, y) for zc in z])


def test_loss_is_cross_entropy_and_scale_invariant_per_row():
    x, y, w = toy()
    torch.testing.assert_close(sy.normalized_softmax_loss(w, x, y, 2.5), autograd_loss(w, x, y, 2.5))
    scaled = w * torch.tensor([0.1, 3.0, 70.0])[:, None]          # a different factor on each row
    torch.testing.assert_close(sy.normalized_softmax_loss(scaled, x, y, 2.5), sy.normalized_softmax_loss(w, x, y, 2.5))


def test_gradient_matches_autograd_and_finite_differences():
    x, y, w = toy(1)
    wg = w.clone().requires_grad_(True)
    autograd_loss(wg, x, y, 3.0).sum().backward()
    grad = sy.normalized_softmax_grad(w, x, y, 3.0)
    torch.testing.assert_close(grad, wg.grad, rtol=1e-12, atol=1e-14)
    # central finite difference along one random direction
    v = torch.randn(w.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    h = 1e-6
    fd = (sy.normalized_softmax_loss(w + h * v, x, y, 3.0) - sy.normalized_softmax_loss(w - h * v, x, y, 3.0)) / (2 * h)
    torch.testing.assert_close(fd, (grad * v).sum((-1, -2)), rtol=1e-7, atol=1e-10)


def test_noether_identity_and_inverse_scaling_of_the_gradient():
    x, y, w = toy(2)
    grad = sy.normalized_softmax_grad(w, x, y, 2.0)
    radial = sy.radial_component(w, grad)
    assert radial.abs().max() < 1e-13 * (w.norm(dim=-1) * grad.norm(dim=-1)).max()
    torch.testing.assert_close(sy.normalized_softmax_grad(7 * w, x, y, 2.0), grad / 7)
    # a non-invariant loss has a radial component: the check is not vacuous
    wg = w.clone().requires_grad_(True)
    (autograd_loss(wg, x, y, 2.0).sum() + (wg ** 2).sum()).backward()
    assert sy.radial_component(w, wg.grad).abs().min() > 1e-3


def test_norm_step_is_exact_for_an_sgd_step_and_fails_without_the_projection():
    x, y, w = toy(3)
    lr, wd = 0.7, 0.05
    g = sy.normalized_softmax_grad(w, x, y, 2.0)
    w1 = (1 - lr * wd) * w - lr * g
    torch.testing.assert_close(sy.norm_step(w.pow(2).sum(-1), g.pow(2).sum(-1), lr, wd), w1.pow(2).sum(-1),
                               rtol=1e-13, atol=0)
    # with the radial part of the gradient kept (no projection) the identity fails
    wg = w.clone().requires_grad_(True)
    (sy.normalized_softmax_loss(wg, x, y, 2.0).sum() + 0.1 * (wg ** 2).sum()).backward()
    w1_bad = (1 - lr * wd) * w - lr * wg.grad
    bad = sy.norm_step(w.pow(2).sum(-1), wg.grad.pow(2).sum(-1), lr, wd)
    assert ((bad - w1_bad.pow(2).sum(-1)).abs() / bad).max() > 1e-3
    # closed form: (1 - 0.2)^2 * 1 + 4 * 0.25
    assert float(sy.norm_step(1.0, 0.25, 2.0, 0.1)) == pytest.approx(0.64 + 1.0, rel=1e-15)


def test_training_iterates_obey_the_identity_and_the_recursion():
    x, y, w = toy(4)
    lr = torch.tensor([0.3, 5.0])
    wd = torch.tensor([0.02, 0.01])
    out = sy.train_normalized_softmax(x, y, w, lr, wd, steps=60, batch_size=8, gain=2.0, seed=3, keep_weights=True)
    W = out["weights"]
    # iterates recomputed independently: each step from its minibatch with the autograd gradient
    for t in (0, 17, 59):
        idx = out["batches"][t]
        wg = W[t].clone().requires_grad_(True)
        autograd_loss(wg, x[idx], y[idx], 2.0).sum().backward()
        step = (1 - lr * wd)[:, None, None] * W[t] - lr[:, None, None] * wg.grad
        torch.testing.assert_close(W[t + 1], step, rtol=1e-12, atol=1e-13)
    r = W.pow(2).sum(-1)
    torch.testing.assert_close(out["norm_sq"], r)
    a = ((1 - lr * wd) ** 2)[:, None]
    torch.testing.assert_close(r[1:], a * r[:-1] + lr[:, None] ** 2 * out["grad_sq"], rtol=1e-12, atol=0)
    torch.testing.assert_close(out["unit_grad_sq"], out["grad_sq"] * r[:-1], rtol=1e-12, atol=0)
    torch.testing.assert_close(sy.charge_recursion(r[0], out["unit_grad_sq"], lr[:, None], wd[:, None]), r,
                               rtol=1e-10, atol=0)
    assert out["radial"].abs().max() < 1e-12
    torch.testing.assert_close(out["angle"], sy.angle_between(W[:-1], W[1:]), rtol=1e-8, atol=1e-12)


def test_full_batch_small_steps_conserve_the_charge_at_first_order():
    x, y, w = toy(5)
    drift = []
    for lr in (0.1, 0.01, 0.001):            # the same time lr * steps = 1
        out = sy.train_normalized_softmax(x, y, w[:1], lr, 0.0, steps=round(1 / lr), batch_size=x.shape[0], gain=2.0)
        drift.append((out["norm_sq"][-1] / out["norm_sq"][0] - 1).max().item())
    slope = math.log(drift[0] / drift[2]) / math.log(100)
    assert 0.95 < slope < 1.05, slope


def test_fixed_point_and_angle_closed_forms():
    lr, wd, G = 0.3, 0.2, 1.7
    r = sy.equilibrium_norm_sq(lr, wd, G)
    assert float(sy.norm_step(r, G / r, lr, wd)) == pytest.approx(float(r), rel=1e-13)   # a fixed point
    assert float(sy.equilibrium_norm_sq(lr, wd, G, exact=False)) == pytest.approx(math.sqrt(lr * G / (2 * wd)))
    # at the fixed point the step turns w by theta*: tan = lr |grad L(w)| / ((1 - lr wd) |w|), |grad L(w)| = sqrt(G / r)
    tan = lr * math.sqrt(G / float(r)) / ((1 - lr * wd) * math.sqrt(float(r)))
    assert float(sy.equilibrium_angle(lr, wd)) == pytest.approx(math.atan(tan), rel=1e-13)
    assert float(sy.equilibrium_angle(lr, wd)) == pytest.approx(math.acos(1 - lr * wd), rel=1e-12)
    # the recursion with constant G converges to it
    traj = sy.charge_recursion(1.0, torch.full((400,), G), lr, wd)
    assert float(traj[-1]) == pytest.approx(float(r), rel=1e-10)
    torch.testing.assert_close(sy.effective_lr(2.0, torch.tensor([4.0])), torch.tensor([0.5]))


def test_bad_input_names_the_parameter():
    x, y, w = toy()
    with pytest.raises(ValueError, match="lr must be finite and > 0"):
        sy.norm_step(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="weight_decay must be finite and >= 0"):
        sy.norm_step(1.0, 1.0, 0.1, -1.0)
    with pytest.raises(ValueError, match="lr \\* weight_decay must be < 1"):
        sy.equilibrium_norm_sq(10.0, 0.1, 1.0)
    with pytest.raises(ValueError, match="weight_decay must be > 0 for an equilibrium"):
        sy.equilibrium_norm_sq(1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="zero vector"):
        sy.normalize(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="w must not contain NaN"):
        sy.normalize(torch.tensor([float("nan"), 1.0]))
    with pytest.raises(ValueError, match="y must hold class indices"):
        sy.normalized_softmax_loss(w, x, y + 3)
    with pytest.raises(ValueError, match="must share d"):
        sy.normalized_logits(w, x[:, :2])
    with pytest.raises(ValueError, match="gain must be > 0"):
        sy.normalized_logits(w, x, gain=0.0)
    with pytest.raises(ValueError, match="norm_sq0 must be finite and > 0"):
        sy.charge_recursion(0.0, torch.ones(3), 0.1)
    with pytest.raises(ValueError, match="weight0 must have shape"):
        sy.train_normalized_softmax(x, y, w[0], 0.1, steps=2, batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be <= 40"):
        sy.train_normalized_softmax(x, y, w, 0.1, steps=2, batch_size=41)
    with pytest.raises(ValueError, match="one per model"):
        sy.train_normalized_softmax(x, y, w, torch.tensor([0.1, 0.2, 0.3]), steps=2, batch_size=4)
    with pytest.raises(ValueError, match="a and b must have the same shape"):
        sy.angle_between(torch.ones(2, 3), torch.ones(3))
