r"""Clustering accuracy: compare cluster indices with class labels under the best one-to-one matching.

A clustering names its clusters arbitrarily, so its accuracy is taken under the matching of
clusters to classes that maximises the number of agreements, found by the Hungarian algorithm on
the K × K contingency table (``scipy.optimize.linear_sum_assignment``):

.. math::
    \mathrm{ACC} = \max_{\sigma \in S_K} \frac1N \sum_{n=1}^{N} \mathbf{1}[y_n = \sigma(\hat y_n)] .

Generalized category discovery reports it on the unlabeled data, split into the classes that had
labels ("old", known) and those that had none ("new", novel), with one matching computed on all of
them (the "v2" protocol of Vaze et al., 2022, used by SimGCD and LegoGCD).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["cluster_matching", "cluster_accuracy", "gcd_accuracy"]


def _labels(name: str, y) -> np.ndarray:
    arr = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integer labels; got dtype {arr.dtype}, shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold labels >= 0; got {int(arr.min())}")
    return arr


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length; got {t.size} and {p.size}")
    if t.size == 0:
        raise ValueError("y_true must hold at least one label; got none")
    return t, p


def cluster_matching(y_true, y_pred) -> dict[int, int]:
    """The cluster → class matching that maximises agreements (Hungarian algorithm).

    >>> cluster_matching([0, 0, 1, 1, 2], [2, 2, 0, 0, 1])
    {0: 1, 1: 2, 2: 0}
    """
    t, p = _pair(y_true, y_pred)
    k = int(max(t.max(), p.max())) + 1
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (p, t), 1)                     # rows: clusters, columns: classes
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols)}


def cluster_accuracy(y_true, y_pred) -> float:
    """Accuracy of a clustering under the best one-to-one matching of clusters to classes.

    >>> cluster_accuracy([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 0])
    0.8333333333333334
    """
    t, p = _pair(y_true, y_pred)
    match = cluster_matching(t, p)
    return float(np.mean(np.array([match[c] for c in p]) == t))


def gcd_accuracy(y_true, y_pred, known: Sequence[int]) -> dict[str, float]:
    """All / old / new clustering accuracy with one matching over all samples (the GCD "v2" protocol).

    Parameters
    ----------
    y_true, y_pred : 1-D integer arrays of the same length
    known : the classes that had labels ("old"); the others are "new"

    Returns
    -------
    dict with keys ``"all"``, ``"old"``, ``"new"`` (``nan`` for a split with no sample)

    >>> acc = gcd_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 1, 2, 2, 2], known=[0, 1])
    >>> {k: round(v, 3) for k, v in acc.items()}
    {'all': 0.833, 'old': 0.75, 'new': 1.0}
    """
    t, p = _pair(y_true, y_pred)
    match = cluster_matching(t, p)
    right = np.array([match[c] for c in p]) == t
    old = np.isin(t, np.asarray(list(known)))
    split = lambda m: float(right[m].mean()) if m.any() else float("nan")
    return {"all": float(right.mean()), "old": split(old), "new": split(~old)}
