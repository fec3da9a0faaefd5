"""Tests of kllab.maths.generative: naive Bayes as the joint MLE, logistic regression as the conditional fit,
and the exact / Monte Carlo errors of linear classifiers on a mixture of isotropic Gaussians."""

import math

import numpy as np
import pytest
from scipy.special import log_softmax
from scipy.stats import norm
from sklearn.naive_bayes import GaussianNB

from kllab.maths import generative as g


def _data(k=3, d=4, m=(5, 9, 14), seed=0, sep=1.0):
    rng = np.random.default_rng(seed)
    means = g.random_class_means(k, d, sep, rng)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(m)])
    x = means[y] + rng.standard_normal((len(y), d)) * rng.uniform(0.5, 2.0, d)
    return x, y, means


def test_naive_bayes_matches_sklearn_means_priors_and_pooled_variance():
    x, y, _ = _data()
    nb = g.fit_naive_bayes(x, y, 3)
    # oracle: scikit-learn's per-class GaussianNB; var_ holds the per-class MLE variance plus
    # epsilon_ = var_smoothing * max(var(x)), so subtract it, then pool with weights n_k / n
    sk = GaussianNB(var_smoothing=1e-9).fit(x, y)
    np.testing.assert_allclose(nb.means, sk.theta_, rtol=1e-12)
    np.testing.assert_allclose(np.exp(nb.log_prior), sk.class_prior_, rtol=1e-12)
    weights = np.bincount(y) / len(y)
    np.testing.assert_allclose(nb.var, weights @ (sk.var_ - sk.epsilon_), rtol=1e-10)


def test_naive_bayes_log_joint_against_scipy_norm():
    x, y, _ = _data(seed=1)
    nb = g.fit_naive_bayes(x, y, 3)
    ref = np.stack([nb.log_prior[k] + norm.logpdf(x, nb.means[k], np.sqrt(nb.var)).sum(1) for k in range(3)], 1)
    np.testing.assert_allclose(g.naive_bayes_log_joint(nb, x), ref, rtol=1e-12)
    np.testing.assert_allclose(g.naive_bayes_log_posterior(nb, x), log_softmax(ref, 1), rtol=1e-12, atol=1e-12)


def test_naive_bayes_is_the_joint_maximum_likelihood():
    # every perturbation of the fitted means, variances or priors lowers sum_i log q(x_i, y_i)
    x, y, _ = _data(seed=2)
    nb = g.fit_naive_bayes(x, y, 3)

    def loglik(model):
        return g.naive_bayes_log_joint(model, x)[np.arange(len(y)), y].sum()

    best = loglik(nb)
    rng = np.random.default_rng(0)
    for _ in range(200):
        lp = nb.log_prior + 0.05 * rng.standard_normal(3)
        other = g.NaiveBayes(lp - np.logaddexp.reduce(lp), nb.means + 0.05 * rng.standard_normal(nb.means.shape),
                             nb.var * np.exp(0.05 * rng.standard_normal(nb.var.shape)))
        assert loglik(other) < best
    # the per-class-variance model sklearn fits is a different (larger) family: its likelihood is higher
    sk = GaussianNB(var_smoothing=1e-12).fit(x, y)
    assert sk.predict_joint_log_proba(x)[np.arange(len(y)), y].sum() > best


def test_naive_bayes_linear_form_reproduces_log_joint_differences():
    x, y, _ = _data(seed=3)
    nb = g.fit_naive_bayes(x, y, 3)
    w, b = g.naive_bayes_linear(nb)
    scores = x @ w.T + b
    lj = g.naive_bayes_log_joint(nb, x)
    np.testing.assert_allclose(scores - scores[:, :1], lj - lj[:, :1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", [2, 4])
def test_fit_logistic_probabilities_and_first_order_optimality(k):
    from sklearn.linear_model import LogisticRegression

    x, y, _ = _data(k=k, m=(20,) * k, seed=4, sep=0.7)
    l2 = 0.3
    w, b = g.fit_logistic(x, y, k, l2=l2)
    p = np.exp(log_softmax(x @ w.T + b, 1))
    # scikit-learn's binary model has one row v with penalty ||v||^2 / (2C): C = 2 / l2 is the same fit
    ref = LogisticRegression(C=(2 if k == 2 else 1) / l2, tol=1e-10, max_iter=5000).fit(x, y).predict_proba(x)
    np.testing.assert_allclose(p, ref, atol=1e-4)
    # gradient of sum_i CE_i + l2/2 ||W||^2 vanishes (a dropped factor on the penalty fails here)
    onehot = np.eye(k)[y]
    grad_w = (p - onehot).T @ x + l2 * w
    grad_b = (p - onehot).sum(0)
    assert np.abs(grad_w).max() < 1e-3 and np.abs(grad_b).max() < 1e-3
    if k == 2:   # the two rows of the binary fit are symmetric
        np.testing.assert_allclose(w[0], -w[1])


def test_linear_error_binary_closed_form_against_monte_carlo():
    rng = np.random.default_rng(5)
    means = rng.standard_normal((2, 3))
    w, b = rng.standard_normal((2, 3)), rng.standard_normal(2)
    exact = g.linear_error(w, b, means)
    n = 400_000
    x, y = g.sample_mixture(means, n, rng)
    mc = np.mean((x @ w.T + b).argmax(1) != y)
    assert abs(exact - mc) < 4 * math.sqrt(exact * (1 - exact) / (2 * n)) + 1e-4


def test_bayes_error_binary_closed_form():
    means = np.array([[0.0, 1.0, 0.0], [1.0, -1.0, 2.0]])
    delta = np.linalg.norm(means[1] - means[0])
    assert math.isclose(g.bayes_error(means), norm.cdf(-delta / 2), rel_tol=1e-12)


def test_bayes_error_three_collinear_classes_closed_form():
    # means at -a, 0, a on one axis: the outer classes err with prob Phi(-a/2), the middle one with 2 Phi(-a/2)
    a = 1.3
    means = np.array([[-a, 0.0], [0.0, 0.0], [a, 0.0]])
    exact = 4 / 3 * norm.cdf(-a / 2)
    draws = 200_000
    est = g.bayes_error(means, draws=draws, seed=1)
    assert abs(est - exact) < 4 * math.sqrt(exact * (1 - exact) / (3 * draws))


def test_linear_error_multiclass_score_space_against_input_space_monte_carlo():
    rng = np.random.default_rng(6)
    means = g.random_class_means(5, 7, 0.6, rng)
    w, b = means + 0.3 * rng.standard_normal(means.shape), 0.2 * rng.standard_normal(5)
    draws = 100_000
    est = g.linear_error(w, b, means, draws=draws, seed=3)
    x, y = g.sample_mixture(means, draws, rng)
    mc = np.mean((x @ w.T + b).argmax(1) != y)
    se = math.sqrt(mc * (1 - mc) / (5 * draws))
    assert abs(est - mc) < 5 * math.sqrt(2) * se
    # fewer directions than classes (d < K): the QR route still works
    means1 = np.array([[-1.0], [0.0], [1.5]])
    est1 = g.linear_error(means1, -0.5 * means1[:, 0] ** 2, means1, draws=draws, seed=0)
    exact1 = (norm.cdf(-0.5) + norm.cdf(-0.5) + norm.cdf(-0.75) + norm.cdf(-0.75)) / 3
    assert abs(est1 - exact1) < 5 * math.sqrt(exact1 * (1 - exact1) / (3 * draws))


def test_bayes_classifier_is_best_and_naive_bayes_converges():
    rng = np.random.default_rng(7)
    means = g.random_class_means(4, 6, 0.8, rng)
    best = g.bayes_error(means, draws=20_000)
    for _ in range(5):
        w, b = means + 0.5 * rng.standard_normal(means.shape), rng.standard_normal(4)
        assert g.linear_error(w, b, means, draws=20_000) >= best
    x, y = g.sample_mixture(means, 20_000, rng)
    w, b = g.naive_bayes_linear(g.fit_naive_bayes(x, y, 4))
    assert g.linear_error(w, b, means, draws=20_000) - best < 0.003


def test_learning_curves_shapes_and_asymptote():
    out = g.learning_curves(3, 4, 1.0, [2, 256], [0, 1], draws=2000)
    assert out["joint"].shape == out["conditional"].shape == (2, 2) and out["bayes"].shape == (2,)
    assert (out["joint"][:, 1] - out["bayes"] < 0.02).all()
    assert (out["conditional"][:, 1] - out["bayes"] < 0.02).all()


def test_samples_to_reach():
    assert g.samples_to_reach([2, 4, 8], [0.2, 0.1, 0.01], 0.05) == 8
    assert g.samples_to_reach([2, 4, 8], [0.01, 0.1, 0.01], 0.05) == 8     # must stay below from then on
    assert g.samples_to_reach([2, 4, 8], [0.2, 0.1, 0.06], 0.05) == math.inf


def test_bad_input():
    x, y, means = _data()
    with pytest.raises(ValueError, match="x must not contain NaN"):
        g.fit_naive_bayes(np.where(x > 1, np.nan, x), y, 3)
    with pytest.raises(ValueError, match="x must have 2 axes"):
        g.fit_naive_bayes(x[0], y, 3)
    with pytest.raises(ValueError, match=r"y must have shape \(28,\)"):
        g.fit_naive_bayes(x, y[:-1], 3)
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 1\]"):
        g.fit_naive_bayes(x, y, 2)
    with pytest.raises(ValueError, match="integer class indices"):
        g.fit_naive_bayes(x, y.astype(float), 3)
    with pytest.raises(ValueError, match="every class must occur"):
        g.fit_naive_bayes(x, y, 4)
    with pytest.raises(ValueError, match="vary within the classes"):
        g.fit_naive_bayes(np.ones((4, 2)), np.array([0, 0, 1, 1]), 2)
    with pytest.raises(ValueError, match="l2 must be > 0"):
        g.fit_logistic(x, y, 3, l2=0.0)
    with pytest.raises(ValueError, match="separation must be > 0"):
        g.random_class_means(3, 2, -1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        g.random_class_means(1, 2, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="weights and bias must have shapes"):
        g.linear_error(np.zeros((3, 5)), np.zeros(3), means)
    with pytest.raises(ValueError, match="means must be finite"):
        g.bayes_error(np.array([[0.0, np.inf], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="x must have 4 features"):
        g.naive_bayes_log_joint(g.fit_naive_bayes(x, y, 3), x[:, :2])
    with pytest.raises(ValueError, match="tolerance must be > 0"):
        g.samples_to_reach([2, 4], [0.1, 0.0], 0.0)
    with pytest.raises(ValueError, match="per_class must be >= 2"):
        g.learning_curves(3, 2, 1.0, [1], [0])
