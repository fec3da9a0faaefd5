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

__all__ = ["Grid1D", "GaussianMixture1D", "two_modes"]


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
