"""Tests of kllab.maths.natural_gradient: oracles are NumPy's lstsq / pinv / solve, torch.distributions,
torch.autograd (Hessian) and finite differences."""

import numpy as np
import pytest
import torch

from kllab.maths.natural_gradient import (gauss_newton_step, gaussian_fisher, gaussian_output_kl, init_tanh_mlp,
                                          min_norm_step, n_params_tanh_mlp, natural_gradient_step,
                                          per_sample_jacobian, predicted_decrease, tanh_mlp, tanh_mlp_jacobian,
                                          truncated_pinv_step)

D = torch.float64


def system(n, p, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, p, generator=g, dtype=D), torch.randn(n, generator=g, dtype=D)


def toy(width=3, dim=2, n=10, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(n, dim, generator=g, dtype=D)
    return init_tanh_mlp(width, dim, seed), x


# ------------------------------------------------------------------------------------------- Jacobians

def test_closed_form_jacobian_matches_torch_func_and_finite_differences():
    theta, x = toy()
    J = tanh_mlp_jacobian(theta, x, 3)
    assert J.shape == (10, n_params_tanh_mlp(3, dim=2)) == (10, 13)

    def net(t, xi):      # the same network, written without tanh_mlp's input checks (vmap forbids them)
        W, b, a, c = t[:6].reshape(3, 2), t[6:9], t[9:12], t[12]
        return torch.tanh(W @ xi + b) @ a + c

    J_func = per_sample_jacobian(net, theta, x)
    torch.testing.assert_close(J, J_func, rtol=1e-12, atol=1e-12)
    h = 1e-6
    fd = torch.stack([(tanh_mlp(theta + h * e, x, 3) - tanh_mlp(theta - h * e, x, 3)) / (2 * h)
                      for e in torch.eye(13, dtype=D)], 1)
    torch.testing.assert_close(J, fd, rtol=1e-7, atol=1e-8)


def test_per_sample_jacobian_of_a_linear_model_is_the_design():
    X = torch.randn(6, 3, dtype=D)
    J = per_sample_jacobian(lambda t, xi: xi @ t, torch.zeros(3, dtype=D), X)
    torch.testing.assert_close(J, X)


def test_init_is_seeded_and_scaled():
    a, b = init_tanh_mlp(64, 4, seed=1), init_tanh_mlp(64, 4, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, init_tanh_mlp(64, 4, seed=2))
    W = a[:256]
    assert abs(W.var().item() - 0.25) < 0.06          # w ~ N(0, 1/d), d = 4
    assert a[-1] == 0


# ----------------------------------------------------------------------------------------------- steps

@pytest.mark.parametrize("n,p", [(12, 5), (5, 12), (8, 8)])
def test_full_rank_step_is_numpy_lstsq_and_pinv(n, p):
    J, r = system(n, p)
    delta = truncated_pinv_step(J, r, k=min(n, p), lr=0.7)
    oracle = -0.7 * np.linalg.lstsq(J.numpy(), r.numpy(), rcond=None)[0]
    np.testing.assert_allclose(delta.numpy(), oracle, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(delta.numpy(), -0.7 * np.linalg.pinv(J.numpy()) @ r.numpy(), rtol=1e-10, atol=1e-12)
    # k beyond min(N, P) keeps all directions
    torch.testing.assert_close(truncated_pinv_step(J, r, k=100, lr=0.7), delta)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_truncated_step_is_lstsq_of_the_rank_k_matrix(k):
    J, r = system(9, 6, seed=3)
    U, S, Vt = np.linalg.svd(J.numpy(), full_matrices=False)      # NumPy's own SVD
    Jk = (U[:, :k] * S[:k]) @ Vt[:k]
    oracle = -np.linalg.lstsq(Jk, r.numpy(), rcond=1e-10)[0]
    np.testing.assert_allclose(truncated_pinv_step(J, r, k=k).numpy(), oracle, rtol=1e-9, atol=1e-12)


def test_rcond_drops_zero_singular_values():
    J, r = system(8, 3)
    J = torch.cat([J, J[:, :1]], 1)                    # a repeated column: rank 3 of 4
    delta = truncated_pinv_step(J, r, k=4)
    oracle = -np.linalg.pinv(J.numpy()) @ r.numpy()
    np.testing.assert_allclose(delta.numpy(), oracle, rtol=1e-9, atol=1e-12)


def test_under_parametrised_limit_is_gauss_newton_and_natural_gradient():
    J, r = system(20, 6, seed=1)
    oracle = -np.linalg.solve(J.numpy().T @ J.numpy(), J.numpy().T @ r.numpy())
    np.testing.assert_allclose(gauss_newton_step(J, r).numpy(), oracle, rtol=1e-10)
    np.testing.assert_allclose(truncated_pinv_step(J, r, k=6).numpy(), oracle, rtol=1e-10)
    for sigma in (0.1, 1.0, 7.0):       # sigma cancels from F^-1 g
        np.testing.assert_allclose(natural_gradient_step(J, r, sigma=sigma).numpy(), oracle, rtol=1e-10)
    # with damping lambda on the Fisher, the step is -(J^T J / s^2 + lambda)^-1 J^T r / s^2
    s, lam = 2.0, 0.3
    damped = -np.linalg.solve(J.numpy().T @ J.numpy() / s ** 2 + lam * np.eye(6), J.numpy().T @ r.numpy() / s ** 2)
    np.testing.assert_allclose(natural_gradient_step(J, r, sigma=s, damping=lam).numpy(), damped, rtol=1e-10)
    np.testing.assert_allclose(gauss_newton_step(J, r, lr=0.5, damping=lam).numpy(),
                               -0.5 * np.linalg.solve(J.numpy().T @ J.numpy() + lam * np.eye(6), J.numpy().T @ r.numpy()),
                               rtol=1e-10)


def test_over_parametrised_limit_is_the_minimum_norm_solution():
    J, r = system(5, 15, seed=2)
    delta = min_norm_step(J, r)
    torch.testing.assert_close(J @ delta, -r, rtol=1e-10, atol=1e-10)
    Q, _ = torch.linalg.qr(J.T)                                    # orthonormal basis of J's row space
    torch.testing.assert_close(Q @ (Q.T @ delta), delta, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(truncated_pinv_step(J, r, k=5), delta, rtol=1e-10, atol=1e-12)
    # any other solution is longer
    other = delta + (torch.eye(15, dtype=D) - Q @ Q.T) @ torch.randn(15, dtype=D)
    torch.testing.assert_close(J @ other, -r, rtol=1e-10, atol=1e-10)
    assert other.norm() > delta.norm()


def test_one_full_step_solves_linear_least_squares():
    X, y = system(64, 8, seed=4)
    theta = torch.zeros(8, dtype=D)
    theta = theta + truncated_pinv_step(X, X @ theta - y, k=8, lr=1.0)
    oracle = np.linalg.lstsq(X.numpy(), y.numpy(), rcond=None)[0]
    assert np.linalg.norm(theta.numpy() - oracle) < 1e-10


@pytest.mark.parametrize("k", [1, 3, 13])
def test_predicted_decrease_is_the_first_order_change(k):
    theta, x = toy()
    y = torch.sin(x[:, 0])
    r = tanh_mlp(theta, x, 3) - y
    J = tanh_mlp_jacobian(theta, x, 3)
    eta = 1e-6
    loss = lambda t: ((tanh_mlp(t, x, 3) - y) ** 2).mean()
    actual = loss(theta) - loss(theta + truncated_pinv_step(J, r, k, lr=eta))
    pred = predicted_decrease(J, r, k, lr=eta)
    assert pred > 0
    assert abs(actual / pred - 1) < 1e-4


def test_fisher_is_the_hessian_of_the_output_kl():
    theta, x = toy()
    sigma = 0.5
    f0 = tanh_mlp(theta, x, 3).detach()
    kl = lambda t: gaussian_output_kl(f0, tanh_mlp(t, x, 3), sigma).sum()
    H = torch.autograd.functional.hessian(kl, theta)
    torch.testing.assert_close(H, gaussian_fisher(tanh_mlp_jacobian(theta, x, 3), sigma), rtol=1e-10, atol=1e-12)


def test_output_kl_matches_torch_distributions_both_ways():
    a, b = torch.randn(7, dtype=D), torch.randn(7, dtype=D)
    N = torch.distributions.Normal
    oracle = torch.distributions.kl_divergence(N(a, 0.3), N(b, 0.3))
    torch.testing.assert_close(gaussian_output_kl(a, b, 0.3), oracle)
    torch.testing.assert_close(gaussian_output_kl(b, a, 0.3), oracle)   # equal variances: symmetric


# ------------------------------------------------------------------------------------------- bad input

def test_bad_input_is_rejected_with_named_messages():
    J, r = system(6, 4)
    with pytest.raises(ValueError, match=r"r must have one residual per row of J"):
        truncated_pinv_step(J, r[:5], k=2)
    with pytest.raises(ValueError, match=r"k must be >= 1; got 0"):
        truncated_pinv_step(J, r, k=0)
    with pytest.raises(TypeError, match=r"k must be an integer"):
        truncated_pinv_step(J, r, k=2.5)
    with pytest.raises(ValueError, match=r"lr must be > 0"):
        truncated_pinv_step(J, r, k=2, lr=0.0)
    with pytest.raises(ValueError, match=r"J must not contain NaN"):
        truncated_pinv_step(J.clone().fill_(float("nan")), r, k=2)
    with pytest.raises(ValueError, match=r"r must be finite"):
        predicted_decrease(J, r.clone().fill_(float("inf")), k=2)
    with pytest.raises(ValueError, match=r"J must have 2 axis"):
        gauss_newton_step(r, r)
    with pytest.raises(ValueError, match=r"at least as many rows as columns"):
        gauss_newton_step(J.T, r[:4])
    with pytest.raises(ValueError, match=r"at least as many rows as columns"):
        natural_gradient_step(J.T, r[:4])
    with pytest.raises(ValueError, match=r"at most as many rows as columns"):
        min_norm_step(J, r)
    with pytest.raises(ValueError, match=r"singular"):
        gauss_newton_step(torch.zeros(6, 4, dtype=D), r)
    with pytest.raises(ValueError, match=r"sigma must be > 0"):
        natural_gradient_step(J, r, sigma=-1.0)
    with pytest.raises(ValueError, match=r"damping must be >= 0"):
        gauss_newton_step(J, r, damping=-0.1)
    with pytest.raises(ValueError, match=r"rcond must be"):
        truncated_pinv_step(J, r, k=2, rcond=1.5)
    with pytest.raises(ValueError, match=r"theta must hold width \* \(dim \+ 2\) \+ 1 = 13"):
        tanh_mlp(torch.zeros(12, dtype=D), torch.zeros(5, 2, dtype=D), 3)
    with pytest.raises(ValueError, match=r"x must have 2 axis"):
        tanh_mlp_jacobian(torch.zeros(13, dtype=D), torch.zeros(5, dtype=D), 3)
    with pytest.raises(ValueError, match=r"f_ref and f_model must have the same shape"):
        gaussian_output_kl(torch.zeros(3, dtype=D), torch.zeros(4, dtype=D))
    with pytest.raises(ValueError, match=r"width must be >= 1"):
        init_tanh_mlp(0, 2, seed=0)
    with pytest.raises(TypeError, match=r"J must be a torch.Tensor"):
        truncated_pinv_step(J.numpy(), r, k=2)
