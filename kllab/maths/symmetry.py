r"""Scale symmetry and its Noether charge: what SGD with weight decay does to the norm of normalised weights.

A loss is **scale-invariant** in a weight vector :math:`w` when :math:`L(cw) = L(w)` for every
:math:`c > 0`, as for every weight vector that feeds a normalisation layer (batch, layer or weight
normalisation). Differentiating :math:`L(cw)` in :math:`c` at :math:`c = 1` gives Noether's identity

.. math::
    w \cdot \nabla L(w) = 0, \qquad \nabla L(cw) = \nabla L(w)/c,
    \qquad |\nabla L(w)| = |\nabla L(\hat w)|/|w|, \quad \hat w = w/|w|,

so gradient flow :math:`\dot w = -\nabla L` conserves the **Noether charge** :math:`|w|^2`. A discrete
step of SGD with weight decay, :math:`w_{t+1} = (1-\eta\lambda)\,w_t - \eta\nabla L(w_t)`, breaks the
symmetry ("kinetic symmetry breaking"), and because the gradient is orthogonal to :math:`w` the charge
obeys, exactly,

.. math::
    |w_{t+1}|^2 = (1-\eta\lambda)^2\,|w_t|^2 + \eta^2\,|\nabla L(w_t)|^2
              = (1-\eta\lambda)^2\,|w_t|^2 + \eta^2\,\frac{G_t}{|w_t|^2},
    \qquad G_t = |\nabla L(\hat w_t)|^2 .

The direction :math:`\hat w` moves on the sphere with the **effective step** :math:`\eta/|w_t|^2` (the
gradient at :math:`w` is the gradient at :math:`\hat w` divided by :math:`|w|`, and a displacement is
divided by :math:`|w|` once more when it is projected on the unit sphere). With :math:`\lambda = 0` the
charge only grows, :math:`|w_t|^4 \approx |w_0|^4 + 2\eta^2\sum_{s<t} G_s`, so the effective step is
:math:`\approx 1/\sqrt{|w_0|^4/\eta^2 + 2\sum_s G_s}`: AdaGrad on the sphere, with one accumulator per
normalised vector. With :math:`\lambda > 0` old gradients are forgotten at the rate :math:`(1-\eta\lambda)^4`,
as in RMSProp, and for a constant :math:`G` the recursion has the fixed point

.. math::
    |w^*|^4 = \frac{\eta\,G}{\lambda\,(2-\eta\lambda)} \;\approx\; \frac{\eta\,G}{2\lambda},
    \qquad \cos\theta^* = 1-\eta\lambda, \quad \theta^* \approx \sqrt{2\eta\lambda},

where :math:`\theta^*` is the angle :math:`\hat w` turns per step there: set by :math:`\eta\lambda` alone.

Conventions: weights are tensors of shape ``(..., d)``; each vector along the last axis is one normalised
unit with its own charge (the rows of a weight matrix under weight normalisation). Learning rate ``lr``
is :math:`\eta`, ``weight_decay`` is :math:`\lambda` (coupled: :math:`\lambda w` is added to the gradient,
as in ``torch.optim.SGD``); :math:`0 \le \eta\lambda < 1`. The toy loss is cross-entropy, i.e. the
forward KL from the one-hot labels to the model's softmax, of the normalised linear model
:math:`z = g\,X\hat W^\top`; nothing above depends on the loss being a divergence, only on its symmetry.

Tanaka and Kunin, *Noether's Learning Dynamics: Role of Symmetry Breaking in Neural Networks*,
NeurIPS 2021 (arXiv:2105.02716); van Laarhoven, *L2 Regularization versus Batch and Weight
Normalization*, 2017 (arXiv:1706.05350); Wan et al., *Spherical Motion Dynamics*, NeurIPS 2021
(arXiv:2006.08419).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .validation import check_finite, check_int, check_positive, check_real

__all__ = ["normalize", "normalized_logits", "normalized_softmax_loss", "normalized_softmax_grad",
           "radial_component", "norm_step", "charge_recursion", "equilibrium_norm_sq",
           "equilibrium_angle", "effective_lr", "angle_between", "train_normalized_softmax"]


def _weights(name: str, w) -> torch.Tensor:
    if not torch.is_tensor(w) or not w.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch.Tensor of shape (..., d); got {type(w).__name__}"
                         + (f" of dtype {w.dtype}" if torch.is_tensor(w) else ""))
    if w.dim() < 1 or w.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (..., d) with d >= 1; got {tuple(w.shape)}")
    check_finite(name, w)
    return w


def _rates(lr, weight_decay) -> tuple[torch.Tensor, torch.Tensor]:
    """lr and weight_decay as float64 tensors (numbers or tensors broadcasting over the leading axes), checked."""
    lr_t = torch.as_tensor(lr, dtype=torch.float64)
    wd_t = torch.as_tensor(weight_decay, dtype=torch.float64)
    if not torch.isfinite(lr_t).all() or (lr_t <= 0).any():
        raise ValueError(f"lr must be finite and > 0; got {lr_t.tolist()}")
    if not torch.isfinite(wd_t).all() or (wd_t < 0).any():
        raise ValueError(f"weight_decay must be finite and >= 0; got {wd_t.tolist()}")
    if (lr_t * wd_t >= 1).any():
        raise ValueError(f"lr * weight_decay must be < 1 (else the decay factor 1 - lr * weight_decay is <= 0); "
                         f"got {(lr_t * wd_t).tolist()}")
    return lr_t, wd_t


def normalize(w: torch.Tensor) -> torch.Tensor:
    """Each vector along the last axis divided by its Euclidean norm, ``w / |w|``.

    >>> normalize(torch.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    """
    w = _weights("w", w)
    norm = w.norm(dim=-1, keepdim=True)
    if (norm == 0).any():
        raise ValueError(f"w must have no zero vector along its last axis (its direction is undefined); "
                         f"got {int((norm == 0).sum())} zero vector(s)")
    return w / norm


def _data(x, y, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 2:
        raise ValueError(f"x must be a floating-point tensor of shape (n, d); got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    check_finite("x", x)
    if not torch.is_tensor(y) or y.dtype not in (torch.int64, torch.int32) or y.shape != x.shape[:1]:
        raise ValueError(f"y must be an integer tensor of shape (n,) = ({x.shape[0]},); got "
                         f"{(tuple(y.shape), y.dtype) if torch.is_tensor(y) else type(y).__name__}")
    if y.numel() and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"y must hold class indices in [0, {k - 1}] (one per row of weight); "
                         f"got values in [{int(y.min())}, {int(y.max())}]")
    return x, y


def normalized_logits(weight: torch.Tensor, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    r"""Logits :math:`z = g\,x\,\hat W^\top` of the weight-normalised linear model; scale-invariant in every row.

    Parameters
    ----------
    weight : (..., K, d) tensor, one row per class (leading axes: independent models)
    x : (n, d) tensor
    gain : float > 0, the fixed scale g of the logits (an inverse temperature)

    Returns
    -------
    (..., n, K) tensor

    >>> w = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> normalized_logits(w, torch.tensor([[1.0, 1.0]]), gain=3.0)
    tensor([[3., 3.]])
    """
    gain = check_positive("gain", gain)
    w_hat = normalize(_weights("weight", weight))
    if w_hat.dim() < 2 or x.dim() != 2 or x.shape[-1] != w_hat.shape[-1]:
        raise ValueError(f"weight (..., K, d) and x (n, d) must share d; got {tuple(weight.shape)} and {tuple(x.shape)}")
    return gain * x @ w_hat.transpose(-1, -2)


def normalized_softmax_loss(weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    r"""Mean cross-entropy of the normalised linear model: :math:`\frac1n\sum_i \mathrm{KL}(e_{y_i}\,\|\,\mathrm{softmax}(z_i))`.

    The one-hot label is the reference (first argument of the KL); its entropy is 0, so this is the
    cross-entropy. Returns shape ``weight.shape[:-2]`` (one value per model).

    >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    >>> bool(torch.isclose(normalized_softmax_loss(w, x, y), normalized_softmax_loss(5 * w, x, y)))
    True
    """
    z = normalized_logits(weight, x, gain)
    x, y = _data(x, y, weight.shape[-2])
    logq = torch.log_softmax(z, -1)
    return -logq.gather(-1, y.expand(*z.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)


def normalized_softmax_grad(weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    r"""Gradient of :func:`normalized_softmax_loss` in ``weight``, in closed form.

    .. math::
        \frac{\partial L}{\partial \hat w_k} = \frac{g}{n}\sum_i \big(q_{ik} - [y_i = k]\big)\,x_i, \qquad
        \nabla_{w_k} L = \frac{1}{|w_k|}\big(I - \hat w_k\hat w_k^\top\big)\frac{\partial L}{\partial \hat w_k},

    the projection being what makes :math:`w_k\cdot\nabla_{w_k}L = 0`. Same shape as ``weight``.
    """
    z = normalized_logits(weight, x, gain)
    x, y = _data(x, y, weight.shape[-2])
    q = torch.softmax(z, -1)
    q = q - torch.nn.functional.one_hot(y, weight.shape[-2]).to(q.dtype)
    d_hat = gain * q.transpose(-1, -2) @ x / x.shape[0]                         # (..., K, d)
    norm = weight.norm(dim=-1, keepdim=True)
    w_hat = weight / norm
    return (d_hat - (d_hat * w_hat).sum(-1, keepdim=True) * w_hat) / norm


def radial_component(weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    r""":math:`w\cdot\nabla L(w)` for each vector along the last axis: 0 for a scale-invariant loss (Noether).

    Under gradient flow :math:`\frac{d}{dt}\tfrac12|w|^2 = -w\cdot\nabla L`, so this is minus the rate of the charge.

    >>> radial_component(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 5.0]))
    tensor(0.)
    """
    weight, grad = _weights("weight", weight), _weights("grad", grad)
    if weight.shape != grad.shape:
        raise ValueError(f"weight and grad must have the same shape; got {tuple(weight.shape)} and {tuple(grad.shape)}")
    return (weight * grad).sum(-1)


def norm_step(norm_sq, grad_norm_sq, lr, weight_decay=0.0) -> torch.Tensor:
    r"""The charge after one SGD step, :math:`(1-\eta\lambda)^2|w_t|^2 + \eta^2|\nabla L(w_t)|^2` (exact when
    :math:`w_t\cdot\nabla L(w_t) = 0`).

    >>> norm_step(1.0, 0.25, lr=2.0, weight_decay=0.1)
    tensor(1.6400, dtype=torch.float64)
    """
    lr, wd = _rates(lr, weight_decay)
    r = torch.as_tensor(norm_sq, dtype=torch.float64)
    g = torch.as_tensor(grad_norm_sq, dtype=torch.float64)
    if not (torch.isfinite(r).all() and (r > 0).all()):
        raise ValueError(f"norm_sq must be finite and > 0; got {r.tolist()}")
    if not (torch.isfinite(g).all() and (g >= 0).all()):
        raise ValueError(f"grad_norm_sq must be finite and >= 0; got {g.tolist()}")
    return (1 - lr * wd) ** 2 * r + lr ** 2 * g


def charge_recursion(norm_sq0, unit_grad_sq: torch.Tensor, lr, weight_decay=0.0) -> torch.Tensor:
    r"""The charge's whole trajectory from the unit-sphere gradients alone:
    :math:`r_{t+1} = (1-\eta\lambda)^2 r_t + \eta^2 G_t / r_t`, :math:`r_0` = ``norm_sq0``.

    Parameters
    ----------
    norm_sq0 : (...) initial :math:`|w_0|^2`
    unit_grad_sq : (T, ...) :math:`G_t = |\nabla L(\hat w_t)|^2` along the run
    lr, weight_decay : numbers or tensors broadcasting with ``norm_sq0``

    Returns
    -------
    (T + 1, ...) tensor :math:`r_0, \dots, r_T`.

    >>> charge_recursion(1.0, torch.ones(2), lr=1.0)
    tensor([1.0000, 2.0000, 2.5000], dtype=torch.float64)
    """
    lr, wd = _rates(lr, weight_decay)
    r = torch.as_tensor(norm_sq0, dtype=torch.float64)
    if not (torch.isfinite(r).all() and (r > 0).all()):
        raise ValueError(f"norm_sq0 must be finite and > 0; got {r.tolist()}")
    g = torch.as_tensor(unit_grad_sq, dtype=torch.float64)
    if g.dim() < 1 or not torch.isfinite(g).all() or (g < 0).any():
        raise ValueError(f"unit_grad_sq must be a (T, ...) tensor of finite values >= 0; got shape {tuple(g.shape)}")
    # NumPy's broadcast_shapes: torch's imports torch.fx on its first call (a second)
    shape = np.broadcast_shapes(tuple(r.shape), tuple(g.shape[1:]), tuple(lr.shape), tuple(wd.shape))
    a, e2 = ((1 - lr * wd) ** 2).expand(shape).numpy(), (lr ** 2).expand(shape).numpy()
    gs = g.expand(g.shape[:1] + shape).numpy()
    out = np.empty((g.shape[0] + 1,) + tuple(shape))
    out[0] = r.expand(shape).numpy()
    for t in range(g.shape[0]):                  # NumPy: a fifth of torch's cost per call on these tiny arrays
        out[t + 1] = a * out[t] + e2 * gs[t] / out[t]
    return torch.from_numpy(out)


def equilibrium_norm_sq(lr, weight_decay, unit_grad_sq, exact: bool = True) -> torch.Tensor:
    r"""The fixed point of :func:`charge_recursion` for a constant :math:`G`:
    :math:`|w^*|^2 = \sqrt{\eta G / (\lambda(2-\eta\lambda))}` (``exact``), or the paper's small-step form
    :math:`\sqrt{\eta G/(2\lambda)}`.

    >>> equilibrium_norm_sq(1.0, 0.5, 3.0)
    tensor(2., dtype=torch.float64)
    """
    lr, wd = _rates(lr, weight_decay)
    if (wd <= 0).any():
        raise ValueError(f"weight_decay must be > 0 for an equilibrium (without decay the charge only grows); "
                         f"got {wd.tolist()}")
    g = torch.as_tensor(unit_grad_sq, dtype=torch.float64)
    if not torch.isfinite(g).all() or (g < 0).any():
        raise ValueError(f"unit_grad_sq must be finite and >= 0; got {g.tolist()}")
    denom = wd * (2 - lr * wd) if exact else 2 * wd
    return torch.sqrt(lr * g / denom)


def equilibrium_angle(lr, weight_decay) -> torch.Tensor:
    r"""The angle :math:`\theta^*` the direction turns per step at the fixed point:
    :math:`\tan\theta^* = \sqrt{\eta\lambda(2-\eta\lambda)}/(1-\eta\lambda)`, that is :math:`\cos\theta^* = 1-\eta\lambda`,
    about :math:`\sqrt{2\eta\lambda}`.

    >>> round(float(equilibrium_angle(0.1, 0.005)), 6)
    0.031624
    """
    lr, wd = _rates(lr, weight_decay)
    p = lr * wd
    return torch.atan(torch.sqrt(p * (2 - p)) / (1 - p))


def effective_lr(lr, norm_sq) -> torch.Tensor:
    r"""The step the direction :math:`\hat w` takes per unit of sphere gradient: :math:`\eta/|w|^2`.

    >>> effective_lr(0.5, torch.tensor([1.0, 4.0]))
    tensor([0.5000, 0.1250], dtype=torch.float64)
    """
    lr, _ = _rates(lr, 0.0)
    r = torch.as_tensor(norm_sq, dtype=torch.float64)
    if not (torch.isfinite(r).all() and (r > 0).all()):
        raise ValueError(f"norm_sq must be finite and > 0; got {r.tolist()}")
    return lr / r


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The angle (radians) between the vectors along the last axis of ``a`` and ``b`` (accurate near 0).

    >>> angle_between(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]))
    tensor(0.7854)
    """
    a_hat, b_hat = normalize(a), normalize(b)
    if a_hat.shape != b_hat.shape:
        raise ValueError(f"a and b must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    return 2 * torch.atan2((a_hat - b_hat).norm(dim=-1), (a_hat + b_hat).norm(dim=-1))


def train_normalized_softmax(x: torch.Tensor, y: torch.Tensor, weight0: torch.Tensor, lr, weight_decay=0.0, *,
                             steps: int, batch_size: int, gain: float = 1.0, seed: int = 0,
                             keep_weights: bool = False) -> dict:
    r"""Minibatch SGD with coupled weight decay on :func:`normalized_softmax_loss`, several models side by side.

    :math:`w_{t+1} = (1-\eta\lambda)w_t - \eta\nabla L_{B_t}(w_t)`, with the same minibatch :math:`B_t` (drawn
    without replacement from a ``torch.Generator`` seeded with ``seed``) for every model. Computed in float64.

    Parameters
    ----------
    x, y : (n, d) inputs and (n,) class indices
    weight0 : (C, K, d) initial weights of C models with K classes
    lr, weight_decay : numbers or (C,) tensors, one per model; lr > 0, weight_decay >= 0, lr * weight_decay < 1
    steps, batch_size : int >= 1 (batch_size <= n; batch_size = n is full-batch gradient descent)
    keep_weights : also return every iterate (``steps + 1`` tensors like ``weight0``)

    Returns
    -------
    dict of tensors: ``norm_sq`` (T+1, C, K) the charges :math:`|w_t|^2`; ``grad_sq`` (T, C, K)
    :math:`|\nabla L_{B_t}(w_t)|^2`; ``unit_grad_sq`` (T, C, K) :math:`G_t = |\nabla L_{B_t}(\hat w_t)|^2`;
    ``radial`` (T, C, K) :math:`w_t\cdot\nabla L_{B_t}(w_t)`; ``angle`` (T, C, K) the angle each row turns;
    ``loss`` (T, C) the minibatch loss; ``batches`` (T, B) the minibatch indices; ``weights`` if kept.
    """
    weight0 = _weights("weight0", weight0)
    if weight0.dim() != 3:
        raise ValueError(f"weight0 must have shape (C, K, d); got {tuple(weight0.shape)}")
    c = weight0.shape[0]
    x, y = _data(x, y, weight0.shape[1])
    if x.shape[1] != weight0.shape[2]:
        raise ValueError(f"x (n, d) and weight0 (C, K, d) must share d; got {tuple(x.shape)} and {tuple(weight0.shape)}")
    steps = check_int("steps", steps, low=1)
    batch_size = check_int("batch_size", batch_size, low=1, high=x.shape[0])
    gain = check_real("gain", gain, low=0.0, low_open=True)
    normalize(weight0)                                # raises on a zero row (its direction is undefined)
    lr_t, wd_t = _rates(lr, weight_decay)
    if lr_t.dim() > 1 or wd_t.dim() > 1 or (lr_t.dim() == 1 and lr_t.shape[0] != c) or (wd_t.dim() == 1 and wd_t.shape[0] != c):
        raise ValueError(f"lr and weight_decay must be numbers or ({c},) tensors, one per model; "
                         f"got shapes {tuple(lr_t.shape)} and {tuple(wd_t.shape)}")
    lr_t = lr_t.to(weight0.dtype).expand(c)[:, None, None]
    decay = (1 - lr_t * wd_t.to(weight0.dtype).expand(c)[:, None, None])
    gen = torch.Generator().manual_seed(int(seed))
    n, k = x.shape[0], weight0.shape[1]
    # every step's minibatch at once: the first batch_size entries of a uniform random permutation of 0..n-1
    batches = torch.rand(steps, n, generator=gen, dtype=torch.float64).argsort(1)[:, :batch_size]
    # The loop runs in NumPy float64 (tiny arrays: NumPy's per-call cost is a fifth of torch's); it is the
    # closed form of normalized_softmax_grad, inlined, validated once above.
    xs, onehot = x.detach().double().numpy(), np.eye(k)[y.numpy()]
    lr_a, decay_a = lr_t.double().numpy(), decay.double().numpy()
    w = weight0.detach().double().numpy().copy()
    r = (w * w).sum(-1)
    hist = {key: np.empty((steps,) + r.shape) for key in ("grad_sq", "unit_grad_sq", "radial", "angle")}
    loss = np.empty((steps, c))
    norms = np.empty((steps + 1,) + r.shape)
    norms[0] = r
    kept = np.empty((steps + 1,) + w.shape) if keep_weights else None
    if keep_weights:
        kept[0] = w
    for t, idx in enumerate(batches.numpy()):
        xb, yb = xs[idx], onehot[idx]
        norm = np.sqrt(r)[..., None]
        w_hat = w / norm
        z = gain * xb @ w_hat.transpose(0, 2, 1)                                # (C, B, K) logits
        z = z - z.max(-1, keepdims=True)
        logq = z - np.log(np.exp(z).sum(-1, keepdims=True))
        d_hat = gain * (np.exp(logq) - yb).transpose(0, 2, 1) @ xb / batch_size  # dL/dw_hat, (C, K, d)
        unit = d_hat - (d_hat * w_hat).sum(-1, keepdims=True) * w_hat           # grad L(w_hat): tangent
        g = unit / norm                                                         # grad L(w) = grad L(w_hat) / |w|
        u_sq = (unit * unit).sum(-1)
        hist["unit_grad_sq"][t] = u_sq
        hist["grad_sq"][t] = (g * g).sum(-1)
        hist["radial"][t] = (w * g).sum(-1)
        loss[t] = -(logq * yb).sum(-1).mean(-1)
        # the step is tangent, so the angle it turns w by has tan = lr |g| / ((1 - lr wd) |w|)
        hist["angle"][t] = np.arctan2(lr_a[..., 0] * np.sqrt(u_sq) / r, decay_a[..., 0])
        w = decay_a * w - lr_a * g
        r = (w * w).sum(-1)
        norms[t + 1] = r
        if keep_weights:
            kept[t + 1] = w
    out = {key: torch.from_numpy(v) for key, v in hist.items()}
    out["loss"] = torch.from_numpy(loss)
    out["norm_sq"] = torch.from_numpy(norms)
    out["batches"] = batches
    if keep_weights:
        out["weights"] = torch.from_numpy(kept)
    return out
