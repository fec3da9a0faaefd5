"""Tests of kllab.maths.quadratic: features, least squares, the closed-form test error, gradient descent."""

import math
from itertools import combinations_with_replacement

import numpy as np
import pytest

from kllab.maths import quadratic


def _teacher(d=6, m=2, seed=0):
    rng = np.random.default_rng(seed)
    return quadratic.weights_to_matrix(quadratic.teacher(d, m, rng)), rng


def test_feature_count_closed_form_and_sklearn():
    from sklearn.preprocessing import PolynomialFeatures

    for d in (1, 2, 5, 12):
        p = quadratic.n_quadratic_features(d)
        assert p == math.comb(d + 1, 2) == len(list(combinations_with_replacement(range(d), 2)))
        degree2 = PolynomialFeatures(degree=(2, 2), include_bias=False).fit(np.zeros((1, d)))
        assert degree2.n_output_features_ == p


def test_low_rank_dof():
    assert quadratic.low_rank_dof(12, 1) == 12
    assert quadratic.low_rank_dof(12, 3) == 33
    assert [quadratic.low_rank_dof(5, m) for m in (5, 6, 50)] == [15, 15, 15]


def test_features_reproduce_the_quadratic_form():
    s, rng = _teacher()
    x = rng.standard_normal((40, 6))
    assert np.allclose(quadratic.quadratic_features(x) @ quadratic.vech(s), np.einsum("ni,ij,nj->n", x, s, x))
    assert np.allclose(quadratic.unvech(quadratic.vech(s), 6), s)


def test_network_equals_matrix_form():
    rng = np.random.default_rng(1)
    w = quadratic.teacher(5, 3, rng)
    x = rng.standard_normal((30, 5))
    f = sum((x @ wk) ** 2 for wk in w) / 3
    assert np.allclose(quadratic.predict(quadratic.weights_to_matrix(w), x), f)


def test_least_squares_matches_numpy_lstsq_below_threshold():
    s, rng = _teacher(d=6)
    x, y = quadratic.sample(s, 15, 0.3, rng)          # n = 15 < p = 21: minimum-norm interpolation
    # an independent feature matrix: x_i x_j for i <= j, coefficients of the symmetric form then halved off-diagonal
    pairs = list(combinations_with_replacement(range(6), 2))
    phi = np.stack([x[:, i] * x[:, j] for i, j in pairs], 1)
    coef = np.linalg.lstsq(phi, y, rcond=None)[0]
    s_ref = np.zeros((6, 6))
    for c, (i, j) in zip(coef, pairs):
        s_ref[i, j] = s_ref[j, i] = c if i == j else c / 2
    s_hat = quadratic.least_squares(x, y)
    # the two parametrisations have different minimum-norm solutions; both interpolate
    assert np.allclose(quadratic.predict(s_hat, x), y) and np.allclose(quadratic.predict(s_ref, x), y)
    coef_same = np.linalg.lstsq(quadratic.quadratic_features(x), y, rcond=None)[0]
    assert np.allclose(quadratic.vech(s_hat), coef_same)


def test_exact_recovery_exactly_at_threshold():
    for m in (1, 3, 8):
        s, rng = _teacher(d=6, m=m, seed=m)
        p = quadratic.n_quadratic_features(6)
        x, y = quadratic.sample(s, p, 0.0, rng)
        assert quadratic.prediction_error(quadratic.least_squares(x, y), s) < 1e-20
        assert quadratic.prediction_error(quadratic.least_squares(x[:p - 3], y[:p - 3]), s) > 1e-8


def test_least_squares_many_label_vectors():
    s, rng = _teacher()
    x, y = quadratic.sample(s, 30, 0.1, rng)
    y2 = np.stack([y, 2 * y], 1)
    out = quadratic.least_squares(x, y2)
    assert out.shape == (2, 6, 6)
    assert np.allclose(out[0], quadratic.least_squares(x, y)) and np.allclose(out[1], 2 * out[0])


def test_test_error_closed_form_against_monte_carlo():
    s, rng = _teacher(d=5, m=2)
    s_hat = quadratic.weights_to_matrix(quadratic.teacher(5, 3, rng))
    x = rng.standard_normal((400_000, 5))
    mc = np.mean((quadratic.predict(s_hat, x) - quadratic.predict(s, x)) ** 2) / (2 * np.sum(s ** 2))
    closed = float(quadratic.prediction_error(s_hat, s))
    assert abs(mc - closed) < 0.02 * closed, (mc, closed)
    # dropping the trace term (or the factor 2) would be far off: the trace term is a sizeable share here
    dlt = s_hat - s
    assert np.trace(dlt) ** 2 > 0.05 * 2 * np.sum(dlt ** 2)


def test_test_error_batched_and_zero():
    s, _ = _teacher()
    assert quadratic.prediction_error(s, s) == 0
    assert quadratic.prediction_error(np.stack([s, 0 * s]), s).shape == (2,)


def test_ls_noise_error_against_monte_carlo_over_noise():
    s, rng = _teacher(d=5, m=2, seed=3)
    p = quadratic.n_quadratic_features(5)
    x = rng.standard_normal((2 * p, 5))
    delta = 0.2
    y = quadratic.predict(s, x)[:, None] + math.sqrt(delta) * rng.standard_normal((2 * p, 4000))
    mc = quadratic.prediction_error(quadratic.least_squares(x, y), s).mean()
    theory = quadratic.ls_noise_error(x, delta, s)
    assert abs(mc - theory) < 0.05 * theory, (mc, theory)


def test_feature_covariance_against_monte_carlo():
    rng = np.random.default_rng(4)
    phi = quadratic.quadratic_features(rng.standard_normal((400_000, 3)))
    assert np.allclose(phi.T @ phi / len(phi), quadratic._feature_covariance(3), atol=0.08)


def test_gradient_against_finite_differences():
    s, rng = _teacher(d=5, m=2)
    x, y = quadratic.sample(s, 20, 0.1, rng)
    w = rng.standard_normal((3, 5)) / math.sqrt(5)
    _, grad = quadratic.loss_and_grad(w, x, y)
    fd = np.zeros_like(w)
    for idx in np.ndindex(*w.shape):
        e = np.zeros_like(w)
        e[idx] = 1e-6
        fd[idx] = (quadratic.loss_and_grad(w + e, x, y)[0] - quadratic.loss_and_grad(w - e, x, y)[0]) / 2e-6
    assert np.allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_gradient_descent_recovers_low_rank_teacher_below_threshold():
    s, rng = _teacher(d=8, m=1, seed=0)
    n = 25                                    # p = 36, rank-1 dof = 8
    x, y = quadratic.sample(s, n, 0.0, rng)
    run = quadratic.gradient_descent(x, y, 1, steps=3000, lr=1.0, init_scale=0.1, rng=rng, tol=1e-14)
    assert np.all(np.diff(run.losses) <= 0)   # the safeguard keeps the loss monotone
    assert quadratic.prediction_error(run.s, s) < 1e-6
    assert quadratic.prediction_error(quadratic.least_squares(x, y), s) > 1e-2


@pytest.mark.parametrize("call, match", [
    (lambda: quadratic.n_quadratic_features(0), "d must be >= 1"),
    (lambda: quadratic.low_rank_dof(4, 0), "rank must be >= 1"),
    (lambda: quadratic.vech(np.ones((2, 3))), "square"),
    (lambda: quadratic.vech(np.array([[1.0, 2.0], [0.0, 1.0]])), "symmetric"),
    (lambda: quadratic.unvech(np.ones(4), 3), "d\\(d\\+1\\)/2 = 6"),
    (lambda: quadratic.quadratic_features(np.array([[1.0, np.nan]])), "NaN"),
    (lambda: quadratic.predict(np.eye(3), np.ones((4, 2))), "match x"),
    (lambda: quadratic.sample(np.eye(2), 5, -1.0, np.random.default_rng(0)), "noise must be >= 0"),
    (lambda: quadratic.least_squares(np.ones((4, 2)), np.ones(5)), "y must have shape"),
    (lambda: quadratic.prediction_error(np.eye(2), np.zeros((2, 2))), "zero matrix"),
    (lambda: quadratic.prediction_error(np.eye(2), np.eye(3)), "s_star must be"),
    (lambda: quadratic.gradient_descent(np.ones((4, 2)), np.ones(4), 1, steps=10, lr=-1.0, init_scale=0.1,
                                        rng=np.random.default_rng(0)), "lr must be > 0"),
    (lambda: quadratic.loss_and_grad(np.ones((2, 3)), np.ones((4, 2)), np.ones(4)), "must agree"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_rng_type():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        quadratic.teacher(3, 1, 0)
