r"""Survival curves from right-censored times: Kaplan-Meier, its median, and the naive estimate that drops censored units.

Unit i is observed until :math:`t_i = \min(T_i, C_i)`, its failure time :math:`T_i` or its censoring time
:math:`C_i`, whichever comes first; :math:`e_i = 1` when the failure was seen. With :math:`d_j` failures at the
distinct failure time :math:`s_j` and :math:`n_j = \#\{i : t_i \ge s_j\}` units still at risk just before it (a unit
censored at :math:`s_j` counts as at risk there), the Kaplan-Meier estimate of :math:`S(t) = P(T > t)` is

.. math::
    \hat S(t) = \prod_{j:\, s_j \le t} \Big(1 - \frac{d_j}{n_j}\Big) .

It is consistent when censoring is independent of failure: a censored unit leaves the risk set without
counting as a failure, but it did count as a survivor up to its censoring time. Its median is the first
:math:`s_j` with :math:`\hat S(s_j) \le \tfrac12` (``inf`` if the curve never gets there).

The **naive** estimate drops the censored units and takes the empirical distribution of the observed failure
times. It is biased towards short lives: a unit is kept only when it failed before it was censored. With
:math:`T \sim \mathrm{Exp}(\lambda)` and :math:`C \sim \mathrm{Exp}(\gamma)` independent, the kept times are
:math:`\min(T, C)` given :math:`T < C`, which is :math:`\mathrm{Exp}(\lambda + \gamma)`; the censored fraction is
:math:`c = \gamma/(\lambda + \gamma)`, so the naive median is :math:`(1 - c)` times the true one,
:math:`\ln 2/\lambda` (:func:`naive_median_exponential`).

References: Kaplan and Meier, *Nonparametric estimation from incomplete observations*, JASA 53 (1958);
``scipy.stats.ecdf`` on ``scipy.stats.CensoredData`` computes the same estimate; Lillelund et al., *RULSurv*,
2024 (arXiv:2405.01614), on using censored bearings rather than dropping them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .validation import check_real

__all__ = ["kaplan_meier", "survival_at", "km_median", "naive_survival", "naive_median",
           "naive_median_exponential"]


def _times_events(times, events) -> tuple[np.ndarray, np.ndarray]:
    if torch.is_tensor(times):
        times = times.detach().cpu().numpy()
    if torch.is_tensor(events):
        events = events.detach().cpu().numpy()
    try:
        t = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"times must be an array of real numbers; got {type(times).__name__}") from None
    e = np.asarray(events)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"times must be a non-empty 1-D array; got shape {t.shape}")
    if e.shape != t.shape:
        raise ValueError(f"times and events must have the same shape; got {t.shape} and {e.shape}")
    if np.isnan(t).any():
        raise ValueError(f"times must not contain NaN; got {int(np.isnan(t).sum())} NaN value(s)")
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"times must be finite and >= 0; got min {t.min():.4g}, max {t.max():.4g}")
    if e.dtype != bool:
        if not np.isin(e, (0, 1)).all():
            raise ValueError("events must be booleans or 0/1 (1: failure observed, 0: censored); "
                             f"got values {np.unique(e)[:5].tolist()}")
        e = e.astype(bool)
    return t, e


def kaplan_meier(times, events) -> tuple[np.ndarray, np.ndarray]:
    r"""Kaplan-Meier estimate: the distinct failure times and :math:`\hat S` just after each.

    .. math::
        \hat S(s_j) = \prod_{l \le j} \Big(1 - \frac{d_l}{n_l}\Big)

    Parameters
    ----------
    times : array, shape (n,)
        Observed times :math:`\min(T_i, C_i) \ge 0`.
    events : array of bool or 0/1, shape (n,)
        True where the failure was observed, False where the unit was censored.

    Returns
    -------
    event_times : ndarray, shape (m,)
        The m distinct observed failure times, increasing (empty if no failure was observed).
    survival : ndarray, shape (m,)
        :math:`\hat S` at each of them (right-continuous: the value from that time on).

    >>> s, S = kaplan_meier([1, 2, 2, 3, 4], [1, 1, 0, 1, 0])
    >>> s.tolist(), S.round(4).tolist()
    ([1.0, 2.0, 3.0], [0.8, 0.6, 0.3])
    """
    t, e = _times_events(times, events)
    s, d = np.unique(t[e], return_counts=True)
    at_risk = t.size - np.searchsorted(np.sort(t), s, side="left")   # units with t_i >= s_j
    return s, np.cumprod(1.0 - d / at_risk)


def survival_at(x, event_times, survival) -> np.ndarray:
    r"""Evaluate a right-continuous step survival curve (1 before the first step) at the times ``x``.

    >>> survival_at([0.5, 1.0, 2.5, 9.0], [1.0, 2.0], [0.8, 0.6]).tolist()
    [1.0, 0.8, 0.6, 0.6]
    """
    s = np.asarray(event_times, dtype=np.float64)
    S = np.asarray(survival, dtype=np.float64)
    if s.shape != S.shape or s.ndim != 1:
        raise ValueError(f"event_times and survival must be 1-D of the same length; got {s.shape} and {S.shape}")
    xv = np.asarray(x, dtype=np.float64)
    idx = np.searchsorted(s, xv, side="right")          # steps at or before x
    return np.where(idx > 0, S[np.maximum(idx - 1, 0)], 1.0) if s.size else np.ones_like(xv)


def _median_of_curve(s: np.ndarray, S: np.ndarray) -> float:
    below = np.nonzero(S <= 0.5)[0]
    return float(s[below[0]]) if below.size else math.inf


def km_median(times, events) -> float:
    r"""Median of the Kaplan-Meier curve: the first failure time with :math:`\hat S \le 1/2`; ``inf`` if none.

    >>> km_median([1, 2, 2, 3, 4], [1, 1, 0, 1, 0])
    3.0
    """
    return _median_of_curve(*kaplan_meier(times, events))


def naive_survival(times, events) -> tuple[np.ndarray, np.ndarray]:
    r"""The naive curve: the empirical survival function of the observed failure times, censored units dropped.

    Returns the distinct observed failure times and :math:`1 - \hat F` just after each (the Kaplan-Meier curve
    of the failures alone).

    >>> s, S = naive_survival([1, 2, 2, 3, 4], [1, 1, 0, 1, 0])
    >>> s.tolist(), S.round(4).tolist()
    ([1.0, 2.0, 3.0], [0.6667, 0.3333, 0.0])
    """
    t, e = _times_events(times, events)
    return kaplan_meier(t[e], np.ones(int(e.sum()), dtype=bool))


def naive_median(times, events) -> float:
    r"""Median of the observed failure times, censored units dropped (the same rule as :func:`km_median`).

    >>> naive_median([1, 2, 2, 3, 4], [1, 1, 0, 1, 0])
    2.0
    """
    t, e = _times_events(times, events)
    if not e.any():
        raise ValueError("events must contain at least one observed failure for the naive median; got none")
    return _median_of_curve(*naive_survival(t, e))


def naive_median_exponential(mean_life: float, censored_fraction: float) -> float:
    r"""Large-sample naive median for exponential lives and exponential censoring: :math:`(1 - c)\,\ln 2 \cdot` mean.

    >>> round(naive_median_exponential(60.0, 0.4), 4)
    24.9533
    """
    mean_life = check_real("mean_life", mean_life, low=0.0, low_open=True)
    c = check_real("censored_fraction", censored_fraction, low=0.0, high=1.0, high_open=True)
    return (1.0 - c) * math.log(2.0) * mean_life
