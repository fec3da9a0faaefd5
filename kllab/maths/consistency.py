r"""Consistency between two views: a divergence between a model's predictions on two augmentations.

Two random augmentations of one input should get the same prediction. Consistency regularisation
adds a divergence between the two predicted distributions to the loss; LegoGCD's dual-view KL
(DKL; Cao et al., 2024) is ``KL(softmax(z_1/T) ‖ softmax(z_2/T))`` on the two views' logits, with
gradients through both. The views are exchangeable (two draws of the same augmentation), so the two
KL directions have the same expectation; they differ only when one view is special (a weak versus a
strong augmentation, or a stop-gradient teacher). The symmetric choices are the Jeffreys divergence
J = KL(p_1‖p_2) + KL(p_2‖p_1) and Jensen-Shannon, related by J ≥ 8·JS: pointwise,
(t − 1) log t ≥ 4[t log t − (1 + t) log((1 + t)/2)] for the ratio t = p_1/p_2 (the difference is convex
in t with a double zero at t = 1), and 8 is sharp since J/JS → 8 as p_2 → p_1. Lin's (1991) J ≥ 4·JS,
from the convexity of KL, is never tight.

Conventions: view 1 plays the reference p (``direction="forward"`` is KL(v1‖v2)); classes on the
last axis; per-example results, shape ``logits.shape[:-1]``.
"""

from __future__ import annotations

import torch

from .divergences import jeffreys, js, kl
from .validation import check_choice, check_no_nan, check_positive, check_same_shape

__all__ = ["CONSISTENCY_DIRECTIONS", "view_consistency", "view_disagreement"]

CONSISTENCY_DIRECTIONS = ("forward", "reverse", "jeffreys", "js")
"""``forward`` KL(v1‖v2) (LegoGCD's DKL), ``reverse`` KL(v2‖v1), ``jeffreys`` their sum, ``js`` Jensen-Shannon."""


def _logits(name: str, x) -> torch.Tensor:
    x = x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64)
    if not x.is_floating_point() or x.ndim == 0:
        raise ValueError(f"{name} must be a floating-point tensor with a last axis of classes; "
                         f"got dtype {x.dtype}, shape {tuple(x.shape)}")
    check_no_nan(name, x)
    return x


def view_consistency(logits_1, logits_2, temperature: float = 1.0, *, direction: str = "forward") -> torch.Tensor:
    r"""Divergence between the predictions on two views; view 1 is the reference for the KL directions.

    .. math::
        D_{\rm forward} = \mathrm{KL}(p_1 \| p_2), \quad D_{\rm reverse} = \mathrm{KL}(p_2 \| p_1), \quad
        D_{\rm jeffreys} = D_{\rm forward} + D_{\rm reverse}, \quad D_{\rm js} = \mathrm{JS}(p_1, p_2),

    with :math:`p_v = \mathrm{softmax}(z_v / T)`. All are 0 exactly when the two predictions agree, and
    :math:`D_{\rm jeffreys} \ge 8 D_{\rm js}` (sharp: the ratio tends to 8 as the views agree).

    Parameters
    ----------
    logits_1, logits_2 : Tensor, shape (..., K)
        The model's logits on the two views (``-inf`` masks a class in both).
    temperature : float > 0
    direction : {"forward", "reverse", "jeffreys", "js"}

    Returns
    -------
    Tensor, shape (...)
        Per-example divergence (differentiable in both sets of logits).

    Reference: Cao, Zheng, Wang, Yu, Shen, Li, Lu, Tian. *Solving the Catastrophic Forgetting Problem in
    Generalized Category Discovery.* CVPR 2024. arXiv:2501.05272.

    >>> import torch
    >>> z1, z2 = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.5, 0.5, 0.0])
    >>> j = view_consistency(z1, z2, direction="jeffreys")
    >>> bool(torch.isclose(j, view_consistency(z1, z2) + view_consistency(z2, z1)))
    True
    >>> view_consistency(z1, z1).item()
    0.0
    """
    check_choice("direction", direction, CONSISTENCY_DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    z1, z2 = _logits("logits_1", logits_1), _logits("logits_2", logits_2)
    check_same_shape("logits_1", z1, "logits_2", z2)
    logp1 = torch.log_softmax(z1 / temperature, dim=-1)
    logp2 = torch.log_softmax(z2 / temperature, dim=-1)
    if direction == "forward":
        return kl(logp1, logp2, validate=False)
    if direction == "reverse":
        return kl(logp2, logp1, validate=False)
    if direction == "jeffreys":
        return jeffreys(logp1, logp2, validate=False)
    return js(logp1, logp2, validate=False)


def view_disagreement(logits_1, logits_2) -> torch.Tensor:
    r"""1 where the two views' predicted classes (argmax) differ, else 0; the quantity DKL is meant to lower.

    Parameters
    ----------
    logits_1, logits_2 : Tensor, shape (..., K)

    Returns
    -------
    Tensor of float, shape (...)

    >>> import torch
    >>> view_disagreement(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [1.0, 0.0]])).tolist()
    [0.0, 1.0]
    """
    z1, z2 = _logits("logits_1", logits_1), _logits("logits_2", logits_2)
    check_same_shape("logits_1", z1, "logits_2", z2)
    return (z1.argmax(-1) != z2.argmax(-1)).to(z1.dtype)
