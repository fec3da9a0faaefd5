"""Adversarial attacks and DONE training: closed-form attack vs FGSM/PGD and brute force, training vs SciPy, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from kllab.maths import adversarial, robust

pytestmark = pytest.mark.usefixtures("float64")


def toy(n=60, seed=0):
    g = np.random.default_rng(seed)
    y = np.where(g.random(n) < 0.5, 1.0, -1.0)
    x = y[:, None] * np.array([1.0, 0.4]) + g.normal(size=(n, 2))
    return x, y


def test_linear_worst_case_beats_brute_force():
    # The closed form against every corner and a grid of the l-inf ball (the loss is monotone in the margin).
    x, y = toy(10, seed=1)
    w, b, eps = np.array([0.7, -1.3]), 0.2, 0.3
    _, m = adversarial.linear_worst_case(w, b, x, y, eps)
    grid = np.stack(np.meshgrid(np.linspace(-eps, eps, 21), np.linspace(-eps, eps, 21)), -1).reshape(-1, 2)
    brute = (y[:, None] * ((x[:, None, :] + grid[None]) @ w + b)).min(1)
    np.testing.assert_allclose(m, brute, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 10])
def test_fgsm_and_pgd_reach_the_closed_form_on_a_linear_model(steps):
    x, y = toy()
    w, b, eps = np.array([1.2, -0.5]), -0.1, 0.25
    x_exact, _ = adversarial.linear_worst_case(w, b, x, y, eps)
    wt = torch.tensor(w)
    loss = lambda xx, yy: adversarial.logistic_loss(yy * (xx @ wt + b))
    x_att = adversarial.linf_attack(loss, torch.tensor(x), torch.tensor(y), eps, steps=steps).numpy()
    np.testing.assert_allclose(x_att, x_exact, atol=1e-12)


def test_pgd_stays_in_the_ball_and_beats_fgsm_on_a_network():
    x, y = toy(200, seed=2)
    g = torch.Generator().manual_seed(0)
    w1, w2 = 2.0 * torch.randn(2, 16, generator=g), torch.randn(16, generator=g)
    loss = lambda xx, yy: adversarial.logistic_loss(yy * (torch.tanh(xx @ w1) @ w2))
    xt, yt = torch.tensor(x), torch.tensor(y)
    fgsm = adversarial.linf_attack(loss, xt, yt, 0.3)
    pgd = adversarial.linf_attack(loss, xt, yt, 0.3, steps=20)
    assert (pgd - xt).abs().max().item() <= 0.3 + 1e-12 and (fgsm - xt).abs().max().item() <= 0.3 + 1e-12
    assert loss(pgd, yt).mean() > loss(fgsm, yt).mean() > loss(xt, yt).mean()


def test_zero_radius_is_the_identity():
    x, y = toy(5)
    loss = lambda xx, yy: adversarial.logistic_loss(yy * xx.sum(-1))
    out = adversarial.linf_attack(loss, torch.tensor(x), torch.tensor(y), 0.0)
    np.testing.assert_array_equal(out.numpy(), x)


def test_logistic_loss_is_stable():
    assert adversarial.logistic_loss(np.array(800.0)) == pytest.approx(0.0, abs=1e-300)
    assert adversarial.logistic_loss(np.array(-800.0)) == pytest.approx(800.0)
    assert adversarial.logistic_loss(torch.tensor(-800.0)).item() == pytest.approx(800.0)


def test_done_objective_is_r_log_mean_exp():
    x, y = toy()
    theta = np.array([0.8, 0.3, -0.2])
    _, m = adversarial.linear_worst_case(theta[:2], theta[2], x, y, 0.1)
    ell = adversarial.logistic_loss(m)
    for r in (0.05, 1.0, 50.0):
        expected = robust.kl_dro(torch.tensor(ell), r)[1].item()
        assert adversarial.done_objective(theta, x, y, 0.1, r) == pytest.approx(expected, abs=1e-12)
    assert adversarial.done_objective(theta, x, y, 0.1, math.inf) == pytest.approx(ell.mean(), abs=1e-14)


@pytest.mark.parametrize("eps", [0.0, 0.2, 0.8])
@pytest.mark.parametrize("r", [0.02, 0.5, math.inf])
def test_alternating_training_reaches_the_scipy_minimiser(eps, r):
    # Oracle: L-BFGS-B with finite-difference gradients on w = w+ - w- (no shared gradient code).
    x, y = toy(80, seed=3)
    fit = adversarial.train_done(x, y, eps, r, steps=300, lr=2.0, ridge=0.01)

    def split(u):
        return adversarial.done_objective(np.r_[u[:2] - u[2:4], u[4]], x, y, eps, r, 0.01)

    res = minimize(split, np.zeros(5), method="L-BFGS-B", bounds=[(0, None)] * 4 + [(None, None)],
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 5000})
    theta = np.r_[res.x[:2] - res.x[2:4], res.x[4]]
    f_fit = adversarial.done_objective(fit.theta, x, y, eps, r, 0.01)
    assert f_fit <= adversarial.done_objective(theta, x, y, eps, r, 0.01) + 1e-9
    np.testing.assert_allclose(fit.theta, theta, atol=1e-4)
    assert all(a >= b - 1e-12 for a, b in zip(fit.history, fit.history[1:])), "the objective must not increase"


def test_training_weights_are_the_kl_dro_weights():
    x, y = toy()
    fit = adversarial.train_done(x, y, 0.1, 0.3, steps=50)
    _, m = adversarial.linear_worst_case(fit.weight, fit.bias, x, y, 0.1)
    logw, _ = robust.kl_dro(torch.tensor(adversarial.logistic_loss(m)), 0.3)
    np.testing.assert_allclose(fit.log_weights, logw.numpy(), atol=1e-12)
    uniform = adversarial.train_done(x, y, 0.1, math.inf, steps=5)
    np.testing.assert_allclose(np.exp(uniform.log_weights), np.full(60, 1 / 60))


def test_large_temperature_approaches_uniform_training():
    x, y = toy()
    hot = adversarial.train_done(x, y, 0.2, 1e5, steps=300)
    base = adversarial.train_done(x, y, 0.2, math.inf, steps=300)
    np.testing.assert_allclose(hot.theta, base.theta, atol=1e-3)


def test_bad_input():
    x, y = toy(5)
    with pytest.raises(ValueError, match="epsilon must be >= 0; got -0.1"):
        adversarial.linear_worst_case([1.0, 0.0], 0.0, x, y, -0.1)
    with pytest.raises(ValueError, match="y must be a 1-D array of binary labels"):
        adversarial.linear_worst_case([1.0, 0.0], 0.0, x, np.arange(5), 0.1)
    with pytest.raises(ValueError, match="x must have shape"):
        adversarial.linear_worst_case([1.0, 0.0], 0.0, x[:3], y, 0.1)
    with pytest.raises(ValueError, match="weight must have shape"):
        adversarial.linear_worst_case([1.0, 0.0, 2.0], 0.0, x, y, 0.1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        adversarial.train_done(x, y, 0.1, 0.0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        adversarial.train_done(x, y, 0.1, 1.0, steps=0)
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        adversarial.done_objective([0.0, 0.0, 0.0], x, y, 0.1, 1.0, ridge=-1.0)
    with pytest.raises(ValueError, match="theta must have shape"):
        adversarial.done_objective([0.0, 0.0], x, y, 0.1, 1.0)
    with pytest.raises(ValueError, match="x must be finite"):
        adversarial.train_done(np.full((5, 2), np.nan), y, 0.1, 1.0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        adversarial.linf_attack(lambda a, b: a.sum(-1), torch.tensor(x), torch.tensor(y), 0.1, steps=0)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        adversarial.linf_attack(lambda a, b: a.sum(-1), torch.tensor(x), torch.tensor(y), 0.1, step_size=0.0)


def test_done_objective_ridge_is_half_mu_norm_squared_of_the_weights_only():
    # mu/2 ||w||^2 on the weights, the bias left out: the scale the trainer's gradient (mu w) assumes.
    x, y = toy()
    theta = np.array([0.8, -0.3, 2.0])
    for r in (0.5, math.inf):
        base = adversarial.done_objective(theta, x, y, 0.1, r, 0.0)
        assert adversarial.done_objective(theta, x, y, 0.1, r, 0.2) - base == pytest.approx(0.1 * (0.64 + 0.09), abs=1e-14)
