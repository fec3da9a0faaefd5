r"""Deep kernel machines: Gram matrices as layers, held near the NNGP by a KL divergence
(Yang, Robeyns, Milsom, Anson, Schoots & Aitchison, 2023, arXiv:2108.13097).

A deep Gaussian process with layer widths :math:`N_\ell = \nu_\ell N` has, in the "Bayesian
representation learning limit" :math:`N\to\infty`, an exactly Gaussian posterior whose layer
Gram matrices :math:`G_1, \dots, G_L` (each :math:`n\times n`, over the n data points) maximise

.. math::
    \mathcal{L}(G_1,\dots,G_L) = \log P(Y \mid G_L)
      - \sum_{\ell=1}^{L} \nu_\ell\,
        \mathrm{KL}\big(\mathcal{N}(0, G_\ell)\,\big\|\,\mathcal{N}(0, K(G_{\ell-1}))\big),
    \qquad G_0 = X X^\top / d_0,

with the Gaussian-process likelihood of the outputs (one column per output channel)

.. math::
    \log P(Y\mid G_L) = \sum_{\lambda} \log \mathcal{N}\big(y_\lambda;\, 0,\, K(G_L) + \sigma^2 I\big).

The zero-mean Gaussian KL (reference first, math order: ``kl_mvn_zero_mean(G, K)`` is
KL(N(0,G) ‖ N(0,K))) is

.. math::
    \mathrm{KL}\big(\mathcal{N}(0,G)\,\|\,\mathcal{N}(0,K)\big)
      = \tfrac12\big[\operatorname{tr}(K^{-1}G) - n + \log\det K - \log\det G\big] .

It is zero exactly when :math:`G = K`, so as :math:`\nu_\ell\to\infty` the maximiser is the
deterministic kernel recursion :math:`G_\ell = K(G_{\ell-1})`: the NNGP (neural-network
Gaussian process) of the infinitely wide network, with no representation learning.

Kernels :math:`K(G)` act on Gram matrices only:

* ``"relu"``, the arc-cosine kernel of order 1 (Cho & Saul, 2009), the NNGP of a ReLU layer
  with weights of variance 2 (He initialisation), which keeps the diagonal:

  .. math::
     K_{ij} = \tfrac{1}{\pi}\sqrt{G_{ii}G_{jj}}\,\big(\sin\theta_{ij} + (\pi-\theta_{ij})\cos\theta_{ij}\big),
     \quad \cos\theta_{ij} = G_{ij}/\sqrt{G_{ii}G_{jj}} ;

  this equals :math:`2\,\mathbb{E}[\mathrm{relu}(u)\mathrm{relu}(v)]` for
  :math:`(u, v)\sim\mathcal{N}(0, G_{\{i,j\}})`: ``relu_features_gram`` is its Monte-Carlo
  counterpart, the Gram matrix of a wide random ReLU network.
* ``"sqexp"``, the squared-exponential kernel on Gram-derived distances,
  :math:`K_{ij} = \exp(-(G_{ii}+G_{jj}-2G_{ij})/(2h^2))`.

All tensors are float64; the cost is cubic in n.
"""

from __future__ import annotations

import math

import torch

from .optim import Adam
from .validation import check_choice, check_int, check_positive

__all__ = ["KERNELS", "kl_mvn_zero_mean", "layer_kernel", "nngp", "relu_features_gram",
           "gp_log_likelihood", "dkm_objective", "fit_dkm"]

KERNELS = ("relu", "sqexp")


def _check_gram(name: str, g: torch.Tensor, n: int | None = None) -> torch.Tensor:
    if not isinstance(g, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(g).__name__}")
    if g.ndim < 2 or g.shape[-1] != g.shape[-2]:
        raise ValueError(f"`{name}` must be a square matrix (..., n, n); got shape {tuple(g.shape)}")
    if n is not None and g.shape[-1] != n:
        raise ValueError(f"`{name}` must be {n} x {n}; got shape {tuple(g.shape)}")
    gd = g.detach()
    if not bool(torch.isfinite(gd).all()):
        raise ValueError(f"`{name}` must be finite; it contains NaN or inf")
    asym = float((gd - gd.transpose(-1, -2)).abs().max()) if gd.numel() else 0.0
    if asym > 1e-8 * max(float(gd.abs().max()), 1.0):
        raise ValueError(f"`{name}` must be symmetric; got an asymmetric matrix (max |G - G^T| = {asym:.3g})")
    return g.to(torch.float64)


def _cholesky(name: str, g: torch.Tensor) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(g)
    if bool((info != 0).any()):
        raise ValueError(f"`{name}` must be positive definite; its Cholesky factorisation failed "
                         f"(smallest eigenvalue {float(torch.linalg.eigvalsh(g).min()):.3g}); add jitter")
    return chol


def kl_mvn_zero_mean(g: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""KL(N(0, G) ‖ N(0, K)), G the reference (first) covariance.

    .. math::
        \tfrac12\big[\operatorname{tr}(K^{-1}G) - n + \log\det K - \log\det G\big]

    Parameters
    ----------
    g, k : Tensor (..., n, n), symmetric positive definite

    Returns
    -------
    Tensor (...,): one KL per leading index (no reduction), in nats.

    >>> import torch
    >>> k = torch.eye(2, dtype=torch.float64)
    >>> round(kl_mvn_zero_mean(2 * k, k).item(), 6)   # n (s - 1 - log s) / 2 at s = 2
    0.306853
    """
    g = _check_gram("g", g)
    k = _check_gram("k", k, g.shape[-1])
    n = g.shape[-1]
    lg, lk = _cholesky("g", g), _cholesky("k", k)
    # tr(K^{-1} G) = ||L_K^{-1} L_G||_F^2
    m = torch.linalg.solve_triangular(lk, lg, upper=False)
    trace = (m * m).sum((-1, -2))
    logdet_k = 2 * torch.log(torch.diagonal(lk, dim1=-2, dim2=-1)).sum(-1)
    logdet_g = 2 * torch.log(torch.diagonal(lg, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace - n + logdet_k - logdet_g)


def layer_kernel(g: torch.Tensor, kernel: str = "relu", bandwidth: float = 1.0) -> torch.Tensor:
    r"""The kernel K(G) of one layer, as a function of the previous layer's Gram matrix G.

    ``"relu"``: the order-1 arc-cosine kernel (the NNGP of a ReLU layer, weight variance 2);
    ``"sqexp"``: :math:`\exp(-d^2_{ij}/(2h^2))` with :math:`d^2_{ij} = G_{ii}+G_{jj}-2G_{ij}`.

    Parameters
    ----------
    g : Tensor (..., n, n), symmetric, positive semi-definite, positive diagonal
    kernel : {"relu", "sqexp"}
    bandwidth : float > 0, h of ``"sqexp"`` (unused by ``"relu"``)

    Returns
    -------
    Tensor (..., n, n)

    >>> import torch
    >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> round(layer_kernel(g)[0, 1].item(), 6)   # orthogonal inputs: 1/pi
    0.31831
    """
    g = _check_gram("g", g)
    kernel = check_choice("kernel", kernel, KERNELS)
    diag = torch.diagonal(g, dim1=-2, dim2=-1)
    if bool((diag <= 0).any()):
        raise ValueError(f"`g` must have a positive diagonal; got min diagonal {float(diag.min()):.3g}")
    if kernel == "sqexp":
        h = check_positive("bandwidth", bandwidth)
        d2 = (diag.unsqueeze(-1) + diag.unsqueeze(-2) - 2 * g).clamp_min(0.0)
        return torch.exp(-d2 / (2 * h * h))
    norm = torch.sqrt(diag.unsqueeze(-1) * diag.unsqueeze(-2))
    # clamp away from +-1: arccos has an infinite derivative there
    cos = (g / norm).clamp(-1 + 1e-12, 1 - 1e-12)
    theta = torch.arccos(cos)
    k = norm / math.pi * (torch.sin(theta) + (math.pi - theta) * cos)
    # the diagonal is exactly G_ii (theta = 0)
    return k - torch.diag_embed(torch.diagonal(k, dim1=-2, dim2=-1)) + torch.diag_embed(diag)


def nngp(g0: torch.Tensor, depth: int, kernel: str = "relu", bandwidth: float = 1.0) -> list[torch.Tensor]:
    r"""The NNGP recursion :math:`G_\ell = K(G_{\ell-1})`, :math:`\ell = 1..\text{depth}`.

    Returns the list ``[G_1, ..., G_depth]`` (the ν → ∞ maximiser of :func:`dkm_objective`).

    >>> import torch
    >>> g0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> [round(g[0, 1].item(), 4) for g in nngp(g0, 2)]
    [0.3183, 0.4937]
    """
    depth = check_int("depth", depth, low=1)
    out, g = [], g0
    for _ in range(depth):
        g = layer_kernel(g, kernel, bandwidth)
        out.append(g)
    return out


def relu_features_gram(x: torch.Tensor, width: int, depth: int, *, seed: int = 0) -> list[torch.Tensor]:
    r"""Gram matrices :math:`F_\ell F_\ell^\top / N` of a wide random ReLU network (Monte Carlo).

    :math:`F_0 = X`, :math:`F_\ell = \mathrm{relu}(F_{\ell-1} W_\ell)` with
    :math:`W_\ell \sim \mathcal{N}(0, 2/N_{\ell-1})` entrywise, widths :math:`N_\ell` = ``width``.
    Its Gram matrices converge to :func:`nngp` of :math:`G_0 = XX^\top/d_0` with ``kernel="relu"``
    as the width grows, with fluctuations of order :math:`N^{-1/2}`.

    Parameters
    ----------
    x : Tensor (n, d0)
    width : int ≥ 1, depth : int ≥ 1, seed : int

    Returns
    -------
    list of ``depth`` Tensors (n, n)
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"`x` must be a torch.Tensor of shape (n, d0); got {getattr(x, 'shape', type(x))}")
    if not torch.isfinite(x).all():
        raise ValueError("`x` must be finite; it contains NaN or inf")
    width = check_int("width", width, low=1)
    depth = check_int("depth", depth, low=1)
    gen = torch.Generator().manual_seed(int(seed))
    f = x.to(torch.float64)
    out = []
    for _ in range(depth):
        w = torch.randn(f.shape[1], width, generator=gen, dtype=torch.float64) * math.sqrt(2.0 / f.shape[1])
        f = torch.relu(f @ w)
        out.append(f @ f.T / width)
    return out


def gp_log_likelihood(y: torch.Tensor, k: torch.Tensor, noise_var: float) -> torch.Tensor:
    r""":math:`\sum_\lambda \log\mathcal{N}(y_\lambda; 0, K + \sigma^2 I)` over the columns of y (n, c)."""
    if not isinstance(y, torch.Tensor) or y.ndim != 2:
        raise ValueError(f"`y` must be a torch.Tensor of shape (n, channels); got {getattr(y, 'shape', type(y))}")
    if not torch.isfinite(y).all():
        raise ValueError("`y` must be finite; it contains NaN or inf")
    k = _check_gram("k", k, y.shape[0])
    s2 = check_positive("noise_var", noise_var)
    n, c = y.shape
    chol = _cholesky("k + noise_var * I", k + s2 * torch.eye(n, dtype=torch.float64))
    alpha = torch.linalg.solve_triangular(chol, y.to(torch.float64), upper=False)
    logdet = 2 * torch.log(torch.diagonal(chol)).sum()
    return -0.5 * ((alpha * alpha).sum() + c * logdet + c * n * math.log(2 * math.pi))


def _check_nus(nus, depth: int) -> list[float]:
    nus = [nus] * depth if isinstance(nus, (int, float)) else list(nus)
    if len(nus) != depth:
        raise ValueError(f"`nu` must give one value per layer ({depth}); got {len(nus)}")
    return [check_positive("nu", v) for v in nus]


def dkm_objective(grams: list[torch.Tensor], g0: torch.Tensor, y: torch.Tensor, nu, noise_var: float, *,
                  kernel: str = "relu", bandwidth: float = 1.0) -> dict:
    r"""The deep kernel machine objective and its parts.

    .. math::
        \mathcal{L} = \log P(Y\mid G_L) - \sum_\ell \nu_\ell\,
            \mathrm{KL}\big(\mathcal{N}(0,G_\ell)\,\|\,\mathcal{N}(0,K(G_{\ell-1}))\big)

    Parameters
    ----------
    grams : list of L Tensors (n, n), the layer Gram matrices G_1..G_L
    g0 : Tensor (n, n), the input Gram matrix
    y : Tensor (n, channels)
    nu : float > 0 or L floats, the relative widths ν_ℓ
    noise_var : float > 0, σ² of the likelihood

    Returns
    -------
    dict with ``objective``, ``log_lik`` and ``kls`` (a Tensor (L,) of the unweighted KLs).
    """
    if not grams:
        raise ValueError("`grams` must hold at least one layer Gram matrix; got an empty list")
    nus = _check_nus(nu, len(grams))
    prev, kls = g0, []
    for ell, g in enumerate(grams):
        kls.append(kl_mvn_zero_mean(g, layer_kernel(prev, kernel, bandwidth)))
        prev = g
    log_lik = gp_log_likelihood(y, layer_kernel(prev, kernel, bandwidth), noise_var)
    kls = torch.stack(kls)
    objective = log_lik - (torch.tensor(nus, dtype=torch.float64) * kls).sum()
    return {"objective": objective, "log_lik": log_lik, "kls": kls}


def _to_chol_params(g: torch.Tensor) -> torch.Tensor:
    chol = torch.linalg.cholesky(g)
    return torch.tril(chol, -1) + torch.diag_embed(torch.log(torch.diagonal(chol)))


def _from_chol_params(p: torch.Tensor) -> torch.Tensor:
    chol = torch.tril(p, -1) + torch.diag_embed(torch.exp(torch.diagonal(p)))
    return chol @ chol.T


def _sym_inv(a: torch.Tensor) -> torch.Tensor:
    inv = torch.cholesky_inverse(torch.linalg.cholesky(a))
    return 0.5 * (inv + inv.T)


def fit_dkm(g0: torch.Tensor, y: torch.Tensor, nu, noise_var: float, *, depth: int = 2, kernel: str = "relu",
            bandwidth: float = 1.0, method: str = "fixed_point", steps: int = 200, lr: float | None = None,
            init: list[torch.Tensor] | None = None, tol: float = 1e-10) -> dict:
    r"""Maximise :func:`dkm_objective` over the layer Gram matrices G_1..G_L.

    ``method="fixed_point"`` (default) iterates the stationarity condition on the precisions,

    .. math::
        G_\ell^{-1} \leftarrow (1-\eta)\,G_\ell^{-1}
          + \eta\,\big(K(G_{\ell-1})^{-1} - \tfrac{2}{\nu_\ell} S_\ell\big),
        \qquad S_\ell = \partial_{G_\ell}\big[\mathcal{L} + \nu_\ell \mathrm{KL}_\ell\big],

    layer by layer (the new :math:`G_{\ell-1}` feeds :math:`K`), halving η (start ``lr``, default 1)
    whenever the step loses positive definiteness or lowers the objective; it stops when the objective
    changes by less than ``tol``. Near ν → ∞ one step lands within O(1/ν²) of the optimum.
    ``method="adam"`` runs Adam on log-diagonal Cholesky factors (``lr`` default 1e-2, decaying
    linearly to zero over ``steps``): slower, an independent check of the fixed point.
    Both start from ``init`` (default: the NNGP recursion, the ν → ∞ solution).

    Returns
    -------
    dict with ``grams`` (list of L Tensors (n, n), detached), ``objective``, ``log_lik`` (floats),
    ``kls`` (Tensor (L,)), ``trace`` (the objective after every accepted step) and ``steps``.
    """
    g0 = _check_gram("g0", g0)
    depth = check_int("depth", depth, low=1)
    nus = _check_nus(nu, depth)
    steps = check_int("steps", steps, low=0)
    method = check_choice("method", method, ("fixed_point", "adam"))
    if init is None:
        init = nngp(g0, depth, kernel, bandwidth)
    if len(init) != depth:
        raise ValueError(f"`init` must hold {depth} Gram matrices; got {len(init)}")
    grams = [_check_gram("init", g).detach().clone() for g in init]

    trace = []
    if method == "adam":
        lr = 1e-2 if lr is None else check_positive("lr", lr)
        params = [_to_chol_params(g).requires_grad_(True) for g in grams]
        opt = Adam(params, lr=lr)
        for t in range(steps):
            opt.lr = lr * (1 - t / steps)
            opt.zero_grad()
            out = dkm_objective([_from_chol_params(p) for p in params], g0, y, nus, noise_var,
                                kernel=kernel, bandwidth=bandwidth)
            (-out["objective"]).backward()
            opt.step()
            trace.append(float(out["objective"].detach()))
        grams = [_from_chol_params(p).detach() for p in params]
        done = steps
    else:
        eta = 1.0 if lr is None else check_positive("lr", lr)
        with torch.no_grad():
            current = float(dkm_objective(grams, g0, y, nus, noise_var, kernel=kernel, bandwidth=bandwidth)["objective"])
        trace.append(current)
        done = 0
        for done in range(1, steps + 1):
            gs = [g.clone().requires_grad_(True) for g in grams]
            out = dkm_objective(gs, g0, y, nus, noise_var, kernel=kernel, bandwidth=bandwidth)
            grads = torch.autograd.grad(out["objective"], gs)
            with torch.no_grad():
                precs = [_sym_inv(g) for g in grams]
                # S_l = dL/dG_l minus the own-KL part -nu/2 (K^-1 - G^-1): recover it from the full gradient
                ks = [layer_kernel(p, kernel, bandwidth) for p in [g0] + grams[:-1]]
                s_list = [0.5 * (gr + gr.T) + v / 2 * (_sym_inv(k) - pr)
                          for gr, v, k, pr in zip(grads, nus, ks, precs)]
                while True:
                    new, prev, ok = [], g0, True
                    for pr, s_l, v in zip(precs, s_list, nus):
                        target = _sym_inv(layer_kernel(prev, kernel, bandwidth)) - 2.0 / v * s_l
                        p_new = (1 - eta) * pr + eta * target
                        chol, info = torch.linalg.cholesky_ex(p_new)
                        if int(info) != 0:
                            ok = False
                            break
                        g_new = torch.cholesky_inverse(chol)
                        g_new = 0.5 * (g_new + g_new.T)
                        new.append(g_new)
                        prev = g_new
                    if ok:
                        try:
                            value = float(dkm_objective(new, g0, y, nus, noise_var, kernel=kernel,
                                                        bandwidth=bandwidth)["objective"])
                        except ValueError:
                            value = -math.inf
                        ok = value >= current - 1e-12 * abs(current)
                    if ok or eta < 1e-6:
                        break
                    eta /= 2
                if not ok:
                    break
                change = value - current
                grams, current = new, value
                trace.append(current)
                eta = min(1.0, 2 * eta)
                if abs(change) < tol:
                    break
    with torch.no_grad():
        out = dkm_objective(grams, g0, y, nus, noise_var, kernel=kernel, bandwidth=bandwidth)
    return {"grams": grams, "objective": float(out["objective"]), "log_lik": float(out["log_lik"]),
            "kls": out["kls"], "trace": trace, "steps": done}
