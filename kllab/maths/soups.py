r"""Model soups: weight averages of fine-tuned models, and the geometric mixtures they approximate.

A *soup* averages the parameters of models fine-tuned from one shared initialisation,
:math:`\theta_\lambda = \lambda\,\theta_A + (1-\lambda)\,\theta_B` (Wortsman et al., 2022). SALSA
(Chegini et al., 2024) uses the soup of two SFT models as the KL reference of RLHF. When the
models stay close to their shared start (linear mode connectivity), the soup's logits are close to
the average of theirs, and averaging softmax logits is a *geometric mixture* of the policies:

.. math::
    g(y) = \frac{A(y)^{\lambda} B(y)^{1-\lambda}}{Z}, \qquad
    Z = \sum_y A(y)^{\lambda} B(y)^{1-\lambda} \le 1 ,

for which, for every policy π,

.. math::
    \mathrm{KL}(\pi\|g) = \lambda\,\mathrm{KL}(\pi\|A) + (1-\lambda)\,\mathrm{KL}(\pi\|B) + \log Z :

a leash to the geometric soup is the λ-average of the leashes to its ingredients, loosened by
:math:`-\log Z \ge 0` (Hölder).

* :func:`weight_soup`: the weighted average of parameter dictionaries;
* :func:`soup_model`: a copy of a model carrying the averaged parameters;
* :func:`geometric_mixture`: the normalised weighted geometric mean of distributions, and log Z;
* :func:`sft`: supervised fine-tuning by cross-entropy (the soups' ingredients), on a copy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .divergences import _as_tensor
from .optim import Adam
from .validation import check_int, check_log_probs, check_positive

__all__ = ["weight_soup", "soup_model", "geometric_mixture", "sft"]


def _weights(weights, n: int, name: str = "weights") -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    w = [float(v) for v in weights]
    if len(w) != n:
        raise ValueError(f"{name} must have one entry per ingredient ({n}); got {len(w)}")
    if any(not math.isfinite(v) or v < 0 for v in w) or abs(sum(w) - 1.0) > 1e-9:
        raise ValueError(f"{name} must be non-negative and sum to 1; got {w}")
    return w


def weight_soup(states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None
                ) -> dict[str, torch.Tensor]:
    r"""Weighted average of parameter dictionaries, :math:`\sum_i w_i \theta_i` (a uniform soup by default).

    Parameters
    ----------
    states : sequence of mappings name -> Tensor
        The ingredients' parameters (``model.state_dict()``), with the same names and shapes.
    weights : sequence of float, optional
        Non-negative, summing to 1 (default: equal).

    Returns
    -------
    dict name -> Tensor (new tensors, detached).

    >>> import torch
    >>> a, b = {"w": torch.tensor([0.0, 2.0])}, {"w": torch.tensor([2.0, 4.0])}
    >>> weight_soup([a, b])["w"].tolist(), weight_soup([a, b], [0.25, 0.75])["w"].tolist()
    ([1.0, 3.0], [1.5, 3.5])
    """
    if len(states) == 0:
        raise ValueError("states must hold at least one parameter dictionary; got none")
    w = _weights(weights, len(states))
    names = list(states[0])
    for i, s in enumerate(states[1:], start=1):
        if list(s) != names:
            raise ValueError(f"states must share their parameter names; ingredient {i} has {sorted(s)}, "
                             f"ingredient 0 has {sorted(names)}")
        for k in names:
            if s[k].shape != states[0][k].shape:
                raise ValueError(f"states must share their shapes; {k!r} is {tuple(s[k].shape)} in ingredient {i} "
                                 f"and {tuple(states[0][k].shape)} in ingredient 0")
    return {k: sum(wi * s[k].detach() for wi, s in zip(w, states)) for k in names}


def soup_model(models: Sequence[nn.Module], weights: Sequence[float] | None = None) -> nn.Module:
    """A deep copy of ``models[0]`` whose parameters are the :func:`weight_soup` of all the models.

    >>> import torch
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> s = soup_model([a, b])
    >>> bool(torch.allclose(s.weight, (a.weight + b.weight) / 2))
    True
    """
    if len(models) == 0:
        raise ValueError("models must hold at least one model; got none")
    out = copy.deepcopy(models[0])
    out.load_state_dict(weight_soup([m.state_dict() for m in models], weights))
    return out


def geometric_mixture(logps, weights: Sequence[float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Normalised weighted geometric mean of distributions; every ``logps[i]`` is a reference on equal terms.

    .. math::
        \log g = \sum_i w_i \log p_i - \log Z, \qquad Z = \sum_y \prod_i p_i(y)^{w_i} \le 1 .

    For softmax models this is the policy of the averaged logits. For every π,
    :math:`\mathrm{KL}(\pi\|g) = \sum_i w_i \mathrm{KL}(\pi\|p_i) + \log Z`.

    Parameters
    ----------
    logps : sequence of Tensors, shape (..., K) each, or one Tensor of shape (n, ..., K)
        Log-probabilities; ``-inf`` allowed (an outcome any ingredient with positive weight rules
        out is ruled out).
    weights : sequence of float, optional
        Non-negative, summing to 1 (default: equal).

    Returns
    -------
    (log g, log Z)
        Shapes (..., K) and (...).

    >>> import torch
    >>> a = torch.tensor([0.5, 0.5]).log(); b = torch.tensor([0.9, 0.1]).log()
    >>> logg, logz = geometric_mixture([a, b])
    >>> [round(v, 4) for v in logg.exp().tolist()], round(logz.exp().item(), 4)   # sqrt(0.45), sqrt(0.05), normalised
    ([0.75, 0.25], 0.8944)
    """
    stacked = torch.stack([_as_tensor(lp) for lp in logps]) if not torch.is_tensor(logps) else logps
    for i in range(stacked.shape[0]):
        check_log_probs(f"logps[{i}]", stacked[i])
    w = _weights(weights, stacked.shape[0])
    wt = torch.tensor(w, dtype=stacked.dtype).reshape((-1,) + (1,) * (stacked.ndim - 1))
    # 0 * (-inf) is nan: an ingredient with weight 0 contributes nothing, even where it is -inf
    terms = torch.where(wt > 0, wt * stacked, torch.zeros((), dtype=stacked.dtype))
    log_unnorm = terms.sum(0)
    log_z = torch.logsumexp(log_unnorm, -1)
    if (log_z == -math.inf).any():
        raise ValueError("logps must share some support: the weighted ingredients rule out every outcome of a row")
    return log_unnorm - log_z.unsqueeze(-1), log_z


def sft(model: nn.Module, features: torch.Tensor, actions: torch.Tensor, *, steps: int = 300,
        lr: float = 3e-3) -> nn.Module:
    r"""Supervised fine-tuning by cross-entropy on demonstrations, with Adam, on a copy of ``model``.

    Minimises :math:`-\frac1n\sum_i \log\pi_\theta(a_i \mid x_i)`, i.e. the forward KL from the
    demonstrations' empirical distribution to the model (full batch).

    Parameters
    ----------
    model : nn.Module mapping features (n, d) to logits (n, K)
    features : Tensor, shape (n, d)
    actions : LongTensor, shape (n,)
    steps : int ≥ 1
    lr : float > 0

    Returns
    -------
    nn.Module, the fine-tuned copy (``model`` itself is left unchanged).

    >>> import torch
    >>> net = torch.nn.Linear(1, 2).double()
    >>> x = torch.ones(4, 1, dtype=torch.float64); y = torch.tensor([1, 1, 1, 0])
    >>> p = torch.softmax(sft(net, x, y, steps=300, lr=0.05)(x[:1]), -1)[0, 1].item()
    >>> round(p, 2)
    0.75
    """
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr)
    features, actions = torch.as_tensor(features), torch.as_tensor(actions)
    if features.ndim != 2 or actions.shape != (features.shape[0],):
        raise ValueError(f"features and actions must have shapes (n, d) and (n,); got {tuple(features.shape)} "
                         f"and {tuple(actions.shape)}")
    out = copy.deepcopy(model)
    opt = Adam(list(out.parameters()), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(out(features), actions).backward()
        opt.step()
    return out
