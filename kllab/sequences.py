r"""Distributions over all sequences of a small vocabulary, enumerated exactly.

A sequence model over the vocabulary {0, …, V−1} and length L defines a distribution over
the :math:`V^L` sequences. For small V and L we list them all, so expectations, KL
divergences and their gradients are exact sums: no sampling, no variance. This module holds
the pieces such toys need:

* :func:`enumerate_sequences` lists the sequences (one row each, lexicographic order);
* :func:`random_bigram`, :func:`markov_log_prob`, :func:`iid_log_prob` give language models
  and their log-probabilities on every sequence;
* :func:`token_reward` is an additive reward :math:`r(x) = \sum_t w[x_t]`;
* :func:`tilted_markov` computes, by dynamic programming, the posterior
  :math:`\pi^* \propto \pi_0\, e^{r/\beta}` of a Markov prior under an additive reward
  (again a position-dependent Markov chain) and its log-partition function;
* the policy families ``"unigram"`` (i.i.d. tokens), ``"bigram"`` (position-dependent
  Markov chain) and ``"table"`` (one logit per sequence), with :func:`init_family`,
  :func:`family_log_prob` and :func:`fit_family` (Adam on exact enumerated gradients);
* :func:`marginals` and :func:`unigram_projection` (the forward-KL projection onto the
  i.i.d. family, in closed form).

Log-probabilities over sequences are tensors of shape ``(V**L,)`` in the order of
:func:`enumerate_sequences`, so they plug straight into :mod:`kllab.divergences` and
:mod:`kllab.rlhf` (the "answers" there are the sequences here). As everywhere in kllab,
``f(p, q)`` means D(p‖q) with p the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .validation import check_choice, check_int, check_log_probs, check_positive

__all__ = [
    "MAX_SEQUENCES", "FAMILIES", "enumerate_sequences", "random_bigram", "markov_log_prob",
    "iid_log_prob", "token_reward", "tilted_markov", "marginals", "unigram_projection",
    "init_family", "family_log_prob", "FamilyFit", "fit_family",
]

MAX_SEQUENCES = 2 ** 20
"""Largest V**L that :func:`enumerate_sequences` accepts by default (about a million rows)."""

FAMILIES = ("unigram", "bigram", "table")
"""Policy families, from least to most capacity: i.i.d. tokens, position-dependent bigram, full table."""


def _check_seqs(seqs) -> torch.Tensor:
    if not torch.is_tensor(seqs) or seqs.dtype not in (torch.int64, torch.int32) or seqs.ndim != 2:
        got = f"{seqs.dtype} tensor of shape {tuple(seqs.shape)}" if torch.is_tensor(seqs) else type(seqs).__name__
        raise ValueError(f"seqs must be an integer tensor of shape (N, L), as from enumerate_sequences; got {got}")
    if seqs.shape[1] < 1:
        raise ValueError(f"seqs must have length L >= 1; got shape {tuple(seqs.shape)}")
    if seqs.numel() and int(seqs.min()) < 0:
        raise ValueError(f"seqs must hold token ids >= 0; got {int(seqs.min())}")
    return seqs.long()


def _check_tokens(seqs: torch.Tensor, vocab: int, name: str) -> None:
    if seqs.numel() and int(seqs.max()) >= vocab:
        raise ValueError(f"seqs must hold token ids < {vocab} (the size of {name}); got {int(seqs.max())}")


def enumerate_sequences(vocab: int, length: int, *, max_count: int = MAX_SEQUENCES) -> torch.Tensor:
    r"""All :math:`V^L` sequences of length L over the tokens {0, …, V−1}, in lexicographic order.

    Row i is the base-V expansion of i (first token most significant), so the sequence
    :math:`(x_0, …, x_{L-1})` sits at index :math:`\sum_t x_t V^{L-1-t}`.

    Parameters
    ----------
    vocab : int ≥ 1
        V, the number of tokens.
    length : int ≥ 1
        L, the number of positions.
    max_count : int
        Refuse to build more than this many rows (a guard against V**L exploding).

    Returns
    -------
    LongTensor, shape (V**L, L)

    >>> enumerate_sequences(2, 3).tolist()
    [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1]]
    """
    vocab = check_int("vocab", vocab, low=1)
    length = check_int("length", length, low=1)
    count = vocab ** length
    if count > max_count:
        raise ValueError(f"vocab**length must be <= {max_count} (max_count); got {vocab}**{length} = {count}. "
                         f"Use a smaller vocab or length.")
    index = torch.arange(count, dtype=torch.int64)
    powers = vocab ** torch.arange(length - 1, -1, -1, dtype=torch.int64)
    return (index[:, None] // powers[None, :]) % vocab


def random_bigram(vocab: int, *, concentration: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A random bigram language model: the first token and every row of the transition matrix ~ Dirichlet(α).

    .. math::
        \pi_0(x) = p_{\rm init}(x_0) \prod_{t=1}^{L-1} T(x_{t-1}, x_t), \qquad
        p_{\rm init},\ T(a, \cdot) \sim \mathrm{Dir}(\alpha, …, \alpha)

    α < 1 gives peaked rows (a model with strong preferences), α > 1 flat ones.
    Drawn with NumPy's ``default_rng(seed)``, so the same seed gives the same model everywhere.

    Parameters
    ----------
    vocab : int ≥ 2
    concentration : float > 0
        α, the Dirichlet concentration of every row.
    seed : int

    Returns
    -------
    (log_init, log_trans)
        float64 tensors of shapes (V,) and (V, V); each row of ``exp(log_trans)`` sums to 1.

    >>> log_init, log_trans = random_bigram(3, seed=1)
    >>> tuple(log_trans.shape), bool(torch.allclose(log_trans.exp().sum(-1), torch.ones(3, dtype=torch.float64)))
    ((3, 3), True)
    """
    vocab = check_int("vocab", vocab, low=2)
    concentration = check_positive("concentration", concentration)
    seed = check_int("seed", seed, low=0)
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.full(vocab, concentration), size=vocab + 1)
    rows = np.maximum(rows, np.finfo(np.float64).tiny)  # a Dirichlet draw can underflow to 0 for tiny α
    rows = rows / rows.sum(-1, keepdims=True)
    logs = torch.from_numpy(np.log(rows))
    return logs[0].clone(), logs[1:].clone()


def _log_trans_per_step(log_trans: torch.Tensor, length: int, name: str = "log_trans") -> torch.Tensor:
    """Return log-transitions of shape (L−1, V, V), repeating a homogeneous (V, V) matrix."""
    if log_trans.ndim == 2:
        return log_trans.expand(max(length - 1, 0), *log_trans.shape)
    if log_trans.ndim == 3:
        if log_trans.shape[0] != length - 1:
            raise ValueError(f"{name} must have shape (V, V) or (L-1, V, V) = ({length - 1}, V, V); "
                             f"got {tuple(log_trans.shape)}")
        return log_trans
    raise ValueError(f"{name} must have shape (V, V) or (L-1, V, V); got {tuple(log_trans.shape)}")


def _check_markov(log_init, log_trans) -> tuple[torch.Tensor, torch.Tensor]:
    check_log_probs("log_init", log_init)
    check_log_probs("log_trans", log_trans)
    v = log_init.shape[-1]
    if log_init.ndim != 1 or log_trans.shape[-2:] != (v, v):
        raise ValueError(f"log_init must have shape (V,) and log_trans (V, V) or (L-1, V, V) with the same V; "
                         f"got {tuple(log_init.shape)} and {tuple(log_trans.shape)}")
    return log_init, log_trans


def markov_log_prob(seqs, log_init, log_trans) -> torch.Tensor:
    r"""Log-probability of each sequence under a (possibly position-dependent) Markov chain.

    .. math::
        \log \pi(x) = \log p_{\rm init}(x_0) + \sum_{t=1}^{L-1} \log T_t(x_{t-1}, x_t)

    Parameters
    ----------
    seqs : LongTensor, shape (N, L)
    log_init : Tensor, shape (V,)
        Log-probabilities of the first token.
    log_trans : Tensor, shape (V, V) or (L−1, V, V)
        Row a holds log T(a, ·); a 3-D tensor gives one matrix per step t = 1, …, L−1.

    Returns
    -------
    Tensor, shape (N,)
        Differentiable in ``log_init`` and ``log_trans``. Over all V**L sequences the
        probabilities sum to 1.

    >>> seqs = enumerate_sequences(3, 4)
    >>> log_init, log_trans = random_bigram(3, seed=0)
    >>> abs(torch.logsumexp(markov_log_prob(seqs, log_init, log_trans), 0).item()) < 1e-12
    True
    """
    seqs = _check_seqs(seqs)
    log_init, log_trans = _check_markov(log_init, log_trans)
    _check_tokens(seqs, log_init.shape[-1], "log_init")
    length = seqs.shape[1]
    steps = _log_trans_per_step(log_trans, length)
    out = log_init[seqs[:, 0]]
    if length > 1:
        t = torch.arange(length - 1)
        out = out + steps[t[None, :], seqs[:, :-1], seqs[:, 1:]].sum(-1)
    return out


def iid_log_prob(seqs, log_probs) -> torch.Tensor:
    r"""Log-probability of each sequence when tokens are independent: :math:`\sum_t \log u_t(x_t)`.

    Parameters
    ----------
    seqs : LongTensor, shape (N, L)
    log_probs : Tensor, shape (V,) or (L, V)
        One token distribution shared by all positions (i.i.d.), or one per position.

    Returns
    -------
    Tensor, shape (N,)

    >>> seqs = enumerate_sequences(2, 2)
    >>> iid_log_prob(seqs, torch.tensor([0.25, 0.75], dtype=torch.float64).log()).exp().tolist()
    [0.0625, 0.1875, 0.1875, 0.5625]
    """
    seqs = _check_seqs(seqs)
    check_log_probs("log_probs", log_probs)
    _check_tokens(seqs, log_probs.shape[-1], "log_probs")
    length = seqs.shape[1]
    if log_probs.ndim == 1:
        return log_probs[seqs].sum(-1)
    if log_probs.ndim == 2 and log_probs.shape[0] == length:
        return log_probs[torch.arange(length)[None, :], seqs].sum(-1)
    raise ValueError(f"log_probs must have shape (V,) or (L, V) = ({length}, V); got {tuple(log_probs.shape)}")


def token_reward(seqs, weights) -> torch.Tensor:
    r"""Additive reward of each sequence, :math:`r(x) = \sum_t w[x_t]`.

    Parameters
    ----------
    seqs : LongTensor, shape (N, L)
    weights : sequence or Tensor, shape (V,)
        The reward of each token (finite).

    Returns
    -------
    float64 Tensor, shape (N,)

    >>> token_reward(torch.tensor([[0, 3, 3], [2, 1, 0]]), [-1.0, 0.0, 0.3, 1.0]).tolist()
    [1.0, -0.7]
    """
    seqs = _check_seqs(seqs)
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.ndim != 1 or not torch.isfinite(w).all():
        raise ValueError(f"weights must be a finite 1-D vector of per-token rewards; got shape {tuple(w.shape)}")
    _check_tokens(seqs, w.shape[0], "weights")
    return w[seqs].sum(-1)


def tilted_markov(log_init, log_trans, weights, beta: float, length: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Posterior of a Markov prior under an additive reward: π* ∝ π₀·e^{r/β}, as a Markov chain, and log Z.

    The prior π₀ (``log_init``, ``log_trans``) is the reference. Because
    :math:`e^{r(x)/\beta} = \prod_t e^{w[x_t]/\beta}` factorises over positions, the tilted
    distribution is again a Markov chain, now position-dependent. With backward messages
    :math:`m_{L-1} = 1`, :math:`m_{t-1}(a) = \sum_b T_t(a,b)\, e^{w_b/\beta}\, m_t(b)`:

    .. math::
        Z = \sum_a p_{\rm init}(a)\, e^{w_a/\beta}\, m_0(a), \qquad
        p^*_{\rm init}(a) = \frac{p_{\rm init}(a)\, e^{w_a/\beta}\, m_0(a)}{Z}, \qquad
        T^*_t(a, b) = \frac{T_t(a,b)\, e^{w_b/\beta}\, m_t(b)}{m_{t-1}(a)}

    All in log space. This is an independent (dynamic-programming) route to
    :func:`kllab.rlhf.log_partition` and :func:`kllab.rlhf.kl_regularized_policy` on the
    enumerated sequences, and a proof that π* lies in the position-dependent bigram family.

    Parameters
    ----------
    log_init : Tensor, shape (V,)
    log_trans : Tensor, shape (V, V) or (L−1, V, V)
    weights : sequence or Tensor, shape (V,)
        Per-token rewards w.
    beta : float > 0
        The KL coefficient (posterior temperature).
    length : int ≥ 1
        L.

    Returns
    -------
    (log_init_star, log_trans_star, log_z)
        Shapes (V,), (L−1, V, V) and () (a 0-d tensor).

    >>> seqs = enumerate_sequences(3, 4); w = [0.0, 0.5, 1.0]
    >>> li, lt = random_bigram(3, seed=0)
    >>> li_s, lt_s, log_z = tilted_markov(li, lt, w, 0.7, 4)
    >>> brute = torch.logsumexp(markov_log_prob(seqs, li, lt) + token_reward(seqs, w) / 0.7, 0)
    >>> bool(torch.isclose(log_z, brute, rtol=0, atol=1e-12))
    True
    """
    log_init, log_trans = _check_markov(log_init, log_trans)
    beta = check_positive("beta", beta)
    length = check_int("length", length, low=1)
    v = log_init.shape[0]
    w = torch.as_tensor(weights, dtype=log_init.dtype)
    if w.shape != (v,) or not torch.isfinite(w).all():
        raise ValueError(f"weights must be a finite vector of shape (V,) = ({v},); got shape {tuple(w.shape)}")
    steps = _log_trans_per_step(log_trans, length)
    phi = w / beta
    log_m = [torch.zeros(v, dtype=log_init.dtype)]  # log m_{L-1}, then m_{L-2}, ..., m_0
    for t in range(length - 1, 0, -1):
        log_m.append(torch.logsumexp(steps[t - 1] + (phi + log_m[-1])[None, :], dim=-1))
    log_m = log_m[::-1]  # log_m[t] = log m_t
    first = log_init + phi + log_m[0]
    log_z = torch.logsumexp(first, 0)
    log_init_star = first - log_z
    trans_star = [steps[t - 1] + (phi + log_m[t])[None, :] - log_m[t - 1][:, None] for t in range(1, length)]
    log_trans_star = (torch.stack(trans_star) if trans_star
                      else torch.zeros((0, v, v), dtype=log_init.dtype))
    return log_init_star, log_trans_star, log_z


def marginals(seqs, logq, vocab: int) -> torch.Tensor:
    r"""Per-position token marginals :math:`q_t(a) = \sum_{x:\,x_t = a} q(x)` of a distribution over sequences.

    Parameters
    ----------
    seqs : LongTensor, shape (N, L)
    logq : Tensor, shape (N,)
        Log-probabilities of the sequences (they must sum to 1).
    vocab : int
        V.

    Returns
    -------
    Tensor, shape (L, V)
        Each row sums to 1.

    >>> seqs = enumerate_sequences(2, 2)
    >>> marginals(seqs, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64).log(), 2).round(decimals=6).tolist()
    [[0.3, 0.7], [0.4, 0.6]]
    """
    seqs = _check_seqs(seqs)
    vocab = check_int("vocab", vocab, low=1)
    _check_tokens(seqs, vocab, "the vocabulary")
    check_log_probs("logq", logq)
    if logq.shape != (seqs.shape[0],):
        raise ValueError(f"logq must have shape (N,) = ({seqs.shape[0]},); got {tuple(logq.shape)}")
    q = logq.exp()
    onehot = torch.nn.functional.one_hot(seqs, vocab).to(q.dtype)  # (N, L, V)
    return torch.einsum("n,nlv->lv", q, onehot)


def unigram_projection(seqs, logp, vocab: int) -> torch.Tensor:
    r"""Closest i.i.d. model in forward KL: :math:`\arg\min_u \mathrm{KL}(p \,\|\, u^{\otimes L})`; ``logp`` is the reference.

    Since :math:`\mathrm{KL}(p\|u^{\otimes L}) = -H(p) - \sum_t \sum_a p_t(a) \log u(a)`, the
    minimiser is the position-averaged marginal (moment matching, mass-covering):

    .. math::
        u^*(a) = \frac1L \sum_{t=0}^{L-1} p_t(a)

    Returns
    -------
    Tensor, shape (V,)
        :math:`\log u^*`.

    >>> seqs = enumerate_sequences(2, 2)
    >>> unigram_projection(seqs, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64).log(), 2).exp().round(decimals=6).tolist()
    [0.35, 0.65]
    """
    return marginals(seqs, logp, vocab).mean(0).log()


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
    scalar; for instance ``lambda logq: kllab.divergences.kl(logp, logq)`` (forward KL to a
    target p: distribution matching) or ``lambda logq: -kllab.rlhf.objective(logq, logp_ref, r, beta)``
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

    >>> from kllab.divergences import kl
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
    opt = torch.optim.Adam(list(leaves.values()), lr=lr)
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
