r"""KL-regularised policy optimisation on a finite set of answers, and the KL estimators of RLHF.

The reference policy π_ref is the reference p, the trained policy π the model q. The usual
RLHF objective uses the reverse KL,

.. math::
    J_\beta(\pi) = \mathbb{E}_{\pi}[r] - \beta\,\mathrm{KL}(\pi \,\|\, \pi_{ref}),

whose maximiser is the Gibbs policy :math:`\pi^* \propto \pi_{ref}\, e^{r/\beta}`
(Korbak et al., 2022). With the forward KL, :math:`\mathbb{E}_\pi[r] - \beta\,\mathrm{KL}(\pi_{ref}\|\pi)`,
the stationarity condition gives :math:`\pi^*(y) = \beta\,\pi_{ref}(y)/(\Lambda - r(y))` with
Λ > max r fixed by normalisation (a 1-D solve; Deng et al., 2025).
"""

from __future__ import annotations

import math

import torch
from scipy.optimize import brentq

from .divergences import _kl_unchecked, _pair
from .validation import DIRECTIONS, check_choice, check_positive, check_same_shape

__all__ = ["kl_regularized_policy", "objective", "log_partition", "kl_estimators", "fit_policy"]


def _reward(reward, logp_ref: torch.Tensor) -> torch.Tensor:
    reward = torch.as_tensor(reward, dtype=logp_ref.dtype)
    check_same_shape("reward", reward, "logp_ref", logp_ref)
    if not torch.isfinite(reward).all():
        raise ValueError("reward must be finite everywhere; got a NaN or inf")
    return reward


def log_partition(logp_ref, reward, beta: float) -> torch.Tensor:
    r"""log Z for the reverse-KL optimum: :math:`\log \sum_y \pi_{ref}(y) e^{r(y)/\beta}`, per example.

    >>> import torch
    >>> ref = torch.tensor([0.5, 0.5], dtype=torch.float64).log()
    >>> round(log_partition(ref, torch.tensor([0.0, 1.0]), 1.0).item(), 6)  # log((1 + e) / 2)
    0.620115
    """
    beta = check_positive("beta", beta)
    logp_ref, _ = _pair(logp_ref, logp_ref, True, names=("logp_ref", "logp_ref"))
    reward = _reward(reward, logp_ref)
    return torch.logsumexp(logp_ref + reward / beta, dim=-1)


def _forward_solution(p_ref: torch.Tensor, r: torch.Tensor, beta: float) -> torch.Tensor:
    """π(y) = β p_ref(y) / (Λ − r(y)) with Λ solving Σ π = 1, for one row (float64)."""
    support = p_ref > 0
    r_max = float(r[support].max())
    gap = r_max - r  # ≥ 0 on the support

    def excess(log_t: float) -> float:  # Σ β p / (t + gap) − 1, decreasing in t = Λ − r_max
        t = math.exp(log_t)
        return float((beta * p_ref[support] / (t + gap[support])).sum()) - 1.0

    # At t = β the sum is ≤ 1; as t → 0 it grows without bound when the argmax has mass.
    hi = math.log(beta)
    lo = hi
    while excess(lo) < 0:
        lo -= 5.0
        if lo < -745:  # t underflows: the whole mass sits on the reward maximiser(s)
            break
    log_t = hi if excess(hi) >= 0 else (lo if lo < -745 else brentq(excess, lo, hi, xtol=1e-14, rtol=1e-14))
    t = math.exp(log_t)
    pi = torch.where(support, beta * p_ref / (t + gap), torch.zeros((), dtype=p_ref.dtype))
    return pi / pi.sum()  # removes the brentq tolerance (relative 1e-14), nothing more


def kl_regularized_policy(logp_ref, reward, beta: float, *, direction: str = "reverse") -> torch.Tensor:
    r"""Optimal policy of E_π[r] − β·D, with D = KL(π‖π_ref) (``"reverse"``) or KL(π_ref‖π) (``"forward"``).

    ``logp_ref`` is the reference policy π_ref (the reference p, first argument, as always);
    the result is the optimal policy π* (the model q) in log space.

    .. math::
        \text{reverse:}\quad \pi^*(y) = \frac{\pi_{ref}(y)\, e^{r(y)/\beta}}{Z}, \qquad
        \text{forward:}\quad \pi^*(y) = \frac{\beta\, \pi_{ref}(y)}{\Lambda - r(y)},\ \ \sum_y \pi^*(y) = 1

    Reverse KL keeps π* inside the support of π_ref and, for a rare answer of mass ε with
    a reward gap of 1, gives it :math:`\varepsilon e^{1/\beta}/(\varepsilon e^{1/\beta} + 1 - \varepsilon)`;
    forward KL gives it about :math:`1 - \beta` whenever β < 1 (RAPO, Deng et al., 2025).
    The forward solution is found by a bracketed 1-D root solve in float64.

    Parameters
    ----------
    logp_ref : Tensor, shape (..., K)
        Log-probabilities of the reference policy.
    reward : Tensor, shape (..., K)
    beta : float > 0
        The KL coefficient.
    direction : {"reverse", "forward"}

    Returns
    -------
    Tensor, shape (..., K)
        log π*.

    >>> import torch
    >>> ref = torch.tensor([0.5, 0.5], dtype=torch.float64).log(); r = torch.tensor([0.0, 1.0])
    >>> [round(v, 4) for v in kl_regularized_policy(ref, r, 1.0).exp().tolist()]
    [0.2689, 0.7311]
    """
    check_choice("direction", direction, DIRECTIONS)
    beta = check_positive("beta", beta)
    logp_ref, _ = _pair(logp_ref, logp_ref, True, names=("logp_ref", "logp_ref"))
    reward = _reward(reward, logp_ref)
    if direction == "reverse":
        return torch.log_softmax(logp_ref + reward / beta, dim=-1)
    p64 = logp_ref.detach().to(torch.float64).exp().reshape(-1, logp_ref.shape[-1])
    r64 = reward.detach().to(torch.float64).reshape(-1, logp_ref.shape[-1])
    rows = [_forward_solution(p, r, beta) for p, r in zip(p64, r64)]
    return torch.stack(rows).reshape(logp_ref.shape).log().to(logp_ref.dtype)


def objective(logpi, logp_ref, reward, beta: float, *, direction: str = "reverse") -> torch.Tensor:
    r"""The regularised objective :math:`\mathbb{E}_\pi[r] - \beta D`, per example.

    ``logpi`` is the policy being scored; ``logp_ref`` the reference. D is KL(π‖π_ref) for
    ``"reverse"`` and KL(π_ref‖π) for ``"forward"``. Differentiable in ``logpi``.

    >>> import torch
    >>> ref = torch.tensor([0.5, 0.5], dtype=torch.float64).log(); r = torch.tensor([0.0, 1.0])
    >>> best = kl_regularized_policy(ref, r, 1.0)
    >>> bool(torch.isclose(objective(best, ref, r, 1.0), log_partition(ref, r, 1.0)))
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    beta = check_positive("beta", beta)
    logpi, logp_ref = _pair(logpi, logp_ref, True, names=("logpi", "logp_ref"))
    reward = _reward(reward, logp_ref)
    pi = logpi.exp()
    expected = (pi * reward).sum(-1)
    d = _kl_unchecked(logpi, logp_ref) if direction == "reverse" else _kl_unchecked(logp_ref, logpi)
    return expected - beta * d


def kl_estimators(logq_x, logp_x) -> dict[str, torch.Tensor]:
    r"""Per-sample estimators of KL(q‖p) from samples x ~ q (Schulman, 2020).

    ``logq_x`` are log q(x) of the sampling policy (the model), ``logp_x`` log p(x) of the
    reference, at the same samples. With :math:`\rho = p(x)/q(x)`:

    .. math::
        k_1 = -\log\rho, \qquad k_2 = \tfrac12 (\log\rho)^2, \qquad k_3 = (\rho - 1) - \log\rho

    k1 is unbiased but can be negative; k3 is unbiased and ≥ 0; k2 is biased, low-variance.
    In TRL, ``kl_estimator="k1"`` is k1 and ``"k3"`` is k3 (both estimate KL(π‖π_ref)).

    Returns
    -------
    dict with keys "k1", "k2", "k3", each a Tensor of the samples' shape.

    >>> import torch
    >>> ks = kl_estimators(torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.0]))
    >>> [round(float(ks[k].mean()), 4) for k in ("k1", "k2", "k3")]
    [0.0, 0.5, 0.5431]
    """
    logq_x, logp_x = torch.as_tensor(logq_x), torch.as_tensor(logp_x)
    check_same_shape("logq_x", logq_x, "logp_x", logp_x)
    for name, v in (("logq_x", logq_x), ("logp_x", logp_x)):
        if torch.isnan(v).any():
            raise ValueError(f"{name} must not contain NaN; got NaN")
    if (logq_x == -math.inf).any():
        raise ValueError("logq_x must be finite: samples come from q, so q(x) > 0; got -inf")
    log_ratio = logp_x - logq_x
    return {"k1": -log_ratio, "k2": 0.5 * log_ratio ** 2, "k3": torch.expm1(log_ratio) - log_ratio}


def fit_policy(logp_ref, reward, beta: float, *, direction: str = "reverse", steps: int = 2000,
               lr: float = 0.05, init_logits=None) -> tuple[torch.Tensor, list[float]]:
    r"""Maximise :func:`objective` over a softmax policy with exact expected gradients (Adam).

    An independent route to the optimum of :func:`kl_regularized_policy`: no closed form,
    just gradient ascent on :math:`\mathbb{E}_\pi[r] - \beta D` over the logits.

    Parameters
    ----------
    logp_ref, reward : Tensor, shape (..., K)
    beta : float > 0
    direction : {"reverse", "forward"}
    steps : int ≥ 1
    lr : float > 0
    init_logits : Tensor, optional
        Starting logits (default: ``logp_ref`` where finite, else -30).

    Returns
    -------
    (log π, history)
        The trained policy's log-probabilities (float64) and the objective at every step.

    >>> import torch
    >>> ref = torch.tensor([0.5, 0.5], dtype=torch.float64).log(); r = torch.tensor([0.0, 1.0])
    >>> logpi, _ = fit_policy(ref, r, 1.0, steps=500, lr=0.1)
    >>> bool(torch.allclose(logpi.exp(), kl_regularized_policy(ref, r, 1.0).exp(), atol=1e-4))
    True
    """
    from .validation import check_int

    check_choice("direction", direction, DIRECTIONS)
    beta = check_positive("beta", beta)
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr)
    logp_ref, _ = _pair(logp_ref, logp_ref, True, names=("logp_ref", "logp_ref"))
    logp_ref = logp_ref.detach().to(torch.float64)
    reward = _reward(reward, logp_ref)
    if init_logits is None:
        init_logits = logp_ref.clamp_min(-30.0)
    logits = torch.as_tensor(init_logits, dtype=torch.float64).clone().requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        value = objective(torch.log_softmax(logits, -1), logp_ref, reward, beta, direction=direction).sum()
        (-value).backward()
        opt.step()
        history.append(value.item())
    return torch.log_softmax(logits.detach(), -1), history
