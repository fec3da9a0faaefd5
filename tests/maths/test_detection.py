"""Detection: spectra as pmfs against SciPy's periodogram, divergences against scipy.special, the threshold and the
first alarm against plain loops, Cantelli's bound at its extremal law, the direction asymmetry; bad input."""

import math

import numpy as np
import pytest
import torch
from scipy.signal import periodogram
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from kllab.maths.detection import (DETECTION_DIRECTIONS, alarm_threshold, cantelli_bound, divergence_to_reference,
                                   first_alarm, reference_logpmf, smooth_bins, spectrum_logpmf)

pytestmark = pytest.mark.usefixtures("float64")


def smooth_by_convolution(p, b):
    k = np.ones(b)
    return np.convolve(p, k, mode="same") / np.convolve(np.ones(len(p)), k, mode="same")


@pytest.mark.parametrize("b", [1, 2, 3, 4, 7, 16, 50])
def test_smooth_bins_matches_numpy_convolve(b):
    p = np.random.default_rng(b).exponential(size=(3, 50))
    got = smooth_bins(p, b)
    assert got.shape == p.shape
    for row, out in zip(p, got):
        assert np.allclose(out, smooth_by_convolution(row, b), rtol=1e-12, atol=1e-14)


def test_smooth_bins_keeps_the_mean_of_a_constant():
    assert np.allclose(smooth_bins(np.full(20, 2.5), 6), 2.5)


@pytest.mark.parametrize("n", [64, 512, 1000])
@pytest.mark.parametrize("taper", [True, False])
def test_spectrum_matches_scipy_periodogram(n, taper):
    x = np.random.default_rng(n).standard_normal((4, n))
    # SciPy's two-sided periodogram (no detrending) at bins 1..n//2, normalised: the oracle
    _, pxx = periodogram(x, window=np.hanning(n) if taper else "boxcar", detrend=False, return_onesided=False, axis=-1)
    ref = pxx[:, 1:n // 2 + 1]
    ref = ref / ref.sum(-1, keepdims=True)
    got = spectrum_logpmf(x, 1, taper=taper)
    assert got.shape == (4, n // 2) and got.dtype == torch.float64
    assert np.allclose(got.exp().numpy(), ref, rtol=1e-10, atol=1e-15)
    for b in (2, 9):
        sm = np.stack([smooth_by_convolution(r, b) for r in pxx[:, 1:n // 2 + 1]])
        assert np.allclose(spectrum_logpmf(x, b, taper=taper).exp().numpy(), sm / sm.sum(-1, keepdims=True),
                           rtol=1e-10, atol=1e-15)


def test_spectrum_puts_a_tone_at_its_bin():
    n, fs = 512, 2000.0
    t = np.arange(n) / fs
    f = 150.0
    lp = spectrum_logpmf(np.sin(2 * np.pi * f * t), 1)
    assert abs((int(lp.argmax()) + 1) * fs / n - f) <= fs / n / 2


def test_reference_is_the_mixture():
    x = np.random.default_rng(1).standard_normal((6, 128))
    lp = spectrum_logpmf(x, 3)
    assert torch.allclose(reference_logpmf(lp).exp(), lp.exp().mean(0), rtol=1e-12)


def test_divergences_match_scipy():
    g = np.random.default_rng(2)
    h = g.dirichlet(np.ones(30))
    c = g.dirichlet(np.ones(30), size=5)
    lh, lc = torch.tensor(np.log(h)), torch.tensor(np.log(c))
    fwd = divergence_to_reference(lc, lh, "forward").numpy()
    rev = divergence_to_reference(lc, lh, "reverse").numpy()
    js = divergence_to_reference(lc, lh, "js").numpy()
    assert np.allclose(fwd, rel_entr(h, c).sum(-1), rtol=1e-12)      # KL(healthy || window)
    assert np.allclose(rev, rel_entr(c, h).sum(-1), rtol=1e-12)      # KL(window || healthy)
    assert np.allclose(js, jensenshannon(np.broadcast_to(h, c.shape), c, axis=-1) ** 2, rtol=1e-10)
    assert divergence_to_reference(lc, lh, "reverse").shape == (5,)
    # one reference per group: shape (2, 1, K) against windows (2, 5, K)
    two = torch.stack([lh, lc[0]])[:, None, :]
    both = divergence_to_reference(lc.expand(2, 5, 30), two, "reverse")
    assert both.shape == (2, 5) and torch.allclose(both[1], torch.tensor(rel_entr(c, c[0]).sum(-1)))


def peak_pair(eps, mass=0.05, k=40, at=10):
    """A flat reference h and a window c with `mass` moved onto one bin (new peak); swapped, a vanishing peak."""
    h = np.full(k, 1.0 / k)
    c = (1 - mass) * h
    c[at] += mass
    return torch.tensor(np.log(h)), torch.tensor(np.log(c))


@pytest.mark.parametrize("mass", [1e-4, 0.01, 0.05, 0.2, 0.6])
def test_direction_asymmetry_new_and_vanishing_peak(mass):
    h, c = peak_pair(0, mass)
    new = {d: divergence_to_reference(c, h, d).item() for d in DETECTION_DIRECTIONS}
    gone = {d: divergence_to_reference(h, c, d).item() for d in DETECTION_DIRECTIONS}   # the peak is in the reference
    assert new["reverse"] > new["forward"] > new["js"]
    assert gone["forward"] > gone["reverse"] > gone["js"]
    # the third-order term: KL(c||h) - KL(h||c) ~ sum delta^3 / (6 h^2) for small changes
    if mass <= 1e-4:   # relative change 0.4 % at the peak bin: the next order is that much smaller
        delta = c.exp() - h.exp()
        cubic = (delta ** 3 / (6 * h.exp() ** 2)).sum().item()
        assert new["reverse"] - new["forward"] == pytest.approx(cubic, rel=0.02)
        assert gone["forward"] - gone["reverse"] == pytest.approx(cubic, rel=0.02)


@pytest.mark.parametrize("k", [0.0, 0.5, 3.0])
def test_alarm_threshold_is_mean_plus_k_sd(k):
    s = np.random.default_rng(3).gamma(2.0, size=200)
    assert alarm_threshold(s, k) == pytest.approx(np.mean(s) + k * np.std(s, ddof=1), rel=1e-12)


def test_first_alarm_matches_a_loop():
    s = np.random.default_rng(4).random((20, 30))
    for start in (0, 5, 30):
        got = first_alarm(s, 0.9, start)
        for row, g in zip(s, got):
            want = next((i for i in range(start, 30) if row[i] > 0.9), -1)
            assert g == want
    starts = np.random.default_rng(9).integers(0, 15, 20)
    stops = starts + np.random.default_rng(10).integers(0, 16, 20)
    got = first_alarm(s, 0.8, starts, stops)
    for row, a, b, g in zip(s, starts, stops, got):
        assert g == next((i for i in range(a, b) if row[i] > 0.8), -1)


@pytest.mark.parametrize("k", [0.5, 1.0, 3.0])
def test_cantelli_bound_is_attained_by_a_two_point_law(k):
    # X = k with probability 1/(1 + k^2), -1/k otherwise: mean 0, variance 1, P(X >= 0 + k * 1) = the bound
    p = 1 / (1 + k * k)
    mean = p * k - (1 - p) / k
    var = p * k * k + (1 - p) / k ** 2 - mean ** 2
    assert abs(mean) < 1e-12 and var == pytest.approx(1.0)
    assert cantelli_bound(k) == pytest.approx(p, rel=1e-12)
    x = np.random.default_rng(5).exponential(size=100_000)       # and it bounds a skewed law
    assert (x >= 1 + k).mean() <= cantelli_bound(k)


def test_bad_input():
    x = np.random.default_rng(6).standard_normal((3, 64))
    lp = spectrum_logpmf(x, 1)
    with pytest.raises(ValueError, match="windows must not contain NaN"):
        spectrum_logpmf(np.full((2, 64), np.nan))
    with pytest.raises(ValueError, match="at least 4 samples"):
        spectrum_logpmf(np.ones(3))
    with pytest.raises(ValueError, match="bandwidth must be >= 1; got 0"):
        spectrum_logpmf(x, 0)
    with pytest.raises(ValueError, match="bandwidth must be <= 32; got 33"):
        spectrum_logpmf(x, 33)
    with pytest.raises(TypeError, match="bandwidth must be an integer"):
        spectrum_logpmf(x, 2.5)
    with pytest.raises(ValueError, match="constant"):
        spectrum_logpmf(np.ones((2, 64)), taper=False)
    with pytest.raises(ValueError, match="power must be >= 0"):
        smooth_bins([1.0, -1.0], 1)
    with pytest.raises(ValueError, match="direction must be one of"):
        divergence_to_reference(lp, lp[0], "kl")
    with pytest.raises(ValueError, match="logp_ref must be log-probabilities"):
        divergence_to_reference(lp, lp[0] + 1.0)
    with pytest.raises(ValueError, match="logp_windows must be log-probabilities"):
        divergence_to_reference(lp.exp(), lp[0])
    with pytest.raises(ValueError, match="same number of bins"):
        divergence_to_reference(lp, lp[0, :10])
    with pytest.raises(ValueError, match="broadcast"):
        divergence_to_reference(lp[0], lp)
    with pytest.raises(ValueError, match="logp_healthy must have shape"):
        reference_logpmf(lp[0])
    with pytest.raises(ValueError, match="k must be >= 0; got -1.0"):
        alarm_threshold([1.0, 2.0], -1.0)
    with pytest.raises(ValueError, match="at least 2 values"):
        alarm_threshold([1.0], 1.0)
    with pytest.raises(ValueError, match="healthy_stats must not contain NaN"):
        alarm_threshold([1.0, math.nan], 1.0)
    with pytest.raises(ValueError, match=r"start must be in \[0, 4\]; got values from 5 to 5"):
        first_alarm(np.zeros((2, 4)), 0.5, 5)
    with pytest.raises(ValueError, match="start must be <= stop"):
        first_alarm(np.zeros((2, 4)), 0.5, [3, 0], [2, 4])
    with pytest.raises(ValueError, match="stop must be an integer or have shape"):
        first_alarm(np.zeros((2, 4)), 0.5, 0, [1, 2, 3])
    with pytest.raises(TypeError, match="start must be an integer"):
        first_alarm(np.zeros((2, 4)), 0.5, 1.5)
    with pytest.raises(ValueError, match="k must be >= 0"):
        cantelli_bound(-0.5)
