r"""Best-of-n selection of a discrete policy, its KL to the policy, and iterated best-of-n fine-tuning.

Part of :mod:`kllab.maths.rlhf`. Draw n answers from π and keep the one with the highest reward
(ties broken uniformly at random). With F the CDF of π in reward order, an answer y whose reward
level has mass m(y) and lies above mass F_<(y) is kept with probability

.. math::
    P_n(y) = \frac{\pi(y)}{m(y)}\Big[\big(F_<(y) + m(y)\big)^n - F_<(y)^n\Big],

which is :math:`F(y)^n - F(y^-)^n` when all rewards differ. For any π,
:math:`\mathrm{KL}(P_n\|\pi) \le \log n - (n-1)/n`, the value of the continuous case
(Beirami et al., 2024): discretising the uniform quantile u ~ U(0, 1) of the reward can only
lose information (data processing), and ties discretise more coarsely.

SuperHF (Mukobi et al., 2023) iterates "sample n, keep the best, fine-tune on it with a KL prior
to the base model"; with an exact fit every round that is :func:`superhf_rounds`.
"""

from __future__ import annotations

import math

import torch

from ..divergences import _pair
from ..validation import DIRECTIONS, check_choice, check_int
from .optima import _beta, _reward, kl_prior_fit

__all__ = ["best_of_n", "best_of_n_kl_bound", "superhf_rounds"]


def best_of_n(logp, reward, n: int) -> torch.Tensor:
    r"""Best-of-n distribution of a discrete policy; ``logp`` is the sampled policy π (the reference).

    .. math::
        P_n(y) = \frac{\pi(y)}{m(y)}\Big[\big(F_<(y) + m(y)\big)^n - F_<(y)^n\Big]

    with :math:`F_<(y) = \sum_{r(y') < r(y)} \pi(y')` and :math:`m(y) = \sum_{r(y') = r(y)} \pi(y')`:
    the chance that the best of n independent draws has y's reward level, shared within the
    level in proportion to π (uniform tie-breaking). Computed in log space, stable for tiny
    masses and for the top answer (:math:`1 - (1 - \pi)^n` via ``expm1``/``log1p``).

    Parameters
    ----------
    logp : Tensor, shape (..., K)
        Log-probabilities of π; ``-inf`` allowed.
    reward : Tensor, shape (..., K)
        Finite rewards; equal values are ties.
    n : int ≥ 1
        Number of draws (n = 1 returns π).

    Returns
    -------
    Tensor, shape (..., K)
        log P_n.

    >>> import torch
    >>> pi = torch.full((4,), 0.25, dtype=torch.float64).log()
    >>> [round(v, 4) for v in best_of_n(pi, torch.tensor([0.0, 1.0, 2.0, 3.0]), 2).exp().tolist()]  # (k/4)^2 - ((k-1)/4)^2
    [0.0625, 0.1875, 0.3125, 0.4375]
    >>> [round(v, 4) for v in best_of_n(pi, torch.tensor([0.0, 1.0, 1.0, 3.0]), 2).exp().tolist()]  # a tie shares its level
    [0.0625, 0.25, 0.25, 0.4375]
    """
    n = check_int("n", n, low=1)
    logp, _ = _pair(logp, logp, True, names=("logp", "logp"))
    reward = _reward(reward, logp)
    # Validated to 1e-4 above; remove the rounding as well, since best-of-n raises the total mass to the
    # power n (iterated, a 1e-16 error would grow n-fold per round).
    logp = logp - torch.logsumexp(logp, -1, keepdim=True)
    # Sort by reward (O(K log K)); a reward level is a run of equal sorted rewards.
    r_sorted, order = reward.sort(dim=-1, stable=True)
    lp = logp.gather(-1, order)
    neg_inf = torch.full((), -math.inf, dtype=lp.dtype)
    new_level = torch.ones_like(r_sorted, dtype=torch.bool)
    new_level[..., 1:] = r_sorted[..., 1:] != r_sorted[..., :-1]
    level = new_level.long().cumsum(-1) - 1                                       # level id of each answer
    empty = torch.full_like(lp, -math.inf)
    # log m(y), the mass of y's level: a log-sum-exp per level (log space: masses below 1e-308 are legal).
    top = empty.scatter_reduce(-1, level, lp, "amax", include_self=False).gather(-1, level)
    shifted = torch.where(top > -math.inf, (lp - top).exp(), torch.zeros((), dtype=lp.dtype))
    log_mass = torch.zeros_like(lp).scatter_add_(-1, level, shifted).gather(-1, level).log() + top
    # log (F_<(y) + m(y)): the cumulative mass at the end of y's level.
    log_cum = torch.logcumsumexp(lp, -1)
    log_f_hi = empty.scatter_reduce(-1, level, log_cum, "amax", include_self=False).gather(-1, level)
    # P_level = F_hi^n (1 - (1 - m / F_hi)^n), with (1 - x)^n = exp(n log1p(-x)): exact for the top answer too.
    # Where n m / F_hi < 1e-10 (m may be below the smallest double), 1 - (1 - x)^n = n x (1 - (n - 1) x / 2 + O(n^2 x^2)).
    log_frac = (log_mass - log_f_hi).clamp(max=0.0)
    frac = log_frac.exp()
    tiny = log_frac + math.log(n) < math.log(1e-10)
    direct = torch.log(-torch.expm1(n * torch.log1p(-torch.where(tiny, torch.zeros((), dtype=lp.dtype), frac))))
    series = math.log(n) + log_frac + torch.log1p(-0.5 * (n - 1) * frac)
    log_level = n * log_f_hi + torch.where(tiny, series, direct)
    out_sorted = torch.where(lp > -math.inf, lp - log_mass + log_level, neg_inf)
    return torch.empty_like(out_sorted).scatter_(-1, order, out_sorted)


def best_of_n_kl_bound(n: int) -> float:
    r"""The bound :math:`\log n - (n-1)/n` on KL(best-of-n ‖ π), reached only in the continuous, tie-free limit.

    >>> round(best_of_n_kl_bound(4), 6)
    0.636294
    """
    n = check_int("n", n, low=1)
    return math.log(n) - (n - 1) / n


def superhf_rounds(logp_base, reward, n: int, beta, *, rounds: int, direction: str = "forward",
                   logp_init=None) -> torch.Tensor:
    r"""Iterate best-of-n filtering and exact fine-tuning with a KL prior; ``logp_base`` is the prior π0.

    Round t keeps the best of n draws from π_t (:func:`best_of_n`) and fits it by cross-entropy
    with a KL prior to the base model (:func:`~kllab.maths.rlhf.kl_prior_fit`):

    .. math::
        \pi_{t+1} = \arg\min_\pi\ \mathrm{CE}\big(P_n(\pi_t), \pi\big) + \beta D, \qquad
        D = \mathrm{KL}(\pi_0\|\pi)\ (\texttt{"forward"}),\ \mathrm{KL}(\pi\|\pi_0)\ (\texttt{"reverse"}).

    With β → 0 the rounds climb to the proxy reward's argmax (reward hacking when the proxy is
    wrong there); the prior holds the policy near π0. SuperHF's code computes the forward KL
    (per token, on the filtered completions).

    Parameters
    ----------
    logp_base : Tensor, shape (..., K)
        The base (prior) policy π0.
    reward : Tensor, shape (..., K)
        The reward used for filtering (the proxy reward model).
    n : int ≥ 1
    beta : float > 0, or Tensor broadcastable to shape (...)
    rounds : int ≥ 0
    direction : {"forward", "reverse"}
    logp_init : Tensor, optional
        π at round 0 (default: π0).

    Returns
    -------
    Tensor, shape (rounds + 1, ..., K)
        log π_t for t = 0, …, rounds.

    >>> import torch
    >>> base = torch.full((3,), 1 / 3, dtype=torch.float64).log(); r = torch.tensor([0.0, 1.0, 2.0])
    >>> path = superhf_rounds(base, r, 4, 1e-3, rounds=30)
    >>> round(path[-1].exp()[2].item(), 3)   # nearly all mass on the argmax of the reward
    0.999
    """
    n = check_int("n", n, low=1)
    rounds = check_int("rounds", rounds, low=0)
    check_choice("direction", direction, DIRECTIONS)
    logp_base, _ = _pair(logp_base, logp_base, True, names=("logp_base", "logp_base"))
    logp_base = logp_base.detach().to(torch.float64)
    reward = _reward(reward, logp_base)
    beta = _beta(beta, logp_base.shape[:-1])
    logpi = logp_base if logp_init is None else _pair(logp_init, logp_base, True, names=("logp_init", "logp_base"))[0]
    path = [logpi.to(torch.float64)]
    for _ in range(rounds):
        path.append(kl_prior_fit(best_of_n(path[-1], reward, n), logp_base, beta, direction=direction))
    return torch.stack(path)
