r"""Clipping the teacher to its head: the bucketed KL, a lower bound of the KL (data processing).

Part of :mod:`kllab.maths.distill`: :func:`teacher_head`, :func:`bucket_kl`, :func:`truncated_kl`,
:func:`bucket_kd_loss`, :func:`fit_low_rank_student` (MGSR's DAC-KL, arXiv:2407.10068).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..divergences import NEG_INF, _as_tensor, _kl_unchecked, kl, log_softmax_t
from ..optim import Adam
from ..validation import DIRECTIONS, check_choice, check_int, check_log_probs, check_no_nan, check_positive, check_real, check_same_shape
from .kd import kd_loss

__all__ = ["teacher_head", "bucket_kl", "truncated_kl", "bucket_kd_loss", "STUDENT_LOSSES", "fit_low_rank_student"]


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


def _checked_pair(logp, logq, keep, direction: str, validate: bool):
    """The teacher's and student's log-probabilities as tensors and the kept-outcome mask, checked."""
    check_choice("direction", direction, DIRECTIONS)
    logp, logq = _as_tensor(logp), _as_tensor(logq)
    if validate:
        check_log_probs("logp", logp)
        check_log_probs("logq", logq)
        check_same_shape("logp", logp, "logq", logq)
    return logp, logq, _check_keep(keep, logp)


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
    logp, logq, keep = _checked_pair(logp, logq, keep, direction, validate)
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
    logp, logq, keep = _checked_pair(logp, logq, keep, direction, validate)
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
