r"""Bayes mixtures for sequential prediction under log loss: posterior weights, regret, and its KL reading.

A learner that predicts a sequence :math:`x^n = x_1 \dots x_n` symbol by symbol with predictive
distributions :math:`q_t(\cdot) = q(\cdot \mid x^{t-1})` pays the **log loss**
:math:`L_q(x^n) = -\sum_t \log q_t(x_t)`. Its **regret** against a reference predictor :math:`p` is
:math:`L_q(x^n) - L_p(x^n)`.

**The Bayes mixture.** Over a finite (or discretised) class of predictors :math:`P_1, \dots, P_K` with
prior weights :math:`w_k`, the mixture :math:`Q(x^n) = \sum_k w_k P_k(x^n)` predicts with

.. math::

    q_t(y) = \sum_k v_{t,k}\, P_k(y \mid x^{t-1}), \qquad
    v_{t,k} = \frac{w_k\, P_k(x^{t-1})}{\sum_j w_j\, P_j(x^{t-1})} \quad\text{(the posterior weights)},

and the chain rule makes :math:`\prod_t q_t(x_t) = Q(x^n)` exactly. Since :math:`Q(x^n) \ge w_k P_k(x^n)`
for every :math:`k`,

.. math::

    L_Q(x^n) - L_{P_0}(x^n) \;\le\; \log\frac{1}{w_k} + \big[L_{P_k}(x^n) - L_{P_0}(x^n)\big]
    \quad\text{for every } k, \text{ every sequence, every reference } P_0 .

The regret depends on the prior weight of a good component, not on the number of components.

**Tempered posteriors.** ``temperature`` :math:`T` replaces :math:`P_k(x^{t-1})` by
:math:`P_k(x^{t-1})^{1/T}` in the weights (:math:`T = 1` is Bayes). For :math:`T \ge 1`, concavity of
:math:`u \mapsto u^{1/T}` gives :math:`-\log\sum_k v_k p_k \le -T \log \sum_k v_k p_k^{1/T}`; the sum
telescopes to :math:`L_Q \le T\log(1/w_k) + L_{P_k}` (the aggregating algorithm's bound for
log loss with learning rate :math:`1/T \le 1`). For :math:`T < 1` ("cold") there is no such bound.

**Two ways to pool the posterior.** ``direction="forward"`` predicts with the arithmetic pool above,
the :math:`q` that minimises :math:`\sum_k v_k\,\mathrm{KL}(P_k(\cdot\mid x^{t-1})\,\|\,q)`; it is the Bayes
mixture. ``direction="reverse"`` predicts with the geometric pool
:math:`q_t(y) \propto \prod_k P_k(y\mid x^{t-1})^{v_{t,k}}`, the minimiser of
:math:`\sum_k v_k\,\mathrm{KL}(q\,\|\,P_k(\cdot\mid x^{t-1}))` (mode-seeking). By Hölder its normaliser is
at most 1, so its loss is at most the posterior-averaged loss :math:`\sum_k v_{t,k}(-\log P_k(x_t\mid x^{t-1}))`;
the telescoping bound above is the arithmetic pool's alone.

**KL reading.** If :math:`x^n \sim P_0`, the expected regret against :math:`P_0` is
:math:`\mathbb{E}_{P_0}[L_Q - L_{P_0}] = \mathrm{KL}(P_0^n \,\|\, Q)`, a forward KL between distributions of
whole sequences. By Jensen on the components inside :math:`B_\varepsilon = \{k : \mathrm{KL}(P_0^n\|P_k) \le n\varepsilon\}`
(Feder, Urbanke and Fogel, 2025),

.. math::

    \mathrm{KL}(P_0^n \,\|\, Q) \;\le\; n\varepsilon + \log\frac{1}{w(B_\varepsilon)}, \qquad
    w(B_\varepsilon) = \sum_{k \in B_\varepsilon} w_k ,

the **weight** of the hypothesis: many near-equivalent components of small weight add up.

**Krichevsky–Trofimov (KT) components.** The KT estimator of a Markov chain of order :math:`k` over an
alphabet of size :math:`A` is the Bayes mixture over the chain's transition probabilities with a
Dirichlet(½, …, ½) prior in every context :math:`s` (the last :math:`k` symbols; the history before
:math:`x_1` is padded with the symbol 0):
:math:`q_t(a) = (n_{s,a} + \tfrac12)/(n_s + \tfrac A2)`, with counts over :math:`x^{t-1}`. Its sequence
probability has the closed form
:math:`\prod_s \Gamma(\tfrac A2)\prod_a \Gamma(n_{s,a}+\tfrac12) / (\Gamma(\tfrac12)^A\, \Gamma(n_s + \tfrac A2))`,
and for :math:`A = 2` its regret against the best chain of its order is at most
:math:`\sum_{s:\,n_s>0} (\tfrac12 \log n_s + \log 2)` (Krichevsky and Trofimov, 1981; Cover and Thomas, §13.2 and
problem 13.4 give the :math:`\tfrac12\log n + \log 2` form for one context).

All logarithms are natural (nats). Arrays are NumPy float64; no hidden reductions: per-step values have
one entry per time step and the caller sums.

References
----------
* M. Feder, R. Urbanke, Y. Fogel. *The Universality Lens: Why Even Highly Over-Parametrized Models Learn Well.*
  2025. arXiv:2506.07661.
* R. Krichevsky, V. Trofimov. *The performance of universal encoding.* IEEE Trans. Inf. Theory 27(2), 1981.
* N. Cesa-Bianchi, G. Lugosi. *Prediction, Learning, and Games.* 2006, chapters 3 and 9 (mixability of log loss).
* T. Cover, J. Thomas. *Elements of Information Theory.* 2nd ed., 2006, chapter 13.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from .validation import DIRECTIONS, check_choice, check_int, check_real, check_real_array

__all__ = [
    "log_sum_exp", "mixture_log_prob", "MixturePrediction", "sequential_mixture", "cumulative_log_loss",
    "tempered_regret_bound", "context_ids", "kt_predictive", "kt_log_prob", "kt_regret_bound",
    "markov_predictive", "observed_log_probs", "kl_ball_bound", "bernoulli_mixture_kl",
]

MAX_CONTEXTS = 2 ** 62
"""Largest number of contexts A**order that :func:`context_ids` accepts (the ids are int64)."""


def log_sum_exp(a, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(a)))`` along ``axis``, shifted by the maximum (``-inf`` entries are legal).

    >>> round(float(log_sum_exp(np.log([0.25, 0.75]))), 12)
    0.0
    """
    a = np.asarray(a, dtype=np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis)


def _log_prior(log_prior, k: int | None = None, name: str = "log_prior", atol: float = 1e-8) -> np.ndarray:
    a = np.asarray(log_prior, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a 1-D array of log-weights, one per component; got shape {a.shape}")
    if k is not None and a.size != k:
        raise ValueError(f"{name} must have one entry per component ({k}); got {a.size}")
    if np.isnan(a).any():
        raise ValueError(f"{name} must not contain NaN; got {int(np.isnan(a).sum())} NaN value(s)")
    if (a == np.inf).any():
        raise ValueError(f"{name} must not contain +inf (a log-weight is <= 0); got +inf")
    total = float(log_sum_exp(a))
    if not abs(total) <= atol:
        raise ValueError(f"{name} must be normalised log-weights (logsumexp = 0); got logsumexp {total:.6g}. "
                         f"Subtract its logsumexp, or pass np.log(w / w.sum())")
    return a


def _log_tables(pred_log_probs, name: str = "pred_log_probs", atol: float = 1e-8) -> np.ndarray:
    a = np.asarray(pred_log_probs, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (n, K, A): steps, components, symbols; got shape {a.shape}")
    if a.shape[2] < 2:
        raise ValueError(f"{name} must have at least 2 symbols on its last axis; got {a.shape[2]}")
    if np.isnan(a).any():
        raise ValueError(f"{name} must not contain NaN; got {int(np.isnan(a).sum())} NaN value(s)")
    if (a == np.inf).any():
        raise ValueError(f"{name} must not contain +inf (a log-probability is <= 0); got +inf")
    total = log_sum_exp(a, axis=-1)
    bad = ~(np.abs(total) <= atol)
    if bad.any():
        raise ValueError(f"{name} must be log-probabilities: logsumexp over the last axis must be 0; got "
                         f"{float(total[bad].flat[0]):.6g} in {int(bad.sum())} row(s). Did you pass logits?")
    return a


def _symbols(x, alphabet: int, name: str = "x") -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of symbols; got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating) or np.isnan(a).any() or (a != np.round(a)).any():
            raise ValueError(f"{name} must hold integer symbols in [0, {alphabet - 1}]; got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= alphabet):
        raise ValueError(f"{name} must hold integer symbols in [0, {alphabet - 1}]; got values in "
                         f"[{a.min()}, {a.max()}]")
    return a


def mixture_log_prob(seq_log_probs, log_prior) -> np.ndarray:
    r"""Log-probability :math:`\log Q(x) = \log \sum_k w_k P_k(x)` of the mixture, from its components'.

    Parameters
    ----------
    seq_log_probs : array, shape (..., K)
        :math:`\log P_k(x)` of each component (``-inf`` allowed).
    log_prior : array, shape (K,)
        Normalised log prior weights :math:`\log w_k`.

    Returns
    -------
    array, shape (...)

    >>> round(float(np.exp(mixture_log_prob(np.log([0.5, 0.1]), np.log([0.5, 0.5])))), 12)
    0.3
    """
    log_prior = _log_prior(log_prior)
    s = np.asarray(seq_log_probs, dtype=np.float64)
    if s.ndim == 0 or s.shape[-1] != log_prior.size:
        raise ValueError(f"seq_log_probs must have the K = {log_prior.size} components on its last axis; "
                         f"got shape {s.shape}")
    if np.isnan(s).any() or (s == np.inf).any():
        raise ValueError("seq_log_probs must be log-probabilities (no NaN, no +inf)")
    return log_sum_exp(s + log_prior, axis=-1)


@dataclass(frozen=True)
class MixturePrediction:
    """What :func:`sequential_mixture` returns.

    Attributes
    ----------
    log_pred : array (n, A)
        The learner's predictive log-probabilities :math:`\\log q_t(y)` at each step.
    log_loss : array (n,)
        Its loss :math:`-\\log q_t(x_t)` on the observed symbol.
    log_post : array (n + 1, K)
        The (tempered) posterior log-weights :math:`\\log v_{t,k}` used at step t (row n: after the last symbol).
    """

    log_pred: np.ndarray
    log_loss: np.ndarray
    log_post: np.ndarray


def sequential_mixture(pred_log_probs, x, log_prior, *, temperature: float = 1.0,
                       direction: str = "forward") -> MixturePrediction:
    r"""Predict a sequence by pooling K sequential predictors with their (tempered) posterior weights.

    Parameters
    ----------
    pred_log_probs : array, shape (n, K, A)
        :math:`\log P_k(y \mid x^{t-1})` of every component k for every symbol y at every step t.
    x : int array, shape (n,)
        The observed symbols.
    log_prior : array, shape (K,)
        Normalised log prior weights.
    temperature : float in [1e-3, 1e3]
        Posterior temperature T: weights :math:`\propto w_k P_k(x^{t-1})^{1/T}`; 1 is Bayes.
    direction : "forward" or "reverse"
        "forward": arithmetic pool :math:`\sum_k v_k P_k` (the Bayes mixture, argmin of
        :math:`\sum_k v_k \mathrm{KL}(P_k\|q)`); "reverse": geometric pool
        :math:`\propto\prod_k P_k^{v_k}` (argmin of :math:`\sum_k v_k \mathrm{KL}(q\|P_k)`).

    Returns
    -------
    MixturePrediction

    >>> tables = np.log([[[0.5, 0.5], [0.9, 0.1]]] * 2)
    >>> out = sequential_mixture(tables, [0, 0], np.log([0.5, 0.5]))
    >>> bool(np.isclose(out.log_loss.sum(), -np.log(0.5 * 0.25 + 0.5 * 0.81)))
    True
    """
    tables = _log_tables(pred_log_probs)
    n, k, alphabet = tables.shape
    x = _symbols(x, alphabet)
    if x.size != n:
        raise ValueError(f"x must have one symbol per step of pred_log_probs ({n}); got {x.size}")
    log_prior = _log_prior(log_prior, k)
    temperature = check_real("temperature", temperature, low=1e-3, high=1e3)
    direction = check_choice("direction", direction, DIRECTIONS)

    observed = tables[np.arange(n), :, x]                                # (n, K): log P_k(x_t | x^{t-1})
    cum = np.vstack([np.zeros((1, k)), np.cumsum(observed, axis=0)])    # log P_k(x^t), t = 0..n
    unnorm = log_prior + cum / temperature
    log_post = unnorm - log_sum_exp(unnorm, axis=-1)[:, None]
    v = log_post[:-1]                                                    # weights used at step t
    if direction == "forward":
        log_pred = log_sum_exp(v[:, :, None] + tables, axis=1)
    else:
        weights = np.exp(v)[:, :, None]
        # 0 * log 0 = 0: a component of weight 0 does not veto a symbol
        geo = np.sum(np.where(weights > 0, weights * tables, 0.0), axis=1)
        log_pred = geo - log_sum_exp(geo, axis=-1)[:, None]
    log_loss = -log_pred[np.arange(n), x]
    return MixturePrediction(log_pred=log_pred, log_loss=log_loss, log_post=log_post)


def cumulative_log_loss(log_loss) -> np.ndarray:
    """Cumulative log loss :math:`L(x^t) = \\sum_{s \\le t} \\ell_s` along the last axis, with L(x^0) = 0 prepended.

    >>> cumulative_log_loss([1.0, 2.0]).tolist()
    [0.0, 1.0, 3.0]
    """
    a = check_real_array("log_loss", log_loss, min_ndim=1)
    if (a < -1e-12).any():
        raise ValueError(f"log_loss must be >= 0 (a log loss -log q with q <= 1); got {a.min():.4g}")
    zeros = np.zeros(a.shape[:-1] + (1,))
    return np.concatenate([zeros, np.cumsum(a, axis=-1)], axis=-1)


def tempered_regret_bound(log_prior, temperature: float = 1.0) -> np.ndarray:
    r"""The bound :math:`T \log(1/w_k)` on the forward mixture's regret against each component k.

    Valid on every sequence for :math:`T \ge 1` (the Bayes mixture is :math:`T = 1`); below 1 there is no
    bound and this raises.

    >>> tempered_regret_bound(np.log([0.25] * 4)).round(4).tolist()
    [1.3863, 1.3863, 1.3863, 1.3863]
    """
    log_prior = _log_prior(log_prior)
    temperature = check_real("temperature", temperature, low=1.0, high=1e3)
    return -temperature * log_prior


def context_ids(x, order: int, alphabet: int = 2) -> np.ndarray:
    """Id of the context (the ``order`` previous symbols, the history before x_1 padded with 0) of every step.

    The id is the base-``alphabet`` number of the context, most recent symbol last.

    >>> context_ids([1, 0, 1, 1], 2).tolist()
    [0, 1, 2, 1]
    """
    alphabet = check_int("alphabet", alphabet, low=2, high=2 ** 16)
    order = check_int("order", order, low=0)
    if alphabet ** order > MAX_CONTEXTS:
        raise ValueError(f"order must keep alphabet**order <= 2**62 (int64 ids); got order {order} "
                         f"with alphabet {alphabet}")
    x = _symbols(x, alphabet)
    ids = np.zeros(x.size, dtype=np.int64)
    for lag in range(1, order + 1):
        prev = np.zeros(x.size, dtype=np.int64)
        prev[lag:] = x[:-lag] if lag < x.size else prev[lag:]
        ids += prev * alphabet ** (lag - 1)
    return ids


def kt_predictive(x, order: int, alphabet: int = 2) -> np.ndarray:
    r"""Sequential KT (Dirichlet-½) predictive of a Markov chain of a given order, for every symbol, every step.

    :math:`q_t(a) = (n_{s,a} + \tfrac12) / (n_s + \tfrac A2)` with the counts of context
    :math:`s = ` ``context_ids(x, order)[t]`` over :math:`x^{t-1}`.

    Returns
    -------
    array, shape (n, A): :math:`\log q_t(a)`.

    >>> np.exp(kt_predictive([1, 1], 0)).round(4).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    alphabet = check_int("alphabet", alphabet, low=2, high=2 ** 16)
    ids = context_ids(x, order, alphabet)
    x = _symbols(x, alphabet)
    n = x.size
    perm = np.argsort(ids, kind="stable")
    onehot = np.zeros((n, alphabet))
    onehot[np.arange(n), x] = 1.0
    sorted_ids, sorted_hot = ids[perm], onehot[perm]
    before = np.cumsum(sorted_hot, axis=0) - sorted_hot          # counts before each row, all contexts
    start = np.ones(n, dtype=bool)
    start[1:] = sorted_ids[1:] != sorted_ids[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0))   # row where each row's context starts
    counts_sorted = before - before[first]
    counts = np.empty_like(counts_sorted)
    counts[perm] = counts_sorted
    return np.log(counts + 0.5) - np.log(counts.sum(axis=1, keepdims=True) + alphabet / 2)


def kt_log_prob(x, order: int, alphabet: int = 2) -> float:
    r"""Closed-form KT log-probability of the whole sequence,
    :math:`\sum_s [\log\Gamma(\tfrac A2) - A\log\Gamma(\tfrac12) + \sum_a \log\Gamma(n_{s,a}+\tfrac12) - \log\Gamma(n_s+\tfrac A2)]`.

    >>> round(kt_log_prob([1, 1], 0), 6) == round(math.log(0.5 * 0.75), 6)
    True
    """
    alphabet = check_int("alphabet", alphabet, low=2, high=2 ** 16)
    ids = context_ids(x, order, alphabet)
    x = _symbols(x, alphabet)
    _, inverse = np.unique(ids, return_inverse=True)
    counts = np.zeros((inverse.max() + 1 if x.size else 0, alphabet))
    np.add.at(counts, (inverse, x), 1.0)
    per_context = (gammaln(alphabet / 2) - alphabet * gammaln(0.5) + gammaln(counts + 0.5).sum(1)
                   - gammaln(counts.sum(1) + alphabet / 2))
    return float(per_context.sum())


def kt_regret_bound(x, order: int) -> float:
    r"""Upper bound :math:`\sum_{s:\,n_s>0}(\tfrac12\log n_s + \log 2)` on the binary KT estimator's regret
    against every Markov chain of its order (hence against the maximum-likelihood one), on this sequence.

    >>> round(kt_regret_bound([0, 1, 1, 0], 0), 4) == round(0.5 * math.log(4) + math.log(2), 4)
    True
    """
    ids = context_ids(x, order, 2)
    _, n_s = np.unique(ids, return_counts=True)
    return float(np.sum(0.5 * np.log(n_s) + math.log(2)))


def markov_predictive(x, log_trans, alphabet: int = 2) -> np.ndarray:
    r"""Predictive log-probabilities of a known Markov chain along ``x`` (history before x_1 padded with 0).

    Parameters
    ----------
    log_trans : array, shape (A**order, A)
        Row s: :math:`\log P(\cdot \mid s)` for the context with id s (see :func:`context_ids`).

    Returns
    -------
    array, shape (n, A)

    >>> np.exp(markov_predictive([0, 1], np.log([[0.8, 0.2], [0.3, 0.7]]))).round(2).tolist()
    [[0.8, 0.2], [0.8, 0.2]]
    """
    alphabet = check_int("alphabet", alphabet, low=2, high=2 ** 16)
    table = _log_tables(np.asarray(log_trans, dtype=np.float64)[None], "log_trans")[0]
    if table.shape[1] != alphabet:
        raise ValueError(f"log_trans must have A = {alphabet} columns; got shape {table.shape}")
    order = round(math.log(table.shape[0], alphabet)) if table.shape[0] > 1 else 0
    if alphabet ** order != table.shape[0]:
        raise ValueError(f"log_trans must have A**order rows; got {table.shape[0]} rows for A = {alphabet}")
    return table[context_ids(x, order, alphabet)]


def observed_log_probs(pred_log_probs, x) -> np.ndarray:
    """Pick :math:`\\log q_t(x_t)` out of predictive tables of shape (n, A) or (n, K, A).

    >>> observed_log_probs(np.log([[0.5, 0.5], [0.25, 0.75]]), [0, 1]).round(4).tolist()
    [-0.6931, -0.2877]
    """
    a = np.asarray(pred_log_probs, dtype=np.float64)
    if a.ndim not in (2, 3):
        raise ValueError(f"pred_log_probs must have shape (n, A) or (n, K, A); got shape {a.shape}")
    x = _symbols(x, a.shape[-1])
    if x.size != a.shape[0]:
        raise ValueError(f"x must have one symbol per step ({a.shape[0]}); got {x.size}")
    return a[np.arange(x.size), ..., x] if a.ndim == 2 else a[np.arange(x.size), :, x]


def kl_ball_bound(kl_totals, log_prior) -> tuple[float, float]:
    r"""The weight bound :math:`\min_\varepsilon \{ n\varepsilon + \log(1/w(B_\varepsilon)) \}` on :math:`\mathrm{KL}(P_0^n\|Q)`.

    Parameters
    ----------
    kl_totals : array, shape (K,)
        :math:`\mathrm{KL}(P_0^n \| P_k^n)` of each component (n times the per-symbol KL for i.i.d. components), >= 0.
    log_prior : array, shape (K,)
        Normalised log prior weights.

    Returns
    -------
    (bound, radius) : the minimum over the balls :math:`B = \{k : \mathrm{KL}_k \le r\}` of
    :math:`r + \log(1/w(B))`, and the total-KL radius r that attains it.

    >>> kl_ball_bound([0.0, 10.0], np.log([0.5, 0.5]))
    (0.6931471805599453, 0.0)
    """
    log_prior = _log_prior(log_prior)
    kl = check_real_array("kl_totals", kl_totals, ndim=1)
    if kl.size != log_prior.size:
        raise ValueError(f"kl_totals must have one entry per component ({log_prior.size}); got {kl.size}")
    if (kl < -1e-12).any():
        raise ValueError(f"kl_totals must be >= 0 (KL divergences); got {kl.min():.4g}")
    order = np.argsort(kl, kind="stable")
    radii = kl[order]
    log_weight = np.logaddexp.accumulate(log_prior[order])     # log w(B) of the ball up to each radius
    values = radii - log_weight
    best = int(np.argmin(values))
    return float(values[best]), float(radii[best])


def bernoulli_mixture_kl(theta0: float, thetas, log_prior, n: int) -> float:
    r"""Exact :math:`\mathrm{KL}(P_0^n \| Q)` between n i.i.d. Bernoulli(:math:`\theta_0`) symbols and the Bayes mixture
    :math:`Q(x^n) = \sum_k w_k \theta_k^{m}(1-\theta_k)^{n-m}` (m ones), summed over the n + 1 counts m.

    It equals the mixture's expected regret against the truth.

    >>> round(bernoulli_mixture_kl(0.3, [0.3], [0.0], 50), 12)
    0.0
    """
    theta0 = check_real("theta0", theta0, low=0.0, high=1.0, low_open=True, high_open=True)
    n = check_int("n", n, low=1, high=10 ** 6)
    thetas = check_real_array("thetas", thetas, ndim=1)
    if ((thetas <= 0) | (thetas >= 1)).any():
        raise ValueError(f"thetas must lie in (0, 1); got values in [{thetas.min():.4g}, {thetas.max():.4g}]")
    log_prior = _log_prior(log_prior, thetas.size)
    m = np.arange(n + 1, dtype=np.float64)
    log_binom = gammaln(n + 1) - gammaln(m + 1) - gammaln(n - m + 1)
    log_p0 = m * math.log(theta0) + (n - m) * math.log1p(-theta0)           # one sequence with m ones
    log_q = log_sum_exp(log_prior + m[:, None] * np.log(thetas) + (n - m)[:, None] * np.log1p(-thetas), axis=1)
    return float(np.sum(np.exp(log_binom + log_p0) * (log_p0 - log_q)))
