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

Reference: A. Jacot, F. Gabriel, C. Hongler. *Neural Tangent Kernel: Convergence and Generalization
in Neural Networks.* NeurIPS 2018. arXiv:1806.07572.
"""

from __future__ import annotations

import torch

from .validation import check_bool, check_int, check_positive

__all__ = ["kernel_dynamics", "eigenmodes", "relative_change"]


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
