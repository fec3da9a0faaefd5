r"""Exact optimal transport (POT's network simplex) and its closed form on the line.

Part of :mod:`kllab.maths.transport`: :func:`exact_ot`, :func:`w1_1d`.
"""

from __future__ import annotations

import numpy as np
import ot
import torch

from ..validation import check_log_probs
from .sinkhorn import D64, _as64, cost_matrix

__all__ = ["exact_ot", "w1_1d"]


def exact_ot(logp, logq, cost) -> torch.Tensor:
    r"""Exact optimal transport cost :math:`\min_{P \in U(p, q)} \langle P, C\rangle`, by POT's network simplex.

    A thin wrapper of ``ot.emd2`` (a linear program, no regularisation) over leading axes; ``logp`` is
    the reference p. No gradient: it is the oracle the entropic solvers are checked against.

    Parameters
    ----------
    logp : Tensor, shape (..., n)
    logq : Tensor, shape (..., m)
    cost : Tensor, shape (n, m)

    Returns
    -------
    Tensor, shape (...), float64

    >>> x = torch.arange(3, dtype=torch.float64)
    >>> exact_ot(torch.tensor([1., 0, 0]).log(), torch.tensor([0., 0, 1]).log(), cost_matrix(x, x, p=1)).item()
    2.0
    """
    logp, logq, cost = _as64(logp).detach(), _as64(logq).detach(), _as64(cost).detach()
    check_log_probs("logp", logp)
    check_log_probs("logq", logq)
    if cost.shape != (logp.shape[-1], logq.shape[-1]):
        raise ValueError(f"cost must have shape ({logp.shape[-1]}, {logq.shape[-1]}); got {tuple(cost.shape)}")
    batch = torch.broadcast_shapes(logp.shape[:-1], logq.shape[:-1])
    p = logp.exp().expand(*batch, -1).reshape(-1, logp.shape[-1]).numpy()
    q = logq.exp().expand(*batch, -1).reshape(-1, logq.shape[-1]).numpy()
    m = cost.numpy()
    vals = [ot.emd2(a / a.sum(), b / b.sum(), m) for a, b in zip(p, q)]
    return torch.tensor(np.asarray(vals, dtype=np.float64).reshape(batch), dtype=D64)


def w1_1d(logp, logq, positions) -> torch.Tensor:
    r"""Exact W1 on the line from the distribution functions; ``logp`` is the reference p.

    .. math::
        W_1(p, q) = \int_{\mathbb R} |F_p(x) - F_q(x)|\,dx
        = \sum_{k=1}^{n-1} \Big|\sum_{i \le k} (p_i - q_i)\Big|\,(x_{k+1} - x_k)

    for p and q on the same sorted points :math:`x_1 < \dots < x_n`. Differentiable and batched.

    Parameters
    ----------
    logp, logq : Tensor, shape (..., n)
    positions : Tensor, shape (n,), strictly increasing

    Returns
    -------
    Tensor, shape (...)

    >>> x = torch.arange(4, dtype=torch.float64)
    >>> w1_1d(torch.tensor([1., 0, 0, 0]).log(), torch.tensor([0., 0, 0, 1]).log(), x).item()
    3.0
    """
    logp, logq, x = _as64(logp), _as64(logq), _as64(positions)
    if x.ndim != 1 or x.shape[0] != logp.shape[-1] or logq.shape[-1] != x.shape[0]:
        raise ValueError(f"positions must be 1-D with one point per outcome; got {tuple(x.shape)} for "
                         f"{tuple(logp.shape)} and {tuple(logq.shape)}")
    if x.numel() > 1 and not (x[1:] > x[:-1]).all():
        raise ValueError("positions must be strictly increasing")
    gap = torch.cumsum(logp.exp() - logq.exp(), dim=-1)[..., :-1]
    return (gap.abs() * (x[1:] - x[:-1])).sum(-1)
