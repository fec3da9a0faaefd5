r"""Scaling laws: power laws with an irreducible term, and two toys whose loss scales with model size.

**Power law plus constant.** Loss curves over a resource :math:`x` (parameters, rank, data, compute)
are fitted as

.. math:: L(x) = L_\infty + a\,x^{-\alpha}, \qquad a > 0,\ \alpha > 0,

by nonlinear least squares (:func:`scipy.optimize.curve_fit`). For a cross-entropy loss,
:math:`\mathrm{CE}(p, q) = H(p) + \mathrm{KL}(p \| q)`: the irreducible term :math:`L_\infty` estimates the
source's entropy and :math:`a x^{-\alpha}` the KL (Henighan et al., 2020). :func:`loglog_slope` is the
least-squares slope of :math:`\log y` against :math:`\log x`.

**Low-rank softmax source** (:func:`low_rank_source`). ``n_contexts`` contexts, ``vocab`` tokens, logits
:math:`Z = U\,\mathrm{diag}(\sigma)\,W^\top` with orthonormal :math:`U, W` and singular values
:math:`\sigma_i = c\,i^{-\gamma}`; the true next-token law is :math:`p(\cdot|x) = \mathrm{softmax}(Z_x / T)`.
The rank-:math:`r` model keeps the top :math:`r` singular triplets, :math:`q_r = \mathrm{softmax}(Z^{(r)}/T)`
(the Eckart-Young truncation of the logits, exact because the factors are known). Its population loss is
exact: :func:`cross_entropy_terms` sums over every token of every context, no sampling. For small logits
:math:`\mathrm{KL}(p\|q_r) \approx \tfrac12 \mathrm{Var}_{p}(\Delta)`, :math:`\Delta = (Z - Z^{(r)})/T`, whose context
average is close to :math:`\sum_{i>r}\sigma_i^2 / (2\,C\,V\,T^2)` (:func:`tail_energy`): the KL falls like the
spectrum's tail, :math:`r^{-(2\gamma - 1)}` when the vocabulary is large.

**Random-feature teacher-student regression** (Bahri et al., 2021). Latent inputs
:math:`x \sim \mathcal{N}(0, \Lambda)` in :math:`M` dimensions, :math:`\Lambda = \mathrm{diag}(i^{-(1+\alpha)})`
(:func:`power_law_spectrum`); teacher :math:`y = w^\top x`, :math:`w \sim \mathcal{N}(0, I_M)`. The student has
:math:`P` random features :math:`A x`, :math:`A = F/\sqrt{M}`, :math:`F_{ij} \sim \mathcal{N}(0,1)`, and predicts
:math:`\theta^\top A x`; :math:`\theta` is the minimum-norm least-squares fit on :math:`D` samples. The
population mean squared error is exact, :math:`L(\theta) = (w - A^\top\theta)^\top \Lambda\,(w - A^\top\theta)`
(:func:`population_mse`). ``features=None`` is the infinite-width student (min-norm regression on
:math:`x` itself, the limit :math:`P \to \infty`). :func:`infinite_data_mse` is the :math:`D \to \infty` loss
:math:`L_\infty(P)`, and for :math:`D > P + 1` Gaussian inputs give the exact variance-limited law
:func:`variance_limited_mse`, :math:`\mathbb{E}\,L = L_\infty(P)\,(1 + P/(D - P - 1))`.

References: Henighan et al., *Scaling Laws for Autoregressive Generative Modeling*, arXiv:2010.14701;
Bahri, Dyer, Kaplan, Lee, Sharma, *Explaining Neural Scaling Laws*, arXiv:2102.06701.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import curve_fit

from .divergences import entropy, kl
from .validation import check_int, check_log_probs, check_real, check_same_shape

__all__ = ["PowerLawFit", "power_law", "fit_power_law", "loglog_slope", "LowRankSource", "low_rank_source",
           "source_logits", "cross_entropy_terms", "tail_energy", "power_law_spectrum", "random_features",
           "population_mse", "min_norm_fit", "train_random_features", "infinite_data_mse", "variance_limited_mse"]


# ---------------------------------------------------------------- power laws

def _positive_vector(name: str, v, *, min_len: int = 1) -> np.ndarray:
    arr = np.asarray(v, dtype=float)
    if arr.ndim != 1 or arr.size < min_len:
        raise ValueError(f"{name} must be a 1-D array of at least {min_len} values; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or inf); got {int((~np.isfinite(arr)).sum())} bad value(s)")
    if (arr <= 0).any():
        raise ValueError(f"{name} must be > 0 everywhere; got min {arr.min():.4g}")
    return arr


def power_law(x, l_inf: float, a: float, alpha: float) -> np.ndarray:
    r""":math:`L_\infty + a\,x^{-\alpha}`, elementwise.

    >>> float(power_law(4.0, 1.0, 2.0, 0.5))
    2.0
    """
    return l_inf + a * np.asarray(x, dtype=float) ** (-alpha)


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`: ``l_inf + a * x**-alpha`` and the fit's root-mean-square residual."""

    l_inf: float
    a: float
    alpha: float
    rms: float

    def __call__(self, x) -> np.ndarray:
        return power_law(x, self.l_inf, self.a, self.alpha)


def fit_power_law(x, y, *, irreducible: bool = True) -> PowerLawFit:
    r"""Least-squares fit of :math:`y \approx L_\infty + a x^{-\alpha}` (``irreducible=False`` fixes :math:`L_\infty = 0`).

    Uses :func:`scipy.optimize.curve_fit` (trust-region reflective, bounds :math:`a, \alpha > 0`),
    started from the log-log line through the data (minus a floor just below ``min(y)``).

    Parameters
    ----------
    x, y : 1-D arrays of the same length (at least 3, 4 with ``irreducible``); ``x > 0``, ``y`` finite
        (and ``> 0`` when ``irreducible=False``).

    >>> xs = np.array([1, 2, 4, 8, 16, 32.0])
    >>> fit = fit_power_law(xs, 3.0 + 2.0 * xs ** -0.7)
    >>> round(fit.l_inf, 6), round(fit.a, 6), round(fit.alpha, 6)
    (3.0, 2.0, 0.7)
    """
    x = _positive_vector("x", x, min_len=4 if irreducible else 3)
    y = np.asarray(y, dtype=float)
    if y.shape != x.shape:
        raise ValueError(f"y must have the same shape as x; got {y.shape} and {x.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"y must be finite (no NaN or inf); got {int((~np.isfinite(y)).sum())} bad value(s)")
    if not isinstance(irreducible, bool):
        raise TypeError(f"irreducible must be True or False; got {irreducible!r}")
    scale = float(np.abs(y).max()) or 1.0
    ys = y / scale
    if irreducible:
        floor = ys.min() - 0.1 * (np.ptp(ys) or 1.0)
        slope, icpt = np.polyfit(np.log(x), np.log(ys - floor), 1)
        p0 = [floor, math.exp(icpt), max(-slope, 1e-3)]
        f = power_law
        bounds = ([-np.inf, 0.0, 0.0], [np.inf, np.inf, np.inf])
    else:
        y = _positive_vector("y", y)
        slope, icpt = np.polyfit(np.log(x), np.log(ys), 1)
        p0 = [math.exp(icpt), max(-slope, 1e-3)]
        f = lambda xx, a, alpha: power_law(xx, 0.0, a, alpha)  # noqa: E731
        bounds = ([0.0, 0.0], [np.inf, np.inf])
    params, _ = curve_fit(f, x, ys, p0=p0, bounds=bounds, method="trf", x_scale="jac",
                          ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=20_000)
    if not irreducible:
        params = np.concatenate([[0.0], params])
    l_inf, a, alpha = params[0] * scale, params[1] * scale, params[2]
    rms = float(np.sqrt(np.mean((power_law(x, l_inf, a, alpha) - y) ** 2)))
    return PowerLawFit(float(l_inf), float(a), float(alpha), rms)


def loglog_slope(x, y) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x` (``x, y > 0``, at least 2 points).

    >>> round(loglog_slope([1, 10, 100], [5.0, 0.5, 0.05]), 12)
    -1.0
    """
    x = _positive_vector("x", x, min_len=2)
    y = _positive_vector("y", y, min_len=2)
    if y.shape != x.shape:
        raise ValueError(f"y must have the same shape as x; got {y.shape} and {x.shape}")
    if np.ptp(x) == 0:
        raise ValueError("x must hold at least two distinct values; got one value repeated")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# ---------------------------------------------------------------- low-rank softmax source

@dataclass(frozen=True, eq=False)
class LowRankSource:
    """Factors of the logits ``Z = U diag(sigma) W^T``: ``u`` (C, k), ``sigma`` (k,), ``w`` (V, k), float64."""

    u: torch.Tensor
    sigma: torch.Tensor
    w: torch.Tensor


def low_rank_source(n_contexts: int, vocab: int, *, spectrum_decay: float, scale: float,
                    generator: torch.Generator) -> LowRankSource:
    r"""Random logits with singular values :math:`\sigma_i = c\,i^{-\gamma}`, :math:`i = 1..\min(C, V)`.

    ``U`` and ``W`` are the Q factors of Gaussian matrices drawn from ``generator`` (orthonormal columns).

    Parameters
    ----------
    n_contexts, vocab : int in [2, 4096]
    spectrum_decay : float in [0, 10]
        :math:`\gamma`.
    scale : float in (0, 1e4]
        :math:`c`, the largest singular value.

    >>> src = low_rank_source(8, 6, spectrum_decay=1.0, scale=2.0, generator=torch.Generator().manual_seed(0))
    >>> tuple(src.u.shape), tuple(src.w.shape), [round(s, 3) for s in src.sigma[:3].tolist()]
    ((8, 6), (6, 6), [2.0, 1.0, 0.667])
    """
    c = check_int("n_contexts", n_contexts, low=2, high=4096)
    v = check_int("vocab", vocab, low=2, high=4096)
    gamma = check_real("spectrum_decay", spectrum_decay, low=0.0, high=10.0)
    scale = check_real("scale", scale, low=0.0, high=1e4, low_open=True)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    k = min(c, v)
    u = torch.linalg.qr(torch.randn(c, c, generator=generator, dtype=torch.float64))[0][:, :k]
    w = torch.linalg.qr(torch.randn(v, v, generator=generator, dtype=torch.float64))[0][:, :k]
    sigma = scale * torch.arange(1, k + 1, dtype=torch.float64) ** (-gamma)
    return LowRankSource(u, sigma, w)


def source_logits(source: LowRankSource, rank: int | None = None, temperature: float = 1.0) -> torch.Tensor:
    r"""Logits :math:`Z^{(r)}/T`, with :math:`Z^{(r)} = U_{:, :r}\,\mathrm{diag}(\sigma_{:r})\,W_{:, :r}^\top`;
    ``rank=None`` keeps every triplet (the true source). Shape (C, V).

    >>> src = low_rank_source(4, 4, spectrum_decay=1.0, scale=1.0, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(source_logits(src, 4), source_logits(src)))
    True
    """
    if not isinstance(source, LowRankSource):
        raise TypeError(f"source must be a LowRankSource; got {type(source).__name__}")
    k = source.sigma.numel()
    r = k if rank is None else check_int("rank", rank, low=0, high=k)
    t = check_real("temperature", temperature, low=0.0, high=1e6, low_open=True)
    return (source.u[:, :r] * source.sigma[:r]) @ source.w[:, :r].T / t


def cross_entropy_terms(logp: torch.Tensor, logq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Cross-entropy :math:`-\sum_y p_y \log q_y`, entropy :math:`H(p)` and :math:`\mathrm{KL}(p\|q)`, per row.

    ``logp`` is the reference (the true source), ``logq`` the model; log-probabilities on the last axis,
    same shape. The cross-entropy is summed directly, independently of the other two, so that
    :math:`\mathrm{CE} = H + \mathrm{KL}` is a check, not a definition. Returns three tensors of shape
    ``logp.shape[:-1]``.

    >>> p = torch.tensor([0.5, 0.5], dtype=torch.float64).log(); q = torch.tensor([0.9, 0.1], dtype=torch.float64).log()
    >>> [round(t.item(), 6) for t in cross_entropy_terms(p, q)]
    [1.203973, 0.693147, 0.510826]
    """
    check_log_probs("logp", logp)
    check_log_probs("logq", logq)
    check_same_shape("logp", logp, "logq", logq)
    p = logp.exp()
    ce = -torch.where(p > 0, p * logq, torch.zeros((), dtype=p.dtype)).sum(-1)
    return ce, entropy(logp, validate=False), kl(logp, logq, validate=False)


def tail_energy(sigma, ranks) -> np.ndarray:
    r""":math:`S(r) = \sum_{i > r} \sigma_i^2` for each ``r`` in ``ranks`` (integers in [0, len(sigma)]).

    >>> tail_energy([3.0, 2.0, 1.0], [0, 1, 3]).tolist()
    [14.0, 5.0, 0.0]
    """
    s = np.asarray(sigma.detach().cpu() if torch.is_tensor(sigma) else sigma, dtype=float)
    if s.ndim != 1 or not np.isfinite(s).all():
        raise ValueError(f"sigma must be a finite 1-D array; got shape {s.shape}")
    rs = np.asarray(ranks)
    if rs.ndim != 1 or not np.issubdtype(rs.dtype, np.integer) or (rs < 0).any() or (rs > s.size).any():
        raise ValueError(f"ranks must be integers in [0, {s.size}]; got {np.asarray(ranks).tolist()}")
    tail = np.concatenate([np.cumsum((s ** 2)[::-1])[::-1], [0.0]])
    return tail[rs]


# ---------------------------------------------------------------- random-feature regression

def power_law_spectrum(dim: int, exponent: float) -> np.ndarray:
    r"""Eigenvalues :math:`\lambda_i = i^{-(1+\alpha)}`, :math:`i = 1..M` (``dim`` in [1, 10^5], ``exponent`` in (0, 10]).

    >>> power_law_spectrum(3, 1.0).tolist()
    [1.0, 0.25, 0.1111111111111111]
    """
    m = check_int("dim", dim, low=1, high=100_000)
    a = check_real("exponent", exponent, low=0.0, high=10.0, low_open=True)
    return np.arange(1, m + 1, dtype=float) ** (-(1.0 + a))


def random_features(n_features: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    r"""The feature map :math:`A = F/\sqrt{M}`, :math:`F_{ij} \sim \mathcal{N}(0, 1)`, shape (P, M)."""
    p = check_int("n_features", n_features, low=1, high=100_000)
    m = check_int("dim", dim, low=1, high=100_000)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    return rng.standard_normal((p, m)) / math.sqrt(m)


def _check_problem(spectrum, teacher, features) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    lam = _positive_vector("spectrum", spectrum)
    w = None
    if teacher is not None:
        w = np.asarray(teacher, dtype=float)
        if w.shape != lam.shape or not np.isfinite(w).all():
            raise ValueError(f"teacher must be None or a finite vector of shape {lam.shape} (one weight per latent "
                             f"dimension); got shape {w.shape}")
    if features is not None:
        a = np.asarray(features, dtype=float)
        if a.ndim != 2 or a.shape[1] != lam.size or not np.isfinite(a).all():
            raise ValueError(f"features must be None or a finite (P, {lam.size}) matrix; got shape {a.shape}")
        return lam, w, a
    return lam, w, None


def _teacher_mean_loss(g: np.ndarray, lam: np.ndarray, a: np.ndarray) -> float:
    # The student theta = G w has coefficients beta = A^T G w on x; its loss averaged over teachers w ~ N(0, I) is
    # tr((I - B)^T Lambda (I - B)) with B = A^T G, = tr(Lambda) - 2 tr(Lambda A^T G) + tr(G^T (A Lambda A^T) G).
    al = a * lam
    return max(float(lam.sum() - 2.0 * np.sum(al * g) + np.sum(g * ((al @ a.T) @ g))), 0.0)   # >= 0 up to rounding


def population_mse(theta, spectrum, teacher, features=None) -> float:
    r"""Exact population loss :math:`(w - A^\top\theta)^\top \Lambda (w - A^\top\theta)` of the student
    :math:`\theta^\top A x` (``features=None``: :math:`A = I`, the student is :math:`\theta^\top x`).

    >>> round(population_mse([1.0, 0.0], [1.0, 0.5], [1.0, 2.0]), 6)
    2.0
    """
    lam, w, a = _check_problem(spectrum, teacher, features)
    if w is None:
        raise ValueError("teacher must be a vector here (population_mse scores one student of one teacher); got None")
    th = np.asarray(theta, dtype=float)
    n = lam.size if a is None else a.shape[0]
    if th.shape != (n,) or not np.isfinite(th).all():
        raise ValueError(f"theta must be a finite vector of shape ({n},); got shape {th.shape}")
    d = w - (th if a is None else a.T @ th)
    return float(d @ (lam * d))


def min_norm_fit(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    r"""Minimum-norm least-squares :math:`\theta = X^+ y` (``numpy.linalg.lstsq``), ``inputs`` (D, P), ``targets`` (D,)."""
    x = np.asarray(inputs, dtype=float)
    y = np.asarray(targets, dtype=float)
    if x.ndim != 2 or y.shape[:1] != (x.shape[0],) or y.ndim > 2:
        raise ValueError(f"inputs must be (D, P) and targets (D,) or (D, K); got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("inputs and targets must be finite (no NaN or inf)")
    return np.linalg.lstsq(x, y, rcond=None)[0]


def train_random_features(spectrum, teacher, features, n_train: int, rng: np.random.Generator) -> float:
    r"""Draw ``n_train`` inputs :math:`x \sim \mathcal{N}(0, \Lambda)`, fit the min-norm student to the teacher's
    labels, return its exact population loss.

    ``features=None`` is the infinite-width student (regression on :math:`x`). ``teacher=None`` returns the
    loss averaged exactly over teachers :math:`w \sim \mathcal{N}(0, I)` (the fit is linear in the labels, so
    the student's coefficients are :math:`Bw` and the mean loss is :math:`\mathrm{tr}((I-B)^\top\Lambda(I-B))`).
    """
    lam, w, a = _check_problem(spectrum, teacher, features)
    d = check_int("n_train", n_train, low=1, high=100_000)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    x = rng.standard_normal((d, lam.size)) * np.sqrt(lam)
    if w is not None:
        theta = min_norm_fit(x if a is None else x @ a.T, x @ w)
        return population_mse(theta, lam, w, a)
    if a is None:
        # beta = X^+ X w: I - B is the projection onto the null space of X, so the mean loss is sum_i lambda_i (I - B)_ii
        q = np.linalg.qr(x.T)[0]                    # orthonormal basis of the row space of X, (M, min(D, M))
        return max(float(lam.sum() - lam @ np.sum(q * q, axis=1)), 0.0)   # >= 0 up to rounding
    # theta = G w with G = (X A^T)^+ X, shape (P, M)
    return _teacher_mean_loss(np.linalg.pinv(x @ a.T) @ x, lam, a)


def infinite_data_mse(spectrum, teacher, features) -> float:
    r""":math:`L_\infty(P) = \min_\theta (w - A^\top\theta)^\top\Lambda(w - A^\top\theta)`, the loss with unlimited
    data: :math:`\theta^* = (A\Lambda A^\top)^{+} A\Lambda w` (``teacher=None``: averaged over :math:`w \sim \mathcal{N}(0, I)`).

    >>> lam = power_law_spectrum(3, 1.0)
    >>> bool(np.isclose(infinite_data_mse(lam, None, np.eye(3)[:2]), lam[2]))      # keep two of three coordinates
    True
    """
    lam, w, a = _check_problem(spectrum, teacher, features)
    if a is None:
        return 0.0
    al = a * lam
    g = np.linalg.pinv(al @ a.T) @ al               # theta* = G w
    if w is not None:
        return population_mse(g @ w, lam, w, a)
    return _teacher_mean_loss(g, lam, a)


def variance_limited_mse(l_inf: float, n_features: int, n_train) -> np.ndarray:
    r"""Expected loss of least squares with :math:`P` Gaussian features on :math:`D > P + 1` samples when the
    best fit leaves the error :math:`L_\infty`: :math:`L_\infty\,(1 + P/(D - P - 1))`. Its excess over
    :math:`L_\infty` falls like :math:`1/D`.

    >>> float(variance_limited_mse(0.5, 3, 14))
    0.65
    """
    l = check_real("l_inf", l_inf, low=0.0)
    p = check_int("n_features", n_features, low=1)
    d = np.asarray(n_train, dtype=float)
    if (d <= p + 1).any():
        raise ValueError(f"n_train must be > n_features + 1 = {p + 1}; got min {d.min():g}")
    return l * (1.0 + p / (d - p - 1.0))
