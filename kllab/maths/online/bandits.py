r"""Adversarial and stochastic K-armed bandits played by mirror steps: loss estimates, the one-round
stability term, regret bounds and a batched runner.

Part of :mod:`kllab.maths.online`: :func:`loss_estimate`, :func:`stability`, :func:`play_bandit`,
:class:`BanditRun`, :func:`regret_bound`, :func:`tuned_eta`, :func:`barrier_penalty`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..divergences import _as_tensor
from ..validation import check_int, check_log_probs, check_positive, check_real
from .mirror import DIVERGENCES, REGULARIZER, _INF, _divergence_name, _ftrl, _inverse_normalise, one_thread

__all__ = ["loss_estimate", "stability", "BanditRun", "play_bandit", "barrier_penalty", "regret_bound", "tuned_eta"]


def loss_estimate(loss, arm, logp, *, shift: float = 0.0) -> torch.Tensor:
    r"""Importance-weighted estimate of every arm's loss from the one loss observed; ``logp`` is the sampling policy.

    .. math::
        \hat\ell_i = s + (\ell - s)\,\frac{\mathbb 1[i = a]}{p_a}

    Unbiased for every shift s: :math:`\mathbb{E}_{a\sim p}[\hat\ell_i] = \ell_i`. With s = 0 (the
    standard estimator) it is never negative for losses in [0, 1]; with s = 1 (a loss written as one
    minus a gain) the played arm gets :math:`1 - (1-\ell)/p_a`, hugely negative when :math:`p_a` is
    small. Linear-function-approximation estimators in adversarial MDPs behave like the second one
    (Dai et al., 2023).

    Parameters
    ----------
    loss : Tensor, shape (...)
        The loss of the arm that was played.
    arm : LongTensor, shape (...)
        Which arm was played.
    logp : Tensor, shape (..., K)
        Log-probabilities the arm was drawn from.
    shift : float
        The shift s.

    Returns
    -------
    Tensor, shape (..., K)

    >>> import torch
    >>> logp = torch.tensor([0.8, 0.2], dtype=torch.float64).log()
    >>> loss_estimate(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1), logp, shift=1.0).tolist()
    [1.0, -4.0]
    """
    shift = check_real("shift", shift)
    logp = _as_tensor(logp)
    check_log_probs("logp", logp)
    loss = torch.as_tensor(loss, dtype=logp.dtype)
    arm = torch.as_tensor(arm)
    if arm.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"arm must be an integer tensor; got dtype {arm.dtype}")
    if loss.shape != logp.shape[:-1] or arm.shape != logp.shape[:-1]:
        raise ValueError(f"loss and arm must have shape logp.shape[:-1] = {tuple(logp.shape[:-1])}; "
                         f"got {tuple(loss.shape)} and {tuple(arm.shape)}")
    if ((arm < 0) | (arm >= logp.shape[-1])).any():
        raise ValueError(f"arm must be in [0, {logp.shape[-1] - 1}]; got {arm.min().item()}..{arm.max().item()}")
    arm = arm.long()
    if (logp.gather(-1, arm.unsqueeze(-1)) == -_INF).any():
        raise ValueError("arm must have positive probability under logp (it was drawn from it); got an arm of mass 0")
    return _estimate(loss.unsqueeze(-1), arm.unsqueeze(-1), logp.exp(), shift)


def _estimate(loss, arm, p, shift):
    """loss_estimate on probabilities; ``loss`` and ``arm`` of shape (..., 1), ``shift`` broadcastable."""
    base = torch.zeros_like(p) + shift
    return base.scatter_add(-1, arm, (loss - shift) / p.gather(-1, arm))


def stability(logp, loss_est, eta: float, *, divergence: str = "reverse") -> torch.Tensor:
    r"""The most one round can cost in the regret decomposition of a mirror step, per example.

    ``logp`` is the iterate :math:`p_t` that played the round, ``loss_est`` the estimate
    :math:`\hat\ell_t` it then receives. With the proximity term D of ``divergence`` (anchored at
    :math:`p_t`, extended to the positive orthant), the supremum has a closed form:

    .. math::
        \sup_{q > 0}\ \langle \hat\ell, p - q\rangle - \tfrac1\eta D(q, p) =
        \begin{cases} \tfrac1\eta \sum_i p_i\, \phi_{\exp}(\eta\hat\ell_i) & \text{reverse KL} \\
          \tfrac1\eta \sum_i p_i\, \phi_{\log}(\eta\hat\ell_i) & \text{forward KL} \\
          \tfrac1\eta \sum_i \phi_{\log}(\eta\, p_i \hat\ell_i) & \text{Itakura-Saito} \end{cases}
        \qquad \phi_{\exp}(a) = e^{-a} - 1 + a, \quad \phi_{\log}(a) = a - \log(1 + a)

    (the Bregman divergence of the conjugate regulariser; :math:`\phi_{\log} = \infty` for a ≤ -1). For
    a negative estimate the reverse KL pays :math:`e^{\eta|\hat\ell_i|}`, the forward KL is infinite
    once :math:`\eta\hat\ell_i \le -1`, and Itakura-Saito stays finite as long as
    :math:`\eta p_i\hat\ell_i > -1`, whatever :math:`\hat\ell_i` itself: the estimate is tempered by the
    probability of the arm that produced it.

    Parameters
    ----------
    logp : Tensor, shape (..., K)
    loss_est : Tensor, shape (..., K)
    eta : float > 0
    divergence : {"reverse", "forward", "itakura_saito"}

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> logp = torch.tensor([0.99, 0.01], dtype=torch.float64).log()
    >>> est = torch.tensor([1.0, -99.0], dtype=torch.float64)      # shifted estimate: arm 1 played, loss 0
    >>> [round(stability(logp, est, 0.1, divergence=d).item(), 3) for d in DIVERGENCES]
    [1991.995, inf, 0.098]
    """
    name = _divergence_name(divergence)
    eta = check_positive("eta", eta)
    logp, loss_est = _as_tensor(logp), _as_tensor(loss_est)
    check_log_probs("logp", logp)
    if loss_est.shape != logp.shape:
        raise ValueError(f"loss_est and logp must have the same shape; got {tuple(loss_est.shape)} and {tuple(logp.shape)}")
    return _stability(logp.exp(), loss_est, eta, name)


def _phi_log(a):
    return torch.where(a > -1, a - torch.log1p(a.clamp_min(-1 + 1e-300)), torch.full((), _INF, dtype=a.dtype))


def _stability(p, est, eta, name):
    """:func:`stability` without checks; ``eta`` a float or a tensor broadcastable to ``p``."""
    if name == "reverse":
        a = eta * est
        terms = p * (torch.expm1(-a) + a)
    elif name == "forward":
        terms = torch.where(p > 0, p * _phi_log(eta * est), torch.zeros((), dtype=p.dtype))
    else:
        terms = _phi_log(eta * p * est)
    return (terms / eta).sum(-1)


def barrier_penalty(n_arms, horizon):
    r"""Regulariser range :math:`\eta\,[\psi(u) - \psi(p_1)]` of the log-barrier against the comparator u.

    The log-barrier is infinite at a vertex, so the regret against the best arm is taken against
    :math:`u = (1 - \frac{K-1}{TK})\, e_{i^*} + \frac{1}{TK}\sum_{i\ne i^*} e_i`, which costs at most one
    unit of loss over T rounds; with :math:`p_1` uniform,

    .. math::
        C_K = (K-1)\log(TK) - \log\!\big(1 - \tfrac{K-1}{TK}\big) - K\log K .

    Works elementwise on tensors or on plain numbers.

    >>> round(float(barrier_penalty(2, 100)), 4)
    3.917
    """
    k, t = torch.as_tensor(n_arms, dtype=torch.float64), torch.as_tensor(horizon, dtype=torch.float64)
    return (k - 1) * torch.log(t * k) - torch.log1p(-(k - 1) / (t * k)) - k * torch.log(k)


def regret_bound(n_arms: int, horizon: int, eta: float, *, divergence: str = "reverse", shift: float = 0.0) -> float:
    r"""Closed-form bound on the expected regret of a mirror step with losses in [0, 1] and :func:`loss_estimate`.

    .. math::
        \text{reverse, } s = 0:\quad \mathbb{E}[R_T] \le \frac{\log K}{\eta} + \frac{\eta\, T K}{2}
        \qquad \text{itakura\_saito:}\quad \mathbb{E}[R_T] \le \frac{C_K}{\eta} + \frac{\eta\,T}{2\,(1-\eta)^{[s>0]}} + 1

    Derivation: the FTRL decomposition, regret :math:`\le \psi(u) - \psi(p_1) + \sum_t` :func:`stability`.
    For the reverse KL (entropy), :math:`\phi_{\exp}(a) \le a^2/2` needs a ≥ 0, so the bound holds for the
    standard estimator only, and is ``inf`` for any shift s > 0 (estimates below :math:`-1/\eta` are
    exponentiated). For Itakura-Saito (log-barrier), :math:`\phi_{\log}(a) \le a^2/(2\min(1, 1+a))` for a > -1
    (:math:`a^2/(2(1+a))` for a ≤ 0, :math:`a^2/2` for a ≥ 0) and, for
    :math:`s \in [0, 1]`, :math:`a_i = \eta p_i\hat\ell_i \ge -\eta s`, with
    :math:`\mathbb{E}\sum_i p_i^2\hat\ell_i^2 \le 1`; it needs η < 1. :math:`C_K` is :func:`barrier_penalty`,
    the final 1 pays for the comparator. The forward KL is the Bregman divergence of a regulariser that
    moves with the iterate, so the decomposition does not apply: ``inf``.

    Returns
    -------
    float (``inf`` where the analysis gives no finite bound)

    >>> round(regret_bound(5, 3000, tuned_eta(5, 3000)), 1)      # sqrt(2 T K log K)
    219.7
    """
    name = _divergence_name(divergence)
    k = check_int("n_arms", n_arms, low=2)
    t = check_int("horizon", horizon, low=1)
    eta = check_positive("eta", eta)
    shift = check_real("shift", shift, low=0.0, high=1.0)
    if name == "reverse":
        return math.log(k) / eta + eta * t * k / 2 if shift == 0 else _INF
    if name == "forward" or eta >= 1:
        return _INF
    variance = eta * t / 2 if shift == 0 else eta * t / (2 * (1 - eta))
    return float(barrier_penalty(k, t)) / eta + variance + 1.0


def tuned_eta(n_arms: int, horizon: int, *, divergence: str = "reverse") -> float:
    r"""The step size that minimises :func:`regret_bound` with the standard estimator (s = 0).

    .. math::
        \eta^*_{\rm reverse} = \eta^*_{\rm forward} = \sqrt{\frac{2\log K}{TK}}, \qquad
        \eta^*_{\rm itakura\_saito} = \sqrt{\frac{2 C_K}{T}}

    The forward KL has no bound of its own; near :math:`p_t` both KL directions are
    :math:`\tfrac12\chi^2`, so it gets the reverse KL's step.

    >>> round(tuned_eta(5, 3000), 4), round(tuned_eta(5, 3000, divergence="itakura_saito"), 4)
    (0.0146, 0.1424)
    """
    name = _divergence_name(divergence)
    k = check_int("n_arms", n_arms, low=2)
    t = check_int("horizon", horizon, low=1)
    if name == "itakura_saito":
        return math.sqrt(2 * float(barrier_penalty(k, t)) / t)
    return math.sqrt(2 * math.log(k) / (t * k))


@dataclass
class BanditRun:
    r"""What :func:`play_bandit` records; ``B`` is the batch of problems, ``S`` the runs per problem.

    Attributes
    ----------
    regret : Tensor, shape (B, S, T)
        Cumulative pseudo-regret :math:`\sum_{s\le t} \langle p_s - e_{i^*}, \mu\rangle`.
    estimated_regret : Tensor, shape (B, S)
        :math:`\sum_t \langle p_t - u, \hat\ell_t\rangle` on the estimated losses, against the comparator
        u (the best arm itself, or for Itakura-Saito its mixture of :func:`barrier_penalty`).
    penalty : Tensor, shape (B,)
        :math:`\psi(u) - \psi(p_1)` (including the 1/η); ``nan`` for the forward KL, which has no fixed ψ.
    stability : Tensor, shape (B, S)
        Sum over rounds of :func:`stability`.
    min_prob : Tensor, shape (B, S)
        Smallest probability any present arm had at any round.
    """

    regret: torch.Tensor
    estimated_regret: torch.Tensor
    penalty: torch.Tensor
    stability: torch.Tensor
    min_prob: torch.Tensor


def play_bandit(means, horizon: int, eta, *, divergence: str = "reverse", shift=0.0, n_runs: int = 8,
                seed: int = 0) -> BanditRun:
    r"""Run a mirror step with importance-weighted loss estimates on stochastic Bernoulli bandits, in a batch.

    Each row of ``means`` is one bandit problem (the mean loss of each arm, in [0, 1]; an arm with mean
    ``nan`` is absent, so rows can have different numbers of arms). Each problem is played ``n_runs``
    times from the uniform policy: at round t draw :math:`a_t \sim p_t`, observe
    :math:`\ell_t \sim \mathrm{Bernoulli}(\mu_{a_t})`, form :func:`loss_estimate`, and take
    :func:`mirror_step` with ``divergence`` (for ``"reverse"`` and ``"itakura_saito"`` computed as the
    equal :func:`ftrl` point of the cumulative estimate: Exp3 and log-barrier FTRL). For those two the
    record satisfies, run by run, ``estimated_regret <= penalty + stability`` (the FTRL decomposition).

    Parameters
    ----------
    means : Tensor, shape (B, K)
    horizon : int >= 1
        Rounds T.
    eta : float or Tensor, shape (B,)
        Step size of each problem.
    divergence : {"reverse", "forward", "itakura_saito"}
    shift : float or Tensor, shape (B,)
        Estimator shift s of each problem, in [0, 1].
    n_runs : int >= 1
        Independent runs S per problem.
    seed : int

    Returns
    -------
    BanditRun

    >>> import torch
    >>> run = play_bandit(torch.tensor([[0.2, 0.8]], dtype=torch.float64), 200, 0.2, n_runs=4)
    >>> run.regret.shape, bool((run.estimated_regret <= run.penalty[:, None] + run.stability + 1e-9).all())
    (torch.Size([1, 4, 200]), True)
    """
    name = _divergence_name(divergence)
    horizon = check_int("horizon", horizon, low=1)
    n_runs = check_int("n_runs", n_runs, low=1)
    seed = check_int("seed", seed)
    means = _as_tensor(means).to(torch.float64)
    if means.ndim != 2:
        raise ValueError(f"means must have shape (B, K); got {tuple(means.shape)}")
    present = ~torch.isnan(means)
    k_row = present.sum(-1)
    if (k_row < 2).any():
        raise ValueError("means must give every problem at least 2 arms (nan marks an absent arm); got fewer")
    if ((means[present] < 0) | (means[present] > 1)).any():
        raise ValueError("means must lie in [0, 1] (Bernoulli losses); got a value outside")
    b, k = means.shape
    eta = torch.as_tensor(eta, dtype=torch.float64).expand(b).clone()
    shift = torch.as_tensor(shift, dtype=torch.float64).expand(b).clone()
    if not (torch.isfinite(eta).all() and (eta > 0).all()):
        raise ValueError(f"eta must be finite and > 0; got {eta.tolist()}")
    if ((shift < 0) | (shift > 1)).any():
        raise ValueError(f"shift must be in [0, 1]; got {shift.tolist()}")

    gen = torch.Generator().manual_seed(seed)
    zero = torch.zeros((), dtype=torch.float64)
    mu = torch.where(present, means, zero)                                              # (B, K)
    best = torch.where(present, means, torch.full((), _INF, dtype=torch.float64)).argmin(-1)
    logp_init = torch.where(present, -torch.log(k_row.double())[:, None], torch.full((), -_INF, dtype=torch.float64))
    logp_init = logp_init[:, None, :].expand(b, n_runs, k)
    eta_b, shift_b = eta[:, None, None], shift[:, None, None]                            # broadcast over (B, S, K)

    # The comparator: the best arm, or for the log-barrier the best arm mixed with 1/(TK) of every other one.
    comparator = torch.zeros(b, k, dtype=torch.float64).scatter_(-1, best[:, None], 1.0)
    if name == "itakura_saito":
        off = 1.0 / (horizon * k_row.double())[:, None]
        comparator = torch.where(present, off, zero)
        comparator.scatter_(-1, best[:, None], 1.0 - (k_row.double()[:, None] - 1) * off)
        penalty = barrier_penalty(k_row, horizon) / eta
    elif name == "reverse":
        penalty = torch.log(k_row.double()) / eta
    else:
        penalty = torch.full((b,), math.nan, dtype=torch.float64)

    regularizer_name = REGULARIZER.get(name)
    cum = torch.zeros(b, n_runs, k, dtype=torch.float64)
    logp = logp_init.clone()
    regret = torch.empty(b, n_runs, horizon, dtype=torch.float64)
    est_regret = torch.zeros(b, n_runs, dtype=torch.float64)
    stab = torch.zeros(b, n_runs, dtype=torch.float64)
    min_prob = torch.ones(b, n_runs, dtype=torch.float64)
    gap = torch.where(present, mu - mu.gather(-1, best[:, None]), zero)[:, None, :]
    mu_b, comparator_b = mu[:, None, :].expand(b, n_runs, k), comparator[:, None, :]
    absent = (~present)[:, None, :]
    total, c = torch.zeros(b, n_runs, dtype=torch.float64), None
    with one_thread():
        for t in range(horizon):
            p = logp.exp()
            min_prob = torch.minimum(min_prob, p.masked_fill(absent, 1.0).amin(-1))
            total = total + (p * gap).sum(-1)
            regret[:, :, t] = total
            arm = torch.multinomial(p.reshape(b * n_runs, k), 1, generator=gen).reshape(b, n_runs, 1)
            loss = (torch.rand(b, n_runs, 1, generator=gen, dtype=torch.float64) < mu_b.gather(-1, arm)).double()
            est = _estimate(loss, arm, p, shift_b)  # absent arms: p = 0 and an estimate of s, harmless
            est_regret = est_regret + ((p - comparator_b) * est).sum(-1)
            stab = stab + _stability(p, est, eta_b, name)
            if regularizer_name is None:            # forward KL: the mirror step itself, p_(t+1) = p_t / (lambda + eta est)
                c = torch.ones_like(total[..., None]) if c is None else c
                logp, c = _inverse_normalise(eta_b * est, c, weight=p)
                continue
            cum = cum + est
            if c is not None:   # the estimate's constant part s moves the log-barrier's normaliser by -eta s exactly
                c = c - eta_b * shift_b
            logp, c = _ftrl(cum, eta_b, regularizer_name, logp_init, c, fast=True)
    return BanditRun(regret, est_regret, penalty, stab, min_prob)
