r"""Generative against discriminative linear classifiers: naive Bayes (joint KL) and logistic regression
(conditional KL) on a mixture of isotropic Gaussians.

**Naive Bayes is the joint maximum-likelihood fit.** With p the data distribution and the model

.. math::
    q_\theta(x, y) = \pi_y \prod_{j=1}^{d} \mathcal{N}(x_j;\ \mu_{yj},\ \sigma_j^2),

minimising the forward KL to the joint, :math:`\mathrm{KL}(p(x, y)\,\|\,q_\theta(x, y))`, over a sample is
maximising :math:`\sum_i \log q_\theta(x_i, y_i)`, whose solution is explicit (:func:`fit_naive_bayes`):

.. math::
    \hat\pi_k = \frac{n_k}{n}, \qquad \hat\mu_k = \frac{1}{n_k}\sum_{i: y_i = k} x_i, \qquad
    \hat\sigma_j^2 = \frac{1}{n}\sum_{i=1}^{n} (x_{ij} - \hat\mu_{y_i j})^2 .

The variance is *pooled* over the classes (one :math:`\sigma_j^2` per feature): the classifier is then
linear, :math:`\arg\max_k\, w_k^\top x + b_k` with :math:`w_k = \hat\mu_k / \hat\sigma^2` and
:math:`b_k = \log\hat\pi_k - \sum_j \hat\mu_{kj}^2 / (2\hat\sigma_j^2)` (:func:`naive_bayes_linear`), the
same family logistic regression searches.

**Logistic regression is the conditional fit.** It minimises
:math:`\mathbb{E}_x\,\mathrm{KL}(p(y\mid x)\,\|\,q_\theta(y\mid x))`, i.e. the cross-entropy
:math:`\sum_i -\log \mathrm{softmax}(W x_i + b)_{y_i} + \tfrac{\lambda}{2}\lVert W\rVert^2`
(:func:`fit_logistic`, scikit-learn's ``LogisticRegression`` with ``C = 1/λ``; the penalty is on the *summed*
loss, so its weight relative to the data vanishes as n grows and the fit is consistent).

**The toy.** K classes with means :math:`\mu_k \sim \mathcal{N}(0, s^2 I_d)` (:func:`random_class_means`),
equal priors and unit isotropic noise, :math:`x \mid y \sim \mathcal{N}(\mu_y, I_d)`. Both models are well
specified, so both tend to the Bayes classifier :math:`\arg\min_k \lVert x - \mu_k\rVert`. The expected 0-1
error of any linear classifier on this mixture (:func:`linear_error`) is exact for K = 2,

.. math::
    \mathrm{err} = \tfrac12\sum_{y} \Phi\!\Big(-\frac{(w_y - w_{y'})^\top \mu_y + b_y - b_{y'}}{\lVert w_y - w_{y'}\rVert}\Big),
    \qquad \text{Bayes error} = \Phi\big(-\lVert\mu_1 - \mu_2\rVert / 2\big),

and for K > 2 a Monte Carlo estimate in the K-dimensional score space: the scores :math:`s = W x + b` of
class y are :math:`\mathcal{N}(W\mu_y + b,\ W W^\top)`, so K-dimensional draws replace d-dimensional ones.

Ng & Jordan (2001) showed for binary problems, and Zheng et al. (2023) for multiclass ones, that naive Bayes
comes close to its asymptotic error with :math:`O(\log d)` samples while logistic regression may need
:math:`O(d)` (:func:`learning_curves`, :func:`samples_to_reach`).

References
----------
Zheng, Wu, Bao, Cao, Li, Zhu. Revisiting Discriminative vs. Generative Classifiers: Theory and
Implications. ICML 2023, arXiv:2302.02334.
Ng, Jordan. On Discriminative vs. Generative Classifiers: A comparison of logistic regression and naive
Bayes. NeurIPS 2001.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax, ndtr

from .validation import check_int, check_real, check_real_array

__all__ = ["NaiveBayes", "random_class_means", "sample_mixture", "fit_naive_bayes", "naive_bayes_log_joint",
           "naive_bayes_log_posterior", "naive_bayes_linear", "fit_logistic", "linear_error", "bayes_error",
           "learning_curves", "samples_to_reach"]


@dataclass(frozen=True)
class NaiveBayes:
    """A fitted Gaussian naive Bayes with one (pooled) variance per feature.

    Attributes
    ----------
    log_prior : ndarray, shape (K,)
    means : ndarray, shape (K, d)
    var : ndarray, shape (d,)
        The pooled variance of each feature.
    """

    log_prior: np.ndarray
    means: np.ndarray
    var: np.ndarray


def _matrix(name: str, x, *, ndim: int) -> np.ndarray:
    return check_real_array(name, x, ndim=ndim)


def _labels(y, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},), one label per row of x; got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class indices; got dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y must hold labels in [0, {n_classes - 1}]; got labels in [{y.min()}, {y.max()}]")
    return y


def random_class_means(n_classes: int, dim: int, separation: float, rng: np.random.Generator) -> np.ndarray:
    """Class means :math:`\\mu_k \\sim \\mathcal{N}(0, s^2 I_d)`, shape (K, d); ``separation`` is s.

    >>> random_class_means(3, 2, 1.0, np.random.default_rng(0)).shape
    (3, 2)
    """
    n_classes = check_int("n_classes", n_classes, low=2)
    dim = check_int("dim", dim, low=1)
    separation = check_real("separation", separation, low=0.0, low_open=True)
    return separation * rng.standard_normal((n_classes, dim))


def sample_mixture(means, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` draws of :math:`x \\sim \\mathcal{N}(\\mu_k, I)` for each class k: x (K m, d), y (K m,).

    >>> x, y = sample_mixture(np.zeros((2, 3)), 4, np.random.default_rng(0))
    >>> x.shape, y.tolist()
    ((8, 3), [0, 0, 0, 0, 1, 1, 1, 1])
    """
    means = _matrix("means", means, ndim=2)
    per_class = check_int("per_class", per_class, low=1)
    k, d = means.shape
    y = np.repeat(np.arange(k), per_class)
    return means[y] + rng.standard_normal((k * per_class, d)), y


def fit_naive_bayes(x, y, n_classes: int) -> NaiveBayes:
    """The joint maximum-likelihood Gaussian naive Bayes with pooled variance (module docstring).

    Parameters
    ----------
    x : array, shape (n, d)
    y : int array, shape (n,), labels in [0, n_classes); every class must occur.

    >>> nb = fit_naive_bayes(np.array([[0.0], [2.0], [4.0], [8.0]]), np.array([0, 0, 1, 1]), 2)
    >>> nb.means.ravel().tolist(), nb.var.tolist()
    ([1.0, 6.0], [2.5])
    """
    x = _matrix("x", x, ndim=2)
    n_classes = check_int("n_classes", n_classes, low=2)
    y = _labels(y, x.shape[0], n_classes)
    counts = np.bincount(y, minlength=n_classes)
    if (counts == 0).any():
        raise ValueError(f"every class must occur in y; got no example of class(es) {np.flatnonzero(counts == 0).tolist()}")
    means = np.zeros((n_classes, x.shape[1]))
    np.add.at(means, y, x)
    means /= counts[:, None]
    var = ((x - means[y]) ** 2).mean(0)
    if (var <= 0).any():
        raise ValueError("x must vary within the classes: the pooled variance of feature(s) "
                         f"{np.flatnonzero(var <= 0).tolist()} is 0")
    return NaiveBayes(np.log(counts / counts.sum()), means, var)


def naive_bayes_log_joint(model: NaiveBayes, x) -> np.ndarray:
    """:math:`\\log q(x, y=k)` for every row of x and every class k, shape (n, K)."""
    x = _matrix("x", x, ndim=2)
    if x.shape[1] != model.means.shape[1]:
        raise ValueError(f"x must have {model.means.shape[1]} features (the model's); got {x.shape[1]}")
    z = (x[:, None, :] - model.means[None]) ** 2 / model.var
    return model.log_prior - 0.5 * (z + np.log(2 * np.pi * model.var)).sum(-1)


def naive_bayes_log_posterior(model: NaiveBayes, x) -> np.ndarray:
    """:math:`\\log q(y=k \\mid x)`, shape (n, K): the log joint normalised over the classes."""
    return log_softmax(naive_bayes_log_joint(model, x), axis=-1)


def naive_bayes_linear(model: NaiveBayes) -> tuple[np.ndarray, np.ndarray]:
    """The linear form of a pooled-variance naive Bayes: weights (K, d) and biases (K,) with
    :math:`\\log q(x, k) = w_k^\\top x + b_k + c(x)`, c shared by the classes."""
    w = model.means / model.var
    return w, model.log_prior - 0.5 * (model.means * w).sum(-1)


def fit_logistic(x, y, n_classes: int, *, l2: float = 1.0, max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by scikit-learn (L-BFGS): weights (K, d) and biases (K,) minimising
    :math:`\\sum_i -\\log\\mathrm{softmax}(W x_i + b)_{y_i} + \\tfrac{l_2}{2}\\lVert W\\rVert_F^2` (bias not penalised)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x = _matrix("x", x, ndim=2)
    n_classes = check_int("n_classes", n_classes, low=2)
    y = _labels(y, x.shape[0], n_classes)
    l2 = check_real("l2", l2, low=0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, low=1)
    present = np.unique(y)
    if present.size != n_classes:
        raise ValueError(f"every class must occur in y; got classes {present.tolist()} of {n_classes}")
    # For two classes scikit-learn fits one row v (the logit difference) with penalty ||v||^2 / (2C); the
    # K-row optimum has rows -v/2, v/2 and penalty l2/2 * ||v||^2/2, so the same fit needs C = 2 / l2.
    c = (2.0 if n_classes == 2 else 1.0) / l2
    with threadpool_limits(1):   # small problems: BLAS threads only contend (seconds per fit on a busy machine)
        clf = LogisticRegression(C=c, max_iter=max_iter, tol=1e-6).fit(x, y)
    if n_classes == 2:
        return np.vstack([-clf.coef_ / 2, clf.coef_ / 2]), np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
    return clf.coef_.copy(), clf.intercept_.copy()


def linear_error(weights, bias, means, *, draws: int = 4000, seed: int = 0) -> float:
    """Expected 0-1 error of :math:`\\arg\\max_k w_k^\\top x + b_k` on the mixture of
    :math:`\\mathcal{N}(\\mu_k, I)` with equal priors: exact for K = 2, Monte Carlo in score space for K > 2
    (``draws`` per class, common to every classifier given the same seed; ties count as errors).

    >>> round(linear_error(np.array([[-1.0], [1.0]]), np.zeros(2), np.array([[-1.0], [1.0]])), 6)
    0.158655
    """
    means = _matrix("means", means, ndim=2)
    k, d = means.shape
    weights = _matrix("weights", weights, ndim=2)
    bias = _matrix("bias", bias, ndim=1)
    if weights.shape != (k, d) or bias.shape != (k,):
        raise ValueError(f"weights and bias must have shapes {(k, d)} and {(k,)} (from means); "
                         f"got {weights.shape} and {bias.shape}")
    draws = check_int("draws", draws, low=1)
    if k == 2:
        dw, db = weights[1] - weights[0], bias[1] - bias[0]
        norm = np.linalg.norm(dw)
        score = means @ dw + db                     # the class-1 margin at each mean
        if norm == 0:
            return 0.5 * float((score[1] <= 0) + (score[0] >= 0))
        return 0.5 * float(ndtr(-score[1] / norm) + ndtr(score[0] / norm))
    q, r = np.linalg.qr(weights.T)                  # W eps = r^T (q^T eps), q^T eps ~ N(0, I)
    z = np.random.default_rng(seed).standard_normal((draws, r.shape[0]))
    noise = z @ r                                   # (draws, K): one shared noise sample for all classes
    centre = means @ weights.T + bias               # (K, K): row y is W mu_y + b
    wrong = 0
    for y in range(k):
        s = centre[y] + noise
        best_other = np.delete(s, y, axis=1).max(1)
        wrong += int((s[:, y] <= best_other).sum())
    return wrong / (k * draws)


def bayes_error(means, *, draws: int = 4000, seed: int = 0) -> float:
    """Error of the Bayes classifier :math:`\\arg\\min_k \\lVert x - \\mu_k\\rVert` with equal priors:
    :math:`\\Phi(-\\lVert\\mu_1-\\mu_2\\rVert/2)` for K = 2, Monte Carlo (:func:`linear_error`) for K > 2.

    >>> round(bayes_error(np.array([[0.0, 0.0], [3.0, 4.0]])), 6)   # Phi(-2.5)
    0.00621
    """
    means = _matrix("means", means, ndim=2)
    return linear_error(means, -0.5 * (means ** 2).sum(1), means, draws=draws, seed=seed)


def learning_curves(n_classes: int, dim: int, separation: float, per_class: Sequence[int], seeds: Sequence[int],
                    *, l2: float = 1.0, draws: int = 4000) -> dict[str, np.ndarray]:
    """Expected test error of naive Bayes ("joint") and logistic regression ("conditional") trained on
    m examples per class, for each m in ``per_class`` and each seed, and the Bayes error of each seed's problem.

    Each seed draws its own class means (:func:`random_class_means`) and one training set per m; both models
    see the same training set, and their errors and the Bayes error are evaluated by :func:`linear_error`
    with the same Monte Carlo draws (common random numbers).

    Returns
    -------
    dict with "joint" and "conditional", shape (len(seeds), len(per_class)), and "bayes", shape (len(seeds),).
    """
    n_classes = check_int("n_classes", n_classes, low=2)
    per_class = [check_int("per_class", m, low=2) for m in per_class]
    seeds = [check_int("seed", s, low=0) for s in seeds]
    out = {"joint": np.zeros((len(seeds), len(per_class))), "conditional": np.zeros((len(seeds), len(per_class))),
           "bayes": np.zeros(len(seeds))}
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        means = random_class_means(n_classes, dim, separation, rng)
        out["bayes"][i] = bayes_error(means, draws=draws, seed=seed)
        for j, m in enumerate(per_class):
            x, y = sample_mixture(means, m, rng)
            w, b = naive_bayes_linear(fit_naive_bayes(x, y, n_classes))
            out["joint"][i, j] = linear_error(w, b, means, draws=draws, seed=seed)
            w, b = fit_logistic(x, y, n_classes, l2=l2)
            out["conditional"][i, j] = linear_error(w, b, means, draws=draws, seed=seed)
    return out


def samples_to_reach(per_class: Sequence[int], gap, tolerance: float) -> float:
    """The smallest m of ``per_class`` from which on the gap (error minus the asymptote, shape (len(per_class),),
    e.g. averaged over seeds) stays <= ``tolerance``; ``inf`` if it never does.

    >>> samples_to_reach([2, 4, 8, 16], [0.3, 0.04, 0.06, 0.01], 0.05)
    16.0
    """
    gap = _matrix("gap", gap, ndim=1)
    if len(per_class) != gap.shape[0]:
        raise ValueError(f"gap must have one value per entry of per_class ({len(per_class)}); got {gap.shape[0]}")
    tolerance = check_real("tolerance", tolerance, low=0.0, low_open=True)
    ok = gap <= tolerance
    for j in range(len(ok)):
        if ok[j:].all():
            return float(per_class[j])
    return float("inf")
