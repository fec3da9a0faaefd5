r"""Margin-softmax losses on the unit sphere, pair similarities, and unified negative pair generation.

Face-recognition losses compare L2-normalised embeddings :math:`\hat x_i = x_i/\|x_i\|` with
L2-normalised class proxies :math:`\hat w_c` (the rows of the last layer). CosFace subtracts a margin
m from the cosine of the true class and multiplies every cosine by a scale s:

.. math::
    z_{ic} = s\,\big(\cos\theta_{ic} - m\,\mathbf 1[c = y_i]\big), \qquad
    \cos\theta_{ic} = \hat x_i^\top \hat w_c, \qquad
    \mathcal L = \mathrm{CE}(z_i, y_i) = \mathrm{KL}(e_{y_i} \,\|\, \mathrm{softmax}(z_i)).

Every cosine to a wrong proxy is a *proxy negative pair* (CLPG, classification-loss pair generation).
A batch also holds *instance pairs* (MLPG, metric-loss pair generation): the cosines
:math:`\hat x_i^\top \hat x_j`, :math:`i < j`, positive when :math:`y_i = y_j`, negative otherwise.
UNPG (Jung et al. 2022) appends the batch's instance negatives, after a box-and-whisker filter, to
**every** row of the margin logits (the public code broadcasts one filtered vector to all rows):

.. math::
    S_n' = \{ s \in S_n : Q_1 - w\,\mathrm{IQR} \le s \le Q_3 + w\,\mathrm{IQR} \}, \qquad
    z^{\rm UNPG}_i = s\,\big[\cos\theta_{i\cdot} - m\,e_{y_i},\ S_n'\big].

For a Gaussian sample the quartiles are :math:`\mu \pm z_{3/4}\sigma` with
:math:`z_{3/4} = \Phi^{-1}(3/4) \approx 0.6745`, so the filter removes the fraction

.. math::
    2\,\big(1 - \Phi(z_{3/4}(1 + 2w))\big) \quad (0.698\,\% \text{ at } w = 1.5,\ 4.30\,\% \text{ at } w = 1).

Conventions: embeddings ``(n, d)``, proxies ``(C, d)``, integer labels ``(n,)`` in ``[0, C)``;
quartiles by linear interpolation (NumPy's default ``percentile``) or, with ``interpolation="order"``,
the order statistics ``sorted[int(q n)]`` of the public code (one sample away at most); instance pairs in
row-major order of the upper triangle, as in the public code. The overlap rate
:math:`P(s_n > s_p)` counts ties as one half, so it equals :math:`1 - \mathrm{AUC}`.

References: Wang et al., *CosFace: Large Margin Cosine Loss for Deep Face Recognition*, CVPR 2018
(arXiv:1801.09414); Jung, Lee, Oh, Park, Park, Son, *Unified Negative Pair Generation toward
Well-discriminative Feature Space for Face Recognition*, 2022 (arXiv:2203.11593), code
github.com/Jung-Jun-Uk/UNPG; Tukey, *Exploratory Data Analysis*, 1977 (the box plot's whiskers).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch

from .validation import check_finite, check_int, check_real

__all__ = [
    "normalize", "cosine_similarities", "cosface_logits", "pair_similarities", "quantile", "whisker_bounds",
    "whisker_mask", "whisker_filter", "gaussian_whisker_removed_fraction", "unpg_logits",
    "unpg_cross_entropy", "overlap_rate", "similarity_histogram",
]

_INTERPOLATIONS = ("linear", "order")


def _matrix(name: str, x) -> torch.Tensor:
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D tensor (rows, features); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    check_finite(name, x)
    return x


def _vector(name: str, x, *, min_len: int = 1) -> torch.Tensor:
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim != 1 or x.shape[0] < min_len:
        raise ValueError(f"{name} must be a 1-D tensor with at least {min_len} value(s); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    check_finite(name, x)
    return x


def _labels(labels, n: int, n_classes: int | None = None) -> torch.Tensor:
    if not torch.is_tensor(labels) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer torch.Tensor; got "
                         f"{labels.dtype if torch.is_tensor(labels) else type(labels).__name__}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one label per embedding; got {tuple(labels.shape)}")
    if n and labels.min() < 0:
        raise ValueError(f"labels must be >= 0; got {int(labels.min())}")
    if n_classes is not None and n and labels.max() >= n_classes:
        raise ValueError(f"labels must be < the number of proxies {n_classes}; got {int(labels.max())}")
    return labels.long()


def _scale_margin(scale, margin) -> tuple[float, float]:
    scale = check_real("scale", scale, low=0.0, low_open=True)
    margin = check_real("margin", margin, low=0.0, high=2.0)
    return scale, margin


def normalize(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    r"""Rows divided by their Euclidean norm, :math:`x_i / \|x_i\|` (shape kept).

    A zero row has no direction and is rejected (``torch.nn.functional.normalize`` would return it
    unchanged, a silent non-unit vector).

    >>> normalize(torch.tensor([[3.0, 4.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    x = _matrix(name, x)
    norms = x.norm(dim=-1, keepdim=True)
    if (norms == 0).any():
        raise ValueError(f"{name} must have no zero row (a zero vector has no direction); "
                         f"got {int((norms == 0).sum())} zero row(s)")
    return x / norms


def cosine_similarities(embeddings: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
    r"""Cosines :math:`\hat x_i^\top \hat w_c` between embeddings ``(n, d)`` and proxies ``(C, d)``; shape ``(n, C)``.

    >>> cosine_similarities(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 5.0]])).tolist()
    [[1.0, 0.0]]
    """
    x = normalize(embeddings, "embeddings")
    w = normalize(proxies, "proxies")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"embeddings and proxies must have the same feature dimension; "
                         f"got {x.shape[1]} and {w.shape[1]}")
    if x.dtype != w.dtype:
        raise ValueError(f"embeddings and proxies must have the same dtype; got {x.dtype} and {w.dtype}")
    return x @ w.T


def cosface_logits(embeddings: torch.Tensor, proxies: torch.Tensor, labels: torch.Tensor,
                   scale: float, margin: float) -> torch.Tensor:
    r"""CosFace logits :math:`s(\cos\theta_{ic} - m\,\mathbf 1[c = y_i])`, shape ``(n, C)``.

    ``torch.nn.functional.cross_entropy(cosface_logits(...), labels)`` is the CosFace loss.

    Parameters
    ----------
    embeddings : (n, d) tensor; proxies : (C, d) tensor; labels : (n,) integer tensor in [0, C)
    scale : float > 0
        s, the inverse temperature of the softmax.
    margin : float in [0, 2]
        m, subtracted from the true class's cosine (a cosine lies in [-1, 1]).

    >>> z = cosface_logits(torch.eye(2), torch.eye(2), torch.tensor([0, 1]), scale=10.0, margin=0.3)
    >>> [[round(v, 4) for v in row] for row in z.tolist()]
    [[7.0, 0.0], [0.0, 7.0]]
    """
    scale, margin = _scale_margin(scale, margin)
    cos = cosine_similarities(embeddings, proxies)
    labels = _labels(labels, cos.shape[0], cos.shape[1])
    one_hot = torch.nn.functional.one_hot(labels, cos.shape[1]).to(cos.dtype)
    return scale * (cos - margin * one_hot)


def pair_similarities(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Instance-pair cosines of a batch: ``(positives, negatives)``, each 1-D.

    All pairs :math:`i < j` (row-major order of the upper triangle), split by :math:`y_i = y_j`:
    ``n (n - 1) / 2`` values in all.

    >>> sp, sn = pair_similarities(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0, 1]))
    >>> [round(v, 4) for v in sp.tolist()], [round(v, 4) for v in sn.tolist()]
    ([0.7071], [0.0, 0.7071])
    """
    x = normalize(embeddings, "embeddings")
    labels = _labels(labels, x.shape[0])
    sim = x @ x.T
    same = labels[:, None] == labels[None, :]
    upper = torch.ones_like(same).triu(diagonal=1)
    return sim[same & upper], sim[~same & upper]


def _check_width(width) -> float:
    return check_real("width", width, low=0.0)


def _order_statistic(values: torch.Tensor, index: int) -> torch.Tensor:
    """The value of 0-based rank ``index`` (``torch.kthvalue``: a selection, not a full sort)."""
    return torch.kthvalue(values, index + 1).values


def quantile(values: torch.Tensor, q: float, *, interpolation: str = "linear") -> float:
    r"""The q-quantile of a 1-D sample.

    ``"linear"``: NumPy's default ``percentile`` (and :func:`torch.quantile`'s): at rank
    :math:`h = q(n - 1)`, :math:`x_{(\lfloor h\rfloor)} + (h - \lfloor h\rfloor)(x_{(\lfloor h\rfloor + 1)} - x_{(\lfloor h\rfloor)})`.
    ``"order"``: the order statistic :math:`x_{(\lfloor q n\rfloor)}` (0-based), what UNPG's public code
    takes (``sorted_x[int(q * l)]``). Two selections by :func:`torch.kthvalue`, no full sort.

    >>> quantile(torch.arange(5.0), 0.25), quantile(torch.arange(5.0), 0.25, interpolation="order")
    (1.0, 1.0)
    """
    values = _vector("values", values)
    q = check_real("q", q, low=0.0, high=1.0)
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(map(repr, _INTERPOLATIONS))}; got {interpolation!r}")
    n = values.shape[0]
    v = values.detach()
    if interpolation == "order":
        return float(_order_statistic(v, min(int(q * n), n - 1)))
    h = q * (n - 1)
    lo = min(int(math.floor(h)), n - 1)
    low_value = float(_order_statistic(v, lo))
    if lo == n - 1 or h == lo:
        return low_value
    return low_value + (h - lo) * (float(_order_statistic(v, lo + 1)) - low_value)


def whisker_bounds(values: torch.Tensor, width: float, *, interpolation: str = "linear") -> tuple[float, float]:
    r"""The box-and-whisker fences :math:`(Q_1 - w\,\mathrm{IQR},\ Q_3 + w\,\mathrm{IQR})` of a 1-D sample.

    Quartiles by :func:`quantile` (``interpolation`` "linear" or "order").

    >>> whisker_bounds(torch.arange(5.0), 1.5)
    (-2.0, 6.0)
    """
    values = _vector("values", values)
    width = _check_width(width)
    q1 = quantile(values, 0.25, interpolation=interpolation)
    q3 = quantile(values, 0.75, interpolation=interpolation)
    iqr = q3 - q1
    return q1 - width * iqr, q3 + width * iqr


def whisker_mask(values: torch.Tensor, width: float, *, interpolation: str = "linear") -> torch.Tensor:
    """Boolean mask of the values inside the fences of :func:`whisker_bounds` (fences included).

    >>> whisker_mask(torch.tensor([0.0, 1.0, 2.0, 3.0, 100.0]), 1.5).tolist()
    [True, True, True, True, False]
    """
    low, high = whisker_bounds(values, width, interpolation=interpolation)
    return (values >= low) & (values <= high)


def whisker_filter(values: torch.Tensor, width: float, *, interpolation: str = "linear") -> torch.Tensor:
    """The values inside the box-and-whisker fences, in their original order (UNPG's :math:`S_n'`).

    >>> whisker_filter(torch.tensor([5.0, -100.0, 6.0, 7.0, 8.0]), 1.0).tolist()
    [5.0, 6.0, 7.0, 8.0]
    """
    return values[whisker_mask(values, width, interpolation=interpolation)]


def gaussian_whisker_removed_fraction(width: float) -> float:
    r"""Fraction of a Gaussian outside its box-and-whisker fences, :math:`2(1 - \Phi(z_{3/4}(1 + 2w)))`.

    It does not depend on the mean or the spread. Equivalently ``erfc(z_{3/4}(1 + 2w)/√2)``.

    >>> round(100 * gaussian_whisker_removed_fraction(1.5), 3)
    0.698
    """
    width = _check_width(width)
    z = NormalDist().inv_cdf(0.75) * (1.0 + 2.0 * width)
    return math.erfc(z / math.sqrt(2.0))


def unpg_logits(embeddings: torch.Tensor, proxies: torch.Tensor, labels: torch.Tensor, scale: float,
                margin: float, width: float, *, interpolation: str = "linear") -> torch.Tensor:
    r"""UNPG logits: the CosFace logits with the batch's filtered instance negatives appended to every row.

    .. math::
        z_i = s\,\big[\cos\theta_{i1} - m\mathbf 1[y_i = 1], \dots, \cos\theta_{iC} - m\mathbf 1[y_i = C],\
        S_n'\big], \qquad S_n' = \text{whisker\_filter}(S_n, w),

    shape ``(n, C + |S_n'|)``; the label still indexes the first C columns, so
    ``cross_entropy(unpg_logits(...), labels)`` is the UNPG loss (the public code's
    ``CE(s · cat([cos_with_margin, S_n']), y)``). A batch with no negative pair (a single
    identity) appends nothing.

    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> unpg_logits(x, torch.eye(2), torch.tensor([0, 1, 1]), 10.0, 0.2, 1.5).shape
    torch.Size([3, 4])
    """
    logits = cosface_logits(embeddings, proxies, labels, scale, margin)
    width = _check_width(width)
    _, negatives = pair_similarities(embeddings, labels)
    if negatives.numel() == 0:
        return logits
    kept = whisker_filter(negatives, width, interpolation=interpolation)
    return torch.cat([logits, (scale * kept).expand(logits.shape[0], -1)], dim=1)


def unpg_cross_entropy(embeddings: torch.Tensor, proxies: torch.Tensor, labels: torch.Tensor, scale: float,
                       margin: float, width: float, *, interpolation: str = "linear") -> torch.Tensor:
    r"""Per-example UNPG loss, ``cross_entropy(unpg_logits(...), labels, reduction="none")``, without the wide matrix.

    The appended block is the same in every row, so its log-sum-exp is one number:

    .. math::
        \ell_i = \log\Big(\sum_{c} e^{z_{ic}} + \sum_{k} e^{s\,s'_k}\Big) - z_{i y_i}
        = \operatorname{logaddexp}\big(\operatorname{lse}_c z_{ic},\ \operatorname{lse}_k s\,s'_k\big) - z_{i y_i},

    with :math:`z` the CosFace logits: ``O(n C + |S_n|)`` instead of ``O(n (C + |S_n|))``. Shape ``(n,)``.

    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); y = torch.tensor([0, 1, 1])
    >>> wide = torch.nn.functional.cross_entropy(unpg_logits(x, torch.eye(2), y, 10.0, 0.2, 1.5), y, reduction="none")
    >>> bool(torch.allclose(unpg_cross_entropy(x, torch.eye(2), y, 10.0, 0.2, 1.5), wide))
    True
    """
    logits = cosface_logits(embeddings, proxies, labels, scale, margin)
    width = _check_width(width)
    labels = labels.long()
    lse = torch.logsumexp(logits, dim=1)
    target = logits.gather(1, labels[:, None])[:, 0]
    x = torch.nn.functional.normalize(embeddings, dim=1)       # rows checked non-zero by cosface_logits
    sim = x @ x.T
    upper = torch.ones(sim.shape, dtype=torch.bool, device=sim.device).triu(diagonal=1)
    negative = upper & (labels[:, None] != labels[None, :])
    if negative.any():
        low, high = whisker_bounds(sim.detach()[negative], width, interpolation=interpolation)
        keep = negative & (sim.detach() >= low) & (sim.detach() <= high)
        lse = torch.logaddexp(lse, torch.logsumexp((scale * sim).masked_fill(~keep, -math.inf).flatten(), dim=0))
    return lse - target


def overlap_rate(positives: torch.Tensor, negatives: torch.Tensor) -> float:
    r"""The overlap :math:`P(s_n > s_p)` over all (positive, negative) pairs, ties counted one half.

    Equals :math:`1 - \mathrm{AUC}` of the scores with positives as class 1. :math:`O((n_p + n_n)\log n_p)`
    by sorting, not a double loop.

    >>> overlap_rate(torch.tensor([0.9, 0.5]), torch.tensor([0.6, 0.1]))
    0.25
    """
    positives = _vector("positives", positives)
    negatives = _vector("negatives", negatives)
    sp = torch.sort(positives.double())[0]
    sn = negatives.double()
    below = torch.searchsorted(sp, sn, right=False)            # positives strictly below each negative
    below_or_equal = torch.searchsorted(sp, sn, right=True)
    wins = below.double() + 0.5 * (below_or_equal - below).double()
    return float(wins.sum() / (sp.numel() * sn.numel()))


def similarity_histogram(values: torch.Tensor, bins: int = 40, low: float = -1.0, high: float = 1.0,
                         *, smoothing: float = 0.0) -> torch.Tensor:
    r"""Log-probabilities of a histogram of similarities on ``bins`` equal bins of ``[low, high]``.

    Values outside ``[low, high]`` are rejected (a cosine lies in [-1, 1]). ``smoothing`` adds that
    many pseudo-counts to every bin before normalising (0 keeps empty bins at ``-inf``, which
    :mod:`kllab.maths.divergences` accepts). Bins as ``numpy.histogram`` (the last one closed).

    >>> similarity_histogram(torch.tensor([-0.5, 0.5, 0.6]), bins=2).exp().tolist()
    [0.3333333333333333, 0.6666666666666666]
    """
    values = _vector("values", values)
    bins = check_int("bins", bins, low=1, high=10_000)
    low = check_real("low", low)
    high = check_real("high", high)
    if not high > low:
        raise ValueError(f"high must be > low; got low={low!r}, high={high!r}")
    smoothing = check_real("smoothing", smoothing, low=0.0)
    if values.min() < low or values.max() > high:
        raise ValueError(f"values must lie in [low, high] = [{low:g}, {high:g}]; "
                         f"got values in [{float(values.min()):.6g}, {float(values.max()):.6g}]")
    v = values.detach().double()
    index = ((v - low) / (high - low) * bins).floor().long().clamp(0, bins - 1)
    counts = torch.bincount(index, minlength=bins).double() + smoothing
    return torch.log(counts / counts.sum())
