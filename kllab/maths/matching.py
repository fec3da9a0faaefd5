r"""Distribution matching for one-step generators: the f-divergence gradient (f-distill).

A one-step generator maps noise to samples, :math:`x = G_\theta(z)` with
:math:`z \sim \mathcal{N}(0, 1)`, and has a density :math:`q_\theta`; the teacher :math:`p` is the
reference (math order, as everywhere in kllab). Xu, Nie and Vahdat (2025) show that the gradient of
:math:`D_f(p \| q_\theta) = \int q_\theta f(p / q_\theta)\,dx` is a score difference times a
density-ratio weight:

.. math::
    \nabla_\theta D_f(p \| q_\theta)
    = -\,\mathbb{E}_z\Big[ h\big(r(x)\big)\,\big(\nabla_x \log p(x) - \nabla_x \log q_\theta(x)\big)
      \,\frac{\partial x}{\partial \theta} \Big],
    \qquad r = \frac{p}{q_\theta},\quad h(r) = r^2 f''(r).

Reverse KL, KL(q‖p), has :math:`h \equiv 1` (variational score distillation, DMD); forward KL,
KL(p‖q), has :math:`h = r`; Jensen-Shannon has :math:`h = r / (2(1 + r))`. The weights themselves
live in :data:`kllab.maths.divergences.F_DIVERGENCES`; this module adds them in log space, the exact
gradient for an affine Gaussian student :math:`x = \mu + \sigma z` against a Gaussian-mixture
teacher, the surrogate loss whose autograd gradient is the formula, and a training loop.

Reference: Y. Xu, W. Nie, A. Vahdat. *One-step Diffusion Models with f-Divergence Distribution
Matching.* 2025. arXiv:2502.15681.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .distributions import GaussianMixture1D
from .optim import Adam
from .validation import check_choice, check_int, check_positive, check_real

__all__ = ["MATCHING_DIVERGENCES", "log_weight", "mixture_score", "gaussian_score", "surrogate_loss",
           "fdistill_gradient", "MatchingRun", "train_affine"]

_LOG2 = math.log(2.0)

_LOG_WEIGHTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "reverse": lambda lr: torch.zeros_like(lr),                      # h = 1
    "forward": lambda lr: lr,                                        # h = r
    "js": lambda lr: -_LOG2 - F.softplus(-lr),                        # h = r / (2 (1 + r))
    "hellinger2": lambda lr: math.log(0.25) + 0.5 * lr,              # h = sqrt(r) / 4
    "chi2": lambda lr: _LOG2 + 2.0 * lr,                             # h = 2 r^2
}

MATCHING_DIVERGENCES = tuple(_LOG_WEIGHTS)
"""Names of :data:`kllab.maths.divergences.F_DIVERGENCES` whose weight h is available in log space."""


def _check_f(f: str) -> str:
    return check_choice("f", f, MATCHING_DIVERGENCES)


def _mixture_logp_score(target: GaussianMixture1D, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-density and score of the mixture at ``x``, in closed form (no autograd, no validation)."""
    u = (x[..., None] - target.means) / target.sigmas
    joint = -0.5 * u ** 2 - target.sigmas.log() + target.weights.log() - 0.5 * math.log(2 * math.pi)
    logp = torch.logsumexp(joint, dim=-1)
    score = -((joint - logp[..., None]).exp() * u / target.sigmas).sum(-1)
    return logp, score


def _check_target(target) -> GaussianMixture1D:
    if not isinstance(target, GaussianMixture1D):
        raise ValueError(f"target must be a GaussianMixture1D (the teacher p); got {type(target).__name__}")
    return target


def log_weight(log_ratio, f: str = "js") -> torch.Tensor:
    r"""Log of the f-distill weight, :math:`\log h(r)`, from :math:`\log r = \log p - \log q`.

    .. math::
        h(r) = r^2 f''(r): \quad 1 \text{ (reverse)},\quad r \text{ (forward)},\quad
        \frac{r}{2(1+r)} \text{ (js)},\quad \frac{\sqrt r}{4} \text{ (hellinger2)},\quad 2r^2 \text{ (chi2)}

    Equal to ``log(F_DIVERGENCES[f].weight(r))`` but finite where :math:`r` itself would over- or
    underflow (far in the tails of p or q).

    Parameters
    ----------
    log_ratio : Tensor, shape (...)
        :math:`\log r(x) = \log p(x) - \log q(x)`, p the reference (teacher), q the model (student).
    f : {"reverse", "forward", "js", "hellinger2", "chi2"}

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> log_weight(torch.tensor([0.0, 800.0], dtype=torch.float64), "js").exp().tolist()
    [0.25, 0.5]
    """
    f = _check_f(f)
    log_ratio = torch.as_tensor(log_ratio, dtype=torch.float64)
    return _LOG_WEIGHTS[f](log_ratio)


def mixture_score(target: GaussianMixture1D, x) -> torch.Tensor:
    r"""The score :math:`\partial_x \log p(x)` of a 1-D Gaussian mixture p, in closed form.

    .. math::
        \partial_x \log p(x) = -\sum_k \pi_k(x)\, \frac{x - m_k}{s_k^2}, \qquad
        \pi_k(x) = \frac{w_k \mathcal{N}(x; m_k, s_k^2)}{\sum_j w_j \mathcal{N}(x; m_j, s_j^2)}

    No autograd, so it is cheap inside a training loop (``target.score`` uses autograd).

    Parameters
    ----------
    target : GaussianMixture1D
    x : Tensor, shape (...)

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> from kllab.maths.distributions import two_modes
    >>> p, x = two_modes(3.0), torch.linspace(-6.0, 6.0, 7, dtype=torch.float64)
    >>> bool(torch.allclose(mixture_score(p, x), p.score(x)))
    True
    """
    target = _check_target(target)
    return _mixture_logp_score(target, torch.as_tensor(x, dtype=torch.float64))[1]


def gaussian_score(x, mu: float, sigma: float) -> torch.Tensor:
    r"""The score of the student :math:`q = \mathcal{N}(\mu, \sigma^2)`: :math:`-(x - \mu)/\sigma^2`.

    >>> gaussian_score([0.0, 2.0], 1.0, 2.0).tolist()
    [0.25, -0.25]
    """
    mu = check_real("mu", mu)
    sigma = check_positive("sigma", sigma)
    x = torch.as_tensor(x, dtype=torch.float64)
    return -(x - mu) / sigma ** 2


def surrogate_loss(x: torch.Tensor, log_ratio, score_diff, f: str = "js", *,
                   normalize: bool = False) -> torch.Tensor:
    r"""Per-sample f-distill surrogate; its mean's autograd gradient is the f-divergence gradient.

    .. math::
        \ell_i = -\,\mathrm{sg}\big[h(r(x_i))\,(\nabla_x \log p(x_i) - \nabla_x \log q(x_i))\big]\cdot x_i,
        \qquad \nabla_\theta\, \tfrac1n \textstyle\sum_i \ell_i \approx \nabla_\theta D_f(p \| q_\theta)

    where sg stops the gradient, p is the teacher (reference) and q the student, and the
    :math:`x_i = G_\theta(z_i)` are the student's samples, carrying the graph to θ.

    Parameters
    ----------
    x : Tensor, shape (n,)
        Generator samples (with grad).
    log_ratio : Tensor, shape (n,)
        :math:`\log p(x_i) - \log q(x_i)` (detached inside).
    score_diff : Tensor, shape (n,)
        :math:`\nabla_x \log p(x_i) - \nabla_x \log q(x_i)` (detached inside).
    f : {"reverse", "forward", "js", "hellinger2", "chi2"}
    normalize : bool
        Divide the weights by their batch mean, as the paper does in practice (this rescales the
        gradient by :math:`1/\mathbb{E}_q[h]` and tames the variance of large h).

    Returns
    -------
    Tensor, shape (n,)
        Per-sample terms; the training loss is their mean.

    >>> import torch
    >>> x = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    >>> zero = torch.zeros(2, dtype=torch.float64)
    >>> surrogate_loss(x, zero, torch.tensor([2.0, 4.0]), "reverse").mean().backward()
    >>> x.grad.tolist()
    [-1.0, -2.0]
    """
    f = _check_f(f)
    if not torch.is_tensor(x) or x.ndim != 1:
        raise ValueError(f"x must be a 1-D tensor of generator samples; got {getattr(x, 'shape', type(x))}")
    log_ratio = torch.as_tensor(log_ratio, dtype=x.dtype).detach()
    score_diff = torch.as_tensor(score_diff, dtype=x.dtype).detach()
    for name, t in (("log_ratio", log_ratio), ("score_diff", score_diff)):
        if t.shape != x.shape:
            raise ValueError(f"{name} must have the shape of x, {tuple(x.shape)}; got {tuple(t.shape)}")
    h = _LOG_WEIGHTS[f](log_ratio).exp()
    if normalize:
        h = h / h.mean()
    return -(h * score_diff) * x


def fdistill_gradient(target: GaussianMixture1D, mu: float, sigma: float, f: str = "js", *,
                      n: int = 8001) -> torch.Tensor:
    r"""Exact f-distill gradient of :math:`D_f(p \| \mathcal{N}(\mu, \sigma^2))` in (μ, σ); p is the teacher.

    For the affine student :math:`x = \mu + \sigma z`, :math:`\partial x/\partial(\mu, \sigma) = (1, z)`:

    .. math::
        \nabla_{(\mu,\sigma)} D_f = -\int q(x)\, h(r(x))\, \big(s_p(x) - s_q(x)\big)
        \Big(1, \frac{x - \mu}{\sigma}\Big)\,dx

    computed by the trapezoid rule on ``n`` points covering 12 standard deviations of every
    component of p and of q, with :math:`q\,h(r)` formed in log space.

    Parameters
    ----------
    target : GaussianMixture1D
        The teacher p.
    mu : float
    sigma : float > 0
    f : {"reverse", "forward", "js", "hellinger2", "chi2"}
    n : int ≥ 101
        Quadrature points.

    Returns
    -------
    Tensor, shape (2,)
        :math:`(\partial D_f/\partial\mu, \partial D_f/\partial\sigma)`.

    Notes
    -----
    For ``"forward"`` the result is the closed form
    :math:`\big((\mu - \mathbb{E}_p x)/\sigma^2,\; 1/\sigma - \mathbb{E}_p (x-\mu)^2/\sigma^3\big)`.

    >>> from kllab.maths.distributions import two_modes
    >>> [round(g, 6) for g in fdistill_gradient(two_modes(3.0), 1.0, 1.5, "forward").tolist()]
    [0.444444, -2.592593]
    """
    target = _check_target(target)
    f = _check_f(f)
    mu = check_real("mu", mu)
    sigma = check_positive("sigma", sigma)
    n = check_int("n", n, low=101)
    lo = min(mu - 12.0 * sigma, float((target.means - 12.0 * target.sigmas).min()))
    hi = max(mu + 12.0 * sigma, float((target.means + 12.0 * target.sigmas).max()))
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    z = (x - mu) / sigma
    logq = -0.5 * z ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
    logp, score_p = _mixture_logp_score(target, x)
    qh = (logq + _LOG_WEIGHTS[f](logp - logq)).exp()
    diff = score_p + z / sigma
    dx_dtheta = torch.stack([torch.ones_like(x), z])
    return -torch.trapezoid(qh * diff * dx_dtheta, x, dim=-1)


@dataclass
class MatchingRun:
    """Result of :func:`train_affine`.

    Attributes
    ----------
    f : str
        The divergence.
    mu, sigma : float
        The generator at the end of training.
    path : Tensor, shape (steps + 1, 2)
        (μ, σ) before the first step and after every step.
    """

    f: str
    mu: float
    sigma: float
    path: torch.Tensor = field(repr=False)


def train_affine(target: GaussianMixture1D, f: str = "js", *, init: tuple[float, float] = (1.0, 1.5),
                 steps: int = 600, batch: int | None = 512, lr: float = 0.05, seed: int = 0,
                 normalize: bool = True, decay: bool = True) -> MatchingRun:
    r"""Train the generator :math:`x = \mu + \sigma z` to minimise :math:`D_f(p \| q)` by f-distill.

    Each step draws ``batch`` noises :math:`z_i` from a ``torch.Generator`` seeded with ``seed``,
    evaluates the exact teacher score and ratio at :math:`x_i = \mu + \sigma z_i`, and takes an Adam
    step on (μ, log σ) with the gradient of the mean of :func:`surrogate_loss`; the learning rate
    decays linearly to 0 over the run. With ``batch=None`` it uses the exact expectation
    (:func:`fdistill_gradient`) instead of samples: deterministic gradient descent on :math:`D_f`.

    .. math::
        \theta \leftarrow \mathrm{Adam}\Big(-\tfrac1n\textstyle\sum_i
        \mathrm{sg}\big[h(r(x_i))(s_p(x_i) - s_q(x_i))\big]\, \partial x_i/\partial\theta\Big)

    Parameters
    ----------
    target : GaussianMixture1D
        The teacher p (the reference).
    f : {"reverse", "forward", "js", "hellinger2", "chi2"}
    init : (mu, sigma)
    steps : int ≥ 1
    batch : int ≥ 1 or None
    lr : float > 0
    seed : int
    normalize : bool
        Normalise the weights by their batch mean, as the paper does (see :func:`surrogate_loss`);
        ignored when ``batch=None``.
    decay : bool
        Decay the learning rate linearly from ``lr`` to 0 (the last iterates then average out
        the sampling noise); False keeps it constant.

    Returns
    -------
    MatchingRun

    >>> from kllab.maths.distributions import two_modes
    >>> run = train_affine(two_modes(3.0), "reverse", init=(2.5, 1.0), steps=300, lr=0.1)
    >>> round(run.mu, 1), round(run.sigma, 1)
    (3.0, 1.0)
    """
    target = _check_target(target)
    f = _check_f(f)
    mu0 = check_real("init[0] (mu)", init[0])
    sigma0 = check_positive("init[1] (sigma)", init[1])
    steps = check_int("steps", steps, low=1)
    if batch is not None:
        batch = check_int("batch", batch, low=1)
    lr = check_positive("lr", lr)
    gen = torch.Generator().manual_seed(check_int("seed", seed))
    mu = torch.tensor(mu0, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(sigma0), dtype=torch.float64, requires_grad=True)
    opt = Adam([mu, log_sigma], lr=lr)     # torch.optim.Adam's update, without importing torch._dynamo
    path = torch.empty(steps + 1, 2, dtype=torch.float64)
    path[0] = torch.tensor([mu0, sigma0])
    for t in range(steps):
        opt.zero_grad()
        if batch is None:
            sigma = log_sigma.detach().exp().item()
            g_mu, g_sigma = fdistill_gradient(target, mu.detach().item(), sigma, f).tolist()
            mu.grad = torch.tensor(g_mu, dtype=torch.float64)
            log_sigma.grad = torch.tensor(g_sigma * sigma, dtype=torch.float64)   # chain rule, dσ/dlogσ = σ
        else:
            z = torch.randn(batch, generator=gen, dtype=torch.float64)
            x = mu + log_sigma.exp() * z
            with torch.no_grad():
                logp, score_p = _mixture_logp_score(target, x)
                logq = -0.5 * z ** 2 - log_sigma - 0.5 * math.log(2 * math.pi)
                score_q = -z / log_sigma.exp()
            surrogate_loss(x, logp - logq, score_p - score_q, f, normalize=normalize).mean().backward()
        opt.step()
        if decay:
            opt.lr = lr * (1.0 - (t + 1) / steps)   # what torch's LambdaLR(lambda t: 1 - t / steps) sets
        with torch.no_grad():
            path[t + 1, 0] = mu
            path[t + 1, 1] = log_sigma.exp()
    return MatchingRun(f, float(path[-1, 0]), float(path[-1, 1]), path)
