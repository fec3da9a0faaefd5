r"""Network width: an MLP in standard or NTK parametrisation, its empirical neural tangent
kernel, and the analytic infinite-width kernel of a two-layer ReLU network (Jacot et al., 2018).

In NTK parametrisation a layer computes :math:`h = W x / \sqrt{n_{in}}` with
:math:`W_{ij} \sim \mathcal{N}(0, 1)`; in standard parametrisation the :math:`1/\sqrt{n_{in}}`
sits in the initial weights instead. Both give the same function at initialisation, but
gradient descent moves the NTK-parametrised network lazily: its kernel stays nearly
constant during training, more so as the width grows.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .validation import check_choice, check_int, check_positive

__all__ = ["MLP", "PARAMETRIZATIONS", "empirical_ntk", "relu_ntk", "train_mse"]

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
