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
