"""Fitting: the forward-KL optimum matches moments; the reverse-KL one seeks a mode."""

import math

import pytest
import torch

from kllab.maths.distributions import GaussianMixture1D, two_modes
from kllab.maths.fitting import fit_gaussian, fit_mixture


@pytest.mark.parametrize("s", [1.0, 2.0, 3.0])
def test_forward_kl_is_moment_matching(s):
    fit = fit_gaussian(two_modes(s), divergence="forward", steps=1500, lr=0.05)
    assert fit.mu == pytest.approx(0.0, abs=1e-3)
    assert fit.sigma == pytest.approx(math.sqrt(1 + s * s), rel=1e-3)


def test_forward_kl_moment_matching_asymmetric_mixture():
    gm = GaussianMixture1D([-2.0, 1.0], [0.7, 1.2], [0.25, 0.75])
    fit = fit_gaussian(gm, divergence="forward", steps=2000, lr=0.05)
    assert fit.mu == pytest.approx(gm.mean, abs=1e-3)
    assert fit.sigma == pytest.approx(math.sqrt(gm.variance), rel=1e-3)


def test_reverse_kl_seeks_a_mode_from_off_centre():
    fit = fit_gaussian(two_modes(3.0), divergence="reverse", init=(2.0, 1.0), steps=1500, lr=0.05)
    assert fit.mu == pytest.approx(3.0, abs=0.05)
    assert fit.sigma == pytest.approx(1.0, abs=0.05)
    assert fit.loss == pytest.approx(math.log(2), abs=0.01)  # a mode of a well-separated 50/50 mixture


def test_reverse_kl_middle_start_stalls_higher():
    # Started near the middle, the fit widens first and is pulled to the symmetric point,
    # a wide solution whose reverse KL is higher than the one-mode solution's.
    mid = fit_gaussian(two_modes(3.0), divergence="reverse", init=(1.0, 1.0), steps=1500, lr=0.05)
    side = fit_gaussian(two_modes(3.0), divergence="reverse", init=(2.0, 1.0), steps=1500, lr=0.05)
    assert abs(mid.mu) < 1e-3
    assert mid.sigma > 2.0
    assert mid.loss > side.loss + 0.05


def test_history_and_path_lengths():
    fit = fit_gaussian(two_modes(1.0), steps=37)
    assert len(fit.history) == 37 and len(fit.path) == 37
    assert fit.logq.shape == (4001,)


def test_mixture_recovers_components_forward_kl():
    fit = fit_mixture(two_modes(3.0), 2, init_means=[-1.0, 1.0], steps=1500)
    assert sorted(fit.means) == pytest.approx([-3.0, 3.0], abs=0.02)
    assert fit.sigmas == pytest.approx([1.0, 1.0], abs=0.02)
    assert fit.loss < 1e-4


@pytest.mark.parametrize("kwargs, message", [
    ({"divergence": "l2"}, "divergence must be one of"),
    ({"steps": 0}, "steps must be >= 1; got 0"),
    ({"lr": 0.0}, "lr must be > 0; got 0.0"),
    ({"init": (0.0, -1.0)}, "init[1] (sigma) must be > 0"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError) as err:
        fit_gaussian(two_modes(1.0), **kwargs)
    assert message in str(err.value)


def test_bad_target():
    with pytest.raises(ValueError, match="target must be"):
        fit_gaussian("not a density")
