"""Spectral probes: PCA against scikit-learn, the softmax probe against LogisticRegression, the least-squares
probe against PCA + LinearRegression, the tail fraction against projections by least squares, bad input."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression, LogisticRegression

from kllab.maths import spectral as S


def features(seed=0, n=120, d=12, k=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    f = rng.normal(size=(k, d))[y] + rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.5 + 3.0
    return f, y


def test_pca_matches_scikit_learn():
    f, _ = features()
    s, ref = S.pca(f), PCA().fit(f)
    assert s.rank == 12
    np.testing.assert_allclose(s.variances, ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(s.mean, ref.mean_, atol=1e-12)
    signs = np.sign((s.components * ref.components_).sum(1))          # each component up to its sign
    np.testing.assert_allclose(s.components, ref.components_ * signs[:, None], atol=1e-9)
    np.testing.assert_allclose(S.pca_scores(s, f, 5) * np.sqrt(s.variances[0]),
                               ref.transform(f)[:, :5] * signs[:5], atol=1e-9)


def test_pca_drops_null_directions_and_u_is_orthonormal():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 8))           # rank 3 in 8 dimensions
    s = S.pca(f)
    assert s.rank == 3
    np.testing.assert_allclose(s.u.T @ s.u, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(s.u.sum(0), 0.0, atol=1e-10)           # centred: orthogonal to the constant
    # the SVD reconstructs the centred features: U S V^T
    recon = s.u * np.sqrt(s.variances * 49) @ s.components
    np.testing.assert_allclose(recon, f - f.mean(0), atol=1e-10)


@pytest.mark.parametrize("l2", [1e-2, 1e-1])
def test_softmax_probe_matches_logistic_regression(l2):
    f, y = features(2)
    z = S.pca_scores(S.pca(f), f, 6)
    w, b = S.fit_softmax_probe(z, y, 4, l2=l2)
    ref = LogisticRegression(C=1.0 / (len(y) * l2), tol=1e-12, max_iter=20_000).fit(z, y)
    np.testing.assert_allclose(w, ref.coef_, atol=2e-5)
    np.testing.assert_allclose(b, ref.intercept_, atol=2e-5)
    np.testing.assert_array_equal(S.probe_predict(w, b, z), ref.predict(z))


def test_spectral_probe_accuracy_equals_pca_then_logistic_regression():
    f, y = features(3)
    ft, yt = features(3, n=200)[0] + 0.1, features(3, n=200)[1]
    acc = S.spectral_probe(f, y, ft, yt, [2, 7], 4, l2=0.05)
    for d, a in zip([2, 7], acc):
        p = PCA(n_components=d).fit(f)
        scale = np.sqrt(p.explained_variance_[0])
        clf = LogisticRegression(C=1.0 / (len(y) * 0.05), tol=1e-12, max_iter=20_000).fit(p.transform(f) / scale, y)
        assert a == pytest.approx(np.mean(clf.predict(p.transform(ft) / scale) == yt), abs=1.5 / len(yt))


def test_least_squares_scores_match_pca_then_linear_regression():
    f, y = features(4)
    ft = features(5, n=60)[0]
    dims = [1, 3, 12]
    scores = S.least_squares_scores(f, y, ft, dims, 4)
    for d, sc in zip(dims, scores):
        p = PCA(n_components=d).fit(f)
        ref = LinearRegression().fit(p.transform(f), S.one_hot(y, 4)).predict(p.transform(ft))
        np.testing.assert_allclose(sc, ref, atol=1e-9)
    # the full-rank probe is the ordinary least-squares fit on the raw features
    raw = LinearRegression().fit(f, S.one_hot(y, 4)).predict(ft)
    np.testing.assert_allclose(scores[-1], raw, atol=1e-9)
    acc = S.least_squares_probe(f, y, ft, y[:60], dims, 4)
    np.testing.assert_allclose(acc, (scores.argmax(2) == y[:60]).mean(1))


def test_tail_fraction_matches_least_squares_projections():
    f, y = features(6)
    s = S.pca(f)
    rng = np.random.default_rng(7)
    t = rng.normal(size=(len(y), 3))
    fc, tc = f - f.mean(0), t - t.mean(0)
    full = fc @ np.linalg.lstsq(fc, tc, rcond=None)[0]                 # projection on the span of the features
    for d in [0, 1, 4, 11, 12]:
        if d == 0:
            top = np.zeros_like(tc)
        else:
            zd = PCA(n_components=d).fit_transform(f)
            top = zd @ np.linalg.lstsq(zd, tc, rcond=None)[0]          # projection on the top-d components
        expected = ((full - top) ** 2).sum() / (full ** 2).sum()
        assert S.tail_fraction(s, t, d) == pytest.approx(expected, abs=1e-10)
    assert S.tail_fraction(s, t, [0, 12]).tolist() == pytest.approx([1.0, 0.0], abs=1e-12)


def test_tail_fraction_of_a_random_direction_averages_r_minus_d_over_r():
    f, _ = features(8, n=300, d=10)
    s = S.pca(f)
    rng = np.random.default_rng(9)
    taus = [S.tail_fraction(s, rng.normal(size=300), 3) for _ in range(2000)]
    # a Gaussian target projects to an isotropic direction in the 10-dimensional span: E tau = 7/10
    assert np.mean(taus) == pytest.approx(0.7, abs=0.015)


def test_bad_input_is_named():
    f, y = features()
    with pytest.raises(ValueError, match="features must not contain NaN"):
        S.pca(np.where(np.arange(f.size).reshape(f.shape) == 3, np.nan, f))
    with pytest.raises(ValueError, match="features must have at least 2 rows"):
        S.pca(f[:1])
    with pytest.raises(ValueError, match="constant features"):
        S.pca(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"train_labels must have shape \(120,\)"):
        S.least_squares_probe(f, y[:10], f, y, [2], 4)
    with pytest.raises(ValueError, match=r"test_labels must lie in 0..3; got values in 1..7"):
        S.least_squares_probe(f, y, f, y * 2 + 1, [2], 4)
    with pytest.raises(TypeError, match="train_labels must hold integer class labels"):
        S.least_squares_probe(f, y.astype(float), f, y, [2], 4)
    with pytest.raises(ValueError, match="dims must be <= 12; got 13"):
        S.least_squares_probe(f, y, f, y, [2, 13], 4)
    with pytest.raises(ValueError, match="dims must name at least one"):
        S.least_squares_probe(f, y, f, y, [], 4)
    with pytest.raises(ValueError, match="test_features must have 12 columns"):
        S.least_squares_probe(f, y, f[:, :3], y, [2], 4)
    with pytest.raises(ValueError, match="l2 must be > 0; got 0.0"):
        S.fit_softmax_probe(f, y, 4, l2=0.0)
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        S.fit_softmax_probe(f, np.zeros(120, dtype=int), 1)
    with pytest.raises(ValueError, match=r"targets must have shape \(120,\) or \(120, K\)"):
        S.tail_fraction(S.pca(f), np.ones(7), 2)
    with pytest.raises(ValueError, match="non-zero component in the span"):
        S.tail_fraction(S.pca(f), np.ones(120), 2)
    with pytest.raises(ValueError, match="d must be <= 12; got 20"):
        S.pca_scores(S.pca(f), f, 20)
    with pytest.raises(ValueError, match="y must be one label per example"):
        S.one_hot(np.zeros((2, 2), dtype=int), 3)
