r"""KL-regularised distributionally robust objectives: a worst case over weights, softened by a KL.

A distributionally robust loss replaces an average by the worst weighting an adversary can pick
near a reference weighting ``p_ref`` (uniform by default). With a KL penalty instead of a hard
radius the adversary solves

.. math::
    V_r(\ell) = \max_{w \in \Delta} \; \sum_i w_i \ell_i - r\, D(w, p_{ref}),

the same problem as KL-regularised RL (:mod:`kllab.maths.rlhf`) with the losses ℓ as rewards,
the weights w as the policy and the temperature r as β. With the reverse KL,
D = KL(w‖p_ref) (the usual choice), the maximiser is the Gibbs distribution and the value a
log-sum-exp,

.. math::
    w^*_i = \frac{p_{ref,i}\, e^{\ell_i / r}}{\sum_j p_{ref,j}\, e^{\ell_j / r}}, \qquad
    V_r(\ell) = r \log \sum_i p_{ref,i}\, e^{\ell_i / r}
              \;\overset{p_{ref} = u}{=}\; r \log \tfrac1n \sum_i e^{\ell_i / r},

which runs from the mean (r → ∞, the weights stay uniform) to the maximum (r → 0, all weight
on the worst entry). With the forward KL, D = KL(p_ref‖w), the maximiser is RAPO's
:math:`w^*_i = r\, p_{ref,i}/(\Lambda - \ell_i)`.

Two papers use it: over the **labels** of one example it gives the label distributionally robust
(LDR) losses of Zhu, Ying and Yang (2023), which contain cross-entropy and the Crammer-Singer
hinge (:func:`ldr_loss`); over the **examples** of a batch it gives the instance weights of
doubly robust adversarial training (DONE, Sow et al., 2024; :func:`kl_dro`).

Conventions: the weights are the model q and ``logp_ref`` the reference p (math order), so the
usual KL(w‖p_ref) is ``direction="reverse"``. Weights and values are per row of the last axis
(no hidden reductions).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar

from . import rlhf
from .validation import DIRECTIONS, check_choice, check_finite, check_log_probs, check_positive, check_real

__all__ = ["kl_dro", "dro_objective", "solve_dro", "kl_dro_dual", "label_margins", "ldr_loss",
           "crammer_singer_loss", "mean_margin_loss", "normalize_logits"]


def _losses(losses, name: str = "losses") -> torch.Tensor:
    losses = torch.as_tensor(losses)
    if not losses.is_floating_point():
        losses = losses.to(torch.float64)
    if losses.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the entries to weight); got a scalar")
    check_finite(name, losses)
    return losses


def _reference(logp_ref, losses: torch.Tensor) -> torch.Tensor:
    if logp_ref is None:
        n = losses.shape[-1]
        return torch.full_like(losses, -math.log(n))
    logp_ref = torch.as_tensor(logp_ref, dtype=losses.dtype)
    check_log_probs("logp_ref", logp_ref)
    if logp_ref.shape != losses.shape and logp_ref.ndim <= losses.ndim:
        try:
            logp_ref = logp_ref.expand_as(losses)
        except RuntimeError:
            pass
    if logp_ref.shape != losses.shape:
        raise ValueError(f"logp_ref must have the shape of losses (or broadcast to it); "
                         f"got {tuple(logp_ref.shape)} and {tuple(losses.shape)}")
    return logp_ref


def kl_dro(losses, temperature: float, *, logp_ref=None, direction: str = "reverse"
           ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Worst-case weights and value of the KL-regularised inner maximisation; ``logp_ref`` is the reference.

    .. math::
        V_r(\ell) = \max_{w \in \Delta} \sum_i w_i \ell_i - r\, D(w, p_{ref}), \qquad
        \text{reverse: } D = \mathrm{KL}(w \| p_{ref}),\ \
        w^* = \mathrm{softmax}(\log p_{ref} + \ell / r),\ \
        V_r = r \log \textstyle\sum_i p_{ref,i} e^{\ell_i / r}

    ``direction="forward"`` uses D = KL(p_ref‖w), whose maximiser
    :math:`w^*_i = r\,p_{ref,i}/(\Lambda - \ell_i)` comes from a 1-D root solve
    (:func:`kllab.maths.rlhf.kl_regularized_policy`). Differentiable in ``losses`` for the reverse
    KL (a log-sum-exp); for the forward KL the gradient of the value is :math:`w^*` (envelope
    theorem), which the returned value carries.

    Parameters
    ----------
    losses : Tensor, shape (..., n)
        The quantities the adversary weights (per-example losses, or label margins); finite.
    temperature : float > 0
        r (DONE) or λ (LDR): large keeps w near p_ref, small concentrates it on the maximum.
    logp_ref : Tensor, shape (..., n) or (n,), optional
        Log-probabilities of the reference weighting; uniform if omitted.
    direction : {"reverse", "forward"}

    Returns
    -------
    (log_weights, value) : Tensor of shape (..., n), Tensor of shape (...)

    References
    ----------
    Sow, Lin, Wang, Liang. Doubly Robust Instance-Reweighted Adversarial Training. ICLR 2024. arXiv:2308.00311.
    Zhu, Ying, Yang. Label Distributionally Robust Losses for Multi-class Classification. ICML 2023. arXiv:2112.14869.

    >>> import torch
    >>> logw, v = kl_dro(torch.tensor([0.0, 1.0], dtype=torch.float64), 1.0)
    >>> round(v.item(), 6) == round(math.log((1 + math.e) / 2), 6), [round(x, 4) for x in logw.exp().tolist()]
    (True, [0.2689, 0.7311])
    """
    check_choice("direction", direction, DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    losses = _losses(losses)
    logp_ref = _reference(logp_ref, losses)
    if direction == "reverse":
        scaled = logp_ref + losses / temperature
        return torch.log_softmax(scaled, dim=-1), temperature * torch.logsumexp(scaled, dim=-1)
    logw = rlhf.kl_regularized_policy(logp_ref.detach(), losses.detach(), temperature, direction="forward")
    w = logw.exp()
    # Value with the optimum held fixed: its gradient in `losses` is w* (envelope theorem).
    kl_ref_w = torch.where(logp_ref.exp() > 0, logp_ref.exp() * (logp_ref - logw), torch.zeros((), dtype=w.dtype))
    value = (w * losses).sum(-1) - temperature * kl_ref_w.sum(-1)
    return logw, value


def dro_objective(logw, losses, temperature: float, *, logp_ref=None, direction: str = "reverse") -> torch.Tensor:
    r"""The adversary's objective :math:`\sum_i w_i \ell_i - r\, D(w, p_{ref})` for given weights, per row.

    ``logw`` are the log-weights being scored (the model q), ``logp_ref`` the reference.
    :func:`kl_dro` returns its maximum; any other ``logw`` scores no more.

    >>> import torch
    >>> l = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    >>> logw, v = kl_dro(l, 0.5)
    >>> bool(torch.isclose(dro_objective(logw, l, 0.5), v))
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    losses = _losses(losses)
    logp_ref = _reference(logp_ref, losses)
    logw = torch.as_tensor(logw, dtype=losses.dtype)
    return rlhf.objective(logw, logp_ref, losses, temperature, direction=direction)


def _one_problem(losses, logp_ref) -> tuple[np.ndarray, np.ndarray]:
    """One problem's reference log-probabilities and losses as float64 arrays (losses: one axis)."""
    losses = _losses(losses)
    if losses.ndim != 1:
        raise ValueError(f"losses must have one axis (one problem); got shape {tuple(losses.shape)}")
    logp = _reference(logp_ref, losses).detach().to(torch.float64).numpy()
    return logp, losses.detach().to(torch.float64).numpy()


def solve_dro(losses, temperature: float, *, logp_ref=None, direction: str = "reverse",
              tol: float = 1e-13) -> tuple[np.ndarray, float]:
    r"""The inner maximisation solved numerically over the simplex (SciPy SLSQP); no closed form used.

    ``logp_ref`` is the reference weighting (uniform if omitted). Maximises
    :math:`\sum_i w_i \ell_i - r D(w, p_{ref})` subject to :math:`w \ge 0,\ \sum_i w_i = 1` by
    sequential quadratic programming, on w itself for the reverse KL and on log w for the forward
    KL (which is infinite at w = 0): an independent route to :func:`kl_dro` for tests and notebooks.
    One problem at a time (``losses`` has one axis); meant for small n (tens of entries: SLSQP's
    cost grows quickly with n). Accurate to about 1e-8 relative in the value.

    Returns
    -------
    (weights, value) : ndarray of shape (n,), float

    >>> import torch
    >>> w, v = solve_dro([0.0, 1.0], 1.0)
    >>> abs(v - math.log((1 + math.e) / 2)) < 1e-8
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    logp, ell = _one_problem(losses, logp_ref)
    on = np.isfinite(logp)
    ref, safe_logp = np.exp(logp), np.where(on, logp, 0.0)
    total = {"type": "eq", "fun": lambda v: v.sum() - 1.0, "jac": lambda v: np.ones_like(v)}
    opts = {"ftol": tol, "maxiter": 2000}
    if direction == "reverse":
        # Coordinates w on the simplex itself: Σ w ℓ − r Σ w log(w / p_ref), with 0 log 0 = 0.
        def negative(w):
            w = np.where(on, np.maximum(w, 1e-300), 1e-300)
            log_ratio = np.log(w) - safe_logp
            return -(w @ ell - temperature * np.sum(np.where(on, w * log_ratio, 0.0))), \
                -(ell - temperature * (log_ratio + 1.0))

        bounds = [(0.0, 1.0) if o else (0.0, 0.0) for o in on]
        x = best_x = ref.copy()
        best = float(-negative(x)[0])
        for _ in range(8):  # restart from the best answer until it stops improving
            x = minimize(negative, best_x, jac=True, method="SLSQP", bounds=bounds, constraints=[total],
                         options=opts).x
            x = np.clip(x, 0.0, None)
            x /= x.sum()
            value = float(-negative(x)[0])
            if value <= best + 1e-15 * max(1.0, abs(value)):
                break
            best_x, best = x, value
        return best_x, best

    # Forward KL(p_ref || w) is infinite at w = 0: use z = log w on the support, where it is linear,
    # with the constraint Σ exp(z) = 1 (off the support w = 0 is optimal: it only costs mass).
    from scipy.special import logsumexp

    ell_on, ref_on, logp_on = ell[on], ref[on], logp[on]

    def negative_z(z):
        w = np.exp(z)
        return -(w @ ell_on + temperature * ref_on @ z), -(w * ell_on + temperature * ref_on)

    z_total = {"type": "eq", "fun": lambda z: logsumexp(z), "jac": lambda z: np.exp(z - logsumexp(z))}
    z = logp_on.copy()
    for _ in range(2):
        z = minimize(negative_z, z, jac=True, method="SLSQP", bounds=[(-700.0, 0.0)] * len(z),
                     constraints=[z_total], options=opts).x
        z -= logsumexp(z)
    w = np.zeros_like(ell)
    w[on] = np.exp(z)
    value = float(w[on] @ ell_on - temperature * ref_on @ (logp_on - z))
    return w, value


def kl_dro_dual(losses, temperature: float, *, logp_ref=None) -> float:
    r"""The reverse-KL value from its 1-D convex dual (SciPy's bounded scalar minimiser).

    .. math::
        \max_{w \in \Delta} \sum_i w_i \ell_i - r\,\mathrm{KL}(w\|p_{ref})
        = \min_{\eta \in \mathbb{R}} \; \eta + r\, \mathbb{E}_{p_{ref}}\!\left[e^{(\ell - \eta)/r}\right] - r

    A third route to :func:`kl_dro` (the minimiser is :math:`\eta^* = V_r`). One problem: one axis.

    >>> abs(kl_dro_dual([0.0, 1.0], 1.0) - math.log((1 + math.e) / 2)) < 1e-8
    True
    """
    temperature = check_positive("temperature", temperature)
    logp, ell = _one_problem(losses, logp_ref)
    lo, hi = float(ell.min()), float(ell.max())

    def dual(eta):  # shifted by hi so that no exponent overflows
        return eta + temperature * np.exp(np.logaddexp.reduce(logp + (ell - hi) / temperature) + (hi - eta) / temperature) - temperature

    if hi - lo < 1e-300:
        return hi
    res = minimize_scalar(dual, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12 * max(1.0, abs(hi))})
    return float(res.fun)


def label_margins(logits, labels, margin: float = 0.0) -> torch.Tensor:
    r"""Margins :math:`\delta_k = f_k - f_y + c\,\mathbf{1}[k \ne y]` of every class against the label y.

    The quantity the LDR adversary weights: :math:`\delta_y = 0` and :math:`\delta_k > 0` means
    class k beats the label by more than the margin c.

    Parameters
    ----------
    logits : Tensor, shape (N, K) (or (..., K))
    labels : integer Tensor, shape (N,) (or (...)), values in 0..K-1
    margin : float ≥ 0
        c, added to every wrong class.

    Returns
    -------
    Tensor, shape (N, K)

    >>> import torch
    >>> label_margins(torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([0]), 1.0).tolist()
    [[0.0, -1.0, 0.0]]
    """
    margin = check_real("margin", margin, low=0.0)
    logits = _losses(logits, "logits")
    labels = torch.as_tensor(labels)
    if labels.dtype in (torch.float16, torch.float32, torch.float64, torch.bool) or labels.is_complex():
        raise ValueError(f"labels must be an integer tensor of class indices; got dtype {labels.dtype}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels must have shape logits.shape[:-1] = {tuple(logits.shape[:-1])}; "
                         f"got {tuple(labels.shape)}")
    k = logits.shape[-1]
    if labels.numel() and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must be class indices in 0..{k - 1}; got values in "
                         f"{int(labels.min())}..{int(labels.max())}")
    labels = labels.long()
    true = logits.gather(-1, labels.unsqueeze(-1))
    wrong = torch.ones_like(logits).scatter(-1, labels.unsqueeze(-1), 0.0)
    return logits - true + margin * wrong


def ldr_loss(logits, labels, temperature: float, margin: float = 0.0, *, direction: str = "reverse") -> torch.Tensor:
    r"""Label distributionally robust (LDR) loss: the worst case over label weights q near uniform.

    The uniform distribution u over the K classes is the reference; the adversary's label weights q
    the model. With the reverse KL (the paper's LDR-KL loss; its official code computes the same
    ``λ·log(mean(exp(δ/λ)))``):

    .. math::
        \psi_\lambda(x, y) = \max_{q \in \Delta_K} \sum_k q_k \delta_k - \lambda\,\mathrm{KL}(q \| u)
        = \lambda \log \frac1K \sum_{k=1}^K e^{\delta_k / \lambda}, \qquad
        \delta_k = f_k - f_y + c\,\mathbf{1}[k \ne y].

    With c = 0 this is :math:`\lambda\,[\mathrm{CE}(f/\lambda, y) - \log K]`: at λ = 1 exactly
    cross-entropy minus log K, for any λ a temperature-scaled cross-entropy (scaled by λ). λ → 0
    gives the Crammer-Singer hinge :func:`crammer_singer_loss`, λ → ∞ the mean margin
    :func:`mean_margin_loss`. ``direction="forward"`` uses KL(u‖q) instead (a log-barrier on q,
    not in the paper), via :func:`kl_dro`.

    Parameters
    ----------
    logits : Tensor, shape (N, K)
    labels : integer Tensor, shape (N,)
    temperature : float > 0
        λ.
    margin : float ≥ 0
        c.
    direction : {"reverse", "forward"}

    Returns
    -------
    Tensor, shape (N,)
        Per-example loss (differentiable in ``logits``).

    References
    ----------
    Zhu, Ying, Yang. Label Distributionally Robust Losses for Multi-class Classification: Consistency,
    Robustness and Adaptivity. ICML 2023. arXiv:2112.14869.

    >>> import torch
    >>> f = torch.tensor([[1.0, -0.5, 2.0]], dtype=torch.float64); y = torch.tensor([0])
    >>> ce = torch.nn.functional.cross_entropy(f, y, reduction="none")
    >>> bool(torch.isclose(ldr_loss(f, y, 1.0), ce - math.log(3)))
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    delta = label_margins(logits, labels, margin)
    if direction == "reverse":  # the value alone (a training loss needs no weights)
        return temperature * (torch.logsumexp(delta / temperature, dim=-1) - math.log(delta.shape[-1]))
    return kl_dro(delta, temperature, direction=direction)[1]


def crammer_singer_loss(logits, labels, margin: float = 0.0) -> torch.Tensor:
    r"""The λ → 0 limit of :func:`ldr_loss`: :math:`\max_k \delta_k = \max\big(0, \max_{k\ne y} f_k - f_y + c\big)`.

    The Crammer-Singer multi-class hinge. For the reverse KL,
    :math:`\max_k\delta_k - \lambda \log K \le \psi_\lambda \le \max_k \delta_k`.

    >>> import torch
    >>> crammer_singer_loss(torch.tensor([[2.0, 0.0, 1.5]]), torch.tensor([0]), 1.0).tolist()
    [0.5]
    """
    return label_margins(logits, labels, margin).amax(-1)


def mean_margin_loss(logits, labels, margin: float = 0.0) -> torch.Tensor:
    r"""The λ → ∞ limit of :func:`ldr_loss`: :math:`\frac1K \sum_k \delta_k`, linear in the logits.

    For the reverse KL, :math:`\psi_\lambda = \bar\delta + \mathrm{Var}_u(\delta)/(2\lambda) + O(\lambda^{-2})`.
    Summed over the K possible labels it is constant (:math:`(K-1)c`): a symmetric loss.

    >>> import torch
    >>> mean_margin_loss(torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([0])).tolist()
    [-1.0]
    """
    return label_margins(logits, labels, margin).mean(-1)


def normalize_logits(logits) -> torch.Tensor:
    r"""The logit normalisation of the LDR paper's code: :math:`f \leftarrow \mathrm{softplus}(f) / \mathrm{mean}_k\,\mathrm{softplus}(f_k)`.

    Keeps every normalised logit in [0, K], so the LDR losses (and the unbounded-below mean margin)
    stay bounded. Per row of the last axis.

    >>> import torch
    >>> out = normalize_logits(torch.tensor([[0.0, 3.0, -2.0]]))
    >>> round(out.mean().item(), 6), bool((out >= 0).all())
    (1.0, True)
    """
    logits = _losses(logits, "logits")
    sp = torch.nn.functional.softplus(logits)
    return sp / sp.mean(-1, keepdim=True)
