r"""Natural gradient, Gauss-Newton and the truncated pseudo-inverse step for least squares.

A model with parameters :math:`\theta \in \mathbb R^P` fitted to :math:`N` targets leaves one residual per
data point, :math:`r_i(\theta) = f_\theta(x_i) - y_i`; stacked, :math:`r \in \mathbb R^N`, with Jacobian
:math:`J = \partial r / \partial\theta \in \mathbb R^{N\times P}` (one row per data point: the per-sample
gradients). Conventions: ``J`` has shape ``(N, P)``, ``r`` shape ``(N,)``, every step is returned as the
update :math:`\delta` to *add* to :math:`\theta` (it already carries the minus sign), and the mean squared
error is :math:`L = \frac1N \sum_i r_i^2`.

**The truncated pseudo-inverse step** (Sven, "singular value descent"). With the thin SVD
:math:`J = U S V^\top` and its top :math:`k` singular triplets,

.. math::
    \delta_k = -\eta\, J_k^{+} r = -\eta\, V_k S_k^{-1} U_k^\top r,

the minimum-norm solution of the linearised conditions :math:`J\delta = -\eta r` restricted to the
:math:`k` best-conditioned directions. To first order it lowers the mean squared error by
:math:`\frac{2\eta}{N}\lVert U_k^\top r\rVert^2` (:func:`predicted_decrease`).

**Its two limits** (keeping every nonzero singular value, :math:`k = \operatorname{rank} J`):

* :math:`P \le N`, :math:`J` of full column rank: :math:`J^{+} = (J^\top J)^{-1}J^\top`, the **Gauss-Newton**
  step (:func:`gauss_newton_step`). For the Gaussian likelihood :math:`y_i \sim \mathcal N(f_\theta(x_i),
  \sigma^2)` the Fisher information is :math:`F = J^\top J / \sigma^2` and the gradient of the negative
  log-likelihood is :math:`J^\top r / \sigma^2`, so this is also the **natural gradient** step
  :math:`-\eta F^{-1}\nabla(-\log p)` (:func:`natural_gradient_step`; :math:`\sigma` cancels). The Fisher is
  the Hessian of the KL divergence between the model's predictive distributions:
  :math:`\sum_i \mathrm{KL}\big(\mathcal N(f_\theta(x_i), \sigma^2)\,\|\,\mathcal N(f_{\theta+\delta}(x_i), \sigma^2)\big)
  = \frac{1}{2\sigma^2}\lVert f_{\theta+\delta} - f_\theta\rVert^2 = \tfrac12 \delta^\top F\delta + O(\lVert\delta\rVert^3)`
  (:func:`gaussian_output_kl`), so the natural gradient is steepest descent when step lengths are measured
  by that KL instead of the Euclidean norm.
* :math:`P \ge N`, :math:`J` of full row rank: :math:`J^{+} = J^\top (J J^\top)^{-1}`, the **minimum-norm**
  step (:func:`min_norm_step`) that solves :math:`J\delta = -\eta r` exactly and lies in the row space of
  :math:`J`.

:func:`per_sample_jacobian` builds :math:`J` for any model with ``torch.func`` (``vmap`` of ``grad``);
:func:`tanh_mlp` and :func:`tanh_mlp_jacobian` are the one-hidden-layer tanh network of the notebooks
with its Jacobian in closed form (inputs of any dimension d) (``torch.func``'s first call costs about a second of set-up; the
closed form costs microseconds and the tests check the two agree).

References: A. Bright-Thonney, T. Harvey, A. Lukas, J. Thaler, *Sven: Singular Value Descent as a
Computationally Efficient Natural Gradient Method*, 2026, arXiv:2604.01279 (not peer-reviewed);
S. Amari, *Natural Gradient Works Efficiently in Learning*, Neural Computation 10 (1998);
J. Martens, *New Insights and Perspectives on the Natural Gradient Method*, JMLR 21 (2020).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .validation import check_int, check_no_nan, check_positive, check_real

__all__ = ["per_sample_jacobian", "tanh_mlp", "tanh_mlp_jacobian", "init_tanh_mlp", "n_params_tanh_mlp",
           "truncated_pinv_step", "gauss_newton_step", "gaussian_fisher", "natural_gradient_step",
           "min_norm_step", "predicted_decrease", "gaussian_output_kl"]


def _check_tensor(name: str, x, ndim: int) -> torch.Tensor:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axis (axes); got shape {tuple(x.shape)}")
    check_no_nan(name, x)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite; got {int((~torch.isfinite(x)).sum())} infinite value(s)")
    return x


def _check_system(J, r) -> tuple[torch.Tensor, torch.Tensor]:
    J = _check_tensor("J", J, 2)
    r = _check_tensor("r", r, 1)
    if r.shape[0] != J.shape[0]:
        raise ValueError(f"r must have one residual per row of J: J has shape {tuple(J.shape)} (N, P), "
                         f"so r needs shape ({J.shape[0]},); got {tuple(r.shape)}")
    return J, r


# ----------------------------------------------------------------------------------------- Jacobians

def per_sample_jacobian(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], theta: torch.Tensor,
                        x: torch.Tensor) -> torch.Tensor:
    r"""The per-sample Jacobian :math:`J_{ip} = \partial f_\theta(x_i) / \partial\theta_p`, with ``torch.func``.

    Parameters
    ----------
    fn : callable ``fn(theta, x_i) -> scalar tensor``
        The model's output on one input (``x_i`` is ``x[i]``, one row of the batch). It runs under
        ``vmap``: no data-dependent Python control flow inside (no ``.item()``, no input checks).
    theta : Tensor, shape (P,)
        Flat parameters.
    x : Tensor, shape (N, ...)
        The inputs.

    Returns
    -------
    Tensor, shape (N, P): row i is the gradient of ``fn(theta, x[i])``, computed as
    ``torch.func.vmap(torch.func.grad(fn), in_dims=(None, 0))``. The Jacobian of the residuals
    :math:`f_\theta(x_i) - y_i` is the same matrix.

    >>> theta = torch.tensor([2.0, -1.0], dtype=torch.float64)
    >>> per_sample_jacobian(lambda t, xi: t[0] * xi + t[1] * xi ** 2, theta, torch.tensor([1.0, 3.0], dtype=torch.float64))
    tensor([[1., 1.],
            [3., 9.]], dtype=torch.float64)
    """
    theta = _check_tensor("theta", theta, 1)
    if not torch.is_tensor(x) or x.ndim < 1:
        raise ValueError(f"x must be a tensor with a batch axis first, shape (N, ...); got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    from torch.func import grad, vmap

    def one(t, xi):
        out = fn(t, xi)
        if out.numel() != 1:
            raise ValueError(f"fn must return one number per input; got shape {tuple(out.shape)}")
        return out.reshape(())

    with torch.enable_grad():
        return vmap(grad(one), in_dims=(None, 0))(theta.detach(), x).detach()


def n_params_tanh_mlp(width: int, dim: int = 1) -> int:
    """Number of parameters P = h (d + 2) + 1 of the d -> h -> 1 tanh network of hidden width h.

    >>> n_params_tanh_mlp(8, dim=4)
    49
    """
    return check_int("width", width, low=1) * (check_int("dim", dim, low=1) + 2) + 1


def _split(theta: torch.Tensor, x: torch.Tensor, width: int):
    width = check_int("width", width, low=1)
    theta = _check_tensor("theta", theta, 1)
    x = _check_tensor("x", x, 2)
    h, d = width, x.shape[1]
    if theta.shape[0] != h * (d + 2) + 1:
        raise ValueError(f"theta must hold width * (dim + 2) + 1 = {h * (d + 2) + 1} parameters for width {h} "
                         f"and inputs of dimension {d}; got shape {tuple(theta.shape)}")
    return theta[:h * d].reshape(h, d), theta[h * d:h * (d + 1)], theta[h * (d + 1):h * (d + 2)], theta[-1], x


def tanh_mlp(theta: torch.Tensor, x: torch.Tensor, width: int) -> torch.Tensor:
    r"""The scalar network :math:`f_\theta(x) = \sum_{j=1}^h a_j \tanh(w_j^\top x + b_j) + c`.

    ``theta`` is flat, shape (h (d + 2) + 1,): the rows :math:`w_1..w_h` of ``W`` (h, d), then
    :math:`b_1..b_h`, :math:`a_1..a_h`, :math:`c`; ``x`` has shape (N, d). Returns shape (N,).

    >>> theta = torch.tensor([1.0, 0.0, 2.0, 0.5], dtype=torch.float64)
    >>> float(tanh_mlp(theta, torch.zeros(1, 1, dtype=torch.float64), 1)[0])
    0.5
    """
    W, b, a, c, x = _split(theta, x, width)
    return torch.tanh(x @ W.T + b) @ a + c


def tanh_mlp_jacobian(theta: torch.Tensor, x: torch.Tensor, width: int) -> torch.Tensor:
    r"""Closed-form per-sample Jacobian of :func:`tanh_mlp`, shape (N, h (d + 2) + 1).

    With :math:`t_j = \tanh(w_j^\top x + b_j)`: :math:`\partial f/\partial w_j = a_j (1 - t_j^2)\, x`,
    :math:`\partial f/\partial b_j = a_j (1 - t_j^2)`, :math:`\partial f/\partial a_j = t_j`,
    :math:`\partial f/\partial c = 1` (columns in the order of ``theta``).

    >>> theta = torch.tensor([1.0, 0.0, 2.0, 0.5], dtype=torch.float64)
    >>> tanh_mlp_jacobian(theta, torch.zeros(1, 1, dtype=torch.float64), 1)
    tensor([[0., 2., 0., 1.]], dtype=torch.float64)
    """
    W, b, a, _, x = _split(theta, x, width)
    t = torch.tanh(x @ W.T + b)
    dt = a * (1 - t ** 2)                                              # (N, h)
    dW = (dt[:, :, None] * x[:, None, :]).reshape(x.shape[0], -1)      # (N, h d), rows of W in order
    return torch.cat([dW, dt, t, torch.ones(x.shape[0], 1, dtype=x.dtype)], 1)


def init_tanh_mlp(width: int, dim: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Flat initial parameters of :func:`tanh_mlp`: :math:`w_{jl} \sim \mathcal N(0, 1/d)`,
    :math:`b_j \sim \mathcal N(0, 1/4)`, :math:`a_j \sim \mathcal N(0, 1/h)`, :math:`c = 0`, from a local
    generator seeded with ``seed``.

    >>> init_tanh_mlp(8, dim=4, seed=0).shape
    torch.Size([49])
    """
    width = check_int("width", width, low=1)
    dim = check_int("dim", dim, low=1)
    seed = check_int("seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(width * dim, generator=g, dtype=dtype) / dim ** 0.5
    b = torch.randn(width, generator=g, dtype=dtype) / 2
    a = torch.randn(width, generator=g, dtype=dtype) / width ** 0.5
    return torch.cat([W, b, a, torch.zeros(1, dtype=dtype)])


# ----------------------------------------------------------------------------------------------- steps

def _rcond(J: torch.Tensor, rcond: float | None) -> float:
    if rcond is None:
        return torch.finfo(J.dtype).eps * max(J.shape)
    return check_real("rcond", rcond, low=0.0, high=1.0, high_open=True)


def _truncated_svd(J, r, k, lr, rcond):
    # Checked inputs, the thin SVD of J and the mask of the singular directions a rank-k step keeps.
    J, r = _check_system(J, r)
    k = check_int("k", k, low=1)
    lr = check_positive("lr", lr)
    tol = _rcond(J, rcond)
    U, S, Vh = torch.linalg.svd(J, full_matrices=False)
    keep = (torch.arange(S.shape[0]) < k) & (S > tol * S[0])
    return J, r, lr, U, S, Vh, keep


def truncated_pinv_step(J: torch.Tensor, r: torch.Tensor, k: int, *, lr: float = 1.0,
                        rcond: float | None = None) -> torch.Tensor:
    r"""Sven's step :math:`\delta_k = -\eta\, V_k S_k^{-1} U_k^\top r` from the top-``k`` singular triplets of ``J``.

    Parameters
    ----------
    J : Tensor, shape (N, P)
        Jacobian of the residuals.
    r : Tensor, shape (N,)
        Residuals.
    k : int >= 1
        Truncation rank: how many singular directions to keep. Values above ``min(N, P)`` keep all of them.
    lr : float > 0
        Step size :math:`\eta` (1 solves the linearised conditions :math:`J\delta = -r` in the kept directions).
    rcond : float in [0, 1), optional
        Singular values at most ``rcond * s_max`` count as zero and are dropped even when among the top
        ``k`` (as in ``numpy.linalg.lstsq``); the default is ``eps * max(N, P)``.

    Returns
    -------
    Tensor, shape (P,): the update to add to the parameters.

    >>> J = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> truncated_pinv_step(J, torch.tensor([1.0, 1.0], dtype=torch.float64), k=1)
    tensor([-0.5000, -0.0000], dtype=torch.float64)
    """
    J, r, lr, U, S, Vh, keep = _truncated_svd(J, r, k, lr, rcond)
    coef = torch.where(keep, (U.T @ r) / torch.where(keep, S, torch.ones_like(S)), torch.zeros_like(S))
    return -lr * (Vh.T @ coef)


def predicted_decrease(J: torch.Tensor, r: torch.Tensor, k: int, *, lr: float = 1.0,
                       rcond: float | None = None) -> torch.Tensor:
    r"""First-order decrease of the mean squared error :math:`\frac1N\lVert r\rVert^2` under
    :func:`truncated_pinv_step`: :math:`\frac{2\eta}{N}\lVert U_k^\top r\rVert^2` (a 0-d tensor).

    Since :math:`J\delta_k = -\eta U_k U_k^\top r`, the linearised change is
    :math:`\frac2N r^\top J\delta_k = -\frac{2\eta}{N}\lVert U_k^\top r\rVert^2`.

    >>> J = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> float(predicted_decrease(J, torch.tensor([1.0, 1.0], dtype=torch.float64), k=1, lr=0.5))
    0.5
    """
    J, r, lr, U, S, _, keep = _truncated_svd(J, r, k, lr, rcond)
    return 2 * lr / J.shape[0] * ((U.T @ r)[keep] ** 2).sum()


def gauss_newton_step(J: torch.Tensor, r: torch.Tensor, *, lr: float = 1.0, damping: float = 0.0) -> torch.Tensor:
    r"""Gauss-Newton step :math:`\delta = -\eta\,(J^\top J + \lambda I)^{-1} J^\top r`, by a linear solve.

    ``damping`` :math:`\lambda \ge 0` (Levenberg). Without damping, ``J`` must have full column rank
    (so :math:`P \le N`); a singular :math:`J^\top J` raises.

    >>> J = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    >>> gauss_newton_step(J, torch.tensor([1.0, 3.0], dtype=torch.float64))
    tensor([-2.], dtype=torch.float64)
    """
    J, r = _check_system(J, r)
    lr = check_positive("lr", lr)
    damping = check_real("damping", damping, low=0.0)
    N, P = J.shape
    if damping == 0.0 and P > N:
        raise ValueError(f"J must have at least as many rows as columns for an undamped Gauss-Newton step "
                         f"(J^T J is singular otherwise); got shape {(N, P)}. Use min_norm_step, or damping > 0")
    A = J.T @ J + damping * torch.eye(P, dtype=J.dtype)
    try:
        return -lr * torch.linalg.solve(A, J.T @ r)
    except RuntimeError as err:   # torch raises a _LinAlgError (a RuntimeError) for a singular matrix
        raise ValueError(f"J^T J + damping I is singular (J has rank < P = {P}); use damping > 0 or "
                         f"truncated_pinv_step") from err


def gaussian_fisher(J: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    r"""Fisher information :math:`F = J^\top J/\sigma^2` of the Gaussian likelihood
    :math:`\prod_i \mathcal N(y_i; f_\theta(x_i), \sigma^2)` (summed over the ``N`` data points), shape (P, P).

    >>> gaussian_fisher(torch.tensor([[1.0, 2.0]], dtype=torch.float64), sigma=2.0)
    tensor([[0.2500, 0.5000],
            [0.5000, 1.0000]], dtype=torch.float64)
    """
    J = _check_tensor("J", J, 2)
    sigma = check_positive("sigma", sigma)
    return J.T @ J / sigma ** 2


def natural_gradient_step(J: torch.Tensor, r: torch.Tensor, *, sigma: float = 1.0, lr: float = 1.0,
                          damping: float = 0.0) -> torch.Tensor:
    r"""Natural-gradient step :math:`\delta = -\eta\,(F + \lambda I)^{-1} g` for the Gaussian negative
    log-likelihood :math:`\sum_i r_i^2 / (2\sigma^2)`.

    Here :math:`g = J^\top r/\sigma^2` is its gradient and :math:`F =` :func:`gaussian_fisher`. Without
    damping, :math:`\sigma` cancels and the step equals :func:`gauss_newton_step`; ``J`` must then have full
    column rank.

    >>> J = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    >>> natural_gradient_step(J, torch.tensor([1.0, 3.0], dtype=torch.float64), sigma=0.1)
    tensor([-2.], dtype=torch.float64)
    """
    J, r = _check_system(J, r)
    sigma = check_positive("sigma", sigma)
    lr = check_positive("lr", lr)
    damping = check_real("damping", damping, low=0.0)
    N, P = J.shape
    if damping == 0.0 and P > N:
        raise ValueError(f"J must have at least as many rows as columns for an undamped natural gradient "
                         f"(the Fisher J^T J / sigma^2 is singular otherwise); got shape {(N, P)}")
    F = gaussian_fisher(J, sigma) + damping * torch.eye(P, dtype=J.dtype)
    try:
        return -lr * torch.linalg.solve(F, J.T @ r / sigma ** 2)
    except RuntimeError as err:
        raise ValueError(f"the Fisher matrix is singular (J has rank < P = {P}); use damping > 0") from err


def min_norm_step(J: torch.Tensor, r: torch.Tensor, *, lr: float = 1.0) -> torch.Tensor:
    r"""Minimum-norm step :math:`\delta = -\eta\, J^\top (J J^\top)^{-1} r`, the shortest :math:`\delta` with
    :math:`J\delta = -\eta r`. ``J`` must have full row rank (so :math:`N \le P`).

    >>> J = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    >>> min_norm_step(J, torch.tensor([2.0], dtype=torch.float64))
    tensor([-1., -1.], dtype=torch.float64)
    """
    J, r = _check_system(J, r)
    lr = check_positive("lr", lr)
    N, P = J.shape
    if N > P:
        raise ValueError(f"J must have at most as many rows as columns for a minimum-norm step (J J^T is "
                         f"singular otherwise); got shape {(N, P)}. Use gauss_newton_step")
    try:
        return -lr * (J.T @ torch.linalg.solve(J @ J.T, r))
    except RuntimeError as err:
        raise ValueError(f"J J^T is singular (J has rank < N = {N}); use truncated_pinv_step") from err


def gaussian_output_kl(f_ref: torch.Tensor, f_model: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    r"""KL(p‖q) between the Gaussian predictive distributions :math:`p_i = \mathcal N(f_{\rm ref}(x_i), \sigma^2)`
    (the reference) and :math:`q_i = \mathcal N(f_{\rm model}(x_i), \sigma^2)`, per data point:
    :math:`(f_{\rm ref} - f_{\rm model})^2 / (2\sigma^2)`, shape ``f_ref.shape`` (the caller sums).

    >>> gaussian_output_kl(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([2.0, 1.0], dtype=torch.float64))
    tensor([2., 0.], dtype=torch.float64)
    """
    f_ref = _check_tensor("f_ref", f_ref, f_ref.ndim if torch.is_tensor(f_ref) else 1)
    f_model = _check_tensor("f_model", f_model, f_model.ndim if torch.is_tensor(f_model) else 1)
    if f_ref.shape != f_model.shape:
        raise ValueError(f"f_ref and f_model must have the same shape; got {tuple(f_ref.shape)} and "
                         f"{tuple(f_model.shape)}")
    sigma = check_positive("sigma", sigma)
    return (f_ref - f_model) ** 2 / (2 * sigma ** 2)
