r"""Rankings of classes: the Plackett–Luce model and Plackett–Luce distillation (PLD).

The Plackett–Luce (PL) model reads a vector of logits :math:`s \in \mathbb{R}^C` as *worths* and
draws a ranking :math:`\pi` (a permutation of the C classes) one place at a time: the class in
place k is chosen among those not yet placed with probability proportional to :math:`e^{s}`,

.. math::
    P(\pi \mid s) = \prod_{k=1}^{C} \frac{e^{s_{\pi_k}}}{\sum_{\ell \ge k} e^{s_{\pi_\ell}}} .

Its first place is the softmax, :math:`P(\pi_1 = i) = \mathrm{softmax}(s)_i`, so the cross-entropy
of a classifier is the negative log-likelihood of the first place only. Sorting :math:`s + G` with
i.i.d. standard Gumbel noise :math:`G` draws a ranking from :math:`P(\cdot \mid s)` exactly
(:func:`sample_rankings`), which gives a Monte-Carlo oracle for everything here.

PLD (Bassam, Zhu, Bian, 2025, arXiv:2506.12542) distils a teacher with logits t into a student
with logits s by the *weighted* PL negative log-likelihood of one "teacher-optimal" ranking
:math:`\pi^*` (the true label first, then the other classes by decreasing teacher logit), each
place weighted by the teacher's softmax confidence in the class it holds:

.. math::
    \mathcal{L}_{\rm PLD}(s) = \sum_{k=1}^{C} \alpha_k \Big[\log \sum_{\ell \ge k} e^{s_{\pi^*_\ell}}
    - s_{\pi^*_k}\Big], \qquad \alpha_k = \mathrm{softmax}(t / \tau)_{\pi^*_k} .

Each bracket is a log-sum-exp minus a linear term, so the loss is convex in s and unchanged by
:math:`s \to s + c\mathbf{1}`; with :math:`\alpha = e_1` it is the cross-entropy.

Conventions: the teacher is the reference and comes first (``pld_loss(logits_teacher,
logits_student, target)``); classes are on the last axis; results are per example, shape
``logits.shape[:-1]`` (no hidden reductions). Logits must be finite: a worth of ``-inf`` makes a
class impossible before the last place, which the PL model does not need here.
"""

from __future__ import annotations

import math

import torch

from .validation import check_finite, check_no_nan, check_positive, check_same_shape

__all__ = ["teacher_ranking", "stage_nll", "plackett_luce_log_prob", "rank_weights", "pld_loss",
           "pld_gradient", "sample_rankings"]


def _logits(name: str, x) -> torch.Tensor:
    x = x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64)
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[-1] < 1:
        raise ValueError(f"{name} must have a last axis of classes; got shape {tuple(x.shape)}")
    check_finite(name, x)
    return x


def _ranking(name: str, ranking, logits: torch.Tensor) -> torch.Tensor:
    ranking = ranking if torch.is_tensor(ranking) else torch.as_tensor(ranking)
    if ranking.dtype != torch.long:
        raise ValueError(f"{name} must be a tensor of class indices (dtype torch.long); got dtype {ranking.dtype}")
    if ranking.shape != logits.shape:
        raise ValueError(f"{name} must have the logits' shape {tuple(logits.shape)}; got {tuple(ranking.shape)}")
    arange = torch.arange(logits.shape[-1]).expand(ranking.shape)
    if not torch.equal(ranking.sort(-1).values, arange):
        raise ValueError(f"{name} must hold a permutation of 0..{logits.shape[-1] - 1} on every row; got a row "
                         f"with a repeated or out-of-range class")
    return ranking


def _target(target, logits: torch.Tensor) -> torch.Tensor:
    target = target if torch.is_tensor(target) else torch.as_tensor(target)
    if target.dtype != torch.long:
        raise ValueError(f"target must be a tensor of class indices (dtype torch.long); got dtype {target.dtype}")
    if target.shape != logits.shape[:-1]:
        raise ValueError(f"target must have shape {tuple(logits.shape[:-1])} (one label per example); "
                         f"got {tuple(target.shape)}")
    c = logits.shape[-1]
    if target.numel() and (target.min() < 0 or target.max() >= c):
        raise ValueError(f"target must hold classes in 0..{c - 1}; got values in "
                         f"[{int(target.min())}, {int(target.max())}]")
    return target


def teacher_ranking(logits_teacher, target=None) -> torch.Tensor:
    r"""The ranking the teacher prefers; ``logits_teacher`` is the reference.

    Without ``target``: the classes by decreasing teacher logit (the most likely ranking under
    the teacher's Plackett–Luce model). With ``target``: PLD's teacher-optimal ranking
    :math:`\pi^*`, the true label first, then the other classes by decreasing teacher logit.
    Ties keep the lower class index first.

    Parameters
    ----------
    logits_teacher : Tensor, shape (..., C)
    target : LongTensor, shape (...), optional

    Returns
    -------
    LongTensor, shape (..., C)
        ``ranking[..., k]`` is the class in place k + 1.

    >>> import torch
    >>> teacher_ranking(torch.tensor([0.5, 2.0, -1.0, 1.0])).tolist()
    [1, 3, 0, 2]
    >>> teacher_ranking(torch.tensor([0.5, 2.0, -1.0, 1.0]), torch.tensor(2)).tolist()
    [2, 1, 3, 0]
    """
    t = _logits("logits_teacher", logits_teacher)
    if target is None:
        return torch.sort(t, dim=-1, descending=True, stable=True).indices
    y = _target(target, t)
    # Lift the label above every logit, then sort: the label comes first, the rest keep the teacher's order.
    lifted = t.scatter(-1, y.unsqueeze(-1), math.inf)
    return torch.sort(lifted, dim=-1, descending=True, stable=True).indices


def _suffix_logsumexp(ordered: torch.Tensor) -> torch.Tensor:
    """log sum_{l >= k} exp(ordered_l) for every k, on the last axis.

    One shift by the row maximum and a reversed cumulative sum (several times faster than
    ``torch.logcumsumexp``, forward and backward); rows where a partial sum would underflow
    (logits more than ~700 apart in float64) are recomputed with ``torch.logcumsumexp``.
    """
    top = ordered.max(dim=-1, keepdim=True).values
    partial = torch.exp(ordered - top).flip(-1).cumsum(-1).flip(-1)
    tiny = torch.finfo(ordered.dtype).tiny / torch.finfo(ordered.dtype).eps
    bad = (partial < tiny).any(-1, keepdim=True)
    fast = top + torch.log(partial)
    fast = torch.cat([fast[..., :-1], ordered[..., -1:]], dim=-1)   # the last place exactly: nothing left to choose
    if bad.any():
        exact = torch.logcumsumexp(ordered.flip(-1), dim=-1).flip(-1)
        return torch.where(bad, exact, fast)
    return fast


def stage_nll(logits, ranking, *, validate: bool = True) -> torch.Tensor:
    r"""Per-place negative log-likelihood of ``ranking`` under the Plackett–Luce model of ``logits``.

    .. math::
        \ell_k = \log \sum_{\ell \ge k} e^{s_{\pi_\ell}} - s_{\pi_k} \;\ge 0, \qquad \ell_C = 0

    :math:`\ell_k` is the cross-entropy of "class :math:`\pi_k` is chosen among the classes still
    unplaced"; :math:`\ell_1` is the ordinary cross-entropy of the label :math:`\pi_1`.

    Parameters
    ----------
    logits : Tensor, shape (..., C)
        The model's logits s (the student's, in distillation).
    ranking : LongTensor, shape (..., C)
        A permutation of the classes on every row.
    validate : bool
        Check the logits and that ``ranking`` is a permutation (turn off only in training loops).

    Returns
    -------
    Tensor, shape (..., C)
        Indexed by place (not by class).

    >>> import torch
    >>> s = torch.tensor([1.0, 0.0, 2.0]); r = torch.tensor([2, 0, 1])
    >>> bool(torch.isclose(stage_nll(s, r)[0], -torch.log_softmax(s, -1)[2]))
    True
    """
    if validate:
        logits = _logits("logits", logits)
        ranking = _ranking("ranking", ranking, logits)
    ordered = logits.gather(-1, ranking)
    return _suffix_logsumexp(ordered) - ordered   # log sum_{l >= k} exp(s_pi_l) - s_pi_k


def plackett_luce_log_prob(logits, ranking) -> torch.Tensor:
    r"""Log-probability of ``ranking`` under the Plackett–Luce model with worths ``logits``.

    .. math::
        \log P(\pi \mid s) = \sum_{k=1}^{C} \Big[s_{\pi_k} - \log \sum_{\ell \ge k} e^{s_{\pi_\ell}}\Big]

    Parameters
    ----------
    logits : Tensor, shape (..., C)
    ranking : LongTensor, shape (..., C)

    Returns
    -------
    Tensor, shape (...)

    The C! rankings of one row have probabilities that sum to 1:

    >>> import itertools, torch
    >>> s = torch.tensor([0.3, -1.0, 2.0, 0.0], dtype=torch.float64)
    >>> perms = torch.tensor(list(itertools.permutations(range(4))))
    >>> round(plackett_luce_log_prob(s.expand(24, 4), perms).exp().sum().item(), 12)
    1.0
    """
    return -stage_nll(logits, ranking).sum(-1)


def rank_weights(logits_teacher, ranking, temperature: float = 1.0) -> torch.Tensor:
    r"""PLD's confidence weight of each place: the teacher's softmax mass on the class it holds.

    .. math::
        \alpha_k = \mathrm{softmax}(t / \tau)_{\pi_k}, \qquad \sum_k \alpha_k = 1

    As :math:`\tau \to 0` the weight concentrates on the teacher's top class (the cross-entropy
    place when that class is the label); as :math:`\tau \to \infty` it tends to :math:`1/C` on every
    place (the unweighted list-wise likelihood, ListMLE). For the teacher's own ranking the weight
    spreads down the list monotonically: the mass on the first k places falls with τ, for every k.

    Parameters
    ----------
    logits_teacher : Tensor, shape (..., C)
    ranking : LongTensor, shape (..., C)
    temperature : float > 0
        τ.

    Returns
    -------
    Tensor, shape (..., C)
        Indexed by place.

    >>> import torch
    >>> t = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)
    >>> [round(a, 4) for a in rank_weights(t, teacher_ranking(t), 1e6).tolist()]
    [0.3333, 0.3333, 0.3333]
    """
    t = _logits("logits_teacher", logits_teacher)
    r = _ranking("ranking", ranking, t)
    temperature = check_positive("temperature", temperature)
    return torch.softmax(t / temperature, dim=-1).gather(-1, r)


def pld_loss(logits_teacher, logits_student, target, temperature: float = 1.0, *,
             weights=None) -> torch.Tensor:
    r"""Plackett–Luce distillation loss; ``logits_teacher`` is the reference, ``logits_student`` the model.

    .. math::
        \mathcal{L}_{\rm PLD} = \sum_{k=1}^{C} \alpha_k \Big[\log \sum_{\ell \ge k} e^{s_{\pi^*_\ell}}
        - s_{\pi^*_k}\Big]

    with :math:`\pi^*` = :func:`teacher_ranking` (label first) and :math:`\alpha` =
    :func:`rank_weights` at temperature τ. Convex and translation-invariant in the student's logits;
    ``weights`` = :math:`e_1` gives the cross-entropy, uniform weights give ListMLE / C.

    Parameters
    ----------
    logits_teacher, logits_student : Tensor, shape (..., C)
    target : LongTensor, shape (...)
        The true labels.
    temperature : float > 0
        τ of the teacher's softmax in the weights.
    weights : Tensor, shape (..., C) or (C,), optional
        Per-place weights ≥ 0 to use instead of the teacher's softmax (τ is then unused).

    Returns
    -------
    Tensor, shape (...)
        Per-example loss.

    Reference: Bassam, Zhu, Bian. *PLD: A Choice-Theoretic List-Wise Knowledge Distillation.*
    2025. arXiv:2506.12542.

    >>> import torch
    >>> t = torch.tensor([[1.0, 3.0, 0.0]]); s = torch.tensor([[0.2, 0.1, -0.4]]); y = torch.tensor([1])
    >>> ce = torch.nn.functional.cross_entropy(s, y, reduction="none")
    >>> bool(torch.allclose(pld_loss(t, s, y, weights=torch.tensor([1.0, 0.0, 0.0])), ce))
    True
    """
    t = _logits("logits_teacher", logits_teacher)
    s = _logits("logits_student", logits_student)
    check_same_shape("logits_teacher", t, "logits_student", s)
    ranking = teacher_ranking(t, _target(target, t))
    if weights is None:
        alpha = rank_weights(t, ranking, temperature)
    else:
        alpha = weights if torch.is_tensor(weights) else torch.as_tensor(weights, dtype=s.dtype)
        check_no_nan("weights", alpha)
        if alpha.shape[-1] != s.shape[-1] or (alpha < 0).any() or not torch.isfinite(alpha).all():
            raise ValueError(f"weights must be finite and >= 0 with a last axis of {s.shape[-1]} places; "
                             f"got shape {tuple(alpha.shape)}, min {float(alpha.min()):.3g}")
    return (alpha * stage_nll(s, ranking)).sum(-1)


def pld_gradient(logits_student, ranking, weights) -> torch.Tensor:
    r"""Closed-form gradient of the weighted PL negative log-likelihood with respect to the student's logits.

    For the class in place j,

    .. math::
        \frac{\partial \mathcal{L}}{\partial s_{\pi_j}} = \sum_{k \le j} \alpha_k\,
        \frac{e^{s_{\pi_j}}}{\sum_{\ell \ge k} e^{s_{\pi_\ell}}} - \alpha_j :

    every stage k that still had class :math:`\pi_j` to choose from pushes it down by its softmax
    share, and its own stage pulls it up. The entries sum to 0 (translation invariance).

    Parameters
    ----------
    logits_student : Tensor, shape (..., C)
    ranking : LongTensor, shape (..., C)
    weights : Tensor, shape (..., C)
        α, indexed by place.

    Returns
    -------
    Tensor, shape (..., C)
        Indexed by class, like ``logits_student``.

    >>> import torch
    >>> s = torch.tensor([0.0, 1.0, -1.0], requires_grad=True); r = torch.tensor([1, 0, 2])
    >>> a = torch.tensor([0.6, 0.3, 0.1])
    >>> (a * stage_nll(s, r)).sum().backward()
    >>> bool(torch.allclose(s.grad, pld_gradient(s.detach(), r, a)))
    True
    """
    s = _logits("logits_student", logits_student)
    r = _ranking("ranking", ranking, s)
    alpha = weights if torch.is_tensor(weights) else torch.as_tensor(weights, dtype=s.dtype)
    if alpha.shape != s.shape:
        raise ValueError(f"weights must have the logits' shape {tuple(s.shape)}; got {tuple(alpha.shape)}")
    ordered = s.gather(-1, r)
    suffix = _suffix_logsumexp(ordered)
    # log sum_{k <= j} alpha_k exp(-suffix_k), in log space (alpha_k = 0 gives -inf, which is fine)
    log_acc = torch.logcumsumexp(torch.log(alpha) - suffix, dim=-1)
    grad_by_place = torch.exp(ordered + log_acc) - alpha
    return torch.zeros_like(s).scatter(-1, r, grad_by_place)


def sample_rankings(logits, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Draw ``n`` rankings from the Plackett–Luce model of ``logits`` by the Gumbel trick.

    Sorting :math:`s_i + G_i` with :math:`G_i` i.i.d. standard Gumbel in decreasing order gives a
    ranking distributed exactly as :math:`P(\pi \mid s)` (Yellott, 1977).

    Parameters
    ----------
    logits : Tensor, shape (..., C)
    n : int ≥ 1
    generator : torch.Generator, optional

    Returns
    -------
    LongTensor, shape (n, ..., C)

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> r = sample_rankings(torch.tensor([3.0, 0.0]), 20000, generator=g)
    >>> round((r[:, 0] == 0).double().mean().item(), 2)   # softmax([3, 0])[0] = 0.953
    0.95
    """
    s = _logits("logits", logits)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    u = torch.rand((n, *s.shape), generator=generator, dtype=s.dtype).clamp_min(torch.finfo(s.dtype).tiny)
    gumbel = -torch.log(-torch.log(u))
    return torch.sort(s + gumbel, dim=-1, descending=True).indices
