r"""Optimal transport with Gaussians in closed form, and the W2 projection of a 1-D mixture onto them.

Part of :mod:`kllab.maths.transport`: :func:`w2_gaussian` (Bures), :func:`entropic_ot_gaussian`,
:func:`sinkhorn_divergence_gaussian`, :func:`w2_to_gaussian`, :func:`w2_gaussian_projection` (quantile
matching), :func:`monge_map_1d`.
"""

from __future__ import annotations

import math

import torch

from ..distributions import GaussianMixture1D
from ..validation import check_int, check_positive, check_real
from .sinkhorn import D64, _as64

__all__ = ["w2_gaussian", "entropic_ot_gaussian", "sinkhorn_divergence_gaussian", "w2_to_gaussian", "w2_gaussian_projection", "monge_map_1d"]


def w2_gaussian(mu_p, sigma_p, mu_q, sigma_q, *, squared: bool = False) -> torch.Tensor:
    r"""W2 between 1-D Gaussians in closed form (the Bures-Wasserstein formula); p is the reference.

    .. math::
        W_2^2\big(\mathcal N(\mu_p, \sigma_p^2), \mathcal N(\mu_q, \sigma_q^2)\big)
        = (\mu_p - \mu_q)^2 + (\sigma_p - \sigma_q)^2

    (in d dimensions :math:`\|m_p - m_q\|^2 + \mathrm{tr}(\Sigma_p + \Sigma_q - 2(\Sigma_p^{1/2}\Sigma_q
    \Sigma_p^{1/2})^{1/2})`, POT's ``ot.gaussian.bures_wasserstein_distance``). Arguments broadcast.

    >>> w2_gaussian(0.0, 1.0, 3.0, 5.0).item()
    5.0
    """
    mp, sp, mq, sq = (_as64(a) for a in (mu_p, sigma_p, mu_q, sigma_q))
    if (sp <= 0).any() or (sq <= 0).any():
        raise ValueError("sigma_p and sigma_q must be > 0")
    w2sq = (mp - mq) ** 2 + (sp - sq) ** 2
    return w2sq if squared else w2sq.sqrt()


def entropic_ot_gaussian(mu_p, sigma_p, mu_q, sigma_q, eps: float) -> torch.Tensor:
    r"""Entropic OT between 1-D Gaussians for the squared cost, in closed form; p is the reference.

    The optimal plan of :math:`\min_P \mathbb E_P(x - y)^2 + \varepsilon\,\mathrm{KL}(P \| p \otimes q)` is
    Gaussian with covariance c, and the KL is the mutual information :math:`-\tfrac12\log(1 - \rho^2)`:

    .. math::
        \mathrm{OT}_\varepsilon = (\mu_p - \mu_q)^2 + \sigma_p^2 + \sigma_q^2 - 2c
        - \frac{\varepsilon}{2}\log\Big(1 - \frac{c^2}{\sigma_p^2\sigma_q^2}\Big), \qquad
        c = \frac{\sqrt{\varepsilon^2 + 16\,\sigma_p^2\sigma_q^2} - \varepsilon}{4}

    (set the derivative in c to zero: :math:`2c^2 + \varepsilon c - 2\sigma_p^2\sigma_q^2 = 0`). As
    ε → 0, c → σ_p σ_q and the value → :func:`w2_gaussian` squared. Arguments broadcast.

    >>> bool(abs(entropic_ot_gaussian(0.0, 1.0, 3.0, 5.0, 1e-9) - 25.0) < 1e-6)
    True
    """
    eps = check_positive("eps", eps)
    mp, sp, mq, sq = (_as64(a) for a in (mu_p, sigma_p, mu_q, sigma_q))
    if (sp <= 0).any() or (sq <= 0).any():
        raise ValueError("sigma_p and sigma_q must be > 0")
    prod = sp * sq
    c = ((eps ** 2 + 16 * prod ** 2).sqrt() - eps) / 4
    return (mp - mq) ** 2 + sp ** 2 + sq ** 2 - 2 * c - 0.5 * eps * torch.log1p(-(c / prod) ** 2)


def sinkhorn_divergence_gaussian(mu_p, sigma_p, mu_q, sigma_q, eps: float) -> torch.Tensor:
    r"""The debiased Sinkhorn divergence between 1-D Gaussians (squared cost), in closed form.

    .. math::
        S_\varepsilon = \mathrm{OT}_\varepsilon(p, q) - \tfrac12\mathrm{OT}_\varepsilon(p, p)
        - \tfrac12\mathrm{OT}_\varepsilon(q, q)

    with each term from :func:`entropic_ot_gaussian`. Zero iff the Gaussians are equal.

    >>> sinkhorn_divergence_gaussian(1.0, 2.0, 1.0, 2.0, 0.5).item()
    0.0
    """
    return (entropic_ot_gaussian(mu_p, sigma_p, mu_q, sigma_q, eps)
            - 0.5 * entropic_ot_gaussian(mu_p, sigma_p, mu_p, sigma_p, eps)
            - 0.5 * entropic_ot_gaussian(mu_q, sigma_q, mu_q, sigma_q, eps))


def _quadrature(target: GaussianMixture1D, n: int):
    """x-grid covering 14 sd of every component, p(x) on it, and Phi^{-1}(F_p(x)) computed tail-safely."""
    lo = float((target.means - 14 * target.sigmas).min())
    hi = float((target.means + 14 * target.sigmas).max())
    x = torch.linspace(lo, hi, n, dtype=D64)
    px = target.log_prob(x).exp()
    cdf, sf = target.cdf(x), target.sf(x)
    z = torch.where(cdf <= 0.5, torch.special.ndtri(cdf.clamp_min(1e-300)),
                    -torch.special.ndtri(sf.clamp_min(1e-300)))
    return x, px, z


def w2_to_gaussian(target: GaussianMixture1D, mu, sigma, *, n: int = 20001) -> torch.Tensor:
    r"""Squared W2 between a 1-D mixture p (the reference) and :math:`\mathcal N(\mu, \sigma^2)`, by quadrature.

    On the line the optimal map is monotone, :math:`T = F_q^{-1}\circ F_p`, so

    .. math::
        W_2^2(p, q) = \int_0^1 \big(F_p^{-1}(u) - \mu - \sigma\,\Phi^{-1}(u)\big)^2\,du
        = \int \big(x - \mu - \sigma\,\Phi^{-1}(F_p(x))\big)^2 p(x)\,dx ,

    the second form evaluated by the trapezoid rule on ``n`` points. Differentiable in μ and σ, which
    broadcast.

    >>> from kllab.maths.distributions import GaussianMixture1D
    >>> g = GaussianMixture1D([1.0], [2.0])
    >>> round(w2_to_gaussian(g, 4.0, 6.0).item(), 6)        # (1-4)^2 + (2-6)^2
    25.0
    """
    if not isinstance(target, GaussianMixture1D):
        raise ValueError(f"target must be a GaussianMixture1D; got {type(target).__name__}")
    n = check_int("n", n, low=101)
    mu, sigma = _as64(mu), _as64(sigma)
    x, px, z = _quadrature(target, n)
    gap = x - mu[..., None] - sigma[..., None] * z
    return torch.trapezoid(gap ** 2 * px, x, dim=-1)


def w2_gaussian_projection(target: GaussianMixture1D, *, n: int = 20001) -> tuple[float, float, float]:
    r"""The Gaussian closest to a 1-D mixture p in W2: quantile matching, in closed form up to quadrature.

    Minimising :math:`\int_0^1 (F_p^{-1}(u) - \mu - \sigma\,\Phi^{-1}(u))^2\,du` is a least-squares fit of
    the quantile function by a line in :math:`\Phi^{-1}(u)`:

    .. math::
        \mu^* = \mathbb E_p[X], \qquad \sigma^* = \int_0^1 F_p^{-1}(u)\,\Phi^{-1}(u)\,du
        = \mathbb E_p\big[X\,\Phi^{-1}(F_p(X))\big], \qquad
        W_2^2(p, \mathcal N(\mu^*, \sigma^{*2})) = \mathrm{Var}_p - \sigma^{*2}

    (the residual by Pythagoras in :math:`L^2(0, 1)`). The forward-KL Gaussian fit matches the variance
    instead, :math:`\sigma = \sqrt{\mathrm{Var}_p} \ge \sigma^*`, with equality iff p is Gaussian.

    Returns
    -------
    (mu, sigma, residual) : floats
        The projection and :math:`W_2^2` from p to it.

    >>> from kllab.maths.distributions import two_modes
    >>> [round(v, 3) + 0.0 for v in w2_gaussian_projection(two_modes(3.0))]
    [0.0, 2.974, 1.155]
    """
    if not isinstance(target, GaussianMixture1D):
        raise ValueError(f"target must be a GaussianMixture1D; got {type(target).__name__}")
    n = check_int("n", n, low=101)
    x, px, z = _quadrature(target, n)
    mu = float(torch.trapezoid(x * px, x))
    sigma = float(torch.trapezoid((x - mu) * z * px, x))
    var = float(torch.trapezoid((x - mu) ** 2 * px, x))
    return mu, sigma, var - sigma ** 2


def monge_map_1d(target: GaussianMixture1D, mu: float, sigma: float, x) -> torch.Tensor:
    r"""The optimal (Monge) map from :math:`q = \mathcal N(\mu, \sigma^2)` to the mixture p on the line.

    .. math::
        T(x) = F_p^{-1}\big(\Phi((x - \mu)/\sigma)\big)

    optimal for every convex cost (W1, W2, ...): it sends the u-quantile of q to the u-quantile of p.
    :math:`T(x) - x` is where OT pushes a generator sample at x.

    >>> from kllab.maths.distributions import two_modes
    >>> round(monge_map_1d(two_modes(3.0), 3.0, 1.0, 3.0).item(), 6) + 0.0   # q's median to p's median
    0.0
    """
    mu, sigma = check_real("mu", mu), check_positive("sigma", sigma)
    z = (_as64(x) - mu) / sigma
    return torch.where(z <= 0, target.quantile(0.5 * torch.special.erfc(-z / math.sqrt(2.0))),
                       _quantile_from_sf(target, 0.5 * torch.special.erfc(z / math.sqrt(2.0))))


def _quantile_from_sf(target: GaussianMixture1D, tail: torch.Tensor) -> torch.Tensor:
    """F_p^{-1}(1 - tail), solved on the survival function so that a tail below 1e-16 keeps its digits."""
    lo = torch.full_like(tail, float(target.means.min()) - 40.0 * float(target.sigmas.max()))
    hi = torch.full_like(tail, float(target.means.max()) + 40.0 * float(target.sigmas.max()))
    for _ in range(110):
        mid = 0.5 * (lo + hi)
        below = target.sf(mid) > tail
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    x = 0.5 * (lo + hi)
    return torch.where(tail == 0, torch.full_like(x, math.inf), x)
