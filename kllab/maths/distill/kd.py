r"""The distillation loss with a temperature and a direction, and its gradient (Hinton et al., 2015).

Part of :mod:`kllab.maths.distill`: :func:`kd_loss` (T² times the softened KL), :func:`kd_gradient`.
"""

from __future__ import annotations

import torch

from ..divergences import js, kl_from_logits, log_softmax_t
from ..validation import check_choice, check_positive, check_same_shape

__all__ = ["KD_DIRECTIONS", "kd_loss", "kd_gradient"]


__all__ = ["KD_DIRECTIONS", "kd_loss", "kd_gradient",
           "teacher_head", "bucket_kl", "truncated_kl", "bucket_kd_loss", "STUDENT_LOSSES", "fit_low_rank_student",
           "entropy_balance_weight", "balanced_kd_loss", "ONLINE_LOSSES", "TeacherTrajectory", "train_teacher",
           "distill_students", "pass_rate_weight", "pass_rate_weight_mode", "estimated_pass_rate_weight"]

KD_DIRECTIONS = ("forward", "reverse", "js")


def kd_loss(logits_teacher: torch.Tensor, logits_student: torch.Tensor, temperature: float = 1.0, *,
            direction: str = "forward", t2_scaling: bool = True) -> torch.Tensor:
    r"""Distillation loss; ``logits_teacher`` is the reference p, ``logits_student`` the model q.

    .. math::
        \mathcal{L}_{KD} = T^2 \, D\big(\mathrm{softmax}(z_t/T) \,\|\, \mathrm{softmax}(z_s/T)\big)

    with D = KL(p‖q) for ``"forward"`` (Hinton's KD, mass-covering), KL(q‖p) for
    ``"reverse"`` (mode-seeking, as in MiniLLM-style on-policy distillation) and JS for ``"js"``.

    Parameters
    ----------
    logits_teacher, logits_student : Tensor, shape (..., K)
    temperature : float > 0
    direction : {"forward", "reverse", "js"}
    t2_scaling : bool
        Multiply by T² (default True). Turn it off to see the gradient shrink like 1/T².

    Returns
    -------
    Tensor, shape (...)
        Per-example loss.

    >>> import torch
    >>> t = torch.tensor([[2.0, 0.0, -1.0]]); s = torch.tensor([[0.0, 0.0, 0.0]])
    >>> bool(torch.isclose(kd_loss(t, s, 4.0), 16 * kd_loss(t, s, 4.0, t2_scaling=False)))
    True
    """
    check_choice("direction", direction, KD_DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    check_same_shape("logits_teacher", logits_teacher, "logits_student", logits_student)
    if direction == "js":
        d = js(log_softmax_t(logits_teacher, temperature), log_softmax_t(logits_student, temperature),
               validate=False)
    else:
        d = kl_from_logits(logits_teacher, logits_student, temperature, direction=direction)
    return d * temperature ** 2 if t2_scaling else d


def kd_gradient(logits_teacher: torch.Tensor, logits_student: torch.Tensor,
                temperature: float = 1.0) -> torch.Tensor:
    r"""Closed-form gradient of the forward KD loss *without* T² with respect to the student's logits.

    .. math::
        \frac{\partial}{\partial z_s} \mathrm{KL}(p_T \| q_T) = \frac{q_T - p_T}{T}

    Returns
    -------
    Tensor, shape (..., K)

    >>> import torch
    >>> t = torch.tensor([1.0, 0.0]); s = torch.tensor([0.0, 0.0], requires_grad=True)
    >>> kd_loss(t, s, 2.0, t2_scaling=False).backward()
    >>> bool(torch.allclose(s.grad, kd_gradient(t, s.detach(), 2.0)))
    True
    """
    temperature = check_positive("temperature", temperature)
    check_same_shape("logits_teacher", logits_teacher, "logits_student", logits_student)
    p = torch.softmax(logits_teacher / temperature, dim=-1)
    q = torch.softmax(logits_student / temperature, dim=-1)
    return (q - p) / temperature
