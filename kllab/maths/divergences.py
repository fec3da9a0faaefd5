r"""Divergences between discrete distributions given in log space.

Conventions (the same everywhere in kllab):

* **Math order.** ``f(logp, logq)`` is :math:`D(p \| q)`; ``p`` is the reference
  (data, teacher, target), ``q`` the model (student, policy).
* **Direction.** ``direction="forward"`` is :math:`\mathrm{KL}(p \| q)`, mass-covering when
  ``q`` is fitted; ``direction="reverse"`` is :math:`\mathrm{KL}(q \| p)`, mode-seeking.
* **Log space.** Arguments are log-probabilities on the last axis; ``-inf`` is a legal
  log-probability (probability 0). Disjoint support gives ``inf``, never ``nan``.
* **No hidden reductions.** Results have shape ``logp.shape[:-1]``; the caller reduces.

``torch.nn.functional.kl_div(input, target)`` computes KL(target ‖ input), the reverse of
this order; see the README's translation table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .validation import (DIRECTIONS, check_choice, check_log_probs, check_no_nan,
                         check_positive, check_real, check_same_shape)

__all__ = [
    "kl", "kl_from_logits", "js", "jeffreys", "total_variation", "hellinger", "alpha_divergence",
    "renyi", "f_divergence", "FDivergence", "F_DIVERGENCES", "divergence", "DIVERGENCES",
    "entropy", "cross_entropy", "kl_gaussian", "log_softmax_t",
]

NEG_INF = -math.inf


def _as_tensor(x) -> torch.Tensor:
    if torch.is_tensor(x):
        return x
    return torch.as_tensor(x, dtype=torch.float64)


def _pair(logp, logq, validate: bool, names=("logp", "logq")) -> tuple[torch.Tensor, torch.Tensor]:
    logp, logq = _as_tensor(logp), _as_tensor(logq)
    if validate:
        check_log_probs(names[0], logp)
        check_log_probs(names[1], logq)
        check_same_shape(names[0], logp, names[1], logq)
    return logp, logq


def _kl_unchecked(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) on the last axis with the conventions 0·log(0/q) = 0 and p·log(p/0) = inf."""
    p = logp.exp()
    terms = p * (logp - logq)
    # Where p = 0 the term is 0 whatever q is (this also removes -inf - -inf = nan).
    terms = torch.where(p > 0, terms, torch.zeros((), dtype=terms.dtype))
    return terms.sum(-1)


def kl(logp, logq, *, direction: str = "forward", validate: bool = True) -> torch.Tensor:
    r"""Kullback-Leibler divergence; ``logp`` is the reference p, ``logq`` the model q.

    .. math::
        \mathrm{KL}(p \| q) = \sum_i p_i \log \frac{p_i}{q_i}

    ``direction="forward"`` returns KL(p‖q) (mass-covering when q is fitted),
    ``direction="reverse"`` returns KL(q‖p) (mode-seeking).

    Parameters
    ----------
    logp, logq : Tensor, shape (..., K)
        Log-probabilities on the last axis; ``-inf`` allowed.
    direction : {"forward", "reverse"}
    validate : bool
        Check shapes, NaN and normalisation (turn off only in inner loops).

    Returns
    -------
    Tensor, shape (...)
        Per-example divergence, ``inf`` where the second argument has zero mass on the
        first one's support.

    >>> import torch
    >>> p = torch.tensor([0.5, 0.5]).log(); q = torch.tensor([0.9, 0.1]).log()
    >>> round(kl(p, q).item(), 4), round(kl(p, q, direction="reverse").item(), 4)
    (0.5108, 0.3681)
    >>> kl(torch.tensor([0.0, -math.inf]), torch.tensor([-math.inf, 0.0])).item()
    inf
    """
    check_choice("direction", direction, DIRECTIONS)
    logp, logq = _pair(logp, logq, validate)
    if direction == "reverse":
        logp, logq = logq, logp
    return _kl_unchecked(logp, logq)


def log_softmax_t(logits, temperature: float = 1.0) -> torch.Tensor:
    r"""Temperature-scaled log-softmax, :math:`\log \mathrm{softmax}(z / T)`, on the last axis.

    >>> import torch
    >>> log_softmax_t(torch.tensor([0.0, 2.0]), temperature=2.0).exp().round(decimals=4)
    tensor([0.2689, 0.7311])
    """
    temperature = check_positive("temperature", temperature)
    logits = _as_tensor(logits)
    return torch.log_softmax(logits / temperature, dim=-1)


def kl_from_logits(logits_p, logits_q, temperature: float = 1.0, *,
                   direction: str = "forward") -> torch.Tensor:
    r"""KL between the temperature-softened softmaxes of two sets of logits; ``logits_p`` is the reference.

    .. math::
        \mathrm{KL}\big(\mathrm{softmax}(z_p/T) \,\|\, \mathrm{softmax}(z_q/T)\big)

    Same ops as ``F.kl_div(log_softmax(z_q/T), log_softmax(z_p/T), log_target=True)``
    summed over the last axis, but correct where torch gives NaN: an outcome that is
    ``-inf`` in both sets of logits contributes 0, not NaN. The T² factor of distillation
    is *not* applied here; see :func:`kllab.maths.distill.kd_loss`.

    Parameters
    ----------
    logits_p, logits_q : Tensor, shape (..., K)
        Unnormalised logits; ``-inf`` masks an outcome.
    temperature : float > 0
    direction : {"forward", "reverse"}

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> z = torch.tensor([[1.0, 2.0, -math.inf]])
    >>> kl_from_logits(z, z).item()
    0.0
    """
    check_choice("direction", direction, DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    logits_p, logits_q = _as_tensor(logits_p), _as_tensor(logits_q)
    check_same_shape("logits_p", logits_p, "logits_q", logits_q)
    if direction == "reverse":
        logits_p, logits_q = logits_q, logits_p
    logp = torch.log_softmax(logits_p / temperature, dim=-1)
    logq = torch.log_softmax(logits_q / temperature, dim=-1)
    # Fast path: torch's own fused kernel (note its argument order: model first), then repair
    # only the rows that came out NaN.
    out = torch.nn.functional.kl_div(logq, logp, reduction="none", log_target=True).sum(-1)
    bad = torch.isnan(out)
    if bad.any():
        which = ("logits_q", "logits_p") if direction == "reverse" else ("logits_p", "logits_q")
        for name, z in zip(which, (logits_p, logits_q)):
            check_no_nan(name, z)
            if (z == math.inf).any():
                raise ValueError(f"{name} must not contain +inf; got +inf (use -inf to mask an outcome)")
            if (z == NEG_INF).all(-1).any():
                raise ValueError(f"{name} must have at least one finite logit per row; got a row of all -inf")
        out = out.clone()
        out[bad] = _kl_unchecked(logp[bad], logq[bad])
    return out


def js(logp, logq, *, validate: bool = True) -> torch.Tensor:
    r"""Jensen-Shannon divergence (symmetric, in nats); bounded by log 2.

    .. math::
        \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \| m) + \tfrac12 \mathrm{KL}(q \| m),
        \quad m = \tfrac12 (p + q)

    >>> import torch
    >>> round(js(torch.tensor([0.0, -math.inf]), torch.tensor([-math.inf, 0.0])).item(), 6)
    0.693147
    """
    logp, logq = _pair(logp, logq, validate)
    logm = torch.logaddexp(logp, logq) - math.log(2.0)
    return 0.5 * _kl_unchecked(logp, logm) + 0.5 * _kl_unchecked(logq, logm)


def jeffreys(logp, logq, *, validate: bool = True) -> torch.Tensor:
    r"""Jeffreys divergence, the symmetrised KL: :math:`J(p, q) = \mathrm{KL}(p \| q) + \mathrm{KL}(q \| p)`.

    .. math::
        J(p, q) = \sum_i (p_i - q_i) \log \frac{p_i}{q_i} \;\ge\; 4\,\mathrm{JS}(p, q)

    The bound (Lin, 1991) follows from convexity: :math:`\mathrm{KL}(p \| m) \le \tfrac12 \mathrm{KL}(p \| q)`
    for :math:`m = \tfrac12(p + q)`. Unlike JS it is unbounded: ``inf`` as soon as either support misses
    mass of the other. Symmetric, so neither argument is the reference.

    Parameters
    ----------
    logp, logq : Tensor, shape (..., K)
        Log-probabilities on the last axis; ``-inf`` allowed.

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> p = torch.tensor([0.5, 0.5]).log(); q = torch.tensor([0.9, 0.1]).log()
    >>> round(jeffreys(p, q).item(), 4), bool(jeffreys(p, q) >= 4 * js(p, q))
    (0.8789, True)
    """
    logp, logq = _pair(logp, logq, validate)
    return _kl_unchecked(logp, logq) + _kl_unchecked(logq, logp)


def total_variation(logp, logq, *, validate: bool = True) -> torch.Tensor:
    r"""Total variation distance, :math:`\tfrac12 \sum_i |p_i - q_i|`, in [0, 1].

    >>> import torch
    >>> total_variation(torch.tensor([0.5, 0.5]).log(), torch.tensor([1.0, 0.0]).log()).item()
    0.5
    """
    logp, logq = _pair(logp, logq, validate)
    return 0.5 * (logp.exp() - logq.exp()).abs().sum(-1)


def _log_bhattacharyya(logp: torch.Tensor, logq: torch.Tensor, alpha: float) -> torch.Tensor:
    """log Σ p^α q^(1-α), with outcomes where p = q = 0 left out (0 · ∞ conventions)."""
    both_zero = (logp == NEG_INF) & (logq == NEG_INF)
    expo = alpha * logp + (1.0 - alpha) * logq
    expo = torch.where(both_zero, torch.full((), NEG_INF, dtype=expo.dtype), expo)
    return torch.logsumexp(expo, dim=-1)


def hellinger(logp, logq, *, validate: bool = True) -> torch.Tensor:
    r"""Hellinger distance, in [0, 1].

    .. math::
        H(p, q) = \sqrt{\tfrac12 \sum_i (\sqrt{p_i} - \sqrt{q_i})^2}
                = \sqrt{1 - \sum_i \sqrt{p_i q_i}}

    >>> import torch
    >>> hellinger(torch.tensor([0.0, -math.inf]), torch.tensor([-math.inf, 0.0])).item()
    1.0
    """
    logp, logq = _pair(logp, logq, validate)
    bc = _log_bhattacharyya(logp, logq, 0.5).exp()
    return (1.0 - bc).clamp_min(0.0).sqrt()


def alpha_divergence(logp, logq, alpha: float, *, validate: bool = True) -> torch.Tensor:
    r"""Amari α-divergence; ``logp`` is the reference p.

    .. math::
        D_\alpha(p \| q) = \frac{1 - \sum_i p_i^\alpha q_i^{1-\alpha}}{\alpha (1 - \alpha)}

    Interpolates the two KL directions: α → 1 gives KL(p‖q) (forward), α → 0 gives
    KL(q‖p) (reverse); α = ½ gives 4·H², four times the squared Hellinger distance.
    α = 0 and α = 1 are returned exactly as the KL limits.

    >>> import torch
    >>> p = torch.tensor([0.5, 0.5]).log(); q = torch.tensor([0.9, 0.1]).log()
    >>> bool(torch.isclose(alpha_divergence(p, q, 1.0), kl(p, q)))
    True
    """
    alpha = check_real("alpha", alpha)
    logp, logq = _pair(logp, logq, validate)
    if alpha == 1.0:
        return _kl_unchecked(logp, logq)
    if alpha == 0.0:
        return _kl_unchecked(logq, logp)
    s = _log_bhattacharyya(logp, logq, alpha).exp()
    return (1.0 - s) / (alpha * (1.0 - alpha))


def renyi(logp, logq, alpha: float, *, validate: bool = True) -> torch.Tensor:
    r"""Rényi divergence of order α; ``logp`` is the reference p.

    .. math::
        D^{R}_\alpha(p \| q) = \frac{1}{\alpha - 1} \log \sum_i p_i^\alpha q_i^{1-\alpha}

    α → 1 gives KL(p‖q); α = ½ gives −2 log(1 − H²). Requires α ≥ 0.

    >>> import torch
    >>> p = torch.tensor([0.5, 0.5]).log(); q = torch.tensor([0.9, 0.1]).log()
    >>> bool(torch.isclose(renyi(p, q, 1.0), kl(p, q)))
    True
    """
    alpha = check_real("alpha", alpha, low=0.0)
    logp, logq = _pair(logp, logq, validate)
    if alpha == 1.0:
        return _kl_unchecked(logp, logq)
    return _log_bhattacharyya(logp, logq, alpha) / (alpha - 1.0)


@dataclass(frozen=True)
class FDivergence:
    r"""A named f-divergence :math:`D_f(p \| q) = \sum_i q_i f(p_i / q_i)`.

    Attributes
    ----------
    f : callable
        The convex generator, f(1) = 0, applied to a tensor of ratios r = p/q ≥ 0.
    slope_at_inf : float
        :math:`\lim_{r\to\infty} f(r)/r`: the cost per unit of p-mass where q = 0.
    weight : callable or None
        :math:`h(r) = r^2 f''(r)`, the density-ratio weight of the f-divergence gradient
        (used by distribution-matching distillation); None where f is not twice differentiable.
    """

    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    slope_at_inf: float
    weight: Callable[[torch.Tensor], torch.Tensor] | None


def _js_f(r: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.xlogy(r, r) - torch.xlogy(1.0 + r, (1.0 + r) / 2.0))


F_DIVERGENCES: dict[str, FDivergence] = {
    "forward": FDivergence("forward", lambda r: torch.xlogy(r, r), math.inf, lambda r: r),
    "reverse": FDivergence("reverse", lambda r: -torch.log(r), 0.0, lambda r: torch.ones_like(r)),
    "js": FDivergence("js", _js_f, 0.5 * math.log(2.0), lambda r: r / (2.0 * (1.0 + r))),
    "tv": FDivergence("tv", lambda r: 0.5 * (r - 1.0).abs(), 0.5, None),
    "hellinger2": FDivergence("hellinger2", lambda r: 0.5 * (r.sqrt() - 1.0) ** 2, 0.5,
                              lambda r: 0.25 * r.sqrt()),
    "chi2": FDivergence("chi2", lambda r: (r - 1.0) ** 2, math.inf, lambda r: 2.0 * r ** 2),
}
"""Named f-divergences: forward KL, reverse KL, JS, TV, squared Hellinger, Pearson χ²."""


def f_divergence(logp, logq, f: str | FDivergence, *, validate: bool = True) -> torch.Tensor:
    r"""Generic f-divergence; ``logp`` is the reference p.

    .. math::
        D_f(p \| q) = \sum_{i: q_i > 0} q_i f\!\left(\frac{p_i}{q_i}\right)
                     + f'(\infty) \sum_{i: q_i = 0} p_i

    Parameters
    ----------
    f : str or FDivergence
        A name from :data:`F_DIVERGENCES` or your own :class:`FDivergence`.

    >>> import torch
    >>> p = torch.tensor([0.5, 0.5]).log(); q = torch.tensor([0.9, 0.1]).log()
    >>> bool(torch.isclose(f_divergence(p, q, "forward"), kl(p, q)))
    True
    """
    if isinstance(f, str):
        f = F_DIVERGENCES[check_choice("f", f, tuple(F_DIVERGENCES))]
    logp, logq = _pair(logp, logq, validate)
    q = logq.exp()
    on_q = q > 0
    r = torch.where(on_q, (logp - logq).exp(), torch.ones((), dtype=q.dtype))
    inside = torch.where(on_q, q * f.f(r), torch.zeros((), dtype=q.dtype)).sum(-1)
    off_mass = torch.where(on_q, torch.zeros((), dtype=q.dtype), logp.exp()).sum(-1)
    if math.isinf(f.slope_at_inf):
        outside = torch.where(off_mass > 0, torch.full((), math.inf, dtype=q.dtype),
                              torch.zeros((), dtype=q.dtype))
    else:
        outside = f.slope_at_inf * off_mass
    return inside + outside


def entropy(logp, *, validate: bool = True) -> torch.Tensor:
    r"""Shannon entropy :math:`H(p) = -\sum_i p_i \log p_i` in nats, on the last axis.

    >>> import torch
    >>> round(entropy(torch.full((4,), 0.25).log()).item(), 6) == round(math.log(4), 6)
    True
    """
    logp = _as_tensor(logp)
    if validate:
        check_log_probs("logp", logp)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros((), dtype=p.dtype)).sum(-1)


def cross_entropy(logp, logq, *, validate: bool = True) -> torch.Tensor:
    r"""Cross-entropy :math:`H(p, q) = -\sum_i p_i \log q_i = H(p) + \mathrm{KL}(p \| q)`.

    >>> import torch
    >>> p = torch.tensor([0.5, 0.5]).log(); q = torch.tensor([0.9, 0.1]).log()
    >>> bool(torch.isclose(cross_entropy(p, q), entropy(p) + kl(p, q)))
    True
    """
    logp, logq = _pair(logp, logq, validate)
    return entropy(logp, validate=False) + _kl_unchecked(logp, logq)


DIVERGENCES = ("forward", "reverse", "js", "tv", "hellinger", "alpha", "renyi")
"""Names accepted by :func:`divergence` (and by the ``divergence`` argument of fitting)."""


def divergence(logp, logq, name: str = "forward", *, alpha: float | None = None,
               validate: bool = True) -> torch.Tensor:
    """Dispatch by name; ``logp`` is the reference (target), ``logq`` the model.

    ``"forward"`` is KL(p‖q), ``"reverse"`` is KL(q‖p); ``"alpha"`` and ``"renyi"``
    need ``alpha``.

    >>> import torch
    >>> p = torch.tensor([0.5, 0.5]).log(); q = torch.tensor([0.9, 0.1]).log()
    >>> bool(divergence(p, q, "reverse") == kl(q, p))
    True
    """
    check_choice("divergence", name, DIVERGENCES)
    if name in ("alpha", "renyi") and alpha is None:
        raise ValueError(f"alpha must be given for divergence={name!r}; got None")
    if name == "forward":
        return kl(logp, logq, validate=validate)
    if name == "reverse":
        return kl(logp, logq, direction="reverse", validate=validate)
    if name == "js":
        return js(logp, logq, validate=validate)
    if name == "tv":
        return total_variation(logp, logq, validate=validate)
    if name == "hellinger":
        return hellinger(logp, logq, validate=validate)
    if name == "alpha":
        return alpha_divergence(logp, logq, alpha, validate=validate)
    return renyi(logp, logq, alpha, validate=validate)


def kl_gaussian(mu_p, sigma_p, mu_q, sigma_q) -> torch.Tensor:
    r"""KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) in closed form, via ``torch.distributions``.

    .. math::
        \log\frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2\sigma_q^2} - \frac12

    Arguments broadcast; scale parameters must be > 0.

    >>> round(kl_gaussian(0.0, 1.0, 1.0, 2.0).item(), 6)
    0.443147
    """
    args = [_as_tensor(a) for a in (mu_p, sigma_p, mu_q, sigma_q)]
    for name, s in (("sigma_p", args[1]), ("sigma_q", args[3])):
        if not (s > 0).all():
            raise ValueError(f"{name} must be > 0; got {s.min().item()!r}")
    p = torch.distributions.Normal(args[0], args[1])
    q = torch.distributions.Normal(args[2], args[3])
    return torch.distributions.kl_divergence(p, q)
