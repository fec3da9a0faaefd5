"""Calibration: the reliability bins and ECE against a loop, scikit-learn and Monte Carlo; shapes; bad input."""

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve

from kllab.maths.calibration import expected_calibration_error, reliability

pytestmark = pytest.mark.usefixtures("float64", "one_thread")


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


# ------------------------------------------------------------------------------------------------
# Temperature scaling, the CE-optimal temperature, the correctness-aware loss, per-sample temperatures

from scipy.optimize import minimize_scalar  # noqa: E402

from kllab.maths.calibration import (  # noqa: E402
    TemperatureNet, ce_optimal_temperature, correctness, correctness_aware_loss, fit_temperature_net,
    temperature_scale, transform_features)

NARROW = torch.tensor([[0.45, 0.40] + [0.15 / 8] * 8], dtype=torch.float64).log()   # the research note's narrow miss, label 1


def random_logits(seed, n=300, k=6, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, k, generator=gen), torch.randint(0, k, (n,), generator=gen)


def nll_torch(logits, labels, t):
    return torch.nn.functional.cross_entropy(logits / t, labels).item()


def test_temperature_scale_is_log_softmax_of_logits_over_t_and_keeps_the_argmax():
    z, _ = random_logits(10)
    np.testing.assert_allclose(temperature_scale(z, 2.5).exp().numpy(), torch.softmax(z / 2.5, -1).numpy(), atol=1e-15)
    t = torch.rand(len(z), generator=torch.Generator().manual_seed(11)) * 10 + 0.01   # one T per input
    per = temperature_scale(z, t)
    np.testing.assert_allclose(per[7].numpy(), torch.log_softmax(z[7] / t[7], -1).numpy(), atol=1e-14)
    assert torch.equal(per.argmax(-1), z.argmax(-1))
    assert torch.equal(correctness(per, z.argmax(-1)), torch.ones(len(z)))


def test_global_ce_optimal_temperature_matches_scipy_on_torch_cross_entropy_and_a_grid():
    z, _ = random_logits(12)
    y = torch.multinomial(torch.softmax(z, -1), 1, generator=torch.Generator().manual_seed(18))[:, 0]
    z = 3.0 * z        # labels drawn from softmax(z), logits tripled: over-confident, the optimum is near 3
    t = ce_optimal_temperature(z, y).item()
    ref = minimize_scalar(lambda lt: nll_torch(z, y, np.exp(lt)), bounds=(np.log(1e-2), np.log(1e2)),
                          method="bounded", options={"xatol": 1e-10}).x
    assert t == pytest.approx(np.exp(ref), rel=1e-6)
    grid = np.exp(np.linspace(np.log(0.5), np.log(50), 4001))
    per_t = torch.nn.functional.cross_entropy((z / torch.as_tensor(grid)[:, None, None]).transpose(1, 2),
                                              y.expand(len(grid), -1), reduction="none").mean(-1)
    best = grid[int(per_t.argmin())]
    assert 0.6 < best < 40
    assert abs(np.log(t / best)) <= np.log(grid[1] / grid[0])
    h = 1e-5 * t   # the NLL is flat at the optimum (finite differences)
    assert abs(nll_torch(z, y, t + h) - nll_torch(z, y, t - h)) / (2 * h) < 1e-7


def test_narrow_miss_wants_to_sharpen_and_the_per_sample_optimum_matches_scipy():
    t = ce_optimal_temperature(NARROW, torch.tensor([1]), per_sample=True)
    assert t.shape == (1,)
    ref = minimize_scalar(lambda tt: nll_torch(NARROW, torch.tensor([1]), tt), bounds=(0.05, 5), method="bounded",
                          options={"xatol": 1e-10}).x
    assert t.item() == pytest.approx(ref, rel=1e-6)
    assert t.item() < 1 and temperature_scale(NARROW, t).exp()[0, 0].item() > 0.45   # the wrong class gains
    # optimality condition E_{p_T}[z] = z_y
    p = temperature_scale(NARROW, t).exp()
    assert (p * NARROW).sum().item() == pytest.approx(NARROW[0, 1].item(), abs=1e-9)


def test_per_sample_optimum_is_at_the_ends_for_correct_inputs_and_far_misses():
    z = torch.tensor([[3.0, 1.0, 0.0], [3.0, 1.0, 0.0], [3.0, 2.9, 0.0]])
    t = ce_optimal_temperature(z, torch.tensor([0, 2, 1]), per_sample=True, t_min=0.1, t_max=10.0)
    # correct: sharpen to t_min; label below the mean logit: flatten to t_max; narrow miss: in between
    assert t[0].item() == 0.1 and t[1].item() == 10.0 and 0.1 < t[2].item() < 10.0
    assert ce_optimal_temperature(z[:1], torch.tensor([0])).item() == pytest.approx(0.01)


def test_batched_global_temperatures_equal_one_at_a_time():
    a, ya = random_logits(13)
    b, _ = random_logits(14)
    both = ce_optimal_temperature(torch.stack([a, 2 * b]), ya)
    assert both.shape == (2,)
    assert both[0].item() == pytest.approx(ce_optimal_temperature(a, ya).item(), rel=1e-12)
    assert both[1].item() == pytest.approx(ce_optimal_temperature(2 * b, ya).item(), rel=1e-12)


def test_ca_loss_is_the_class_balanced_mse_of_the_public_code():
    z, y = random_logits(15)
    logp = temperature_scale(z, 0.7)
    conf, pred = logp.exp().max(-1)
    right = (pred == y).double()
    ours = correctness_aware_loss(logp, y).mean().item()
    halves = 0.5 * ((conf - 1) ** 2)[right == 1].mean() + 0.5 * (conf ** 2)[right == 0].mean()
    acc = right.mean()
    w = torch.where(right == 1, 1 - acc, acc)     # the public code: weight 1 - acc on correct, acc on wrong
    public = (w * (conf - right) ** 2).sum() / w.sum()
    assert ours == pytest.approx(halves.item(), abs=1e-14) and ours == pytest.approx(public.item(), abs=1e-14)
    plain = torch.nn.functional.mse_loss(conf, right).item()
    assert correctness_aware_loss(logp, y, balanced=False).mean().item() == pytest.approx(plain, abs=1e-14)
    # one group empty: the mean over the other
    all_right = correctness_aware_loss(logp, pred)
    assert all_right.mean().item() == pytest.approx(((conf - 1) ** 2).mean().item(), abs=1e-14)


def test_ca_loss_falls_in_t_for_a_miss_and_rises_for_a_hit():
    ts = torch.logspace(-2, 2.5, 200)
    miss = torch.stack([correctness_aware_loss(temperature_scale(NARROW, t.item()), torch.tensor([1]))[0] for t in ts])
    hit = torch.stack([correctness_aware_loss(temperature_scale(NARROW, t.item()), torch.tensor([0]))[0] for t in ts])
    assert (miss.diff() < 0).all() and (hit.diff() > 0).all()
    assert miss[-1].sqrt().item() == pytest.approx(0.1, abs=2e-3)     # confidence -> 1/K


def test_transform_features_by_hand():
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    copies = torch.stack([torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[3.0, 0.0], [0.0, 2.0]])])
    f = transform_features(z, copies)
    assert f.shape == (2, 3)
    assert f[:, 0].tolist() == [1.0, 0.5]
    c = torch.softmax(copies, -1).amax(-1).mean(0)
    np.testing.assert_allclose(f[:, 1].numpy(), c.numpy(), atol=1e-15)
    p = torch.softmax(z, -1)
    np.testing.assert_allclose(f[:, 2].numpy(), -(p * p.log()).sum(-1).numpy(), atol=1e-15)


@pytest.mark.usefixtures("one_thread")
def test_per_sample_calibrators_learn_lower_confidence_on_flagged_misses_with_ca():
    # a feature that flags misses: the CA calibrator raises their temperature, within [t_min, t_max]
    z, y = random_logits(16, n=400, scale=3.0)
    right = correctness(z, y)
    feats = torch.stack([right + 0.1 * torch.randn(400, generator=torch.Generator().manual_seed(17)),
                         torch.zeros(400)], -1)
    net = fit_temperature_net(feats, z, y, loss="ca", width=4, steps=150, lr=0.05, seeds=[0, 1])
    assert isinstance(net, TemperatureNet)
    with torch.no_grad():
        t = net(feats)
    assert t.shape == (2, 400) and (t >= 0.1).all() and (t <= 10).all()
    assert (t[:, right == 0].mean(-1) > 3 * t[:, right == 1].mean(-1)).all()
    before = correctness_aware_loss(torch.log_softmax(z, -1), y).mean()
    after = correctness_aware_loss(temperature_scale(z, t[0]), y).mean()
    assert after < 0.5 * before
    ce_net = fit_temperature_net(feats, z, y, loss="ce", width=4, steps=150, lr=0.05, seeds=[0])
    with torch.no_grad():
        nll_after = torch.nn.functional.cross_entropy(z / ce_net(feats)[0][:, None], y)
    assert nll_after < torch.nn.functional.cross_entropy(z / ce_optimal_temperature(z, y), y) + 1e-9


@pytest.mark.parametrize("call, err, message", [
    (lambda: temperature_scale(torch.zeros(2, 3), 0.0), ValueError, "temperature must be > 0; got 0.0"),
    (lambda: temperature_scale(torch.zeros(2, 3), torch.tensor([1.0, -1.0])), ValueError, "temperature must be > 0"),
    (lambda: temperature_scale(torch.zeros(2, 3), torch.ones(3)), ValueError, "temperature must be a number or broadcast"),
    (lambda: temperature_scale(torch.tensor([[0.0, float("nan")]]), 1.0), ValueError, "logits must not contain NaN"),
    (lambda: ce_optimal_temperature(torch.zeros(3), torch.zeros(3, dtype=torch.long)), ValueError,
     "logits must have shape (..., N, K)"),
    (lambda: ce_optimal_temperature(torch.zeros(2, 3), torch.tensor([0, 3])), ValueError, "labels must be in [0, 2]"),
    (lambda: ce_optimal_temperature(torch.zeros(2, 3), torch.tensor([0, 1]), t_min=1.0, t_max=0.5), ValueError,
     "t_max must be > 1"),
    (lambda: correctness_aware_loss(torch.zeros(2, 3), torch.tensor([0, 1])), ValueError,
     "logp must be log-probabilities"),
    (lambda: correctness_aware_loss(torch.full((2, 2), -np.log(2)), torch.tensor([0, 1]), balanced=1), TypeError,
     "balanced must be True or False"),
    (lambda: transform_features(torch.zeros(2, 3), torch.zeros(2, 3)), ValueError,
     "transformed_logits must have shape (M, 2, 3)"),
    (lambda: fit_temperature_net(torch.zeros(4, 2), torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), loss="kl"),
     ValueError, "loss must be one of 'ce', 'ca'; got 'kl'"),
    (lambda: fit_temperature_net(torch.zeros(5, 2), torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)),
     ValueError, "features must have shape (N, F) or (R, N, F)"),
])
def test_bad_input_of_the_temperature_functions(call, err, message):
    with pytest.raises(err) as e:
        call()
    assert message in str(e.value)
