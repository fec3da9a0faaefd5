r"""Mutual information, the data-processing inequality and its strong form, and the
information-theoretic generalisation bound.

Conventions: natural logarithms (nats); discrete laws are passed as log-probabilities; the
divergence ``kl_mvn(p, q)`` is D(p‖q), p the reference (the first argument), as everywhere in kllab.

Mutual information of a discrete joint law :math:`p(x, y)` (last two axes):

.. math::
    I(X;Y) = \sum_{x,y} p(x,y) \log\frac{p(x,y)}{p(x)p(y)} = H(X) + H(Y) - H(X,Y).

Gaussian channel :math:`Y = W X + s Z`, :math:`X \sim N(m, \Sigma)`, :math:`Z \sim N(0, I)`:

.. math::
    I(X;Y) = \tfrac12 \log\det\bigl(I + W\Sigma W^\top / s^2\bigr)
    \quad(\text{scalar: } \tfrac12\log(1 + \mathrm{SNR})).

Data-processing inequality (DPI): for any channel K, :math:`D(PK\|QK) \le D(P\|Q)`. The strong DPI
holds with the contraction coefficient :math:`\eta_{KL}(Q, K) = \sup_{P \ne Q} D(PK\|QK)/D(P\|Q) \le 1`.
Closed forms used here:

* binary symmetric channel with crossover p (sup over both laws): :math:`\eta = (1 - 2p)^2`
  (Ahlswede & Gács 1976);
* Gaussian reference :math:`Q = N(m, \Sigma)` through :math:`Y = WX + sZ`: :math:`\eta` is the largest
  squared canonical correlation of (X, Y), :math:`\lambda_{\max}/(1 + \lambda_{\max})` with
  :math:`\lambda` the eigenvalues of :math:`W\Sigma W^\top / s^2` (scalar: SNR/(1 + SNR)); for jointly
  Gaussian pairs the hypercontractivity constant equals the squared maximal correlation (Anantharam,
  Gohari, Kamath & Nair 2013). Mean shifts of Q along the top canonical direction attain it.

Information-theoretic generalisation bound (Xu & Raginsky 2017): if the loss is σ-sub-Gaussian,
:math:`|\mathbb E\,\mathrm{gen}| \le \sqrt{2\sigma^2 I(W;S)/n}` for a learner W trained on n samples S.

References: Polyanskiy & Wu, *Information Theory* (2024), ch. 33; He & Goldfeld, arXiv:2404.03176.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .validation import check_int, check_real

__all__ = [
    "mutual_information", "channel_joint", "bsc", "sdpi_bsc", "gaussian_channel_mi", "gaussian_mi",
    "sdpi_gaussian", "sdpi_gaussian_layer", "kl_mvn", "noisy_linear_layer", "noisy_chain", "ChainKL",
    "generalization_bound",
]


def _t(name: str, x, min_ndim: int = 0) -> torch.Tensor:
    if not torch.is_tensor(x):
        try:
            x = torch.as_tensor(x, dtype=torch.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a real array or tensor; got {type(x).__name__}") from None
    x = x.to(torch.float64)
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} axes; got shape {tuple(x.shape)}")
    if torch.isnan(x).any():
        raise ValueError(f"{name} must not contain NaN; got {int(torch.isnan(x).sum())} NaN value(s)")
    return x


def _check_finite(name: str, x: torch.Tensor) -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite; got {int((~torch.isfinite(x)).sum())} infinite value(s)")


def _check_cov(name: str, cov: torch.Tensor, dim: int) -> torch.Tensor:
    if cov.shape != (dim, dim):
        raise ValueError(f"{name} must have shape ({dim}, {dim}); got {tuple(cov.shape)}")
    _check_finite(name, cov)
    if not torch.allclose(cov, cov.T, rtol=1e-10, atol=1e-12 * max(1.0, cov.abs().max().item())):
        raise ValueError(f"{name} must be symmetric; got an asymmetry of {(cov - cov.T).abs().max().item():.3g}")
    chol, info = torch.linalg.cholesky_ex(cov)
    if info.item() != 0:
        raise ValueError(f"{name} must be positive definite; got smallest eigenvalue "
                         f"{torch.linalg.eigvalsh(cov).min().item():.3g}")
    return chol


def mutual_information(log_joint) -> torch.Tensor:
    r"""I(X;Y) in nats of a discrete joint law given as log-probabilities over its last two axes.

    .. math:: I = \sum_{x,y} p(x,y)\,[\log p(x,y) - \log p(x) - \log p(y)]

    Parameters
    ----------
    log_joint : (..., nx, ny) log p(x, y), normalised over the last two axes; ``-inf`` is allowed.

    Returns
    -------
    (...) tensor of mutual informations (>= 0).

    >>> round(mutual_information(torch.tensor([[0.5, 0.0], [0.0, 0.5]]).log()).item(), 6)  # log 2
    0.693147
    """
    lj = _t("log_joint", log_joint, min_ndim=2)
    if (lj == math.inf).any():
        raise ValueError("log_joint must hold log-probabilities (<= 0); got +inf")
    total = torch.logsumexp(lj.flatten(-2), -1)
    if not torch.allclose(total, torch.zeros_like(total), atol=1e-6):
        raise ValueError(f"log_joint must be normalised over its last two axes (logsumexp 0); got "
                         f"{total.flatten()[(total.abs()).flatten().argmax()].item():.3g}; did you pass "
                         f"probabilities? take .log() first")
    lx = torch.logsumexp(lj, -1, keepdim=True)
    ly = torch.logsumexp(lj, -2, keepdim=True)
    p = lj.exp()
    term = torch.where(p > 0, p * (lj - lx - ly), torch.zeros_like(p))
    return term.sum((-2, -1)).clamp_min(0.0)


def channel_joint(log_px, log_channel) -> torch.Tensor:
    """log p(x, y) = log p(x) + log K(y|x): the joint law of an input and a channel's output.

    Parameters
    ----------
    log_px : (nx,) log-probabilities of the input.
    log_channel : (nx, ny) log K(y|x), each row normalised.

    >>> channel_joint(torch.tensor([0.5, 0.5]).log(), bsc(0.0)).exp()
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000]], dtype=torch.float64)
    """
    lp = _t("log_px", log_px)
    lk = _t("log_channel", log_channel)
    if lp.ndim != 1 or lk.ndim != 2 or lk.shape[0] != lp.shape[0]:
        raise ValueError(f"log_px must have shape (nx,) and log_channel (nx, ny); got {tuple(lp.shape)} "
                         f"and {tuple(lk.shape)}")
    for name, v in (("log_px", lp[None]), ("log_channel", lk)):
        s = torch.logsumexp(v, -1)
        if not torch.allclose(s, torch.zeros_like(s), atol=1e-6):
            raise ValueError(f"{name} must be normalised over its last axis; got logsumexp up to "
                             f"{s.abs().max().item():.3g}")
    return lp[:, None] + lk


def bsc(p: float) -> torch.Tensor:
    """log K(y|x) of the binary symmetric channel with crossover probability p in [0, 1] (2 x 2)."""
    p = check_real("p", p, low=0.0, high=1.0)
    k = torch.tensor([[1 - p, p], [p, 1 - p]], dtype=torch.float64)
    return k.log()


def sdpi_bsc(p: float) -> float:
    r"""Contraction coefficient of KL through the binary symmetric channel BSC(p): :math:`(1 - 2p)^2`.

    >>> sdpi_bsc(0.1)
    0.64
    """
    p = check_real("p", p, low=0.0, high=1.0)
    return round((1 - 2 * p) ** 2, 15)


def gaussian_channel_mi(snr) -> torch.Tensor:
    r"""I(X;Y) = ½ log(1 + SNR) in nats for the scalar Gaussian channel with Gaussian input.

    >>> round(gaussian_channel_mi(1.0).item(), 6)   # ½ log 2
    0.346574
    """
    s = _t("snr", snr)
    _check_finite("snr", s)
    if (s < 0).any():
        raise ValueError(f"snr must be >= 0; got {s.min().item()!r}")
    return 0.5 * torch.log1p(s)


def gaussian_mi(cov_x, weight, noise_std: float) -> torch.Tensor:
    r"""I(X;Y) for :math:`Y = WX + sZ`, :math:`X \sim N(\cdot, \Sigma)`:
    :math:`\tfrac12\log\det(I + W\Sigma W^\top/s^2)`.

    Parameters
    ----------
    cov_x : (d, d) covariance of X. weight : (w, d). noise_std : s > 0.
    """
    w_, cov, s = _layer_args(cov_x, weight, noise_std)
    snr = w_ @ cov @ w_.T / s ** 2
    eye = torch.eye(w_.shape[0], dtype=torch.float64)
    return 0.5 * torch.linalg.slogdet(eye + snr)[1]


def sdpi_gaussian(snr) -> torch.Tensor:
    r"""Contraction coefficient SNR/(1 + SNR) of KL (and of mutual information) through a scalar
    Gaussian channel whose reference input is Gaussian.

    >>> sdpi_gaussian(3.0).item()
    0.75
    """
    s = _t("snr", snr)
    if (s < 0).any():
        raise ValueError(f"snr must be >= 0; got {s.min().item()!r}")
    return torch.where(torch.isinf(s), torch.ones_like(s), s / (1 + s))


def _layer_args(cov, weight, noise_std):
    w_ = _t("weight", weight)
    if w_.ndim != 2:
        raise ValueError(f"weight must have shape (width_out, width_in); got {tuple(w_.shape)}")
    _check_finite("weight", w_)
    c = _t("cov", cov)
    _check_cov("cov", c, w_.shape[1])
    s = check_real("noise_std", noise_std, low=0.0, low_open=True)
    return w_, c, s


def sdpi_gaussian_layer(cov, weight, noise_std: float) -> float:
    r"""Contraction coefficient :math:`\lambda_{\max}/(1+\lambda_{\max})` of KL through the noisy layer
    :math:`Y = WX + sZ` at the Gaussian reference :math:`N(\cdot, \Sigma)`, :math:`\lambda` the
    eigenvalues of :math:`W\Sigma W^\top/s^2`.

    >>> sdpi_gaussian_layer(torch.eye(1), torch.tensor([[2.0]]), 1.0)
    0.8
    """
    w_, c, s = _layer_args(cov, weight, noise_std)
    lam = torch.linalg.eigvalsh(w_ @ c @ w_.T / s ** 2).max().clamp_min(0.0).item()
    return lam / (1 + lam)


def kl_mvn(mean_p, cov_p, mean_q, cov_q) -> torch.Tensor:
    r"""D(p‖q) for multivariate normals, p the reference (first argument):

    .. math::
        \tfrac12\bigl[\operatorname{tr}(\Sigma_q^{-1}\Sigma_p) + (m_q - m_p)^\top\Sigma_q^{-1}(m_q - m_p)
        - d + \log\det\Sigma_q - \log\det\Sigma_p\bigr]

    Parameters
    ----------
    mean_p, mean_q : (d,). cov_p, cov_q : (d, d) symmetric positive definite.

    >>> round(kl_mvn([1.0], [[1.0]], [0.0], [[1.0]]).item(), 6)
    0.5
    """
    mp, mq = _t("mean_p", mean_p), _t("mean_q", mean_q)
    if mp.ndim != 1 or mp.shape != mq.shape:
        raise ValueError(f"mean_p and mean_q must have the same shape (d,); got {tuple(mp.shape)} and {tuple(mq.shape)}")
    _check_finite("mean_p", mp)
    _check_finite("mean_q", mq)
    d = mp.shape[0]
    cov_p, cov_q = _t("cov_p", cov_p), _t("cov_q", cov_q)
    _check_cov("cov_p", cov_p, d)
    lq = _check_cov("cov_q", cov_q, d)
    return _kl_mvn_diff(mp - mq, cov_p - cov_q, lq)


def _x_minus_log1p(x: torch.Tensor) -> torch.Tensor:
    # x - log(1 + x) >= 0 without cancellation for small |x| (series to x^5)
    series = x ** 2 / 2 - x ** 3 / 3 + x ** 4 / 4 - x ** 5 / 5
    return torch.where(x.abs() < 1e-3, series, x - torch.log1p(x))


def _kl_mvn_diff(dmean, dcov, lq) -> torch.Tensor:
    # KL = ½[Σ (x_i - log(1 + x_i)) + |Lq^-1 Δm|²], x_i the eigenvalues of Lq^-1 (Σp - Σq) Lq^-T:
    # the same value as the textbook formula, without its cancellation when Σp ≈ Σq
    a = torch.linalg.solve_triangular(lq, dcov, upper=False)
    m = torch.linalg.solve_triangular(lq, a.T, upper=False)
    x = torch.linalg.eigvalsh(0.5 * (m + m.T)).clamp_min(-1 + 1e-300)
    b = torch.linalg.solve_triangular(lq, dmean[:, None], upper=False)
    return (0.5 * (_x_minus_log1p(x).sum() + (b ** 2).sum())).clamp_min(0.0)


def _kl_mvn_chol(mp, lp, mq, lq) -> torch.Tensor:
    return _kl_mvn_diff(mp - mq, lp @ lp.T - lq @ lq.T, lq)


def noisy_linear_layer(mean, cov, weight, noise_std: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Push :math:`N(m, \Sigma)` through :math:`Y = WX + sZ`: returns :math:`(Wm,\ W\Sigma W^\top + s^2 I)`."""
    w_, c, s = _layer_args(cov, weight, noise_std)
    m = _t("mean", mean)
    if m.shape != (w_.shape[1],):
        raise ValueError(f"mean must have shape ({w_.shape[1]},); got {tuple(m.shape)}")
    out = w_ @ c @ w_.T
    out = 0.5 * (out + out.T) + s ** 2 * torch.eye(w_.shape[0], dtype=torch.float64)
    return w_ @ m, out


@dataclass
class ChainKL:
    """Per-layer quantities of a noisy linear chain.

    kl : (L + 1,) D(p_k‖q_k) at the input (k = 0) and after each layer.
    eta : (L,) contraction coefficient of layer k + 1 at the reference q_k (the second argument).
    """

    kl: torch.Tensor
    eta: torch.Tensor


def noisy_chain(mean_p, cov_p, mean_q, cov_q, weights, noise_std: float) -> ChainKL:
    r"""D(p_k‖q_k) through the layers :math:`T_{k+1} = W_k T_k + sZ_k` (exact Gaussian propagation) and each
    layer's SDPI coefficient at q_k. The DPI gives ``kl[k+1] <= kl[k]``; the SDPI gives
    ``kl[k+1] <= eta[k] * kl[k]``.

    Parameters
    ----------
    mean_p, cov_p, mean_q, cov_q : the two input laws, (d,) and (d, d).
    weights : sequence of L matrices, W_k of shape (w_{k+1}, w_k), w_0 = d.
    noise_std : s > 0, the same for every layer.
    """
    if len(weights) < 1:
        raise ValueError(f"weights must hold at least one layer; got {len(weights)}")
    mp, mq = _t("mean_p", mean_p), _t("mean_q", mean_q)
    kls, etas = [kl_mvn(mp, cov_p, mq, cov_q)], []            # validates the two input laws
    cq = _t("cov_q", cov_q)
    dcov = _t("cov_p", cov_p) - cq
    s = check_real("noise_std", noise_std, low=0.0, low_open=True)
    for k, w_ in enumerate(weights):
        w_ = _t(f"weights[{k}]", w_)
        if w_.ndim != 2 or w_.shape[1] != mp.shape[0]:
            raise ValueError(f"weights[{k}] must have shape (width_out, {mp.shape[0]}); got {tuple(w_.shape)}")
        _check_finite(f"weights[{k}]", w_)
        sig_q = w_ @ cq @ w_.T
        lam = torch.linalg.eigvalsh(0.5 * (sig_q + sig_q.T) / s ** 2).max().clamp_min(0.0).item()
        etas.append(lam / (1 + lam))
        eye = torch.eye(w_.shape[0], dtype=torch.float64)
        mp, mq = w_ @ mp, w_ @ mq
        dcov = w_ @ dcov @ w_.T                                # Σp - Σq: the noise cancels exactly
        dcov = 0.5 * (dcov + dcov.T)
        cq = 0.5 * (sig_q + sig_q.T) + s ** 2 * eye
        kls.append(_kl_mvn_diff(mp - mq, dcov, torch.linalg.cholesky(cq)))
    return ChainKL(torch.stack(kls), torch.tensor(etas, dtype=torch.float64))


def generalization_bound(mi, n: int, sigma: float) -> torch.Tensor:
    r"""Xu–Raginsky bound :math:`\sqrt{2\sigma^2 I(W;S)/n}` on the expected generalisation gap of a
    σ-sub-Gaussian loss (a loss in [0, 1] is ½-sub-Gaussian).

    >>> generalization_bound(0.5, 100, 0.5).item()
    0.05
    """
    i = _t("mi", mi)
    if (i < 0).any():
        raise ValueError(f"mi must be >= 0 (nats); got {i.min().item()!r}")
    n = check_int("n", n, low=1)
    sigma = check_real("sigma", sigma, low=0.0, low_open=True)
    return torch.sqrt(2 * sigma ** 2 * i / n)
