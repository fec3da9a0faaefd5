"""Exponential families on a finite support, given by their sufficient statistics.

A family on the points :math:`x_1, \\dots, x_m` with sufficient statistic :math:`T(x) \\in \\mathbb{R}^p`
(the rows of ``stats``, shape ``(m, p)``) and base log-measure :math:`b(x)` (``log_base``, shape ``(m,)``,
zero by default) has the members

.. math::
    \\log p_\\theta(x_j) = \\theta \\cdot T(x_j) + b(x_j) - A(\\theta), \\qquad
    A(\\theta) = \\log \\sum_j e^{\\theta\\cdot T(x_j) + b(x_j)} ,

with :math:`\\nabla A(\\theta) = \\mathbb{E}_\\theta[T]` and :math:`\\nabla^2 A(\\theta) = \\mathrm{Cov}_\\theta(T) = I(\\theta)`,
the Fisher information of the natural parameter.

* **Moment matching.** The MLE of a sample :math:`x^{(1..n)}` solves :math:`\\mathbb{E}_{\\hat\\theta}[T] = \\bar T`
  (the log-likelihood :math:`n(\\theta\\cdot\\bar T - A(\\theta))` is concave), and the **information projection**
  of a target :math:`g`, :math:`\\theta^* = \\arg\\min_\\theta \\mathrm{KL}(g\\,\\|\\,p_\\theta)`, solves
  :math:`\\mathbb{E}_{\\theta^*}[T] = \\mathbb{E}_g[T]` (:func:`moment_match`, a damped Newton method).
  A solution exists iff the matched mean lies in the interior of the convex hull of the :math:`T(x_j)`; on a finite
  support a sample whose points all lie on one face of that hull (too few distinct points) has no MLE.
* **Asymptotic risk.** For :math:`n` i.i.d. draws of :math:`g`, :math:`\\sqrt n(\\hat\\theta-\\theta^*) \\to
  N(0, I^{-1}\\mathrm{Cov}_g(T) I^{-1})` and :math:`\\mathrm{KL}(p_{\\theta^*}\\|p_{\\hat\\theta}) \\approx
  \\tfrac12(\\hat\\theta-\\theta^*)^\\top I(\\hat\\theta-\\theta^*)`, so

  .. math::
      \\mathbb{E}\\,\\mathrm{KL}(p_{\\theta^*}\\,\\|\\,p_{\\hat\\theta}) = \\frac{\\mathrm{tr}\\big(I(\\theta^*)^{-1}\\,
      \\mathrm{Cov}_g(T)\\big)}{2n} + O(n^{-2})

  (:func:`risk_trace`, :func:`asymptotic_risk`). The swapped divergence :math:`\\mathrm{KL}(p_{\\hat\\theta}\\|p_{\\theta^*})`
  has the same quadratic form and so the same leading term. When :math:`g` is in the family,
  :math:`\\mathrm{Cov}_g(T) = I` and the trace is :math:`p`.

Conventions: float64 tensors; math order :math:`D(p\\|q)` with the first argument the reference; batched
parameters ``theta`` of shape ``(..., p)``.

References: Y. Sheena, *MLE convergence speed to information projection of exponential family: criterion
for model dimension and sample size*, arXiv:2105.08947 (2021); H. White, *Maximum likelihood estimation of
misspecified models*, Econometrica 50 (1982); L. D. Brown, *Fundamentals of statistical exponential families* (1986).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kllab.maths.validation import check_int, check_log_probs, check_real, check_choice, DIRECTIONS

__all__ = ["legendre_stats", "log_partition", "log_probs", "mean_stats", "fisher_information", "moment_match",
           "mle", "information_projection", "stats_covariance", "risk_trace", "asymptotic_risk", "kl_members",
           "sample_mean_stats"]


def _stats(stats) -> torch.Tensor:
    if not torch.is_tensor(stats):
        raise ValueError(f"stats must be a torch.Tensor of shape (m, p); got {type(stats).__name__}")
    if stats.ndim != 2 or stats.shape[1] < 1 or stats.shape[0] <= stats.shape[1]:
        raise ValueError(f"stats must have shape (m, p) with m > p >= 1 (m support points, p statistics); "
                         f"got shape {tuple(stats.shape)}")
    stats = stats.to(torch.float64)
    if not torch.isfinite(stats).all():
        raise ValueError("stats must be finite; got NaN or infinite value(s)")
    return stats


def _base(log_base, m: int) -> torch.Tensor:
    if log_base is None:
        return torch.zeros(m, dtype=torch.float64)
    if not torch.is_tensor(log_base) or log_base.shape != (m,):
        raise ValueError(f"log_base must be a tensor of shape ({m},); got "
                         f"{tuple(log_base.shape) if torch.is_tensor(log_base) else type(log_base).__name__}")
    if torch.isnan(log_base).any() or (log_base == math.inf).any():
        raise ValueError("log_base must not contain NaN or +inf")
    return log_base.to(torch.float64)


def _theta(theta, p: int) -> torch.Tensor:
    if not torch.is_tensor(theta):
        theta = torch.as_tensor(theta, dtype=torch.float64)
    if theta.ndim == 0 or theta.shape[-1] != p:
        raise ValueError(f"theta must have last axis of length p = {p} (one natural parameter per statistic); "
                         f"got shape {tuple(theta.shape)}")
    if not torch.isfinite(theta).all():
        raise ValueError("theta must be finite; got NaN or infinite value(s)")
    return theta.to(torch.float64)


def legendre_stats(x, degree: int) -> torch.Tensor:
    """Sufficient statistics :math:`T_k(x) = P_k(x)`, k = 1..degree (Legendre polynomials), shape ``(m, degree)``.

    They span the same functions as :math:`x, x^2, \\dots, x^{\\rm degree}`, so they define the same family (and the
    same MLE and risk) as the monomials, with a better-conditioned Fisher matrix on :math:`[-1, 1]`.

    >>> legendre_stats(torch.tensor([0.0, 1.0]), 2).tolist()
    [[0.0, -0.5], [1.0, 1.0]]
    """
    degree = check_int("degree", degree, low=1, high=40)
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 1 or not torch.isfinite(x).all():
        raise ValueError(f"x must be a finite 1-D tensor of support points; got shape {tuple(x.shape)}")
    v = np.polynomial.legendre.legvander(x.numpy(), degree)[:, 1:]
    return torch.from_numpy(np.ascontiguousarray(v))


def log_partition(theta, stats, log_base=None) -> torch.Tensor:
    """:math:`A(\\theta) = \\log\\sum_j e^{\\theta\\cdot T(x_j) + b(x_j)}`, shape ``theta.shape[:-1]``.

    >>> float(log_partition(torch.zeros(1), torch.tensor([[0.0], [1.0]])))  # log 2
    0.6931471805599453
    """
    stats = _stats(stats)
    theta = _theta(theta, stats.shape[1])
    return torch.logsumexp(theta @ stats.T + _base(log_base, stats.shape[0]), dim=-1)


def log_probs(theta, stats, log_base=None) -> torch.Tensor:
    """:math:`\\log p_\\theta(x_j)`, shape ``theta.shape[:-1] + (m,)``."""
    stats = _stats(stats)
    theta = _theta(theta, stats.shape[1])
    return torch.log_softmax(theta @ stats.T + _base(log_base, stats.shape[0]), dim=-1)


def mean_stats(theta, stats, log_base=None) -> torch.Tensor:
    """:math:`\\mathbb{E}_\\theta[T] = \\nabla A(\\theta)`, shape ``theta.shape``."""
    return log_probs(theta, stats, log_base).exp() @ _stats(stats)


def _cov(w: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
    # E[T T^T] - E[T] E[T]^T, one matrix product over the support (T centred at its support mean first,
    # which leaves the covariance unchanged and keeps the subtraction well conditioned)
    p = stats.shape[1]
    c = stats - stats.mean(0)
    mu = w @ c
    second = (w @ (c.unsqueeze(-1) * c.unsqueeze(-2)).reshape(-1, p * p)).reshape(*w.shape[:-1], p, p)
    return second - mu.unsqueeze(-1) * mu.unsqueeze(-2)


def fisher_information(theta, stats, log_base=None) -> torch.Tensor:
    """:math:`I(\\theta) = \\mathrm{Cov}_\\theta(T) = \\nabla^2 A(\\theta)`, shape ``theta.shape + (p,)``."""
    stats = _stats(stats)
    return _cov(log_probs(theta, stats, log_base).exp(), stats)


def stats_covariance(logp, stats) -> torch.Tensor:
    """:math:`\\mathrm{Cov}_g(T)` under a target with log-probabilities ``logp`` (shape ``(..., m)``): ``(..., p, p)``."""
    stats = _stats(stats)
    check_log_probs("logp", logp)
    if logp.shape[-1] != stats.shape[0]:
        raise ValueError(f"logp must have last axis m = {stats.shape[0]} (the support of stats); "
                         f"got shape {tuple(logp.shape)}")
    return _cov(logp.to(torch.float64).exp(), stats)


def moment_match(target_mean, stats, log_base=None, *, theta0=None, max_iter: int = 200, tol: float = 1e-10,
                 return_converged: bool = False):
    """The natural parameter :math:`\\theta` with :math:`\\mathbb{E}_\\theta[T] =` ``target_mean`` (shape ``(..., p)``).

    Damped Newton on the concave :math:`\\ell(\\theta) = \\theta\\cdot t - A(\\theta)` (step halving until
    :math:`\\ell` does not decrease), batched over the leading axes, from ``theta0`` (zero by default). Stops when every
    :math:`\\|\\mathbb{E}_\\theta T - t\\|_\\infty <` ``tol``. With ``return_converged`` it returns ``(theta, converged)``
    and leaves the rows that did not converge (a mean on or outside the hull's boundary: no solution) as they are;
    otherwise it raises if any row did not converge.
    """
    stats = _stats(stats)
    p = stats.shape[1]
    t = _theta(target_mean, p)
    max_iter = check_int("max_iter", max_iter, low=1, high=100_000)
    tol = check_real("tol", tol, low=0.0, low_open=True)
    b = _base(log_base, stats.shape[0])
    theta = torch.zeros_like(t) if theta0 is None else _theta(theta0, p).expand_as(t)
    eye = torch.eye(p, dtype=torch.float64)
    active = torch.arange(t.reshape(-1, p).shape[0])
    theta = theta.reshape(-1, p).clone()
    tt = t.reshape(-1, p)
    for _ in range(max_iter):                                        # Newton on the rows not yet converged
        th, ta = theta[active], tt[active]
        w = torch.softmax(th @ stats.T + b, dim=-1)
        grad = ta - w @ stats
        done = grad.abs().amax(-1) < tol
        active, th, ta, w, grad = active[~done], th[~done], ta[~done], w[~done], grad[~done]
        if active.numel() == 0:
            break
        step = torch.linalg.solve(_cov(w, stats) + 1e-12 * eye, grad.unsqueeze(-1)).squeeze(-1)
        ell = (th * ta).sum(-1) - torch.logsumexp(th @ stats.T + b, dim=-1)
        scale = torch.ones_like(ell)
        for _ in range(40):                                          # halve where the objective would decrease
            new = th + scale.unsqueeze(-1) * step
            new_ell = (new * ta).sum(-1) - torch.logsumexp(new @ stats.T + b, dim=-1)
            bad = ~(new_ell >= ell - 1e-12 * ell.abs().clamp(min=1.0))
            if not bool(bad.any()):
                break
            scale = torch.where(bad, scale / 2, scale)
        theta[active] = torch.where(bad.unsqueeze(-1), th, new)
    theta = theta.reshape(t.shape)
    w = torch.softmax(theta @ stats.T + b, dim=-1)
    converged = (t - w @ stats).abs().amax(-1) < tol * 10
    if return_converged:
        return theta, converged
    if not bool(converged.all()):
        raise ValueError(f"target_mean must lie inside the convex hull of the statistics (no moment-matching "
                         f"theta exists otherwise); {int((~converged).sum())} row(s) did not converge")
    return theta


def information_projection(logp, stats, log_base=None) -> torch.Tensor:
    """:math:`\\theta^* = \\arg\\min_\\theta \\mathrm{KL}(g\\|p_\\theta)` for a target with log-probabilities ``logp``.

    It matches the moments, :math:`\\mathbb{E}_{\\theta^*}[T] = \\mathbb{E}_g[T]`, shape ``logp.shape[:-1] + (p,)``.
    """
    stats = _stats(stats)
    check_log_probs("logp", logp)
    if logp.shape[-1] != stats.shape[0]:
        raise ValueError(f"logp must have last axis m = {stats.shape[0]}; got shape {tuple(logp.shape)}")
    return moment_match(logp.to(torch.float64).exp() @ stats, stats, log_base)


def sample_mean_stats(counts, stats) -> torch.Tensor:
    """:math:`\\bar T` of samples given by their ``counts`` on the support (shape ``(..., m)``, non-negative integers)."""
    stats = _stats(stats)
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.shape[-1] != stats.shape[0] or (counts < 0).any() or not torch.isfinite(counts).all():
        raise ValueError(f"counts must be non-negative with last axis m = {stats.shape[0]}; got shape "
                         f"{tuple(counts.shape)}")
    n = counts.sum(-1, keepdim=True)
    if (n <= 0).any():
        raise ValueError("counts must hold at least one sample per row; got an empty row")
    return counts @ stats / n


def mle(counts, stats, log_base=None, *, theta0=None):
    """MLE of the family from ``counts`` on the support: ``(theta_hat, exists)``, batched over leading axes.

    ``exists`` is False where the sample has at most p distinct points among points in general position
    (the mean then lies on the hull's boundary and the likelihood has no maximiser); those rows hold no estimate.
    """
    stats = _stats(stats)
    tbar = sample_mean_stats(counts, stats)
    distinct = (torch.as_tensor(counts) > 0).sum(-1)
    exists = distinct > stats.shape[1]
    theta = torch.zeros_like(tbar)
    if bool(exists.any()):
        theta[exists], ok = moment_match(tbar[exists], stats, log_base, theta0=theta0,
                                           return_converged=True)
        exists = exists.clone()
        exists[exists.clone()] = ok
    return theta, exists


def risk_trace(logp, stats, log_base=None) -> torch.Tensor:
    """:math:`\\mathrm{tr}(I(\\theta^*)^{-1}\\mathrm{Cov}_g(T))`: ``p`` when ``g`` is in the family."""
    theta = information_projection(logp, stats, log_base)
    fisher = fisher_information(theta, stats, log_base)
    cov = stats_covariance(logp, stats)
    return torch.linalg.solve(fisher, cov).diagonal(dim1=-2, dim2=-1).sum(-1)


def asymptotic_risk(logp, stats, n: int, log_base=None) -> torch.Tensor:
    """Leading term :math:`\\mathrm{tr}(I^{-1}\\mathrm{Cov}_g T)/(2n)` of :math:`\\mathbb{E}\\,\\mathrm{KL}(p_{\\theta^*}\\|p_{\\hat\\theta})`.

    >>> x = torch.linspace(-1, 1, 5); T = legendre_stats(x, 1)
    >>> g = log_probs(torch.tensor([0.3]), T)          # a target inside the family: trace p = 1
    >>> round(float(asymptotic_risk(g, T, 10)), 10)
    0.05
    """
    n = check_int("n", n, low=1)
    return risk_trace(logp, stats, log_base) / (2 * n)


def kl_members(theta_p, theta_q, stats, log_base=None, direction: str = "forward") -> torch.Tensor:
    """:math:`\\mathrm{KL}(p_{\\theta_p}\\|p_{\\theta_q})` (``"forward"``, ``theta_p`` the reference) or the swapped
    :math:`\\mathrm{KL}(p_{\\theta_q}\\|p_{\\theta_p})` (``"reverse"``), shape of the broadcast leading axes.

    For members of one family :math:`\\mathrm{KL}(p_a\\|p_b) = A(b) - A(a) - (b - a)\\cdot\\nabla A(a)` (a Bregman divergence).
    """
    check_choice("direction", direction, DIRECTIONS)
    if direction == "reverse":
        theta_p, theta_q = theta_q, theta_p
    lp, lq = log_probs(theta_p, stats, log_base), log_probs(theta_q, stats, log_base)
    return (lp.exp() * (lp - lq)).sum(-1).clamp(min=0.0)
