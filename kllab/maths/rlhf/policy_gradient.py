r"""Policy-gradient training of a tabular softmax policy on reward minus a KL term built from an estimator.

Part of :mod:`kllab.maths.rlhf`. This is the KDRL update (Xu et al., 2025) on a bandit: for every
prompt (row), draw a group of G answers from π = softmax(z), and ascend

.. math::
    \frac1G \sum_{i=1}^G \Big[A_i \log\pi(x_i) - \beta\, k(x_i; z)\Big], \qquad
    A_i = r(x_i) - \frac{1}{G-1}\sum_{j\ne i} r(x_j),

with k one of Schulman's estimators of KL(π‖π_T) to the teacher π_T, differentiated as a loss
(samples fixed). The leave-one-out baseline keeps the reward term unbiased, so the expected
update is :math:`\nabla\mathbb{E}_\pi[r] - \beta\,\mathbb{E}_\pi[\nabla k]`: with k2 that is the
gradient of :math:`\mathbb{E}_\pi[r] - \beta\mathrm{KL}(\pi\|\pi_T)` (fixed point: the Gibbs
policy), with k3 of :math:`\mathbb{E}_\pi[r] - \beta\mathrm{KL}(\pi_T\|\pi)` (fixed point: the
forward-KL optimum), and k1 contributes nothing. ``group=None`` uses the exact expectation
instead of samples (autograd on the sums over all answers).

GRPO's own advantage, :math:`(r_i - \bar r)/\mathrm{std}(r)`, differs in two ways this module
leaves out on purpose: the group mean including :math:`r_i` scales the reward gradient by
(G − 1)/G, and the division by the standard deviation rescales the reward per prompt.
"""

from __future__ import annotations

import math  # noqa: F401 (doctests)
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..divergences import _pair
from ..optim import Adam
from ..validation import check_choice, check_int, check_positive, check_real
from .estimators import ESTIMATORS, _estimators_unchecked
from .optima import _reward

__all__ = ["TrainingRun", "kl_penalized_training"]


def _pick(ks: dict[str, torch.Tensor], which: torch.Tensor) -> torch.Tensor:
    """Per row (the leading shape of ``which``), the estimator ``ESTIMATORS[which]``, over the last axis."""
    stacked = torch.stack([ks[name] for name in ESTIMATORS], -1)              # (..., M, 3)
    index = which[..., None, None].expand(*stacked.shape[:-1], 1)
    return stacked.gather(-1, index).squeeze(-1)


@dataclass
class TrainingRun:
    """The result of :func:`kl_penalized_training`.

    Attributes
    ----------
    logpi : Tensor, shape (..., K)
        The final policy's log-probabilities.
    steps : list of int
        The steps at which :attr:`path` was recorded (0 is the start).
    path : Tensor, shape (len(steps), ..., K)
        log π at those steps.
    """

    logpi: torch.Tensor
    steps: list[int] = field(default_factory=list)
    path: torch.Tensor | None = None


def kl_penalized_training(logits, logp_ref, reward, beta: float, *, estimator: str | Sequence[str] = "k2", steps: int = 300,
                          lr: float = 1.0, group: int | None = 8, seed: int = 0, optimizer: str = "sgd",
                          snapshots: Sequence[int] | None = None) -> TrainingRun:
    r"""Train softmax logits on reward − β·(KL estimator as a loss); ``logp_ref`` is the reference (teacher).

    Gradient ascent (plain steps of size ``lr``, or Adam) on, per row,

    .. math::
        \frac1G \sum_i \Big[A_i \log\pi(x_i) - \beta\, k(x_i; z)\Big]
        \quad\text{or, with } \texttt{group=None},\quad
        \mathbb{E}_\pi[r] - \beta \sum_x \pi(x)\big|_{\text{fixed}}\, k(x; z) ,

    where the second form is the exact expectation of the first (A_i with a leave-one-out
    baseline). See the module docstring for the fixed points.

    Parameters
    ----------
    logits : Tensor, shape (..., K)
        Starting logits (one row per prompt).
    logp_ref : Tensor, shape (..., K)
        The teacher (reference) policy; must be > 0 everywhere.
    reward : Tensor, shape (..., K)
    beta : float ≥ 0
        Weight of the KL term (0 is plain RL).
    estimator : {"k1", "k2", "k3"}, or a sequence of them
        A sequence gives one estimator per slice of the leading axis (its length must be
        ``logits.shape[0]``): several independent runs side by side, in one loop.
    steps : int ≥ 1
    lr : float > 0
    group : int ≥ 2 or None
        Answers sampled per row and step; None for exact expected gradients.
    seed : int
        Seed of the sampling.
    optimizer : {"sgd", "adam"}
        Plain gradient steps (the policy-gradient update itself) or Adam (faster to a fixed point
        with exact gradients; the fixed point is the same).
    snapshots : sequence of int, optional
        Steps at which to record π (default: every step).

    Returns
    -------
    TrainingRun

    >>> import torch
    >>> teacher = torch.tensor([0.35, 0.65], dtype=torch.float64).log(); r = torch.tensor([1.0, 0.0])
    >>> run = kl_penalized_training(torch.zeros(2), teacher, r, 1.0, group=None, steps=400)
    >>> star = 0.35 * math.e / (0.35 * math.e + 0.65)   # the Gibbs optimum with the teacher as reference
    >>> abs(run.logpi.exp()[0].item() - star) < 1e-6
    True
    """
    names = [estimator] if isinstance(estimator, str) else list(estimator)
    for name in names:
        check_choice("estimator", name, ESTIMATORS)
    beta = check_real("beta", beta, low=0.0)
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr)
    if group is not None:
        group = check_int("group", group, low=2)
    seed = check_int("seed", seed)
    optimizer = check_choice("optimizer", optimizer, ("sgd", "adam"))
    z = torch.as_tensor(logits, dtype=torch.float64).detach().clone()
    logp_ref = torch.as_tensor(logp_ref, dtype=torch.float64).detach()
    _pair(torch.log_softmax(z, -1), logp_ref, True, names=("logits", "logp_ref"))
    if (logp_ref == -torch.inf).any():
        raise ValueError("logp_ref must be > -inf everywhere (a softmax policy samples every answer); got -inf")
    reward = _reward(reward, logp_ref).to(torch.float64)
    if isinstance(estimator, str):
        which = torch.full(z.shape[:-1], ESTIMATORS.index(estimator), dtype=torch.long)
    else:
        if z.ndim < 2 or len(names) != z.shape[0]:
            raise ValueError(f"estimator must name one estimator per slice of the leading axis "
                             f"({z.shape[0] if z.ndim >= 2 else 'no leading axis'}); got {len(names)}")
        idx = torch.tensor([ESTIMATORS.index(n) for n in names], dtype=torch.long)
        which = idx.reshape((-1,) + (1,) * (z.ndim - 2)).expand(z.shape[:-1])
    keep = set(range(steps + 1)) if snapshots is None else {int(s) for s in snapshots if 0 <= int(s) <= steps}
    gen = torch.Generator().manual_seed(seed)
    k = z.shape[-1]
    path, recorded = [], []
    z = z.requires_grad_(True)
    adam = Adam([z], lr=lr, maximize=True) if optimizer == "adam" else None
    for step in range(steps + 1):
        if step in keep:
            recorded.append(step)
            path.append(torch.log_softmax(z.detach(), -1))
        if step == steps:
            break
        logpi = torch.log_softmax(z, -1)
        if group is None:
            weight = logpi.detach().exp()
            kl_term = (weight * _pick(_estimators_unchecked(logpi, logp_ref), which)).sum(-1)
            value = (logpi.exp() * reward).sum(-1) - beta * kl_term
        else:
            rows = logpi.reshape(-1, k)
            idx = torch.multinomial(rows.detach().exp(), group, replacement=True, generator=gen)   # (rows, G)
            lp_x = rows.gather(-1, idx)
            r_x = reward.reshape(-1, k).gather(-1, idx)
            advantage = r_x - (r_x.sum(-1, keepdim=True) - r_x) / (group - 1)
            k_x = _pick(_estimators_unchecked(lp_x, logp_ref.reshape(-1, k).gather(-1, idx)), which.reshape(-1))
            value = (advantage * lp_x - beta * k_x).mean(-1)
        (grad,) = torch.autograd.grad(value.sum(), z)
        if adam is None:
            with torch.no_grad():
                z += lr * grad
        else:
            z.grad = grad
            adam.step()
    return TrainingRun(logpi=torch.log_softmax(z.detach(), -1), steps=recorded, path=torch.stack(path) if path else None)
