r"""Change detection with a divergence: a window's power spectrum as a pmf, compared with a healthy reference.

A vibration window :math:`x_0, \dots, x_{n-1}` (tapered by a Hann window :math:`w`) has the periodogram
:math:`P_k = |\sum_t w_t x_t e^{-2\pi i k t / n}|^2` at the bins :math:`k = 1, \dots, \lfloor n/2 \rfloor`
(the mean, bin 0, is dropped). Smoothing over ``bandwidth`` neighbouring bins (a moving average, shorter at the
two edges) and normalising gives a pmf over frequency,

.. math::
    c_k = \frac{\bar P_k}{\sum_j \bar P_j}, \qquad \bar P_k = \frac{1}{|B_k|}\sum_{j \in B_k} P_j ,

with :math:`B_k = \{k - \lfloor b/2 \rfloor, \dots, k - \lfloor b/2 \rfloor + b - 1\}` cut to the bins that exist
(NumPy's ``convolve(..., mode="same")`` window). The reference :math:`h` is the mean pmf of healthy windows (a
mixture, :func:`reference_logpmf`). The detector statistic of a window is a divergence between ``c`` and ``h``;
in kllab's math order, with the healthy spectrum the reference ``p``:

* ``"forward"``: :math:`\mathrm{KL}(h \| c)`, large when the window *lost* mass the reference has (a vanishing peak);
* ``"reverse"``: :math:`\mathrm{KL}(c \| h)`, large when the window put mass where the reference has little (a new
  peak);
* ``"js"``: the Jensen-Shannon divergence, symmetric and bounded by :math:`\log 2`.

For :math:`c = h + \delta` close to :math:`h`, both KLs are :math:`\tfrac12\sum_k \delta_k^2/h_k` to second order;
their difference is the third-order term :math:`\mathrm{KL}(c\|h) - \mathrm{KL}(h\|c) \approx \tfrac16\sum_k \delta_k^3/h_k^2`,
positive when the change is mass gained on a few bins (a new peak) and negative when it is mass lost there.

An alarm is raised when the statistic exceeds :math:`\mu + k\,\sigma`, the mean and standard deviation of the
statistic over healthy calibration windows (:func:`alarm_threshold`). Whatever the statistic's distribution,
Cantelli's inequality bounds the false-alarm probability at the true :math:`\mu, \sigma`:
:math:`P(D \ge \mu + k\sigma) \le 1/(1 + k^2)` (:func:`cantelli_bound`).

The divergence here is a *detector statistic*, computed from fixed spectra; nothing is fitted by minimising it.

References: Lillelund, Pannullo, Jakobsen, Morante, Pedersen, *RULSurv: A probabilistic survival-based method for
early censoring-aware prediction of remaining useful life in ball bearings*, 2024 (arXiv:2405.01614); Welch, *The
use of fast Fourier transform for the estimation of power spectra*, IEEE Trans. Audio Electroacoust. 15 (1967);
Cantelli's inequality, e.g. Grimmett and Stirzaker, *Probability and Random Processes*, 3rd ed., 7.11.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .divergences import divergence
from .validation import check_choice, check_int, check_log_probs, check_real, check_real_array

__all__ = ["DETECTION_DIRECTIONS", "smooth_bins", "spectrum_logpmf", "reference_logpmf",
           "divergence_to_reference", "alarm_threshold", "first_alarm", "cantelli_bound"]

DETECTION_DIRECTIONS = ("forward", "reverse", "js")
"""``"forward"`` is KL(healthy ‖ window), ``"reverse"`` KL(window ‖ healthy), ``"js"`` the Jensen-Shannon divergence."""


def _array(name: str, x, *, min_ndim: int = 1) -> np.ndarray:
    return check_real_array(name, x, min_ndim=min_ndim)


def smooth_bins(power, bandwidth: int) -> np.ndarray:
    r"""Moving average of ``power`` over ``bandwidth`` neighbouring bins on the last axis (shorter at the edges).

    Bin k averages the bins :math:`k - \lfloor b/2 \rfloor, \dots, k - \lfloor b/2 \rfloor + b - 1` that exist, the
    window of ``np.convolve(power, np.ones(b), mode="same")`` divided by how many bins it covers.

    Parameters
    ----------
    power : array, shape (..., K)
        Non-negative values (a periodogram).
    bandwidth : int in [1, K]

    Returns
    -------
    ndarray, shape (..., K)

    >>> smooth_bins([0.0, 3.0, 0.0, 0.0], 2).tolist()
    [0.0, 1.5, 1.5, 0.0]
    """
    p = _array("power", power)
    if (p < 0).any():
        raise ValueError(f"power must be >= 0 (a power spectrum); got min {p.min():.4g}")
    b = check_int("bandwidth", bandwidth, low=1, high=p.shape[-1])
    if b == 1:
        return p.copy()
    k = p.shape[-1]
    lo = np.arange(k) - b // 2                      # first bin of each window (may be < 0)
    hi = np.minimum(lo + b, k)                      # one past its last bin
    lo = np.maximum(lo, 0)
    c = np.concatenate([np.zeros(p.shape[:-1] + (1,)), np.cumsum(p, axis=-1)], axis=-1)
    return (c[..., hi] - c[..., lo]) / (hi - lo)


def spectrum_logpmf(windows, bandwidth: int = 1, *, taper: bool = True) -> torch.Tensor:
    r"""Log-pmf over frequency of each window's (smoothed) periodogram; bins 1..n//2, the mean dropped.

    .. math::
        c_k = \bar P_k / \textstyle\sum_j \bar P_j, \qquad P_k = \big|\textstyle\sum_t w_t x_t e^{-2\pi i k t/n}\big|^2

    Parameters
    ----------
    windows : array or Tensor, shape (..., n), n >= 4
        Real signal windows (one per row).
    bandwidth : int in [1, n//2]
        Bins averaged by :func:`smooth_bins` (1: the raw periodogram).
    taper : bool
        Multiply by a Hann window first (``np.hanning(n)``), which limits the leakage of strong lines.

    Returns
    -------
    Tensor, float64, shape (..., n//2)
        Log-probabilities (``-inf`` where the smoothed power is exactly 0).

    >>> t = np.arange(64)
    >>> lp = spectrum_logpmf(np.sin(2 * np.pi * 8 * t / 64), taper=False)
    >>> int(lp.argmax()) + 1, round(float(lp.exp().max()), 6)
    (8, 1.0)
    """
    x = _array("windows", windows)
    n = x.shape[-1]
    if n < 4:
        raise ValueError(f"windows must have at least 4 samples on the last axis; got {n}")
    if not isinstance(taper, bool):
        raise TypeError(f"taper must be True or False; got {taper!r} ({type(taper).__name__})")
    if taper:
        x = x * np.hanning(n)
    power = np.abs(np.fft.rfft(x, axis=-1)[..., 1:n // 2 + 1]) ** 2
    power = smooth_bins(power, bandwidth)
    total = power.sum(-1, keepdims=True)
    if (total <= 0).any():
        raise ValueError(f"windows must carry power outside the mean (bin 0); got {int((total <= 0).sum())} "
                         f"window(s) that are constant")
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(power / total))


def reference_logpmf(logp_healthy) -> torch.Tensor:
    r"""Log of the mean pmf of healthy windows (the mixture :math:`h = \frac1m\sum_i c_i`), over the first axis.

    Parameters
    ----------
    logp_healthy : Tensor, shape (m, K)
        Log-pmfs of m >= 1 healthy windows.

    Returns
    -------
    Tensor, shape (K,)

    >>> lp = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64).log()
    >>> [round(v, 12) for v in reference_logpmf(lp).exp().tolist()]
    [0.7, 0.3]
    """
    lp = logp_healthy if torch.is_tensor(logp_healthy) else torch.as_tensor(logp_healthy, dtype=torch.float64)
    if lp.ndim != 2 or lp.shape[0] < 1:
        raise ValueError(f"logp_healthy must have shape (windows, bins) with at least one window; got {tuple(lp.shape)}")
    check_log_probs("logp_healthy", lp)
    return torch.logsumexp(lp, 0) - math.log(lp.shape[0])


def divergence_to_reference(logp_windows, logp_ref, direction: str = "reverse") -> torch.Tensor:
    r"""Divergence between each window's spectrum and the healthy reference; ``logp_ref`` is the reference p.

    ``"forward"``: :math:`\mathrm{KL}(h\|c)`; ``"reverse"``: :math:`\mathrm{KL}(c\|h)`; ``"js"``: :math:`\mathrm{JS}(h, c)`,
    with :math:`h` = ``logp_ref`` and :math:`c` = a row of ``logp_windows`` (through :func:`kllab.maths.divergences.divergence`).

    Parameters
    ----------
    logp_windows : Tensor, shape (..., K)
    logp_ref : Tensor, shape (K,) or any shape (..., K) that broadcasts against ``logp_windows``
        (one reference per bearing: shape (B, 1, K) against windows of shape (B, T, K)).
    direction : {"forward", "reverse", "js"}

    Returns
    -------
    Tensor, shape logp_windows.shape[:-1]

    >>> h = torch.tensor([0.5, 0.5]).log(); c = torch.tensor([[0.9, 0.1]]).log()
    >>> [round(divergence_to_reference(c, h, d).item(), 4) for d in DETECTION_DIRECTIONS]
    [0.5108, 0.3681, 0.1017]
    """
    check_choice("direction", direction, DETECTION_DIRECTIONS)
    lw = logp_windows if torch.is_tensor(logp_windows) else torch.as_tensor(logp_windows, dtype=torch.float64)
    lr = logp_ref if torch.is_tensor(logp_ref) else torch.as_tensor(logp_ref, dtype=torch.float64)
    if lw.ndim < 1 or lr.ndim < 1:
        raise ValueError(f"logp_windows and logp_ref must have a bins axis; got shapes {tuple(lw.shape)} "
                         f"and {tuple(lr.shape)}")
    try:
        shape = torch.broadcast_shapes(lw.shape, lr.shape)
    except RuntimeError:
        shape = None
    if shape is None or shape != lw.shape:
        raise ValueError(f"logp_ref must have the same number of bins as logp_windows and broadcast against it; "
                         f"got shapes {tuple(lr.shape)} and {tuple(lw.shape)}")
    check_log_probs("logp_windows", lw)
    check_log_probs("logp_ref", lr)
    return divergence(lr.expand_as(lw), lw, direction, validate=False)


def alarm_threshold(healthy_stats, k: float) -> float:
    r"""The alarm level :math:`\mu + k\sigma` of a detector statistic, from its healthy values.

    :math:`\mu` is their mean and :math:`\sigma` their standard deviation (``ddof=1``).

    Parameters
    ----------
    healthy_stats : array, shape (m,) or any shape with m >= 2 values in all
    k : float >= 0

    >>> alarm_threshold([1.0, 2.0, 3.0], 2.0)
    4.0
    """
    s = _array("healthy_stats", healthy_stats).ravel()
    if s.size < 2:
        raise ValueError(f"healthy_stats must hold at least 2 values (for a standard deviation); got {s.size}")
    k = check_real("k", k, low=0.0)
    return float(s.mean() + k * s.std(ddof=1))


def first_alarm(stats, threshold: float, start=0, stop=None) -> np.ndarray:
    r"""Index of the first window in ``[start, stop)`` whose statistic exceeds ``threshold``; -1 if none.

    Parameters
    ----------
    stats : array, shape (..., T)
        One statistic per window, in time order on the last axis.
    threshold : float
    start, stop : int or int array of shape stats.shape[:-1], with 0 <= start <= stop <= T
        The windows searched, per row (``stop=None``: to the end). One row per bearing, with its own onset as
        ``start`` and its own failure as ``stop``.

    Returns
    -------
    ndarray of int, shape stats.shape[:-1]

    >>> first_alarm([[0.1, 0.5, 0.2, 0.9], [0.1, 0.1, 0.1, 0.1]], 0.4, start=2).tolist()
    [3, -1]
    >>> first_alarm([[0.1, 0.5, 0.2, 0.9], [0.1, 0.5, 0.1, 0.1]], 0.4, start=[2, 0], stop=[3, 4]).tolist()
    [-1, 1]
    """
    s = _array("stats", stats)
    threshold = check_real("threshold", threshold)
    t = s.shape[-1]
    bounds = []
    for name, v, default in (("start", start, 0), ("stop", stop, t)):
        v = default if v is None else v
        a = np.asarray(v)
        if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name} must be an integer or an integer array; got {v!r}")
        if a.ndim and a.shape != s.shape[:-1]:
            raise ValueError(f"{name} must be an integer or have shape {s.shape[:-1]}; got shape {a.shape}")
        if (a < 0).any() or (a > t).any():
            raise ValueError(f"{name} must be in [0, {t}]; got values from {a.min()} to {a.max()}")
        bounds.append(np.broadcast_to(a, s.shape[:-1]))
    lo, hi = bounds
    if (lo > hi).any():
        raise ValueError("start must be <= stop in every row; got start > stop")
    idx = np.arange(t)
    above = (s > threshold) & (idx >= lo[..., None]) & (idx < hi[..., None])
    if t == 0:
        return np.full(s.shape[:-1], -1, dtype=np.int64)
    return np.where(above.any(-1), above.argmax(-1), -1)


def cantelli_bound(k: float) -> float:
    r"""Cantelli's one-sided bound :math:`P(D - \mu \ge k\sigma) \le 1/(1 + k^2)` on the false-alarm rate, k >= 0.

    >>> cantelli_bound(3.0)
    0.1
    """
    k = check_real("k", k, low=0.0)
    return 1.0 / (1.0 + k * k)
