"""Calibration: the reliability bins and ECE against a loop, scikit-learn and Monte Carlo; shapes; bad input."""

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve

from kllab.maths.calibration import expected_calibration_error, reliability

pytestmark = pytest.mark.usefixtures("float64")


def random_predictions(seed, n=500, k=4, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    logp = torch.log_softmax(scale * torch.randn(n, k, generator=gen), -1)
    labels = torch.randint(0, k, (n,), generator=gen)
    return logp, labels


def ece_by_loop(logp, labels, n_bins):
    conf, pred = logp.exp().max(-1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = [i for i in range(len(conf)) if lo < conf[i] <= hi]
        if inside:
            acc = np.mean([float(pred[i] == labels[i]) for i in inside])
            total += len(inside) / len(conf) * abs(acc - np.mean([float(conf[i]) for i in inside]))
    return total


@pytest.mark.parametrize("n_bins", [1, 7, 15])
def test_ece_matches_a_loop(n_bins):
    logp, labels = random_predictions(0)
    assert expected_calibration_error(logp, labels, n_bins).item() == pytest.approx(ece_by_loop(logp, labels, n_bins),
                                                                                     abs=1e-12)


def test_bins_match_scikit_learn_calibration_curve():
    logp, labels = random_predictions(1, n=2000)
    conf, pred = logp.exp().max(-1)
    correct = (pred == labels).double().numpy()
    frac_true, mean_pred = calibration_curve(correct, conf.numpy(), n_bins=10, strategy="uniform")
    r = reliability(logp, labels, n_bins=10)
    full = r.counts > 0
    np.testing.assert_allclose(r.accuracy[full].numpy(), frac_true, atol=1e-12)
    np.testing.assert_allclose(r.confidence[full].numpy(), mean_pred, atol=1e-12)
    assert r.counts.sum().item() == 2000 and torch.isnan(r.accuracy[~full]).all()


def test_calibrated_predictions_have_small_ece_and_sharpened_ones_do_not():
    # Labels drawn from the predicted probabilities: calibrated by construction, ECE -> 0 as n grows
    # (its bias is about sqrt(B / n)); sharpening the same probabilities (temperature 1/2) makes them overconfident.
    gen = torch.Generator().manual_seed(2)
    logp = torch.log_softmax(1.5 * torch.randn(200_000, 5, generator=gen), -1)
    labels = torch.multinomial(logp.exp(), 1, generator=gen)[:, 0]
    assert expected_calibration_error(logp, labels).item() < 0.01
    sharp = torch.log_softmax(2 * logp, -1)
    r = reliability(sharp, labels)
    assert expected_calibration_error(sharp, labels).item() > 0.05
    full = r.counts > 0
    assert (r.accuracy[full] <= r.confidence[full] + 0.01).all()   # below the diagonal: overconfident


def test_per_model_results_for_a_stack():
    a, la = random_predictions(3)
    b, _ = random_predictions(4)
    stacked = expected_calibration_error(torch.stack([a, b]), la)
    assert stacked.shape == (2,)
    assert stacked[0].item() == pytest.approx(expected_calibration_error(a, la).item(), abs=1e-15)
    assert stacked[1].item() == pytest.approx(expected_calibration_error(b, la).item(), abs=1e-15)
    assert reliability(torch.stack([a, b]), la, n_bins=4).counts.shape == (2, 4)


def test_edges_belong_to_the_lower_bin():
    logp = torch.tensor([[0.5, 0.5], [1.0, 0.0]]).log()
    r = reliability(logp, torch.tensor([0, 0]), n_bins=2)
    assert r.counts.tolist() == [1.0, 1.0]   # 0.5 is in (0, 0.5], 1.0 in (0.5, 1]


@pytest.mark.parametrize("logp, labels, message", [
    (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), "logp must be log-probabilities"),
    (torch.full((4,), -np.log(4)), torch.zeros(4, dtype=torch.long), "logp must have shape (..., N, K)"),
    (torch.full((4, 2), -np.log(2)), torch.zeros(4), "labels must be integer class indices"),
    (torch.full((4, 2), -np.log(2)), torch.zeros(3, dtype=torch.long), "labels must have shape (N,)"),
    (torch.full((4, 2), -np.log(2)), torch.tensor([0, 1, 2, 0]), "labels must be in [0, 1]; got values from 0 to 2"),
])
def test_bad_input(logp, labels, message):
    with pytest.raises(ValueError) as err:
        expected_calibration_error(logp, labels)
    assert message in str(err.value)


def test_bad_bins():
    logp, labels = random_predictions(5)
    with pytest.raises(ValueError, match="n_bins must be >= 1; got 0"):
        reliability(logp, labels, n_bins=0)
