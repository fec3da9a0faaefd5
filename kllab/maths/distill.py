r"""Knowledge distillation with a temperature and a direction.

The teacher is the reference p, the student the model q (math order, as everywhere in
kllab). Hinton et al. (2015) soften both with a temperature T and multiply the KL by T²:
the gradient of :math:`\mathrm{KL}(p_T \| q_T)` with respect to the student's logits is
:math:`(q_T - p_T)/T`, whose size falls like :math:`1/T^2` at high T, and the T² factor
keeps the soft loss on the same scale as a hard-label loss whatever T is.

Sections, in order:

* the KD loss and its gradient (:func:`kd_loss`, :func:`kd_gradient`);
* clipping the teacher to its head: the bucketed KL, a lower bound of the KL by the data processing
  inequality (:func:`teacher_head`, :func:`bucket_kl`, :func:`truncated_kl`, :func:`bucket_kd_loss`,
  :func:`fit_low_rank_student`; MGSR's DAC-KL, arXiv:2407.10068);
* balancing forward and reverse KL by the teacher-student entropy gap, in online distillation
  (:func:`entropy_balance_weight`, :func:`balanced_kd_loss`, :func:`train_teacher`,
  :func:`distill_students`; BD-KD, arXiv:2212.12965);
* weighting problems by the student's pass rate (:func:`pass_rate_weight`,
  :func:`pass_rate_weight_mode`, :func:`estimated_pass_rate_weight`; PACED, arXiv:2603.11178). The
  signal-to-noise side of that argument is in :mod:`kllab.maths.curriculum`, calibration in
  :mod:`kllab.maths.calibration`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .optim import Adam
from .divergences import NEG_INF, _as_tensor, _kl_unchecked, entropy, js, kl, kl_from_logits, log_softmax_t
from .validation import (DIRECTIONS, check_choice, check_int, check_log_probs, check_no_nan, check_positive,
                         check_real, check_same_shape)

if TYPE_CHECKING:   # imported where it is used, so that the losses never depend on the training machinery
    from .ensemble import EnsembleMLP

__all__ = ["KD_DIRECTIONS", "kd_loss", "kd_gradient",
           "teacher_head", "bucket_kl", "truncated_kl", "bucket_kd_loss", "STUDENT_LOSSES", "fit_low_rank_student",
           "entropy_balance_weight", "balanced_kd_loss", "ONLINE_LOSSES", "TeacherTrajectory", "train_teacher",
           "distill_students", "pass_rate_weight", "pass_rate_weight_mode", "estimated_pass_rate_weight"]

KD_DIRECTIONS = ("forward", "reverse", "js")


def kd_loss(logits_teacher: torch.Tensor, logits_student: torch.Tensor, temperature: float = 1.0, *,
            direction: str = "forward", t2_scaling: bool = True) -> torch.Tensor:
    r"""Distillation loss; ``logits_teacher`` is the reference p, ``logits_student`` the model q.

    .. math::
        \mathcal{L}_{KD} = T^2 \, D\big(\mathrm{softmax}(z_t/T) \,\|\, \mathrm{softmax}(z_s/T)\big)

    with D = KL(p‖q) for ``"forward"`` (Hinton's KD, mass-covering), KL(q‖p) for
    ``"reverse"`` (mode-seeking, as in MiniLLM-style on-policy distillation) and JS for ``"js"``.

    Parameters
    ----------
    logits_teacher, logits_student : Tensor, shape (..., K)
    temperature : float > 0
    direction : {"forward", "reverse", "js"}
    t2_scaling : bool
        Multiply by T² (default True). Turn it off to see the gradient shrink like 1/T².

    Returns
    -------
    Tensor, shape (...)
        Per-example loss.

    >>> import torch
    >>> t = torch.tensor([[2.0, 0.0, -1.0]]); s = torch.tensor([[0.0, 0.0, 0.0]])
    >>> bool(torch.isclose(kd_loss(t, s, 4.0), 16 * kd_loss(t, s, 4.0, t2_scaling=False)))
    True
    """
    check_choice("direction", direction, KD_DIRECTIONS)
    temperature = check_positive("temperature", temperature)
    check_same_shape("logits_teacher", logits_teacher, "logits_student", logits_student)
    if direction == "js":
        d = js(log_softmax_t(logits_teacher, temperature), log_softmax_t(logits_student, temperature),
               validate=False)
    else:
        d = kl_from_logits(logits_teacher, logits_student, temperature, direction=direction)
    return d * temperature ** 2 if t2_scaling else d


def kd_gradient(logits_teacher: torch.Tensor, logits_student: torch.Tensor,
                temperature: float = 1.0) -> torch.Tensor:
    r"""Closed-form gradient of the forward KD loss *without* T² with respect to the student's logits.

    .. math::
        \frac{\partial}{\partial z_s} \mathrm{KL}(p_T \| q_T) = \frac{q_T - p_T}{T}

    Returns
    -------
    Tensor, shape (..., K)

    >>> import torch
    >>> t = torch.tensor([1.0, 0.0]); s = torch.tensor([0.0, 0.0], requires_grad=True)
    >>> kd_loss(t, s, 2.0, t2_scaling=False).backward()
    >>> bool(torch.allclose(s.grad, kd_gradient(t, s.detach(), 2.0)))
    True
    """
    temperature = check_positive("temperature", temperature)
    check_same_shape("logits_teacher", logits_teacher, "logits_student", logits_student)
    p = torch.softmax(logits_teacher / temperature, dim=-1)
    q = torch.softmax(logits_student / temperature, dim=-1)
    return (q - p) / temperature


# --- Clipping the teacher to its head: the bucketed KL (MGSR's DAC-KL, P02) -----------------------


def teacher_head(logp: torch.Tensor, *, top_k: int | None = None, mass: float | None = None) -> torch.Tensor:
    r"""The teacher's informative head: a boolean mask of the outcomes to keep; ``logp`` is the teacher.

    Exactly one of ``top_k`` (keep the k most probable outcomes of each row) or ``mass`` (keep the
    smallest set of most probable outcomes whose total probability reaches ``mass``, as in nucleus
    sampling: a head that adapts to each row's shape) must be given. Ties are broken by position.

    Parameters
    ----------
    logp : Tensor, shape (..., K)
        Log-probabilities (or logits: only their order is used).
    top_k : int in [1, K], optional
    mass : float in (0, 1], optional

    Returns
    -------
    Tensor of bool, shape (..., K)

    >>> import torch
    >>> p = torch.tensor([0.5, 0.1, 0.3, 0.1]).log()
    >>> teacher_head(p, top_k=2).tolist(), teacher_head(p, mass=0.85).tolist()
    ([True, False, True, False], [True, True, True, False])
    """
    if (top_k is None) == (mass is None):
        raise ValueError(f"exactly one of top_k and mass must be given; got top_k={top_k!r}, mass={mass!r}")
    logp = _as_tensor(logp)
    check_no_nan("logp", logp)
    k_all = logp.shape[-1]
    order = torch.argsort(logp, dim=-1, descending=True, stable=True)
    if top_k is not None:
        top_k = check_int("top_k", top_k, low=1, high=k_all)
        rank_kept = torch.arange(k_all) < top_k
        kept_sorted = rank_kept.expand(logp.shape)
    else:
        mass = check_real("mass", mass, low=0.0, high=1.0, low_open=True)
        p_sorted = torch.gather(logp, -1, order).exp()
        before = torch.cumsum(p_sorted, -1) - p_sorted           # mass of the outcomes ranked above
        kept_sorted = before < mass * (1 - 1e-12)
        kept_sorted[..., 0] = True
    return torch.zeros(logp.shape, dtype=torch.bool).scatter(-1, order, kept_sorted)


def _merge(logp: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The (K+1)-way log-distribution: kept outcomes as they are, the rest merged into the last slot."""
    neg = torch.full((), NEG_INF, dtype=logp.dtype)
    head = torch.where(keep, logp, neg)
    rest = torch.logsumexp(torch.where(keep, neg, logp), dim=-1, keepdim=True)
    return torch.cat([head, rest], dim=-1)


def _check_keep(keep, logp: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(keep) or keep.dtype != torch.bool:
        raise ValueError(f"keep must be a boolean tensor (see teacher_head); got {type(keep).__name__}"
                         f"{'' if not torch.is_tensor(keep) else ' of dtype ' + str(keep.dtype)}")
    if keep.shape != logp.shape:
        try:
            keep = keep.expand(logp.shape)
        except RuntimeError:
            raise ValueError(f"keep must have the shape of logp or broadcast to it; got {tuple(keep.shape)} "
                             f"and {tuple(logp.shape)}") from None
    return keep


def bucket_kl(logp, logq, keep: torch.Tensor, *, direction: str = "forward",
              validate: bool = True) -> torch.Tensor:
    r"""KL after merging the outcomes outside ``keep`` into one "other" bucket; ``logp`` is the teacher p.

    With :math:`S` the kept outcomes and :math:`R` the rest,

    .. math::
        \mathrm{KL}_S(p \| q) = \sum_{i \in S} p_i \log\frac{p_i}{q_i} + p(R) \log\frac{p(R)}{q(R)},
        \qquad p(R) = \sum_{i \notin S} p_i .

    Merging outcomes is a deterministic map of both distributions, so by the data processing
    inequality :math:`\mathrm{KL}_S(p\|q) \le \mathrm{KL}(p\|q)`, with equality when nothing is
    merged. The gap is exact (the chain rule of KL):

    .. math::
        \mathrm{KL}(p \| q) = \mathrm{KL}_S(p \| q) + p(R)\, \mathrm{KL}\big(p(\cdot \mid R) \,\|\, q(\cdot \mid R)\big),

    so the bucketed loss keeps the head and the tail's total mass and ignores the tail's shape.
    ``direction="reverse"`` returns :math:`\mathrm{KL}_S(q\|p)`, the same merge with the roles swapped.

    Parameters
    ----------
    logp, logq : Tensor, shape (..., K)
        Log-probabilities; ``-inf`` allowed.
    keep : Tensor of bool, shape (..., K) or broadcastable
        The outcomes kept apart, usually ``teacher_head(logp, top_k=k)``.
    direction : {"forward", "reverse"}

    Returns
    -------
    Tensor, shape (...)

    References
    ----------
    Liu et al., *Multi-Granularity Semantic Revision for Large Language Model Distillation*, 2024,
    arXiv:2407.10068 (the DAC-KL loss clips the teacher to its dense region; this is one documented
    variant of it).

    >>> import torch
    >>> p = torch.tensor([0.6, 0.2, 0.1, 0.1]).log(); q = torch.tensor([0.4, 0.4, 0.15, 0.05]).log()
    >>> keep = teacher_head(p, top_k=2)
    >>> bool(bucket_kl(p, q, keep) <= kl(p, q)), bool(torch.isclose(bucket_kl(p, q, torch.ones(4, dtype=torch.bool)), kl(p, q)))
    (True, True)
    """
    check_choice("direction", direction, DIRECTIONS)
    logp, logq = _as_tensor(logp), _as_tensor(logq)
    if validate:
        check_log_probs("logp", logp)
        check_log_probs("logq", logq)
        check_same_shape("logp", logp, "logq", logq)
    keep = _check_keep(keep, logp)
    lp, lq = _merge(logp, keep), _merge(logq, keep)
    if direction == "reverse":
        lp, lq = lq, lp
    return kl(lp, lq, validate=False)


def truncated_kl(logp, logq, keep: torch.Tensor, *, direction: str = "forward",
                 validate: bool = True) -> torch.Tensor:
    r"""KL between p and q both renormalised on the kept outcomes (no bucket); ``logp`` is the teacher.

    .. math::
        \mathrm{KL}\big(p(\cdot \mid S) \,\|\, q(\cdot \mid S)\big)

    This is clipping *without* the bucket: the loss does not see how much mass q puts outside S,
    so a student trained on it may move almost all of its mass there. Shown for contrast with
    :func:`bucket_kl`.

    >>> import torch
    >>> p = torch.tensor([0.6, 0.2, 0.2]).log(); q = torch.tensor([0.06, 0.02, 0.92]).log()
    >>> abs(truncated_kl(p, q, torch.tensor([True, True, False])).item()) < 1e-6   # q's head has p's shape
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    logp, logq = _as_tensor(logp), _as_tensor(logq)
    if validate:
        check_log_probs("logp", logp)
        check_log_probs("logq", logq)
        check_same_shape("logp", logp, "logq", logq)
    keep = _check_keep(keep, logp)
    neg = torch.full((), NEG_INF, dtype=logp.dtype)
    lp, lq = torch.where(keep, logp, neg), torch.where(keep, logq, neg)
    lp = lp - torch.logsumexp(lp, -1, keepdim=True)
    lq = lq - torch.logsumexp(lq, -1, keepdim=True)
    if direction == "reverse":
        lp, lq = lq, lp
    return kl(lp, lq, validate=False)


def bucket_kd_loss(logits_teacher: torch.Tensor, logits_student: torch.Tensor, temperature: float = 1.0, *,
                   top_k: int | None = None, mass: float | None = None, direction: str = "forward",
                   t2_scaling: bool = True) -> torch.Tensor:
    r"""Distillation on the teacher's head; ``logits_teacher`` is the reference p, ``logits_student`` q.

    .. math::
        \mathcal{L} = T^2\, \mathrm{KL}_S\big(\mathrm{softmax}(z_t/T) \,\|\, \mathrm{softmax}(z_s/T)\big),
        \qquad S = \text{head of the softened teacher}

    with the head S from :func:`teacher_head` (``top_k`` or ``mass``) and :math:`\mathrm{KL}_S` the
    bucketed KL of :func:`bucket_kl`. With ``top_k`` equal to the vocabulary size this is
    :func:`kd_loss` exactly.

    Returns
    -------
    Tensor, shape (...)
        Per-example loss.

    >>> import torch
    >>> t = torch.tensor([[3.0, 1.0, 0.0, -1.0]]); s = torch.zeros(1, 4)
    >>> bool(torch.isclose(bucket_kd_loss(t, s, 2.0, top_k=4), kd_loss(t, s, 2.0)))
    True
    """
    temperature = check_positive("temperature", temperature)
    check_same_shape("logits_teacher", logits_teacher, "logits_student", logits_student)
    logp = log_softmax_t(logits_teacher, temperature)
    logq = log_softmax_t(logits_student, temperature)
    keep = teacher_head(logp, top_k=top_k, mass=mass)
    d = bucket_kl(logp, logq, keep, direction=direction, validate=False)
    return d * temperature ** 2 if t2_scaling else d


STUDENT_LOSSES = ("forward", "reverse", "bucket", "truncated")
"""Losses :func:`fit_low_rank_student` trains with: KL(t‖s), KL(s‖t), bucketed KL_S(t‖s), truncated KL."""


def fit_low_rank_student(logp_teacher: torch.Tensor, rank: int, keep: torch.Tensor, *,
                         losses: Sequence[str] = ("forward", "reverse", "bucket"), steps: int = 300,
                         lr: float = 0.1, seed: int = 0, init_scale: float = 0.1,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Fit a rank-r student to a teacher, once per loss; ``logp_teacher`` is the reference p.

    The student's logits for N contexts over K outcomes are a rank-r product,
    :math:`z = A B` with :math:`A \in \mathbb{R}^{N\times r}`, :math:`B \in \mathbb{R}^{r\times K}`,
    so the rank is its capacity. One student per loss (and per leading batch index of the teacher)
    is trained by full-batch Adam; they share no parameter, and each minimises the mean over its
    contexts of its own loss (``"forward"`` KL(t‖s), ``"reverse"`` KL(s‖t), ``"bucket"``
    :func:`bucket_kl`, ``"truncated"`` :func:`truncated_kl`), so the result for one loss does not
    depend on which others are trained alongside.

    Parameters
    ----------
    logp_teacher : Tensor, shape (..., N, K)
        Teacher log-probabilities for N contexts (leading axes: independent problems, e.g. seeds).
    rank : int ≥ 1
    keep : Tensor of bool, shape (..., N, K)
        The teacher's head for the bucketed and truncated losses.
    losses : sequence of names from :data:`STUDENT_LOSSES`
    steps, lr : Adam steps (≥ 1) and learning rate (> 0)
    seed : int
        Seed of the initial factors (entries N(0, init_scale²)), the same for every loss.
    dtype : torch.dtype
        Training precision (float32 is about twice as fast; the result is returned in float64).

    Returns
    -------
    Tensor, shape (len(losses), ..., N, K)
        The students' log-probabilities, float64.

    >>> import torch
    >>> t = torch.log_softmax(torch.randn(6, 10, generator=torch.Generator().manual_seed(0)), -1)
    >>> s = fit_low_rank_student(t, 10, teacher_head(t, top_k=3), losses=("forward",), steps=400)
    >>> s.shape, bool(kl(t, s[0]).mean() < 1e-3)
    (torch.Size([1, 6, 10]), True)
    """
    logp_teacher = _as_tensor(logp_teacher)
    if logp_teacher.ndim < 2:
        raise ValueError(f"logp_teacher must have shape (..., N, K); got {tuple(logp_teacher.shape)}")
    check_log_probs("logp_teacher", logp_teacher)
    rank = check_int("rank", rank, low=1)
    keep = _check_keep(keep, logp_teacher)
    losses = tuple(check_choice("losses", name, STUDENT_LOSSES) for name in losses)
    if not losses:
        raise ValueError("losses must name at least one loss; got an empty sequence")
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr)
    init_scale = check_positive("init_scale", init_scale)
    *batch, n, k = logp_teacher.shape
    gen = torch.Generator().manual_seed(check_int("seed", seed))
    a = init_scale * torch.randn(*batch, n, rank, generator=gen, dtype=torch.float64)
    b = init_scale * torch.randn(*batch, rank, k, generator=gen, dtype=torch.float64)
    # Every loss starts from the same factors: the students differ only by what they were trained on.
    a = a.expand(len(losses), *a.shape).to(dtype).clone().requires_grad_()
    b = b.expand(len(losses), *b.shape).to(dtype).clone().requires_grad_()
    lp = logp_teacher.to(dtype)
    lp_merged = _merge(lp, keep)
    opt = Adam([a, b], lr=lr)

    def per_loss(i: int, name: str, logq: torch.Tensor) -> torch.Tensor:
        if name == "forward":
            d = _kl_unchecked(lp, logq)
        elif name == "reverse":
            d = _kl_unchecked(logq, lp)
        elif name == "bucket":
            d = _kl_unchecked(lp_merged, _merge(logq, keep))
        else:
            d = truncated_kl(lp, logq, keep, validate=False)
        return d.mean(-1).sum()

    for _ in range(steps):
        logq = torch.log_softmax(a @ b, dim=-1)
        total = sum(per_loss(i, name, logq[i]) for i, name in enumerate(losses))
        a.grad = b.grad = None
        total.backward()
        opt.step()
    return torch.log_softmax((a @ b).detach().to(torch.float64), dim=-1)


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
    from .ensemble import EnsembleMLP

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
    from .ensemble import EnsembleMLP

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


# --- Weighting problems by the student's pass rate (PACED, P18) --------------------------------------


def _check_exponents(alpha, beta) -> tuple[float, float]:
    return check_real("alpha", alpha, low=0.0), check_real("beta", beta, low=0.0)


def pass_rate_weight(pass_rate, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    r"""PACED's Beta-kernel weight of a problem; ``pass_rate`` is the student's (reference) pass rate p.

    .. math::
        w(p) = p^\alpha (1 - p)^\beta, \qquad 0^0 = 1

    Zero for mastered (p = 1, if β > 0) and for hopeless (p = 0, if α > 0) problems, largest at the
    mode :math:`p^\star = \alpha / (\alpha + \beta)` (:func:`pass_rate_weight_mode`). As a density it is
    :math:`\mathrm{Beta}(\alpha + 1, \beta + 1)` up to the factor :math:`B(\alpha + 1, \beta + 1)`.

    Parameters
    ----------
    pass_rate : Tensor or float in [0, 1]
    alpha, beta : float ≥ 0
        Exponents on p and on 1 − p; α = β = 1 is PACED's default p(1 − p).

    Returns
    -------
    Tensor, the shape of ``pass_rate``

    References
    ----------
    Xu, Sang, Zhou, He, Wang. *PACED: Distillation at the Frontier of Student Competence.* 2026.
    arXiv:2603.11178.

    >>> pass_rate_weight(torch.tensor([0.0, 0.25, 0.5, 1.0])).tolist()
    [0.0, 0.1875, 0.25, 0.0]
    """
    alpha, beta = _check_exponents(alpha, beta)
    p = _as_tensor(pass_rate)
    check_no_nan("pass_rate", p)
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"pass_rate must be in [0, 1]; got values from {p.min().item():g} to {p.max().item():g}")
    return torch.pow(p, alpha) * torch.pow(1 - p, beta)   # torch.pow(0, 0) = 1


def pass_rate_weight_mode(alpha: float = 1.0, beta: float = 1.0) -> tuple[float, float]:
    r"""Where the Beta kernel :math:`p^\alpha (1-p)^\beta` peaks, and its value there.

    .. math::
        p^\star = \frac{\alpha}{\alpha + \beta}, \qquad
        w(p^\star) = \frac{\alpha^\alpha \beta^\beta}{(\alpha + \beta)^{\alpha + \beta}}

    (from :math:`\tfrac{d}{dp}\log w = \alpha/p - \beta/(1-p) = 0`). Needs α + β > 0.

    >>> pass_rate_weight_mode(1.0, 1.0), pass_rate_weight_mode(2.0, 1.0)[0]
    ((0.5, 0.25), 0.6666666666666666)
    """
    alpha, beta = _check_exponents(alpha, beta)
    if alpha + beta == 0:
        raise ValueError("alpha + beta must be > 0 (alpha = beta = 0 is the uniform weight, with no mode); got 0")
    mode = alpha / (alpha + beta)
    return mode, mode ** alpha * (1 - mode) ** beta


def estimated_pass_rate_weight(pass_rate, rollouts: int, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    r"""Mean weight when the pass rate is estimated from k rollouts; ``pass_rate`` is the true p.

    PACED weights a problem by :math:`w(\hat p)` with :math:`\hat p = J / k`, :math:`J \sim
    \mathrm{Binomial}(k, p)` successes in k rollouts. This sums the binomial law exactly:

    .. math::
        \mathbb{E}\,w(\hat p) = \sum_{j=0}^{k} \binom{k}{j} p^j (1-p)^{k-j}\, w(j/k),

    which for α = β = 1 is :math:`(1 - 1/k)\, p (1 - p)`: the plug-in weight is biased low by 1/k.

    >>> abs(estimated_pass_rate_weight(0.3, 8).item() - (1 - 1 / 8) * 0.3 * 0.7) < 1e-12
    True
    """
    rollouts = check_int("rollouts", rollouts, low=1)
    p = _as_tensor(pass_rate).to(torch.float64)
    j = torch.arange(rollouts + 1, dtype=torch.float64)
    log_binom = torch.lgamma(torch.tensor(rollouts + 1.0, dtype=torch.float64)) - torch.lgamma(j + 1) - torch.lgamma(rollouts - j + 1)
    pmf = torch.exp(log_binom + torch.xlogy(j, p[..., None]) + torch.xlogy(rollouts - j, 1 - p[..., None]))
    return (pmf * pass_rate_weight(j / rollouts, alpha, beta)).sum(-1)
