r"""Entropic optimal transport by Sinkhorn's iterations, and the debiased Sinkhorn divergence.

Part of :mod:`kllab.maths.transport` (which says the conventions): :func:`cost_matrix`, :func:`sinkhorn`,
:func:`entropic_ot`, :func:`sinkhorn_divergence`, :class:`SinkhornDivergence`, :func:`barycentric_map`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import ot
import torch

from ..validation import check_int, check_log_probs, check_positive, check_real

__all__ = ["cost_matrix", "SinkhornResult", "sinkhorn", "entropic_ot", "sinkhorn_divergence", "SinkhornDivergence", "barycentric_map"]


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
