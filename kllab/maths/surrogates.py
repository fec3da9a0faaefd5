r"""Surrogate losses for multi-class classification: the comp-sum family, its conditional regrets, and the
0-1 regret they bound.

A score vector :math:`h \in \mathbb{R}^K` (logits) predicts :math:`\hat y = \arg\max_k h_k`; its softmax is
:math:`q = \mathrm{softmax}(h)`. A class-probability vector :math:`\eta` (the conditional distribution of the
label at one input x) is the reference. Everything here is pointwise in x ("conditional"); averaging over x
gives the risks.

**Comp-sum losses** (Mao, Mohri, Zhong 2023). With :math:`u = \sum_{y' \ne y} e^{h_{y'} - h_y} = 1/q_y - 1`,

.. math::
    \ell_\tau(h, y) = \Phi_\tau(u), \qquad
    \Phi_\tau(u) = \begin{cases} \log(1 + u) & \tau = 1 \\ \dfrac{(1+u)^{1-\tau} - 1}{1 - \tau} & \tau \ne 1
    \end{cases}
    \quad\Longleftrightarrow\quad
    \ell_\tau = \begin{cases} -\log q_y & \tau = 1 \\ \dfrac{1 - q_y^{\tau - 1}}{\tau - 1} & \tau \ne 1 \end{cases}

so τ = 0 is the sum-exponential loss :math:`\sum_{y'\ne y} e^{h_{y'}-h_y}`, τ = 1 cross-entropy, τ ∈ (1, 2)
generalised cross-entropy (Zhang and Sabuncu 2018, with their q = τ − 1) and τ = 2 the mean absolute error
:math:`1 - q_y`. τ ≥ 0 is accepted.

**Conditional risk, its infimum, the regret.** :math:`C_\tau(\eta, h) = \sum_y \eta_y \ell_\tau(h, y)`; over all
score vectors (the complete hypothesis set) its infimum is, with :math:`s = 1/(2 - \tau)`,

.. math::
    C^*_\tau(\eta) = \begin{cases} H(\eta) & \tau = 1 \\ \dfrac{1 - \|\eta\|_s}{\tau - 1} & \tau < 2,\ \tau\ne 1,
    \quad q^* \propto \eta^{s} \\ \dfrac{1 - \max_k \eta_k}{\tau - 1} & \tau \ge 2, \quad q^* \to e_{\arg\max\eta}
    \end{cases}

(:math:`\|\eta\|_s = (\sum_k \eta_k^s)^{1/s}`; for τ < 2 the risk is convex in q and the stationary point is the
minimum; for τ ≥ 2 it is concave and the infimum is at the best vertex, approached, not attained). The
conditional regret is :math:`\Delta C_\tau = C_\tau(\eta, h) - C^*_\tau(\eta)`. At τ = 1 it is exactly
:math:`\mathrm{KL}(\eta \,\|\, \mathrm{softmax}(h))`: cross-entropy's regret is the forward KL from the labels'
distribution to the model.

**0-1 regret and the Pinsker bound.** :math:`\Delta C_{01}(\eta, h) = \max_k \eta_k - \eta_{\hat y}` (ties in h
broken towards the lowest index, as ``argmax`` does). With :math:`y^* = \arg\max\eta`,
:math:`\eta_{y^*} - \eta_{\hat y} \le (\eta_{y^*} - q_{y^*}) + (q_{\hat y} - \eta_{\hat y}) \le 2\,\mathrm{TV}(\eta, q)
\le \sqrt{2\,\mathrm{KL}(\eta\|q)}` (Pinsker), so :math:`\Delta C_{01} \le \sqrt{2\,\Delta C_1}`. For the mean
absolute error, :math:`\langle\eta, q\rangle \le q_{\hat y}\eta_{\hat y} + (1 - q_{\hat y})\eta_{y^*}` and
:math:`q_{\hat y} \ge 1/K` give :math:`\Delta C_{01} \le K\,\Delta C_2`.

**A reverse-KL surrogate** (kllab's contrast, not in the paper): with labels smoothed to
:math:`\hat\eta_y = (1-\varepsilon)e_y + \varepsilon/K`, the loss :math:`\mathrm{KL}(q \,\|\, \hat\eta_y)` has conditional
risk :math:`\sum_y \eta_y \mathrm{KL}(q\|\hat\eta_y) = \mathrm{KL}(q \,\|\, \mathrm{softmax}(c\,\eta)) - \log\sum_k
e^{a_k}` with :math:`a_k = \log\frac{\varepsilon}{K} + c\,\eta_k`, :math:`c = \log(1 + K(1-\varepsilon)/\varepsilon)`.
Its minimiser :math:`\mathrm{softmax}(c\,\eta)` keeps the arg max of η (the loss is classification-calibrated)
but is not η (the loss is not proper), and its regret is the reverse KL :math:`\mathrm{KL}(q\|\mathrm{softmax}(c\eta))`.

Conventions: ``logeta`` are log-probabilities on the last axis (``-inf`` allowed, never renormalised); ``logits``
are finite scores of the same shape; results have shape ``logits.shape[:-1]`` (no hidden reductions).

References: A. Mao, M. Mohri, Y. Zhong, *Cross-Entropy Loss Functions: Theoretical Analysis and Applications*,
ICML 2023, arXiv:2304.07288. Z. Zhang, M. Sabuncu, *Generalized Cross Entropy Loss for Training Deep Neural
Networks with Noisy Labels*, NeurIPS 2018.
"""

from __future__ import annotations

import math

import torch

from .validation import (check_finite, check_log_probs, check_real, check_same_shape)

__all__ = [
    "comp_sum_phi", "comp_sum_loss", "comp_sum_conditional_risk", "comp_sum_bayes_risk", "comp_sum_minimiser",
    "comp_sum_regret", "zero_one_regret", "pinsker_zero_one_bound", "mae_zero_one_bound",
    "reverse_kl_loss", "reverse_kl_conditional_risk", "reverse_kl_minimiser", "reverse_kl_regret",
]


def _tau(tau) -> float:
    return check_real("tau", tau, low=0.0)


def _logits(name: str, logits) -> torch.Tensor:
    if not torch.is_tensor(logits) or not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch.Tensor of scores; got "
                         f"{type(logits).__name__ if not torch.is_tensor(logits) else logits.dtype}")
    if logits.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the classes); got a scalar")
    check_finite(name, logits)
    return logits


def _labels(labels, logits: torch.Tensor) -> None:
    if not torch.is_tensor(labels) or labels.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"labels must be an integer torch.Tensor of class indices; got "
                         f"{type(labels).__name__ if not torch.is_tensor(labels) else labels.dtype}")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"labels must have shape logits.shape[:-1] = {tuple(logits.shape[:-1])}; "
                         f"got {tuple(labels.shape)}")
    k = logits.shape[-1]
    if labels.numel() and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must be in [0, {k - 1}] (K = {k} classes); got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")


def _pair(logeta, logits, validate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    if not validate:
        return logeta, logits
    logits = _logits("logits", logits)
    check_log_probs("logeta", logeta)
    check_same_shape("logeta", logeta, "logits", logits)
    return logeta, logits


def _phi_of_logq(logq: torch.Tensor, tau: float) -> torch.Tensor:
    """ℓ_τ as a function of log q_y: -log q (τ = 1), (1 - q^(τ-1)) / (τ - 1) otherwise (q = 0 gives the limit)."""
    if tau == 1.0:
        return -logq
    return -torch.expm1((tau - 1.0) * logq) / (tau - 1.0)


def comp_sum_phi(u, tau: float) -> torch.Tensor:
    r"""The comp-sum transform :math:`\Phi_\tau(u)`, u ≥ 0 the sum of exponentiated score gaps.

    .. math::
        \Phi_1(u) = \log(1+u), \qquad \Phi_\tau(u) = \frac{(1+u)^{1-\tau} - 1}{1-\tau}\ (\tau \ne 1)

    Parameters
    ----------
    u : Tensor or float, any shape, u ≥ 0
    tau : float ≥ 0

    >>> [round(comp_sum_phi(1.0, t).item(), 4) for t in (0.0, 1.0, 2.0)]   # u, log 2, 1 - 1/2
    [1.0, 0.6931, 0.5]
    """
    tau = _tau(tau)
    u = u if torch.is_tensor(u) else torch.as_tensor(u, dtype=torch.float64)
    if torch.isnan(u).any() or (u < 0).any():
        raise ValueError(f"u must be >= 0 (a sum of exponentials) and not NaN; got min {float(u.min()):.4g}")
    return _phi_of_logq(-torch.log1p(u), tau)


def comp_sum_loss(logits, labels, tau: float) -> torch.Tensor:
    r"""The comp-sum loss :math:`\ell_\tau(h, y) = \Phi_\tau(\sum_{y'\ne y} e^{h_{y'} - h_y})`, per example.

    Parameters
    ----------
    logits : Tensor, shape (..., K), finite
    labels : LongTensor, shape (...), values in [0, K)
    tau : float ≥ 0 (0 sum-exponential, 1 cross-entropy, (1, 2) generalised CE, 2 mean absolute error)

    Returns
    -------
    Tensor, shape (...)

    >>> h = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64); y = torch.tensor([0])
    >>> bool(torch.allclose(comp_sum_loss(h, y, 1.0), torch.nn.functional.cross_entropy(h, y, reduction="none")))
    True
    """
    tau = _tau(tau)
    logits = _logits("logits", logits)
    _labels(labels, logits)
    logq = torch.log_softmax(logits, -1).gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    return _phi_of_logq(logq, tau)


def comp_sum_conditional_risk(logeta, logits, tau: float, *, validate: bool = True) -> torch.Tensor:
    r"""Conditional risk :math:`C_\tau(\eta, h) = \sum_y \eta_y\,\ell_\tau(h, y)`; ``logeta`` is the reference η.

    Parameters
    ----------
    logeta : Tensor, shape (..., K), log-probabilities (``-inf`` allowed)
    logits : Tensor, shape (..., K), finite scores h
    tau : float ≥ 0
    validate : bool
        Check shapes, NaN and normalisation (turn off only in training loops).

    Returns
    -------
    Tensor, shape (...)

    >>> eta = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    >>> round(comp_sum_conditional_risk(eta.log(), torch.zeros(3, dtype=torch.float64), 2.0).item(), 6)  # 1 - 1/3
    0.666667
    """
    tau = _tau(tau)
    logeta, logits = _pair(logeta, logits, validate)
    losses = _phi_of_logq(torch.log_softmax(logits, -1), tau)      # ℓ_τ(h, y) for every y
    eta = logeta.exp()
    return torch.where(eta > 0, eta * losses, torch.zeros((), dtype=losses.dtype)).sum(-1)


def comp_sum_bayes_risk(logeta, tau: float, *, validate: bool = True) -> torch.Tensor:
    r"""Infimum over all scores of the conditional risk, :math:`C^*_\tau(\eta)`, in closed form.

    .. math::
        C^*_1 = H(\eta), \quad C^*_\tau = \frac{1 - \|\eta\|_{1/(2-\tau)}}{\tau - 1}\ (\tau < 2), \quad
        C^*_\tau = \frac{1 - \max_k\eta_k}{\tau - 1}\ (\tau \ge 2)

    Near τ = 1 the second form loses about ``1e-16 / |tau - 1|`` in absolute accuracy (a difference of two
    nearly equal numbers).

    Parameters
    ----------
    logeta : Tensor, shape (..., K), log-probabilities
    tau : float ≥ 0

    Returns
    -------
    Tensor, shape (...)

    >>> eta = torch.tensor([0.5, 0.5], dtype=torch.float64).log()
    >>> [round(comp_sum_bayes_risk(eta, t).item(), 6) for t in (0.0, 1.0, 2.0)]   # (sum sqrt)^2 - 1, log 2, 1/2
    [1.0, 0.693147, 0.5]
    """
    tau = _tau(tau)
    if validate:
        check_log_probs("logeta", logeta)
    eta = logeta.exp()
    if tau == 1.0:
        return -torch.where(eta > 0, eta * logeta, torch.zeros((), dtype=eta.dtype)).sum(-1)
    if tau >= 2.0:
        return -torch.expm1(logeta.amax(-1)) / (tau - 1.0)
    s = 1.0 / (2.0 - tau)
    log_norm = torch.logsumexp(s * logeta, -1) / s                   # log ||eta||_s
    return -torch.expm1(log_norm) / (tau - 1.0)


def comp_sum_minimiser(logeta, tau: float) -> torch.Tensor:
    r"""Log of the minimising softmax :math:`q^*`: :math:`q^* \propto \eta^{1/(2-\tau)}` for τ < 2 (η itself at
    τ = 1); for τ ≥ 2 the limit point, the vertex of the first arg max of η (log-probabilities 0 and ``-inf``).

    >>> eta = torch.tensor([0.8, 0.2], dtype=torch.float64).log()
    >>> comp_sum_minimiser(eta, 0.0).exp().round(decimals=4)      # sqrt(eta) / sum: 0.894 / 1.342
    tensor([0.6667, 0.3333], dtype=torch.float64)
    """
    tau = _tau(tau)
    check_log_probs("logeta", logeta)
    if tau >= 2.0:
        top = torch.nn.functional.one_hot(logeta.argmax(-1), logeta.shape[-1]).bool()
        return torch.where(top, torch.zeros((), dtype=logeta.dtype), torch.full((), -math.inf, dtype=logeta.dtype))
    return torch.log_softmax(logeta / (2.0 - tau), -1)


def comp_sum_regret(logeta, logits, tau: float, *, validate: bool = True) -> torch.Tensor:
    r"""Conditional regret :math:`C_\tau(\eta, h) - C^*_\tau(\eta) \ge 0`; at τ = 1 it equals
    :math:`\mathrm{KL}(\eta\,\|\,\mathrm{softmax}(h))`.

    >>> eta = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64); h = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)
    >>> from kllab.maths.divergences import kl
    >>> bool(torch.allclose(comp_sum_regret(eta.log(), h, 1.0), kl(eta.log(), torch.log_softmax(h, -1))))
    True
    """
    return (comp_sum_conditional_risk(logeta, logits, tau, validate=validate)
            - comp_sum_bayes_risk(logeta, tau, validate=validate))


def zero_one_regret(logeta, logits, *, validate: bool = True) -> torch.Tensor:
    r"""0-1 conditional regret :math:`\max_k \eta_k - \eta_{\arg\max_k h_k}` (first index on ties).

    >>> eta = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    >>> round(zero_one_regret(eta.log(), torch.tensor([0.0, 2.0, 1.0], dtype=torch.float64)).item(), 6)
    0.3
    """
    logeta, logits = _pair(logeta, logits, validate)
    eta = logeta.exp()
    return eta.amax(-1) - eta.gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1)


def pinsker_zero_one_bound(ce_regret) -> torch.Tensor:
    r"""Bound on the 0-1 regret from cross-entropy's regret t = KL(η‖q): :math:`\sqrt{2t}` (2·TV and Pinsker)."""
    t = ce_regret if torch.is_tensor(ce_regret) else torch.as_tensor(ce_regret, dtype=torch.float64)
    if torch.isnan(t).any() or (t < -1e-12).any():
        raise ValueError(f"ce_regret must be >= 0 (a KL divergence) and not NaN; got min {float(t.min()):.4g}")
    return torch.sqrt(2.0 * t.clamp_min(0.0))


def mae_zero_one_bound(mae_regret, n_classes: int) -> torch.Tensor:
    r"""Bound on the 0-1 regret from the mean absolute error's regret t: :math:`K t` (linear growth)."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2; got {n_classes!r}")
    t = mae_regret if torch.is_tensor(mae_regret) else torch.as_tensor(mae_regret, dtype=torch.float64)
    if torch.isnan(t).any() or (t < -1e-12).any():
        raise ValueError(f"mae_regret must be >= 0 and not NaN; got min {float(t.min()):.4g}")
    return n_classes * t.clamp_min(0.0)


def _smoothing(smoothing) -> float:
    return check_real("smoothing", smoothing, low=0.0, high=1.0, low_open=True)


def _smoothed_log_targets(k: int, smoothing: float, dtype) -> torch.Tensor:
    """Row y: log of (1 - ε) e_y + ε/K, shape (K, K)."""
    off = math.log(smoothing / k)
    on = math.log(1.0 - smoothing + smoothing / k)
    out = torch.full((k, k), off, dtype=dtype)
    out.fill_diagonal_(on)
    return out


def reverse_kl_loss(logits, labels, smoothing: float) -> torch.Tensor:
    r"""Reverse-KL surrogate :math:`\mathrm{KL}(\mathrm{softmax}(h)\,\|\,(1-\varepsilon)e_y + \varepsilon/K)`, per example.

    Parameters
    ----------
    logits : Tensor, shape (..., K); labels : LongTensor, shape (...); smoothing : ε in (0, 1]

    >>> h = torch.zeros(1, 2, dtype=torch.float64)
    >>> round(reverse_kl_loss(h, torch.tensor([0]), 1.0).item(), 6)     # eps = 1: the target is uniform, KL = 0
    0.0
    """
    smoothing = _smoothing(smoothing)
    logits = _logits("logits", logits)
    k = logits.shape[-1]
    _labels(labels, logits)
    logq = torch.log_softmax(logits, -1)
    logt = _smoothed_log_targets(k, smoothing, logits.dtype)[labels.long()]
    return (logq.exp() * (logq - logt)).sum(-1)


def reverse_kl_conditional_risk(logeta, logits, smoothing: float, *, validate: bool = True) -> torch.Tensor:
    r"""Conditional risk of the reverse-KL surrogate, :math:`\sum_y \eta_y\,\mathrm{KL}(q\,\|\,\hat\eta_y)`."""
    smoothing = _smoothing(smoothing)
    logeta, logits = _pair(logeta, logits, validate)
    k = logits.shape[-1]
    logq = torch.log_softmax(logits, -1)
    logt = _smoothed_log_targets(k, smoothing, logits.dtype)          # (K labels, K classes)
    per_label = (logq.exp().unsqueeze(-2) * (logq.unsqueeze(-2) - logt)).sum(-1)   # (..., K labels)
    eta = logeta.exp()
    return (eta * per_label).sum(-1)


def _reverse_c(k: int, smoothing: float) -> float:
    return math.log1p(k * (1.0 - smoothing) / smoothing)


def reverse_kl_minimiser(logeta, smoothing: float) -> torch.Tensor:
    r"""Log of the reverse-KL surrogate's minimising softmax, :math:`\mathrm{softmax}(c\,\eta)`,
    :math:`c = \log(1 + K(1-\varepsilon)/\varepsilon)`: the arg max of η, not η.

    >>> eta = torch.tensor([0.5, 0.5], dtype=torch.float64).log()
    >>> reverse_kl_minimiser(eta, 0.1).exp()
    tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    smoothing = _smoothing(smoothing)
    check_log_probs("logeta", logeta)
    return torch.log_softmax(_reverse_c(logeta.shape[-1], smoothing) * logeta.exp(), -1)


def reverse_kl_regret(logeta, logits, smoothing: float, *, validate: bool = True) -> torch.Tensor:
    r"""Conditional regret of the reverse-KL surrogate: risk minus its infimum :math:`-\log\sum_k e^{a_k}`
    (equal to :math:`\mathrm{KL}(\mathrm{softmax}(h)\,\|\,\mathrm{softmax}(c\,\eta))`)."""
    smoothing = _smoothing(smoothing)
    logeta, logits = _pair(logeta, logits, validate)
    k = logits.shape[-1]
    a = math.log(smoothing / k) + _reverse_c(k, smoothing) * logeta.exp()
    return reverse_kl_conditional_risk(logeta, logits, smoothing, validate=validate) + torch.logsumexp(a, -1)
