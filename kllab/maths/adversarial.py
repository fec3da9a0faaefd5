r"""Adversarial perturbations in an ℓ∞ ball, and adversarial training with KL-DRO instance weights.

An adversarial example moves an input x inside the ball :math:`\|\delta\|_\infty \le \varepsilon` to
raise the loss: FGSM takes one signed-gradient step of size ε, PGD several smaller ones, each
projected back into the ball (:func:`linf_attack`). For a **linear** binary classifier the inner
maximisation has a closed form (:func:`linear_worst_case`): the loss only depends on the margin
:math:`m = y(w^\top x + b)`, which the attack lowers by exactly :math:`\varepsilon\|w\|_1` with
:math:`\delta^* = -\varepsilon\, y\, \mathrm{sign}(w)`, so FGSM and PGD are both exact there.

Doubly robust adversarial training (DONE, Sow et al., 2024) adds a second adversary that reweights
the training examples, KL-regularised towards uniform (:func:`kllab.maths.robust.kl_dro`):

.. math::
    \min_\theta\; \max_{w \in \Delta_n} \sum_i w_i\, \ell_i^{adv}(\theta) - r\,\mathrm{KL}(w \| u)
    = \min_\theta\; r \log \frac1n \sum_i e^{\ell_i^{adv}(\theta)/r},
    \qquad \ell_i^{adv}(\theta) = \max_{\|\delta\|_\infty\le\varepsilon} \ell(\theta; x_i + \delta).

:func:`train_done` runs the alternating algorithm (attack, closed-form weights
:math:`w^* = \mathrm{softmax}(\ell^{adv}/r)`, one gradient step on :math:`\sum_i w^*_i \ell_i^{adv}`),
which is gradient descent on the right-hand side (envelope and Danskin theorems). r = ∞ is ordinary
adversarial training (uniform weights), r → 0 trains on the worst example only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import log_softmax

from .validation import check_int, check_positive, check_real

__all__ = ["linf_attack", "linear_worst_case", "logistic_loss", "done_objective", "train_done", "DoneFit"]


def _binary_labels(y) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim != 1 or not np.isin(y, (-1.0, 1.0)).all():
        raise ValueError("y must be a 1-D array of binary labels in {-1, +1}; got values "
                         f"{np.unique(y)[:5].tolist()} with shape {y.shape}")
    return y


def _inputs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = _binary_labels(y)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must have shape (n, d) with n = len(y) = {y.shape[0]}; got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x must be finite everywhere; got a NaN or inf")
    return x, y


def linf_attack(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x, y, epsilon: float, *,
                steps: int = 1, step_size: float | None = None) -> torch.Tensor:
    r"""FGSM (``steps=1``) or PGD in the ℓ∞ ball of radius ε around ``x``: signed-gradient ascent on the loss.

    .. math::
        x^{t+1} = \Pi_{\|x' - x\|_\infty \le \varepsilon}\big(x^t + \alpha\,\mathrm{sign}\,\nabla_x \ell(x^t, y)\big)

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(x, y)`` returns per-example losses, shape (n,), differentiable in x.
    x : Tensor, shape (n, d)
    y : Tensor, shape (n,)
    epsilon : float ≥ 0
    steps : int ≥ 1
    step_size : float > 0, optional
        α; default ε for FGSM (one step) and 2.5 ε / steps for PGD (Madry et al.'s rule).

    Returns
    -------
    Tensor, shape (n, d)
        The perturbed inputs (detached), each within ε of ``x`` in every coordinate.

    >>> import torch
    >>> x = torch.zeros(1, 2, dtype=torch.float64); y = torch.ones(1, dtype=torch.float64)
    >>> loss = lambda x, y: torch.nn.functional.softplus(-y * (x @ torch.tensor([1.0, -2.0], dtype=torch.float64)))
    >>> linf_attack(loss, x, y, 0.1).tolist()
    [[-0.1, 0.1]]
    """
    epsilon = check_real("epsilon", epsilon, low=0.0)
    steps = check_int("steps", steps, low=1)
    if step_size is None:
        step_size = epsilon if steps == 1 else 2.5 * epsilon / steps
    else:
        step_size = check_positive("step_size", step_size)
    x = torch.as_tensor(x).detach()
    if epsilon == 0.0:
        return x.clone()
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(loss_fn(adv, y).sum(), adv)
        with torch.no_grad():
            adv = x + (adv + step_size * grad.sign() - x).clamp(-epsilon, epsilon)
    return adv.detach()


def logistic_loss(margin):
    r"""Logistic loss of a margin, :math:`\log(1 + e^{-m})`, computed stably (NumPy or torch).

    >>> round(float(logistic_loss(np.array(0.0))), 6) == round(math.log(2), 6)
    True
    """
    if torch.is_tensor(margin):
        return torch.nn.functional.softplus(-margin)
    return np.logaddexp(0.0, -np.asarray(margin, dtype=float))


def linear_worst_case(weight, bias: float, x, y, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact ℓ∞ attack on a linear binary classifier: the worst inputs and their margins.

    .. math::
        \min_{\|\delta\|_\infty \le \varepsilon} y\,(w^\top (x + \delta) + b) = y\,(w^\top x + b) - \varepsilon \|w\|_1,
        \qquad \delta^* = -\varepsilon\, y\, \mathrm{sign}(w)

    Every loss that decreases in the margin (logistic, hinge, 0-1) is maximised by the same δ*.

    Parameters
    ----------
    weight : array, shape (d,)
    bias : float
    x : array, shape (n, d)
    y : array, shape (n,), labels in {-1, +1}
    epsilon : float ≥ 0

    Returns
    -------
    (x_adv, margins) : arrays of shape (n, d) and (n,)

    >>> xa, m = linear_worst_case([1.0, -2.0], 0.0, [[0.0, 0.0]], [1.0], 0.1)
    >>> xa.tolist(), round(float(m[0]), 6)
    ([[-0.1, 0.1]], -0.3)
    """
    epsilon = check_real("epsilon", epsilon, low=0.0)
    x, y = _inputs(x, y)
    weight = np.asarray(weight, dtype=float)
    if weight.shape != (x.shape[1],):
        raise ValueError(f"weight must have shape (d,) = ({x.shape[1]},); got {weight.shape}")
    bias = check_real("bias", bias)
    x_adv = x - epsilon * y[:, None] * np.sign(weight)[None, :]
    margins = y * (x @ weight + bias) - epsilon * np.abs(weight).sum()
    return x_adv, margins


def _r_log_mean_exp(losses: np.ndarray, temperature: float) -> float:
    """r log mean exp(l / r), accurate at every r: centred on the mean, with log1p / expm1 when r is large."""
    centred = losses - losses.mean()
    spread = np.abs(centred).max() / temperature
    if spread < 0.5:  # the log of a number close to 1: expm1 and log1p keep the digits that r multiplies
        return float(losses.mean() + temperature * np.log1p(np.expm1(centred / temperature).mean()))
    return float(losses.mean() + temperature * (np.logaddexp.reduce(centred / temperature) - math.log(len(losses))))


def _temperature(temperature) -> float:
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature == math.inf:
        return math.inf
    return check_positive("temperature", temperature)


def done_objective(theta, x, y, epsilon: float, temperature: float, ridge: float = 0.0) -> float:
    r"""The DONE training objective of a linear logistic model, with both inner maximisations in closed form.

    ``theta = (w_1, ..., w_d, b)``. With :math:`\ell_i = \log(1 + e^{-m_i})` at the worst-case margins
    :math:`m_i = y_i(w^\top x_i + b) - \varepsilon\|w\|_1`:

    .. math::
        F(\theta) = r \log \frac1n \sum_i e^{\ell_i / r} + \frac{\mu}{2}\|w\|^2
        \quad (r = \infty:\ \text{the mean of } \ell_i)

    >>> x = np.array([[1.0, 0.0], [-1.0, 0.0]]); y = np.array([1.0, -1.0])
    >>> round(done_objective([1.0, 0.0, 0.0], x, y, 0.0, math.inf), 6) == round(math.log(1 + math.exp(-1)), 6)
    True
    """
    x, y = _inputs(x, y)
    temperature = _temperature(temperature)
    ridge = check_real("ridge", ridge, low=0.0)
    theta = np.asarray(theta, dtype=float)
    if theta.shape != (x.shape[1] + 1,):
        raise ValueError(f"theta must have shape (d + 1,) = ({x.shape[1] + 1},); got {theta.shape}")
    _, m = linear_worst_case(theta[:-1], float(theta[-1]), x, y, epsilon)
    losses = logistic_loss(m)
    value = losses.mean() if temperature == math.inf else _r_log_mean_exp(losses, temperature)
    return float(value + 0.5 * ridge * theta[:-1] @ theta[:-1])


@dataclass(frozen=True)
class DoneFit:
    """A trained linear model and its last KL-DRO instance weights."""

    weight: np.ndarray
    bias: float
    log_weights: np.ndarray
    history: list[float]

    @property
    def theta(self) -> np.ndarray:
        return np.append(self.weight, self.bias)


def train_done(x, y, epsilon: float, temperature: float, *, steps: int = 1000, lr: float = 2.0,
               ridge: float = 1e-2, tol: float = 1e-9, init=None) -> DoneFit:
    r"""Doubly robust adversarial training of a linear logistic model by the alternating algorithm.

    Each step: (1) attack every example in closed form (:func:`linear_worst_case`); (2) set the
    instance weights to the KL-DRO worst case :math:`w^* = \mathrm{softmax}(\ell^{adv}/r)`
    (:func:`kllab.maths.robust.kl_dro`; uniform for r = ∞); (3) take a gradient step on
    :math:`\sum_i w^*_i \ell_i^{adv} + \frac{\mu}{2}\|w\|^2` with the weights and perturbations held fixed.
    By the envelope theorem (for w*) and Danskin's theorem (for δ*) this is gradient descent on
    :func:`done_objective`; the paper's CID algorithm solves the same objective as a
    compositional bilevel problem.

    Parameters
    ----------
    x : array, shape (n, d)
    y : array, shape (n,), labels in {-1, +1}
    epsilon : float ≥ 0
        ℓ∞ attack radius.
    temperature : float > 0 or math.inf
        r.
    steps : int ≥ 1
        The most steps taken; training stops earlier once the projected-gradient norm is below ``tol``.
    lr : float > 0
        Largest step size; each step backtracks (Armijo) from twice the last one. The weight vector is
        split as w = w⁺ − w⁻ (w± ≥ 0), which makes the attack term ε‖w‖₁ linear, and the step is projected.
    ridge : float ≥ 0
        μ; > 0 keeps the minimiser unique and finite on separable data.
    tol : float ≥ 0
        Convergence threshold on the projected-gradient norm.
    init : array of shape (d + 1,), optional
        Starting θ (default zero).

    Returns
    -------
    DoneFit
        ``weight``, ``bias``, the last ``log_weights`` (shape (n,)) and the objective per step.

    References
    ----------
    Sow, Lin, Wang, Liang. Doubly Robust Instance-Reweighted Adversarial Training. ICLR 2024. arXiv:2308.00311.

    >>> g = np.random.default_rng(0); y = np.where(g.random(40) < 0.5, 1.0, -1.0)
    >>> x = y[:, None] * np.array([1.0, 0.5]) + g.normal(size=(40, 2))
    >>> fit = train_done(x, y, 0.1, 1.0, steps=300)
    >>> abs(fit.history[-1] - done_objective(fit.theta, x, y, 0.1, 1.0, 1e-2)) < 1e-12
    True
    """
    x, y = _inputs(x, y)
    epsilon = check_real("epsilon", epsilon, low=0.0)
    temperature = _temperature(temperature)
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr)
    ridge = check_real("ridge", ridge, low=0.0)
    tol = check_real("tol", tol, low=0.0)
    n, d = x.shape
    theta = np.zeros(d + 1) if init is None else np.array(init, dtype=float)
    if theta.shape != (d + 1,):
        raise ValueError(f"init must have shape (d + 1,) = ({d + 1},); got {theta.shape}")
    # w = w+ - w- with w+, w- >= 0 makes the attack's eps * ||w||_1 = eps * sum(w+ + w-) linear, so the
    # objective is smooth on the orthant and projected gradient descent converges (plain gradient descent
    # stalls on the kink of |w_j| where the robust optimum puts a weight at 0).
    params = np.concatenate([np.maximum(theta[:-1], 0.0), np.maximum(-theta[:-1], 0.0), theta[-1:]])
    free = np.r_[np.zeros(2 * d, bool), True]                       # the bias is not projected

    def evaluate(params):
        wp, wm, b = params[:d], params[d:2 * d], params[-1]
        w = wp - wm
        m = y * (x @ w + b) - epsilon * (wp + wm).sum()             # (1) the attack, exact (linear_worst_case)
        losses = logistic_loss(m)
        if temperature == math.inf:                                 # (2) the instance weights
            logw = np.full(n, -math.log(n))
            value = losses.mean()
        else:                                                       # softmax(l / r): robust.kl_dro's closed form
            logw = log_softmax(losses / temperature)
            value = _r_log_mean_exp(losses, temperature)
        return float(value + 0.5 * ridge * w @ w), m, logw

    value, m, logw = evaluate(params)
    history, step = [value], lr
    for _ in range(steps):
        w = params[:d] - params[d:2 * d]
        coef = np.exp(logw) * -np.exp(-np.logaddexp(0.0, m))         # w_i * dl/dm_i, with dl/dm = -sigmoid(-m)
        g_w = (coef * y) @ x + ridge * w                            # (3) a step on sum_i w_i l_i, w held fixed
        grad = np.concatenate([g_w - epsilon * coef.sum(), -g_w - epsilon * coef.sum(), [(coef * y).sum()]])
        # Projected step with backtracking (Armijo): the step must shrink like r where the weights are sharp.
        step = min(2.0 * step, lr)
        while True:
            trial = params - step * grad
            trial = np.where(free, trial, np.maximum(trial, 0.0))
            t_value, t_m, t_logw = evaluate(trial)
            move = trial - params
            if t_value <= value + grad @ move + move @ move / (2.0 * step) or step < 1e-14:
                break
            step *= 0.5
        params, value, m, logw = trial, t_value, t_m, t_logw
        history.append(value)
        if np.sqrt(move @ move) / step < tol:  # the projected-gradient norm: converged
            break
    theta = np.append(params[:d] - params[d:2 * d], params[-1])
    return DoneFit(weight=theta[:-1].copy(), bias=float(theta[-1]), log_weights=logw, history=history)
