"""Clustering accuracy: brute force over all matchings, invariance to renaming clusters, the GCD split, bad input."""

import itertools

import numpy as np
import pytest

from kllab.maths import clustering as K


def brute_force(y_true, y_pred, k):
    return max(np.mean(np.array(perm)[y_pred] == y_true) for perm in itertools.permutations(range(k)))


def test_matches_brute_force_over_all_matchings():
    rng = np.random.default_rng(0)
    for _ in range(30):
        y = rng.integers(0, 5, 60)
        p = np.where(rng.random(60) < 0.6, (y + 2) % 5, rng.integers(0, 5, 60))
        assert K.cluster_accuracy(y, p) == pytest.approx(brute_force(y, p, 5), abs=1e-12)


def test_renaming_clusters_changes_nothing():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 100)
    p = np.where(rng.random(100) < 0.7, y, rng.integers(0, 6, 100))
    rename = rng.permutation(6)
    assert K.cluster_accuracy(y, rename[p]) == pytest.approx(K.cluster_accuracy(y, p))
    assert K.cluster_accuracy(y, y) == 1.0


def test_gcd_split_uses_one_matching_over_all_samples():
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    p = np.array([1, 1, 0, 0, 3, 2, 2, 2])
    acc = K.gcd_accuracy(y, p, known=[0, 1])
    match = K.cluster_matching(y, p)
    right = np.array([match[c] for c in p]) == y
    assert acc["all"] == pytest.approx(right.mean())
    assert acc["old"] == pytest.approx(right[:4].mean()) and acc["new"] == pytest.approx(right[4:].mean())
    assert acc["old"] == 1.0
    assert np.isnan(K.gcd_accuracy([0, 1], [0, 1], known=[0, 1])["new"])


def test_more_clusters_than_classes():
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 2, 1, 1])      # cluster 2 matches nothing useful
    assert K.cluster_accuracy(y, p) == pytest.approx(0.75)


def test_bad_input():
    with pytest.raises(ValueError, match="y_true and y_pred must have the same length; got 3 and 2"):
        K.cluster_accuracy([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="y_pred must be a 1-D array of integer labels"):
        K.cluster_accuracy([0, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="y_true must hold labels >= 0; got -1"):
        K.cluster_accuracy([-1, 1], [0, 1])
    with pytest.raises(ValueError, match="y_true must hold at least one label"):
        K.cluster_accuracy(np.array([], dtype=int), np.array([], dtype=int))


def test_gcd_split_scores_old_and_new_under_the_global_matching_not_one_per_split():
    # Cluster 0 holds 3 points of old class 0 and 2 of new class 2: the global matching gives it to class 0, so the
    # new class scores 0 (a matching of the new points alone would score them 1); brute force agrees.
    y = np.array([0, 0, 0, 2, 2, 1, 1, 1])
    p = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    best = max(itertools.permutations(range(3)), key=lambda perm: (np.array(perm)[p] == y).sum())
    right = np.array(best)[p] == y
    acc = K.gcd_accuracy(y, p, known=[0, 1])
    assert acc == pytest.approx({"all": right.mean(), "old": right[y != 2].mean(), "new": right[y == 2].mean()})
    assert acc["new"] == 0.0 and K.cluster_accuracy(y[y == 2], p[y == 2]) == 1.0
