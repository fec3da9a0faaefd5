r"""Policy families over enumerated sequences, and training them with exact gradients.

Part of :mod:`kllab.maths.sequences`: ``"unigram"`` (i.i.d. tokens), ``"bigram"`` (position-dependent
Markov chain) and ``"table"`` (one logit per sequence), with :func:`init_family`,
:func:`family_log_prob` and :func:`fit_family`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..optim import Adam
from ..validation import check_choice, check_int, check_positive
from .models import _check_markov, _check_seqs, _check_tokens, _log_trans_per_step, enumerate_sequences, iid_log_prob, markov_log_prob  # noqa: F401 (doctests)

__all__ = ["FAMILIES", "init_family", "family_log_prob", "FamilyFit", "fit_family"]

FAMILIES = ("unigram", "bigram", "table")
"""Policy families, from least to most capacity: i.i.d. tokens, position-dependent bigram, full table."""


def _family_shapes(family: str, vocab: int, length: int) -> dict[str, tuple[int, ...]]:
    if family == "unigram":
        return {"logits": (vocab,)}
    if family == "bigram":
        return {"init": (vocab,), "trans": (length - 1, vocab, vocab)}
    return {"logits": (vocab ** length,)}


def init_family(family: str, vocab: int, length: int, *, prior: tuple[torch.Tensor, torch.Tensor] | None = None,
                batch: int | None = None) -> dict[str, torch.Tensor]:
    r"""Starting logits for a policy family: uniform, or the prior where the family contains it.

    * ``"unigram"``: one token distribution shared by all positions, ``{"logits": (V,)}``;
      starts uniform.
    * ``"bigram"``: first-token logits and one transition matrix per step,
      ``{"init": (V,), "trans": (L−1, V, V)}``; starts at ``prior`` = (log_init, log_trans)
      if given (a bigram prior is a member), else uniform.
    * ``"table"``: one logit per sequence, ``{"logits": (V**L,)}``; starts at the prior's
      log-probabilities if given, else uniform.

    With ``batch=B`` every tensor gets a leading axis of B identical copies: B independent
    policies that :func:`fit_family` trains side by side (for instance one per KL direction).

    Returns
    -------
    dict of float64 Tensors (fresh copies, safe to optimise in place).

    >>> {k: tuple(v.shape) for k, v in init_family("bigram", 4, 6).items()}
    {'init': (4,), 'trans': (5, 4, 4)}
    >>> tuple(init_family("unigram", 4, 6, batch=2)["logits"].shape)
    (2, 4)
    """
    family = check_choice("family", family, FAMILIES)
    vocab = check_int("vocab", vocab, low=1)
    length = check_int("length", length, low=1)
    if batch is not None:
        batch = check_int("batch", batch, low=1)
    shapes = _family_shapes(family, vocab, length)
    params = {k: torch.zeros(s, dtype=torch.float64) for k, s in shapes.items()}
    if prior is not None and family != "unigram":
        log_init, log_trans = _check_markov(*prior)
        if log_init.shape[0] != vocab:
            raise ValueError(f"prior must have vocab V = {vocab}; got V = {log_init.shape[0]}")
        if family == "bigram":
            params["init"] = log_init.detach().clone().to(torch.float64)
            params["trans"] = _log_trans_per_step(log_trans.detach(), length).clone().to(torch.float64)
        else:
            seqs = enumerate_sequences(vocab, length)
            params["logits"] = markov_log_prob(seqs, log_init, log_trans).detach().clone().to(torch.float64)
    if batch is not None:
        params = {k: v.expand(batch, *v.shape).clone() for k, v in params.items()}
    return params


def family_log_prob(family: str, params: Mapping[str, torch.Tensor], seqs) -> torch.Tensor:
    r"""Log-probabilities of all sequences under a member of a policy family (normalised by construction).

    .. math::
        \text{unigram: } \sum_t \log u(x_t), \quad
        \text{bigram: } \log p_{\rm init}(x_0) + \sum_{t\ge1} \log T_t(x_{t-1}, x_t), \quad
        \text{table: } \log \mathrm{softmax}(z)_x

    with u, p_init and the rows of T_t the softmaxes of the corresponding logits.
    Differentiable in ``params``.

    Parameters
    ----------
    family : {"unigram", "bigram", "table"}
    params : dict of Tensors
        As returned by :func:`init_family`; all may share leading batch axes (...).
    seqs : LongTensor, shape (N, L)
        For ``"table"``, all V**L sequences in the order of :func:`enumerate_sequences`.

    Returns
    -------
    Tensor, shape (..., N)

    >>> seqs = enumerate_sequences(3, 3)
    >>> logq = family_log_prob("unigram", {"logits": torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)}, seqs)
    >>> abs(torch.logsumexp(logq, 0).item()) < 1e-12
    True
    """
    family = check_choice("family", family, FAMILIES)
    seqs = _check_seqs(seqs)
    _check_params(family, params, seqs)
    return _family_log_prob(family, params, _statistics(family, params, seqs))


def _check_params(family: str, params: Mapping[str, torch.Tensor], seqs: torch.Tensor) -> tuple[int, ...]:
    """Validate keys, dtypes and shapes; return the common batch shape."""
    expected = set(_family_shapes(family, 1, 1))
    if set(params) != expected:
        raise ValueError(f"params must have keys {sorted(expected)} for family={family!r}; got {sorted(params)}")
    for k, v in params.items():
        if not torch.is_tensor(v) or not v.is_floating_point() or v.ndim == 0 or not torch.isfinite(v).all():
            raise ValueError(f"params[{k!r}] must be a finite floating-point tensor; got {v!r}")
    n, length = seqs.shape
    if family == "table":
        v = None
        shapes = {"logits": (n,)}
    else:
        v = params["init" if family == "bigram" else "logits"].shape[-1]
        shapes = _family_shapes(family, v, length)
    batch = None
    for k, s in shapes.items():
        shape = tuple(params[k].shape)
        if shape[len(shape) - len(s):] != s or len(shape) < len(s):
            what = "one entry per sequence, shape" if family == "table" else "shape"
            raise ValueError(f"params[{k!r}] must have {what} (..., {', '.join(map(str, s))}) for "
                             f"family={family!r} and L={length}; got {shape}")
        lead = shape[:len(shape) - len(s)]
        if batch is not None and lead != batch:
            raise ValueError(f"params must share their leading batch shape; got {batch} and {lead}")
        batch = lead
    if v is not None:
        _check_tokens(seqs, v, "the family's vocabulary")
    return batch


def _statistics(family: str, params: Mapping[str, torch.Tensor], seqs: torch.Tensor):
    """Precomputed gather indices, so that a training step is a log_softmax, a gather and a sum."""
    if family == "table":
        return None
    if family == "unigram":  # token counts: log q(x) = <counts(x), log u>
        v = params["logits"].shape[-1]
        return torch.nn.functional.one_hot(seqs, v).sum(1).to(params["logits"].dtype).T.contiguous()  # (V, N)
    v, length = params["init"].shape[-1], seqs.shape[1]
    t = torch.arange(length - 1)
    # Index of each step's (t, x_{t-1}, x_t) in the flattened (L-1, V, V) transition logits.
    return seqs[:, 0], t[None, :] * v * v + seqs[:, :-1] * v + seqs[:, 1:]


def _family_log_prob(family: str, params: Mapping[str, torch.Tensor], stats) -> torch.Tensor:
    if family == "table":
        return torch.log_softmax(params["logits"], -1)
    if family == "unigram":
        return torch.log_softmax(params["logits"], -1) @ stats
    first, pairs = stats
    log_trans = torch.log_softmax(params["trans"], -1).flatten(-3)
    return torch.log_softmax(params["init"], -1)[..., first] + log_trans[..., pairs].sum(-1)


@dataclass
class FamilyFit:
    """Result of :func:`fit_family`.

    Attributes
    ----------
    family : str
    params : dict of Tensors
        The trained logits (detached).
    logq : Tensor, shape (..., N)
        The trained policies' log-probabilities on every sequence.
    history : list
        The loss at every step (before that step's update), length ``steps``: a float, or
        a list of floats (one per policy) when ``loss`` returns one value per policy.
    path : dict of int to Tensor
        log q at the requested ``snapshots`` (step k means after k updates; 0 is the start).
    """

    family: str
    params: dict[str, torch.Tensor] = field(repr=False)
    logq: torch.Tensor = field(repr=False)
    history: list = field(repr=False)
    path: dict[int, torch.Tensor] = field(repr=False, default_factory=dict)


def fit_family(family: str, loss: Callable[[torch.Tensor], torch.Tensor], seqs, params: Mapping[str, torch.Tensor],
               *, steps: int = 500, lr: float = 0.05, snapshots: Sequence[int] = ()) -> FamilyFit:
    r"""Minimise ``loss(log q)`` over a policy family with Adam and exact gradients (full enumeration).

    ``loss`` receives the log-probabilities of all sequences, shape (N,), and returns a
    scalar; for instance ``lambda logq: kllab.maths.divergences.kl(logp, logq)`` (forward KL to a
    target p: distribution matching) or ``lambda logq: -kllab.maths.rlhf.objective(logq, logp_ref, r, beta)``
    (KL-regularised RL). Because every sequence is enumerated, the gradient is the exact
    gradient of the expected objective, with no sampling noise.

    Batched policies (``params`` with leading axes, e.g. ``init_family(..., batch=2)``) are
    trained side by side: ``loss`` then gets log q of shape (..., N) and returns either one
    value per policy (shape (...)) or their sum. Adam acts element by element, so each policy
    follows exactly the path it would follow alone; batching only saves time.

    Parameters
    ----------
    family : {"unigram", "bigram", "table"}
    loss : callable
        Maps log q, shape (..., N), to a 0-d tensor or one value per policy, to minimise.
    seqs : LongTensor, shape (N, L)
    params : dict of Tensors
        Starting logits, from :func:`init_family` (copied, not modified).
    steps : int ≥ 1
    lr : float > 0
        Adam learning rate.
    snapshots : sequence of int
        Steps (0 … steps) at which to keep a copy of log q in ``path``.

    Returns
    -------
    FamilyFit

    >>> from kllab.maths.divergences import kl
    >>> seqs = enumerate_sequences(2, 3)
    >>> target = iid_log_prob(seqs, torch.tensor([0.2, 0.8], dtype=torch.float64).log())
    >>> fit = fit_family("unigram", lambda logq: kl(target, logq), seqs, init_family("unigram", 2, 3), steps=300, lr=0.1)
    >>> fit.history[-1] < 1e-6
    True
    """
    family = check_choice("family", family, FAMILIES)
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr)
    seqs = _check_seqs(seqs)
    if not callable(loss):
        raise ValueError(f"loss must be a callable mapping log q to a scalar; got {type(loss).__name__}")
    keep = set()
    for s in snapshots:
        keep.add(check_int("snapshots", s, low=0, high=steps))
    leaves = {k: v.detach().clone().to(torch.float64).requires_grad_(True) for k, v in params.items()}
    batch = _check_params(family, leaves, seqs)
    stats = _statistics(family, leaves, seqs)
    opt = Adam(list(leaves.values()), lr=lr)   # torch.optim.Adam's update, without importing torch._dynamo
    history: list = []
    path: dict[int, torch.Tensor] = {}
    for step in range(steps):
        opt.zero_grad()
        logq = _family_log_prob(family, leaves, stats)
        if step in keep:
            path[step] = logq.detach().clone()
        value = loss(logq)
        if not torch.is_tensor(value) or (value.ndim != 0 and tuple(value.shape) != batch):
            got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise ValueError(f"loss must return a scalar (0-d) tensor or one value per policy, shape {batch}; got {got}")
        if not torch.isfinite(value).all():
            raise ValueError(f"loss must stay finite; got {value.tolist()} at step {step} (lower lr?)")
        value.sum().backward()
        opt.step()
        history.append(value.item() if value.ndim == 0 else value.tolist())
    with torch.no_grad():
        logq = _family_log_prob(family, leaves, stats)
    if steps in keep:
        path[steps] = logq.clone()
    return FamilyFit(family, {k: v.detach() for k, v in leaves.items()}, logq, history, path)
