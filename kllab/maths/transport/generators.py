r"""A one-dimensional affine generator trained by optimal transport, a KL term, or both.

Part of :mod:`kllab.maths.transport`: :func:`train_affine_ot`, :class:`AffineRun`, :func:`quantile_points`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..distributions import GaussianMixture1D
from ..validation import check_choice, check_int, check_positive, check_real
from .sinkhorn import D64, SinkhornDivergence

__all__ = ["quantile_points", "AffineRun", "train_affine_ot"]


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
    from ..optim import Adam                               # torch.optim's Adam, without importing torch._dynamo
    from ..matching import mixture_score, surrogate_loss   # the DMD gradient of the f-distill module

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
