r"""Network width: an MLP in standard or NTK parametrisation, its empirical neural tangent
kernel, and the analytic infinite-width kernel of a two-layer ReLU network (Jacot et al., 2018).

In NTK parametrisation a layer computes :math:`h = W x / \sqrt{n_{in}}` with
:math:`W_{ij} \sim \mathcal{N}(0, 1)`; in standard parametrisation the :math:`1/\sqrt{n_{in}}`
sits in the initial weights instead. Both give the same function at initialisation, but
gradient descent moves the NTK-parametrised network lazily: its kernel stays nearly
constant during training, more so as the width grows.

Lazy and rich training (Chizat, Oyallon & Bach, 2019; Kumar et al., 2023): :func:`train_centered` trains the
centred, output-scaled model :math:`f_\alpha = \alpha (f_\theta - f_{\theta_0})` of the two-layer
:func:`quadratic_net` (activation :math:`h + h^2/2`) with the step :math:`\eta/\alpha`; as α → ∞ it becomes
its linearised model, whose gradient descent :func:`kernel_gd_coefficients` gives in closed form. The network
is the quadratic form :math:`b\cdot x + x^\top Q x` (:func:`quadratic_net_moments`), so its population loss
under :math:`x \sim \mathcal N(0, I)` is exact (:func:`gaussian_quadratic_mse`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .validation import check_choice, check_finite, check_int, check_positive, check_real

__all__ = ["MLP", "PARAMETRIZATIONS", "alignment", "empirical_ntk", "gaussian_quadratic_mse", "kernel_gd_coefficients",
           "quadratic_net", "quadratic_net_jacobian", "quadratic_net_moments", "quadratic_net_ntk",
           "quadratic_net_tangent_moments", "relu_ntk", "train_centered", "train_mse"]

PARAMETRIZATIONS = ("ntk", "standard")


class _Linear(nn.Module):
    def __init__(self, n_in: int, n_out: int, parametrization: str, generator: torch.Generator):
        super().__init__()
        std = 1.0 if parametrization == "ntk" else 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(std * torch.randn(n_out, n_in, generator=generator, dtype=torch.float64))
        self.scale = 1.0 / math.sqrt(n_in) if parametrization == "ntk" else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x @ self.weight.T


class MLP(nn.Module):
    r"""A bias-free ReLU MLP with a width knob, in NTK or standard parametrisation.

    .. math::
        f(x) = \frac{1}{\sqrt{m}} \sum_{j=1}^{m} a_j\, \mathrm{relu}(w_j \cdot x)
        \quad\text{(depth 1, NTK parametrisation)}

    Parameters
    ----------
    in_dim, out_dim : int ≥ 1
    width : int ≥ 1
        Hidden units per layer (m).
    depth : int ≥ 1
        Number of hidden layers.
    parametrization : {"ntk", "standard"}
    seed : int

    Input shape (n, in_dim), output shape (n, out_dim), float64.

    >>> import torch
    >>> net = MLP(2, 1, width=8)
    >>> net(torch.zeros(3, 2, dtype=torch.float64)).shape
    torch.Size([3, 1])
    """

    def __init__(self, in_dim: int, out_dim: int, width: int, *, depth: int = 1,
                 parametrization: str = "ntk", seed: int = 0):
        super().__init__()
        in_dim = check_int("in_dim", in_dim, low=1)
        out_dim = check_int("out_dim", out_dim, low=1)
        self.width = check_int("width", width, low=1)
        depth = check_int("depth", depth, low=1)
        self.parametrization = check_choice("parametrization", parametrization, PARAMETRIZATIONS)
        gen = torch.Generator().manual_seed(int(seed))
        sizes = [in_dim] + [self.width] * depth + [out_dim]
        self.layers = nn.ModuleList(_Linear(a, b, parametrization, gen) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def empirical_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
    r"""Empirical NTK :math:`\Theta(x, x') = \sum_p \partial_p f(x)\, \partial_p f(x')` of a scalar-output model.

    Parameters
    ----------
    model : nn.Module with output shape (n, 1)
    x1 : Tensor, shape (n1, d)
    x2 : Tensor, shape (n2, d), optional (defaults to x1)

    Returns
    -------
    Tensor, shape (n1, n2)

    >>> import torch
    >>> net = MLP(2, 1, width=4)
    >>> x = torch.randn(5, 2, dtype=torch.float64)
    >>> K = empirical_ntk(net, x)
    >>> K.shape, bool(torch.allclose(K, K.T))
    (torch.Size([5, 5]), True)
    """
    params = [p for p in model.parameters() if p.requires_grad]

    def jac(x):
        # One backward pass per input: row i is the gradient of f(x_i) with respect to every parameter.
        # (torch.func's vmap(jacrev) gives the same matrix, but its first call costs about a second.)
        out = model(x)
        if out.ndim != 2 or out.shape[1] != 1:
            raise ValueError(f"model must have one output, shape (n, 1); got {tuple(out.shape)}")
        rows = []
        for i in range(x.shape[0]):
            grads = torch.autograd.grad(out[i, 0], params, retain_graph=i + 1 < x.shape[0], allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                   for g, p in zip(grads, params)]))
        return torch.stack(rows)

    with torch.enable_grad():
        j1 = jac(x1)
        j2 = j1 if x2 is None else jac(x2)
    return (j1 @ j2.T).detach()


def relu_ntk(x1: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
    r"""Analytic infinite-width NTK of the depth-1 :class:`MLP` in NTK parametrisation.

    For :math:`f(x) = m^{-1/2}\sum_j a_j\,\mathrm{relu}(w_j\cdot x/\sqrt{d})` with
    :math:`w_j \sim \mathcal{N}(0, I_d)`, :math:`a_j \sim \mathcal{N}(0, 1)`:

    .. math::
        \Theta_\infty(x, x') = \frac{1}{d}\left[\frac{|x||x'|}{2\pi}\big(\sin\theta + (\pi - \theta)\cos\theta\big)
                              + \frac{(x \cdot x')(\pi - \theta)}{2\pi}\right]

    where θ is the angle between x and x' and d the input dimension. The first term is the
    output layer's contribution, the second the hidden layer's; the 1/d comes from the
    :math:`1/\sqrt{d}` of the first layer (Jacot et al., 2018, drop it by taking d = 1).

    Parameters
    ----------
    x1 : Tensor, shape (n1, d)
    x2 : Tensor, shape (n2, d), optional (defaults to x1)

    Returns
    -------
    Tensor, shape (n1, n2)

    >>> import torch
    >>> x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    >>> round(relu_ntk(x).item(), 6)  # (1/2 + 1/2) / d on the diagonal of unit inputs, d = 2
    0.5
    """
    x2 = x1 if x2 is None else x2
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1 and x2 must have shapes (n1, d) and (n2, d); got {tuple(x1.shape)} and {tuple(x2.shape)}")
    d = x1.shape[1]
    n1, n2 = x1.norm(dim=1), x2.norm(dim=1)
    dot = x1 @ x2.T
    cos = (dot / (n1[:, None] * n2[None, :])).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    first = n1[:, None] * n2[None, :] / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * cos)
    second = dot * (math.pi - theta) / (2 * math.pi)
    return (first + second) / d


def train_mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float = 1.0,
              steps: int = 500) -> list[float]:
    r"""Full-batch gradient descent on :math:`\tfrac12 \cdot \mathrm{mean}\,(f(x) - y)^2`; returns the loss history.

    Parameters
    ----------
    x : Tensor, shape (n, d)
    y : Tensor, shape (n, 1)
    lr : float > 0
    steps : int ≥ 1
    """
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, low=1)
    if y.shape != (x.shape[0], 1):
        raise ValueError(f"y must have shape ({x.shape[0]}, 1); got {tuple(y.shape)}")
    params = [p for p in model.parameters() if p.requires_grad]
    history = []
    for _ in range(steps):
        for p in params:
            p.grad = None
        loss = 0.5 * ((model(x) - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():   # torch.optim.SGD's update, without importing torch._dynamo (a second or two)
            for p in params:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-lr)
        history.append(loss.item())
        if not math.isfinite(history[-1]):
            raise ValueError(f"training diverged at step {len(history)} (loss {history[-1]}); lower lr, got lr={lr}")
    return history


# ---------------------------------------------------------------------------------------------
# Lazy and rich training: a centred two-layer network with an output scale (Chizat et al., 2019;
# Kumar et al., 2023). Its activation φ(h) = h + h²/2 makes the network a quadratic form in x, so
# the population loss under x ~ N(0, I) has a closed form in two sufficient statistics (b, Q).
# ---------------------------------------------------------------------------------------------

def _check_net(w: torch.Tensor, a: torch.Tensor) -> None:
    if w.ndim < 2 or a.ndim != w.ndim - 1 or a.shape != w.shape[:-1]:
        raise ValueError(f"w must have shape (..., N, d) and a shape (..., N); got {tuple(w.shape)} and {tuple(a.shape)}")
    check_finite("w", w)
    check_finite("a", a)


def quadratic_net(x: torch.Tensor, w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    r"""Two-layer network with the activation :math:`\varphi(h) = h + h^2/2`, in NTK scaling.

    .. math::
        f(x) = \frac{1}{\sqrt N} \sum_{i=1}^{N} a_i\, \varphi\!\left(\frac{w_i \cdot x}{\sqrt d}\right)

    Parameters
    ----------
    x : Tensor, shape (P, d) or (..., P, d)
    w : Tensor, shape (..., N, d)
    a : Tensor, shape (..., N)

    Returns
    -------
    Tensor, shape (..., P): one row of outputs per network of the batch.

    >>> import torch
    >>> w, a = torch.ones(1, 1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    >>> quadratic_net(torch.tensor([[2.0]], dtype=torch.float64), w, a)   # 2 + 2²/2
    tensor([4.], dtype=torch.float64)
    """
    _check_net(w, a)
    if x.ndim < 2 or x.shape[-1] != w.shape[-1]:
        raise ValueError(f"x must have shape (P, d) with d = {w.shape[-1]}; got {tuple(x.shape)}")
    h = x @ w.transpose(-1, -2) / math.sqrt(w.shape[-1])
    return ((h + 0.5 * h * h) @ a.unsqueeze(-1)).squeeze(-1) / math.sqrt(w.shape[-2])


def quadratic_net_moments(w: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The sufficient statistics of :func:`quadratic_net`: :math:`f(x) = b \cdot x + x^\top Q x` exactly, with

    .. math::
        b = \frac{1}{\sqrt{N d}} \sum_i a_i w_i, \qquad
        Q = \frac{1}{2 d \sqrt N} \sum_i a_i\, w_i w_i^\top .

    Returns b with shape (..., d) and the symmetric Q with shape (..., d, d).

    >>> import torch
    >>> b, Q = quadratic_net_moments(torch.ones(1, 1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    >>> b.item(), Q.item()
    (1.0, 0.5)
    """
    _check_net(w, a)
    n, d = w.shape[-2], w.shape[-1]
    b = (a.unsqueeze(-2) @ w).squeeze(-2) / math.sqrt(n * d)
    q = (w.transpose(-1, -2) * a.unsqueeze(-2)) @ w / (2 * d * math.sqrt(n))
    return b, q


def gaussian_quadratic_mse(b: torch.Tensor, q: torch.Tensor, c: torch.Tensor | float = 0.0) -> torch.Tensor:
    r"""Population mean square of a quadratic :math:`g(x) = c + b \cdot x + x^\top Q x` under :math:`x \sim \mathcal N(0, I_d)`.

    .. math::
        \mathbb E\, g(x)^2 = (c + \operatorname{tr} Q)^2 + \lVert b \rVert^2 + 2 \operatorname{tr}(Q_s^2),
        \qquad Q_s = (Q + Q^\top)/2

    (Isserlis: :math:`\operatorname{Var}(x^\top Q_s x) = 2 \operatorname{tr} Q_s^2`, and the odd moments vanish.)
    Applied to the difference between a network's statistics and a target's, it is the exact test loss.

    Parameters
    ----------
    b : Tensor, shape (..., d)
    q : Tensor, shape (..., d, d)
    c : float or Tensor broadcastable to (...)

    >>> import torch
    >>> gaussian_quadratic_mse(torch.zeros(1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)).item()  # E x⁴
    3.0
    """
    if b.ndim < 1 or q.shape != b.shape + b.shape[-1:]:
        raise ValueError(f"b must have shape (..., d) and q shape (..., d, d); got {tuple(b.shape)} and {tuple(q.shape)}")
    check_finite("b", b)
    check_finite("q", q)
    qs = 0.5 * (q + q.transpose(-1, -2))
    tr = qs.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (c + tr) ** 2 + (b * b).sum(-1) + 2 * (qs * qs).sum((-1, -2))


def quadratic_net_ntk(x1: torch.Tensor, x2: torch.Tensor | None, w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    r"""Empirical NTK of one :func:`quadratic_net` (parameters w, a), in closed form.

    .. math::
        \Theta(x, x') = \frac1N \sum_i \Big[\varphi(h_i)\varphi(h_i')
                        + a_i^2\, \varphi'(h_i)\varphi'(h_i')\, \frac{x \cdot x'}{d}\Big],
        \qquad h_i = \frac{w_i \cdot x}{\sqrt d},\ \varphi'(h) = 1 + h

    (first term: the output weights' gradients; second: the hidden weights').

    Parameters
    ----------
    x1 : Tensor, shape (n1, d); x2 : Tensor, shape (n2, d) or None (x1)
    w : Tensor, shape (N, d); a : Tensor, shape (N,)

    Returns
    -------
    Tensor, shape (n1, n2)
    """
    _check_net(w, a)
    x2 = x1 if x2 is None else x2
    n, d = w.shape
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != d or x2.shape[1] != d:
        raise ValueError(f"x1 and x2 must have shapes (n1, {d}) and (n2, {d}); got {tuple(x1.shape)} and {tuple(x2.shape)}")
    h1, h2 = x1 @ w.T / math.sqrt(d), x2 @ w.T / math.sqrt(d)
    out = (h1 + 0.5 * h1 * h1) @ (h2 + 0.5 * h2 * h2).T
    hid = ((1 + h1) * a * a) @ (1 + h2).T * (x1 @ x2.T) / d
    return (out + hid) / n


def train_centered(x: torch.Tensor, y: torch.Tensor, w0: torch.Tensor, a0: torch.Tensor,
                   output_scale: torch.Tensor | float, *, lr: float = 1.0, steps: int = 1000,
                   record_every: int = 10, stop_fraction: float | None = None,
                   start: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    r"""Full-batch gradient descent on the centred, output-scaled network, for a batch of networks at once.

    The model is :math:`f_\alpha(x) = \alpha\,\big(f_\theta(x) - f_{\theta_0}(x)\big)` with :math:`f` the
    :func:`quadratic_net` and α the output scale; the loss is :math:`\frac{1}{2\alpha^2}\,\mathrm{mean}_p
    (f_\alpha(x_p) - y_p)^2` and the step

    .. math::
        \theta \leftarrow \theta - \frac{\eta}{\alpha}\, \mathrm{mean}_p\big[(f_\alpha(x_p) - y_p)\,\partial_\theta f_\theta(x_p)\big].

    In function space the step is :math:`-\eta\,\Theta\,r/P` whatever α, while the parameters move
    :math:`\propto 1/\alpha`: a large α trains the linearised (NTK) model, a small α learns features
    (Chizat, Oyallon & Bach, 2019).

    Parameters
    ----------
    x : Tensor, shape (P, d) or (B, P, d)
    y : Tensor, shape (P,) or (B, P)
    w0 : Tensor, shape (B, N, d); a0 : Tensor, shape (B, N): the initial parameters θ₀.
    output_scale : float > 0 or Tensor of shape (B,), all > 0 (α)
    lr : float > 0 (η); steps : int ≥ 1; record_every : int ≥ 1
    stop_fraction : float in (0, 1), optional
        Stop early, at a recorded step, once every network's train MSE is at most this fraction of its
        initial value (the recorded arrays are then shorter).
    start : (w, a), optional
        Resume from these parameters (shapes of w0, a0), still centred at θ₀ = (w0, a0): training in
        chunks, each chunk starting from the last one's final parameters, follows the same path as one run.

    Returns
    -------
    dict with ``step`` (T,), ``train`` (T, B) the train MSE :math:`\mathrm{mean}_p (f_\alpha - y)^2`,
    ``w`` (T, B, N, d) and ``a`` (T, B, N) the parameters at each recorded step (step 0 and every
    ``record_every`` steps, the last step included).
    """
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, low=1)
    record_every = check_int("record_every", record_every, low=1)
    if stop_fraction is not None:
        stop_fraction = check_real("stop_fraction", stop_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    _check_net(w0, a0)
    if w0.ndim != 3:
        raise ValueError(f"w0 must have shape (B, N, d); got {tuple(w0.shape)}")
    bsz, n, d = w0.shape
    if x.shape[-1] != d or x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[0] != bsz):
        raise ValueError(f"x must have shape (P, {d}) or ({bsz}, P, {d}); got {tuple(x.shape)}")
    if y.shape != x.shape[:-1]:
        raise ValueError(f"y must have shape {tuple(x.shape[:-1])}; got {tuple(y.shape)}")
    check_finite("x", x)
    check_finite("y", y)
    alpha = torch.as_tensor(output_scale, dtype=w0.dtype).expand(bsz).clone()
    if not torch.isfinite(alpha).all() or (alpha <= 0).any():
        raise ValueError(f"output_scale must be finite and > 0; got {output_scale!r}")
    xs = x / math.sqrt(d)
    p = x.shape[-2]
    w, a = w0.clone(), a0.clone()
    if start is not None:
        if len(start) != 2 or start[0].shape != w0.shape or start[1].shape != a0.shape:
            raise ValueError(f"start must be (w, a) with shapes {tuple(w0.shape)} and {tuple(a0.shape)}")
        _check_net(*start)
        w, a = start[0].clone(), start[1].clone()
    f0 = quadratic_net(x, w0, a0)
    al = alpha[:, None]
    rec_step, rec_train, rec_w, rec_a = [], [], [], []
    for t in range(steps + 1):
        h = xs @ w.transpose(-1, -2)                        # (B, P, N)
        phi = h + 0.5 * h * h
        f = (phi @ a.unsqueeze(-1)).squeeze(-1) / math.sqrt(n)
        res = al * (f - f0) - y                             # (B, P)
        if t % record_every == 0 or t == steps:
            mse = (res * res).mean(-1)
            if not torch.isfinite(mse).all():
                raise ValueError(f"training diverged at step {t}; lower lr, got lr={lr}")
            rec_step.append(t)
            rec_train.append(mse)
            rec_w.append(w.clone())
            rec_a.append(a.clone())
            if stop_fraction is not None and (mse <= stop_fraction * rec_train[0]).all():
                break
        if t == steps:
            break
        scale = (lr / (alpha * p * math.sqrt(n)))[:, None]  # η/α · 1/P · N^{-1/2}
        grad_a = (res.unsqueeze(-2) @ phi).squeeze(-2)       # (B, N)
        grad_w = ((res.unsqueeze(-1) * (1 + h)) * a.unsqueeze(-2)).transpose(-1, -2) @ xs  # (B, N, d)
        a = a - scale * grad_a
        w = w - scale[:, :, None] * grad_w
    return {"step": torch.tensor(rec_step), "train": torch.stack(rec_train), "w": torch.stack(rec_w),
            "a": torch.stack(rec_a)}


def kernel_gd_coefficients(k_train: torch.Tensor, y: torch.Tensor, *, lr: float, steps) -> torch.Tensor:
    r"""Dual coefficients of a linear model (kernel :math:`\Theta`) after full-batch GD from zero, at the given steps.

    GD with step η on :math:`\tfrac12\,\mathrm{mean}_p (f(x_p) - y_p)^2` from :math:`f_0 = 0` changes the
    parameters by :math:`\Delta\theta_t = J^\top c_t` (J the Jacobian on the training inputs), so that
    :math:`f_t(x) = \Theta(x, X)\, c_t`. The training residual obeys :math:`r_{t+1} = (I - \eta\Theta/P)\, r_t`,
    :math:`r_0 = -y`, and summing its geometric series, with :math:`\Theta = U \operatorname{diag}(\lambda) U^\top`,

    .. math::
        c_t = U \operatorname{diag}\!\Big(\frac{1 - (1 - \eta\lambda_k/P)^t}{\lambda_k}\Big) U^\top y

    (the factor is :math:`\eta t / P` at :math:`\lambda_k = 0`). With Θ the initial NTK this is the
    α → ∞ limit of :func:`train_centered`, computed without training; on the training set
    :math:`\Theta c_t` equals :func:`kllab.maths.kernels.kernel_dynamics` from :math:`f_0 = 0`.

    Parameters
    ----------
    k_train : Tensor, shape (P, P), symmetric positive semi-definite
    y : Tensor, shape (P,), the targets
    lr : float > 0, with lr · λ_max < 2P (stable steps)
    steps : int ≥ 0, or a sequence of them (T values)

    Returns
    -------
    Tensor, shape (P,) for one step count, (T, P) for a sequence.

    >>> import torch
    >>> kernel_gd_coefficients(torch.eye(2), torch.ones(2), lr=1.0, steps=[0, 1, 2])[:, 0].tolist()
    [0.0, 0.5, 0.75]
    """
    lr = check_positive("lr", lr)
    single = not isinstance(steps, (list, tuple, range)) and not (torch.is_tensor(steps) and steps.ndim == 1)
    counts = [check_int("steps", int(s) if torch.is_tensor(s) else s, low=0) for s in ([steps] if single else steps)]
    p = y.shape[0] if y.ndim == 1 else -1
    if y.ndim != 1 or k_train.shape != (p, p):
        raise ValueError(f"k_train and y must have shapes (P, P) and (P,); got {tuple(k_train.shape)} and {tuple(y.shape)}")
    check_finite("k_train", k_train)
    check_finite("y", y)
    lam, u = torch.linalg.eigh(0.5 * (k_train + k_train.T))
    if lam.max() * lr >= 2 * p:
        raise ValueError(f"lr must be < 2 P / lambda_max = {2 * p / lam.max().item():.4g} for gradient descent to "
                         f"converge with this kernel; got lr={lr}")
    lam = lam.clamp_min(0.0)
    small = lam <= 1e-12 * lam.max().clamp_min(1e-300)
    safe = torch.where(small, torch.ones_like(lam), lam)
    t = torch.tensor(counts, dtype=lam.dtype)[:, None]
    g = torch.where(small, lr * t / p, (1 - (1 - lr * safe / p) ** t) / safe)      # (T, P)
    c = (g * (u.T @ y)) @ u.T
    return c[0] if single else c


def quadratic_net_jacobian(x: torch.Tensor, w: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Gradients of one :func:`quadratic_net` at each input: :math:`\partial f/\partial w_i` and :math:`\partial f/\partial a_i`.

    .. math::
        \frac{\partial f}{\partial a_i} = \frac{\varphi(h_i)}{\sqrt N}, \qquad
        \frac{\partial f}{\partial w_i} = \frac{a_i\, \varphi'(h_i)}{\sqrt{N d}}\, x, \qquad h_i = \frac{w_i\cdot x}{\sqrt d}

    Parameters
    ----------
    x : Tensor, shape (P, d); w : Tensor, shape (N, d); a : Tensor, shape (N,)

    Returns
    -------
    j_w : Tensor, shape (P, N, d); j_a : Tensor, shape (P, N). The NTK is
    ``j_w.flatten(1) @ j_w.flatten(1).T + j_a @ j_a.T`` (:func:`quadratic_net_ntk`).
    """
    _check_net(w, a)
    if w.ndim != 2 or x.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"x, w, a must have shapes (P, d), (N, d), (N,); got {tuple(x.shape)}, {tuple(w.shape)}, {tuple(a.shape)}")
    n, d = w.shape
    h = x @ w.T / math.sqrt(d)
    j_a = (h + 0.5 * h * h) / math.sqrt(n)
    j_w = ((1 + h) * a / math.sqrt(n * d))[:, :, None] * x[:, None, :]
    return j_w, j_a


def quadratic_net_tangent_moments(w: torch.Tensor, a: torch.Tensor, dw: torch.Tensor,
                                  da: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""First-order change of :func:`quadratic_net_moments` along a parameter change (dw, da): the linearised
    (NTK) model :math:`f_0 + J\,\Delta\theta` is again a quadratic form, with

    .. math::
        \Delta b = \frac{1}{\sqrt{N d}} \sum_i (\Delta a_i\, w_i + a_i\, \Delta w_i), \qquad
        \Delta Q = \frac{1}{2 d \sqrt N} \sum_i \big(\Delta a_i\, w_i w_i^\top + a_i (\Delta w_i w_i^\top + w_i \Delta w_i^\top)\big).

    Shapes: w (..., N, d), a (..., N), dw like w, da like a; returns (..., d) and (..., d, d).
    """
    _check_net(w, a)
    _check_net(dw, da)
    if dw.shape[-2:] != w.shape[-2:]:
        raise ValueError(f"dw must match w in its last two axes; got {tuple(dw.shape)} and {tuple(w.shape)}")
    n, d = w.shape[-2], w.shape[-1]
    db = ((da.unsqueeze(-2) @ w).squeeze(-2) + (a.unsqueeze(-2) @ dw).squeeze(-2)) / math.sqrt(n * d)
    half = (dw.transpose(-1, -2) * a.unsqueeze(-2)) @ w
    dq = ((w.transpose(-1, -2) * da.unsqueeze(-2)) @ w + half + half.transpose(-1, -2)) / (2 * d * math.sqrt(n))
    return db, dq


def alignment(w: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    r"""How well the best hidden unit points along β: :math:`\max_i |w_i \cdot \beta| / (\lVert w_i\rVert \lVert\beta\rVert)`.

    1 when some unit is parallel to β; about :math:`\sqrt{2\log(2N)/d}` for N random units in d dimensions.

    Parameters
    ----------
    w : Tensor, shape (..., N, d); beta : Tensor, shape (d,)

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> alignment(torch.tensor([[3.0, 0.0], [1.0, 1.0]]), torch.tensor([0.0, 2.0]))
    tensor(0.7071)
    """
    if w.ndim < 2 or beta.ndim != 1 or beta.shape[0] != w.shape[-1]:
        raise ValueError(f"w must have shape (..., N, d) and beta shape (d,); got {tuple(w.shape)} and {tuple(beta.shape)}")
    check_finite("w", w)
    check_finite("beta", beta)
    nb = beta.norm()
    if nb == 0:
        raise ValueError("beta must be non-zero; got the zero vector")
    cos = (w @ beta) / (w.norm(dim=-1).clamp_min(1e-300) * nb)
    return cos.abs().amax(-1)
