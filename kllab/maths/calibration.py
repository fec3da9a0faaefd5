r"""Calibration of a classifier's probabilities: reliability diagrams and the expected calibration error.

A classifier is calibrated when, among the inputs it labels with confidence c, a fraction c is right.
Binning the top-label confidence into B equal bins :math:`I_b = ((b-1)/B, b/B]` (Guo et al., 2017),

.. math::
    \mathrm{ECE} = \sum_{b=1}^{B} \frac{|I_b|}{n}\, \big|\mathrm{acc}(I_b) - \mathrm{conf}(I_b)\big| ,

the gap between the reliability diagram and its diagonal, weighted by how many inputs each bin holds.
A low-capacity student distilled with a mass-covering loss tends to be under-confident, one distilled
with a mode-seeking loss over-confident; BD-KD (Amara et al., 2022) balances the two for calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .divergences import _as_tensor
from .validation import check_int, check_log_probs

__all__ = ["Reliability", "reliability", "expected_calibration_error"]


@dataclass(frozen=True)
class Reliability:
    """Per-bin statistics of top-label confidence; leading axes as in the input, bins on the last.

    Attributes
    ----------
    edges : Tensor, shape (B + 1,)
        Bin edges 0, 1/B, ..., 1; bin b holds confidences in (edges[b], edges[b + 1]].
    confidence, accuracy : Tensor, shape (..., B)
        Mean confidence and fraction correct in each bin (NaN for an empty bin).
    counts : Tensor, shape (..., B)
        Number of inputs in each bin.
    """

    edges: torch.Tensor
    confidence: torch.Tensor
    accuracy: torch.Tensor
    counts: torch.Tensor

    @property
    def ece(self) -> torch.Tensor:
        """Expected calibration error, shape (...)."""
        n = self.counts.sum(-1)
        gap = torch.where(self.counts > 0, (self.accuracy - self.confidence).abs(), torch.zeros((), dtype=n.dtype))
        return (self.counts * gap).sum(-1) / n


def _check(logp, labels) -> tuple[torch.Tensor, torch.Tensor]:
    logp = _as_tensor(logp)
    if logp.ndim < 2:
        raise ValueError(f"logp must have shape (..., N, K): N inputs, K classes; got {tuple(logp.shape)}")
    check_log_probs("logp", logp)
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices; got dtype {labels.dtype}")
    try:
        labels = labels.expand(logp.shape[:-1])
    except RuntimeError:
        raise ValueError(f"labels must have shape (N,) or {tuple(logp.shape[:-1])}; got {tuple(labels.shape)}") from None
    k = logp.shape[-1]
    if labels.numel() and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must be in [0, {k - 1}]; got values from {int(labels.min())} to {int(labels.max())}")
    return logp, labels


def reliability(logp, labels, n_bins: int = 15) -> Reliability:
    r"""Reliability-diagram data of predicted probabilities; ``labels`` are the reference classes.

    Parameters
    ----------
    logp : Tensor, shape (..., N, K)
        Log-probabilities of K classes for N inputs (leading axes: independent models, e.g. seeds).
    labels : Tensor of int, shape (N,) or (..., N)
    n_bins : int ≥ 1
        Equal-width bins of the top-label confidence.

    Returns
    -------
    Reliability
        With ``.ece`` the expected calibration error of each model.

    References
    ----------
    Guo, Pleiss, Sun, Weinberger. *On Calibration of Modern Neural Networks.* ICML 2017. arXiv:1706.04599.

    >>> import torch
    >>> logp = torch.tensor([[0.85, 0.15], [0.85, 0.15], [0.55, 0.45], [0.55, 0.45]]).log()
    >>> r = reliability(logp, torch.tensor([0, 1, 0, 0]), n_bins=10)
    >>> r.counts[[5, 8]].tolist(), r.accuracy[[5, 8]].tolist(), round(r.ece.item(), 6)   # 0.5*0.45 + 0.5*0.35
    ([2.0, 2.0], [1.0, 0.5], 0.4)
    """
    logp, labels = _check(logp, labels)
    n_bins = check_int("n_bins", n_bins, low=1)
    conf, pred = logp.max(-1)
    conf = conf.exp()
    correct = (pred == labels).to(conf.dtype)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=conf.dtype)
    # bucketize with right=False puts c in bin b when edges[b] < c <= edges[b + 1]
    which = torch.bucketize(conf, edges[1:-1].contiguous(), right=False)
    shape = (*conf.shape[:-1], n_bins)
    counts = torch.zeros(shape, dtype=conf.dtype).scatter_add_(-1, which, torch.ones_like(conf))
    conf_sum = torch.zeros(shape, dtype=conf.dtype).scatter_add_(-1, which, conf)
    acc_sum = torch.zeros(shape, dtype=conf.dtype).scatter_add_(-1, which, correct)
    nan = torch.full((), float("nan"), dtype=conf.dtype)
    confidence = torch.where(counts > 0, conf_sum / counts.clamp_min(1), nan)
    accuracy = torch.where(counts > 0, acc_sum / counts.clamp_min(1), nan)
    return Reliability(edges, confidence, accuracy, counts)


def expected_calibration_error(logp, labels, n_bins: int = 15) -> torch.Tensor:
    r"""Expected calibration error (ECE) of predicted probabilities; ``labels`` are the reference classes.

    .. math::
        \mathrm{ECE} = \sum_{b=1}^{B} \frac{|I_b|}{n}\, \big|\mathrm{acc}(I_b) - \mathrm{conf}(I_b)\big|

    Parameters
    ----------
    logp : Tensor, shape (..., N, K)
    labels : Tensor of int, shape (N,) or (..., N)
    n_bins : int ≥ 1

    Returns
    -------
    Tensor, shape (...)
        In [0, 1]; 0 for a perfectly calibrated classifier (on the bins).

    >>> import torch
    >>> always_sure_and_wrong = torch.tensor([[1.0, 0.0]] * 4).log()
    >>> expected_calibration_error(always_sure_and_wrong, torch.ones(4, dtype=torch.long)).item()
    1.0
    """
    return reliability(logp, labels, n_bins).ece
