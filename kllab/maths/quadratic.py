r"""A quadratic-activation network as a symmetric matrix: teacher data, least squares, gradient descent.

A one-hidden-layer network of width :math:`m` with quadratic activation and a fixed average readout,

.. math::
    f_W(x) = \frac1m \sum_{k=1}^m (w_k \cdot x)^2 = x^\top S x, \qquad S = \frac{W^\top W}{m},

depends on its weights :math:`W \in \mathbb{R}^{m\times d}` only through the PSD matrix :math:`S` (rank
:math:`\le \min(m, d)`). Learning it from labels :math:`y = x^\top S^* x + \sqrt{\Delta}\,z` is matrix sensing.

Conventions
-----------
* Inputs :math:`x \sim \mathcal N(0, I_d)`; the teacher's rows :math:`w_k \sim \mathcal N(0, I_d/d)`, so that
  :math:`\operatorname{tr} S^* \approx 1`.
* **Features.** :math:`x^\top S x = \phi(x)\cdot \operatorname{vech}(S)` with ``vech`` the upper triangle read row
  by row, :math:`\phi_{ii} = x_i^2` and :math:`\phi_{ij} = 2x_ix_j` (:math:`i<j`): :math:`p = d(d+1)/2` features.
  Once :math:`n \ge p` samples are in general position, noiseless least squares recovers :math:`S^*` exactly.
* **Test error** of :math:`\hat S`, with :math:`D = \hat S - S^*` and Gaussian :math:`x` (Isserlis),

  .. math::
      \mathbb E_x\big[(x^\top D x)^2\big] = 2\,\|D\|_F^2 + (\operatorname{tr} D)^2 ,

  reported normalised by the teacher's variance :math:`\operatorname{Var} f^* = 2\|S^*\|_F^2`.
* **Where a KL enters.** With the Gaussian noise model :math:`p(y|x) = \mathcal N(f(x), \Delta)` the squared loss
  is the negative log-likelihood, and :math:`\mathrm{KL}(\mathcal N(f^*(x),\Delta)\,\|\,\mathcal N(\hat f(x),\Delta))
  = (\hat f(x) - f^*(x))^2/(2\Delta)`: the test MSE is :math:`2\Delta` times the expected KL (both directions agree).
* **Gradient descent** on :math:`L(W) = \frac1{2n}\sum_i (f_W(x_i) - y_i)^2`, whose gradient is
  :math:`\nabla_W L = \frac2m W G`, :math:`G = \frac1n \sum_i r_i x_i x_i^\top`, :math:`r_i = f_W(x_i) - y_i`.

Sources: A. Maillard, E. Troiani, S. Martin, F. Krzakala, L. Zdeborová, *Bayes-optimal learning of an
extensive-width neural network from quadratically many samples*, NeurIPS 2024, arXiv:2408.03733 (the model, the
quadratic sample regime :math:`n = \alpha d^2`, gradient descent from random inits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import check_int, check_real, check_real_array

__all__ = [
    "n_quadratic_features", "low_rank_dof", "vech", "unvech", "quadratic_features", "teacher",
    "weights_to_matrix", "predict", "sample", "least_squares", "prediction_error", "ls_noise_error",
    "loss_and_grad", "GDResult", "gradient_descent",
]


def n_quadratic_features(d: int) -> int:
    """Number p = d(d+1)/2 of quadratic features of x in R^d (the entries of a symmetric d x d matrix).

    >>> n_quadratic_features(16)
    136
    """
    d = check_int("d", d, low=1)
    return d * (d + 1) // 2


def low_rank_dof(d: int, rank: int) -> int:
    """Degrees of freedom m d - m(m-1)/2 of a d x d PSD matrix of rank m = min(rank, d) (p when rank >= d).

    >>> low_rank_dof(16, 4), low_rank_dof(16, 16), low_rank_dof(16, 40)
    (58, 136, 136)
    """
    d = check_int("d", d, low=1)
    m = min(check_int("rank", rank, low=1), d)
    return m * d - m * (m - 1) // 2


def _square(name: str, s) -> np.ndarray:
    s = check_real_array(name, s, min_ndim=2)
    if s.shape[-1] != s.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (..., d, d); got shape {s.shape}")
    return s


def vech(s) -> np.ndarray:
    """Upper triangle of symmetric matrices ``s`` (..., d, d), row by row: shape (..., d(d+1)/2).

    >>> vech([[1.0, 2.0], [2.0, 3.0]]).tolist()
    [1.0, 2.0, 3.0]
    """
    s = _square("s", s)
    if not np.allclose(s, np.swapaxes(s, -1, -2), rtol=1e-10, atol=1e-12):
        raise ValueError("s must be symmetric; got a matrix with s != s.T")
    i, j = np.triu_indices(s.shape[-1])
    return s[..., i, j]


def unvech(v, d: int) -> np.ndarray:
    """Inverse of :func:`vech`: the symmetric (..., d, d) matrices whose upper triangles are ``v`` (..., p)."""
    v = check_real_array("v", v, min_ndim=1)
    p = n_quadratic_features(d)
    if v.shape[-1] != p:
        raise ValueError(f"v must have d(d+1)/2 = {p} entries on its last axis for d = {d}; got shape {v.shape}")
    s = np.zeros(v.shape[:-1] + (d, d))
    i, j = np.triu_indices(d)
    s[..., i, j] = v
    s[..., j, i] = v
    return s


def _inputs(x) -> np.ndarray:
    x = check_real_array("x", x, ndim=2)
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (n, d) with n, d >= 1; got {x.shape}")
    return x


def quadratic_features(x) -> np.ndarray:
    r"""Features :math:`\phi(x)` (n, p) with :math:`x^\top S x = \phi(x)\cdot\operatorname{vech}(S)`:
    :math:`x_i^2` on the diagonal, :math:`2x_ix_j` off it.

    >>> quadratic_features([[1.0, 2.0]]).tolist()
    [[1.0, 4.0, 4.0]]
    """
    x = _inputs(x)
    i, j = np.triu_indices(x.shape[1])
    return x[:, i] * x[:, j] * np.where(i == j, 1.0, 2.0)


def teacher(d: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Teacher weights W (width, d) with i.i.d. N(0, 1/d) entries (so tr S* is about 1)."""
    d = check_int("d", d, low=1)
    width = check_int("width", width, low=1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    return rng.standard_normal((width, d)) / np.sqrt(d)


def weights_to_matrix(w) -> np.ndarray:
    """S = W^T W / m for weights W (..., m, d): shape (..., d, d)."""
    w = check_real_array("w", w, min_ndim=2)
    return np.swapaxes(w, -1, -2) @ w / w.shape[-2]


def predict(s, x) -> np.ndarray:
    """Network outputs x_i^T S x_i, shape (n,), for S (d, d) and inputs x (n, d)."""
    s, x = _square("s", s), _inputs(x)
    if s.ndim != 2 or s.shape[0] != x.shape[1]:
        raise ValueError(f"s must have shape (d, d) = ({x.shape[1]}, {x.shape[1]}) to match x; got {s.shape}")
    return np.einsum("ni,ij,nj->n", x, s, x)


def sample(s, n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw ``n`` inputs x ~ N(0, I_d) and labels y = x^T S x + sqrt(noise) z, z ~ N(0, 1).

    ``noise`` is the label-noise variance :math:`\Delta \ge 0`. Returns (x (n, d), y (n,)).
    """
    s = _square("s", s)
    n = check_int("n", n, low=1)
    noise = check_real("noise", noise, low=0.0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    x = rng.standard_normal((n, s.shape[-1]))
    return x, predict(s, x) + np.sqrt(noise) * rng.standard_normal(n)


def least_squares(x, y) -> np.ndarray:
    r"""Minimum-norm least-squares fit of :math:`S` to labels ``y`` on the quadratic features of ``x``.

    ``y`` of shape (n,) gives one (d, d) matrix; ``y`` of shape (n, r) fits r label vectors at once and gives
    (r, d, d). Below :math:`n = d(d+1)/2` the fit interpolates and is the minimum-norm interpolator of
    :math:`\operatorname{vech}(S)`; above it, noiseless labels give :math:`S^*` exactly.
    """
    x = _inputs(x)
    y = check_real_array("y", y, min_ndim=1)
    if y.ndim > 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape (n,) or (n, r) with n = {x.shape[0]}; got {y.shape}")
    coef = np.linalg.lstsq(quadratic_features(x), y, rcond=None)[0]
    return unvech(coef.T, x.shape[1])


def prediction_error(s_hat, s_star) -> np.ndarray:
    r"""Normalised test error :math:`\mathbb E_x[(x^\top D x)^2]/\operatorname{Var} f^* =
    (2\|D\|_F^2 + (\operatorname{tr} D)^2)/(2\|S^*\|_F^2)`, :math:`D = \hat S - S^*`, exact for x ~ N(0, I).

    ``s_hat`` may carry leading axes (..., d, d); the result has shape ``s_hat.shape[:-2]``.

    >>> float(prediction_error(np.zeros((2, 2)), np.eye(2)))   # predicting 0: (2 * 2 + 4) / (2 * 2)
    2.0
    """
    s_hat, s_star = _square("s_hat", s_hat), _square("s_star", s_star)
    if s_star.ndim != 2 or s_hat.shape[-1] != s_star.shape[-1]:
        raise ValueError(f"s_star must be one (d, d) matrix matching s_hat {s_hat.shape}; got {s_star.shape}")
    var = 2 * np.sum(s_star ** 2)
    if var == 0:
        raise ValueError("s_star must not be the zero matrix (its variance normalises the error)")
    dlt = s_hat - s_star
    return (2 * np.sum(dlt ** 2, axis=(-1, -2)) + np.trace(dlt, axis1=-2, axis2=-1) ** 2) / var


def _feature_covariance(d: int) -> np.ndarray:
    # E[phi phi^T] for x ~ N(0, I): E[x_i^2 x_j^2] = 1 + 2 delta_ij, E[(2 x_i x_j)^2] = 4 (i < j), the rest 0
    i, j = np.triu_indices(d)
    diag = i == j
    cov = np.zeros((len(i), len(i)))
    cov[np.ix_(diag, diag)] = 1.0 + 2.0 * np.eye(d)
    off = np.flatnonzero(~diag)
    cov[off, off] = 4.0
    return cov


def ls_noise_error(x, noise: float, s_star) -> float:
    r"""Expected normalised test error of least squares over the label noise, for the design ``x`` fixed:
    :math:`\Delta\,\operatorname{tr}(\Sigma_\phi\,\Phi^+\Phi^{+\top}) / (2\|S^*\|_F^2)` with :math:`\Phi^+` the
    pseudo-inverse of the feature matrix and :math:`\Sigma_\phi = \mathbb E[\phi\phi^\top]`. It adds to the
    noiseless fit's error (the noise part is uncorrelated with it); past the threshold that error is 0.
    """
    x = _inputs(x)
    noise = check_real("noise", noise, low=0.0)
    s_star = _square("s_star", s_star)
    pinv = np.linalg.pinv(quadratic_features(x))
    cov = _feature_covariance(x.shape[1])
    return float(noise * np.trace(cov @ pinv @ pinv.T) / (2 * np.sum(s_star ** 2)))


def loss_and_grad(w, x, y) -> tuple[float, np.ndarray]:
    r"""Squared loss :math:`\frac1{2n}\sum_i (f_W(x_i) - y_i)^2` of the width-m network and its gradient in W (m, d)."""
    w, x = check_real_array("w", w, ndim=2), _inputs(x)
    y = check_real_array("y", y, ndim=1)
    if w.shape[1] != x.shape[1] or y.shape[0] != x.shape[0]:
        raise ValueError(f"w (m, d), x (n, d), y (n,) must agree; got {w.shape}, {x.shape}, {y.shape}")
    return _loss_and_grad(w, x, y)


def _loss_and_grad(w, x, y):
    h = x @ w.T                                   # (n, m) pre-activations
    r = (h ** 2).sum(1) / w.shape[0] - y          # residuals
    grad = (2.0 / (w.shape[0] * x.shape[0])) * (h * r[:, None]).T @ x     # (2/m) W G with G = X^T diag(r) X / n
    return float(0.5 * np.mean(r ** 2)), grad


@dataclass
class GDResult:
    """Outcome of :func:`gradient_descent`: final weights, their matrix S, and the training loss per step."""
    w: np.ndarray
    s: np.ndarray
    losses: np.ndarray


def gradient_descent(x, y, width: int, *, steps: int, lr: float, init_scale: float,
                     rng: np.random.Generator, tol: float = 0.0) -> GDResult:
    r"""Full-batch gradient descent on the width-``width`` network from W_0 with i.i.d. N(0, init_scale^2/d) entries.

    A step that would raise the loss is not taken and halves the step size instead (so the loss never increases;
    ``lr`` is the largest step tried). Stops early once the training loss is below ``tol`` (0: never). Returns a :class:`GDResult`.
    """
    x = _inputs(x)
    y = check_real_array("y", y, ndim=1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape (n,) = ({x.shape[0]},); got {y.shape}")
    width = check_int("width", width, low=1)
    steps = check_int("steps", steps, low=1, high=10**7)
    lr = check_real("lr", lr, low=0.0, low_open=True, high=1e3)
    init_scale = check_real("init_scale", init_scale, low=0.0, low_open=True, high=1e3)
    tol = check_real("tol", tol, low=0.0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    w = init_scale * rng.standard_normal((width, x.shape[1])) / np.sqrt(x.shape[1])
    loss, grad = _loss_and_grad(w, x, y)
    losses = [loss]
    for _ in range(steps - 1):
        if loss < tol:
            break
        trial = w - lr * grad
        new_loss, new_grad = _loss_and_grad(trial, x, y)
        if not new_loss <= loss:          # the step overshot (or overflowed): halve the step size, stay put
            lr /= 2
            if lr < 1e-12:
                raise FloatingPointError("gradient descent could not decrease the loss; lower lr")
        else:
            w, loss, grad = trial, new_loss, new_grad
        losses.append(loss)
    return GDResult(w=w, s=weights_to_matrix(w), losses=np.asarray(losses))
