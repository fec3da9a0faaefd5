"""Confusion matrices and AnyLoss: hard metrics against scikit-learn, soft -> hard within the derived bound,
gradients against finite differences and the closed form, shapes, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy.special import expit
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, fbeta_score,
                             precision_score, recall_score)

from kllab.maths import confusion as C

pytestmark = pytest.mark.usefixtures("float64")


def problem(seed, n=300, positives=0.2):
    g = np.random.default_rng(seed)
    y = (g.random(n) < positives).astype(float)
    y[:2] = [0.0, 1.0]                                        # both classes present
    p = np.clip(expit(1.5 * g.normal(size=n) + 2.0 * (y - 0.5)), 0.0, 1.0)
    return torch.tensor(p), torch.tensor(y)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.5, 0.2, 0.83])
def test_hard_matrix_and_metrics_match_scikit_learn(seed, threshold):
    p, y = problem(seed)
    cm = C.hard_confusion(p, y, threshold)
    yt, yp = y.numpy().astype(int), (p.numpy() >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(yt, yp, labels=[0, 1]).ravel()
    assert [cm.tp.item(), cm.fp.item(), cm.fn.item(), cm.tn.item()] == [tp, fp, fn, tn]
    assert C.f1(cm).item() == pytest.approx(f1_score(yt, yp, zero_division=0), abs=1e-12)
    assert C.balanced_accuracy(cm).item() == pytest.approx(balanced_accuracy_score(yt, yp), abs=1e-12)
    assert C.accuracy(cm).item() == pytest.approx(accuracy_score(yt, yp), abs=1e-12)
    assert C.precision(cm).item() == pytest.approx(precision_score(yt, yp, zero_division=0), abs=1e-12)
    assert C.recall(cm).item() == pytest.approx(recall_score(yt, yp), abs=1e-12)
    assert C.specificity(cm).item() == pytest.approx(recall_score(1 - yt, 1 - yp), abs=1e-12)
    assert C.geometric_mean(cm).item() == pytest.approx(math.sqrt(recall_score(yt, yp) * recall_score(1 - yt, 1 - yp)),
                                                        abs=1e-12)
    for beta in (0.5, 2.0):
        assert C.f_beta(cm, beta).item() == pytest.approx(fbeta_score(yt, yp, beta=beta, zero_division=0), abs=1e-12)


def test_zero_division_gives_zero_like_scikit_learn():
    y = torch.tensor([1.0, 1.0, 0.0])
    cm = C.hard_confusion(torch.tensor([0.1, 0.2, 0.3]), y)       # nothing predicted positive
    assert C.f1(cm).item() == f1_score([1, 1, 0], [0, 0, 0], zero_division=0) == 0.0
    assert C.precision(cm).item() == 0.0
    p = torch.tensor([0.2, 0.9, 0.1], requires_grad=True)
    C.metric_loss(p, torch.zeros(3), "balanced_accuracy", 10.0).backward()   # no positives: recall term 0/0 = 0
    assert torch.isfinite(p.grad).all()


def test_amplifier_is_the_scaled_sigmoid_and_its_gap_is_exact():
    p = torch.linspace(0, 1, 101)
    for L in (0.5, 1.0, 73.0, 1e3):
        a = C.amplify(p, L)
        np.testing.assert_allclose(a.numpy(), expit(L * (p.numpy() - 0.5)), rtol=1e-12, atol=0)
        hard = (p >= 0.5).double()
        gap = C.amplifier_gap(p, L)
        off = p != 0.5
        np.testing.assert_allclose((a - hard).abs()[off].numpy(), gap[off].numpy(), rtol=1e-10, atol=1e-15)  # 1 - A rounds
        assert gap[~off].item() == 0.5 and a[~off].item() == 0.5
        assert (gap <= torch.exp(-L * (p - 0.5).abs()) * (1 + 1e-12)).all()


@pytest.mark.parametrize("L", [0.1, 1.0, 73.0, 1e4])
def test_soft_matrix_sums_to_n_and_keeps_the_class_counts(L):
    p, y = problem(1)
    cm = C.soft_confusion(p, y, L)
    assert cm.total.item() == pytest.approx(len(y), abs=1e-9)
    assert cm.positives.item() == pytest.approx(y.sum().item(), abs=1e-9)
    assert cm.negatives.item() == pytest.approx(len(y) - y.sum().item(), abs=1e-9)
    a = C.amplify(p, L)   # each count from scratch
    assert cm.tp.item() == pytest.approx((y * a).sum().item()) and cm.fp.item() == pytest.approx(((1 - y) * a).sum().item())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("metric", ["f1", "balanced_accuracy", "accuracy"])
def test_soft_metric_tends_to_hard_within_the_bound(seed, metric):
    p, y = problem(seed)
    fn = C.METRICS[metric]
    hard = fn(C.hard_confusion(p, y)).item()
    gaps, bounds = [], []
    for L in np.logspace(0, 5, 21):
        gap = abs(fn(C.soft_confusion(p, y, float(L))).item() - hard)
        bound = C.soft_hard_gap_bound(p, y, float(L), metric).item()
        assert gap <= bound + 1e-12, (L, gap, bound)
        gaps.append(gap)
        bounds.append(bound)
    delta = (p - 0.5).abs().min().item()
    assert bounds[-1] <= (2 * len(y) / y.sum().item()) * math.exp(-1e5 * delta) + 1e-15   # e^{-L delta} decay
    assert gaps[-1] < 1e-6 and gaps[0] > 1e-3                  # the limit is reached, and L = 1 is far from it


def test_research_note_threshold_at_large_L():
    # Scores kept at least 1e-3 from 1/2: at L = 1e4 the bound is (2P + N) e^{-10} / P; with 5 % positives < 1e-3.
    g = np.random.default_rng(7)
    y = torch.tensor((g.random(2000) < 0.05).astype(float))
    u = g.random(2000)
    p = torch.tensor(np.where(u < 0.5, u * (0.5 - 1e-3) / 0.5, 0.5 + 1e-3 + (u - 0.5) * (0.5 - 1e-3) / 0.5))
    assert (p - 0.5).abs().min() >= 1e-3
    gap = abs(C.f1(C.soft_confusion(p, y, 1e4)).item() - C.f1(C.hard_confusion(p, y)).item())
    bound = C.soft_hard_gap_bound(p, y, 1e4, "f1").item()
    P = y.sum().item()
    assert gap <= bound <= (2 * P + (2000 - P)) * math.exp(-10) / P
    assert bound < 1e-3, bound


def test_balanced_accuracy_bound_is_attained():
    # All positives above 1/2 and all negatives below: every amplifier error has one sign per class.
    y = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    p = torch.tensor([0.7, 0.6, 0.9, 0.3, 0.45])
    for L in (2.0, 20.0):
        gap = abs(C.balanced_accuracy(C.soft_confusion(p, y, L)).item() - 1.0)
        assert gap == pytest.approx(C.soft_hard_gap_bound(p, y, L, "balanced_accuracy").item(), rel=1e-12)


@pytest.mark.parametrize("metric", ["f1", "balanced_accuracy", "accuracy", "geometric_mean", "precision"])
def test_metric_loss_gradient_matches_finite_differences(metric):
    p, y = problem(3, n=40)
    p = p.clamp(0.05, 0.95).requires_grad_(True)
    for L in (1.0, 5.0, 20.0):
        assert torch.autograd.gradcheck(lambda q: C.metric_loss(q, y, metric, L), (p,), eps=1e-6, atol=1e-7)


def test_f1_loss_gradient_matches_closed_form():
    # d(1 - F1)/dp_i = -(2 y_i D - 2 TP) / D^2 * L A_i (1 - A_i), with D = 2TP + FP + FN = P + sum_i A_i.
    p, y = problem(4, n=60)
    p = p.clamp(0.02, 0.98).requires_grad_(True)
    L = 7.0
    C.metric_loss(p, y, "f1", L).backward()
    a = torch.sigmoid(L * (p.detach() - 0.5))
    tp, d = (y * a).sum(), y.sum() + a.sum()
    expected = -(2 * y * d - 2 * tp) / d ** 2 * L * a * (1 - a)
    torch.testing.assert_close(p.grad, expected, rtol=1e-10, atol=1e-14)


def test_batched_scores_give_one_loss_per_row():
    ps = torch.stack([problem(s)[0] for s in range(3)])
    y = problem(0)[1]
    loss = C.metric_loss(ps, y, "f1", 20.0)
    assert loss.shape == (3,)
    for r in range(3):
        assert loss[r].item() == pytest.approx(C.metric_loss(ps[r], y, "f1", 20.0).item(), abs=1e-14)
    assert C.metric_loss(ps, y.expand(3, -1), "f1", 20.0).shape == (3,)
    assert C.soft_hard_gap_bound(ps, y, 20.0).shape == (3,)


def test_a_callable_metric_is_accepted():
    p, y = problem(2)
    loss = C.metric_loss(p, y, lambda cm: C.f_beta(cm, 2.0), 30.0)
    assert loss.item() == pytest.approx(1 - C.f_beta(C.soft_confusion(p, y, 30.0), 2.0).item())


@pytest.mark.parametrize("call, match", [
    (lambda: C.amplify(torch.tensor([0.2, 1.3]), 5.0), r"p must hold probabilities in \[0, 1\]; got 1.3.*sigmoid"),
    (lambda: C.amplify(torch.tensor([0.2, float("nan")]), 5.0), "p must not contain NaN"),
    (lambda: C.amplify(torch.tensor([0, 1]), 5.0), "p must be a floating-point tensor.*int64"),
    (lambda: C.amplify(torch.tensor(0.3), 5.0), "p must have at least one axis"),
    (lambda: C.amplify(torch.tensor([0.3]), 0.0), "amplification must be > 0; got 0.0"),
    (lambda: C.amplify(torch.tensor([0.3]), math.inf), "amplification must be a finite real number"),
    (lambda: C.soft_confusion(torch.tensor([0.3, 0.6]), torch.tensor([0, 2]), 5.0), "y must hold binary labels 0 or 1; got 2"),
    (lambda: C.soft_confusion(torch.tensor([0.3, 0.6]), torch.tensor([0.0, 1.0, 1.0]), 5.0),
     r"y must have the shape of p, \(2,\).*got \(3,\)"),
    (lambda: C.metric_loss(torch.tensor([0.3, 0.6]), torch.tensor([0, 1]), "auc", 5.0), "metric must be one of"),
    (lambda: C.hard_confusion(torch.tensor([0.3, 0.6]), torch.tensor([0, 1]), 1.5), "threshold must be <= 1; got 1.5"),
    (lambda: C.f_beta(C.hard_confusion(torch.tensor([0.3]), torch.tensor([1])), 0.0), "beta must be > 0; got 0.0"),
    (lambda: C.f1((1.0, 2.0, 3.0, 4.0)), "cm must be a kllab.maths.confusion.Confusion"),
    (lambda: C.f1(C.Confusion(*(torch.tensor(v) for v in (1.0, -1.0, 0.0, 2.0)))), r"cm.fp must be >= 0"),
    (lambda: C.soft_hard_gap_bound(torch.tensor([0.3]), torch.tensor([1]), 5.0, "precision"), "metric must be one of"),
])
def test_bad_input_is_rejected_with_a_named_message(call, match):
    with pytest.raises(ValueError, match=match):
        call()
