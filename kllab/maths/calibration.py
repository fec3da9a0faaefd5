r"""Calibration of a classifier's probabilities: reliability diagrams and the expected calibration error.

A classifier is calibrated when, among the inputs it labels with confidence c, a fraction c is right.
Binning the top-label confidence into B equal bins :math:`I_b = ((b-1)/B, b/B]` (Guo et al., 2017),

.. math::
    \mathrm{ECE} = \sum_{b=1}^{B} \frac{|I_b|}{n}\, \big|\mathrm{acc}(I_b) - \mathrm{conf}(I_b)\big| ,

the gap between the reliability diagram and its diagonal, weighted by how many inputs each bin holds.
A low-capacity student distilled with a mass-covering loss tends to be under-confident, one distilled
with a mode-seeking loss over-confident; BD-KD (Amara et al., 2022) balances the two for calibration.

**Temperature scaling** (Guo et al., 2017) divides a classifier's logits :math:`z` by a temperature
:math:`T > 0`, :math:`p_T = \mathrm{softmax}(z / T)`. Dividing by a positive number keeps the order of the
logits, so the predicted class, and with it the accuracy, is the same at every temperature. The usual
calibrator picks the one global :math:`T` minimising the cross-entropy (the NLL, a KL to the one-hot
labels up to nothing) on held-out data. In :math:`\beta = 1/T` the NLL of one input,
:math:`\ell(\beta) = -\beta z_y + \log\sum_k e^{\beta z_k}`, is convex, with derivative

.. math::
    \ell'(\beta) = \mathbb{E}_{p_{1/\beta}}[z] - z_y ,

increasing in :math:`\beta` (its derivative is a variance), so the CE-optimal temperature is the root of the
mean of :math:`\ell'` (found here by bisection), or an end of the allowed interval when it has none. For a single
input the root exists only when the label is not the top class but is above the mean logit: a
*narrow miss*; a correct input wants :math:`T \to 0` and a far miss :math:`T \to \infty`.

**Correctness-aware (CA) loss** (Liu et al., 2024): the class-balanced squared error between the top-label
confidence :math:`c_i = \max_k p_{T,ik}` and the correctness :math:`a_i = \mathbf{1}[\arg\max_k z_{ik} = y_i]`,

.. math::
    L_{\rm CA} = \frac12\,\frac{1}{n_1}\sum_{i: a_i = 1} (c_i - 1)^2 + \frac12\,\frac{1}{n_0}\sum_{i: a_i = 0} c_i^2 ,

which is the public code's weighting (weight :math:`1 - \mathrm{acc}` on correct inputs, :math:`\mathrm{acc}` on wrong
ones, normalised by the total weight). It asks wrong inputs for confidence :math:`1/K` (:math:`T \to \infty`) and
correct ones for confidence 1 (:math:`T \to 0`), where the NLL asks a narrow miss to *sharpen*. A per-sample
calibrator (:class:`TemperatureNet`) predicts :math:`T(x)` from features of transformed copies of the input
(:func:`transform_features`) and is trained with either loss (:func:`fit_temperature_net`).

References: Guo, Pleiss, Sun, Weinberger, *On Calibration of Modern Neural Networks*, ICML 2017
(arXiv:1706.04599); Liu, Wang, Zou, Zou, Zheng, *Optimizing Calibration by Gaining Aware of Prediction
Correctness*, 2024 (arXiv:2404.13016), code github.com/liuyvchi/Correctness-aware-calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import math
from collections.abc import Sequence

import torch
from torch import nn

from .divergences import _as_tensor
from .ensemble import EnsembleMLP, train_ensemble
from .validation import check_choice, check_finite, check_int, check_log_probs, check_positive, check_real

__all__ = ["Reliability", "reliability", "expected_calibration_error", "temperature_scale", "correctness",
           "ce_optimal_temperature", "correctness_aware_loss", "transform_features", "TemperatureNet",
           "fit_temperature_net"]


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
    return logp, _check_labels(logp, labels)


def _check_logits(logits, labels=None):
    logits = _as_tensor(logits)
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor; got dtype {logits.dtype}")
    if logits.ndim < 2:
        raise ValueError(f"logits must have shape (..., N, K): N inputs, K classes; got {tuple(logits.shape)}")
    check_finite("logits", logits)
    if labels is None:
        return logits
    return logits, _check_labels(logits, labels)


def _check_labels(logp, labels) -> torch.Tensor:
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
    return labels


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


# ------------------------------------------------------------------------------------------------
# Temperature scaling, the CE-optimal temperature, the correctness-aware loss, per-sample temperatures


def _check_temperature(temperature, logits: torch.Tensor) -> torch.Tensor:
    if torch.is_tensor(temperature):
        temp = temperature
        if not temp.is_floating_point():
            raise ValueError(f"temperature must be a floating-point tensor; got dtype {temp.dtype}")
        check_finite("temperature", temp)
        if (temp <= 0).any():
            raise ValueError(f"temperature must be > 0; got minimum {temp.min().item():.4g}")
        try:
            torch.broadcast_shapes(temp.shape, logits.shape[:-1])
        except RuntimeError:
            raise ValueError(f"temperature must be a number or broadcast to the logits' shape without the class axis "
                             f"{tuple(logits.shape[:-1])}; got shape {tuple(temp.shape)}") from None
        return temp
    return torch.as_tensor(check_positive("temperature", temperature), dtype=logits.dtype)


def temperature_scale(logits, temperature) -> torch.Tensor:
    r"""Log-probabilities of the logits divided by a temperature, :math:`\log\mathrm{softmax}(z / T)`.

    Parameters
    ----------
    logits : Tensor, shape (..., K)
        Raw scores z (any real numbers; not log-probabilities).
    temperature : float > 0, or Tensor of shape broadcasting to ``logits.shape[:-1]``
        One global T, or one T per input (a per-sample calibrator's output).

    Returns
    -------
    Tensor, shape (..., K)
        Log-probabilities; their argmax is the logits' argmax whatever the temperature.

    >>> import torch
    >>> z = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    >>> temperature_scale(z, 1e6).exp().round(decimals=4).tolist()    # T -> infinity: uniform
    [[0.3333, 0.3333, 0.3333]]
    >>> temperature_scale(z, torch.tensor([0.5], dtype=torch.float64)).argmax(-1).tolist()
    [0]
    """
    logits = _as_tensor(logits)
    if logits.ndim < 1 or not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor with a class axis; got shape {tuple(logits.shape)} "
                         f"and dtype {logits.dtype}")
    check_finite("logits", logits)
    temp = _check_temperature(temperature, logits)
    return torch.log_softmax(logits / temp.unsqueeze(-1), dim=-1)


def correctness(logits, labels) -> torch.Tensor:
    r"""The correctness indicator :math:`a_i = \mathbf{1}[\arg\max_k z_{ik} = y_i]`, as floats of shape (..., N).

    Works on logits or log-probabilities alike (the argmax is the same), so it does not depend on any temperature.
    """
    logits, labels = _check_logits(logits, labels)
    return (logits.argmax(-1) == labels).to(logits.dtype)


def _nll_slope(beta: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d/d beta of -log softmax(beta z)_y = E_{softmax(beta z)}[z] - z_y, shape (..., N)."""
    p = torch.softmax(beta.unsqueeze(-1) * logits, dim=-1)
    return (p * logits).sum(-1) - logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def ce_optimal_temperature(logits, labels, *, per_sample: bool = False, t_min: float = 1e-2,
                           t_max: float = 1e2) -> torch.Tensor:
    r"""The temperature minimising the cross-entropy (NLL) of ``softmax(logits / T)`` to the labels, T in [t_min, t_max].

    .. math::
        T^* = \arg\min_{T} \frac1N \sum_i -\log \mathrm{softmax}(z_i / T)_{y_i}

    In :math:`\beta = 1/T` the objective is convex with slope :math:`\frac1N\sum_i \mathbb{E}_{p_{1/\beta}}[z_i] - z_{i,y_i}`,
    increasing in β; this bisects that slope in :math:`\log\beta` (80 halvings: far below float64 resolution of T).
    When the slope has no root in the interval the minimiser is the end it points to: ``t_min`` if the NLL keeps
    falling as T shrinks (every input correct), ``t_max`` if it keeps falling as T grows.

    Parameters
    ----------
    logits : Tensor, shape (..., N, K)
    labels : Tensor of int, shape (N,) or (..., N)
    per_sample : bool
        False: one temperature per leading index, shape (...), the usual global temperature scaling. True: each
        input's own CE-optimal temperature, shape (..., N).
    t_min, t_max : float, 0 < t_min < t_max
        The interval searched (the public CA code clamps its temperatures to [0.1, 10]).

    Returns
    -------
    Tensor, shape (...) or (..., N)

    >>> import torch
    >>> z = torch.tensor([[0.45, 0.40] + [0.15 / 8] * 8], dtype=torch.float64).log()   # a narrow miss, label 1
    >>> round(ce_optimal_temperature(z, torch.tensor([1]), per_sample=True).item(), 3)
    0.595
    """
    logits, labels = _check_logits(logits, labels)
    t_min = check_positive("t_min", t_min)
    t_max = check_real("t_max", t_max, low=t_min, low_open=True)
    if not per_sample:
        # the mean slope over the sample axis: one problem per leading index
        def slope(beta):
            return _nll_slope(beta.unsqueeze(-1).expand(labels.shape), logits, labels).mean(-1)
        shape = labels.shape[:-1]
    else:
        def slope(beta):
            return _nll_slope(beta, logits, labels)
        shape = labels.shape
    lo = torch.full(shape, math.log(1.0 / t_max), dtype=logits.dtype)   # log beta
    hi = torch.full(shape, math.log(1.0 / t_min), dtype=logits.dtype)
    at_lo, at_hi = slope(lo.exp()), slope(hi.exp())
    with torch.no_grad():
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            up = slope(mid.exp()) < 0          # NLL still falling: the root lies at larger beta
            lo = torch.where(up, mid, lo)
            hi = torch.where(up, hi, mid)
    beta = (0.5 * (lo + hi)).exp()
    temp = 1.0 / beta
    temp = torch.where(at_lo >= 0, torch.full_like(temp, t_max), temp)   # rising everywhere: smallest beta
    temp = torch.where(at_hi <= 0, torch.full_like(temp, t_min), temp)   # falling everywhere: largest beta
    return temp


def correctness_aware_loss(logp, labels, *, balanced: bool = True) -> torch.Tensor:
    r"""Per-input terms of the correctness-aware (CA) loss; ``labels`` are the reference classes.

    Term i is :math:`w_i\,(c_i - a_i)^2` with :math:`c_i = \max_k p_{ik}` the top-label confidence and
    :math:`a_i = \mathbf{1}[\arg\max_k p_{ik} = y_i]`. With ``balanced`` (the paper's code), :math:`w_i = n / (2 n_1)` on
    correct and :math:`n / (2 n_0)` on wrong inputs, so that the **mean over the input axis** is
    :math:`\frac12\,\mathrm{mean}_{\rm correct}(c - 1)^2 + \frac12\,\mathrm{mean}_{\rm wrong}\,c^2` (if one group is
    empty, the mean over the other); without it :math:`w_i = 1` (the unweighted squared error).

    Parameters
    ----------
    logp : Tensor, shape (..., N, K)
        Log-probabilities, e.g. ``temperature_scale(logits, T)``.
    labels : Tensor of int, shape (N,) or (..., N)
    balanced : bool

    Returns
    -------
    Tensor, shape (..., N)
        Take ``.mean(-1)`` for the loss.

    >>> import torch
    >>> logp = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3]], dtype=torch.float64).log()
    >>> terms = correctness_aware_loss(logp, torch.tensor([0, 0, 1]))       # two correct, one wrong
    >>> round(terms.mean().item(), 6)                                          # 0.5 * (0.01 + 0.16) / 2 + 0.5 * 0.49
    0.2875
    """
    logp, labels = _check(logp, labels)
    if not isinstance(balanced, bool):
        raise TypeError(f"balanced must be True or False; got {balanced!r} ({type(balanced).__name__})")
    return _ca_terms(logp, labels, balanced)


def _ca_terms(logp: torch.Tensor, labels: torch.Tensor, balanced: bool) -> torch.Tensor:
    top, pred = logp.max(-1)
    conf = top.exp()
    right = (pred == labels).to(conf.dtype)
    terms = (conf - right) ** 2
    if not balanced:
        return terms
    n = torch.tensor(right.shape[-1], dtype=conf.dtype)
    n1 = right.sum(-1, keepdim=True)
    n0 = n - n1
    w_right = torch.where(n0 > 0, n / (2 * n1.clamp_min(1)), torch.ones_like(n1))
    w_wrong = torch.where(n1 > 0, n / (2 * n0.clamp_min(1)), torch.ones_like(n0))
    return terms * torch.where(right > 0, w_right, w_wrong)


def transform_features(logits, transformed_logits) -> torch.Tensor:
    r"""Correctness features of each input from its transformed copies (the inputs of a per-sample calibrator).

    With :math:`z` an input's logits and :math:`z^{(1)}, \dots, z^{(M)}` those of M transformed copies (shifts,
    noise, rotations), the three features are

    * agreement :math:`\frac1M\sum_m \mathbf{1}[\arg\max z^{(m)} = \arg\max z]`,
    * the mean top-label confidence of the copies :math:`\frac1M\sum_m \max_k \mathrm{softmax}(z^{(m)})_k`,
    * the entropy of :math:`\mathrm{softmax}(z)` (nats).

    Parameters
    ----------
    logits : Tensor, shape (..., N, K)
    transformed_logits : Tensor, shape (M, ..., N, K), M ≥ 1

    Returns
    -------
    Tensor, shape (..., N, 3)
    """
    logits = _check_logits(logits)
    transformed_logits = _as_tensor(transformed_logits)
    if transformed_logits.ndim != logits.ndim + 1 or transformed_logits.shape[1:] != logits.shape \
            or transformed_logits.shape[0] < 1:
        raise ValueError(f"transformed_logits must have shape (M, {', '.join(map(str, logits.shape))}) with M >= 1; "
                         f"got {tuple(transformed_logits.shape)}")
    check_finite("transformed_logits", transformed_logits)
    agree = (transformed_logits.argmax(-1) == logits.argmax(-1)).to(logits.dtype).mean(0)
    conf = torch.softmax(transformed_logits, -1).amax(-1).mean(0)
    logp = torch.log_softmax(logits, -1)
    entropy = -(logp.exp() * logp).sum(-1)
    return torch.stack([agree, conf, entropy], dim=-1)


class TemperatureNet(nn.Module):
    r"""R independent per-sample temperature calibrators :math:`x \mapsto T(x)` (one tiny ReLU MLP each).

    The features are standardised with the mean and spread they were fitted on, and the network's output
    :math:`o` is mapped smoothly into the allowed interval on a log scale,
    :math:`T = t_{\min}\,(t_{\max}/t_{\min})^{\sigma(o)}` (the public code clamps T to [0.1, 10]; a clamp would stop
    the gradient at the ends). ``forward(features)`` with features of shape (R, N, F) or (N, F) returns
    temperatures of shape (R, N).
    """

    def __init__(self, n_features: int, width: int, seeds: Sequence[int], *, t_min: float = 0.1, t_max: float = 10.0,
                 mean: torch.Tensor | None = None, scale: torch.Tensor | None = None):
        super().__init__()
        self.t_min = check_positive("t_min", t_min)
        self.t_max = check_real("t_max", t_max, low=self.t_min, low_open=True)
        self.net = EnsembleMLP(n_features, 1, width, seeds)
        self.register_buffer("mean", torch.zeros(n_features, dtype=torch.float64) if mean is None else mean)
        self.register_buffer("scale", torch.ones(n_features, dtype=torch.float64) if scale is None else scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.net((features - self.mean) / self.scale)[..., 0]
        return self.t_min * (self.t_max / self.t_min) ** torch.sigmoid(out)


def fit_temperature_net(features, logits, labels, *, loss: str = "ca", width: int = 8, steps: int = 300,
                        lr: float = 0.01, seeds: Sequence[int] = (0,), t_min: float = 0.1, t_max: float = 10.0,
                        balanced: bool = True) -> TemperatureNet:
    r"""Train per-sample temperature calibrators on held-out data with the CE or the CA loss.

    The objective of calibrator r is the mean NLL of ``temperature_scale(logits_r, T_r(x))`` (``loss="ce"``) or the
    mean of :func:`correctness_aware_loss` of it (``loss="ca"``), by full-batch Adam; the R calibrators (one per seed,
    each on its own data when the inputs have a leading axis R) train side by side in one
    :class:`~kllab.maths.ensemble.EnsembleMLP`.

    Parameters
    ----------
    features : Tensor, shape (R, N, F) or (N, F)
    logits : Tensor, shape (R, N, K) or (N, K)
    labels : Tensor of int, shape (R, N) or (N,)
    loss : "ce" or "ca"
    width : int ≥ 1
    steps : int ≥ 1
    lr : float > 0
    seeds : sequence of int
        One calibrator per seed (R = len(seeds)).
    t_min, t_max : float, 0 < t_min < t_max
    balanced : bool
        For ``loss="ca"``: class-balanced (the paper's) or plain squared error, as in :func:`correctness_aware_loss`.

    Returns
    -------
    TemperatureNet
        Call it on features (of any inputs) for their temperatures, shape (R, N).
    """
    loss = check_choice("loss", loss, ("ce", "ca"))
    logits, labels = _check_logits(logits, labels)
    features = _as_tensor(features)
    r = len(seeds)
    if logits.ndim == 2:
        logits, labels = logits.expand(r, *logits.shape), labels.expand(r, *labels.shape)
    if logits.ndim != 3 or logits.shape[0] != r:
        raise ValueError(f"logits must have shape (N, K) or (R, N, K) with R = len(seeds) = {r}; "
                         f"got {tuple(logits.shape)}")
    if features.ndim == 2:
        features = features.expand(r, *features.shape)
    if features.ndim != 3 or features.shape[:2] != logits.shape[:2]:
        raise ValueError(f"features must have shape (N, F) or (R, N, F) matching the logits' (R, N) = "
                         f"{tuple(logits.shape[:2])}; got {tuple(features.shape)}")
    check_finite("features", features)
    mean = features.reshape(-1, features.shape[-1]).mean(0)
    scale = features.reshape(-1, features.shape[-1]).std(0).clamp_min(1e-6)
    model = TemperatureNet(features.shape[-1], width, seeds, t_min=t_min, t_max=t_max, mean=mean, scale=scale)
    model.to(logits.dtype)
    steps = check_int("steps", steps, low=1)
    if not isinstance(balanced, bool):
        raise TypeError(f"balanced must be True or False; got {balanced!r} ({type(balanced).__name__})")

    def objective():   # inputs checked above; the unchecked forms keep each step cheap
        logp = torch.log_softmax(logits / model(features).unsqueeze(-1), dim=-1)
        if loss == "ce":
            return -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(-1)
        return _ca_terms(logp, labels, balanced).mean(-1)

    train_ensemble(model, objective, steps=steps, lr=lr)
    return model
