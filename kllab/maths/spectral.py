r"""The spectrum of a network's features: principal components, a linear probe on the top ones, and
where a set of label directions lies in that spectrum.

Features :math:`F \in \mathbb{R}^{N \times D}` (one row per example, e.g. a network's penultimate
layer) are centred, :math:`F_c = F - \mathbf{1}\bar f^\top`, and decomposed by the thin SVD
:math:`F_c = U S V^\top`. The principal directions are the rows of :math:`V^\top`, the variances
:math:`\lambda_i = s_i^2 / (N - 1)` (scikit-learn's ``PCA`` convention), in decreasing order.

**Least-squares probe.** Regressing the one-hot labels :math:`Y` on the top-:math:`d` principal scores (with
an intercept) keeps the first :math:`d` coefficients of the full regression, the scores being orthogonal:

.. math::
    \hat Y_d(f) = \bar y + (f - \bar f)\, V_{:d} S_{:d}^{-1} U_{:d}^\top Y ,

so one SVD gives the probe at every :math:`d`; at full rank it is ordinary least squares on the raw features.

**Softmax probe.** The top-:math:`d` scores :math:`z = (f - \bar f) V_{:d} / \sqrt{\lambda_1}` (one
global scale, so that truncating is a pure projection: the probe on :math:`d` components is the probe
on all of them with the tail coordinates removed) feed a multinomial logistic regression fitted by
minimising the mean cross-entropy to the given labels plus an L2 penalty,

.. math::
    \frac1N \sum_i -\log \mathrm{softmax}(W z_i + b)_{y_i} + \frac{\ell_2}{2}\lVert W\rVert_F^2 ,

the bias not penalised. The mean cross-entropy to one-hot labels is the mean forward
:math:`\mathrm{KL}(\delta_{y_i} \,\|\, q(\cdot \mid z_i))`, so the probe is the KL-closest linear
softmax model on :math:`d` components. It equals scikit-learn's ``LogisticRegression(C=1/(N l2))``.
Truncating to :math:`d \ll D` is the "explicit spectral truncation" of Wang (2026).

**Tail fraction.** For a target matrix :math:`T \in \mathbb{R}^{N \times K}` (a label direction:
centred one-hot labels, or the flip :math:`Y_{noisy} - Y_{clean}`), the part the features can express
is its projection :math:`U U^\top T_c` on the column space of :math:`F_c`; the fraction of that part
outside the top-:math:`d` principal components is

.. math::
    \tau_d(T) = \frac{\lVert U_{>d}^\top T_c\rVert_F^2}{\lVert U^\top T_c\rVert_F^2} \in [0, 1],

(:math:`U` restricted to the non-zero singular values). A label direction spread at random over an
:math:`r`-dimensional span has :math:`\mathbb{E}\,\tau_d = (r - d)/r`; the "malignant tail" hypothesis is
that training puts the clean classes at small :math:`\tau_d` and the flipped labels at large
:math:`\tau_d`.

Sources: Z. Wang, *The Malignant Tail: Spectral Segregation of Label Noise in Over-Parameterized
Networks*, arXiv:2603.02293 (2026; v2 withdrawn by its author). The PCA and logistic conventions are
scikit-learn's (Pedregosa et al., JMLR 12, 2011).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .validation import check_int, check_real, check_real_array

__all__ = ["Spectrum", "pca", "pca_scores", "fit_softmax_probe", "probe_predict", "spectral_probe",
           "least_squares_scores", "least_squares_probe", "tail_fraction", "one_hot"]

_RANK_TOL = 1e-10   # singular values below this times the largest count as zero


@dataclass(frozen=True)
class Spectrum:
    """A PCA of features: mean (D,), components (r, D) orthonormal rows, variances (r,) decreasing,
    left singular vectors u (N, r) of the centred training features."""
    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    u: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.variances.shape[0])


def _features(name, x):
    a = check_real_array(name, x, ndim=2)
    if a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(f"{name} must have at least 2 rows and 1 column; got shape {a.shape}")
    return a


def _labels(name, y, n, n_classes):
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one label per row); got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels; got dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must lie in 0..{n_classes - 1}; got values in {y.min()}..{y.max()}")
    return y.astype(np.int64)


def one_hot(y, n_classes: int) -> np.ndarray:
    """Labels (N,) in 0..K-1 as a one-hot float matrix (N, K).

    >>> one_hot([2, 0], 3)
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    n_classes = check_int("n_classes", n_classes, low=1)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one label per example, shape (N,); got shape {y.shape}")
    y = _labels("y", y, y.shape[0], n_classes)
    out = np.zeros((y.shape[0], n_classes))
    out[np.arange(y.shape[0]), y] = 1.0
    return out


def pca(features) -> Spectrum:
    """PCA of ``features`` (N, D) by the thin SVD of the centred matrix; keeps the non-zero components.

    >>> s = pca([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]])
    >>> s.rank, s.variances.round(6).tolist(), s.components.round(6).tolist()
    (1, [4.0], [[1.0, 0.0]])
    """
    f = _features("features", features)
    mean = f.mean(0)
    u, s, vt = np.linalg.svd(f - mean, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        raise ValueError("features must vary across rows (their centred matrix is zero); got constant features")
    keep = s > _RANK_TOL * s[0]
    vt, s, u = vt[keep], s[keep], u[:, keep]
    # a deterministic sign: the largest-|.| entry of each component is positive (as scikit-learn's svd_flip)
    sign = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(1)])
    return Spectrum(mean, vt * sign[:, None], s ** 2 / (f.shape[0] - 1), u * sign[None, :])


def pca_scores(spectrum: Spectrum, features, d: int) -> np.ndarray:
    r"""The top-``d`` principal scores :math:`(f - \bar f) V_{:d} / \sqrt{\lambda_1}`, shape (N, d)."""
    f = _features("features", features)
    if f.shape[1] != spectrum.mean.shape[0]:
        raise ValueError(f"features must have {spectrum.mean.shape[0]} columns (the PCA's); got shape {f.shape}")
    d = check_int("d", d, low=1, high=spectrum.rank)
    return (f - spectrum.mean) @ spectrum.components[:d].T / np.sqrt(spectrum.variances[0])


def fit_softmax_probe(z, y, n_classes: int, *, l2: float = 1e-3, tol: float = 1e-9,
                      max_iter: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    r"""Multinomial logistic regression (weights (K, d), biases (K,)) minimising the mean cross-entropy
    plus :math:`\tfrac{\ell_2}{2}\lVert W\rVert_F^2`, by L-BFGS (SciPy) from zero.

    Equal to scikit-learn's ``LogisticRegression(C=1/(N l2))`` for K ≥ 3 classes.
    A class absent from ``y`` keeps a finite, strongly negative bias (the penalty does not reach it);
    ``l2`` must be > 0 so that the optimum exists when the data are separable.

    >>> w, b = fit_softmax_probe([[-1.0], [1.0], [-2.0], [2.0]], [0, 1, 0, 1], 2, l2=0.1)
    >>> bool(w[1, 0] > w[0, 0])
    True
    """
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    z = _features("z", z)
    n, d = z.shape
    n_classes = check_int("n_classes", n_classes, low=2)
    y = _labels("y", y, n, n_classes)
    l2 = check_real("l2", l2, low=0.0, low_open=True, high=1e6)
    tol = check_real("tol", tol, low=0.0, low_open=True, high=1e-2)
    max_iter = check_int("max_iter", max_iter, low=1, high=100_000)
    target = one_hot(y, n_classes)
    zb = np.hstack([z, np.ones((n, 1))])

    def objective(theta):
        wb = theta.reshape(d + 1, n_classes)
        logq = log_softmax(zb @ wb, axis=1)
        w = wb[:d]
        value = -(target * logq).sum() / n + 0.5 * l2 * (w * w).sum()
        grad = zb.T @ (np.exp(logq) - target) / n
        grad[:d] += l2 * w
        return value, grad.ravel()

    res = minimize(objective, np.zeros((d + 1) * n_classes), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 30})
    wb = res.x.reshape(d + 1, n_classes)
    return wb[:d].T.copy(), wb[d].copy()


def probe_predict(weights, bias, z) -> np.ndarray:
    """Predicted class, argmax of W z + b, for each row of ``z`` (N, d)."""
    weights = check_real_array("weights", weights, ndim=2)
    bias = check_real_array("bias", bias, ndim=1)
    z = check_real_array("z", z, ndim=2)
    if z.shape[1] != weights.shape[1] or bias.shape[0] != weights.shape[0]:
        raise ValueError(f"weights (K, d), bias (K,) and z (N, d) must agree; got {weights.shape}, "
                         f"{bias.shape}, {z.shape}")
    return (z @ weights.T + bias).argmax(1)


def _probe_inputs(train_features, train_labels, test_features, n_classes, dims):
    # The checked inputs of a probe: features, test features, class count, labels, their PCA, probe dimensions.
    f = _features("train_features", train_features)
    ft = _features("test_features", test_features)
    if ft.shape[1] != f.shape[1]:
        raise ValueError(f"test_features must have {f.shape[1]} columns (as train_features); got shape {ft.shape}")
    n_classes = check_int("n_classes", n_classes, low=2)
    y = _labels("train_labels", train_labels, f.shape[0], n_classes)
    spec = pca(f)
    dims = [check_int("dims", d, low=1, high=spec.rank) for d in dims]
    if not dims:
        raise ValueError("dims must name at least one probe dimension; got an empty sequence")
    return f, ft, n_classes, y, spec, dims


def spectral_probe(train_features, train_labels, test_features, test_labels, dims: Sequence[int],
                   n_classes: int, *, l2: float = 1e-3) -> np.ndarray:
    r"""Test accuracy of the softmax probe fitted on the top-``d`` principal scores, for each ``d`` in ``dims``.

    The PCA is that of ``train_features``; the probe is fitted on ``train_labels`` (the labels the
    network saw, noisy or not) and scored on ``test_labels``. ``d`` larger than the features' rank is an error.

    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 20); f = np.eye(3)[y] @ rng.normal(size=(3, 5)) + 0.1 * rng.normal(size=(60, 5))
    >>> spectral_probe(f, y, f, y, [2, 5], 3).tolist()
    [1.0, 1.0]
    """
    f, ft, n_classes, y, spec, dims = _probe_inputs(train_features, train_labels, test_features, n_classes, dims)
    yt = _labels("test_labels", test_labels, ft.shape[0], n_classes)
    out = []
    for d in dims:
        w, b = fit_softmax_probe(pca_scores(spec, f, d), y, n_classes, l2=l2)
        out.append(float((probe_predict(w, b, pca_scores(spec, ft, d)) == yt).mean()))
    return np.array(out)


def tail_fraction(spectrum: Spectrum, targets, dims: Sequence[int] | int) -> np.ndarray:
    r""":math:`\tau_d`: the fraction of the centred ``targets`` (N, K) (or (N,)), as far as the training features
    span them, that lies outside the top-``d`` principal components; one value per ``d`` in ``dims``.

    >>> f = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]])   # variance 6 along x, 2/3 along y
    >>> s = pca(f)
    >>> tail_fraction(s, [0.0, 0.0, 1.0, -1.0], [0, 1, 2]).round(6).tolist()   # a target along y: all in the tail
    [1.0, 1.0, 0.0]
    """
    t = check_real_array("targets", targets, min_ndim=1)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] != spectrum.u.shape[0]:
        raise ValueError(f"targets must have shape ({spectrum.u.shape[0]},) or ({spectrum.u.shape[0]}, K) "
                         f"(one row per training example); got shape {t.shape}")
    single = isinstance(dims, (int, np.integer))
    dims = [dims] if single else list(dims)
    dims = [check_int("dims", d, low=0, high=spectrum.rank) for d in dims]
    energy = ((spectrum.u.T @ (t - t.mean(0))) ** 2).sum(1)   # per component
    total = energy.sum()
    if total <= 0:
        raise ValueError("targets must have a non-zero component in the span of the features; got none")
    tail = np.array([energy[d:].sum() / total for d in dims])
    return tail[0] if single else tail


def least_squares_scores(train_features, train_labels, test_features, dims: Sequence[int],
                         n_classes: int) -> np.ndarray:
    r"""Scores of the least-squares probe on the top-``d`` principal components, shape (len(dims), N_test, K).

    The probe regresses the one-hot training labels on the top-:math:`d` principal scores (with an
    intercept) by least squares. The scores being orthogonal, the fit on :math:`d` components keeps the
    first :math:`d` coefficients of the full fit, :math:`\hat Y_d(f) = \bar y + (f - \bar f) V_{:d}
    S_{:d}^{-1} U_{:d}^\top Y`, so one SVD serves every ``d``.
    """
    f, ft, n_classes, y, spec, dims = _probe_inputs(train_features, train_labels, test_features, n_classes, dims)
    target = one_hot(y, n_classes)
    coef = spec.u.T @ (target - target.mean(0))                              # (r, K): U^T Y_c
    sing = np.sqrt(spec.variances * (f.shape[0] - 1))                         # singular values S
    scores = (ft - spec.mean) @ spec.components.T / sing                      # (N_t, r): (f - m) V S^-1
    return np.stack([scores[:, :d] @ coef[:d] + target.mean(0) for d in dims])


def least_squares_probe(train_features, train_labels, test_features, test_labels, dims: Sequence[int],
                        n_classes: int) -> np.ndarray:
    r"""Test accuracy of the least-squares probe (:func:`least_squares_scores`, argmax) for each ``d`` in ``dims``.

    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 20); f = np.eye(3)[y] @ rng.normal(size=(3, 5)) + 0.1 * rng.normal(size=(60, 5))
    >>> least_squares_probe(f, y, f, y, [2, 5], 3).tolist()
    [1.0, 1.0]
    """
    ft = _features("test_features", test_features)
    n_classes = check_int("n_classes", n_classes, low=2)
    yt = _labels("test_labels", test_labels, ft.shape[0], n_classes)
    scores = least_squares_scores(train_features, train_labels, ft, dims, n_classes)
    return (scores.argmax(2) == yt).mean(1)
