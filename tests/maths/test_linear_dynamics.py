"""Tests for kllab.maths.linear_dynamics: closed-form gradient flow of least squares and the two-scale teacher-student."""

import numpy as np
import pytest
import scipy.linalg
import torch

from kllab.maths.kernels import kernel_dynamics
from kllab.maths.linear_dynamics import (block_errors, double_descent_bump, expected_least_squares_error,
                                         generalization_error, gradient_descent, gradient_flow, two_scale_teacher)


def problem(n=40, d=6, seed=0, kappa=0.3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.linspace(1.0, kappa, d)
    y = rng.standard_normal(n)
    return x, y


def flow_by_expm(x, y, t, w0):
    # dw/dt = b - H w as a linear ODE in (w, 1): [w; 1]' = [[-H, b], [0, 0]] [w; 1], solved by a matrix exponential
    n, d = x.shape
    a = np.zeros((d + 1, d + 1))
    a[:d, :d] = -x.T @ x / n
    a[:d, d] = x.T @ y / n
    return (scipy.linalg.expm(a * t) @ np.append(w0, 1.0))[:d]


@pytest.mark.parametrize("t", [0.0, 0.3, 2.0, 17.0, 400.0])
def test_flow_matches_the_matrix_exponential(t):
    x, y = problem()
    w0 = np.random.default_rng(1).standard_normal(6)
    for start in (None, w0):
        got = gradient_flow(x, y, [t], w0=start)[0]
        want = flow_by_expm(x, y, t, np.zeros(6) if start is None else start)
        assert np.allclose(got, want, rtol=1e-10, atol=1e-12), (t, got, want)


def test_flow_tends_to_least_squares():
    x, y = problem()
    got = gradient_flow(x, y, [1e7])[0]
    assert np.allclose(got, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-9, atol=1e-12)


def test_flow_from_zero_tends_to_the_minimum_norm_solution_when_d_exceeds_n():
    x, y = problem(n=5, d=9)
    got = gradient_flow(x, y, [1e8])[0]
    assert np.allclose(got, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-7, atol=1e-9)
    assert np.allclose(x @ got, y, atol=1e-8)           # interpolates
    # along a direction H never sees (the null space) the flow adds t * 0: nothing, whatever t


def test_gradient_descent_with_a_small_step_follows_the_flow():
    x, y = problem()
    lr, steps = 1e-3, 4000                                # t = 4
    gd = gradient_descent(x, y, lr, steps, record_every=1000)
    flow = gradient_flow(x, y, lr * np.arange(0, steps + 1, 1000))
    err = np.abs(gd - flow).max() / np.abs(flow).max()
    assert err < 2e-3, err                                # O(lr): the discrete and continuous decays differ
    half = gradient_descent(x, y, lr / 2, 2 * steps, record_every=2 * steps)[-1]
    err_half = np.abs(half - flow[-1]).max() / np.abs(flow).max()
    assert 0.4 < err_half / (np.abs(gd[-1] - flow[-1]).max() / np.abs(flow).max()) < 0.6   # first order in lr


def test_gradient_descent_closed_form_per_mode():
    # after k steps of size lr the mode gain is (1 - (1 - lr lam)^k) / lam: a dropped factor in the step breaks this
    x, y = problem()
    n = x.shape[0]
    lam, v = np.linalg.eigh(x.T @ x / n)
    lr, k = 0.05, 37
    want = v @ ((1 - (1 - lr * lam) ** k) / lam * (v.T @ (x.T @ y / n)))
    assert np.allclose(gradient_descent(x, y, lr, k, record_every=k)[-1], want, rtol=1e-10, atol=1e-12)


def test_flow_predictions_match_the_frozen_kernel_flow():
    # on the training inputs the flow is the kernel flow of kllab.maths.kernels with Theta = X X^T, f0 = 0, lr = 1
    x, y = problem(n=12, d=5)
    steps = 6
    f = kernel_dynamics(torch.tensor(x @ x.T), torch.zeros(12, dtype=torch.float64), torch.tensor(y), lr=1.0,
                        steps=steps, flow=True).numpy()
    w = gradient_flow(x, y, np.arange(steps + 1, dtype=float))
    assert np.allclose(w @ x.T, f, rtol=1e-9, atol=1e-11)


def test_two_scale_teacher_and_its_exact_test_error_against_monte_carlo():
    p = two_scale_teacher(200, 3, 2, 0.1, 0.5, np.random.default_rng(0))
    assert p["x"].shape == (200, 5) and np.allclose(p["x"], p["z"] * p["scales"])
    assert np.allclose(p["scales"], [1, 1, 1, 0.1, 0.1]) and np.isclose(np.linalg.norm(p["w_star"]), 1.0)
    w = np.random.default_rng(2).standard_normal(5)
    # Monte Carlo: fresh examples from the same teacher
    rng = np.random.default_rng(3)
    z = rng.standard_normal((400_000, 5))
    y = z @ p["w_star"] + np.sqrt(0.5) * rng.standard_normal(400_000)
    mc = np.mean((y - (z * p["scales"]) @ w) ** 2)
    exact = generalization_error(w, p["scales"], p["w_star"], 0.5)
    assert abs(mc - exact) < 0.02 * exact, (mc, exact)
    fast, slow = block_errors(w, p["scales"], p["w_star"], 3)
    assert np.isclose(fast + slow + 0.5, exact)
    # label noise: the training residual of the teacher itself has variance about Delta
    assert abs(np.var(p["y"] - p["z"] @ p["w_star"]) - 0.5) < 0.15


def test_expected_least_squares_error_against_monte_carlo():
    n, d, s2 = 30, 8, 0.7
    rng = np.random.default_rng(0)
    errs = []
    for _ in range(3000):
        x = rng.standard_normal((n, d))
        eps = np.sqrt(s2) * rng.standard_normal(n)
        w = np.linalg.lstsq(x, eps, rcond=None)[0]        # teacher 0: the excess error is ||w||^2
        errs.append(w @ w + s2)
    mc, se = np.mean(errs), np.std(errs) / np.sqrt(len(errs))
    want = expected_least_squares_error(s2, n, d)
    assert abs(mc - want) < 4 * se, (mc, want, se)
    assert abs(want - s2 * (1 + d / (n - d - 1))) < 1e-12


def test_double_descent_bump():
    assert double_descent_bump([3.0, 2.0, 1.0])["height"] == 0.0        # only falls
    assert double_descent_bump([1.0, 0.5, 2.0])["height"] == 0.0        # a single U
    b = double_descent_bump([2.0, 1.0, 1.6, 1.2, 3.0])
    assert b["height"] == pytest.approx(0.4) and (b["before"], b["peak"], b["after"]) == (1, 2, 3)
    assert b["relative"] == pytest.approx(0.4 / 1.6)
    b = double_descent_bump([1.0, 0.2, 0.9, 0.8])                        # the hill's lower side limits it
    assert b["height"] == pytest.approx(0.1)


def test_bad_input():
    x, y = problem()
    with pytest.raises(ValueError, match="y must have one target per row of x"):
        gradient_flow(x, y[:-1], [1.0])
    with pytest.raises(ValueError, match="times must be >= 0"):
        gradient_flow(x, y, [-1.0])
    with pytest.raises(ValueError, match="x must not contain NaN"):
        gradient_flow(np.full((3, 2), np.nan), np.zeros(3), [1.0])
    with pytest.raises(ValueError, match="w0 must have shape"):
        gradient_flow(x, y, [1.0], w0=np.zeros(2))
    with pytest.raises(ValueError, match="lr must be < 2 / lambda_max"):
        gradient_descent(x, y, 100.0, 3)
    with pytest.raises(ValueError, match="kappa must be <= 1"):
        two_scale_teacher(10, 2, 2, 2.0, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="kappa must be > 0"):
        two_scale_teacher(10, 2, 2, 0.0, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="label_noise must be >= 0"):
        two_scale_teacher(10, 2, 2, 0.5, -0.1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        two_scale_teacher(10, 2, 2, 0.5, 0.1, 0)
    with pytest.raises(ValueError, match="must have the same length"):
        generalization_error(np.zeros(3), np.ones(2), np.ones(2), 0.0)
    with pytest.raises(ValueError, match="n must be >= 7"):
        expected_least_squares_error(1.0, 6, 5)
    with pytest.raises(ValueError, match="errors must hold at least one value"):
        double_descent_bump([])
