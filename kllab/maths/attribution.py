r"""Additive factor attributions, importance distributions, and a KL penalty towards a prior over factors.

A model is *additive* in its factors when :math:`f(x) = b + \sum_j g_j(x_j)`. Its exact (interventional)
Shapley values with the empirical background :math:`\{x^{(n)}\}_{n=1}^N` are then the centred components

.. math::
    \phi_j(x) = g_j(x_j) - \frac1N \sum_{n=1}^N g_j(x^{(n)}_j), \qquad
    \sum_j \phi_j(x) = f(x) - \frac1N\sum_n f(x^{(n)}) \quad\text{(efficiency)},

and for a linear model :math:`g_j(x_j) = w_j x_j`, :math:`\phi_j(x) = w_j\,(x_j - \bar x_j)` (Lundberg and Lee,
2017). If :math:`x_j` is Gaussian with standard deviation :math:`\sigma_j`, the population mean of
:math:`|\phi_j|` is :math:`|w_j|\,\sigma_j\sqrt{2/\pi}`.

The **importance distribution** of a model summarises its attributions as a point on the simplex over the
factors, sharpened or flattened by a temperature :math:`T`:

.. math::
    I_j \;\propto\; \Big(\frac1N \sum_n |\phi_j(x^{(n)})|\Big)^{1/T},
    \qquad \log I = \mathrm{log\_softmax}\big(\log \overline{|\phi|} \,/\, T\big).

Domain knowledge ("health and income are primary, leisure is secondary") is a prior :math:`\pi` on the same
simplex, and training adds :math:`\lambda\,D` between the two (Wu et al., 2024). In kllab's math order the
prior is the reference p and the model's importance the model q:

* ``direction="forward"``: :math:`\mathrm{KL}(\pi \| I)`, zero-avoiding: infinite as soon as a factor the
  prior names gets no importance, which in weight space is a wall at :math:`w_j = 0`;
* ``direction="reverse"``: :math:`\mathrm{KL}(I \| \pi)`, zero-forcing: it penalises importance where the
  prior is small and is finite at :math:`I_j = 0`;
* ``direction="js"``: the Jensen-Shannon divergence, symmetric and bounded by :math:`\log 2`.

The divergences are :mod:`kllab.maths.divergences`'; nothing is renormalised silently.

Conventions: attributions have shape ``(..., N, d)`` (models, examples, factors); importances and priors are
log-probabilities of shape ``(..., d)``. Everything is float64-friendly and differentiable.

References
----------
* X. Wu, L. Li, X. Tao, F. Xing, J. Yuan. *Primary and Secondary Factor Consistency as Domain Knowledge to
  Guide Happiness Computing in Online Assessment.* 2024. arXiv:2402.12398.
* S. M. Lundberg, S.-I. Lee. *A Unified Approach to Interpreting Model Predictions.* NeurIPS 2017.
* R. Agarwal et al. *Neural Additive Models: Interpretable Machine Learning with Neural Nets.* NeurIPS 2021.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from . import divergences
from .validation import check_choice, check_finite, check_int, check_log_probs, check_positive, check_real

__all__ = ["PENALTY_DIRECTIONS", "linear_attributions", "additive_attributions", "exact_shapley", "AdditiveMLP",
           "mean_abs_attribution", "gaussian_mean_abs_attribution", "importance", "importance_from_mean_abs",
           "importance_penalty"]

PENALTY_DIRECTIONS = ("forward", "reverse", "js")


def _tensor(name: str, x, min_ndim: int) -> torch.Tensor:
    if not torch.is_tensor(x):
        x = torch.as_tensor(x, dtype=torch.float64)
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} axes; got shape {tuple(x.shape)}")
    return x


def linear_attributions(x, weight, mean=None) -> torch.Tensor:
    r"""Exact Shapley values of a linear model :math:`f(x) = b + w^\top x`: :math:`\phi_j = w_j (x_j - \mu_j)`.

    Parameters
    ----------
    x : Tensor, shape (..., N, d)
        The examples (and, unless ``mean`` is given, the background whose mean is :math:`\mu`).
    weight : Tensor, shape (..., d)
        The weights, one row per model (broadcast against ``x``'s leading axes).
    mean : Tensor, shape (..., d), optional
        The background mean :math:`\mu`; by default the mean of ``x`` over its examples.

    Returns
    -------
    Tensor, shape (..., N, d)

    >>> x = torch.tensor([[1.0, 2.0], [3.0, 0.0]], dtype=torch.float64)
    >>> linear_attributions(x, torch.tensor([2.0, -1.0], dtype=torch.float64))
    tensor([[-2., -1.],
            [ 2.,  1.]], dtype=torch.float64)
    """
    x = _tensor("x", x, 2)
    weight = _tensor("weight", weight, 1)
    check_finite("x", x)
    check_finite("weight", weight)
    if weight.shape[-1] != x.shape[-1]:
        raise ValueError(f"weight must have one entry per factor, {x.shape[-1]} (the last axis of x); "
                         f"got shape {tuple(weight.shape)}")
    if mean is None:
        mean = x.mean(-2)
    else:
        mean = _tensor("mean", mean, 1)
        check_finite("mean", mean)
        if mean.shape[-1] != x.shape[-1]:
            raise ValueError(f"mean must have one entry per factor, {x.shape[-1]}; got shape {tuple(mean.shape)}")
    return weight.unsqueeze(-2) * (x - mean.unsqueeze(-2))


def additive_attributions(components) -> torch.Tensor:
    r"""Exact Shapley values of an additive model from its components :math:`g_j(x^{(n)}_j)`: centre each column.

    .. math::
        \phi_j(x^{(n)}) = g_j(x^{(n)}_j) - \frac1N \sum_{m} g_j(x^{(m)}_j)

    (the background is the same N examples). Efficiency, :math:`\sum_j \phi_j = f - \bar f`, holds exactly.

    Parameters
    ----------
    components : Tensor, shape (..., N, d)

    Returns
    -------
    Tensor, shape (..., N, d)

    >>> g = torch.tensor([[1.0, 5.0], [3.0, 5.0]], dtype=torch.float64)
    >>> additive_attributions(g)
    tensor([[-1.,  0.],
            [ 1.,  0.]], dtype=torch.float64)
    """
    components = _tensor("components", components, 2)
    check_finite("components", components)
    return components - components.mean(-2, keepdim=True)


def exact_shapley(model: Callable[[torch.Tensor], torch.Tensor], x, background) -> torch.Tensor:
    r"""Interventional Shapley values of any model by enumerating every coalition (2^d evaluations per example).

    .. math::
        \phi_j(x) = \sum_{S \subseteq [d]\setminus\{j\}} \frac{|S|!\,(d-|S|-1)!}{d!}\,\big[v(S\cup\{j\}) - v(S)\big],
        \qquad v(S) = \frac1M \sum_{m=1}^M f\big(x_S,\ z^{(m)}_{\bar S}\big),

    with :math:`z^{(m)}` the background rows. For an additive model this reduces to
    :func:`additive_attributions`; it is the model-agnostic reference that reduction is tested against.

    Parameters
    ----------
    model : callable
        Maps a tensor of shape (K, d) to predictions of shape (K,).
    x : Tensor, shape (N, d)
    background : Tensor, shape (M, d)

    Returns
    -------
    Tensor, shape (N, d)

    >>> x = torch.tensor([[1.0, 2.0]], dtype=torch.float64); bg = torch.zeros(3, 2, dtype=torch.float64)
    >>> exact_shapley(lambda z: z[:, 0] * z[:, 1], x, bg)   # the product splits its value evenly
    tensor([[1., 1.]], dtype=torch.float64)
    """
    x = _tensor("x", x, 2)
    background = _tensor("background", background, 2)
    if x.ndim != 2 or background.ndim != 2 or x.shape[1] != background.shape[1]:
        raise ValueError(f"x and background must have shapes (N, d) and (M, d) with the same d; "
                         f"got {tuple(x.shape)} and {tuple(background.shape)}")
    d = check_int("number of factors d", x.shape[1], low=1, high=16)
    n, m = x.shape[0], background.shape[0]
    values = {}
    for size in range(d + 1):
        for subset in itertools.combinations(range(d), size):
            mask = torch.zeros(d, dtype=torch.bool)
            mask[list(subset)] = True
            mixed = torch.where(mask, x[:, None, :], background[None, :, :]).reshape(n * m, d)
            values[subset] = model(mixed).reshape(n, m).mean(1)
    phi = torch.zeros(n, d, dtype=x.dtype)
    for j in range(d):
        others = [k for k in range(d) if k != j]
        for size in range(d):
            weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
            for subset in itertools.combinations(others, size):
                with_j = tuple(sorted(subset + (j,)))
                phi[:, j] += weight * (values[with_j] - values[subset])
    return phi


class AdditiveMLP(nn.Module):
    r"""R independent additive MLPs over d factors: one 1 → width → 1 tanh network per factor and per model.

    .. math::
        f_r(x) = b_r + \sum_{j=1}^d g_{rj}(x_j), \qquad
        g_{rj}(t) = \sum_{h=1}^{H} a_{rjh} \tanh(u_{rjh}\, t + c_{rjh}),

    a neural additive model (Agarwal et al., 2021) whose exact Shapley values are its centred components
    (:func:`additive_attributions`). Initialised like ``torch.nn.Linear`` (uniform on :math:`\pm 1/\sqrt{n_{in}}`),
    model r from ``seeds[r]`` alone.

    Parameters
    ----------
    n_factors : int ≥ 1
    width : int ≥ 1
        Hidden units H of each per-factor network.
    seeds : sequence of int
        One model per seed.

    ``forward(x)`` takes x of shape (N, d) (shared by the models) or (R, N, d) and returns the components
    :math:`g_{rj}(x_{nj})`, shape (R, N, d); :meth:`predict` returns :math:`f`, shape (R, N).

    >>> net = AdditiveMLP(3, width=4, seeds=[0, 1])
    >>> x = torch.randn(5, 3, dtype=torch.float64)
    >>> net(x).shape, net.predict(x).shape
    (torch.Size([2, 5, 3]), torch.Size([2, 5]))
    """

    def __init__(self, n_factors: int, width: int, seeds: Sequence[int], *, dtype: torch.dtype = torch.float64):
        super().__init__()
        d = check_int("n_factors", n_factors, low=1)
        self.width = h = check_int("width", width, low=1)
        seeds = [check_int("seeds", s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must name at least one model; got an empty sequence")
        self.seeds = seeds
        u, c, a = [], [], []
        for s in seeds:
            g = torch.Generator().manual_seed(s)
            u.append(2 * torch.rand(d, h, generator=g, dtype=dtype) - 1)            # fan-in 1
            c.append(2 * torch.rand(d, h, generator=g, dtype=dtype) - 1)
            a.append((2 * torch.rand(d, h, generator=g, dtype=dtype) - 1) / math.sqrt(h))
        self.u, self.c, self.a = (nn.Parameter(torch.stack(t)) for t in (u, c, a))
        self.bias = nn.Parameter(torch.zeros(len(seeds), dtype=dtype))

    @property
    def n_models(self) -> int:
        return len(self.seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, d = self.u.shape[0], self.u.shape[1]
        if not (x.ndim == 2 and x.shape[1] == d) and not (x.ndim == 3 and x.shape[0] == r and x.shape[2] == d):
            raise ValueError(f"x must have shape (N, {d}) or ({r}, N, {d}); got {tuple(x.shape)}")
        if x.ndim == 2:
            x = x.unsqueeze(0)
        hidden = torch.tanh(x.unsqueeze(-1) * self.u.unsqueeze(1) + self.c.unsqueeze(1))   # (R, N, d, H)
        return (hidden * self.a.unsqueeze(1)).sum(-1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The models' predictions, shape (R, N)."""
        return self(x).sum(-1) + self.bias.unsqueeze(-1)


def mean_abs_attribution(phi) -> torch.Tensor:
    r"""The mean absolute attribution of each factor, :math:`\frac1N\sum_n |\phi_j(x^{(n)})|`, shape (..., d)."""
    phi = _tensor("phi", phi, 2)
    check_finite("phi", phi)
    return phi.abs().mean(-2)


def gaussian_mean_abs_attribution(weight, sd) -> torch.Tensor:
    r"""Population :math:`\mathbb{E}|\phi_j|` of a linear model on Gaussian factors: :math:`|w_j|\,\sigma_j\sqrt{2/\pi}`.

    >>> round(gaussian_mean_abs_attribution(torch.tensor([2.0]), torch.tensor([1.0])).item(), 6)   # 2 sqrt(2 / pi)
    1.595769
    """
    weight, sd = _tensor("weight", weight, 1), _tensor("sd", sd, 1)
    if (sd < 0).any():
        raise ValueError(f"sd must be >= 0; got min {sd.min().item():.4g}")
    return weight.abs() * sd * math.sqrt(2 / math.pi)


def importance(phi, temperature: float = 1.0, *, eps: float = 0.0, validate: bool = True) -> torch.Tensor:
    r"""The log importance distribution :math:`\log I` of attributions ``phi``: :math:`I_j \propto (\overline{|\phi_j|} + \epsilon)^{1/T}`.

    .. math::
        \log I = \mathrm{log\_softmax}\Big(\frac{\log(\overline{|\phi|} + \epsilon)}{T}\Big)

    T = 1 gives the plain shares of mean absolute attribution; T → 0 concentrates I on the top factor,
    T → ∞ flattens it towards uniform. A factor with zero attribution gets :math:`\log I_j = -\infty` when
    ``eps`` is 0; a small ``eps`` keeps the logarithm (and a forward-KL penalty) finite during training.

    Parameters
    ----------
    phi : Tensor, shape (..., N, d)
        Attributions (one row per example, one column per factor).
    temperature : float > 0
    eps : float ≥ 0
    validate : bool
        Check ``phi`` for NaN and infinities (turn off only in inner loops).

    Returns
    -------
    Tensor, shape (..., d)
        Log-probabilities over the factors.

    >>> phi = torch.tensor([[3.0, -1.0], [-3.0, 1.0]], dtype=torch.float64)
    >>> importance(phi).exp()                      # mean |phi| = (3, 1)
    tensor([0.7500, 0.2500], dtype=torch.float64)
    >>> importance(phi, temperature=0.5).exp()     # (9, 1) / 10
    tensor([0.9000, 0.1000], dtype=torch.float64)
    """
    phi = _tensor("phi", phi, 2)
    if validate:
        check_finite("phi", phi)
    return importance_from_mean_abs(phi.abs().mean(-2), temperature, eps=eps, validate=validate)


def importance_from_mean_abs(mean_abs, temperature: float = 1.0, *, eps: float = 0.0,
                             validate: bool = True) -> torch.Tensor:
    r""":func:`importance` from the mean absolute attributions :math:`\overline{|\phi_j|}`, shape (..., d).

    For a linear model :math:`\overline{|\phi_j|} = |w_j|\,\overline{|x_j - \bar x_j|}`, so a training loop can
    skip the (N, d) attributions and pass ``weight.abs() * mean_abs_deviation``.

    >>> importance_from_mean_abs(torch.tensor([3.0, 1.0], dtype=torch.float64)).exp()
    tensor([0.7500, 0.2500], dtype=torch.float64)
    """
    temperature = check_positive("temperature", temperature)
    eps = check_real("eps", eps, low=0.0)
    mean_abs = _tensor("mean_abs", mean_abs, 1)
    if validate:
        check_finite("mean_abs", mean_abs)
        if (mean_abs < 0).any():
            raise ValueError(f"mean_abs must be >= 0 (a mean of absolute values); got min {mean_abs.min().item():.4g}")
    scores = torch.log(mean_abs + eps)
    if validate and (scores == -math.inf).all(-1).any():
        raise ValueError("mean_abs must give some factor a nonzero attribution (the importance of an all-zero model is "
                         "undefined); got all-zero attributions in a model: pass eps > 0")
    return torch.log_softmax(scores / temperature, dim=-1)


def importance_penalty(log_importance, log_prior, direction: str = "reverse", *, validate: bool = True) -> torch.Tensor:
    r"""Divergence between an importance distribution I and a prior π over the factors; the prior is the reference.

    .. math::
        \text{forward: } \mathrm{KL}(\pi \| I) = \sum_j \pi_j \log\frac{\pi_j}{I_j}, \qquad
        \text{reverse: } \mathrm{KL}(I \| \pi) = \sum_j I_j \log\frac{I_j}{\pi_j}, \qquad
        \text{js: } \mathrm{JS}(\pi, I).

    Forward is zero-avoiding (``inf`` when a factor with :math:`\pi_j > 0` has :math:`I_j = 0`); reverse is
    zero-forcing (finite there, large where I puts mass the prior does not).

    Parameters
    ----------
    log_importance : Tensor, shape (..., d)
        Log importances of one or more models (:func:`importance`).
    log_prior : Tensor, shape (d,) or (..., d)
        Log prior, broadcast against ``log_importance``.
    direction : {"forward", "reverse", "js"}
    validate : bool
        Check both arguments are log-probabilities (:func:`kllab.maths.validation.check_log_probs`).

    Returns
    -------
    Tensor, shape log_importance.shape[:-1]

    >>> li = torch.tensor([0.5, 0.5], dtype=torch.float64).log(); lp = torch.tensor([0.9, 0.1], dtype=torch.float64).log()
    >>> [round(importance_penalty(li, lp, d).item(), 4) for d in PENALTY_DIRECTIONS]
    [0.3681, 0.5108, 0.1017]
    """
    check_choice("direction", direction, PENALTY_DIRECTIONS)
    log_importance = _tensor("log_importance", log_importance, 1)
    log_prior = _tensor("log_prior", log_prior, 1)
    if validate:
        check_log_probs("log_importance", log_importance)
        check_log_probs("log_prior", log_prior)
    if log_prior.shape[-1] != log_importance.shape[-1]:
        raise ValueError(f"log_prior must have one entry per factor, {log_importance.shape[-1]}; "
                         f"got shape {tuple(log_prior.shape)}")
    log_prior = log_prior.expand_as(log_importance)
    if direction == "js":
        return divergences.js(log_prior, log_importance, validate=False)
    return divergences.kl(log_prior, log_importance, direction=direction, validate=False)
