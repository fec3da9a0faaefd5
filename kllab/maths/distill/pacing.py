r"""Weighting problems by the student's pass rate: the Beta kernel of PACED (arXiv:2603.11178).

Part of :mod:`kllab.maths.distill`: :func:`pass_rate_weight`, :func:`pass_rate_weight_mode`,
:func:`estimated_pass_rate_weight`. The signal-to-noise side is in :mod:`kllab.maths.curriculum`.
"""

from __future__ import annotations

import torch

from ..divergences import _as_tensor
from ..validation import check_int, check_no_nan, check_real

__all__ = ["pass_rate_weight", "pass_rate_weight_mode", "estimated_pass_rate_weight"]


# --- Weighting problems by the student's pass rate (PACED, P18) --------------------------------------


def _check_exponents(alpha, beta) -> tuple[float, float]:
    return check_real("alpha", alpha, low=0.0), check_real("beta", beta, low=0.0)


def pass_rate_weight(pass_rate, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    r"""PACED's Beta-kernel weight of a problem; ``pass_rate`` is the student's (reference) pass rate p.

    .. math::
        w(p) = p^\alpha (1 - p)^\beta, \qquad 0^0 = 1

    Zero for mastered (p = 1, if β > 0) and for hopeless (p = 0, if α > 0) problems, largest at the
    mode :math:`p^\star = \alpha / (\alpha + \beta)` (:func:`pass_rate_weight_mode`). As a density it is
    :math:`\mathrm{Beta}(\alpha + 1, \beta + 1)` up to the factor :math:`B(\alpha + 1, \beta + 1)`.

    Parameters
    ----------
    pass_rate : Tensor or float in [0, 1]
    alpha, beta : float ≥ 0
        Exponents on p and on 1 − p; α = β = 1 is PACED's default p(1 − p).

    Returns
    -------
    Tensor, the shape of ``pass_rate``

    References
    ----------
    Xu, Sang, Zhou, He, Wang. *PACED: Distillation at the Frontier of Student Competence.* 2026.
    arXiv:2603.11178.

    >>> pass_rate_weight(torch.tensor([0.0, 0.25, 0.5, 1.0])).tolist()
    [0.0, 0.1875, 0.25, 0.0]
    """
    alpha, beta = _check_exponents(alpha, beta)
    p = _as_tensor(pass_rate)
    check_no_nan("pass_rate", p)
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"pass_rate must be in [0, 1]; got values from {p.min().item():g} to {p.max().item():g}")
    return torch.pow(p, alpha) * torch.pow(1 - p, beta)   # torch.pow(0, 0) = 1


def pass_rate_weight_mode(alpha: float = 1.0, beta: float = 1.0) -> tuple[float, float]:
    r"""Where the Beta kernel :math:`p^\alpha (1-p)^\beta` peaks, and its value there.

    .. math::
        p^\star = \frac{\alpha}{\alpha + \beta}, \qquad
        w(p^\star) = \frac{\alpha^\alpha \beta^\beta}{(\alpha + \beta)^{\alpha + \beta}}

    (from :math:`\tfrac{d}{dp}\log w = \alpha/p - \beta/(1-p) = 0`). Needs α + β > 0.

    >>> pass_rate_weight_mode(1.0, 1.0), pass_rate_weight_mode(2.0, 1.0)[0]
    ((0.5, 0.25), 0.6666666666666666)
    """
    alpha, beta = _check_exponents(alpha, beta)
    if alpha + beta == 0:
        raise ValueError("alpha + beta must be > 0 (alpha = beta = 0 is the uniform weight, with no mode); got 0")
    mode = alpha / (alpha + beta)
    return mode, mode ** alpha * (1 - mode) ** beta


def estimated_pass_rate_weight(pass_rate, rollouts: int, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    r"""Mean weight when the pass rate is estimated from k rollouts; ``pass_rate`` is the true p.

    PACED weights a problem by :math:`w(\hat p)` with :math:`\hat p = J / k`, :math:`J \sim
    \mathrm{Binomial}(k, p)` successes in k rollouts. This sums the binomial law exactly:

    .. math::
        \mathbb{E}\,w(\hat p) = \sum_{j=0}^{k} \binom{k}{j} p^j (1-p)^{k-j}\, w(j/k),

    which for α = β = 1 is :math:`(1 - 1/k)\, p (1 - p)`: the plug-in weight is biased low by 1/k.

    >>> abs(estimated_pass_rate_weight(0.3, 8).item() - (1 - 1 / 8) * 0.3 * 0.7) < 1e-12
    True
    """
    rollouts = check_int("rollouts", rollouts, low=1)
    p = _as_tensor(pass_rate).to(torch.float64)
    j = torch.arange(rollouts + 1, dtype=torch.float64)
    log_binom = torch.lgamma(torch.tensor(rollouts + 1.0, dtype=torch.float64)) - torch.lgamma(j + 1) - torch.lgamma(rollouts - j + 1)
    pmf = torch.exp(log_binom + torch.xlogy(j, p[..., None]) + torch.xlogy(rollouts - j, 1 - p[..., None]))
    return (pmf * pass_rate_weight(j / rollouts, alpha, beta)).sum(-1)
