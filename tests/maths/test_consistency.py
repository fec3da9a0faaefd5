"""View consistency: each direction against divergences, exchangeability, J >= 4 JS, zero on equal views, bad input."""

import math

import pytest
import torch

from kllab.maths import consistency as C
from kllab.maths import divergences as D

pytestmark = pytest.mark.usefixtures("float64")


def views(n=50, k=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(n, k, generator=g), 3 * torch.randn(n, k, generator=g)


def test_directions_match_divergences():
    z1, z2 = views()
    l1, l2 = torch.log_softmax(z1 / 0.5, -1), torch.log_softmax(z2 / 0.5, -1)
    torch.testing.assert_close(C.view_consistency(z1, z2, 0.5), D.kl(l1, l2))
    torch.testing.assert_close(C.view_consistency(z1, z2, 0.5, direction="reverse"), D.kl(l2, l1))
    torch.testing.assert_close(C.view_consistency(z1, z2, 0.5, direction="jeffreys"), D.kl(l1, l2) + D.kl(l2, l1))
    torch.testing.assert_close(C.view_consistency(z1, z2, 0.5, direction="js"), D.js(l1, l2))


def test_reverse_is_forward_with_the_views_swapped_and_symmetric_ones_are_symmetric():
    z1, z2 = views(seed=1)
    torch.testing.assert_close(C.view_consistency(z1, z2, direction="reverse"), C.view_consistency(z2, z1))
    for d in ("jeffreys", "js"):
        torch.testing.assert_close(C.view_consistency(z1, z2, direction=d), C.view_consistency(z2, z1, direction=d))


def test_jeffreys_bounds_four_js_and_js_is_bounded():
    z1, z2 = views(20_000, 5, seed=2)
    j = C.view_consistency(z1, z2, direction="jeffreys")
    s = C.view_consistency(z1, z2, direction="js")
    assert (j - 4 * s).min().item() >= -1e-12
    assert s.max().item() <= math.log(2)


def test_zero_on_identical_views_and_invariant_to_logit_shifts():
    z1, _ = views(seed=3)
    for d in C.CONSISTENCY_DIRECTIONS:
        assert C.view_consistency(z1, z1, direction=d).abs().max().item() < 1e-12
        torch.testing.assert_close(C.view_consistency(z1, z1 + 4.0, direction=d), torch.zeros(50), rtol=0, atol=1e-12)


def test_exchangeable_views_give_equal_expected_directions():
    g = torch.Generator().manual_seed(4)
    base = torch.randn(1, 6, generator=g)
    z1 = base + torch.randn(200_000, 6, generator=g)
    z2 = base + torch.randn(200_000, 6, generator=g)
    fwd = C.view_consistency(z1, z2).mean().item()
    rev = C.view_consistency(z1, z2, direction="reverse").mean().item()
    assert fwd == pytest.approx(rev, rel=0.02)


def test_gradient_flows_into_both_views():
    z1, z2 = views(seed=5)
    z1.requires_grad_(); z2.requires_grad_()
    C.view_consistency(z1, z2).sum().backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


def test_disagreement():
    z1 = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    z2 = torch.tensor([[3.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    assert C.view_disagreement(z1, z2).tolist() == [0.0, 1.0]


def test_shape_contract():
    z1, z2 = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    for d in C.CONSISTENCY_DIRECTIONS:
        assert C.view_consistency(z1, z2, direction=d).shape == (2, 3)
    assert C.view_disagreement(z1, z2).shape == (2, 3)


def test_bad_input():
    z1, z2 = views(seed=6)
    with pytest.raises(ValueError, match="direction must be one of 'forward', 'reverse', 'jeffreys', 'js'; got 'sideways'"):
        C.view_consistency(z1, z2, direction="sideways")
    with pytest.raises(ValueError, match="temperature must be > 0; got -1.0"):
        C.view_consistency(z1, z2, -1.0)
    with pytest.raises(ValueError, match="logits_1 and logits_2 must have the same shape"):
        C.view_consistency(z1, z2[:, :3])
    with pytest.raises(ValueError, match="logits_2 must not contain NaN"):
        C.view_consistency(z1, torch.full_like(z2, math.nan))
