r"""Closed forms over enumerated sequences: the tilted posterior of a Markov prior, marginals, and the
forward-KL projection onto i.i.d. models. Part of :mod:`kllab.maths.sequences`.
"""

from __future__ import annotations

import torch

from ..validation import check_int, check_log_probs, check_positive
from .models import _check_markov, _check_seqs, _check_tokens, _log_trans_per_step, enumerate_sequences, markov_log_prob, random_bigram, token_reward  # noqa: F401 (doctests)

__all__ = ["tilted_markov", "marginals", "unigram_projection"]


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
    :func:`kllab.maths.rlhf.log_partition` and :func:`kllab.maths.rlhf.kl_regularized_policy` on the
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

