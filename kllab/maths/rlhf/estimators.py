r"""Schulman's per-sample KL estimators k1, k2, k3: values, exact moments, Monte Carlo, expected gradients.

Part of :mod:`kllab.maths.rlhf`. Samples x are drawn from q (the policy being trained); the
estimators target KL(q‖p) with p the reference (teacher, base model). With
:math:`\rho = p(x)/q(x)`:

.. math::
    k_1 = -\log\rho, \qquad k_2 = \tfrac12 (\log\rho)^2, \qquad k_3 = (\rho - 1) - \log\rho .

k1 and k3 are unbiased (:math:`\mathbb{E}_q[\rho] = 1`), k3 is ≥ 0 sample by sample, k2 is
biased (:math:`\mathbb{E}_q[k_2] \ne \mathrm{KL}` unless p = q to second order). Used as *losses* on
on-policy samples (differentiated through log q(x) with x fixed), their expected gradients are
those of three different objectives (:func:`estimator_gradients`):

.. math::
    \mathbb{E}_q[\nabla k_1] = 0, \qquad \mathbb{E}_q[\nabla k_2] = \nabla\mathrm{KL}(q\|p), \qquad
    \mathbb{E}_q[\nabla k_3] = \nabla\mathrm{KL}(p\|q),

so "k3 as a loss" follows the *forward* KL. References: Schulman (2020), "Approximating KL
divergence"; Tang & Munos (2025), arXiv:2506.09477; Liu et al. (2025), arXiv:2510.01555.
"""

from __future__ import annotations

import math

import torch

from ..divergences import _kl_unchecked, _pair
from ..validation import check_choice, check_int, check_same_shape

__all__ = ["ESTIMATORS", "kl_estimators", "estimator_moments", "sample_estimates", "kl_gradients",
           "estimator_gradients"]

ESTIMATORS = ("k1", "k2", "k3")
"""The three per-sample estimators, in Schulman's numbering."""


def _estimators_unchecked(logq_x: torch.Tensor, logp_x: torch.Tensor) -> dict[str, torch.Tensor]:
    log_ratio = logp_x - logq_x
    return {"k1": -log_ratio, "k2": 0.5 * log_ratio ** 2, "k3": torch.expm1(log_ratio) - log_ratio}


def kl_estimators(logq_x, logp_x) -> dict[str, torch.Tensor]:
    r"""Per-sample estimators of KL(q‖p) from samples x ~ q (Schulman, 2020); ``logp_x`` is the reference.

    ``logq_x`` are log q(x) of the sampling policy (the model), ``logp_x`` log p(x) of the
    reference, at the same samples. With :math:`\rho = p(x)/q(x)`:

    .. math::
        k_1 = -\log\rho, \qquad k_2 = \tfrac12 (\log\rho)^2, \qquad k_3 = (\rho - 1) - \log\rho

    k1 is unbiased but can be negative; k3 is unbiased and ≥ 0; k2 is biased, low-variance.
    In TRL, ``kl_estimator="k1"`` is k1 and ``"k3"`` is k3 (both estimate KL(π‖π_ref)).

    Returns
    -------
    dict with keys "k1", "k2", "k3", each a Tensor of the samples' shape.

    >>> import torch
    >>> ks = kl_estimators(torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.0]))
    >>> [round(float(ks[k].mean()), 4) for k in ("k1", "k2", "k3")]
    [0.0, 0.5, 0.5431]
    """
    logq_x, logp_x = torch.as_tensor(logq_x), torch.as_tensor(logp_x)
    check_same_shape("logq_x", logq_x, "logp_x", logp_x)
    for name, v in (("logq_x", logq_x), ("logp_x", logp_x)):
        if torch.isnan(v).any():
            raise ValueError(f"{name} must not contain NaN; got NaN")
    if (logq_x == -math.inf).any():
        raise ValueError("logq_x must be finite: samples come from q, so q(x) > 0; got -inf")
    return _estimators_unchecked(logq_x, logp_x)


def estimator_moments(logq, logp) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    r"""Exact mean and variance of k1, k2, k3 under x ~ q, by enumeration; ``logp`` is the reference.

    For distributions on K outcomes (last axis), the estimators of KL(q‖p) are exact sums:

    .. math::
        \mathbb{E}_q[k] = \sum_x q(x)\,k(x), \qquad \mathrm{Var}_q[k] = \sum_x q(x)\,k(x)^2 - \mathbb{E}_q[k]^2 .

    The mean of N independent samples then has bias :math:`\mathbb{E}_q[k] - \mathrm{KL}(q\|p)` and
    standard deviation :math:`\sqrt{\mathrm{Var}_q[k]/N}`. Outcomes with q(x) = 0 are never
    sampled and contribute nothing; an outcome with q(x) > 0 = p(x) makes every moment inf.

    Parameters
    ----------
    logq, logp : Tensor, shape (..., K)
        Log-probabilities of the sampling distribution q and of the reference p.

    Returns
    -------
    dict "k1", "k2", "k3" -> (mean, variance), each a Tensor of shape (...).

    >>> import torch
    >>> q = torch.tensor([0.5, 0.5]).log(); p = torch.tensor([0.9, 0.1]).log()
    >>> m = estimator_moments(q, p)
    >>> round(m["k1"][0].item(), 4), round(m["k3"][0].item(), 4), round(m["k2"][0].item(), 4)  # KL(q||p) = 0.5108
    (0.5108, 0.5108, 0.7339)
    """
    logq, logp = _pair(logq, logp, True, names=("logq", "logp"))
    q = logq.exp()
    on = q > 0
    safe_q = torch.where(on, logq, torch.zeros((), dtype=logq.dtype))
    ks = _estimators_unchecked(safe_q, logp)
    zero = torch.zeros((), dtype=q.dtype)
    out = {}
    for name in ESTIMATORS:
        k = ks[name]
        mean = torch.where(on, q * k, zero).sum(-1)
        second = torch.where(on, q * k * k, zero).sum(-1)
        var = (second - mean ** 2).clamp_min(0.0)
        infinite = (on & (logp == -math.inf)).any(-1)
        inf = torch.full((), math.inf, dtype=q.dtype)
        out[name] = (torch.where(infinite, inf, mean), torch.where(infinite, inf, var))
    return out


def sample_estimates(logq, logp, n_samples: int, n_repeats: int = 1, *,
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    r"""Monte-Carlo estimates of KL(q‖p): the mean of k1, k2, k3 over ``n_samples`` draws x ~ q; ``logp`` is the reference.

    Repeated ``n_repeats`` times with independent draws, so the spread of the estimates can be
    compared with :func:`estimator_moments` (standard deviation :math:`\sqrt{\mathrm{Var}_q[k]/N}`).

    Parameters
    ----------
    logq, logp : Tensor, shape (..., K)
    n_samples : int ≥ 1
        N, the number of samples averaged in one estimate.
    n_repeats : int ≥ 1
    generator : torch.Generator, optional

    Returns
    -------
    dict "k1", "k2", "k3" -> Tensor of shape (..., n_repeats).

    >>> import torch
    >>> q = torch.tensor([0.5, 0.5]).log(); p = torch.tensor([0.9, 0.1]).log()
    >>> est = sample_estimates(q, p, 1000, 200, generator=torch.Generator().manual_seed(0))
    >>> abs(est["k3"].mean().item() - 0.5108) < 0.01
    True
    """
    logq, logp = _pair(logq, logp, True, names=("logq", "logp"))
    n_samples = check_int("n_samples", n_samples, low=1)
    n_repeats = check_int("n_repeats", n_repeats, low=1)
    k = logq.shape[-1]
    rows_q, rows_p = logq.reshape(-1, k), logp.reshape(-1, k)
    idx = torch.multinomial(rows_q.exp().to(torch.float64), n_repeats * n_samples, replacement=True,
                            generator=generator)                                 # (rows, R*N)
    ks = _estimators_unchecked(rows_q.gather(-1, idx), rows_p.gather(-1, idx))
    shape = logq.shape[:-1] + (n_repeats,)
    return {name: v.reshape(-1, n_repeats, n_samples).mean(-1).reshape(shape) for name, v in ks.items()}


def kl_gradients(logits, logp_ref) -> dict[str, torch.Tensor]:
    r"""Closed-form gradients of both KLs with respect to the logits of π = softmax(z); ``logp_ref`` is the reference.

    .. math::
        \nabla_z \mathrm{KL}(\pi\|p) = \pi \odot \big(\log\pi - \log p - \mathrm{KL}(\pi\|p)\big), \qquad
        \nabla_z \mathrm{KL}(p\|\pi) = \pi - p .

    Returns
    -------
    dict "reverse" (KL(π‖p)) and "forward" (KL(p‖π)) -> Tensor of the logits' shape.

    >>> import torch
    >>> g = kl_gradients(torch.zeros(2), torch.tensor([0.9, 0.1]).log())
    >>> [round(v, 4) for v in g["forward"].tolist()]
    [-0.4, 0.4]
    """
    logits = torch.as_tensor(logits)
    logpi = torch.log_softmax(logits.detach().to(torch.float64), -1)
    logpi, logp_ref = _pair(logpi, torch.as_tensor(logp_ref, dtype=torch.float64), True, names=("logits", "logp_ref"))
    pi = logpi.exp()
    rev = _kl_unchecked(logpi, logp_ref).unsqueeze(-1)
    reverse = torch.where(pi > 0, pi * (logpi - logp_ref - rev), torch.zeros((), dtype=pi.dtype))
    return {"reverse": reverse, "forward": pi - logp_ref.exp()}


def estimator_gradients(logits, logp_ref, *, mode: str = "loss") -> dict[str, torch.Tensor]:
    r"""Exact expected gradients of k1, k2, k3 on on-policy samples, by autograd; ``logp_ref`` is the reference.

    π = softmax(z) samples x; each estimator k(x; z) of KL(π‖p) can enter training two ways:

    * ``mode="loss"``: differentiated as a loss with the samples held fixed,
      :math:`\mathbb{E}_{x\sim\pi}[\nabla_z k(x; z)]`;
    * ``mode="reward"``: as a detached penalty in the reward (REINFORCE),
      :math:`\mathbb{E}_{x\sim\pi}[k(x)\,\nabla_z\log\pi(x)]`.

    The two add up to :math:`\nabla_z\mathbb{E}_\pi[k]` (product rule). The results are computed
    by autograd on the exact sums over the K outcomes, with no closed form used; compare them with
    :func:`kl_gradients`: as losses, k1 gives 0, k2 the reverse-KL gradient and k3 the
    *forward*-KL gradient; as a reward, k1 gives the reverse-KL gradient.

    Parameters
    ----------
    logits : Tensor, shape (..., K)
    logp_ref : Tensor, shape (..., K)
        The reference p; must be > 0 wherever π is (π = softmax(z) is > 0 everywhere).
    mode : {"loss", "reward"}

    Returns
    -------
    dict "k1", "k2", "k3" -> Tensor of the logits' shape.

    >>> import torch
    >>> z = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64); p = torch.tensor([0.2, 0.5, 0.3]).log()
    >>> g, exact = estimator_gradients(z, p), kl_gradients(z, p)
    >>> bool(torch.allclose(g["k2"], exact["reverse"]) and torch.allclose(g["k3"], exact["forward"]))
    True
    """
    mode = check_choice("mode", mode, ("loss", "reward"))
    z = torch.as_tensor(logits, dtype=torch.float64).detach()
    logp_ref = torch.as_tensor(logp_ref, dtype=torch.float64).detach()
    _pair(torch.log_softmax(z, -1), logp_ref, True, names=("logits", "logp_ref"))
    if (logp_ref == -math.inf).any():
        raise ValueError("logp_ref must be > -inf everywhere: a softmax policy samples every outcome, "
                         "so KL(pi||p) would be inf; got -inf")
    out = {}
    for name in ESTIMATORS:
        zz = z.clone().requires_grad_(True)
        logpi = torch.log_softmax(zz, -1)
        weight = logpi.detach().exp()                          # the sampling distribution, not differentiated
        k = _estimators_unchecked(logpi, logp_ref)[name]
        surrogate = (weight * k).sum() if mode == "loss" else (weight * k.detach() * logpi).sum()
        (grad,) = torch.autograd.grad(surrogate, zz)
        out[name] = grad
    return out
