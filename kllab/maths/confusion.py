r"""Confusion matrices, hard and soft, and the metrics built on them (binary classification).

A binary classifier's scores :math:`p_i \in [0, 1]` and labels :math:`y_i \in \{0, 1\}` give the
**confusion matrix**, four counts over the examples. With hard predictions :math:`h_i = \mathbf 1[p_i \ge t]`
(threshold :math:`t`, 1/2 by default):

.. math::
    \mathrm{TP} = \sum_i y_i h_i, \quad \mathrm{FP} = \sum_i (1-y_i) h_i, \quad
    \mathrm{FN} = \sum_i y_i (1-h_i), \quad \mathrm{TN} = \sum_i (1-y_i)(1-h_i).

**AnyLoss** (Han, Moniz, Chawla 2024) replaces :math:`h_i` by the **amplifier**

.. math::
    A(p) = \sigma\big(L\,(p - \tfrac12)\big) = \frac{1}{1 + e^{-L (p - 1/2)}},

a differentiable stand-in that pushes p towards 0 or 1 (``amplification`` is L; 1/L is a
temperature). The same four sums with :math:`A(p_i)` in place of :math:`h_i` are the **soft confusion
matrix**; they still add up to n, and TP + FN is still the number of positives P, whatever L.
Any metric :math:`M(\mathrm{TP}, \mathrm{FP}, \mathrm{FN}, \mathrm{TN})` then gives the loss
:math:`1 - M` (:func:`metric_loss`), differentiable in p.

**Soft tends to hard.** For every example, exactly,

.. math::
    |A(p_i) - \mathbf 1[p_i \ge \tfrac12]| = \sigma(-L\,|p_i - \tfrac12|) \;\le\; e^{-L |p_i - 1/2|}

(at :math:`p_i = 1/2` both sides are 1/2), so with :math:`E_1 = \sum_{y_i = 1}\sigma(-L|p_i - \frac12|)`
and :math:`E_0 = \sum_{y_i = 0}\sigma(-L|p_i - \frac12|)`:
:math:`|\Delta\mathrm{TP}| = |\Delta\mathrm{FN}| \le E_1` and :math:`|\Delta\mathrm{FP}| = |\Delta\mathrm{TN}| \le E_0`.
For the metrics (:func:`soft_hard_gap_bound`):

* accuracy :math:`(\mathrm{TP} + \mathrm{TN})/n`: gap :math:`\le (E_1 + E_0)/n`;
* balanced accuracy :math:`\frac12(\mathrm{TP}/P + \mathrm{TN}/N)`: gap :math:`\le \frac12(E_1/P + E_0/N)`
  (equality when all positives lie on one side of 1/2 and all negatives too);
* F1 :math:`= 2\mathrm{TP}/(2\mathrm{TP} + \mathrm{FP} + \mathrm{FN}) = 2\mathrm{TP}/(P + \mathrm{TP} + \mathrm{FP})`:
  with :math:`D = P + \mathrm{TP} + \mathrm{FP} \ge \max(P, 2\mathrm{TP})`,
  :math:`0 \le \partial F_1/\partial\mathrm{TP} = 2(P + \mathrm{FP})/D^2 \le 2/D` and
  :math:`|\partial F_1/\partial\mathrm{FP}| = 2\mathrm{TP}/D^2 \le 1/D`, so by the mean-value theorem on the
  segment between the two matrices (where :math:`D \ge P`) the gap is :math:`\le (2E_1 + E_0)/P`.

Every term decays like :math:`e^{-L\delta}` with :math:`\delta = \min_i |p_i - \frac12|`.

Conventions: scores are probabilities (apply ``torch.sigmoid`` to logits first); the sums run over
the last axis and the leading axes are kept (no hidden reduction over models or seeds); a ratio
whose denominator is 0 is 0 (scikit-learn's ``zero_division=0``).

References: D. Han, N. Moniz, N. V. Chawla, *AnyLoss: Transforming Classification Metrics into Loss
Functions*, KDD 2024 (arXiv:2405.14745). Z. C. Lipton, C. Elkan, B. Naryanaswamy, *Thresholding
Classifiers to Maximize F1 Score*, ECML-PKDD 2014 (arXiv:1402.1892).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from .validation import check_choice, check_no_nan, check_positive, check_real

__all__ = [
    "Confusion", "amplify", "amplifier_gap", "confusion", "hard_confusion", "soft_confusion",
    "accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f_beta", "f1",
    "geometric_mean", "METRICS", "metric_loss", "soft_hard_gap_bound",
]


class Confusion(NamedTuple):
    """The four counts of a (hard or soft) binary confusion matrix, each of shape ``batch``."""

    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    tn: torch.Tensor

    @property
    def positives(self) -> torch.Tensor:
        """P = TP + FN, the number of examples labelled 1 (the same for soft and hard matrices)."""
        return self.tp + self.fn

    @property
    def negatives(self) -> torch.Tensor:
        """N = FP + TN, the number of examples labelled 0."""
        return self.fp + self.tn

    @property
    def total(self) -> torch.Tensor:
        """n = TP + FP + FN + TN."""
        return self.tp + self.fp + self.fn + self.tn


def _as_tensor(x, name: str) -> torch.Tensor:
    if torch.is_tensor(x):
        return x
    try:
        return torch.as_tensor(x, dtype=torch.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a tensor or an array of numbers; got {type(x).__name__}") from err


def _check_scores(p) -> torch.Tensor:
    p = _as_tensor(p, "p")
    if not p.is_floating_point():
        raise ValueError(f"p must be a floating-point tensor of probabilities in [0, 1]; got dtype {p.dtype}")
    if p.ndim == 0:
        raise ValueError("p must have at least one axis (the examples); got a scalar")
    check_no_nan("p", p)
    if ((p < 0) | (p > 1)).any():
        bad = p[(p < 0) | (p > 1)].flatten()[0].item()
        raise ValueError(f"p must hold probabilities in [0, 1]; got {bad:.4g}. "
                         f"Did you pass logits? Apply torch.sigmoid first.")
    return p


def _check_labels(y, p: torch.Tensor) -> torch.Tensor:
    y = _as_tensor(y, "y")
    if y.shape != p.shape and not (y.ndim >= 1 and y.shape == p.shape[p.ndim - y.ndim:]):
        raise ValueError(f"y must have the shape of p, {tuple(p.shape)}, or of its trailing axes "
                         f"(e.g. ({p.shape[-1]},)); got {tuple(y.shape)}")
    if y.is_floating_point():
        check_no_nan("y", y)
    if not ((y == 0) | (y == 1)).all():
        bad = y[(y != 0) & (y != 1)].flatten()[0].item()
        raise ValueError(f"y must hold binary labels 0 or 1; got {bad!r}")
    return y.to(p.dtype)


def _check_amplification(amplification) -> float:
    return check_positive("amplification", amplification)


def amplify(p, amplification: float) -> torch.Tensor:
    r"""The amplifier :math:`A(p) = \sigma(L(p - 1/2))`, elementwise; ``amplification`` is L > 0.

    Parameters
    ----------
    p : Tensor, any shape, values in [0, 1]
        Probabilities (a model's sigmoid outputs).
    amplification : float > 0
        L: 1/L is a temperature; as L grows A(p) tends to the step 1[p > 1/2] (1/2 at p = 1/2).

    >>> amplify(torch.tensor([0.0, 0.5, 0.9], dtype=torch.float64), 73.0).round(decimals=6).tolist()
    [0.0, 0.5, 1.0]
    """
    p = _check_scores(p)
    return torch.sigmoid(_check_amplification(amplification) * (p - 0.5))


def amplifier_gap(p, amplification: float) -> torch.Tensor:
    r""":math:`\sigma(-L|p - 1/2|)`, which equals :math:`|A(p) - \mathbf 1[p \ge 1/2]|` (exactly; 1/2 at p = 1/2).

    >>> round(amplifier_gap(torch.tensor([0.6], dtype=torch.float64), 50.0).item(), 6)   # sigmoid(-5)
    0.006693
    """
    p = _check_scores(p)
    return torch.sigmoid(-_check_amplification(amplification) * (p - 0.5).abs())


def confusion(a, y) -> Confusion:
    r"""The confusion matrix of predictions ``a`` (hard 0/1 or soft in [0, 1]) against labels ``y``.

    .. math::
        \mathrm{TP} = \textstyle\sum_i y_i a_i,\ \mathrm{FP} = \sum_i (1-y_i) a_i,\
        \mathrm{FN} = \sum_i y_i(1-a_i),\ \mathrm{TN} = \sum_i (1-y_i)(1-a_i).

    Parameters
    ----------
    a : Tensor, shape (..., n), values in [0, 1]
    y : Tensor, shape (..., n) or (n,), values in {0, 1}

    Returns
    -------
    Confusion of four tensors of shape ``a.shape[:-1]`` (the sum over the examples, the last axis).

    >>> confusion(torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([1, 1, 0, 0]))
    Confusion(tp=tensor(1.), fp=tensor(1.), fn=tensor(1.), tn=tensor(1.))
    """
    a = _check_scores(a)
    y = _check_labels(y, a)
    return Confusion(tp=(y * a).sum(-1), fp=((1 - y) * a).sum(-1), fn=(y * (1 - a)).sum(-1),
                     tn=((1 - y) * (1 - a)).sum(-1))


def hard_confusion(p, y, threshold: float = 0.5) -> Confusion:
    """The confusion matrix of the hard predictions ``1[p >= threshold]``; ``threshold`` in [0, 1].

    >>> hard_confusion(torch.tensor([0.9, 0.2, 0.6, 0.1]), torch.tensor([1, 1, 0, 0])).tp
    tensor(1.)
    """
    p = _check_scores(p)
    threshold = check_real("threshold", threshold, low=0.0, high=1.0)
    return confusion((p >= threshold).to(p.dtype), y)


def soft_confusion(p, y, amplification: float) -> Confusion:
    r"""AnyLoss's soft confusion matrix: :func:`confusion` of :math:`A(p) = \sigma(L(p - 1/2))`.

    Differentiable in ``p``; TP + FP + FN + TN = n and TP + FN = P hold for every L.

    >>> cm = soft_confusion(torch.tensor([0.9, 0.2, 0.6, 0.1], dtype=torch.float64), torch.tensor([1, 1, 0, 0]), 1e4)
    >>> [round(v.item(), 6) for v in cm]
    [1.0, 1.0, 1.0, 1.0]
    """
    return confusion(amplify(p, amplification), y)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, and 0 where den == 0 (no NaN in the value or the gradient)."""
    safe = torch.where(den > 0, den, torch.ones_like(den))
    return torch.where(den > 0, num / safe, torch.zeros_like(num))


def _check_confusion(cm) -> Confusion:
    if not isinstance(cm, Confusion):
        raise ValueError(f"cm must be a kllab.maths.confusion.Confusion (from confusion, hard_confusion or "
                         f"soft_confusion); got {type(cm).__name__}")
    for name, v in zip(cm._fields, cm):
        check_no_nan(f"cm.{name}", v)
        if (v < 0).any():
            raise ValueError(f"cm.{name} must be >= 0 (a count); got {v.min().item():.4g}")
    return cm


def accuracy(cm: Confusion) -> torch.Tensor:
    r"""(TP + TN) / n."""
    cm = _check_confusion(cm)
    return _ratio(cm.tp + cm.tn, cm.total)


def precision(cm: Confusion) -> torch.Tensor:
    r"""TP / (TP + FP)."""
    cm = _check_confusion(cm)
    return _ratio(cm.tp, cm.tp + cm.fp)


def recall(cm: Confusion) -> torch.Tensor:
    r"""TP / (TP + FN), the true-positive rate."""
    cm = _check_confusion(cm)
    return _ratio(cm.tp, cm.tp + cm.fn)


def specificity(cm: Confusion) -> torch.Tensor:
    r"""TN / (TN + FP), the true-negative rate."""
    cm = _check_confusion(cm)
    return _ratio(cm.tn, cm.tn + cm.fp)


def balanced_accuracy(cm: Confusion) -> torch.Tensor:
    r"""(recall + specificity) / 2 = (TP/P + TN/N) / 2."""
    return 0.5 * (recall(cm) + specificity(cm))


def geometric_mean(cm: Confusion) -> torch.Tensor:
    r""":math:`\sqrt{\text{recall} \cdot \text{specificity}}`."""
    return torch.sqrt(recall(cm) * specificity(cm))


def f_beta(cm: Confusion, beta: float = 1.0) -> torch.Tensor:
    r""":math:`F_\beta = (1+\beta^2)\mathrm{TP} / ((1+\beta^2)\mathrm{TP} + \beta^2\mathrm{FN} + \mathrm{FP})`; ``beta`` > 0.

    >>> cm = Confusion(*(torch.tensor(v) for v in (3.0, 1.0, 2.0, 4.0)))
    >>> round(f_beta(cm, 1.0).item(), 6), round(6 / (6 + 1 + 2), 6)
    (0.666667, 0.666667)
    """
    cm = _check_confusion(cm)
    b2 = check_positive("beta", beta) ** 2
    return _ratio((1 + b2) * cm.tp, (1 + b2) * cm.tp + b2 * cm.fn + cm.fp)


def f1(cm: Confusion) -> torch.Tensor:
    r""":math:`F_1 = 2\mathrm{TP} / (2\mathrm{TP} + \mathrm{FP} + \mathrm{FN})`."""
    return f_beta(cm, 1.0)


METRICS: dict[str, Callable[[Confusion], torch.Tensor]] = {
    "f1": f1, "balanced_accuracy": balanced_accuracy, "accuracy": accuracy, "geometric_mean": geometric_mean,
    "precision": precision, "recall": recall, "specificity": specificity,
}


def _metric(metric) -> Callable[[Confusion], torch.Tensor]:
    if callable(metric):
        return metric
    return METRICS[check_choice("metric", metric, tuple(METRICS))]


def metric_loss(p, y, metric="f1", amplification: float = 73.0) -> torch.Tensor:
    r"""AnyLoss: :math:`1 - M(\text{soft confusion matrix of } p)`, differentiable in ``p``.

    Parameters
    ----------
    p : Tensor, shape (..., n), values in [0, 1]
        The model's probabilities (sigmoid outputs) on n examples.
    y : Tensor, shape (..., n) or (n,), values in {0, 1}
    metric : str (a key of :data:`METRICS`) or callable Confusion -> Tensor
    amplification : float > 0
        L of the amplifier (the paper uses 73).

    Returns
    -------
    Tensor, shape ``p.shape[:-1]``: one loss per batch entry (e.g. per model), over its n examples.

    >>> p = torch.tensor([0.9, 0.2, 0.6, 0.1], dtype=torch.float64)
    >>> round(metric_loss(p, torch.tensor([1, 1, 0, 0]), "f1", 1e4).item(), 6)   # hard F1 = 1/2
    0.5
    """
    return 1 - _metric(metric)(soft_confusion(p, y, amplification))


def soft_hard_gap_bound(p, y, amplification: float, metric: str = "f1") -> torch.Tensor:
    r"""An upper bound on :math:`|M(\text{soft}) - M(\text{hard at } 1/2)|` (derived in the module docstring).

    ``metric`` is "f1" (:math:`(2E_1 + E_0)/P`), "balanced_accuracy" (:math:`\frac12(E_1/P + E_0/N)`) or
    "accuracy" (:math:`(E_1 + E_0)/n`), with :math:`E_c = \sum_{y_i = c}\sigma(-L|p_i - \frac12|)`.
    Shape ``p.shape[:-1]``; ``inf`` where a class the bound divides by is absent.

    >>> p = torch.tensor([0.9, 0.2, 0.6, 0.1], dtype=torch.float64)
    >>> bool(soft_hard_gap_bound(p, torch.tensor([1, 1, 0, 0]), 100.0) < 1e-3)
    True
    """
    p = _check_scores(p)
    y = _check_labels(y, p)
    metric = check_choice("metric", metric, ("f1", "balanced_accuracy", "accuracy"))
    eps = amplifier_gap(p, amplification)
    e1, e0 = (y * eps).sum(-1), ((1 - y) * eps).sum(-1)
    pos, neg = y.expand_as(p).sum(-1), (1 - y).expand_as(p).sum(-1)

    def div(a, b):
        return torch.where(b > 0, a / torch.where(b > 0, b, torch.ones_like(b)), torch.full_like(a, math.inf))

    if metric == "f1":
        return div(2 * e1 + e0, pos)
    if metric == "balanced_accuracy":
        return 0.5 * (div(e1, pos) + div(e0, neg))
    return (e1 + e0) / p.shape[-1]
