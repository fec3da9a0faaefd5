r"""Sequence spaces and language models on them: every sequence of a small vocabulary, enumerated.

Part of :mod:`kllab.maths.sequences`: :func:`enumerate_sequences`, the bigram and i.i.d. models
(:func:`random_bigram`, :func:`markov_log_prob`, :func:`iid_log_prob`) and the additive reward
:func:`token_reward`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..validation import check_int, check_log_probs, check_positive

__all__ = ["MAX_SEQUENCES", "enumerate_sequences", "random_bigram", "markov_log_prob", "iid_log_prob", "token_reward"]

MAX_SEQUENCES = 2 ** 20
"""Largest V**L that :func:`enumerate_sequences` accepts by default (about a million rows)."""

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

