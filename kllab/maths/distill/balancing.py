r"""Balancing forward and reverse KL by the teacher-student entropy gap, in online distillation.

Part of :mod:`kllab.maths.distill`: :func:`entropy_balance_weight`, :func:`balanced_kd_loss`,
:func:`train_teacher`, :func:`distill_students` (BD-KD, arXiv:2212.12965).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..divergences import _as_tensor, _kl_unchecked, entropy, log_softmax_t
from ..optim import Adam
from ..validation import check_choice, check_int, check_no_nan, check_positive, check_real, check_same_shape
from .kd import kd_loss

if TYPE_CHECKING:   # imported where it is used, so that the losses never depend on the training machinery
    from ..ensemble import EnsembleMLP

__all__ = ["entropy_balance_weight", "balanced_kd_loss", "ONLINE_LOSSES", "TeacherTrajectory", "train_teacher", "distill_students"]


# --- Balancing the two directions by the entropy gap (BD-KD, P08) ---------------------------------


def entropy_balance_weight(logp_teacher, logp_student, sharpness: float = 5.0) -> torch.Tensor:
    r"""Weight of the reverse KL in BD-KD-style balancing; ``logp_teacher`` is the reference p.

    .. math::
        w = \sigma\big(\kappa\, (H(q) - H(p))\big) \in (0, 1)

    A student more uncertain than its teacher (:math:`H(q) > H(p)`) leans on the mode-seeking reverse
    KL, which sharpens it; a student more confident than its teacher leans on the mass-covering
    forward KL, which softens it. :math:`\kappa \to \infty` is a hard switch, :math:`\kappa = 0` the
    even mix (half the Jeffreys divergence). This is our smooth version of BD-KD's sample-wise rule.

    Parameters
    ----------
    logp_teacher, logp_student : Tensor, shape (..., K)
    sharpness : float ≥ 0
        κ, in inverse nats.

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> sure, unsure = torch.tensor([0.98, 0.01, 0.01]).log(), torch.full((3,), 1 / 3).log()
    >>> round(entropy_balance_weight(sure, unsure, 5.0).item(), 3), entropy_balance_weight(sure, unsure, 0.0).item()
    (0.993, 0.5)
    """
    sharpness = check_real("sharpness", sharpness, low=0.0)
    logp_teacher, logp_student = _as_tensor(logp_teacher), _as_tensor(logp_student)
    check_same_shape("logp_teacher", logp_teacher, "logp_student", logp_student)
    gap = entropy(logp_student, validate=False) - entropy(logp_teacher, validate=False)
    return torch.sigmoid(sharpness * gap)


def balanced_kd_loss(logits_teacher: torch.Tensor, logits_student: torch.Tensor, temperature: float = 1.0, *,
                     sharpness: float = 5.0, t2_scaling: bool = True) -> torch.Tensor:
    r"""Entropy-balanced mix of forward and reverse KD; ``logits_teacher`` is the reference p.

    .. math::
        \mathcal{L} = T^2 \big[(1 - w)\, \mathrm{KL}(p_T \| q_T) + w\, \mathrm{KL}(q_T \| p_T)\big],
        \qquad w = \sigma\big(\kappa\,(H(q_T) - H(p_T))\big)

    per example, with the weight w of :func:`entropy_balance_weight` computed on the softened
    distributions and held constant (no gradient flows through it). Near :math:`q = p` both KLs
    equal :math:`\tfrac12\chi^2` to second order, so the weight matters only where they differ.

    Returns
    -------
    Tensor, shape (...)

    References
    ----------
    Amara, Sepahvand, Meyer, Gross, Clark. *BD-KD: Balancing the Divergences for Online Knowledge
    Distillation.* 2022. arXiv:2212.12965 (the paper's exact weighting rule is not reproduced here).

    >>> import torch
    >>> t = torch.tensor([[4.0, 0.0, 0.0]]); s = torch.zeros(1, 3)   # an under-confident student
    >>> bool(balanced_kd_loss(t, s, sharpness=100.0).isclose(kd_loss(t, s, direction="reverse")))
    True
    """
    temperature = check_positive("temperature", temperature)
    check_same_shape("logits_teacher", logits_teacher, "logits_student", logits_student)
    logp = log_softmax_t(logits_teacher, temperature)
    logq = log_softmax_t(logits_student, temperature)
    d = _balanced_kl(logp, logq, sharpness)
    return d * temperature ** 2 if t2_scaling else d


def _balanced_kl(logp: torch.Tensor, logq: torch.Tensor, sharpness: float) -> torch.Tensor:
    """(1 - w) KL(p||q) + w KL(q||p) with the entropy-gap weight w held constant (no gradient through it)."""
    w = entropy_balance_weight(logp.detach(), logq.detach(), sharpness)
    return (1 - w) * _kl_unchecked(logp, logq) + w * _kl_unchecked(logq, logp)


ONLINE_LOSSES = ("ce", "forward", "reverse", "balanced")
"""Student losses of :func:`distill_students`: cross-entropy alone, or CE plus T² times forward KD,
reverse KD or the entropy-balanced mix."""


@dataclass(frozen=True)
class TeacherTrajectory:
    """A teacher ensemble trained by cross-entropy, with what it predicted at every step.

    Attributes
    ----------
    teacher : EnsembleMLP
        The trained teachers, one per seed.
    seeds : tuple of int
    batches : Tensor of long, shape (steps, S, B)
        The minibatch (indices into the training set) of each teacher at each step.
    logits : Tensor, shape (steps, S, B, K)
        Each teacher's logits on its minibatch, just before its update at that step: what a student
        trained alongside sees.
    """

    teacher: EnsembleMLP
    seeds: tuple[int, ...]
    batches: torch.Tensor
    logits: torch.Tensor


def _check_data(x, y) -> tuple[torch.Tensor, torch.Tensor, int]:
    x, y = _as_tensor(x), torch.as_tensor(y)
    if x.ndim != 2 or y.shape != x.shape[:1] or y.is_floating_point():
        raise ValueError(f"x must have shape (n, d) and y integer labels of shape (n,); got {tuple(x.shape)} "
                         f"and {tuple(y.shape)} ({y.dtype})")
    check_no_nan("x", x)
    return x, y, int(y.max()) + 1


def train_teacher(x, y, *, width: int = 64, depth: int = 2, seeds: Sequence[int] = (0,), steps: int = 400,
                  batch: int = 64, lr: float = 3e-3, dtype: torch.dtype = torch.float32) -> TeacherTrajectory:
    r"""Train one ReLU-MLP teacher per seed by minibatch cross-entropy, recording its predictions.

    The teachers' own loss is cross-entropy only, so the same trajectory serves every student: a
    student trained by :func:`distill_students` at step t sees the teacher's logits of step t on the
    same minibatch, exactly as if both were trained side by side (online distillation in which the
    information flows from teacher to student only).

    Parameters
    ----------
    x : Tensor, shape (n, d);  y : Tensor of int, shape (n,)
    width, depth : hidden units per layer and hidden layers of each teacher
    seeds : sequence of int
        Teacher s is initialised from seed s and draws its minibatches from a generator seeded with s.
    steps, batch, lr : Adam steps, minibatch size, learning rate

    Returns
    -------
    TeacherTrajectory

    >>> import torch
    >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0)); y = (x[:, 0] > 0).long()
    >>> run = train_teacher(x, y, width=16, seeds=(0, 1), steps=150)
    >>> run.logits.shape, bool(((run.teacher(x).argmax(-1) == y).float().mean(-1) > 0.9).all())
    (torch.Size([150, 2, 64, 2]), True)
    """
    from ..ensemble import EnsembleMLP

    x, y, k = _check_data(x, y)
    seeds = tuple(check_int("seeds", s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must name at least one teacher; got an empty sequence")
    steps, batch = check_int("steps", steps, low=1), check_int("batch", batch, low=1)
    teacher = EnsembleMLP(x.shape[1], k, check_int("width", width, low=1), seeds, depth=check_int("depth", depth, low=1),
                          dtype=dtype)
    opt = Adam(list(teacher.parameters()), lr=lr)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    xs = x.to(dtype)
    batches, logits = [], []
    for _ in range(steps):
        idx = torch.stack([torch.randint(0, len(x), (batch,), generator=g) for g in gens])   # (S, B)
        out = teacher(xs[idx])
        batches.append(idx)
        logits.append(out.detach())
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, k), y[idx].reshape(-1), reduction="sum") / batch
        for p in teacher.parameters():
            p.grad = None
        loss.backward()
        opt.step()
    return TeacherTrajectory(teacher, seeds, torch.stack(batches), torch.stack(logits))


def distill_students(trajectory: TeacherTrajectory, x, y, *, width: int, losses: Sequence[str] = ONLINE_LOSSES,
                     temperature: float = 1.0, sharpness: float = 5.0, lr: float = 3e-3,
                     dtype: torch.dtype = torch.float32) -> EnsembleMLP:
    r"""Train one-hidden-layer students alongside a recorded teacher, one per (loss, teacher seed).

    Student (l, s) starts from seed s and sees teacher s's minibatch and logits at every step; its loss is

    .. math::
        \mathrm{CE}(y, q) + T^2\, D\big(p_T, q_T\big), \qquad
        D \in \{0,\ \mathrm{KL}(p_T\|q_T),\ \mathrm{KL}(q_T\|p_T),\ \text{the balanced mix}\}

    for ``losses`` "ce", "forward", "reverse", "balanced" (:func:`balanced_kd_loss`).

    Returns
    -------
    EnsembleMLP
        ``len(losses) * S`` students; model ``l * S + s`` is loss ``losses[l]`` with teacher seed s.

    >>> import torch
    >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0)); y = (x[:, 0] > 0).long()
    >>> run = train_teacher(x, y, width=16, seeds=(0,), steps=100)
    >>> distill_students(run, x, y, width=4, losses=("ce", "balanced"))(x).shape
    torch.Size([2, 100, 2])
    """
    from ..ensemble import EnsembleMLP

    x, y, k = _check_data(x, y)
    losses = tuple(check_choice("losses", name, ONLINE_LOSSES) for name in losses)
    if not losses:
        raise ValueError("losses must name at least one loss; got an empty sequence")
    temperature = check_positive("temperature", temperature)
    n_l, n_s = len(losses), len(trajectory.seeds)
    student = EnsembleMLP(x.shape[1], k, check_int("width", width, low=1),
                          [s for _ in losses for s in trajectory.seeds], depth=1, dtype=dtype)
    opt = Adam(list(student.parameters()), lr=lr)
    xs = x.to(dtype)
    for idx, z_t in zip(trajectory.batches, trajectory.logits):
        idx = idx.repeat(n_l, 1)                                        # (L*S, B)
        z_s = student(xs[idx])
        ce = torch.nn.functional.cross_entropy(z_s.reshape(-1, k), y[idx].reshape(-1), reduction="none")
        logp = torch.log_softmax(z_t.repeat(n_l, 1, 1) / temperature, -1)
        logq = torch.log_softmax(z_s / temperature, -1)
        fwd = _kl_unchecked(logp, logq).reshape(n_l, n_s, -1)
        rev = _kl_unchecked(logq, logp).reshape(n_l, n_s, -1)
        mix = _balanced_kl(logp, logq, sharpness).reshape(n_l, n_s, -1)
        kd = torch.stack([{"ce": 0 * fwd[i], "forward": fwd[i], "reverse": rev[i], "balanced": mix[i]}[name]
                          for i, name in enumerate(losses)])
        loss = ce.reshape(n_l, n_s, -1) + temperature ** 2 * kd
        for p in student.parameters():
            p.grad = None
        loss.mean(-1).sum().backward()
        opt.step()
    return student
