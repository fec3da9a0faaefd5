"""Tests for kllab.maths.kernels: frozen-kernel gradient-descent dynamics and kernel change."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from kllab.maths.kernels import eigenmodes, kernel_dynamics, relative_change
from kllab.maths.width import MLP, empirical_ntk, train_mse

D64 = torch.float64


def random_kernel(n, seed=0, rank=None):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, rank or n, generator=g, dtype=D64)
    return a @ a.T / (rank or n)


def circle(n):
    th = 2 * math.pi * torch.arange(n, dtype=D64) / n
    return torch.stack([th.cos(), th.sin(), torch.ones(n, dtype=D64)], 1), torch.sin(3 * th)


class LinearModel(nn.Module):
    """f(x) = phi(x) . w: its tangent kernel is exactly Phi Phi^T and never changes."""

    def __init__(self, n_features, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(n_features, 1, generator=g, dtype=D64))

    def forward(self, phi):
        return phi @ self.w


def test_matches_the_recursion_step_by_step():
    theta, n = random_kernel(6), 6
    g = torch.Generator().manual_seed(1)
    f0, y = torch.randn(n, generator=g, dtype=D64), torch.randn(n, generator=g, dtype=D64)
    out = kernel_dynamics(theta, f0, y, lr=0.7, steps=25)
    f = f0.clone()
    for t in range(26):
        torch.testing.assert_close(out[t], f)
        f = f - 0.7 / n * theta @ (f - y)


def test_flow_matches_the_matrix_exponential():
    theta, n = random_kernel(5, seed=2), 5
    f0, y = torch.zeros(n, dtype=D64), torch.ones(n, dtype=D64)
    out = kernel_dynamics(theta, f0, y, lr=2.0, steps=10, flow=True)
    expected = y + torch.linalg.matrix_exp(-2.0 * 10 * theta / n) @ (f0 - y)
    torch.testing.assert_close(out[-1], expected)


def test_exact_for_a_linear_model_trained_with_train_mse():
    # Oracle: gradient descent on a model that is linear in its parameters follows the kernel recursion exactly,
    # which also pins down the 1/n of train_mse's mean loss.
    n, p = 8, 5
    g = torch.Generator().manual_seed(3)
    phi, y = torch.randn(n, p, generator=g, dtype=D64), torch.randn(n, 1, generator=g, dtype=D64)
    model = LinearModel(p, seed=4)
    f0 = model(phi).detach()
    theta = empirical_ntk(model, phi)
    torch.testing.assert_close(theta, phi @ phi.T)
    train_mse(model, phi, y, lr=0.3, steps=40)
    torch.testing.assert_close(model(phi).detach()[:, 0], kernel_dynamics(theta, f0, y, 0.3, 40)[-1])


def test_wide_network_follows_the_ode_on_its_fast_modes():
    x, y = circle(12)
    net = MLP(3, 1, 4096, seed=0)
    theta, f0 = empirical_ntk(net, x), net(x).detach()
    train_mse(net, x, y[:, None], lr=1.0, steps=30)
    ode = kernel_dynamics(theta, f0, y, 1.0, 30)[-1]
    mismatch = (net(x).detach()[:, 0] - ode).norm() / (f0[:, 0] - y).norm()
    assert mismatch < 0.05


def test_residual_decays_per_eigenmode_and_null_modes_stay():
    lam = torch.tensor([4.0, 1.0, 0.0], dtype=D64)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(5), dtype=D64))
    theta = q @ torch.diag(lam) @ q.T
    theta = (theta + theta.T) / 2
    r0 = q @ torch.tensor([1.0, 1.0, 1.0], dtype=D64)
    out = kernel_dynamics(theta, r0, torch.zeros(3, dtype=D64), lr=0.5, steps=7)
    _, vec, c = eigenmodes(theta, out)
    expected = torch.stack([(1 - 0.5 * lam / 3) ** t for t in range(8)])
    torch.testing.assert_close(c.abs(), expected, atol=1e-10, rtol=1e-10)


def test_unstable_step_raises():
    theta = torch.diag(torch.tensor([3.0, 1.0], dtype=D64))
    with pytest.raises(ValueError, match=r"lr must be < 2 n / lambda_max = 1\.333"):
        kernel_dynamics(theta, torch.zeros(2, dtype=D64), torch.ones(2, dtype=D64), lr=2.0, steps=3)
    # gradient flow has no step-size limit
    out = kernel_dynamics(theta, torch.zeros(2, dtype=D64), torch.ones(2, dtype=D64), lr=2.0, steps=3, flow=True)
    assert torch.isfinite(out).all()


def test_shapes_and_column_vectors():
    theta = random_kernel(4)
    out = kernel_dynamics(theta, torch.zeros(4, 1, dtype=D64), torch.ones(4, 1, dtype=D64), lr=1.0, steps=0)
    assert out.shape == (1, 4)
    torch.testing.assert_close(out[0], torch.zeros(4, dtype=D64))


def test_eigenmodes_descending_and_reconstruct():
    theta = random_kernel(7, seed=6)
    lam, vec, c = eigenmodes(theta)
    assert c is None and (lam[:-1] >= lam[1:]).all()
    torch.testing.assert_close(vec @ torch.diag(lam) @ vec.T, theta)
    r = torch.randn(3, 7, generator=torch.Generator().manual_seed(7), dtype=D64)
    _, _, c = eigenmodes(theta, r)
    assert c.shape == (3, 7)
    torch.testing.assert_close(c @ vec.T, r)


def test_relative_change_properties():
    theta = random_kernel(5)
    assert relative_change(theta, theta) == 0.0
    assert math.isclose(relative_change(1.1 * theta, theta), 0.1, rel_tol=1e-12)
    assert math.isclose(relative_change(3 * 1.1 * theta, 3 * theta), 0.1, rel_tol=1e-12)   # scale-free
    # A proportional change gives 0.1 in every matrix norm; a change of another shape pins the Frobenius norm
    # (the spectral norm would give 0.2 here, the nuclear one 0.2 too, against 0.2 / sqrt(5) = 0.0894).
    bump = torch.zeros(5, 5, dtype=D64)
    bump[2, 2] = 0.2
    assert math.isclose(relative_change(torch.eye(5, dtype=D64) + bump, torch.eye(5, dtype=D64)), 0.2 / math.sqrt(5),
                        rel_tol=1e-12)
    other = random_kernel(5, seed=9)
    expected = np.linalg.norm((other - theta).numpy(), "fro") / np.linalg.norm(theta.numpy(), "fro")
    assert math.isclose(relative_change(other, theta), expected, rel_tol=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: kernel_dynamics(torch.ones(2, 3, dtype=D64), torch.zeros(2), torch.zeros(2), 1.0, 1),
     "theta must be a square (n, n) tensor; got (2, 3)"),
    (lambda: kernel_dynamics(torch.tensor([[1.0, 2.0], [0.0, 1.0]]), torch.zeros(2), torch.zeros(2), 1.0, 1),
     "theta must be symmetric"),
    (lambda: kernel_dynamics(torch.eye(2), torch.zeros(3), torch.zeros(2), 1.0, 1),
     "f0 must have shape (2,) or (2, 1) to match the kernel; got (3,)"),
    (lambda: kernel_dynamics(torch.eye(2), torch.zeros(2), torch.zeros(2, 2), 1.0, 1),
     "y must have shape (2,) or (2, 1)"),
    (lambda: kernel_dynamics(torch.eye(2), torch.zeros(2), torch.zeros(2), 0.0, 1), "lr must be > 0; got 0.0"),
    (lambda: kernel_dynamics(torch.eye(2), torch.zeros(2), torch.zeros(2), 1.0, -1), "steps must be >= 0; got -1"),
    (lambda: kernel_dynamics(torch.eye(2), torch.zeros(2), torch.zeros(2), 1.0, 1, flow="yes"),
     "flow must be True or False"),
    (lambda: eigenmodes(torch.eye(2), torch.zeros(2, 3)), "residual must have shape (2,) or (t, 2)"),
    (lambda: relative_change(torch.eye(2), torch.zeros(2, 2)), "theta_0 must not be the zero matrix"),
    (lambda: relative_change(torch.eye(3), torch.eye(2)), "theta_t and theta_0 must have the same shape"),
    (lambda: relative_change(torch.eye(2), torch.full((2, 2), float("nan"))), "theta_0 must hold finite"),
])
def test_bad_input(call, message):
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    assert message in str(err.value)


# ---------------------------------------------------------------------------------------------------------------
# Kernel machines: margin losses, subgradient descent in function space, and networks trained on the same loss.

from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC, LinearSVC

from kllab.maths.divergences import kl
from kllab.maths.kernels import (LOSSES, kernel_machine, kernel_objective, margin_loss, margin_loss_grad,
                                 train_regularised, train_regularised_two_layer)
from kllab.maths.width import relu_ntk


def labelled(n, seed=0, d=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=D64)
    return x, torch.where(x[:, 0] + 0.5 * x[:, 1] + 0.3 * torch.randn(n, generator=g, dtype=D64) > 0, 1.0, -1.0)


def test_margin_losses_closed_forms_and_derivatives():
    f = torch.linspace(-3, 3, 61, dtype=D64) + 0.013       # away from the hinge's kink
    for label in (1.0, -1.0):
        y = torch.full_like(f, label)
        torch.testing.assert_close(margin_loss(f, y, "hinge"), torch.clamp(1 - label * f, min=0))
        torch.testing.assert_close(margin_loss(f, y, "logistic"), torch.log1p(torch.exp(-label * f)))
        torch.testing.assert_close(margin_loss(f, y, "squared"), 0.5 * (f - label) ** 2)
        for loss in LOSSES:   # central finite differences
            h = 1e-6
            fd = (margin_loss(f + h, y, loss) - margin_loss(f - h, y, loss)) / (2 * h)
            torch.testing.assert_close(margin_loss_grad(f, y, loss), fd, atol=1e-7, rtol=1e-6)
    # the subgradient at the kink is 0, as autograd's relu(1 - y f) gives
    assert margin_loss_grad(torch.tensor([1.0], dtype=D64), torch.tensor([1.0], dtype=D64), "hinge").item() == 0.0


def test_logistic_loss_is_the_kl_from_the_label():
    f = torch.linspace(-5, 5, 41, dtype=D64)
    for label in (1.0, -1.0):
        y = torch.full_like(f, label)
        logp = torch.log(torch.stack([(y > 0).double(), (y < 0).double()], -1))
        logq = torch.stack([torch.nn.functional.logsigmoid(f), torch.nn.functional.logsigmoid(-f)], -1)
        torch.testing.assert_close(kl(logp, logq), margin_loss(f, y, "logistic"))


@pytest.mark.parametrize("loss", LOSSES)
def test_kernel_machine_is_gradient_descent_on_the_centred_linear_model(loss):
    # Oracle: autograd gradient descent on f = phi . (w - w0) with the penalty (lam/2)||w - w0||^2 follows the
    # kernel machine with Theta = Phi Phi^T exactly; dropping the 1/n of the loss or the lam of the penalty breaks it.
    n, p = 12, 7
    phi, y = labelled(n, seed=5, d=p)
    phi_test = torch.randn(4, p, generator=torch.Generator().manual_seed(6), dtype=D64)
    model = LinearModel(p, seed=7)
    run = train_regularised(model, phi, y, loss, lam=0.2, lr=0.4, steps=60, x_test=phi_test, record_every=20)
    km = kernel_machine(phi @ phi.T, y, loss, lam=0.2, lr=0.4, steps=60, theta_test=phi_test @ phi.T, record_every=20)
    torch.testing.assert_close(run["f_train"], km["f_train"])
    torch.testing.assert_close(run["f_test"], km["f_test"])
    torch.testing.assert_close(run["objective"], km["objective"])   # lam/2 ||w - w0||^2 = lam/2 alpha' Theta alpha
    torch.testing.assert_close(run["steps"], km["steps"])


def test_kernel_objective_gradient_by_finite_differences():
    x, y = labelled(10, seed=8)
    theta = relu_ntk(x)
    alpha = torch.randn(10, generator=torch.Generator().manual_seed(9), dtype=D64)
    v = torch.randn(10, generator=torch.Generator().manual_seed(10), dtype=D64)
    h, lam = 1e-6, 0.3
    fd = (kernel_objective(theta, alpha + h * v, y, "logistic", lam)
          - kernel_objective(theta, alpha - h * v, y, "logistic", lam)) / (2 * h)
    f = theta @ alpha
    exact = v @ theta @ (margin_loss_grad(f, y, "logistic") / 10 + lam * alpha)
    assert abs(fd - exact.item()) < 1e-7


def _features(theta):
    return torch.linalg.cholesky(theta + 1e-12 * torch.eye(theta.shape[0], dtype=D64)).numpy()


@pytest.mark.parametrize("lam", [0.03, 0.3])
def test_kernel_machine_converges_to_scikit_learn(lam):
    x, y = labelled(30, seed=11)
    theta, n, lr = relu_ntk(x), 30, 1.0
    steps = int(25 / (lr * lam))
    C = 1 / (n * lam)
    feats = _features(theta)
    # squared loss: kernel ridge regression with ridge n lam
    ridge = KernelRidge(alpha=n * lam, kernel="precomputed").fit(theta.numpy(), y.numpy()).predict(theta.numpy())
    km = kernel_machine(theta, y, "squared", lam, lr, steps)["f_train"][-1]
    np.testing.assert_allclose(km.numpy(), ridge, atol=1e-8)
    # logistic loss: L2-regularised logistic regression without intercept, C = 1 / (n lam)
    logit = LogisticRegression(fit_intercept=False, C=C, tol=1e-12, max_iter=10**5).fit(feats, y.numpy())
    km = kernel_machine(theta, y, "logistic", lam, lr, steps)["f_train"][-1]
    np.testing.assert_allclose(km.numpy(), feats @ logit.coef_[0], atol=1e-6)
    # hinge: the soft-margin SVM without intercept; a constant step hovers near it (within a few percent)
    svm = LinearSVC(fit_intercept=False, loss="hinge", C=C, tol=1e-12, max_iter=10**6).fit(feats, y.numpy())
    f_svm = feats @ svm.coef_[0]
    run = kernel_machine(theta, y, "hinge", lam, lr, steps, record_every=1)
    assert np.linalg.norm(run["f_train"][-1].numpy() - f_svm) < 0.05 * np.linalg.norm(f_svm)
    alpha_svm = torch.linalg.solve(theta + 1e-12 * torch.eye(n, dtype=D64), torch.tensor(f_svm))
    optimum = kernel_objective(theta, alpha_svm, y, "hinge", lam)
    assert optimum <= run["objective"].min().item() + 1e-6 < optimum * 1.01 + 1e-6


def test_hinge_kernel_machine_matches_svc_with_a_precomputed_kernel():
    # On data symmetric under (x, y) -> (-x, -y) the relu NTK is symmetric too, the optimal intercept is 0, and
    # SVC(kernel="precomputed") (libsvm, with an intercept) solves our intercept-free SVM.
    half, y_half = labelled(15, seed=12, d=2)
    x, y = torch.cat([half, -half]), torch.cat([y_half, -y_half])
    theta, n, lam = relu_ntk(x), 30, 0.1
    svc = SVC(kernel="precomputed", C=1 / (n * lam), tol=1e-10).fit(theta.numpy(), y.numpy())
    f_svc = svc.decision_function(theta.numpy()) - svc.intercept_[0]
    assert abs(svc.intercept_[0]) < 1e-3
    steps = 4000   # decaying the step is not offered, so average the last iterates of a constant small step
    run = kernel_machine(theta, y, "hinge", lam, 0.2, steps, record_every=1)
    f_avg = run["f_train"][steps // 2:].mean(0).numpy()
    assert np.linalg.norm(f_avg - f_svc) < 0.02 * np.linalg.norm(f_svc)


@pytest.mark.parametrize("loss", LOSSES)
def test_batched_two_layer_training_matches_autograd(loss):
    x, y = labelled(16, seed=13)
    x_test = torch.randn(5, 3, generator=torch.Generator().manual_seed(14), dtype=D64)
    a = [MLP(3, 1, 16, seed=s) for s in range(2)]
    b = [MLP(3, 1, 16, seed=s) for s in range(2)]
    runs = [train_regularised(net, x, y, loss, 0.1, 0.8, 12, x_test=x_test, record_every=4) for net in a]
    batch = train_regularised_two_layer(b, x, y, loss, 0.1, 0.8, 12, x_test=x_test, record_every=4)
    for r, run in enumerate(runs):
        torch.testing.assert_close(batch["f_train"][:, r], run["f_train"])
        torch.testing.assert_close(batch["f_test"][:, r], run["f_test"])
        torch.testing.assert_close(batch["objective"][:, r], run["objective"])
    for na, nb in zip(a, b):   # trained weights written back
        for pa, pb in zip(na.parameters(), nb.parameters()):
            torch.testing.assert_close(pa, pb)


def test_wide_network_approaches_its_kernel_machine():
    x, y = circle(16)[0], torch.where(circle(16)[1] > 0, 1.0, -1.0)
    km = kernel_machine(relu_ntk(x), y, "hinge", 0.05, 1.0, 60)["f_train"][-1]
    gaps = {}
    for width in (16, 1024):   # the gap falls about as m^(-1/2): by 8 here, asserted by 2.5
        f = train_regularised_two_layer([MLP(3, 1, width, seed=s) for s in range(3)], x, y, "hinge", 0.05, 1.0,
                                        60)["f_train"][-1]
        gaps[width] = ((f - km).norm(dim=1) / km.norm()).mean().item()
    assert gaps[1024] < 0.4 * gaps[16], gaps


def test_kernel_machine_rejects_bad_input():
    x, y = labelled(6, seed=15)
    theta = relu_ntk(x)
    with pytest.raises(ValueError, match="loss must be one of"):
        kernel_machine(theta, y, "exponential", 0.1, 1.0, 5)
    with pytest.raises(ValueError, match="labels -1 or \\+1"):
        kernel_machine(theta, y * 2, "hinge", 0.1, 1.0, 5)
    with pytest.raises(ValueError, match="lr \\* lam must be < 1"):
        kernel_machine(theta, y, "hinge", 0.5, 2.0, 5)
    with pytest.raises(ValueError, match="theta_test must have shape"):
        kernel_machine(theta, y, "hinge", 0.1, 1.0, 5, theta_test=torch.zeros(3, 5, dtype=D64))
    with pytest.raises(ValueError, match="y must have shape"):
        kernel_machine(theta, y[:4], "hinge", 0.1, 1.0, 5)
    with pytest.raises(ValueError, match="finite"):
        kernel_machine(theta, torch.full((6,), float("nan"), dtype=D64), "squared", 0.1, 1.0, 5)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        kernel_machine(theta, y, "hinge", -0.1, 1.0, 5)
    with pytest.raises(ValueError, match="f must have the shape of y"):
        margin_loss(torch.zeros(3, dtype=D64), y, "hinge")
    with pytest.raises(ValueError, match="same width"):
        train_regularised_two_layer([MLP(3, 1, 4), MLP(3, 1, 8)], x, y, "hinge", 0.1, 1.0, 5)
    with pytest.raises(ValueError, match="NTK parametrisation"):
        train_regularised_two_layer([MLP(3, 1, 4, parametrization="standard")], x, y, "hinge", 0.1, 1.0, 5)
    with pytest.raises(ValueError, match="x must have shape"):
        train_regularised_two_layer([MLP(3, 1, 4)], x[:, :2], y, "hinge", 0.1, 1.0, 5)
