r"""Optimal transport: Sinkhorn (entropic OT), its debiased divergence, exact OT, and 1-D closed forms.

Math order, as everywhere in kllab: ``f(logp, logq, ...)`` compares the reference p (teacher, target,
data) with the model q (student, generator). Distributions are log-probabilities on the last axis
(``-inf`` is a legal log-probability), placed at points whose pairwise ground cost is a matrix
:math:`C_{ij} = c(x_i, y_j)`, ``cost[..., i, j]`` with i indexing p and j indexing q. Results are
per example (no hidden reductions).

* **Exact OT** (:func:`exact_ot`, a wrapper of POT's ``ot.emd2``) and, on the line, its closed forms:
  :func:`w1_1d` from the distribution functions, :func:`w2_to_gaussian` from the quantile functions.
* **Entropic OT** (:func:`sinkhorn`): :math:`\mathrm{OT}_\varepsilon(p, q) = \min_{P \in U(p, q)}
  \langle P, C\rangle + \varepsilon\,\mathrm{KL}(P \| p \otimes q)`, solved by Sinkhorn's iterations on a
  stabilised kernel (potentials absorbed, ε-scaling from a cold start), in the log domain if that ever fails:
  stable for any ε. Its value differentiates by the envelope theorem (gradient
  :math:`f` in p, :math:`g` in q, :math:`P` in the cost), so training never backpropagates through
  the iterations. POT's ``ot.sinkhorn2(..., method="sinkhorn_log")`` solves the same problem one pair
  at a time; this one is batched over leading axes and takes log-probabilities. The tests check the two
  agree.
* **The Sinkhorn divergence** (:func:`sinkhorn_divergence`, and :class:`SinkhornDivergence`, the same as a
  warm-started loss for training loops), debiased:
  :math:`S_\varepsilon(p, q) = \mathrm{OT}_\varepsilon(p, q) - \tfrac12\mathrm{OT}_\varepsilon(p, p) -
  \tfrac12\mathrm{OT}_\varepsilon(q, q)`, with :math:`S_\varepsilon(p, p) = 0`, tending to exact OT as
  ε → 0 and to half an MMD as ε → ∞.
* **Gaussians** in closed form: :func:`w2_gaussian` (Bures), :func:`entropic_ot_gaussian`,
  :func:`sinkhorn_divergence_gaussian`, and the W2 projection of a 1-D mixture onto the Gaussians,
  :func:`w2_gaussian_projection` (quantile matching).
* **A generator trained by OT**: :func:`train_affine_ot` fits :math:`x = \mu + \sigma z` to a teacher by
  the Sinkhorn divergence, and/or a KL term: reverse (the DMD gradient of :mod:`kllab.maths.matching`) or
  forward (maximum likelihood on the teacher's points); :func:`monge_map_1d` and :func:`barycentric_map` say
  where OT pushes each sample.

References: M. Cuturi, *Sinkhorn Distances: Lightspeed Computation of Optimal Transport*, NeurIPS 2013,
arXiv:1306.0895; G. Peyré, M. Cuturi, *Computational Optimal Transport*, 2019, arXiv:1803.00567;
J. Feydy et al., *Interpolating between Optimal Transport and MMD using Sinkhorn Divergences*, AISTATS
2019, arXiv:1810.08278; H. Janati et al., *Entropic Optimal Transport between Unbalanced Gaussian
Measures has a Closed Form*, NeurIPS 2020, arXiv:2006.02572.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import ot
import torch

from .distributions import GaussianMixture1D
from .validation import check_choice, check_int, check_log_probs, check_positive, check_real

__all__ = ["cost_matrix", "SinkhornResult", "sinkhorn", "entropic_ot", "sinkhorn_divergence", "SinkhornDivergence",
           "exact_ot",
           "w1_1d", "w2_gaussian", "entropic_ot_gaussian", "sinkhorn_divergence_gaussian", "w2_to_gaussian",
           "w2_gaussian_projection", "monge_map_1d", "barycentric_map", "quantile_points", "AffineRun",
           "train_affine_ot"]

D64 = torch.float64


def _as64(x) -> torch.Tensor:
    return x if torch.is_tensor(x) and x.dtype == D64 else torch.as_tensor(x, dtype=D64)


def cost_matrix(x, y, p: float = 2.0) -> torch.Tensor:
    r"""Ground cost :math:`C_{ij} = \|x_i - y_j\|^p` between two point sets (differentiable).

    Parameters
    ----------
    x : Tensor, shape (n,) or (n, d)
        Points of the reference p (1-D positions, or d-dimensional points).
    y : Tensor, shape (m,) or (m, d)
    p : float ≥ 1
        The exponent: 1 gives the W1 cost, 2 the squared (W2) cost.

    Returns
    -------
    Tensor, shape (n, m)

    >>> cost_matrix(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 3.0]), p=1).tolist()
    [[0.0, 3.0], [1.0, 2.0]]
    """
    p = check_real("p", p, low=1.0)
    x, y = _as64(x), _as64(y)
    if x.ndim == 1 and y.ndim == 1:
        return (x[:, None] - y[None, :]).abs() ** p
    if x.ndim == 2 and y.ndim == 2 and x.shape[1] == y.shape[1]:
        sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        return sq if p == 2.0 else sq.clamp_min(0.0).sqrt() ** p
    raise ValueError(f"x and y must both be (n,) or both (n, d) with the same d; got {tuple(x.shape)} and "
                     f"{tuple(y.shape)}")


def _check_problem(logp, logq, cost, eps, validate: bool):
    logp, logq, cost = _as64(logp), _as64(logq), _as64(cost)
    eps = check_positive("eps", eps)
    if validate:
        check_log_probs("logp", logp.detach())
        check_log_probs("logq", logq.detach())
        if cost.ndim < 2 or cost.shape[-2:] != (logp.shape[-1], logq.shape[-1]):
            raise ValueError(f"cost must have shape (..., {logp.shape[-1]}, {logq.shape[-1]}) (one row per outcome "
                             f"of p, one column per outcome of q); got {tuple(cost.shape)}")
        if torch.isnan(cost).any() or torch.isinf(cost).any():
            raise ValueError("cost must be finite; got NaN or inf entries")
    return logp, logq, cost, eps


def _softmin(logw: torch.Tensor, h: torch.Tensor, cost: torch.Tensor, eps: float, dim: int) -> torch.Tensor:
    """-eps log sum_k w_k exp((h_k - C)/eps) along ``dim`` of the cost (the soft c-transform)."""
    if dim == -1:
        return -eps * torch.logsumexp(logw[..., None, :] + (h[..., None, :] - cost) / eps, dim=-1)
    return -eps * torch.logsumexp(logw[..., :, None] + (h[..., :, None] - cost) / eps, dim=-2)


def _row_error(logp, logq, cost, f, g, eps) -> torch.Tensor:
    """L1 error of the plan's row sums against p (the columns are exact after a g update), per example."""
    rows = torch.logsumexp(logq[..., None, :] + (f[..., :, None] + g[..., None, :] - cost) / eps, dim=-1)
    return (logp.exp() * ((rows).exp() - 1.0).abs()).sum(-1)


def _anneal(cost: torch.Tensor, eps: float) -> list[float]:
    """ε-scaling schedule for a cold start: halve from the largest cost down to ε (one iteration each)."""
    top = float(cost.detach().max())
    out = []
    while top > 2.0 * eps:
        out.append(top)
        top *= 0.5
    return out


def _mv(kernel: torch.Tensor, v: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    k = kernel.transpose(-1, -2) if transpose else kernel
    return (k @ v[..., None])[..., 0]


_ABSORB = 30.0
"""Largest |log| of a scaling before it is absorbed into the potentials (and the kernel recomputed)."""


def _solve_stabilised(logp, logq, cost, eps, g, tol, max_iter, check_every):
    """Sinkhorn's iterations on a stabilised kernel (Schmitzer, 2019), from the potential g.

    With potentials (f, g) absorbed into K_ij = exp((f_i + g_j - C_ij) / eps), the iterations are matrix-vector
    products on scalings (a, b): a = 1 / K(q b), b = 1 / K^T(p a), and the potentials are f + eps log a,
    g + eps log b. When a scaling grows large it is absorbed and the kernel recomputed, so that nothing
    overflows; far-off entries of K underflow to 0, which only drops mass below 1e-300.
    """
    p, q = logp.exp(), logq.exp()
    f = _softmin(logq, g, cost, eps, dim=-1)
    kernel = torch.exp((f[..., :, None] + g[..., None, :] - cost) / eps)
    b = torch.ones_like(g)
    err, done = math.inf, 0
    while done < max_iter:
        a = 1.0 / _mv(kernel, q * b)
        b = 1.0 / _mv(kernel, p * a, transpose=True)
        done += 1
        last = done == max_iter
        if tol is not None and (done % check_every == 0 or last):
            err = float((p * (a * _mv(kernel, q * b) - 1.0).abs()).sum(-1).max())
            if not math.isfinite(err) or err < tol:
                break
        if done % check_every == 0 and not last:
            big = max(float(a.log().abs().max()), float(b.log().abs().max()))
            if not math.isfinite(big):
                return f, g, done, math.inf
            if big > _ABSORB:
                f, g = f + eps * a.log(), g + eps * b.log()
                kernel = torch.exp((f[..., :, None] + g[..., None, :] - cost) / eps)
                b = torch.ones_like(b)
    if tol is None:
        err = float((p * (a * _mv(kernel, q * b) - 1.0).abs()).sum(-1).max())
    return f + eps * a.log(), g + eps * b.log(), done, err


def _solve(logp, logq, cost, eps, g=None, tol=1e-9, max_iter=100_000, check_every=5):
    """Sinkhorn on detached inputs. Returns f, g, iterations, max row error.

    A cold start (``g`` None) first runs one iteration at each ε of a halving schedule from the largest
    cost down to ε (ε-scaling), which shortens the run a lot for small ε; ``tol=None`` runs exactly
    ``max_iter`` iterations at ε (a fixed budget, for warm-started training loops). The iterations run on
    on a stabilised kernel (matrix-vector products), or in the log domain if that ever fails.
    """
    batch = torch.broadcast_shapes(logp.shape[:-1], logq.shape[:-1], cost.shape[:-2])
    it = 0
    if g is None:
        g = torch.zeros(*batch, logq.shape[-1], dtype=D64)
        for e in _anneal(cost, eps):
            f = _softmin(logq, g, cost, e, dim=-1)
            g = _softmin(logp, f, cost, e, dim=-2)
            it += 1
    f, g_k, done, err = _solve_stabilised(logp, logq, cost, eps, g, tol, max_iter, check_every)
    if math.isfinite(err) and torch.isfinite(f).all() and torch.isfinite(g_k).all():
        return f, g_k, it + done, err
    err, done = math.inf, 0
    while done < max_iter:
        f = _softmin(logq, g, cost, eps, dim=-1)
        g = _softmin(logp, f, cost, eps, dim=-2)
        it, done = it + 1, done + 1
        if tol is not None and (done % check_every == 0 or done == max_iter):
            err = float(_row_error(logp, logq, cost, f, g, eps).max())
            if err < tol:
                break
    if tol is None:
        err = float(_row_error(logp, logq, cost, f, g, eps).max())
    return f, g, it, err


def _solve_symmetric(logp, cost, eps, f=None, tol=1e-9, max_iter=100_000, check_every=5):
    """Symmetric Sinkhorn for OT_eps(p, p): the averaged fixed point f = T(f), ε-scaled from a cold start."""
    it = 0
    if f is None:
        f = torch.zeros_like(logp)
        for e in _anneal(cost, eps):
            f = 0.5 * (f + _softmin(logp, f, cost, e, dim=-1))
            it += 1
    # Stabilised kernel: K_ij = exp((f_i + f_j - C_ij) / eps), scaling a with f + eps log a the potential.
    p = logp.exp()
    kernel = torch.exp((f[..., :, None] + f[..., None, :] - cost) / eps)
    a, err, done, ok = torch.ones_like(f), math.inf, 0, True
    while done < max_iter:
        t = 1.0 / (a * _mv(kernel, p * a))                    # e^{(T(f') - f')/eps}, f' = f + eps log a
        done += 1
        last = done == max_iter
        if tol is not None and (done % check_every == 0 or last):
            err = float((p * (1.0 / t - 1.0).abs()).sum(-1).max())
            if not math.isfinite(err):
                ok = False
                break
            if err < tol:
                a = a * t
                break
        a = a * t.sqrt()                                       # f' <- (f' + T(f')) / 2
        if done % check_every == 0 and not last:
            big = float(a.log().abs().max())
            if not math.isfinite(big):
                ok = False
                break
            if big > _ABSORB:
                f = f + eps * a.log()
                kernel = torch.exp((f[..., :, None] + f[..., None, :] - cost) / eps)
                a = torch.ones_like(a)
    if ok:
        if tol is None:
            err = float((p * (a * _mv(kernel, p * a) - 1.0).abs()).sum(-1).max())
        f_s = f + eps * a.log()
        if math.isfinite(err) and torch.isfinite(f_s).all():
            return f_s, it + done, err
    err, done = math.inf, 0
    while done < max_iter:
        t = _softmin(logp, f, cost, eps, dim=-1)
        it, done = it + 1, done + 1
        if tol is not None and (done % check_every == 0 or done == max_iter):
            # Row sums of the plan are p_i exp((f_i - T(f)_i) / eps).
            err = float((logp.exp() * (((f - t) / eps).exp() - 1.0).abs()).sum(-1).max())
            if err < tol:
                return t, it, err
        f = 0.5 * (f + t)
    return f, it, err


@dataclass
class SinkhornResult:
    r"""Result of :func:`sinkhorn`.

    Attributes
    ----------
    value : Tensor, shape (...)
        :math:`\mathrm{OT}_\varepsilon(p, q) = \langle f, p\rangle + \langle g, q\rangle`; differentiable
        in ``logp``, ``logq`` and ``cost`` by the envelope theorem.
    transport_cost : Tensor, shape (...)
        :math:`\langle P_\varepsilon, C\rangle`, the cost of the entropic plan alone (Cuturi's "Sinkhorn
        distance", what ``ot.sinkhorn2`` returns); detached.
    f, g : Tensor, shapes (..., n) and (..., m)
        The dual potentials (detached).
    log_plan : Tensor, shape (..., n, m)
        :math:`\log P_{ij} = \log p_i + \log q_j + (f_i + g_j - C_{ij})/\varepsilon` (detached).
    iterations : int
    marginal_error : float
        Largest L1 error of the plan's row marginal against p over the batch (the columns are exact).
    tol : float
        The tolerance the solver was given.
    """

    value: torch.Tensor
    transport_cost: torch.Tensor
    f: torch.Tensor = field(repr=False)
    g: torch.Tensor = field(repr=False)
    log_plan: torch.Tensor = field(repr=False)
    iterations: int = 0
    marginal_error: float = math.inf
    tol: float = 1e-9

    @property
    def plan(self) -> torch.Tensor:
        """The entropic plan :math:`P_\\varepsilon`, shape (..., n, m)."""
        return self.log_plan.exp()

    @property
    def converged(self) -> bool:
        """Whether the marginals met the tolerance given to :func:`sinkhorn`."""
        return bool(self.marginal_error < self.tol)


def sinkhorn(logp, logq, cost, eps: float, *, tol: float = 1e-9, max_iter: int = 10_000,
             init: tuple[torch.Tensor, torch.Tensor] | None = None, validate: bool = True) -> SinkhornResult:
    r"""Entropic optimal transport between p (the reference) and q, by log-domain Sinkhorn iterations.

    .. math::
        \mathrm{OT}_\varepsilon(p, q) = \min_{P \ge 0,\ P\mathbf 1 = p,\ P^\top\mathbf 1 = q}
        \langle P, C\rangle + \varepsilon\, \mathrm{KL}(P \,\|\, p \otimes q)
        = \max_{f, g}\ \langle f, p\rangle + \langle g, q\rangle \quad\text{(at the fixed point)}

    with the alternating soft c-transforms (the Sinkhorn iterations, written in the log domain so
    that any ε is safe)

    .. math::
        f_i \leftarrow -\varepsilon \log \sum_j q_j\, e^{(g_j - C_{ij})/\varepsilon}, \qquad
        g_j \leftarrow -\varepsilon \log \sum_i p_i\, e^{(f_i - C_{ij})/\varepsilon},

    and the plan :math:`P_{ij} = p_i q_j e^{(f_i + g_j - C_{ij})/\varepsilon}`. As ε → 0 the value and
    :math:`\langle P_\varepsilon, C\rangle` tend to the exact OT cost (:func:`exact_ot`); the kernel
    :math:`e^{-C/\varepsilon}` is a Gibbs kernel with temperature ε.

    Parameters
    ----------
    logp : Tensor, shape (..., n)
        Log-probabilities of the reference p (teacher, target); ``-inf`` allowed.
    logq : Tensor, shape (..., m)
        Log-probabilities of the model q (student, generator).
    cost : Tensor, shape (n, m) or (..., n, m)
        Ground cost, e.g. :func:`cost_matrix`.
    eps : float > 0
        Entropic regularisation ε, in the units of the cost.
    tol : float
        Stop when the L1 error of the plan's row marginal is below ``tol`` (columns are exact).
    max_iter : int
    init : (f, g), optional
        Warm start from earlier potentials (e.g. the previous training step's).
    validate : bool
        Check normalisation, shapes and finiteness (turn off in inner loops).

    Returns
    -------
    SinkhornResult
        ``value`` (differentiable), ``transport_cost``, potentials, plan, iterations, marginal error.

    >>> import ot
    >>> x = torch.linspace(0, 1, 5, dtype=torch.float64)
    >>> p, q = torch.tensor([.4, .3, .2, .1, 0.]), torch.tensor([0., .1, .2, .3, .4])
    >>> r = sinkhorn(p.double().log(), q.double().log(), cost_matrix(x, x, p=1), eps=0.05)
    >>> pot = ot.sinkhorn2(p.double(), q.double(), cost_matrix(x, x, p=1), 0.05, method="sinkhorn_log")
    >>> bool(abs(r.transport_cost - pot) < 1e-8), r.marginal_error < 1e-9
    (True, True)
    """
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, low=1)
    logp, logq, cost, eps = _check_problem(logp, logq, cost, eps, validate)
    lp, lq, c = logp.detach(), logq.detach(), cost.detach()
    g0 = None if init is None else init[1].detach()
    with torch.no_grad():
        f, g, it, err = _solve(lp, lq, c, eps, g0, tol=tol, max_iter=max_iter)
        log_plan = lp[..., :, None] + lq[..., None, :] + (f[..., :, None] + g[..., None, :] - c) / eps
        transport_cost = (log_plan.exp() * c).sum((-2, -1))
    # Envelope theorem: d value / d p = f, d value / d q = g, d value / d C = P. One soft c-transform with
    # the cost attached carries the cost's gradient (it returns f itself at the fixed point).
    f_c = _softmin(lq, g, cost, eps, dim=-1) if cost.requires_grad else f
    value = (torch.where(logp > -math.inf, logp.exp() * f_c, torch.zeros((), dtype=D64))).sum(-1) \
        + (torch.where(logq > -math.inf, logq.exp() * g, torch.zeros((), dtype=D64))).sum(-1)
    return SinkhornResult(value, transport_cost, f, g, log_plan, it, err, tol)


def entropic_ot(logp, logq, cost, eps: float, **kwargs) -> torch.Tensor:
    r"""The entropic OT value :math:`\mathrm{OT}_\varepsilon(p, q)` alone (see :func:`sinkhorn`); p is the reference.

    Differentiable in ``logp``, ``logq`` and ``cost`` by the envelope theorem.

    Returns
    -------
    Tensor, shape (...)

    >>> x = torch.linspace(0, 1, 3, dtype=torch.float64)
    >>> u = torch.full((3,), 1 / 3, dtype=torch.float64).log()
    >>> v = entropic_ot(u, u, cost_matrix(x, x), 0.01)      # the identity plan, at cost eps KL = eps log 3
    >>> round(v.item() / 0.01, 6) == round(math.log(3), 6)
    True
    """
    return sinkhorn(logp, logq, cost, eps, **kwargs).value


def _self_ot(logp, cost, eps, tol, max_iter, init=None):
    """OT_eps(p, p) with its envelope gradient (2 f in p, P in the cost); and the potential."""
    with torch.no_grad():
        f, _, _ = _solve_symmetric(logp.detach(), cost.detach(), eps, init, tol=tol, max_iter=max_iter)
    f_c = _softmin(logp.detach(), f, cost, eps, dim=-1) if cost.requires_grad else f
    w = torch.where(logp > -math.inf, logp.exp(), torch.zeros((), dtype=D64))
    return (w * f_c).sum(-1) + (w * f).sum(-1), f


def sinkhorn_divergence(logp, logq, cost, eps: float, *, cost_pp=None, cost_qq=None, tol: float = 1e-9,
                        max_iter: int = 10_000, validate: bool = True) -> torch.Tensor:
    r"""Debiased Sinkhorn divergence; ``logp`` is the reference p (teacher, target), ``logq`` the model q.

    .. math::
        S_\varepsilon(p, q) = \mathrm{OT}_\varepsilon(p, q) - \tfrac12 \mathrm{OT}_\varepsilon(p, p)
        - \tfrac12 \mathrm{OT}_\varepsilon(q, q)

    For a cost :math:`C = c(x, y)` with :math:`e^{-c/\varepsilon}` a positive-definite kernel (|x − y| and
    |x − y|² are), :math:`S_\varepsilon \ge 0` with equality iff p = q; it tends to exact OT as ε → 0
    and to :math:`\tfrac12\,\mathrm{MMD}^2` with kernel :math:`-c` as ε → ∞. The raw
    :math:`\mathrm{OT}_\varepsilon(p, q)` is not zero at q = p, and its minimiser over q is a blurred p.

    Parameters
    ----------
    logp : Tensor, shape (..., n)
    logq : Tensor, shape (..., m)
    cost : Tensor, shape (n, m) or (..., n, m)
        Cost between p's points and q's points.
    eps : float > 0
    cost_pp, cost_qq : Tensor, shapes (..., n, n) and (..., m, m), optional
        Costs of p's points with themselves and of q's with themselves; default ``cost`` (p and q on
        the same points, a square symmetric cost).

    Returns
    -------
    Tensor, shape (...)
        Differentiable in ``logp``, ``logq`` and the costs (envelope theorem).

    >>> x = torch.linspace(0, 1, 11, dtype=torch.float64)
    >>> p = torch.softmax(-(x - 0.3) ** 2 / 0.01, 0).log()
    >>> round(sinkhorn_divergence(p, p, cost_matrix(x, x, p=1), 0.05).item(), 12) + 0.0
    0.0
    """
    logp, logq, cost, eps = _check_problem(logp, logq, cost, eps, validate)
    if cost_pp is None or cost_qq is None:
        if cost.shape[-1] != cost.shape[-2]:
            raise ValueError(f"cost_pp and cost_qq must be given when p and q live on different points; got a "
                             f"{tuple(cost.shape)} cost and none")
    cost_pp = cost if cost_pp is None else _as64(cost_pp)
    cost_qq = cost if cost_qq is None else _as64(cost_qq)
    for name, c, k in (("cost_pp", cost_pp, logp.shape[-1]), ("cost_qq", cost_qq, logq.shape[-1])):
        if c.shape[-2:] != (k, k):
            raise ValueError(f"{name} must have shape (..., {k}, {k}); got {tuple(c.shape)}")
    cross = sinkhorn(logp, logq, cost, eps, tol=tol, max_iter=max_iter, validate=False).value
    self_p, _ = _self_ot(logp, cost_pp, eps, tol, max_iter)
    self_q, _ = _self_ot(logq, cost_qq, eps, tol, max_iter)
    return cross - 0.5 * self_p - 0.5 * self_q


class SinkhornDivergence:
    r"""The debiased Sinkhorn divergence as a loss that remembers its potentials between calls (warm starts).

    ``loss(logp, logq, cost)`` returns :func:`sinkhorn_divergence` (p the reference), differentiable by
    the envelope theorem. Inside a training loop the distributions move a little at each step, so the
    potentials of the previous call are an excellent start: each call then needs a few iterations
    instead of hundreds. With ``max_iter`` a fixed budget and ``tol=None`` every call runs exactly that
    many iterations and the potentials converge along with the model (an amortised Sinkhorn); the
    :attr:`iterations` counter says how many were run in all.

    Parameters
    ----------
    eps : float > 0
    tol : float or None
        Marginal tolerance per call; None runs exactly ``max_iter`` iterations per call.
    max_iter : int
        Budget per call (the symmetric self-terms get a third of it, at least 3: they converge fast).

    >>> x = torch.linspace(0, 1, 11, dtype=torch.float64)
    >>> p = torch.softmax(-(x - 0.3) ** 2 / 0.01, 0).log(); q = torch.softmax(-(x - 0.6) ** 2 / 0.02, 0).log()
    >>> loss, c = SinkhornDivergence(0.05), cost_matrix(x, x, p=1)
    >>> bool(torch.isclose(loss(p, q, c), sinkhorn_divergence(p, q, c, 0.05), atol=1e-9))
    True
    """

    def __init__(self, eps: float, *, tol: float | None = 1e-9, max_iter: int = 100_000):
        self.eps = check_positive("eps", eps)
        self.tol = None if tol is None else check_positive("tol", tol)
        self.max_iter = check_int("max_iter", max_iter, low=1)
        self.iterations = 0
        self._g = self._fp = self._fq = None

    def reset(self) -> None:
        """Forget the potentials (the next call starts cold)."""
        self._g = self._fp = self._fq = None

    @staticmethod
    def _fits(h, like):
        return h if h is not None and h.shape == like.shape[:-1] + like.shape[-1:] else None

    def __call__(self, logp, logq, cost, *, cost_pp=None, cost_qq=None) -> torch.Tensor:
        logp, logq, cost, eps = _check_problem(logp, logq, cost, self.eps, validate=False)
        cost_pp = cost if cost_pp is None else _as64(cost_pp)
        cost_qq = cost if cost_qq is None else _as64(cost_qq)
        lp, lq = logp.detach(), logq.detach()
        self_budget = max(3, self.max_iter // 3)
        with torch.no_grad():
            f, g, it, _ = _solve(lp, lq, cost.detach(), eps, self._fits(self._g, lq), tol=self.tol,
                                 max_iter=self.max_iter)
            fp, it_p, _ = _solve_symmetric(lp, cost_pp.detach(), eps, self._fits(self._fp, lp), tol=self.tol,
                                           max_iter=self_budget)
            fq, it_q, _ = _solve_symmetric(lq, cost_qq.detach(), eps, self._fits(self._fq, lq), tol=self.tol,
                                           max_iter=self_budget)
        self._g, self._fp, self._fq = g, fp, fq
        self.iterations += it + it_p + it_q
        zero = torch.zeros((), dtype=D64)
        wp = torch.where(logp > -math.inf, logp.exp(), zero)
        wq = torch.where(logq > -math.inf, logq.exp(), zero)
        f_c = _softmin(lq, g, cost, eps, dim=-1) if cost.requires_grad else f
        cross = (wp * f_c).sum(-1) + (wq * g).sum(-1)
        fp_c = _softmin(lp, fp, cost_pp, eps, dim=-1) if cost_pp.requires_grad else fp
        fq_c = _softmin(lq, fq, cost_qq, eps, dim=-1) if cost_qq.requires_grad else fq
        self_p = (wp * fp_c).sum(-1) + (wp * fp).sum(-1)
        self_q = (wq * fq_c).sum(-1) + (wq * fq).sum(-1)
        return cross - 0.5 * self_p - 0.5 * self_q


def exact_ot(logp, logq, cost) -> torch.Tensor:
    r"""Exact optimal transport cost :math:`\min_{P \in U(p, q)} \langle P, C\rangle`, by POT's network simplex.

    A thin wrapper of ``ot.emd2`` (a linear program, no regularisation) over leading axes; ``logp`` is
    the reference p. No gradient: it is the oracle the entropic solvers are checked against.

    Parameters
    ----------
    logp : Tensor, shape (..., n)
    logq : Tensor, shape (..., m)
    cost : Tensor, shape (n, m)

    Returns
    -------
    Tensor, shape (...), float64

    >>> x = torch.arange(3, dtype=torch.float64)
    >>> exact_ot(torch.tensor([1., 0, 0]).log(), torch.tensor([0., 0, 1]).log(), cost_matrix(x, x, p=1)).item()
    2.0
    """
    logp, logq, cost = _as64(logp).detach(), _as64(logq).detach(), _as64(cost).detach()
    check_log_probs("logp", logp)
    check_log_probs("logq", logq)
    if cost.shape != (logp.shape[-1], logq.shape[-1]):
        raise ValueError(f"cost must have shape ({logp.shape[-1]}, {logq.shape[-1]}); got {tuple(cost.shape)}")
    batch = torch.broadcast_shapes(logp.shape[:-1], logq.shape[:-1])
    p = logp.exp().expand(*batch, -1).reshape(-1, logp.shape[-1]).numpy()
    q = logq.exp().expand(*batch, -1).reshape(-1, logq.shape[-1]).numpy()
    m = cost.numpy()
    vals = [ot.emd2(a / a.sum(), b / b.sum(), m) for a, b in zip(p, q)]
    return torch.tensor(np.asarray(vals, dtype=np.float64).reshape(batch), dtype=D64)


def w1_1d(logp, logq, positions) -> torch.Tensor:
    r"""Exact W1 on the line from the distribution functions; ``logp`` is the reference p.

    .. math::
        W_1(p, q) = \int_{\mathbb R} |F_p(x) - F_q(x)|\,dx
        = \sum_{k=1}^{n-1} \Big|\sum_{i \le k} (p_i - q_i)\Big|\,(x_{k+1} - x_k)

    for p and q on the same sorted points :math:`x_1 < \dots < x_n`. Differentiable and batched.

    Parameters
    ----------
    logp, logq : Tensor, shape (..., n)
    positions : Tensor, shape (n,), strictly increasing

    Returns
    -------
    Tensor, shape (...)

    >>> x = torch.arange(4, dtype=torch.float64)
    >>> w1_1d(torch.tensor([1., 0, 0, 0]).log(), torch.tensor([0., 0, 0, 1]).log(), x).item()
    3.0
    """
    logp, logq, x = _as64(logp), _as64(logq), _as64(positions)
    if x.ndim != 1 or x.shape[0] != logp.shape[-1] or logq.shape[-1] != x.shape[0]:
        raise ValueError(f"positions must be 1-D with one point per outcome; got {tuple(x.shape)} for "
                         f"{tuple(logp.shape)} and {tuple(logq.shape)}")
    if x.numel() > 1 and not (x[1:] > x[:-1]).all():
        raise ValueError("positions must be strictly increasing")
    gap = torch.cumsum(logp.exp() - logq.exp(), dim=-1)[..., :-1]
    return (gap.abs() * (x[1:] - x[:-1])).sum(-1)


def w2_gaussian(mu_p, sigma_p, mu_q, sigma_q, *, squared: bool = False) -> torch.Tensor:
    r"""W2 between 1-D Gaussians in closed form (the Bures-Wasserstein formula); p is the reference.

    .. math::
        W_2^2\big(\mathcal N(\mu_p, \sigma_p^2), \mathcal N(\mu_q, \sigma_q^2)\big)
        = (\mu_p - \mu_q)^2 + (\sigma_p - \sigma_q)^2

    (in d dimensions :math:`\|m_p - m_q\|^2 + \mathrm{tr}(\Sigma_p + \Sigma_q - 2(\Sigma_p^{1/2}\Sigma_q
    \Sigma_p^{1/2})^{1/2})`, POT's ``ot.gaussian.bures_wasserstein_distance``). Arguments broadcast.

    >>> w2_gaussian(0.0, 1.0, 3.0, 5.0).item()
    5.0
    """
    mp, sp, mq, sq = (_as64(a) for a in (mu_p, sigma_p, mu_q, sigma_q))
    if (sp <= 0).any() or (sq <= 0).any():
        raise ValueError("sigma_p and sigma_q must be > 0")
    w2sq = (mp - mq) ** 2 + (sp - sq) ** 2
    return w2sq if squared else w2sq.sqrt()


def entropic_ot_gaussian(mu_p, sigma_p, mu_q, sigma_q, eps: float) -> torch.Tensor:
    r"""Entropic OT between 1-D Gaussians for the squared cost, in closed form; p is the reference.

    The optimal plan of :math:`\min_P \mathbb E_P(x - y)^2 + \varepsilon\,\mathrm{KL}(P \| p \otimes q)` is
    Gaussian with covariance c, and the KL is the mutual information :math:`-\tfrac12\log(1 - \rho^2)`:

    .. math::
        \mathrm{OT}_\varepsilon = (\mu_p - \mu_q)^2 + \sigma_p^2 + \sigma_q^2 - 2c
        - \frac{\varepsilon}{2}\log\Big(1 - \frac{c^2}{\sigma_p^2\sigma_q^2}\Big), \qquad
        c = \frac{\sqrt{\varepsilon^2 + 16\,\sigma_p^2\sigma_q^2} - \varepsilon}{4}

    (set the derivative in c to zero: :math:`2c^2 + \varepsilon c - 2\sigma_p^2\sigma_q^2 = 0`). As
    ε → 0, c → σ_p σ_q and the value → :func:`w2_gaussian` squared. Arguments broadcast.

    >>> bool(abs(entropic_ot_gaussian(0.0, 1.0, 3.0, 5.0, 1e-9) - 25.0) < 1e-6)
    True
    """
    eps = check_positive("eps", eps)
    mp, sp, mq, sq = (_as64(a) for a in (mu_p, sigma_p, mu_q, sigma_q))
    if (sp <= 0).any() or (sq <= 0).any():
        raise ValueError("sigma_p and sigma_q must be > 0")
    prod = sp * sq
    c = ((eps ** 2 + 16 * prod ** 2).sqrt() - eps) / 4
    return (mp - mq) ** 2 + sp ** 2 + sq ** 2 - 2 * c - 0.5 * eps * torch.log1p(-(c / prod) ** 2)


def sinkhorn_divergence_gaussian(mu_p, sigma_p, mu_q, sigma_q, eps: float) -> torch.Tensor:
    r"""The debiased Sinkhorn divergence between 1-D Gaussians (squared cost), in closed form.

    .. math::
        S_\varepsilon = \mathrm{OT}_\varepsilon(p, q) - \tfrac12\mathrm{OT}_\varepsilon(p, p)
        - \tfrac12\mathrm{OT}_\varepsilon(q, q)

    with each term from :func:`entropic_ot_gaussian`. Zero iff the Gaussians are equal.

    >>> sinkhorn_divergence_gaussian(1.0, 2.0, 1.0, 2.0, 0.5).item()
    0.0
    """
    return (entropic_ot_gaussian(mu_p, sigma_p, mu_q, sigma_q, eps)
            - 0.5 * entropic_ot_gaussian(mu_p, sigma_p, mu_p, sigma_p, eps)
            - 0.5 * entropic_ot_gaussian(mu_q, sigma_q, mu_q, sigma_q, eps))


def _quadrature(target: GaussianMixture1D, n: int):
    """x-grid covering 14 sd of every component, p(x) on it, and Phi^{-1}(F_p(x)) computed tail-safely."""
    lo = float((target.means - 14 * target.sigmas).min())
    hi = float((target.means + 14 * target.sigmas).max())
    x = torch.linspace(lo, hi, n, dtype=D64)
    px = target.log_prob(x).exp()
    cdf, sf = target.cdf(x), target.sf(x)
    z = torch.where(cdf <= 0.5, torch.special.ndtri(cdf.clamp_min(1e-300)),
                    -torch.special.ndtri(sf.clamp_min(1e-300)))
    return x, px, z


def w2_to_gaussian(target: GaussianMixture1D, mu, sigma, *, n: int = 20001) -> torch.Tensor:
    r"""Squared W2 between a 1-D mixture p (the reference) and :math:`\mathcal N(\mu, \sigma^2)`, by quadrature.

    On the line the optimal map is monotone, :math:`T = F_q^{-1}\circ F_p`, so

    .. math::
        W_2^2(p, q) = \int_0^1 \big(F_p^{-1}(u) - \mu - \sigma\,\Phi^{-1}(u)\big)^2\,du
        = \int \big(x - \mu - \sigma\,\Phi^{-1}(F_p(x))\big)^2 p(x)\,dx ,

    the second form evaluated by the trapezoid rule on ``n`` points. Differentiable in μ and σ, which
    broadcast.

    >>> from kllab.maths.distributions import GaussianMixture1D
    >>> g = GaussianMixture1D([1.0], [2.0])
    >>> round(w2_to_gaussian(g, 4.0, 6.0).item(), 6)        # (1-4)^2 + (2-6)^2
    25.0
    """
    if not isinstance(target, GaussianMixture1D):
        raise ValueError(f"target must be a GaussianMixture1D; got {type(target).__name__}")
    n = check_int("n", n, low=101)
    mu, sigma = _as64(mu), _as64(sigma)
    x, px, z = _quadrature(target, n)
    gap = x - mu[..., None] - sigma[..., None] * z
    return torch.trapezoid(gap ** 2 * px, x, dim=-1)


def w2_gaussian_projection(target: GaussianMixture1D, *, n: int = 20001) -> tuple[float, float, float]:
    r"""The Gaussian closest to a 1-D mixture p in W2: quantile matching, in closed form up to quadrature.

    Minimising :math:`\int_0^1 (F_p^{-1}(u) - \mu - \sigma\,\Phi^{-1}(u))^2\,du` is a least-squares fit of
    the quantile function by a line in :math:`\Phi^{-1}(u)`:

    .. math::
        \mu^* = \mathbb E_p[X], \qquad \sigma^* = \int_0^1 F_p^{-1}(u)\,\Phi^{-1}(u)\,du
        = \mathbb E_p\big[X\,\Phi^{-1}(F_p(X))\big], \qquad
        W_2^2(p, \mathcal N(\mu^*, \sigma^{*2})) = \mathrm{Var}_p - \sigma^{*2}

    (the residual by Pythagoras in :math:`L^2(0, 1)`). The forward-KL Gaussian fit matches the variance
    instead, :math:`\sigma = \sqrt{\mathrm{Var}_p} \ge \sigma^*`, with equality iff p is Gaussian.

    Returns
    -------
    (mu, sigma, residual) : floats
        The projection and :math:`W_2^2` from p to it.

    >>> from kllab.maths.distributions import two_modes
    >>> [round(v, 3) + 0.0 for v in w2_gaussian_projection(two_modes(3.0))]
    [0.0, 2.974, 1.155]
    """
    if not isinstance(target, GaussianMixture1D):
        raise ValueError(f"target must be a GaussianMixture1D; got {type(target).__name__}")
    n = check_int("n", n, low=101)
    x, px, z = _quadrature(target, n)
    mu = float(torch.trapezoid(x * px, x))
    sigma = float(torch.trapezoid((x - mu) * z * px, x))
    var = float(torch.trapezoid((x - mu) ** 2 * px, x))
    return mu, sigma, var - sigma ** 2


def monge_map_1d(target: GaussianMixture1D, mu: float, sigma: float, x) -> torch.Tensor:
    r"""The optimal (Monge) map from :math:`q = \mathcal N(\mu, \sigma^2)` to the mixture p on the line.

    .. math::
        T(x) = F_p^{-1}\big(\Phi((x - \mu)/\sigma)\big)

    optimal for every convex cost (W1, W2, ...): it sends the u-quantile of q to the u-quantile of p.
    :math:`T(x) - x` is where OT pushes a generator sample at x.

    >>> from kllab.maths.distributions import two_modes
    >>> round(monge_map_1d(two_modes(3.0), 3.0, 1.0, 3.0).item(), 6) + 0.0   # q's median to p's median
    0.0
    """
    mu, sigma = check_real("mu", mu), check_positive("sigma", sigma)
    z = (_as64(x) - mu) / sigma
    return torch.where(z <= 0, target.quantile(0.5 * torch.special.erfc(-z / math.sqrt(2.0))),
                       _quantile_from_sf(target, 0.5 * torch.special.erfc(z / math.sqrt(2.0))))


def _quantile_from_sf(target: GaussianMixture1D, tail: torch.Tensor) -> torch.Tensor:
    """F_p^{-1}(1 - tail), solved on the survival function so that a tail below 1e-16 keeps its digits."""
    lo = torch.full_like(tail, float(target.means.min()) - 40.0 * float(target.sigmas.max()))
    hi = torch.full_like(tail, float(target.means.max()) + 40.0 * float(target.sigmas.max()))
    for _ in range(110):
        mid = 0.5 * (lo + hi)
        below = target.sf(mid) > tail
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    x = 0.5 * (lo + hi)
    return torch.where(tail == 0, torch.full_like(x, math.inf), x)


def barycentric_map(result: SinkhornResult, y) -> torch.Tensor:
    r"""The entropic plan's barycentric map :math:`\bar T(x_i) = \sum_j P_{ij}\, y_j / p_i`.

    It is the average destination of the mass at :math:`x_i` under the entropic plan of
    :func:`sinkhorn` (p on the points x, q on the points y), and tends to the Monge map as ε → 0.
    For the squared cost, the gradient of :math:`\mathrm{OT}_\varepsilon` in :math:`x_i` is
    :math:`2 p_i (x_i - \bar T(x_i))`.

    Parameters
    ----------
    result : SinkhornResult
    y : Tensor, shape (m,)
        The points of q.

    Returns
    -------
    Tensor, shape (..., n)

    >>> x = torch.tensor([0.0, 1.0], dtype=torch.float64); u = torch.full((2,), 0.5, dtype=torch.float64).log()
    >>> r = sinkhorn(u, u, cost_matrix(x, x + 5.0), 1e-3)
    >>> barycentric_map(r, x + 5.0).tolist()
    [5.0, 6.0]
    """
    y = _as64(y)
    w = torch.softmax(result.log_plan, dim=-1)          # rows normalised: P_ij / p_i
    return (w * y).sum(-1)


@dataclass
class AffineRun:
    """Result of :func:`train_affine_ot`.

    Attributes
    ----------
    mu, sigma : float
        The generator :math:`x = \mu + \sigma z` at the end of training.
    path : Tensor, shape (steps + 1, 2)
        (μ, σ) before the first step and after every step.
    iterations : int
        Sinkhorn iterations run in all (0 without an OT term).
    """

    mu: float
    sigma: float
    path: torch.Tensor = field(repr=False)
    iterations: int = 0


def quantile_points(n: int) -> torch.Tensor:
    r"""n evenly spread standard-normal noises: the quantiles :math:`\Phi^{-1}((k - \tfrac12)/n)`, standardised.

    A perfectly stratified "sample" of :math:`\mathcal N(0, 1)`, rescaled so that its mean is 0 and its
    variance exactly 1; the generator :math:`\mu + \sigma z` then has mean μ and variance σ² exactly.

    >>> z = quantile_points(8)
    >>> round(z.mean().item(), 12) + 0.0, round((z ** 2).mean().item(), 12)
    (0.0, 1.0)
    """
    n = check_int("n", n, low=2)
    z = torch.special.ndtri((torch.arange(n, dtype=D64) + 0.5) / n)
    return z / (z ** 2).mean().sqrt()


def train_affine_ot(target: GaussianMixture1D, *, eps: float = 0.5, ot_weight: float = 1.0, kl_weight: float = 0.0,
                    kl: str = "reverse", init: tuple[float, float] = (3.0, 1.0), steps: int = 200, n_points: int = 64,
                    lr: float = 0.1, betas: tuple[float, float] = (0.9, 0.99), tol: float = 1e-3) -> AffineRun:
    r"""Train the generator :math:`x = \mu + \sigma z` on the Sinkhorn divergence to the teacher p, and/or a KL.

    The generator maps ``n_points`` evenly spread noises :math:`z_k` (:func:`quantile_points`); the teacher
    is held as its own ``n_points`` quantiles :math:`y_k = F_p^{-1}((k - \frac12)/n)`, a perfectly stratified
    sample, so the loss is deterministic. Each step takes an Adam step on (μ, log σ) along the gradient of

    .. math::
        \lambda_{\rm OT}\, S_\varepsilon\Big(\tfrac1n\textstyle\sum_k \delta_{y_k},\ \tfrac1n\sum_k \delta_{x_k}\Big)
        + \lambda_{\rm KL}\, \mathrm{KL}(q_\theta \| p) \quad \text{(or } \mathrm{KL}(p \| q_\theta)\text{)},

    with :math:`S_\varepsilon` the debiased Sinkhorn divergence for the squared cost
    (:class:`SinkhornDivergence`): its gradient in :math:`x_k` is the envelope gradient, which pulls each
    sample towards where the entropic plan sends it. The potentials are warm-started from the previous step
    and solved to the marginal tolerance ``tol`` (a few iterations per step). The reverse-KL part
    (``kl="reverse"``) is the DMD gradient :math:`-(\nabla\log p - \nabla\log q_\theta)\,\partial x/\partial\theta`
    at the generator's points, via :func:`kllab.maths.matching.surrogate_loss` with exact scores. The forward KL
    (``kl="forward"``) is an expectation under the teacher, :math:`\mathrm{KL}(p\|q_\theta) = -\mathbb E_p\log
    q_\theta + \text{const}`, estimated at the teacher's points (maximum likelihood on them): it sees every mode
    of p, wherever the generator is. The learning rate decays linearly to 0.

    Parameters
    ----------
    target : GaussianMixture1D
        The teacher p (the reference).
    eps : float > 0
        Sinkhorn's ε, in units of x² (the squared cost).
    ot_weight, kl_weight : float ≥ 0, not both 0
    kl : {"reverse", "forward"}
        The KL term: KL(q‖p) at the generator's points (mode-seeking, DMD) or KL(p‖q) at the teacher's
        (mass-covering).
    init : (mu, sigma)
    steps : int ≥ 1
    n_points : int ≥ 2
    lr : float > 0
    betas : (float, float)
        Adam's averaging constants. The default remembers squared gradients over about 100 steps (torch's
        0.999 remembers 1000), so that the large gradients of a far start do not freeze the later steps.
    tol : float > 0
        Sinkhorn's marginal tolerance at each step.

    Returns
    -------
    AffineRun

    >>> from kllab.maths.distributions import GaussianMixture1D
    >>> run = train_affine_ot(GaussianMixture1D([1.0], [2.0]), init=(0.0, 1.0), steps=100, n_points=32)
    >>> round(run.mu, 1), round(run.sigma, 1)      # sigma 1.96: 32 quantiles under-disperse N(1, 4) by 2 %
    (1.0, 2.0)
    """
    from .optim import Adam                               # torch.optim's Adam, without importing torch._dynamo
    from .matching import mixture_score, surrogate_loss   # the DMD gradient of the f-distill module

    if not isinstance(target, GaussianMixture1D):
        raise ValueError(f"target must be a GaussianMixture1D (the teacher p); got {type(target).__name__}")
    eps = check_positive("eps", eps)
    ot_weight = check_real("ot_weight", ot_weight, low=0.0)
    kl_weight = check_real("kl_weight", kl_weight, low=0.0)
    kl = check_choice("kl", kl, ("reverse", "forward"))
    if ot_weight == 0.0 and kl_weight == 0.0:
        raise ValueError("ot_weight and kl_weight must not both be 0; got 0 and 0")
    mu0, sigma0 = check_real("init[0] (mu)", init[0]), check_positive("init[1] (sigma)", init[1])
    steps, n = check_int("steps", steps, low=1), check_int("n_points", n_points, low=2)
    lr, tol = check_positive("lr", lr), check_positive("tol", tol)
    betas = (check_real("betas[0]", betas[0], low=0.0, high=1.0, high_open=True),
             check_real("betas[1]", betas[1], low=0.0, high=1.0, high_open=True))
    z = quantile_points(n)
    y = target.quantile((torch.arange(n, dtype=D64) + 0.5) / n)
    logw = torch.full((n,), -math.log(n), dtype=D64)
    cost_yy = (y[:, None] - y[None, :]) ** 2
    loss_ot = SinkhornDivergence(eps, tol=tol)
    mu = torch.tensor(mu0, dtype=D64, requires_grad=True)
    log_sigma = torch.tensor(math.log(sigma0), dtype=D64, requires_grad=True)
    opt = Adam([mu, log_sigma], lr=lr, betas=betas)
    path = torch.empty(steps + 1, 2, dtype=D64)
    path[0] = torch.tensor([mu0, sigma0])
    for t in range(steps):
        opt.zero_grad()
        x = mu + log_sigma.exp() * z
        loss = torch.zeros((), dtype=D64)
        if ot_weight > 0:
            loss = loss + ot_weight * loss_ot(logw, logw, (y[:, None] - x[None, :]) ** 2, cost_pp=cost_yy,
                                              cost_qq=(x[:, None] - x[None, :]) ** 2)
        if kl_weight > 0 and kl == "forward":       # -E_p log q at the teacher's points, up to a constant
            loss = loss + kl_weight * (0.5 * ((y - mu) / log_sigma.exp()) ** 2 + log_sigma).mean()
        elif kl_weight > 0:
            with torch.no_grad():
                logq = -0.5 * z ** 2 - log_sigma - 0.5 * math.log(2 * math.pi)
                diff = mixture_score(target, x) + z / log_sigma.exp()      # s_p - s_q at the samples
                logr = target.log_prob(x) - logq
            loss = loss + kl_weight * surrogate_loss(x, logr, diff, "reverse").mean()
        loss.backward()
        opt.step()
        opt.lr = lr * (1.0 - (t + 1) / steps)
        with torch.no_grad():
            path[t + 1, 0] = mu
            path[t + 1, 1] = log_sigma.exp()
    return AffineRun(float(path[-1, 0]), float(path[-1, 1]), path, loss_ot.iterations)
