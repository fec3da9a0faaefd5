r"""Gradient flow of linear least squares in closed form, and the two-scale teacher-student of epoch-wise double descent.

**Gradient flow.** For data :math:`X \in \mathbb R^{n\times d}`, targets :math:`y \in \mathbb R^n` and the loss
:math:`L(w) = \tfrac1{2n}\lVert Xw - y\rVert^2`, write :math:`H = X^\top X/n = V\Lambda V^\top` (the empirical
covariance, eigenvalues :math:`\lambda_k \ge 0`) and :math:`b = X^\top y/n`. The flow :math:`\dot w = -\nabla L = b - Hw`
decouples in the eigenbasis, and from :math:`w(0) = w_0`

.. math::
    w(t) = w_0 + V\,\mathrm{diag}\!\Big(\frac{1 - e^{-\lambda_k t}}{\lambda_k}\Big)\,V^\top (b - H w_0),

with :math:`(1 - e^{-\lambda t})/\lambda \to t` as :math:`\lambda \to 0`. Mode :math:`k` is learned on the time scale
:math:`1/\lambda_k`: directions of large variance first. As :math:`t \to \infty` the flow from :math:`w_0 = 0` reaches the
minimum-norm least-squares solution :math:`H^+ b`. Explicit gradient descent with step :math:`\eta`,
:math:`w_{k+1} = w_k - \eta\,(H w_k - b)`, replaces :math:`e^{-\lambda t}` by :math:`(1 - \eta\lambda)^{k}` at
:math:`t = k\eta` (:func:`gradient_descent` runs it step by step, for comparison). On the training inputs the flow is
the frozen-kernel flow of :func:`kllab.maths.kernels.kernel_dynamics` with kernel :math:`\Theta = XX^\top`.

**Two-scale teacher-student** (Pezeshki et al., 2022). Latent factors :math:`z \sim \mathcal N(0, I_d)` with
:math:`d = d_f + d_s`; the teacher labels :math:`y = z\cdot w^* + \varepsilon`, :math:`\varepsilon \sim \mathcal
N(0, \Delta)`, with :math:`\lVert w^*\rVert = 1` so that the clean labels have variance 1 and :math:`\Delta` is the
noise variance as a fraction of it. The student sees :math:`x = s \odot z` with :math:`s_k = 1` on the :math:`d_f` fast
features and :math:`s_k = \kappa \le 1` on the :math:`d_s` slow ones (a diagonal modulation :math:`F = \mathrm{diag}(s)`,
whose condition number is :math:`1/\kappa`). The slow directions have variance :math:`\kappa^2`, so they are learned
:math:`1/\kappa^2` times later. The student predicts :math:`x\cdot w = z\cdot(s\odot w)`, and its test error on a fresh
example is, exactly,

.. math::
    E(w) = \mathbb E\,(y - x\cdot w)^2 = \lVert s\odot w - w^*\rVert^2 + \Delta ,

which splits into a fast and a slow block. The targets :math:`y` (and :math:`w^*`) are the reference.

**Least squares with Gaussian inputs.** For :math:`n \ge d + 2` i.i.d. inputs :math:`x \sim \mathcal N(0, \Sigma)` and
label noise of variance :math:`\sigma^2` independent of :math:`x`, the least-squares fit has expected excess test error
:math:`\sigma^2 d/(n - d - 1)` (the mean of an inverse Wishart matrix), so
:math:`\mathbb E\,E = \sigma^2\,(n-1)/(n - d - 1)` (:func:`expected_least_squares_error`).

References: M. Pezeshki, A. Mitra, Y. Bengio, G. Lajoie. *Multi-scale Feature Learning Dynamics: Insights for Double
Descent.* ICML 2022. arXiv:2112.03215. M. S. Advani, A. M. Saxe. *High-dimensional dynamics of generalization error in
neural networks.* 2017. arXiv:1710.03667.
"""

from __future__ import annotations

import numpy as np

from .validation import check_int, check_real, check_real_array

__all__ = ["gradient_flow", "gradient_descent", "two_scale_teacher", "generalization_error", "block_errors",
           "expected_least_squares_error", "double_descent_bump"]


def _data(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = check_real_array("x", x, ndim=2)
    y = check_real_array("y", y, ndim=1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have one target per row of x, shape ({x.shape[0]},); got {y.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must have at least one row and one column; got shape {x.shape}")
    return x, y


def _start(w0, d: int) -> np.ndarray:
    if w0 is None:
        return np.zeros(d)
    w0 = check_real_array("w0", w0, ndim=1)
    if w0.shape != (d,):
        raise ValueError(f"w0 must have shape ({d},) (one weight per column of x); got {w0.shape}")
    return w0


def gradient_flow(x, y, times, *, w0=None) -> np.ndarray:
    r"""Weights of gradient flow on :math:`\tfrac1{2n}\lVert Xw - y\rVert^2` at the given times; ``y`` is the reference.

    .. math::
        w(t) = w_0 + V\,\mathrm{diag}\big((1 - e^{-\lambda_k t})/\lambda_k\big)\,V^\top (b - H w_0),
        \qquad H = X^\top X/n = V\Lambda V^\top,\quad b = X^\top y/n .

    Parameters
    ----------
    x : array, shape (n, d)
    y : array, shape (n,)
    times : array, shape (T,), each >= 0
    w0 : array, shape (d,), optional (default zeros)

    Returns
    -------
    ndarray, shape (T, d): row ``i`` is :math:`w(t_i)`.

    >>> w = gradient_flow([[1.0, 0.0], [0.0, 1.0]], [2.0, 2.0], [0.0, 1e9])   # H = I/2, b = (1, 1)
    >>> w.round(6).tolist()
    [[0.0, 0.0], [2.0, 2.0]]
    """
    x, y = _data(x, y)
    n, d = x.shape
    times = check_real_array("times", times, ndim=1)
    if (times < 0).any():
        raise ValueError(f"times must be >= 0; got min {times.min()!r}")
    w0 = _start(w0, d)
    lam, vec = np.linalg.eigh(x.T @ x / n)
    c = vec.T @ (x.T @ (y - x @ w0) / n)        # b - H w0 = X^T (y - X w0) / n in the eigenbasis
    # b - H w0 lies in the range of X^T, so it has no component on the null space of H: drop what round-off leaves
    # there (an eigenvalue of 1e-17 would otherwise multiply it by t, which is large)
    null = lam <= max(lam[-1], 0.0) * d * np.finfo(float).eps * 10
    c[null] = 0.0
    lam = np.where(null, 1.0, lam)              # any value: c is 0 there
    gain = -np.expm1(-np.outer(times, lam)) / lam
    return w0 + (gain * c) @ vec.T


def gradient_descent(x, y, lr: float, steps: int, *, w0=None, record_every: int = 1) -> np.ndarray:
    r"""Explicit gradient descent :math:`w_{k+1} = w_k - \eta\,X^\top(Xw_k - y)/n`, step by step; ``y`` is the reference.

    Parameters
    ----------
    x : array, shape (n, d)
    y : array, shape (n,)
    lr : float, :math:`0 < \eta < 2/\lambda_{\max}(H)` (otherwise the iteration diverges and this raises)
    steps : int >= 0
    w0 : array, shape (d,), optional (default zeros)
    record_every : int >= 1: keep :math:`w_k` for k = 0, record_every, 2 record_every, ... (and the last step)

    Returns
    -------
    ndarray, shape (K, d): the kept iterates, the first being :math:`w_0`.

    >>> gradient_descent([[1.0]], [1.0], lr=0.5, steps=2)[:, 0].tolist()   # w <- w - 0.5 (w - 1)
    [0.0, 0.5, 0.75]
    """
    x, y = _data(x, y)
    n, d = x.shape
    lr = check_real("lr", lr, low=0.0, low_open=True)
    steps = check_int("steps", steps, low=0)
    record_every = check_int("record_every", record_every, low=1)
    h, b = x.T @ x / n, x.T @ y / n
    lam_max = float(np.linalg.eigvalsh(h)[-1])
    if lr * lam_max >= 2.0:
        raise ValueError(f"lr must be < 2 / lambda_max(X^T X / n) = {2 / lam_max:.4g} for gradient descent to "
                         f"converge; got lr={lr}")
    w = _start(w0, d).copy()
    kept = [w.copy()]
    for k in range(1, steps + 1):
        w -= lr * (h @ w - b)
        if k % record_every == 0 or k == steps:
            kept.append(w.copy())
    return np.array(kept)


def two_scale_teacher(n: int, d_fast: int, d_slow: int, kappa: float, label_noise: float,
                      rng: np.random.Generator) -> dict:
    r"""Draw the two-scale teacher-student problem: training data and the teacher.

    :math:`w^* \sim \mathcal N(0, I_d)` rescaled to unit norm, :math:`z_i \sim \mathcal N(0, I_d)`,
    :math:`y_i = z_i\cdot w^* + \sqrt\Delta\,\xi_i`, :math:`x_i = s\odot z_i` with :math:`s = (1^{d_f}, \kappa^{d_s})`.

    Parameters
    ----------
    n : int >= 1, number of training examples
    d_fast, d_slow : int >= 1, numbers of fast and slow features
    kappa : float in (0, 1], scale of the slow features relative to the fast ones
    label_noise : float >= 0, noise variance :math:`\Delta` as a fraction of the clean labels' variance (1)
    rng : numpy Generator (the caller seeds it)

    Returns
    -------
    dict with ``x`` (n, d), ``y`` (n,), ``z`` (n, d), ``scales`` s (d,), ``w_star`` (d,), ``noise_var`` :math:`\Delta`,
    ``d_fast``.

    >>> p = two_scale_teacher(4, 2, 1, 0.1, 0.0, np.random.default_rng(0))
    >>> p["x"].shape, p["scales"].tolist(), round(float(np.linalg.norm(p["w_star"])), 12)
    ((4, 3), [1.0, 1.0, 0.1], 1.0)
    """
    n = check_int("n", n, low=1)
    d_fast = check_int("d_fast", d_fast, low=1)
    d_slow = check_int("d_slow", d_slow, low=1)
    kappa = check_real("kappa", kappa, low=0.0, high=1.0, low_open=True)
    label_noise = check_real("label_noise", label_noise, low=0.0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    d = d_fast + d_slow
    w_star = rng.standard_normal(d)
    w_star /= np.linalg.norm(w_star)
    z = rng.standard_normal((n, d))
    y = z @ w_star + np.sqrt(label_noise) * rng.standard_normal(n)
    scales = np.concatenate([np.ones(d_fast), np.full(d_slow, kappa)])
    return {"x": z * scales, "y": y, "z": z, "scales": scales, "w_star": w_star, "noise_var": label_noise,
            "d_fast": d_fast}


def _weights_and_teacher(weights, scales, w_star) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    weights = check_real_array("weights", weights, min_ndim=1)
    scales = check_real_array("scales", scales, ndim=1)
    w_star = check_real_array("w_star", w_star, ndim=1)
    if scales.shape != w_star.shape or weights.shape[-1] != w_star.shape[0]:
        raise ValueError(f"weights (last axis), scales and w_star must have the same length; got shapes "
                         f"{weights.shape}, {scales.shape}, {w_star.shape}")
    return weights, scales, w_star


def generalization_error(weights, scales, w_star, noise_var: float) -> np.ndarray:
    r"""Exact test error :math:`\lVert s\odot w - w^*\rVert^2 + \Delta` of the student; ``w_star`` is the reference.

    Parameters
    ----------
    weights : array, shape (..., d), one student per row
    scales : array, shape (d,), the feature scales s
    w_star : array, shape (d,), the teacher
    noise_var : float >= 0, the label-noise variance :math:`\Delta`

    Returns
    -------
    ndarray, shape weights.shape[:-1]

    >>> float(generalization_error([1.0, 10.0], [1.0, 0.1], [1.0, 0.5], 0.25))   # 0 + 0.5^2 + 0.25
    0.5
    """
    weights, scales, w_star = _weights_and_teacher(weights, scales, w_star)
    noise_var = check_real("noise_var", noise_var, low=0.0)
    return ((scales * weights - w_star) ** 2).sum(-1) + noise_var


def block_errors(weights, scales, w_star, d_fast: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The fast and slow parts of the test error, :math:`\lVert s_f\odot w_f - w^*_f\rVert^2` and the same on the
    slow block; they add up to :func:`generalization_error` minus the noise. ``w_star`` is the reference.

    >>> [float(e) for e in block_errors([1.0, 10.0], [1.0, 0.1], [1.0, 0.5], 1)]
    [0.0, 0.25]
    """
    weights, scales, w_star = _weights_and_teacher(weights, scales, w_star)
    d_fast = check_int("d_fast", d_fast, low=0, high=w_star.shape[0])
    sq = (scales * weights - w_star) ** 2
    return sq[..., :d_fast].sum(-1), sq[..., d_fast:].sum(-1)


def expected_least_squares_error(noise_var: float, n: int, d: int) -> float:
    r"""Expected test error of least squares on n Gaussian inputs in d dimensions with noise variance
    :math:`\sigma^2`: :math:`\sigma^2\,(1 + d/(n - d - 1)) = \sigma^2 (n-1)/(n-d-1)`, for :math:`n \ge d + 2`.

    The noise may be any signal the model cannot represent, if it is independent of the inputs (the slow features'
    signal, for a fit on the fast features alone).

    >>> expected_least_squares_error(1.0, 12, 5)   # 1 + 5/6
    1.8333333333333333
    """
    noise_var = check_real("noise_var", noise_var, low=0.0)
    d = check_int("d", d, low=1)
    n = check_int("n", n, low=d + 2)
    return noise_var * (n - 1) / (n - d - 1)


def double_descent_bump(errors) -> dict:
    r"""Largest hill between two valleys of a curve: the height of its epoch-wise double descent.

    .. math::
        h = \max_j \min\big(E_j - \min_{i \le j} E_i,\; E_j - \min_{k \ge j} E_k\big),

    zero for a curve that only falls, only rises, or falls then rises (a single U). ``peak`` is the maximising
    :math:`j`, ``before`` and ``after`` the two valleys' indices (the minima before and after it).

    Returns
    -------
    dict with ``height``, ``relative`` (height / E_peak), ``peak``, ``before``, ``after``.

    >>> b = double_descent_bump([3.0, 1.0, 2.0, 0.5])
    >>> b["height"], b["peak"], b["before"], b["after"]
    (1.0, 2, 1, 3)
    """
    e = check_real_array("errors", errors, ndim=1)
    if e.size == 0:
        raise ValueError("errors must hold at least one value; got an empty array")
    prefix = np.minimum.accumulate(e)
    suffix = np.minimum.accumulate(e[::-1])[::-1]
    hill = np.minimum(e - prefix, e - suffix)
    j = int(hill.argmax())
    before = int(np.argmin(e[: j + 1]))
    after = j + int(np.argmin(e[j:]))
    return {"height": float(hill[j]), "relative": float(hill[j] / e[j]) if e[j] > 0 else 0.0,
            "peak": j, "before": before, "after": after}
