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
:func:`enumerate_sequences`, so they plug straight into :mod:`kllab.maths.divergences` and
:mod:`kllab.maths.rlhf` (the "answers" there are the sequences here). As everywhere in kllab,
``f(p, q)`` means D(p‖q) with p the reference.
"""

from .families import FAMILIES, FamilyFit, family_log_prob, fit_family, init_family
from .models import MAX_SEQUENCES, enumerate_sequences, iid_log_prob, markov_log_prob, random_bigram, token_reward
from .tilting import marginals, tilted_markov, unigram_projection

__all__ = [
    "MAX_SEQUENCES", "FAMILIES", "enumerate_sequences", "random_bigram", "markov_log_prob",
    "iid_log_prob", "token_reward", "tilted_markov", "marginals", "unigram_projection",
    "init_family", "family_log_prob", "FamilyFit", "fit_family",
]
