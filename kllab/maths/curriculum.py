r"""Which training problems carry gradient signal: pass rates, the signal-to-noise ratio of on-policy
distillation on a chain of steps, and the efficiency of weighting problems.

**The chain model.** A problem takes L steps; the student gets each step right with probability s, so
its pass rate is :math:`p = s^L`. A rollout runs until its first error. Steps whose prefix is still
correct are *on track*: there the teacher's next-token distribution (mass :math:`1-\varepsilon` on the
right token) gives a coherent per-step gradient :math:`g(s)` along the problem's signal direction. After
the first error the prefix is one the teacher's solution never visits, and its per-step targets are
modelled as incoherent: zero-mean noise of standard deviation c per step along that direction. With
:math:`N_{on}` the number of on-track steps, :math:`P(N_{on} = t) = s^{t-1}(1-s)` for t < L and
:math:`P(N_{on} = L) = s^{L-1}`, a rollout's gradient along the signal direction is

.. math::
    G = N_{on}\, g(s) + \sum_{j=1}^{L - N_{on}} \xi_j, \qquad \xi_j \sim \mathcal{N}(0, c^2),

with :math:`\mathbb{E}G = g(s)\,(1 - s^L)/(1 - s)` and
:math:`\mathrm{Var}\,G = g(s)^2\,\mathrm{Var}\,N_{on} + c^2\,\mathbb{E}[L - N_{on}]`. The per-step signal
is the negative gradient, in the logit of the right token, of the per-step KL to the teacher:

* forward, :math:`\mathrm{KL}(t\|s)`: :math:`g = (1 - \varepsilon) - s`;
* reverse, :math:`\mathrm{KL}(s\|t)`: :math:`g = s(1-s)\,(z^\star - z)`, :math:`z = \mathrm{logit}\,s`,
  :math:`z^\star = \mathrm{logit}(1-\varepsilon)`.

Both vanish as p → 1 (the student matches the teacher); only the reverse one also vanishes as p → 0,
where the student gives the right token almost no mass and the mode-seeking KL barely pulls on it.

**Weights.** Summing k-rollout gradient estimates of many problems with weights :math:`w_i`, the
aggregate's signal-to-noise ratio is :math:`\sum_i w_i\mu_i / \sqrt{\sum_i w_i^2\sigma_i^2}`, largest
for :math:`w_i \propto \mu_i / \sigma_i^2`; :func:`weight_efficiency` is the fraction of that best
squared SNR a weighting achieves (PACED, Xu et al., 2026, weights by :math:`p^\alpha(1-p)^\beta`).
"""

from __future__ import annotations

import math

import torch

from .divergences import _as_tensor
from .validation import check_choice, check_int, check_no_nan, check_real

__all__ = ["CHAIN_DIRECTIONS", "step_signal", "on_track_pmf", "chain_gradient_moments", "chain_snr",
           "sample_chain_gradients", "optimal_weights", "weight_efficiency"]

CHAIN_DIRECTIONS = ("forward", "reverse")


def _pass_rate(pass_rate) -> torch.Tensor:
    p = _as_tensor(pass_rate).to(torch.float64)
    check_no_nan("pass_rate", p)
    if ((p <= 0) | (p >= 1)).any():
        raise ValueError(f"pass_rate must be in (0, 1) (open: the chain model needs 0 < s < 1); "
                         f"got values from {p.min().item():g} to {p.max().item():g}")
    return p


def _check_eps(teacher_eps) -> float:
    return check_real("teacher_eps", teacher_eps, low=0.0, high=0.5, low_open=True, high_open=True)


def step_signal(step_prob, direction: str = "forward", teacher_eps: float = 1e-3) -> torch.Tensor:
    r"""Per-step distillation signal at an on-track step; the teacher (mass 1 − ε on the right token) is the reference.

    The negative derivative of the per-step KL in the logit z of the right token, for a binary
    (right, wrong) step where the student puts s on the right token:

    .. math::
        \text{forward } \mathrm{KL}(t\|s):\ (1-\varepsilon) - s, \qquad
        \text{reverse } \mathrm{KL}(s\|t):\ s(1-s)\big(z^\star - z\big)

    with :math:`z = \log\frac{s}{1-s}`, :math:`z^\star = \log\frac{1-\varepsilon}{\varepsilon}`.

    Parameters
    ----------
    step_prob : Tensor in (0, 1)
        s, the student's per-step probability of the right token.
    direction : {"forward", "reverse"}
    teacher_eps : float in (0, 0.5)

    >>> [round(v, 4) for v in step_signal(torch.tensor([0.1, 0.5, 0.9]), "reverse", 0.01).tolist()]
    [0.6113, 1.1488, 0.2158]
    """
    check_choice("direction", direction, CHAIN_DIRECTIONS)
    eps = _check_eps(teacher_eps)
    s = _as_tensor(step_prob).to(torch.float64)
    if direction == "forward":
        return (1 - eps) - s
    z, z_star = torch.logit(s), math.log((1 - eps) / eps)
    return s * (1 - s) * (z_star - z)


def on_track_pmf(step_prob, length: int) -> torch.Tensor:
    r"""Law of the number of on-track steps of one rollout: :math:`P(N_{on} = t)`, t = 1, ..., L.

    .. math::
        P(N_{on} = t) = s^{t-1}(1-s) \ (t < L), \qquad P(N_{on} = L) = s^{L-1}

    Returns
    -------
    Tensor, shape (..., L)

    >>> on_track_pmf(torch.tensor(0.5), 3).tolist()
    [0.5, 0.25, 0.25]
    """
    length = check_int("length", length, low=1)
    s = _as_tensor(step_prob).to(torch.float64)[..., None]
    t = torch.arange(1, length + 1, dtype=torch.float64)
    pmf = s ** (t - 1) * (1 - s)
    return torch.cat([pmf[..., :-1], s ** (length - 1)], dim=-1)


def chain_gradient_moments(pass_rate, length: int, *, direction: str = "forward", teacher_eps: float = 1e-3,
                           off_track_noise: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and variance of one rollout's gradient along a problem's signal direction (the chain model).

    .. math::
        \mathbb{E}\,G = g(s)\,\frac{1 - s^L}{1 - s}, \qquad
        \mathrm{Var}\,G = g(s)^2\,\mathrm{Var}\,N_{on} + c^2\,\big(L - \mathbb{E}N_{on}\big),
        \qquad s = p^{1/L}

    Parameters
    ----------
    pass_rate : Tensor in (0, 1)
        The student's pass rate p on the problem.
    length : int ≥ 1
        Steps L of the chain.
    direction : {"forward", "reverse"}
        The per-step KL (see :func:`step_signal`).
    teacher_eps : float in (0, 0.5)
    off_track_noise : float ≥ 0
        c, the standard deviation of an off-track step's incoherent gradient.

    Returns
    -------
    (mean, var) : Tensors, the shape of ``pass_rate``

    >>> m, v = chain_gradient_moments(torch.tensor(0.5), 1, off_track_noise=0.0)   # one step: G = 1 - eps - p
    >>> round(m.item(), 6), v.item()
    (0.499, 0.0)
    """
    p = _pass_rate(pass_rate)
    length = check_int("length", length, low=1)
    c = check_real("off_track_noise", off_track_noise, low=0.0)
    s = p ** (1.0 / length)
    g = step_signal(s, direction, teacher_eps)
    pmf = on_track_pmf(s, length)
    t = torch.arange(1, length + 1, dtype=torch.float64)
    mean_on = (pmf * t).sum(-1)
    var_on = (pmf * t ** 2).sum(-1) - mean_on ** 2
    return g * mean_on, g ** 2 * var_on + c ** 2 * (length - mean_on)


def chain_snr(pass_rate, length: int, rollouts: int, **kwargs) -> torch.Tensor:
    r"""Signal-to-noise ratio of a problem's k-rollout mean gradient: :math:`\mathbb{E}G / \sqrt{\mathrm{Var}\,G / k}`.

    Keyword arguments as in :func:`chain_gradient_moments`.

    >>> snr = chain_snr(torch.tensor([1e-4, 0.3, 0.99]), 4, 8, direction="reverse")
    >>> bool(snr[1] > snr[0] and snr[1] > snr[2])
    True
    """
    rollouts = check_int("rollouts", rollouts, low=1)
    mean, var = chain_gradient_moments(pass_rate, length, **kwargs)
    return mean / torch.sqrt(var / rollouts)


def sample_chain_gradients(pass_rate, length: int, n: int, *, direction: str = "forward", teacher_eps: float = 1e-3,
                           off_track_noise: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Monte Carlo rollouts of the chain model: n gradients G per pass rate, by simulating the steps.

    Each rollout draws its L steps as Bernoulli(s) trials, counts the steps before and at the first
    error (on track) and draws one N(0, c²) term per later step. An independent check of
    :func:`chain_gradient_moments`.

    Returns
    -------
    Tensor, shape (..., n)

    >>> g = sample_chain_gradients(torch.tensor(0.3), 8, 20000, generator=torch.Generator().manual_seed(0))
    >>> m, v = chain_gradient_moments(torch.tensor(0.3), 8)
    >>> bool(abs(g.mean() - m) < 4 * (v / 20000).sqrt())
    True
    """
    p = _pass_rate(pass_rate)
    length = check_int("length", length, low=1)
    n = check_int("n", n, low=1)
    c = check_real("off_track_noise", off_track_noise, low=0.0)
    s = p ** (1.0 / length)
    g = step_signal(s, direction, teacher_eps)
    right = torch.rand(*p.shape, n, length, generator=generator, dtype=torch.float64) < s[..., None, None]
    prefix_ok = torch.cumprod(torch.cat([torch.ones_like(right[..., :1]), right[..., :-1]], -1).double(), -1)
    n_on = prefix_ok.sum(-1)                                   # steps whose prefix is still correct
    noise = torch.randn(*p.shape, n, length, generator=generator, dtype=torch.float64)
    off = (noise * (1 - prefix_ok)).sum(-1) * c
    return n_on * g[..., None] + off


def optimal_weights(mean, var) -> torch.Tensor:
    r"""The problem weights that maximise the aggregate signal-to-noise ratio: :math:`w_i \propto \mu_i / \sigma_i^2`.

    Maximising :math:`\sum_i w_i\mu_i / \sqrt{\sum_i w_i^2\sigma_i^2}` is Cauchy-Schwarz on
    :math:`(w_i\sigma_i)` and :math:`(\mu_i/\sigma_i)`: the matched filter. Scaled to a maximum of 1.

    >>> optimal_weights(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0])).tolist()
    [1.0, 0.5]
    """
    mean, var = _as_tensor(mean), _as_tensor(var)
    if (var <= 0).any():
        raise ValueError(f"var must be > 0; got a minimum of {var.min().item():g}")
    w = mean / var
    return w / w.abs().max()


def weight_efficiency(weights, mean, var) -> torch.Tensor:
    r"""Fraction of the best attainable squared SNR that a weighting of the problems reaches (over the last axis).

    .. math::
        \eta(w) = \frac{\big(\sum_i w_i \mu_i\big)^2}{\sum_i w_i^2 \sigma_i^2 \, \sum_i \mu_i^2/\sigma_i^2} \in [0, 1]

    1 exactly for :math:`w \propto \mu/\sigma^2`. If :math:`w = w^\star(1 + \delta h)` with
    :math:`|h| \le 1`, then :math:`1 - \eta = \delta^2\,\mathrm{Var}_\pi h / (1 + 2\delta\,\mathbb{E}_\pi h +
    \delta^2\,\mathbb{E}_\pi h^2)` with :math:`\pi_i \propto \mu_i^2/\sigma_i^2`, at most :math:`\delta^2`:
    a multiplicative misspecification of size δ costs only δ² of efficiency.

    >>> m, v = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([1.0, 2.0, 1.0])
    >>> weight_efficiency(optimal_weights(m, v), m, v).item(), round(weight_efficiency(torch.ones(3), m, v).item(), 4)
    (1.0, 0.9423)
    """
    w, mean, var = _as_tensor(weights), _as_tensor(mean), _as_tensor(var)
    if (var <= 0).any():
        raise ValueError(f"var must be > 0; got a minimum of {var.min().item():g}")
    denom = (w ** 2 * var).sum(-1) * (mean ** 2 / var).sum(-1)
    return (w * mean).sum(-1) ** 2 / denom
