r"""Kernel dynamics: how a network trained by gradient descent behaves when its tangent kernel is fixed.

Under full-batch gradient descent with step :math:`\eta` on the mean squared error
:math:`L = \tfrac{1}{2n}\sum_i (f(x_i) - y_i)^2`, the training-set predictions move by
:math:`\Delta f \approx -\tfrac{\eta}{n}\,\Theta\,(f - y)`, where
:math:`\Theta_{ij} = \sum_p \partial_p f(x_i)\,\partial_p f(x_j)` is the neural tangent kernel
(see :func:`kllab.maths.width.empirical_ntk`). If :math:`\Theta` does not change during training, which is
what happens at infinite width in NTK parametrisation (Jacot et al., 2018), the residual
:math:`r = f - y` obeys a *linear* recursion and each eigenvector of :math:`\Theta` decays on its
own, at a rate set by its eigenvalue. This module solves that recursion in closed form and
measures how far a trained network's kernel has moved.

The target :math:`y` (and, for kernel changes, the initial kernel :math:`\Theta_0`) is the
reference, as everywhere in kllab.

**Kernel machines** (:func:`kernel_machine`, :func:`train_regularised`). With an
:math:`\ell_2` penalty towards the initial parameters and a margin loss :math:`\ell`,

.. math::
    L(\theta) = \frac1n\sum_i \ell\big(f_\theta(x_i), y_i\big) + \frac\lambda2\,\|\theta - \theta_0\|^2,
    \qquad \ell \in \{\text{hinge } \max(0, 1 - yf),\ \text{logistic } \log(1 + e^{-yf}),\
    \text{squared } \tfrac12 (f - y)^2\},

the linearised network :math:`f = \phi(x)\cdot(\theta - \theta_0)` (with :math:`f_0 \equiv 0` and
:math:`\phi = \nabla_\theta f_{\theta_0}`) stays in the span of the training features,
:math:`\theta - \theta_0 = \sum_j \alpha_j \phi(x_j)`, so :math:`f = \Theta\alpha` and (sub)gradient descent with step
:math:`\eta` becomes, in function space,

.. math::
    \alpha_{t+1} = (1 - \eta\lambda)\,\alpha_t - \frac\eta n\,\ell'(\Theta\alpha_t, y),

the kernel machine of Chen et al. (2021): for the hinge a soft-margin SVM trained by subgradient descent (no
intercept, :math:`C = 1/(n\lambda)`), for the squared loss kernel ridge regression (ridge :math:`n\lambda`), for the
logistic loss kernel logistic regression. A network in NTK parametrisation follows it more closely as its width
grows. The hinge's subgradient is taken as 0 at the kink :math:`yf = 1`, as autograd does for ``relu(1 - yf)``.
The labels :math:`y \in \{-1, +1\}` are the reference. The logistic loss is a KL divergence:
:math:`\log(1 + e^{-yf}) = \mathrm{KL}(\delta_y \,\|\, \mathrm{Bernoulli}(\sigma(f)))` from the label to the model.

References: A. Jacot, F. Gabriel, C. Hongler. *Neural Tangent Kernel: Convergence and Generalization
in Neural Networks.* NeurIPS 2018. arXiv:1806.07572. Y. Chen, W. Huang, L. M. Nguyen, T.-W. Weng. *On the
Equivalence between Neural Network and Support Vector Machine.* NeurIPS 2021. arXiv:2111.06063.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .validation import check_bool, check_choice, check_int, check_positive, check_real

__all__ = ["kernel_dynamics", "eigenmodes", "relative_change", "LOSSES", "margin_loss", "margin_loss_grad",
           "kernel_machine", "kernel_objective", "train_regularised", "train_regularised_two_layer"]


def _check_kernel(name: str, theta: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(theta) or theta.ndim != 2 or theta.shape[0] != theta.shape[1]:
        shape = tuple(theta.shape) if torch.is_tensor(theta) else type(theta).__name__
        raise ValueError(f"{name} must be a square (n, n) tensor; got {shape}")
    if not theta.is_floating_point() or not torch.isfinite(theta).all():
        raise ValueError(f"{name} must hold finite floating-point values; got dtype {theta.dtype}")
    scale = theta.abs().max().clamp_min(1e-300)
    if (theta - theta.T).abs().max() > 1e-8 * scale:
        raise ValueError(f"{name} must be symmetric (a kernel Gram matrix); got max |K - K^T| = "
                         f"{(theta - theta.T).abs().max().item():.3g}")
    return theta


def _check_vector(name: str, v: torch.Tensor, n: int) -> torch.Tensor:
    if not torch.is_tensor(v) or v.numel() != n or v.ndim not in (1, 2) or (v.ndim == 2 and v.shape[1] != 1):
        shape = tuple(v.shape) if torch.is_tensor(v) else type(v).__name__
        raise ValueError(f"{name} must have shape ({n},) or ({n}, 1) to match the kernel; got {shape}")
    return v.reshape(n)


def eigenmodes(theta: torch.Tensor, residual: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    r"""Eigen-decomposition of a kernel Gram matrix, largest eigenvalue first.

    .. math::
        \Theta = \sum_k \lambda_k\, v_k v_k^\top, \qquad \lambda_1 \ge \lambda_2 \ge \dots,
        \qquad c_k = v_k^\top r .

    Parameters
    ----------
    theta : Tensor, shape (n, n)
        Symmetric kernel Gram matrix.
    residual : Tensor, shape (n,), or (t, n) for a trajectory; optional
        Vector(s) to express in the eigenbasis.

    Returns
    -------
    eigenvalues : Tensor, shape (n,), descending
    eigenvectors : Tensor, shape (n, n), column k is :math:`v_k`
    coefficients : Tensor, shape (n,) or (t, n), or None if ``residual`` is None

    >>> import torch
    >>> lam, v, c = eigenmodes(torch.diag(torch.tensor([1.0, 3.0])), torch.tensor([2.0, 5.0]))
    >>> lam.tolist(), c.abs().tolist()
    ([3.0, 1.0], [5.0, 2.0])
    """
    theta = _check_kernel("theta", theta)
    lam, vec = torch.linalg.eigh(theta)
    lam, vec = lam.flip(0), vec.flip(1)
    if residual is None:
        return lam, vec, None
    n = theta.shape[0]
    if not torch.is_tensor(residual) or residual.ndim not in (1, 2) or residual.shape[-1] != n:
        shape = tuple(residual.shape) if torch.is_tensor(residual) else type(residual).__name__
        raise ValueError(f"residual must have shape ({n},) or (t, {n}) to match the kernel; got {shape}")
    return lam, vec, residual.to(theta.dtype) @ vec


def kernel_dynamics(theta: torch.Tensor, f0: torch.Tensor, y: torch.Tensor, lr: float, steps: int,
                    *, flow: bool = False) -> torch.Tensor:
    r"""Training-set predictions of gradient descent with a frozen kernel; ``y`` is the reference (target).

    Gradient descent with step :math:`\eta` on :math:`\tfrac12\,\mathrm{mean}_i\,(f(x_i) - y_i)^2`
    (the loss of :func:`kllab.maths.width.train_mse`), linearised around the initial parameters, gives

    .. math::
        f_t = y + \Big(I - \frac{\eta}{n}\Theta\Big)^{t} (f_0 - y)
        \qquad\text{or, for gradient flow (}``flow=True``\text{),}\qquad
        f_t = y + e^{-\eta\Theta t / n} (f_0 - y).

    The :math:`1/n` comes from the mean in the loss. Along an eigenvector :math:`v_k` of
    :math:`\Theta` the residual is multiplied by :math:`1 - \eta\lambda_k / n` per step, so the
    recursion is stable iff :math:`\eta\lambda_{\max} < 2n`.

    Parameters
    ----------
    theta : Tensor, shape (n, n)
        Symmetric kernel Gram matrix on the training inputs.
    f0 : Tensor, shape (n,) or (n, 1)
        Predictions at initialisation.
    y : Tensor, shape (n,) or (n, 1)
        Targets (the reference).
    lr : float > 0
        Learning rate :math:`\eta`.
    steps : int >= 0
        Number of gradient steps.
    flow : bool
        Use the continuous-time solution (``t`` then counts units of :math:`\eta`).

    Returns
    -------
    Tensor, shape (steps + 1, n)
        Row ``t`` holds :math:`f_t`; row 0 is ``f0``.

    >>> import torch
    >>> f = kernel_dynamics(torch.eye(2), torch.zeros(2), torch.ones(2), lr=1.0, steps=2)
    >>> f[:, 0].tolist()  # residual halves each step: (1 - 1/2)^t
    [0.0, 0.5, 0.75]
    """
    theta = _check_kernel("theta", theta)
    n = theta.shape[0]
    f0 = _check_vector("f0", f0, n).to(theta.dtype)
    y = _check_vector("y", y, n).to(theta.dtype)
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, low=0)
    flow = check_bool("flow", flow)
    lam, vec, c0 = eigenmodes(theta, f0 - y)
    t = torch.arange(steps + 1, dtype=theta.dtype)[:, None]
    if flow:
        decay = torch.exp(-lr * lam[None, :] * t / n)
    else:
        factor = 1.0 - lr * lam / n
        if (factor.abs() > 1.0 + 1e-12).any():
            raise ValueError(f"lr must be < 2 n / lambda_max = {2 * n / lam.max().item():.4g} for gradient descent "
                             f"to converge with this kernel; got lr={lr}")
        decay = factor[None, :] ** t
    return y[None, :] + (decay * c0[None, :]) @ vec.T


def relative_change(theta_t: torch.Tensor, theta_0: torch.Tensor) -> float:
    r"""Relative Frobenius distance of a kernel from the reference kernel ``theta_0``.

    .. math::
        \frac{\|\Theta_t - \Theta_0\|_F}{\|\Theta_0\|_F}

    Parameters
    ----------
    theta_t : Tensor, shape (n, n)
        The kernel after training.
    theta_0 : Tensor, shape (n, n)
        The reference, usually the kernel at initialisation; must not be zero.

    Returns
    -------
    float

    >>> import torch
    >>> round(relative_change(torch.tensor([[1.0, 0.0], [0.0, 1.2]]), torch.eye(2)), 6)  # 0.2 / sqrt(2)
    0.141421
    """
    theta_0 = _check_kernel("theta_0", theta_0)
    theta_t = _check_kernel("theta_t", theta_t)
    if theta_t.shape != theta_0.shape:
        raise ValueError(f"theta_t and theta_0 must have the same shape; got {tuple(theta_t.shape)} "
                         f"and {tuple(theta_0.shape)}")
    norm0 = torch.linalg.matrix_norm(theta_0).item()
    if norm0 == 0.0:
        raise ValueError("theta_0 must not be the zero matrix (the change is relative to it); got all zeros")
    return torch.linalg.matrix_norm(theta_t - theta_0).item() / norm0


LOSSES = ("hinge", "logistic", "squared")


def _check_labels(name: str, y: torch.Tensor, n: int | None = None, *, signs: bool = True) -> torch.Tensor:
    if not torch.is_tensor(y) or y.ndim != 1 or (n is not None and y.shape[0] != n):
        shape = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
        raise ValueError(f"{name} must have shape ({'n' if n is None else n},); got {shape}")
    if not y.is_floating_point() or not torch.isfinite(y).all():
        raise ValueError(f"{name} must hold finite floating-point values; got dtype {y.dtype}")
    if signs and not ((y == 1) | (y == -1)).all():
        raise ValueError(f"{name} must hold labels -1 or +1 for the hinge and logistic losses; got values "
                         f"{sorted(set(y.unique().tolist()))[:5]}")
    return y


def _loss(f: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "hinge":
        return torch.relu(1 - y * f)
    if loss == "logistic":
        return torch.nn.functional.softplus(-y * f)
    return 0.5 * (f - y) ** 2


def _loss_grad(f: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "hinge":
        return -y * (y * f < 1).to(f.dtype)
    if loss == "logistic":
        return -y * torch.sigmoid(-y * f)
    return f - y


def margin_loss(f: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    r"""Per-example loss :math:`\ell(f, y)` of a real-valued prediction; ``y`` is the reference (the label).

    .. math::
        \text{hinge } \max(0, 1 - yf), \qquad \text{logistic } \log(1 + e^{-yf})
        = \mathrm{KL}\big(\delta_y \,\|\, \mathrm{Bernoulli}(\sigma(f))\big), \qquad
        \text{squared } \tfrac12 (f - y)^2 .

    Parameters
    ----------
    f : Tensor, shape (n,)
        Predictions.
    y : Tensor, shape (n,)
        Labels in {-1, +1} (any real target for ``"squared"``).
    loss : {"hinge", "logistic", "squared"}

    Returns
    -------
    Tensor, shape (n,)

    >>> import torch
    >>> margin_loss(torch.tensor([2.0, 0.5, -1.0]), torch.tensor([1.0, 1.0, 1.0]), "hinge").tolist()
    [0.0, 0.5, 2.0]
    """
    loss = check_choice("loss", loss, LOSSES)
    y = _check_labels("y", y, signs=loss != "squared")
    if not torch.is_tensor(f) or f.shape != y.shape:
        raise ValueError(f"f must have the shape of y, {tuple(y.shape)}; got "
                         f"{tuple(f.shape) if torch.is_tensor(f) else type(f).__name__}")
    return _loss(f, y, loss)


def margin_loss_grad(f: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    r"""(Sub)derivative :math:`\partial\ell/\partial f` of :func:`margin_loss`, per example.

    .. math::
        \text{hinge } -y\,\mathbf 1[yf < 1], \qquad \text{logistic } -y\,\sigma(-yf), \qquad \text{squared } f - y .

    At the hinge's kink (:math:`yf = 1`) the subgradient 0 is taken, as autograd does for ``relu(1 - yf)``.

    >>> import torch
    >>> margin_loss_grad(torch.tensor([2.0, 0.5]), torch.tensor([1.0, -1.0]), "hinge").tolist()
    [-0.0, 1.0]
    """
    loss = check_choice("loss", loss, LOSSES)
    y = _check_labels("y", y, signs=loss != "squared")
    if not torch.is_tensor(f) or f.shape != y.shape:
        raise ValueError(f"f must have the shape of y, {tuple(y.shape)}; got "
                         f"{tuple(f.shape) if torch.is_tensor(f) else type(f).__name__}")
    return _loss_grad(f, y, loss)


def kernel_objective(theta: torch.Tensor, alpha: torch.Tensor, y: torch.Tensor, loss: str, lam: float) -> float:
    r"""Regularised risk of the kernel machine :math:`f = \Theta\alpha`; ``y`` is the reference.

    .. math::
        J(\alpha) = \frac1n\sum_i \ell\big((\Theta\alpha)_i, y_i\big) + \frac\lambda2\,\alpha^\top\Theta\alpha

    (the second term is :math:`\tfrac\lambda2\|\theta - \theta_0\|^2` of the linearised network).

    >>> import torch
    >>> kernel_objective(torch.eye(2), torch.zeros(2), torch.tensor([1.0, -1.0]), "hinge", 0.1)
    1.0
    """
    theta = _check_kernel("theta", theta)
    n = theta.shape[0]
    alpha = _check_vector("alpha", alpha, n).to(theta.dtype)
    lam = check_real("lam", lam, low=0.0)
    f = theta @ alpha
    return (margin_loss(f, y.to(theta.dtype), loss).mean() + 0.5 * lam * alpha @ f).item()


def _check_schedule(lam, lr, steps, record_every) -> tuple[float, float, int, int]:
    """The regularised gradient descent's λ ≥ 0, step lr > 0 with lr·λ < 1, steps ≥ 0, and its recording
    interval (every ``steps`` when ``record_every`` is None)."""
    lam = check_real("lam", lam, low=0.0)
    lr = check_positive("lr", lr)
    if lr * lam >= 1:
        raise ValueError(f"lr * lam must be < 1 (the weight-decay factor 1 - lr lam must stay positive); got "
                         f"lr={lr}, lam={lam}")
    steps = check_int("steps", steps, low=0)
    every = steps if record_every is None else check_int("record_every", record_every, low=1)
    return lam, lr, steps, every


def kernel_machine(theta: torch.Tensor, y: torch.Tensor, loss: str, lam: float, lr: float, steps: int, *,
                   theta_test: torch.Tensor | None = None, record_every: int | None = None) -> dict:
    r"""(Sub)gradient descent of an :math:`\ell_2`-regularised kernel machine, in function space; ``y`` is the reference.

    .. math::
        \alpha_0 = 0, \qquad \alpha_{t+1} = (1 - \eta\lambda)\,\alpha_t - \frac\eta n\,\ell'(\Theta\alpha_t, y),
        \qquad f_t(x) = \sum_j \Theta(x, x_j)\,\alpha_{t,j} .

    This is gradient descent on :math:`J` of :func:`kernel_objective` for the linear model
    :math:`f = \phi(x)\cdot w` with :math:`\Theta = \Phi\Phi^\top`, written in the coefficients of
    :math:`w = \sum_j \alpha_j \phi(x_j)`: the hinge gives a soft-margin SVM without intercept
    (:math:`C = 1/(n\lambda)`), the squared loss kernel ridge regression (ridge :math:`n\lambda`), the logistic loss
    kernel logistic regression.

    Parameters
    ----------
    theta : Tensor, shape (n, n)
        Kernel Gram matrix on the training inputs.
    y : Tensor, shape (n,)
        Labels in {-1, +1} (real targets for ``"squared"``).
    loss : {"hinge", "logistic", "squared"}
    lam : float >= 0
        Regularisation :math:`\lambda`; :math:`\eta\lambda` must be < 1.
    lr : float > 0
        Step :math:`\eta`.
    steps : int >= 0
    theta_test : Tensor, shape (n_test, n), optional
        Kernel between test and training inputs, for test predictions.
    record_every : int >= 1, optional
        Keep :math:`f_t` every that many steps (and at the last); default: only the last.

    Returns
    -------
    dict with ``alpha`` (n,), ``steps`` (k,) the recorded step counts, ``f_train`` (k, n), ``f_test`` (k, n_test)
    or None, ``objective`` (k,) the values of :math:`J`.

    >>> import torch
    >>> out = kernel_machine(torch.eye(2), torch.tensor([1.0, -1.0]), "squared", lam=0.5, lr=1.0, steps=200)
    >>> [round(v, 6) for v in out["f_train"][-1].tolist()]  # (K + n lam I)^-1 K y = y / 2
    [0.5, -0.5]
    """
    theta = _check_kernel("theta", theta)
    n = theta.shape[0]
    loss = check_choice("loss", loss, LOSSES)
    y = _check_labels("y", y, n, signs=loss != "squared").to(theta.dtype)
    lam, lr, steps, every = _check_schedule(lam, lr, steps, record_every)
    if theta_test is not None:
        if not torch.is_tensor(theta_test) or theta_test.ndim != 2 or theta_test.shape[1] != n:
            shape = tuple(theta_test.shape) if torch.is_tensor(theta_test) else type(theta_test).__name__
            raise ValueError(f"theta_test must have shape (n_test, {n}) to match theta; got {shape}")
        if not torch.isfinite(theta_test).all():
            raise ValueError("theta_test must hold finite values; got NaN or inf")
        theta_test = theta_test.to(theta.dtype)
    alpha = torch.zeros(n, dtype=theta.dtype)
    recorded, f_train, f_test, objective = [], [], [], []
    for t in range(steps + 1):
        f = theta @ alpha
        if t % max(every, 1) == 0 or t == steps:
            recorded.append(t)
            f_train.append(f)
            if theta_test is not None:
                f_test.append(theta_test @ alpha)
            objective.append((_loss(f, y, loss).mean() + 0.5 * lam * alpha @ f).item())
        if t < steps:
            alpha = (1 - lr * lam) * alpha - (lr / n) * _loss_grad(f, y, loss)
    if not torch.isfinite(alpha).all():
        raise ValueError(f"the kernel machine diverged; lower lr (got lr={lr})")
    return {"alpha": alpha, "steps": torch.tensor(recorded), "f_train": torch.stack(f_train),
            "f_test": torch.stack(f_test) if theta_test is not None else None, "objective": torch.tensor(objective, dtype=torch.float64)}


def train_regularised(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str, lam: float, lr: float,
                      steps: int, *, x_test: torch.Tensor | None = None, centre: bool = True,
                      record_every: int | None = None) -> dict:
    r"""Train a scalar-output network by full-batch (sub)gradient descent on the regularised loss of a kernel machine.

    .. math::
        L(\theta) = \frac1n\sum_i \ell\big(f_\theta(x_i), y_i\big) + \frac\lambda2\,\|\theta - \theta_0\|^2,
        \qquad f_\theta(x) = g_\theta(x) - g_{\theta_0}(x) \ \ (\text{``centre=True``}),

    where :math:`g` is ``model`` and :math:`\theta_0` its parameters on entry. Centring subtracts the initial output,
    a constant in :math:`\theta`: the gradients and the tangent kernel are those of :math:`g`, and :math:`f_0 \equiv 0`,
    as for :func:`kernel_machine` (it plays the role of an antisymmetric initialisation). Trains ``model`` in place.

    Parameters
    ----------
    model : nn.Module, output shape (n, 1)
    x : Tensor, shape (n, d)
    y : Tensor, shape (n,), labels in {-1, +1} (real targets for ``"squared"``)
    loss : {"hinge", "logistic", "squared"}
    lam : float >= 0, lr : float > 0 (with lr * lam < 1), steps : int >= 0
    x_test : Tensor, shape (n_test, d), optional
    centre : bool
    record_every : int >= 1, optional (default: only the last step)

    Returns
    -------
    dict with ``steps`` (k,), ``f_train`` (k, n), ``f_test`` (k, n_test) or None, ``objective`` (k,), and
    ``distance`` (k,) the parameter distance :math:`\|\theta_t - \theta_0\|`.
    """
    loss = check_choice("loss", loss, LOSSES)
    if not torch.is_tensor(x) or x.ndim != 2:
        raise ValueError(f"x must have shape (n, d); got {tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    n = x.shape[0]
    y = _check_labels("y", y, n, signs=loss != "squared")
    lam, lr, steps, every = _check_schedule(lam, lr, steps, record_every)
    centre = check_bool("centre", centre)
    if x_test is not None and (not torch.is_tensor(x_test) or x_test.ndim != 2 or x_test.shape[1] != x.shape[1]):
        raise ValueError(f"x_test must have shape (n_test, {x.shape[1]}); got "
                         f"{tuple(x_test.shape) if torch.is_tensor(x_test) else type(x_test).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    with torch.no_grad():
        out0 = model(x)
        if out0.ndim != 2 or out0.shape[1] != 1:
            raise ValueError(f"model must have one output, shape (n, 1); got {tuple(out0.shape)}")
        g0 = out0[:, 0] if centre else torch.zeros(n, dtype=out0.dtype)
        g0_test = None if x_test is None else (model(x_test)[:, 0] if centre else 0.0)
    y = y.to(out0.dtype)
    recorded, f_train, f_test, objective, distance = [], [], [], [], []
    for t in range(steps + 1):
        for p in params:
            p.grad = None
        with torch.enable_grad():
            f = model(x)[:, 0] - g0
            sq = sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start))
            total = margin_loss(f, y, loss).mean() + 0.5 * lam * sq
        if t % max(every, 1) == 0 or t == steps:
            recorded.append(t)
            f_train.append(f.detach())
            objective.append(total.item())
            distance.append(math.sqrt(sq.item()))
            if x_test is not None:
                with torch.no_grad():
                    f_test.append(model(x_test)[:, 0] - g0_test)
        if not math.isfinite(objective[-1] if objective else 0.0):
            raise ValueError(f"training diverged at step {t}; lower lr (got lr={lr})")
        if t < steps:
            total.backward()
            with torch.no_grad():   # plain gradient descent, without importing torch.optim
                for p in params:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-lr)
    return {"steps": torch.tensor(recorded), "f_train": torch.stack(f_train),
            "f_test": torch.stack(f_test) if x_test is not None else None,
            "objective": torch.tensor(objective, dtype=torch.float64), "distance": torch.tensor(distance, dtype=torch.float64)}


def train_regularised_two_layer(nets: list, x: torch.Tensor, y: torch.Tensor, loss: str, lam: float, lr: float,
                                steps: int, *, x_test: torch.Tensor | None = None,
                                record_every: int | None = None) -> dict:
    r""":func:`train_regularised` (centred) for several two-layer ReLU nets at once, with hand-written gradients.

    Each net must be a depth-1 :class:`kllab.maths.width.MLP` in NTK parametrisation with one output,
    :math:`g(x) = m^{-1/2}\sum_j a_j\,\mathrm{relu}(w_j\cdot x/\sqrt d)`, all of the same width. With
    :math:`u_j = w_j\cdot x/\sqrt d` and :math:`\ell'_i = \partial\ell/\partial f(x_i)`,

    .. math::
        \frac{\partial L}{\partial a_j} = \frac1{n\sqrt m}\sum_i \ell'_i\,\mathrm{relu}(u_{ij}) + \lambda(a_j - a_j^0),
        \qquad
        \frac{\partial L}{\partial w_j} = \frac{a_j}{n\sqrt{md}}\sum_i \ell'_i\,\mathbf 1[u_{ij} > 0]\,x_i
        + \lambda(w_j - w_j^0),

    one batched product per step for all nets (autograd on a module list costs several times more here). The
    trained weights are written back into the nets. Same steps and same subgradient (0 at the hinge's kink) as
    :func:`train_regularised`, which the tests use as the oracle.

    Returns
    -------
    dict with ``steps`` (k,), ``f_train`` (k, R, n), ``f_test`` (k, R, n_test) or None, ``objective`` (k, R).
    """
    if not nets or any(getattr(net, "parametrization", None) != "ntk" or len(getattr(net, "layers", [])) != 2
                       or net.layers[1].weight.shape[0] != 1 for net in nets):
        raise ValueError("nets must be a non-empty list of depth-1, one-output MLPs in NTK parametrisation")
    widths = {net.width for net in nets}
    if len(widths) != 1:
        raise ValueError(f"nets must all have the same width; got widths {sorted(widths)}")
    loss = check_choice("loss", loss, LOSSES)
    d = nets[0].layers[0].weight.shape[1]
    if not torch.is_tensor(x) or x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"x must have shape (n, {d}); got {tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    n, m = x.shape[0], widths.pop()
    y = _check_labels("y", y, n, signs=loss != "squared").to(x.dtype)
    lam, lr, steps, every = _check_schedule(lam, lr, steps, record_every)
    if x_test is not None and (not torch.is_tensor(x_test) or x_test.ndim != 2 or x_test.shape[1] != d):
        raise ValueError(f"x_test must have shape (n_test, {d}); got "
                         f"{tuple(x_test.shape) if torch.is_tensor(x_test) else type(x_test).__name__}")
    W = torch.stack([net.layers[0].weight.detach() for net in nets]).to(x.dtype)      # (R, m, d)
    a = torch.stack([net.layers[1].weight.detach()[0] for net in nets]).to(x.dtype)   # (R, m)
    W0, a0 = W.clone(), a.clone()
    sd, sm = math.sqrt(d), math.sqrt(m)

    def out(w, aa, inputs):
        return torch.relu(inputs @ w.transpose(1, 2) / sd) @ aa[:, :, None] / sm      # (R, n, 1)

    g0 = out(W, a, x)[:, :, 0]
    g0_test = None if x_test is None else out(W, a, x_test)[:, :, 0]
    recorded, f_train, f_test, objective = [], [], [], []
    for t in range(steps + 1):
        U = x @ W.transpose(1, 2) / sd                                                   # (R, n, m)
        H = torch.relu(U)
        f = (H @ a[:, :, None])[:, :, 0] / sm - g0                                       # (R, n)
        if t % max(every, 1) == 0 or t == steps:
            recorded.append(t)
            f_train.append(f)
            sq = ((W - W0) ** 2).sum((1, 2)) + ((a - a0) ** 2).sum(1)
            objective.append(_loss(f, y, loss).mean(1) + 0.5 * lam * sq)
            if x_test is not None:
                f_test.append(out(W, a, x_test)[:, :, 0] - g0_test)
            if not torch.isfinite(objective[-1]).all():
                raise ValueError(f"training diverged by step {t}; lower lr (got lr={lr})")
        if t == steps:
            break
        dl = _loss_grad(f, y, loss) / n                                                  # (R, n)
        grad_a = (H.transpose(1, 2) @ dl[:, :, None])[:, :, 0] / sm
        grad_W = ((dl[:, :, None] * (U > 0)).transpose(1, 2) @ x) * a[:, :, None] / (sm * sd)
        a = a - lr * (grad_a + lam * (a - a0))
        W = W - lr * (grad_W + lam * (W - W0))
    with torch.no_grad():
        for r, net in enumerate(nets):
            net.layers[0].weight.copy_(W[r])
            net.layers[1].weight.copy_(a[r][None, :])
    return {"steps": torch.tensor(recorded), "f_train": torch.stack(f_train),
            "f_test": torch.stack(f_test) if x_test is not None else None, "objective": torch.stack(objective)}
