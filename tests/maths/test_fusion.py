"""Logit fusion: monotone KL shift (autograd, finite differences), ceilings, bisection vs scipy brentq, bad input."""

import math

import numpy as np
import pytest
import scipy.optimize
import torch

from kllab.maths import divergences as D
from kllab.maths import fusion as F

pytestmark = pytest.mark.usefixtures("float64")


def pair(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_kl_shift_matches_divergences_kl(direction):
    z, d = pair(6, 9, seed=1)
    a = torch.linspace(0.1, 2.0, 6)
    base = torch.log_softmax(z / 1.5, -1)
    moved = torch.log_softmax((z + a[:, None] * d) / 1.5, -1)
    expected = D.kl(moved, base) if direction == "reverse" else D.kl(base, moved)
    torch.testing.assert_close(F.kl_shift(z, d, a, 1.5, direction=direction), expected)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_kl_shift_is_zero_at_zero_and_non_decreasing(direction):
    z, d = pair(500, 20, seed=2)
    alphas = torch.linspace(0, 5, 101)
    f = torch.stack([F.kl_shift(z, d, float(a), 0.7, direction=direction) for a in alphas])   # (101, 500)
    assert f[0].abs().max().item() < 1e-14
    assert (f.diff(dim=0) >= -1e-13).all()
    # strictly increasing for a non-constant delta (a shift that returned a constant would pass the line above):
    # the smallest step after the first is 1.6e-8 (reverse) and 1.4e-5 (forward) on these pairs
    assert (f.diff(dim=0)[1:] > 1e-10).all()


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_derivative_matches_autograd(direction):
    z, d = pair(40, 12, seed=3)
    a = torch.rand(40, generator=torch.Generator().manual_seed(4)).mul(3).requires_grad_()
    F.kl_shift(z, d, a, 2.0, direction=direction).sum().backward()
    closed = F.kl_shift_derivative(z, d, a.detach(), 2.0, direction=direction)
    torch.testing.assert_close(closed, a.grad, rtol=1e-9, atol=1e-12)
    assert (closed >= -1e-15).all()


def test_reverse_derivative_is_alpha_times_variance():
    z, d = pair(12, seed=5)
    a = 0.8
    q = torch.softmax(z + a * d, -1)
    var = (q * d ** 2).sum() - (q * d).sum() ** 2
    assert F.kl_shift_derivative(z, d, a).item() == pytest.approx(a * var.item(), rel=1e-12)


def test_reverse_ceiling_is_the_limit_and_forward_has_none():
    z, d = pair(30, 8, seed=6)
    ceiling = F.kl_shift_ceiling(z, d)
    far = F.kl_shift(z, d, 1e4)
    torch.testing.assert_close(far, ceiling, rtol=1e-8, atol=1e-10)
    assert (F.kl_shift(z, d, 50.0) <= ceiling + 1e-12).all()
    assert torch.isinf(F.kl_shift_ceiling(z, d, direction="forward")).all()
    assert (F.kl_shift(z, d, 60.0, direction="forward") > ceiling).all()   # the forward shift keeps growing


def test_ceiling_with_a_tied_maximum_and_constant_delta():
    z = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    d = torch.tensor([1.0, 1.0, 0.0, -1.0])
    assert F.kl_shift_ceiling(z, d).item() == pytest.approx(-math.log(0.3), rel=1e-12)
    const = torch.full((4,), 2.0)
    assert F.kl_shift_ceiling(z, const).item() == 0.0
    assert F.kl_shift_ceiling(z, const, direction="forward").item() == 0.0
    assert F.kl_shift(z, const, 5.0).item() == pytest.approx(0.0, abs=1e-15)   # a constant shift moves nothing


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_bisection_matches_scipy_brentq(direction):
    z, d = pair(15, 10, seed=7)
    target = 0.5 * F.kl_shift(z, d, 2.0, 1.3, direction=direction)
    ours = F.match_kl_shift(z, d, target, 1.3, direction=direction)
    for i in range(15):
        fn = lambda a: F.kl_shift(z[i], d[i], a, 1.3, direction=direction).item() - target[i].item()
        root = scipy.optimize.brentq(fn, 0.0, 10.0, xtol=1e-14, rtol=1e-14)
        assert ours[i].item() == pytest.approx(root, abs=1e-9)


def test_bisection_recovers_alpha_and_saturates():
    z, d = pair(200, 30, seed=8)
    true = torch.rand(200, generator=torch.Generator().manual_seed(9)) * 3
    target = F.kl_shift(z, d, true, 0.9)
    torch.testing.assert_close(F.match_kl_shift(z, d, target, 0.9), true, rtol=0, atol=1e-7)
    ceiling = F.kl_shift_ceiling(z, d, 0.9)
    assert (F.match_kl_shift(z, d, ceiling + 0.1, 0.9, alpha_max=4.0) == 4.0).all()
    assert (F.match_kl_shift(z, d, torch.zeros(200), 0.9) == 0.0).all()
    assert (F.match_kl_shift(z, d, -1.0, 0.9) == 0.0).all()


def test_fuse_logits_is_logit_arithmetic():
    g = torch.Generator().manual_seed(10)
    z_l, z_s = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    experts = torch.randn(4, 3, 7, generator=g)
    alphas = torch.rand(4, 3, generator=g)
    manual = z_l + sum(alphas[:, i:i + 1] * (experts[:, i] - z_s) for i in range(3))
    torch.testing.assert_close(F.fuse_logits(z_l, z_s, experts, alphas), manual)
    # alpha = 1 with one expert and z_l = z_s reproduces the expert (proxy tuning of a model by itself)
    torch.testing.assert_close(F.fuse_logits(z_s, z_s, experts[:, :1], 1.0), experts[:, 0])


def test_shape_contract():
    z, d = pair(2, 3, 5, seed=11)
    assert F.kl_shift(z, d, 0.5).shape == (2, 3)
    assert F.kl_shift_derivative(z, d, 0.5).shape == (2, 3)
    assert F.kl_shift_ceiling(z, d).shape == (2, 3)
    assert F.match_kl_shift(z, d, 0.1).shape == (2, 3)


def test_temperature_rescales_delta_and_logits():
    z, d = pair(5, 6, seed=12)
    torch.testing.assert_close(F.kl_shift(z, d, 0.7, 2.5), F.kl_shift(z / 2.5, d / 2.5, 0.7))
    np.testing.assert_allclose(F.kl_shift_derivative(z, d, 0.7, 2.5).numpy(),
                               F.kl_shift_derivative(z / 2.5, d / 2.5, 0.7).numpy(), rtol=1e-10)


def test_bad_input():
    z, d = pair(3, 4, seed=13)
    with pytest.raises(ValueError, match="direction must be one of 'forward', 'reverse'; got 'sideways'"):
        F.kl_shift(z, d, 1.0, direction="sideways")
    with pytest.raises(ValueError, match="temperature must be > 0; got 0.0"):
        F.kl_shift(z, d, 1.0, 0.0)
    with pytest.raises(ValueError, match="logits and delta must have the same shape"):
        F.kl_shift(z, d[:, :3], 1.0)
    with pytest.raises(ValueError, match="delta must be finite"):
        F.kl_shift(z, torch.full((3, 4), math.inf), 1.0)
    with pytest.raises(ValueError, match="logits must not contain NaN"):
        F.kl_shift(torch.full((3, 4), math.nan), d, 1.0)
    with pytest.raises(ValueError, match="alpha_max must be > 0"):
        F.match_kl_shift(z, d, 0.1, alpha_max=0.0)
    with pytest.raises(ValueError, match="target must not contain NaN"):
        F.match_kl_shift(z, d, torch.full((3,), math.nan))
    with pytest.raises(ValueError, match="logits_experts must have shape"):
        F.fuse_logits(z, z, d, 1.0)
