r"""The Cauchy–Schwarz (CS) divergence: closed form, on a grid, and its kernel estimator from samples.

For densities :math:`p` (the reference) and :math:`q`,

.. math::
    D_{CS}(p \| q) = -\log \frac{\left(\int p\,q\right)^2}{\int p^2 \int q^2}
                   = -2\log\int p q + \log\int p^2 + \log\int q^2 \;\ge\; 0,

the "squared" convention of Yu et al. (2024) and of Principe's information-theoretic learning. It is
:math:`\ge 0` by the Cauchy–Schwarz inequality, zero iff :math:`p = q`, symmetric in its arguments, and
invariant to rescaling either density (so unnormalised densities give the same value). Some authors use
half of it (:math:`-\log(\int pq / \sqrt{\int p^2\int q^2})`); kllab does not.

* **Gaussians** (1-D): :math:`\int N(\mu_1,s_1^2)N(\mu_2,s_2^2) = N(\mu_1-\mu_2;\,0,\,s_1^2+s_2^2)` and
  :math:`\int N(\mu,s^2)^2 = 1/(2\sqrt{\pi}s)`, so

  .. math::
      D_{CS} = \frac{(\mu_1-\mu_2)^2}{s_1^2+s_2^2} + \log\frac{s_1^2+s_2^2}{2 s_1 s_2}.

  For equal variances this equals :math:`\mathrm{KL}(p\|q) = (\mu_1-\mu_2)^2/(2s^2)` exactly, and for any
  two 1-D Gaussians :math:`D_{CS} \le 2\min(\mathrm{KL}(p\|q), \mathrm{KL}(q\|p))` (the factor 2 belongs
  to the squared convention: the bound fails without it, e.g. :math:`\Delta=10, s_1=1, s_2=0.1`).
* **Kernel (information-potential) estimator.** With Gaussian kernel density estimates of width
  :math:`\sigma` (per dimension) of samples :math:`x_1..x_n \sim p`, :math:`y_1..y_m \sim q`, every
  integral is a mean of a Gram matrix with the kernel :math:`k(u) = \exp(-\|u\|^2 / 4\sigma^2)` (two
  width-:math:`\sigma` Gaussians convolve into one of variance :math:`2\sigma^2`; the normalising
  constants cancel between the three terms):

  .. math::
      \hat D_{CS} = -2\log \overline{K_{xy}} + \log \overline{K_{xx}} + \log \overline{K_{yy}}.

  This is *exactly* the CS divergence between the two kernel density estimates, hence
  :math:`\ge 0` for every sample (zero iff the two samples are equal as multisets). It estimates the CS
  divergence between the *smoothed* densities :math:`p * N(0,\sigma^2)` and :math:`q * N(0,\sigma^2)`,
  not between :math:`p` and :math:`q`: for Gaussians it converges to the closed form with both variances
  increased by :math:`\sigma^2`. Dropping the diagonals of :math:`K_{xx}, K_{yy}` (``unbiased=True``,
  U-statistics for :math:`\int p^2, \int q^2`) removes their self-similarity bias but breaks the
  Cauchy–Schwarz structure: the estimate can then be negative, typically when :math:`p = q` or close.
* **CS quadratic mutual information** :math:`I_{CS}(x;t) = D_{CS}(\hat p(x,t) \| \hat p(x)\hat p(t))`
  with product kernels:

  .. math::
      I_{CS} = \log\overline{K_x\circ K_t} + \log\overline{K_x} + \log\overline{K_t}
               - 2\log \frac1n\sum_i \Big(\frac{(K_x 1)_i}{n}\Big)\Big(\frac{(K_t 1)_i}{n}\Big) \;\ge 0.

Everything is computed in log space (``logsumexp``), so far-apart samples give large finite values
rather than ``log 0``; differentiable in the samples (for fitting).

References: J. C. Principe, *Information Theoretic Learning*, Springer 2010 (ch. 2-3); R. Jenssen et
al., *The Cauchy–Schwarz divergence and Parzen windowing*, J. Franklin Inst. 2006; S. Yu, X. Yu,
S. Løkse, R. Jenssen, J. C. Príncipe, *Cauchy–Schwarz Divergence Information Bottleneck for
Regression*, ICLR 2024, arXiv:2404.17951.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch

from .validation import check_bool, check_no_nan, check_positive

__all__ = ["cs_divergence_gaussian", "cs_divergence_grid", "cs_divergence_kernel", "cs_mutual_information",
           "gram_log_mean"]


def _as_tensor(x) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64)   # lists, arrays, numbers: float64


def cs_divergence_gaussian(mu_p, sigma_p, mu_q, sigma_q) -> torch.Tensor:
    r"""D_CS(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) in closed form (1-D; p is the reference, though D_CS is symmetric).

    .. math::
        \frac{(\mu_p-\mu_q)^2}{\sigma_p^2+\sigma_q^2} + \log\frac{\sigma_p^2+\sigma_q^2}{2\sigma_p\sigma_q}

    Arguments broadcast; scales must be > 0 and no argument may be NaN.

    >>> round(cs_divergence_gaussian(0.0, 1.0, 2.0, 1.0).item(), 6)   # equal variances: = KL = 2
    2.0
    """
    mu_p, sigma_p, mu_q, sigma_q = (_as_tensor(a) for a in (mu_p, sigma_p, mu_q, sigma_q))
    for name, a in (("mu_p", mu_p), ("sigma_p", sigma_p), ("mu_q", mu_q), ("sigma_q", sigma_q)):
        check_no_nan(name, a)
    for name, s in (("sigma_p", sigma_p), ("sigma_q", sigma_q)):
        if not (s > 0).all():
            raise ValueError(f"{name} must be > 0; got {s.min().item()!r}")
    v = sigma_p ** 2 + sigma_q ** 2
    return (mu_p - mu_q) ** 2 / v + torch.log(v / (2 * sigma_p * sigma_q))


def cs_divergence_grid(logp, logq) -> torch.Tensor:
    r"""D_CS(p ‖ q) of two densities given by their logs on the same uniform grid (last axis); p is the reference.

    .. math::
        -2\log\sum_k p_k q_k + \log\sum_k p_k^2 + \log\sum_k q_k^2

    The grid step cancels, and so does any normalising constant: ``logp`` and ``logq`` may be
    unnormalised. ``-inf`` is a legal value (density 0); disjoint supports give ``inf``. Each row needs
    at least one finite value. Returns shape ``logp.shape[:-1]``.

    >>> x = torch.linspace(-10, 10, 2001)
    >>> round(cs_divergence_grid(-x ** 2 / 2, -(x - 2) ** 2 / 2).item(), 6)
    2.0
    """
    logp, logq = _as_tensor(logp), _as_tensor(logq)
    if logp.shape != logq.shape:
        raise ValueError(f"logp and logq must have the same shape; got {tuple(logp.shape)} and {tuple(logq.shape)}")
    if logp.dim() == 0 or logp.shape[-1] < 2:
        raise ValueError(f"logp must have a last (grid) axis of length >= 2; got shape {tuple(logp.shape)}")
    for name, a in (("logp", logp), ("logq", logq)):
        check_no_nan(name, a)
        if (a == math.inf).any():
            raise ValueError(f"{name} must not contain +inf (an infinite density); got {int((a == math.inf).sum())}")
        if (a == -math.inf).all(-1).any():
            raise ValueError(f"{name} must have a finite value in every row (a density that is 0 everywhere); "
                             f"got a row of -inf only")
    cross = torch.logsumexp(logp + logq, -1)
    return -2 * cross + torch.logsumexp(2 * logp, -1) + torch.logsumexp(2 * logq, -1)


def _samples(name: str, x) -> torch.Tensor:
    x = _as_tensor(x)
    if x.dim() == 1:
        x = x[:, None]
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n,) or (n, d) with n >= 1; got shape {tuple(x.shape)}")
    check_no_nan(name, x)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite; got {int((~torch.isfinite(x)).sum())} infinite value(s)")
    return x


def _bandwidth(bandwidth, d: int, dtype) -> torch.Tensor:
    if torch.is_tensor(bandwidth) and bandwidth.dim() == 0:
        bandwidth = bandwidth.item()
    if isinstance(bandwidth, Real) and not isinstance(bandwidth, bool):
        bandwidth = [check_positive("bandwidth", bandwidth)] * d
    if not isinstance(bandwidth, (Sequence, torch.Tensor)) or len(bandwidth) != d:
        raise ValueError(f"bandwidth must be a number > 0 or one number > 0 per dimension ({d}); got {bandwidth!r}")
    for b in bandwidth:
        check_positive("bandwidth", float(b))
    return torch.as_tensor([float(b) for b in bandwidth], dtype=dtype)


def _log_gram(x: torch.Tensor, y: torch.Tensor, bw: torch.Tensor) -> torch.Tensor:
    # log k(x_i - y_j) with k(u) = exp(-sum_d u_d^2 / (4 sigma_d^2)): the convolution of two width-sigma kernels
    u = (x[:, None, :] - y[None, :, :]) / bw
    return -(u ** 2).sum(-1) / 4


def gram_log_mean(x, y, bandwidth, *, drop_diagonal: bool = False) -> torch.Tensor:
    r"""log of the mean of the Gram matrix :math:`k(x_i - y_j)`, :math:`k(u) = e^{-\|u/\sigma\|^2/4}`.

    Up to the kernel's constant :math:`(4\pi\sigma^2)^{-d/2}`, this is :math:`\log\int\hat p\hat q` for the
    width-σ Gaussian KDEs of the two samples (the *information potential*). ``drop_diagonal`` averages
    over :math:`i \ne j` only (needs ``x`` and ``y`` of the same length n ≥ 2).

    >>> round(gram_log_mean([0.0], [0.0], 1.0).item(), 6)
    0.0
    """
    x, y = _samples("x", x), _samples("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension; got {x.shape[1]} and {y.shape[1]}")
    bw = _bandwidth(bandwidth, x.shape[1], x.dtype)
    lk = _log_gram(x, y, bw)
    if check_bool("drop_diagonal", drop_diagonal):
        n = x.shape[0]
        if n != y.shape[0] or n < 2:
            raise ValueError(f"drop_diagonal needs x and y of the same length n >= 2; got {n} and {y.shape[0]}")
        lk = lk.masked_fill(torch.eye(n, dtype=torch.bool), -math.inf)
        return torch.logsumexp(lk.reshape(-1), 0) - math.log(n * (n - 1))
    return torch.logsumexp(lk.reshape(-1), 0) - math.log(lk.numel())


def cs_divergence_kernel(x, y, bandwidth, *, unbiased: bool = False) -> torch.Tensor:
    r"""Kernel estimate of D_CS(p ‖ q) from samples ``x`` ~ p (the reference) and ``y`` ~ q.

    .. math::
        \hat D_{CS} = -2\log\overline{K_{xy}} + \log\overline{K_{xx}} + \log\overline{K_{yy}},
        \qquad K_{ab}[i,j] = e^{-\|(a_i - b_j)/\sigma\|^2/4}

    Parameters
    ----------
    x : (n,) or (n, d) samples of p;  y : (m,) or (m, d) samples of q (same d).
    bandwidth : the KDE width σ > 0, one number or one per dimension (product kernel).
    unbiased : drop the diagonals of K_xx and K_yy (U-statistics). The default (False) is the exact CS
        divergence between the two KDEs, hence >= 0 for every sample; ``True`` can be negative.

    Returns a 0-d tensor, differentiable in ``x`` and ``y``.

    >>> round(cs_divergence_kernel([0.0, 1.0], [0.0, 1.0], 0.5).item(), 12)
    0.0
    """
    x, y = _samples("x", x), _samples("y", y)
    unbiased = check_bool("unbiased", unbiased)
    if unbiased and (x.shape[0] < 2 or y.shape[0] < 2):
        raise ValueError(f"unbiased=True needs at least 2 samples in x and y; got {x.shape[0]} and {y.shape[0]}")
    cross = gram_log_mean(x, y, bandwidth)
    return -2 * cross + gram_log_mean(x, x, bandwidth, drop_diagonal=unbiased) \
        + gram_log_mean(y, y, bandwidth, drop_diagonal=unbiased)


def cs_mutual_information(x, t, bandwidth_x: float, bandwidth_t: float) -> torch.Tensor:
    r"""Kernel estimate of the CS quadratic mutual information I_CS(x; t) = D_CS(p(x,t) ‖ p(x)p(t)).

    ``x`` (n,) or (n, d_x) and ``t`` (n,) or (n, d_t) are paired samples (row i of each is one draw of
    the pair); widths are the KDE widths σ_x, σ_t > 0. The result is the exact CS divergence between the
    joint KDE and the product of the marginal KDEs, so it is >= 0 for every sample.

    >>> abs(round(cs_mutual_information([0.0, 1.0], [5.0, 5.0], 1.0, 1.0).item(), 12))   # t constant: 0
    0.0
    """
    x, t = _samples("x", x), _samples("t", t)
    if x.shape[0] != t.shape[0]:
        raise ValueError(f"x and t must hold the same number of paired samples; got {x.shape[0]} and {t.shape[0]}")
    n = x.shape[0]
    lkx = _log_gram(x, x, _bandwidth(check_positive("bandwidth_x", bandwidth_x), x.shape[1], x.dtype))
    lkt = _log_gram(t, t, _bandwidth(check_positive("bandwidth_t", bandwidth_t), t.shape[1], t.dtype))
    joint = torch.logsumexp((lkx + lkt).reshape(-1), 0) - 2 * math.log(n)
    marg = torch.logsumexp(lkx.reshape(-1), 0) + torch.logsumexp(lkt.reshape(-1), 0) - 4 * math.log(n)
    rows = torch.logsumexp(lkx, 1) + torch.logsumexp(lkt, 1) - 2 * math.log(n)      # log (K_x 1)_i/n (K_t 1)_i/n
    cross = torch.logsumexp(rows, 0) - math.log(n)
    return joint + marg - 2 * cross
