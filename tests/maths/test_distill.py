"""Distillation: the T² factor, directions, and the closed-form gradient against autograd."""

import math

import pytest
import torch

from kllab.maths.distill import kd_gradient, kd_loss
from kllab.maths.divergences import js, kl

pytestmark = pytest.mark.usefixtures("float64")


def logits(seed, shape=(6, 10)):
    return 3 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
def test_kd_loss_is_t2_times_kl(T):
    t, s = logits(0), logits(1)
    p, q = torch.log_softmax(t / T, -1), torch.log_softmax(s / T, -1)
    torch.testing.assert_close(kd_loss(t, s, T), T ** 2 * kl(p, q))
    torch.testing.assert_close(kd_loss(t, s, T, direction="reverse"), T ** 2 * kl(q, p))
    torch.testing.assert_close(kd_loss(t, s, T, direction="js"), T ** 2 * js(p, q))
    torch.testing.assert_close(kd_loss(t, s, T, t2_scaling=False), kl(p, q))


def test_gradient_closed_form_matches_autograd():
    t, s = logits(2), logits(3).requires_grad_(True)
    kd_loss(t, s, 3.0, t2_scaling=False).sum().backward()
    torch.testing.assert_close(s.grad, kd_gradient(t, s.detach(), 3.0))


def test_t2_keeps_gradient_scale_at_high_temperature():
    t, s = logits(4, (1, 10)), logits(5, (1, 10))
    norms = {}
    for T in (100.0, 200.0):
        norms[T] = kd_gradient(t, s, T).norm().item()
    # Without T² the gradient falls like 1/T²; with it, it tends to a constant.
    assert norms[100.0] / norms[200.0] == pytest.approx(4.0, rel=0.01)
    assert (100.0 ** 2 * norms[100.0]) / (200.0 ** 2 * norms[200.0]) == pytest.approx(1.0, rel=0.01)


def test_high_temperature_limit_is_logit_matching():
    # As T -> inf, T² KL(p_T || q_T) -> (1 / 2K) * ||centred(z_t - z_s)||² (Hinton et al., 2015).
    t, s = logits(6, (10,)), logits(7, (10,))
    d = (t - t.mean()) - (s - s.mean())
    limit = (d ** 2).sum().item() / (2 * 10)
    assert kd_loss(t, s, 1e3).item() == pytest.approx(limit, rel=1e-2)


def test_shape_contract():
    assert kd_loss(logits(0, (2, 3, 5)), logits(1, (2, 3, 5)), 2.0).shape == (2, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0.0}, "temperature must be > 0; got 0.0"),
    ({"direction": "both"}, "direction must be one of 'forward', 'reverse', 'js'; got 'both'"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError) as err:
        kd_loss(logits(0), logits(1), **kwargs)
    assert message in str(err.value)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="logits_teacher and logits_student must have the same shape"):
        kd_loss(logits(0, (2, 5)), logits(1, (2, 4)))
