r"""Logit fusion: move a large model's logits by a small expert's logit shift, and size the move by KL.

Weak-to-strong logit arithmetic (proxy tuning) transfers a small model's fine-tuning to a large
model without training it: at every decoding step

.. math::
    z_{\rm fused} = z_L + \sum_i \alpha_i \,\big(z_{S,i}^{\rm ft} - z_S\big),

with the large base model's logits :math:`z_L`, the small base model's :math:`z_S` and those of its
fine-tuned experts :math:`z_{S,i}^{\rm ft}`. Dynamic logit fusion (Fan et al., 2024) chooses the
weight at every step so that the large model's distribution moves by as much, in KL, as the small
expert's did. For one expert with logit shift :math:`\delta = z_S^{\rm ft} - z_S` the "KL shift"

.. math::
    f(\alpha) = \mathrm{KL}\big(\mathrm{softmax}(z + \alpha\delta) \,\|\, \mathrm{softmax}(z)\big)

is 0 at α = 0 and non-decreasing for α ≥ 0: writing :math:`A(\alpha) = \log\sum_i e^{z_i + \alpha\delta_i}`,
:math:`f(\alpha) = \alpha A'(\alpha) - A(\alpha) + A(0)`, so :math:`f'(\alpha) = \alpha A''(\alpha) =
\alpha\,\mathrm{Var}_{q_\alpha}(\delta) \ge 0`. Matching a target shift is therefore a one-dimensional
root search that bisection always solves (:func:`match_kl_shift`), up to a ceiling: as α → ∞ the
shifted distribution tends to the base one restricted to the argmax set M of δ, so f is bounded by
:math:`\log(1/q_0(M))` (:func:`kl_shift_ceiling`). The other direction,
:math:`\mathrm{KL}(\mathrm{softmax}(z) \| \mathrm{softmax}(z + \alpha\delta))`, has derivative
:math:`\mathbb{E}_{q_\alpha}[\delta] - \mathbb{E}_{q_0}[\delta] \ge 0` and no ceiling.

Conventions: the base distribution is the reference p, the shifted one the model q, as everywhere in
kllab: ``direction="reverse"`` is KL(shifted ‖ base), the shift dynamic fusion matches (the same
direction as an RLHF penalty KL(π ‖ π_ref)); ``direction="forward"`` is KL(base ‖ shifted). A
decoding temperature T divides every logit. Vocabulary on the last axis; per-step results.
"""

from __future__ import annotations

import math

import torch

from .validation import (DIRECTIONS, check_choice, check_finite, check_int, check_no_nan, check_positive,
                         check_same_shape)

__all__ = ["fuse_logits", "kl_shift", "kl_shift_derivative", "kl_shift_ceiling", "match_kl_shift"]


def _finite(name: str, x) -> torch.Tensor:
    x = x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64)
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name} must have a last axis (the vocabulary); got a scalar")
    check_finite(name, x)
    return x


def _pair(logits, delta) -> tuple[torch.Tensor, torch.Tensor]:
    z, d = _finite("logits", logits), _finite("delta", delta)
    check_same_shape("logits", z, "delta", d)
    return z, d


def fuse_logits(logits_large, logits_small, logits_experts, alphas) -> torch.Tensor:
    r"""Logit arithmetic; ``logits_large`` is the model moved, the small pair gives the direction.

    .. math::
        z_{\rm fused} = z_L + \sum_{i=1}^{E} \alpha_i \big(z^{\rm ft}_{S,i} - z_S\big)

    Parameters
    ----------
    logits_large, logits_small : Tensor, shape (..., V)
        The large and the small base model's logits at the same step.
    logits_experts : Tensor, shape (..., E, V)
        The small fine-tuned experts' logits.
    alphas : Tensor or float, shape (..., E) or broadcastable to it
        One weight per expert (per step, for dynamic fusion).

    Returns
    -------
    Tensor, shape (..., V)

    >>> import torch
    >>> z_l, z_s = torch.zeros(3), torch.tensor([0.0, 1.0, 0.0])
    >>> fuse_logits(z_l, z_s, torch.tensor([[0.0, 3.0, 0.0]]), torch.tensor([0.5])).tolist()
    [0.0, 1.0, 0.0]
    """
    z_l, z_s = _finite("logits_large", logits_large), _finite("logits_small", logits_small)
    check_same_shape("logits_large", z_l, "logits_small", z_s)
    experts = _finite("logits_experts", logits_experts)
    if experts.ndim != z_s.ndim + 1 or experts.shape[:-2] != z_s.shape[:-1] or experts.shape[-1] != z_s.shape[-1]:
        raise ValueError(f"logits_experts must have shape {tuple(z_s.shape[:-1]) + ('E', z_s.shape[-1])}; "
                         f"got {tuple(experts.shape)}")
    a = alphas if torch.is_tensor(alphas) else torch.as_tensor(alphas, dtype=z_l.dtype)
    a = torch.broadcast_to(a, experts.shape[:-1])
    return z_l + (a.unsqueeze(-1) * (experts - z_s.unsqueeze(-2))).sum(-2)


def _shifted(z: torch.Tensor, d: torch.Tensor, alpha: torch.Tensor, temperature: float):
    base = torch.log_softmax(z / temperature, dim=-1)
    moved = torch.log_softmax((z + alpha.unsqueeze(-1) * d) / temperature, dim=-1)
    return base, moved


def _alpha(alpha, like: torch.Tensor) -> torch.Tensor:
    a = alpha if torch.is_tensor(alpha) else torch.as_tensor(alpha, dtype=like.dtype)
    check_no_nan("alpha", a)
    return a.to(like.dtype)


def kl_shift(logits, delta, alpha, temperature: float = 1.0, *, direction: str = "reverse") -> torch.Tensor:
    r"""KL between the distribution moved by ``alpha * delta`` and the base one; the base is the reference.

    .. math::
        f(\alpha) = \mathrm{KL}\big(\mathrm{softmax}((z + \alpha\delta)/T) \,\|\, \mathrm{softmax}(z/T)\big)
        \quad (\text{reverse}), \qquad
        g(\alpha) = \mathrm{KL}\big(\mathrm{softmax}(z/T) \,\|\, \mathrm{softmax}((z + \alpha\delta)/T)\big)
        \quad (\text{forward})

    Parameters
    ----------
    logits : Tensor, shape (..., V)
        The base model's logits z.
    delta : Tensor, shape (..., V)
        The direction δ (a small expert's logit shift).
    alpha : float or Tensor broadcastable to shape (...)
    temperature : float > 0
        Decoding temperature T.
    direction : {"reverse", "forward"}

    Returns
    -------
    Tensor, shape broadcast of (...) and alpha's shape

    >>> import torch
    >>> z, d = torch.tensor([0.0, 0.0]), torch.tensor([1.0, -1.0])
    >>> round(kl_shift(z, d, 0.0).item(), 12), round(kl_shift(z, d, 100.0).item(), 6)   # ceiling log 2
    (0.0, 0.693147)
    """
    check_choice("direction", direction, DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    z, d = _pair(logits, delta)
    return _kl_shift(z, d, _alpha(alpha, z), temperature, direction)


def _kl_shift(z: torch.Tensor, d: torch.Tensor, a: torch.Tensor, temperature: float, direction: str,
              base: torch.Tensor | None = None) -> torch.Tensor:
    """``base``: ``log_softmax(z / T)`` if already computed (a root search evaluates many α at one z)."""
    if base is None:
        base, moved = _shifted(z, d, a, temperature)
    else:
        moved = torch.log_softmax((z + a.unsqueeze(-1) * d) / temperature, dim=-1)
    p, q = (moved, base) if direction == "reverse" else (base, moved)
    return (p.exp() * (p - q)).sum(-1).clamp_min(0.0)


def kl_shift_derivative(logits, delta, alpha, temperature: float = 1.0, *, direction: str = "reverse") -> torch.Tensor:
    r"""Closed-form derivative in α of :func:`kl_shift`.

    .. math::
        f'(\alpha) = \frac{\alpha}{T^2}\,\mathrm{Var}_{q_\alpha}(\delta) \quad (\text{reverse}), \qquad
        g'(\alpha) = \frac{1}{T}\big(\mathbb{E}_{q_\alpha}[\delta] - \mathbb{E}_{q_0}[\delta]\big) \quad (\text{forward}),

    with :math:`q_\alpha = \mathrm{softmax}((z + \alpha\delta)/T)`. Both are ≥ 0 for α ≥ 0 (for g because
    :math:`\mathbb{E}_{q_\alpha}[\delta]` is the derivative of a convex log-partition function), which is
    why bisection on α works.

    >>> import torch
    >>> z, d = torch.tensor([0.5, 0.0, -1.0]), torch.tensor([1.0, -2.0, 0.5])
    >>> a = torch.tensor(0.7, requires_grad=True)
    >>> kl_shift(z, d, a, 2.0).backward()
    >>> bool(torch.isclose(a.grad, kl_shift_derivative(z, d, 0.7, 2.0)))
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    z, d = _pair(logits, delta)
    a = _alpha(alpha, z)
    base, moved = _shifted(z, d, a, temperature)
    u = d / temperature
    q_a, q_0 = moved.exp(), base.exp()
    mean_a = (q_a * u).sum(-1)
    if direction == "reverse":
        var = (q_a * (u - mean_a.unsqueeze(-1)) ** 2).sum(-1)
        return a * var
    return mean_a - (q_0 * u).sum(-1)


def kl_shift_ceiling(logits, delta, temperature: float = 1.0, *, direction: str = "reverse",
                     atol: float = 1e-12) -> torch.Tensor:
    r"""The supremum over α ≥ 0 of :func:`kl_shift`: the largest shift a move along δ can make.

    .. math::
        \sup_{\alpha \ge 0} f(\alpha) = \log \frac{1}{q_0(M)}, \qquad M = \arg\max_i \delta_i

    (reverse: the moved distribution tends to :math:`q_0` restricted to M). For the forward direction
    the supremum is ``inf`` unless δ is constant (then both are 0). Entries of δ within ``atol`` of its
    maximum count as tied.

    >>> import torch
    >>> z = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    >>> round(kl_shift_ceiling(z, torch.tensor([2.0, 0.0, 0.0])).item(), 6) == round(math.log(2), 6)
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    z, d = _pair(logits, delta)
    base = torch.log_softmax(z / temperature, dim=-1)
    top = d >= d.max(-1, keepdim=True).values - atol
    constant = top.all(-1)
    if direction == "forward":
        return torch.where(constant, torch.zeros((), dtype=z.dtype), torch.full((), math.inf, dtype=z.dtype))
    log_mass = torch.logsumexp(torch.where(top, base, torch.full((), -math.inf, dtype=z.dtype)), dim=-1)
    return (-log_mass).clamp_min(0.0)


def match_kl_shift(logits, delta, target, temperature: float = 1.0, *, direction: str = "reverse",
                   alpha_max: float = 10.0, iters: int = 64) -> torch.Tensor:
    r"""The weight α ∈ [0, α_max] whose KL shift equals ``target``, per step, by vectorised bisection.

    Solves :math:`f(\alpha) = \text{target}` (or g, see :func:`kl_shift`) for every row at once. Because
    f is non-decreasing on α ≥ 0 (derivative α·Var(δ)/T²), halving the bracket ``iters`` times pins
    the root to :math:`\alpha_{\max} 2^{-\text{iters}}` (below float64 resolution for the default 64).
    A target at or below 0 gives 0; a target the bracket cannot reach (at or above
    :math:`f(\alpha_{\max})`, e.g. above the reverse ceiling :func:`kl_shift_ceiling`) gives
    ``alpha_max``, the largest weight allowed: the move saturates, as a grid search's last value would.
    ``scipy.optimize.brentq`` finds the same roots (see the tests).

    Parameters
    ----------
    logits : Tensor, shape (..., V)
        The large base model's logits z.
    delta : Tensor, shape (..., V)
        The small expert's logit shift δ.
    target : float or Tensor broadcastable to shape (...)
        The KL shift to match (the small expert's, measured in the same direction and at the same T).
    temperature : float > 0
    direction : {"reverse", "forward"}
    alpha_max : float > 0
    iters : int ≥ 1

    Returns
    -------
    Tensor, shape (...)

    Reference: Fan, Lu, Wei, Tian, Qu, Chen, Cheng. *On Giant's Shoulders: Effortless Weak to Strong by
    Dynamic Logits Fusion.* NeurIPS 2024. arXiv:2406.15480 (the KL-matching rule here is a reconstruction:
    one expert, equal KL shifts).

    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0, -0.5]], dtype=torch.float64)
    >>> d = torch.tensor([[-1.0, 2.0, 0.0]], dtype=torch.float64)
    >>> a = match_kl_shift(z, d, kl_shift(z, d, 1.3))
    >>> round(a.item(), 10)
    1.3
    """
    check_choice("direction", direction, DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    alpha_max = check_positive("alpha_max", alpha_max)
    iters = check_int("iters", iters, low=1)
    z, d = _pair(logits, delta)
    t = target if torch.is_tensor(target) else torch.as_tensor(target, dtype=z.dtype)
    check_no_nan("target", t)
    t = torch.broadcast_to(t.to(z.dtype), z.shape[:-1])
    lo = torch.zeros(z.shape[:-1], dtype=z.dtype)
    hi = torch.full(z.shape[:-1], alpha_max, dtype=z.dtype)
    base = torch.log_softmax(z / temperature, dim=-1)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        below = _kl_shift(z, d, mid, temperature, direction, base) < t
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    alpha = 0.5 * (lo + hi)
    reach = _kl_shift(z, d, torch.full_like(alpha, alpha_max), temperature, direction, base)
    alpha = torch.where(t >= reach, torch.full_like(alpha, alpha_max), alpha)
    return torch.where(t <= 0, torch.zeros_like(alpha), alpha)
