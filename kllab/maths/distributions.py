r"""Targets for the toys: 1-D Gaussian mixtures and a grid that turns densities into
discrete log-probabilities, so that every divergence in :mod:`kllab.maths.divergences` applies.

On a fine grid with spacing Δ, :math:`\sum_i p_i \log(p_i/q_i)` with
:math:`p_i \propto p(x_i)\Delta` approximates :math:`\int p \log(p/q)\,dx`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .validation import check_int, check_positive, check_real

__all__ = ["Grid1D", "GaussianMixture1D", "two_modes", "discrete_gaussian", "with_floor"]


def _normal_cdf(z: torch.Tensor) -> torch.Tensor:
    """Phi(z) = erfc(-z / sqrt 2) / 2, accurate far into the left tail (``torch.special.ndtr`` loses digits there)."""
    return 0.5 * torch.special.erfc(-z / math.sqrt(2.0))


class Grid1D:
    r"""An evenly spaced grid on [low, high] with ``n`` points.

    Parameters
    ----------
    low, high : float
        The ends; ``low < high``.
    n : int ≥ 2

    Attributes
    ----------
    x : Tensor, shape (n,), float64
    dx : float

    >>> g = Grid1D(-1.0, 1.0, 5)
    >>> g.x.tolist(), g.dx
    ([-1.0, -0.5, 0.0, 0.5, 1.0], 0.5)
    """

    def __init__(self, low: float = -10.0, high: float = 10.0, n: int = 2001):
        self.low = check_real("low", low)
        self.high = check_real("high", high)
        if not self.high > self.low:
            raise ValueError(f"high must be > low; got low={low!r}, high={high!r}")
        self.n = check_int("n", n, low=2)
        self.x = torch.linspace(self.low, self.high, self.n, dtype=torch.float64)
        self.dx = (self.high - self.low) / (self.n - 1)

    def discretize(self, log_density: torch.Tensor) -> torch.Tensor:
        r"""Log-probabilities :math:`\log p_i = \log p(x_i) + \log\Delta` renormalised on the grid.

        Parameters
        ----------
        log_density : Tensor, shape (..., n)
            A log-density evaluated at :attr:`x`.

        Returns
        -------
        Tensor, shape (..., n)
            Log-probabilities that sum to one over the last axis (the mass outside
            [low, high] is dropped and the rest rescaled: keep the grid wide).
        """
        if log_density.shape[-1] != self.n:
            raise ValueError(f"log_density must have {self.n} values on its last axis (one per grid "
                             f"point); got shape {tuple(log_density.shape)}")
        return torch.log_softmax(log_density, dim=-1)

    def __repr__(self) -> str:
        return f"Grid1D(low={self.low}, high={self.high}, n={self.n})"


class GaussianMixture1D:
    r"""A 1-D Gaussian mixture :math:`p(x) = \sum_k w_k \mathcal{N}(x; \mu_k, \sigma_k^2)`.

    Built on ``torch.distributions.MixtureSameFamily``.

    Parameters
    ----------
    means, sigmas, weights : sequences of length K
        Weights must be > 0; they are normalised to sum to 1 (they are mixture weights,
        not probabilities of an outcome, so this is not a silent renormalisation of data).

    >>> gm = GaussianMixture1D([-3.0, 3.0], [1.0, 1.0])
    >>> round(gm.mean, 6), round(gm.variance, 6)
    (0.0, 10.0)
    """

    def __init__(self, means: Sequence[float], sigmas: Sequence[float],
                 weights: Sequence[float] | None = None):
        means = [check_real(f"means[{i}]", m) for i, m in enumerate(means)]
        sigmas = [check_positive(f"sigmas[{i}]", s) for i, s in enumerate(sigmas)]
        if len(means) == 0 or len(means) != len(sigmas):
            raise ValueError(f"means and sigmas must be non-empty and of equal length; "
                             f"got {len(means)} and {len(sigmas)}")
        if weights is None:
            weights = [1.0] * len(means)
        weights = [check_positive(f"weights[{i}]", w) for i, w in enumerate(weights)]
        if len(weights) != len(means):
            raise ValueError(f"weights must have {len(means)} entries; got {len(weights)}")
        total = sum(weights)
        self.means = torch.tensor(means, dtype=torch.float64)
        self.sigmas = torch.tensor(sigmas, dtype=torch.float64)
        self.weights = torch.tensor([w / total for w in weights], dtype=torch.float64)
        self._dist = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=self.weights),
            torch.distributions.Normal(self.means, self.sigmas))

    @property
    def mean(self) -> float:
        """The mixture mean :math:`\\sum_k w_k \\mu_k`."""
        return float(self._dist.mean)

    @property
    def variance(self) -> float:
        """The mixture variance (law of total variance)."""
        return float(self._dist.variance)

    def log_prob(self, x) -> torch.Tensor:
        """Log-density at ``x`` (any shape)."""
        return self._dist.log_prob(torch.as_tensor(x, dtype=torch.float64))

    def cdf(self, x) -> torch.Tensor:
        r"""The distribution function :math:`F(x) = \sum_k w_k \Phi\big((x - \mu_k)/\sigma_k\big)` (any shape).

        >>> round(two_modes(3.0).cdf(0.0).item(), 12)
        0.5
        """
        x = torch.as_tensor(x, dtype=torch.float64)
        return (self.weights * _normal_cdf((x[..., None] - self.means) / self.sigmas)).sum(-1)

    def sf(self, x) -> torch.Tensor:
        r"""The survival function :math:`1 - F(x)`, computed directly (accurate far in the right tail)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        return (self.weights * _normal_cdf((self.means - x[..., None]) / self.sigmas)).sum(-1)

    def quantile(self, u) -> torch.Tensor:
        r"""The quantile function :math:`F^{-1}(u)`, the inverse of :meth:`cdf`, for ``u`` in [0, 1] (any shape).

        Solved by bisection in float64 (the mixture CDF has no closed-form inverse), on :meth:`cdf` for
        :math:`u \le \tfrac12` and on :meth:`sf` above, so both tails keep their precision;
        ``u = 0`` gives ``-inf`` and ``u = 1`` gives ``inf``.

        Parameters
        ----------
        u : Tensor or float, values in [0, 1]

        Returns
        -------
        Tensor, the shape of ``u``

        >>> gm = GaussianMixture1D([-1.0, 2.0], [0.5, 1.5], [0.3, 0.7])
        >>> u = torch.tensor([0.01, 0.3, 0.5, 0.99], dtype=torch.float64)
        >>> bool(torch.allclose(gm.cdf(gm.quantile(u)), u, rtol=1e-12, atol=0))
        True
        >>> [round(v, 10) + 0.0 for v in two_modes(3.0).quantile(torch.tensor([0.0, 0.5, 1.0])).tolist()]
        [-inf, 0.0, inf]
        """
        u = torch.as_tensor(u, dtype=torch.float64)
        if torch.isnan(u).any() or (u < 0).any() or (u > 1).any():
            bad = u[torch.isnan(u) | (u < 0) | (u > 1)].flatten()[0].item()
            raise ValueError(f"u must be probabilities in [0, 1]; got {bad!r}")
        upper = u > 0.5
        target = torch.where(upper, 1.0 - u, u)          # solve F(x) = u below the median, S(x) = 1 - u above it
        spread = float(self.sigmas.max())
        lo = torch.full_like(u, float(self.means.min()) - 40.0 * spread)
        hi = torch.full_like(u, float(self.means.max()) + 40.0 * spread)
        for _ in range(110):                              # the bracket shrinks to float64 resolution
            mid = 0.5 * (lo + hi)
            below = torch.where(upper, self.sf(mid) > target, self.cdf(mid) < target)
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        x = 0.5 * (lo + hi)
        x = torch.where(u == 0, torch.full_like(x, -math.inf), x)
        return torch.where(u == 1, torch.full_like(x, math.inf), x)

    def score(self, x) -> torch.Tensor:
        r"""The score :math:`\partial_x \log p(x)`, by autograd."""
        x = torch.as_tensor(x, dtype=torch.float64).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.log_prob(x).sum(), x)
        return grad

    def sample(self, n: int, *, seed: int = 0) -> torch.Tensor:
        """``n`` samples, reproducible from ``seed``."""
        n = check_int("n", n, low=1)
        gen = torch.Generator().manual_seed(int(seed))
        comp = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        z = torch.randn(n, generator=gen, dtype=torch.float64)
        return self.means[comp] + self.sigmas[comp] * z

    def smooth(self, sigma_t: float) -> GaussianMixture1D:
        r"""The mixture convolved with :math:`\mathcal{N}(0, \sigma_t^2)` (a diffusion noise level)."""
        sigma_t = check_real("sigma_t", sigma_t, low=0.0)
        sig = (self.sigmas ** 2 + sigma_t ** 2).sqrt()
        return GaussianMixture1D(self.means.tolist(), sig.tolist(), self.weights.tolist())

    def __repr__(self) -> str:
        return (f"GaussianMixture1D(means={self.means.tolist()}, sigmas={self.sigmas.tolist()}, "
                f"weights={[round(w, 4) for w in self.weights.tolist()]})")


def two_modes(separation: float, sigma: float = 1.0) -> GaussianMixture1D:
    r"""The running example: :math:`\tfrac12\mathcal{N}(-s, \sigma^2) + \tfrac12\mathcal{N}(s, \sigma^2)`.

    Its variance is :math:`\sigma^2 + s^2`, so the forward-KL Gaussian fit has
    standard deviation :math:`\sqrt{\sigma^2 + s^2}`.

    >>> round(math.sqrt(two_modes(3.0).variance), 4)
    3.1623
    """
    s = check_real("separation", separation, low=0.0)
    return GaussianMixture1D([-s, s], [sigma, sigma])


def discrete_gaussian(positions, mu, sigma) -> torch.Tensor:
    r"""Log-probabilities of a Gaussian discretised on points: :math:`q_i \propto e^{-(x_i - \mu)^2 / 2\sigma^2}`.

    A two-parameter distribution over a finite, ordered set of outcomes (the bins of a vocabulary,
    say): the "one-mode student" of distillation toys. Differentiable in ``mu`` and ``sigma``, which
    broadcast against each other (one distribution per element). It is an exponential family with
    sufficient statistics :math:`(x, x^2)`, so the forward-KL fit to any p matches p's mean and
    variance on the points.

    Parameters
    ----------
    positions : Tensor, shape (n,)
        The outcomes' positions.
    mu, sigma : Tensor or float, broadcastable; sigma > 0

    Returns
    -------
    Tensor, shape (*broadcast(mu, sigma).shape, n)
        Log-probabilities on the last axis.

    >>> x = torch.arange(5, dtype=torch.float64)
    >>> q = discrete_gaussian(x, 2.0, 1.0).exp()
    >>> round(q.sum().item(), 12), round((q * x).sum().item(), 12)
    (1.0, 2.0)
    """
    positions = torch.as_tensor(positions, dtype=torch.float64)
    if positions.ndim != 1 or positions.numel() < 1:
        raise ValueError(f"positions must be a 1-D tensor of at least one point; got shape {tuple(positions.shape)}")
    mu = torch.as_tensor(mu, dtype=torch.float64)
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if not (sigma.detach() > 0).all():
        raise ValueError(f"sigma must be > 0; got {sigma.detach().min().item()!r}")
    return torch.log_softmax(-0.5 * ((positions - mu[..., None]) / sigma[..., None]) ** 2, dim=-1)


def with_floor(logp: torch.Tensor, floor: float) -> torch.Tensor:
    r"""Mix a distribution with the uniform one: :math:`\log\big((1 - \phi)\,p_i + \phi / n\big)`.

    Gives every outcome a probability of at least :math:`\phi/n` (a softmax teacher is never
    exactly zero anywhere), which keeps reverse KL finite.

    Parameters
    ----------
    logp : Tensor, shape (..., n)
        Log-probabilities on the last axis.
    floor : float in [0, 1]
        The uniform mass :math:`\phi`.

    >>> p = torch.tensor([0.0, -math.inf], dtype=torch.float64)
    >>> [round(v, 12) for v in with_floor(p, 0.1).exp().tolist()]
    [0.95, 0.05]
    """
    floor = check_real("floor", floor, low=0.0, high=1.0)
    logp = torch.as_tensor(logp, dtype=torch.float64)
    if floor == 0.0:
        return logp
    n = logp.shape[-1]
    uniform = torch.full_like(logp, math.log(floor / n))
    if floor == 1.0:
        return uniform
    return torch.logaddexp(logp + math.log1p(-floor), uniform)
