r"""Many small networks trained side by side: one forward pass, one optimiser, independent models.

Comparing losses over seeds means training the same tiny network many times. Stacking R
independent ReLU MLPs into batched weight tensors does all of them in one batched matrix product,
so R models cost about as much as one on a CPU. Nothing is shared: each model has its own
weights, drawn from its own seed, and since Adam acts element by element, training the stack on
the *sum* of the per-model losses is exactly training each model on its own loss.

A layer of model r computes :math:`h_r = \mathrm{relu}(x W_r + b_r)`, initialised like
``torch.nn.Linear`` (uniform on :math:`\pm 1/\sqrt{n_{in}}`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .optim import Adam
from .validation import check_int, check_positive, check_real

__all__ = ["EnsembleMLP", "train_ensemble", "train_ensemble_in_chunks"]


class EnsembleMLP(nn.Module):
    r"""R independent ReLU MLPs of the same shape, one per seed, evaluated together.

    Parameters
    ----------
    in_dim, out_dim : int ≥ 1
    width : int ≥ 1
        Hidden units per layer.
    seeds : sequence of int
        One model per seed; model r's initial weights depend only on ``seeds[r]``.
    depth : int ≥ 1
        Number of hidden layers.
    dtype : torch.dtype

    Input shape (N, in_dim) (the same inputs for every model) or (R, N, in_dim); output shape
    (R, N, out_dim).

    >>> import torch
    >>> net = EnsembleMLP(3, 2, width=5, seeds=[0, 1, 2])
    >>> x = torch.randn(4, 3, dtype=torch.float64)
    >>> net(x).shape
    torch.Size([3, 4, 2])
    >>> bool(torch.allclose(net(x)[1], EnsembleMLP(3, 2, width=5, seeds=[1])(x)[0]))   # model 1 = seed 1 alone
    True
    """

    def __init__(self, in_dim: int, out_dim: int, width: int, seeds: Sequence[int], *, depth: int = 1,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        in_dim = check_int("in_dim", in_dim, low=1)
        out_dim = check_int("out_dim", out_dim, low=1)
        self.width = check_int("width", width, low=1)
        depth = check_int("depth", depth, low=1)
        seeds = [check_int("seeds", s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must name at least one model; got an empty sequence")
        self.seeds = seeds
        sizes = [in_dim] + [self.width] * depth + [out_dim]
        weights, biases = [[] for _ in sizes[1:]], [[] for _ in sizes[1:]]
        for s in seeds:
            gen = torch.Generator().manual_seed(s)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                bound = 1.0 / math.sqrt(a)
                weights[i].append((2 * torch.rand(a, b, generator=gen, dtype=dtype) - 1) * bound)
                biases[i].append((2 * torch.rand(b, generator=gen, dtype=dtype) - 1) * bound)
        self.weights = nn.ParameterList(nn.Parameter(torch.stack(w)) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(torch.stack(b)) for b in biases)

    @property
    def n_models(self) -> int:
        return len(self.seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, n_in = self.n_models, self.weights[0].shape[1]
        if not (x.ndim == 2 and x.shape[1] == n_in) and not (x.ndim == 3 and x.shape[0] == r and x.shape[2] == n_in):
            raise ValueError(f"x must have shape (N, {n_in}) or ({r}, N, {n_in}); got {tuple(x.shape)}")
        n_layers = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if x.ndim == 2:   # inputs shared by every model: one (N, in) x (in, R * out) product
                out = x @ w.permute(1, 0, 2).reshape(w.shape[1], -1)
                x = out.view(x.shape[0], r, -1).transpose(0, 1) + b.unsqueeze(1)
            else:
                x = torch.baddbmm(b.unsqueeze(1), x, w)
            if i < n_layers - 1:
                x = torch.relu(x)
        return x


def train_ensemble(model: nn.Module, loss: Callable[[], torch.Tensor], *, steps: int, lr: float = 1e-2,
                   weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8) -> torch.Tensor:
    r"""Full-batch Adam on a stack of independent models; returns the per-model loss at every step.

    ``loss()`` recomputes the models' outputs and returns a tensor of shape (R,), one loss per model.
    The optimiser steps on their sum, which, the models sharing no parameter and Adam acting
    element by element, is exactly R separate trainings.

    The update is ``torch.optim.Adam``'s (L2 ``weight_decay`` added to the gradient), by
    :class:`kllab.maths.optim.Adam`, which does not pay for importing torch's optimiser machinery.

    Parameters
    ----------
    model : nn.Module
        Usually an :class:`EnsembleMLP` (any module whose parameters split by model works).
    loss : callable () -> Tensor of shape (R,)
    steps : int ≥ 1
    lr : float > 0
    weight_decay : float ≥ 0
        L2 penalty added to the gradient, as in ``torch.optim.Adam``.
    betas, eps : Adam's constants.

    Returns
    -------
    Tensor, shape (steps, R)
        The loss of each model before each step.

    >>> import torch
    >>> net = EnsembleMLP(1, 1, width=8, seeds=[0, 1])
    >>> x = torch.linspace(-1, 1, 20, dtype=torch.float64)[:, None]
    >>> hist = train_ensemble(net, lambda: ((net(x) - x.abs()) ** 2).mean((1, 2)), steps=200, lr=0.05)
    >>> hist.shape, bool((hist[-1] < 0.1 * hist[0]).all())
    (torch.Size([200, 2]), True)
    """
    history = None
    for _, history in train_ensemble_in_chunks(model, loss, steps=steps, every=steps, lr=lr,
                                               weight_decay=weight_decay, betas=betas, eps=eps):
        pass
    return history


def train_ensemble_in_chunks(model: nn.Module, loss: Callable[[], torch.Tensor], *, steps: int, every: int,
                             first: int | None = None, lr: float = 1e-2, weight_decay: float = 0.0,
                             betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
    r""":func:`train_ensemble`, pausing every ``every`` steps: yields ``(steps done, history so far)``.

    The same iterates as one :func:`train_ensemble` call of ``steps`` steps (one optimiser throughout),
    so a caller can show the models part-way, e.g. a knob panel drawing training as it goes.
    ``first``, if given, adds a pause after the first ``first`` steps: an early look, sooner than
    ``every`` steps. The last yield comes after exactly ``steps`` steps.

    >>> import torch
    >>> net = EnsembleMLP(1, 1, width=8, seeds=[0])
    >>> x = torch.linspace(-1, 1, 20, dtype=torch.float64)[:, None]
    >>> [(done, len(h)) for done, h in train_ensemble_in_chunks(net, lambda: (net(x) ** 2).mean((1, 2)), steps=5, every=2)]
    [(2, 2), (4, 4), (5, 5)]
    >>> pauses = train_ensemble_in_chunks(net, lambda: (net(x) ** 2).mean((1, 2)), steps=9, every=4, first=1)
    >>> [done for done, _ in pauses]
    [1, 4, 8, 9]
    """
    steps = check_int("steps", steps, low=1)
    every = check_int("every", every, low=1)
    first = every if first is None else check_int("first", first, low=1)
    opt = Adam([p for p in model.parameters() if p.requires_grad], lr=lr, betas=betas, eps=eps,
               weight_decay=weight_decay)
    history = []
    for step in range(1, steps + 1):
        opt.zero_grad()
        per_model = loss()
        if per_model.ndim != 1:
            raise ValueError(f"loss() must return one loss per model, shape (R,); got shape {tuple(per_model.shape)}")
        per_model.sum().backward()
        opt.step()
        history.append(per_model.detach())
        if step % every == 0 or step == first or step == steps:
            yield step, torch.stack(history)
