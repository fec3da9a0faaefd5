r"""Gaussian kernel density estimation, its KL risk against a Gaussian target, and the large-dimension theory.

The estimator of a density :math:`\rho` on :math:`\mathbb{R}^d` from data :math:`y_1, \dots, y_n` is

.. math::
    \hat\rho_h(x) = \frac1n \sum_{i=1}^n \mathcal N(x;\, y_i,\, h^2 I_d), \qquad
    \log\hat\rho_h(x) = \operatorname{logsumexp}_i\Big(-\frac{\|x-y_i\|^2}{2h^2}\Big) - \log n - \frac d2\log(2\pi h^2),

computed in log space (log-sum-exp), so that a bandwidth far below the nearest-neighbour distance gives a
finite log-density instead of ``log(0)``. The bandwidth :math:`h` is the kernel's standard deviation in the
data's units (``sklearn.neighbors.KernelDensity(bandwidth=h)``; ``scipy.stats.gaussian_kde`` instead scales its
kernel by the data's sample covariance).

KL risk. The target :math:`\rho = \mathcal N(0, I_d)` is the reference, as everywhere in kllab:
:math:`\mathrm{KL}(\rho\,\|\,\hat\rho_h) = \mathbb E_{x\sim\rho}[\log\rho(x) - \log\hat\rho_h(x)]`, which
:func:`gaussian_kl_risk` returns per test point (the caller averages). Averaged over data sets it is the
expected KL risk :math:`R_n(h)`, bracketed by two closed forms (Jensen's inequality both ways):

.. math::
    \underbrace{\tfrac d2\Big[\log(1+h^2) - \tfrac{h^2}{1+h^2}\Big]}_{\mathrm{KL}(\rho\,\|\,\rho * K_h),\ n\to\infty}
    \;\le\; R_n(h) \;\le\;
    \underbrace{\tfrac d2\Big[\log h^2 + \tfrac{2}{h^2} - 1\Big]}_{R_1(h),\ \text{one data point}} .

Large dimensions (Biroli & Mézard, 2024). With :math:`n = e^{\alpha d}` points, :math:`\hat\rho_h(x)` is a sum of
exponentially many terms, like a random energy model at inverse temperature :math:`1/h^2`. For unit-variance
Gaussian data, the large-deviation rate of the points that dominate the sum is

.. math::
    I^*(h) = \frac{1}{2(1+h^2)^2} - \frac{1}{2(1+h^2)} + \frac12\log\Big(1 + \frac1{h^2}\Big),

(the KL per dimension between the kernel-tilted law :math:`\mathcal N(x/(1+h^2),\, h^2/(1+h^2))` and the data's).
Below :math:`h_G(\alpha)`, the root of :math:`I^*(h_G) = \alpha`, a few nearest points carry the whole sum
(condensation, extreme-value statistics); the second moment condenses below :math:`h_{\rm CLT} = \sqrt2\,h_G`,
where the central limit theorem fails. The per-dimension KL tends to the smoothed value
:math:`\tfrac12[\log(1+h^2) - h^2/(1+h^2)]` for :math:`h \ge h_G` and to
:math:`\alpha + u_c/(2h^2) + \tfrac12\log h^2 - \tfrac12` below, with :math:`u_c = h_G^2(1+2h_G^2)/(1+h_G^2)^2` the
typical smallest squared distance per dimension; its minimiser is :math:`h^* = \sqrt{u_c} < h_G`. These formulas
are our derivation in this convention (unit-variance data, kernel variance :math:`h^2`); the paper's own
parametrisation may scale :math:`h` differently.

Reference: G. Biroli, M. Mézard. *Kernel Density Estimators in Large Dimensions.* arXiv:2408.05807 (2024).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from .validation import check_int, check_positive, check_real, check_real_array

__all__ = ["squared_distances", "log_density", "max_weight", "loo_log_density", "gaussian_kl_risk",
           "smoothed_kl", "single_point_kl", "rate_function", "condensation_bandwidth", "clt_bandwidth",
           "asymptotic_kl_per_dim", "asymptotic_optimal_bandwidth", "optimal_bandwidth"]

_LOG_2PI = math.log(2 * math.pi)


def _points(name: str, x, dim: int | None = None) -> np.ndarray:
    a = check_real_array(name, x, ndim=2)
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one point of at least one coordinate; got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns (the data's dimension); got shape {a.shape}")
    return a


def _bandwidths(bandwidth) -> tuple[np.ndarray, bool]:
    """The bandwidths as a 1-D float64 array, and whether a scalar was given."""
    scalar = np.ndim(bandwidth) == 0
    h = check_real_array("bandwidth", np.atleast_1d(bandwidth), ndim=1)
    if h.size == 0 or (h <= 0).any():
        raise ValueError(f"bandwidth must be > 0 (a kernel standard deviation); got {bandwidth!r}")
    return h, scalar


def squared_distances(x, data) -> np.ndarray:
    r"""Squared Euclidean distances :math:`\|x_j - y_i\|^2`, shape ``(m, n)``, for ``x`` (m, d) and ``data`` (n, d).

    >>> squared_distances([[0.0, 0.0]], [[3.0, 4.0]])
    array([[25.]])
    """
    y = _points("data", data)
    x = _points("x", x, y.shape[1])
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(sq, 0.0, out=sq)


def _log_kernel_sums(sq: np.ndarray, h: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """log(1/n sum_i N(x; y_i, h^2 I)) and the largest normalised weight, each of shape (len(h), m)."""
    n = sq.shape[1]
    near = sq.min(1)                                   # the largest term of the sum, for every bandwidth
    logs, wmax = np.empty((h.size, sq.shape[0])), np.empty((h.size, sq.shape[0]))
    buf = np.empty_like(sq)
    for k, hk in enumerate(h):
        np.subtract(near[:, None], sq, out=buf)
        buf *= 1.0 / (2.0 * hk * hk)
        np.exp(buf, out=buf)                           # each term divided by the largest one: in (0, 1]
        total = buf.sum(1)
        logs[k] = np.log(total) - near / (2.0 * hk * hk) - math.log(n) - 0.5 * dim * (_LOG_2PI + 2.0 * math.log(hk))
        wmax[k] = 1.0 / total
    return logs, wmax


def log_density(x, data, bandwidth) -> np.ndarray:
    r"""Log-density :math:`\log\hat\rho_h(x)` of the Gaussian KDE of ``data`` at the points ``x``.

    .. math:: \log\hat\rho_h(x) = \operatorname{logsumexp}_i(-\|x-y_i\|^2/2h^2) - \log n - \tfrac d2\log(2\pi h^2)

    Parameters
    ----------
    x : array, shape (m, d)
        Points where the density is evaluated.
    data : array, shape (n, d)
        The data :math:`y_i`.
    bandwidth : float or array of shape (k,)
        Kernel standard deviation(s) :math:`h > 0`.

    Returns
    -------
    array, shape (m,) for a scalar bandwidth, (k, m) for k bandwidths (the distances are computed once).

    >>> round(float(log_density([[0.0]], [[0.0]], 1.0)[0]), 6) == round(-0.5 * math.log(2 * math.pi), 6)
    True
    """
    h, scalar = _bandwidths(bandwidth)
    sq = squared_distances(x, data)
    logs, _ = _log_kernel_sums(sq, h, np.shape(data)[1])
    return logs[0] if scalar else logs


def max_weight(x, data, bandwidth) -> np.ndarray:
    r"""Condensation indicator: the largest share :math:`\max_i w_i(x)` of one data point in :math:`\hat\rho_h(x)`.

    .. math:: w_i(x) = \frac{e^{-\|x-y_i\|^2/2h^2}}{\sum_j e^{-\|x-y_j\|^2/2h^2}} \in [1/n,\ 1]

    Near 1: one point carries the estimate (condensed, a spike); near :math:`1/n`: a smooth average.
    Shapes as in :func:`log_density`.

    >>> float(max_weight([[0.0]], [[0.0], [10.0]], 0.1)[0])
    1.0
    """
    h, scalar = _bandwidths(bandwidth)
    sq = squared_distances(x, data)
    _, w = _log_kernel_sums(sq, h, np.shape(data)[1])
    return w[0] if scalar else w


def loo_log_density(data, bandwidth) -> np.ndarray:
    r"""Leave-one-out log-density :math:`\log\hat\rho_{h,-i}(y_i)` of each data point, from the other n - 1.

    .. math:: \log\hat\rho_{h,-i}(y_i) = \log\frac{1}{n-1}\sum_{j\ne i}\mathcal N(y_i;\, y_j,\, h^2 I)

    Its mean is the leave-one-out log-likelihood, an estimate (up to the constant :math:`-H(\rho)`) of
    :math:`-R_{n-1}(h)` that needs no known target. Shapes: ``data`` (n, d) with n >= 2; returns (n,) or (k, n).

    >>> abs(float(loo_log_density([[0.0], [0.0]], 1.0)[0]) + 0.5 * math.log(2 * math.pi)) < 1e-12
    True
    """
    y = _points("data", data)
    if y.shape[0] < 2:
        raise ValueError(f"data must hold at least 2 points for a leave-one-out estimate; got shape {y.shape}")
    h, scalar = _bandwidths(bandwidth)
    sq = squared_distances(y, y)
    np.fill_diagonal(sq, np.inf)                      # drop each point's own kernel: exp(-inf) = 0
    logs, _ = _log_kernel_sums(sq, h, y.shape[1])
    logs += math.log(y.shape[0]) - math.log(y.shape[0] - 1)   # 1/(n-1), not 1/n
    return logs[0] if scalar else logs


def gaussian_kl_risk(x, data, bandwidth) -> np.ndarray:
    r"""Per-point KL integrand :math:`\log\rho(x) - \log\hat\rho_h(x)` against the target :math:`\rho = \mathcal N(0, I_d)`.

    The target is the reference: the mean over test points :math:`x \sim \mathcal N(0, I_d)` (drawn independently of
    ``data``) is an unbiased Monte Carlo estimate of :math:`\mathrm{KL}(\rho\,\|\,\hat\rho_h)`; divide by ``d`` for the
    per-dimension KL. Shapes as in :func:`log_density`.

    >>> x = np.zeros((1, 2)); float(gaussian_kl_risk(x, x, 1.0)[0])
    0.0
    """
    x = _points("x", x)
    log_rho = -0.5 * (x * x).sum(1) - 0.5 * x.shape[1] * _LOG_2PI
    return log_rho - log_density(x, data, bandwidth)


def smoothed_kl(bandwidth: float, dim: int) -> float:
    r"""Closed form :math:`\mathrm{KL}(\mathcal N(0,I_d)\,\|\,\mathcal N(0,(1+h^2)I_d)) = \tfrac d2[\log(1+h^2) - h^2/(1+h^2)]`.

    The n -> infinity limit of the expected KL risk at fixed d, and a lower bound on it at every n.

    >>> smoothed_kl(1.0, 2) == math.log(2) - 0.5
    True
    """
    h = check_positive("bandwidth", bandwidth)
    dim = check_int("dim", dim, low=1)
    t = h * h
    return 0.5 * dim * (math.log1p(t) - t / (1.0 + t))


def single_point_kl(bandwidth: float, dim: int) -> float:
    r"""Closed form expected KL risk from one data point, :math:`R_1(h) = \tfrac d2[\log h^2 + 2/h^2 - 1]`.

    An upper bound on the expected risk :math:`R_n(h)` at every n (the log of a mean is at least the mean of the logs).

    >>> single_point_kl(1.0, 2)
    1.0
    """
    h = check_positive("bandwidth", bandwidth)
    dim = check_int("dim", dim, low=1)
    return 0.5 * dim * (2.0 * math.log(h) + 2.0 / (h * h) - 1.0)


def rate_function(bandwidth: float) -> float:
    r"""Large-deviation rate :math:`I^*(h) = \frac{1}{2(1+h^2)^2} - \frac{1}{2(1+h^2)} + \frac12\log(1+1/h^2)` (per dimension).

    Decreasing from :math:`+\infty` (h -> 0) to 0 (h -> infinity).

    >>> round(rate_function(1.0), 6)
    0.221574
    """
    h = check_positive("bandwidth", bandwidth)
    t = 1.0 + h * h
    return 0.5 / (t * t) - 0.5 / t + 0.5 * math.log1p(1.0 / (h * h))


def _alpha(alpha) -> float:
    return check_real("alpha", alpha, low=1e-6, high=50.0)


def condensation_bandwidth(alpha: float) -> float:
    r"""Condensation threshold :math:`h_G(\alpha)`: the root of :math:`I^*(h_G) = \alpha` (root finding, Brent).

    ``alpha`` = (log n)/d, in [1e-6, 50].

    >>> abs(rate_function(condensation_bandwidth(0.5)) - 0.5) < 1e-12
    True
    """
    a = _alpha(alpha)
    return brentq(lambda h: rate_function(h) - a, 1e-4, 1e4, xtol=1e-14, rtol=1e-14)


def clt_bandwidth(alpha: float) -> float:
    r"""Threshold :math:`h_{\rm CLT}(\alpha) = \sqrt2\,h_G(\alpha)` below which the central limit theorem fails.

    The second moment of a kernel term at bandwidth h is the first moment at :math:`h/\sqrt2`, which condenses at
    :math:`h/\sqrt2 = h_G`.

    >>> abs(clt_bandwidth(0.5) / condensation_bandwidth(0.5) - math.sqrt(2)) < 1e-12
    True
    """
    return math.sqrt(2.0) * condensation_bandwidth(alpha)


def _edge(alpha: float) -> tuple[float, float]:
    g2 = condensation_bandwidth(alpha) ** 2
    return g2, g2 * (1.0 + 2.0 * g2) / (1.0 + g2) ** 2


def asymptotic_kl_per_dim(bandwidth: float, alpha: float) -> float:
    r"""The d -> infinity limit of the per-dimension KL risk at :math:`n = e^{\alpha d}`.

    .. math::
        \lim \tfrac1d R_n(h) = \begin{cases} \tfrac12[\log(1+h^2) - h^2/(1+h^2)] & h \ge h_G(\alpha) \\
        \alpha + u_c/(2h^2) + \tfrac12\log h^2 - \tfrac12 & h < h_G(\alpha) \end{cases}

    continuous at :math:`h_G`.

    >>> h = condensation_bandwidth(0.5)
    >>> abs(asymptotic_kl_per_dim(h, 0.5) - asymptotic_kl_per_dim(h * (1 - 1e-9), 0.5)) < 1e-8
    True
    """
    h = check_positive("bandwidth", bandwidth)
    a = _alpha(alpha)
    g2, uc = _edge(a)
    t = h * h
    if t >= g2:
        return 0.5 * (math.log1p(t) - t / (1.0 + t))
    return a + uc / (2.0 * t) + 0.5 * math.log(t) - 0.5


def asymptotic_optimal_bandwidth(alpha: float) -> float:
    r"""Minimiser of :func:`asymptotic_kl_per_dim`: :math:`h^* = \sqrt{u_c} = h_G\sqrt{1+2h_G^2}/(1+h_G^2) < h_G`.

    >>> h = asymptotic_optimal_bandwidth(0.5); h < condensation_bandwidth(0.5)
    True
    """
    return math.sqrt(_edge(_alpha(alpha))[1])


def optimal_bandwidth(risk: Callable[[float], float], low: float, high: float, *, xatol: float = 1e-3) -> float:
    r"""The bandwidth in ``[low, high]`` minimising a scalar ``risk(h)`` (bounded Brent minimisation).

    ``risk`` is any function of one bandwidth, e.g. the mean of :func:`gaussian_kl_risk` on fixed test points and
    data (common random numbers make it a smooth curve), or minus the mean of :func:`loo_log_density`.

    >>> round(optimal_bandwidth(lambda h: (h - 0.7) ** 2, 0.1, 2.0, xatol=1e-8), 6)
    0.7
    """
    lo = check_positive("low", low)
    hi = check_real("high", high, low=lo, low_open=True)
    tol = check_real("xatol", xatol, low=0.0, low_open=True, high=0.1 * (hi - lo))
    if not callable(risk):
        raise TypeError(f"risk must be a function of one bandwidth; got {type(risk).__name__}")
    res = minimize_scalar(lambda h: float(risk(h)), bounds=(lo, hi), method="bounded", options={"xatol": tol})
    return float(res.x)
