"""Soups: weight averages, geometric mixtures and their KL identity, fine-tuning copies."""

import math

import pytest
import torch

from kllab.maths import soups
from kllab.maths.divergences import kl
from kllab.maths.width import MLP

pytestmark = pytest.mark.usefixtures("float64")


def test_weight_soup_is_the_weighted_average():
    a = MLP(3, 4, 8, seed=0, parametrization="standard")
    b = MLP(3, 4, 8, seed=1, parametrization="standard")
    s = soups.weight_soup([a.state_dict(), b.state_dict()], [0.3, 0.7])
    for k, v in s.items():
        torch.testing.assert_close(v, 0.3 * a.state_dict()[k] + 0.7 * b.state_dict()[k])
    m = soups.soup_model([a, b], [0.3, 0.7])
    x = torch.randn(5, 3)
    assert not torch.allclose(m(x), a(x))
    torch.testing.assert_close(soups.soup_model([a, a])(x), a(x))              # a soup of one model is that model
    endpoints = soups.soup_model([a, b], [1.0, 0.0])
    torch.testing.assert_close(endpoints(x), a(x))


def test_a_linear_model_soup_averages_logits():
    # For a linear (last-layer) model, the weight soup's logits are the averaged logits: a geometric mixture.
    a, b = torch.nn.Linear(3, 5).double(), torch.nn.Linear(3, 5).double()
    x = torch.randn(7, 3)
    s = soups.soup_model([a, b], [0.4, 0.6])
    logg, _ = soups.geometric_mixture([torch.log_softmax(a(x), -1), torch.log_softmax(b(x), -1)], [0.4, 0.6])
    torch.testing.assert_close(torch.log_softmax(s(x), -1), logg, atol=1e-12, rtol=0)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 1.0])
def test_kl_to_a_geometric_mixture_for_every_policy(lam):
    g = torch.Generator().manual_seed(0)
    a = torch.log_softmax(2 * torch.randn(6, generator=g), -1)
    b = torch.log_softmax(2 * torch.randn(6, generator=g), -1)
    logg, logz = soups.geometric_mixture([a, b], [lam, 1 - lam])
    assert logz.item() <= 1e-15                                      # Hoelder: Z <= 1
    for _ in range(50):
        pi = torch.log_softmax(3 * torch.randn(6, generator=g), -1)
        lhs = kl(pi, logg)
        rhs = lam * kl(pi, a) + (1 - lam) * kl(pi, b) + logz
        assert lhs.item() == pytest.approx(rhs.item(), abs=1e-12)


def test_geometric_mixture_shapes_zeros_and_bad_input():
    logps = torch.log_softmax(torch.randn(3, 4, 5), -1)
    logg, logz = soups.geometric_mixture(logps)
    assert logg.shape == (4, 5) and logz.shape == (4,)
    torch.testing.assert_close(logg.exp().sum(-1), torch.ones(4))
    a = torch.tensor([0.5, 0.5, 0.0]).log(); b = torch.tensor([0.2, 0.3, 0.5]).log()
    logg, _ = soups.geometric_mixture([a, b])
    assert logg[2].item() == -math.inf                               # ruled out by a
    logg, _ = soups.geometric_mixture([a, b], [0.0, 1.0])            # weight 0: a rules out nothing
    torch.testing.assert_close(logg, b)
    with pytest.raises(ValueError, match="weights must be non-negative and sum to 1"):
        soups.geometric_mixture([a, b], [0.7, 0.7])
    with pytest.raises(ValueError, match="weights must have one entry per ingredient"):
        soups.geometric_mixture([a, b], [1.0])
    with pytest.raises(ValueError, match="logps must share some support"):
        soups.geometric_mixture([torch.tensor([0.0, -math.inf]), torch.tensor([-math.inf, 0.0])])
    with pytest.raises(ValueError, match=r"logps\[1\] must be log-probabilities"):
        soups.geometric_mixture([a, torch.zeros(3)])


def test_weight_soup_bad_input():
    a = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="states must hold at least one"):
        soups.weight_soup([])
    with pytest.raises(ValueError, match="states must share their parameter names"):
        soups.weight_soup([a, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match="states must share their shapes"):
        soups.weight_soup([a, {"w": torch.zeros(3)}])


def test_sft_fits_the_empirical_distribution_on_a_copy():
    net = torch.nn.Linear(2, 3).double()
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.tensor([[1.0, 0.0]] * 10)
    y = torch.tensor([0] * 2 + [1] * 3 + [2] * 5)
    tuned = soups.sft(net, x, y, steps=1500, lr=0.05)
    torch.testing.assert_close(torch.softmax(tuned(x[:1]), -1)[0], torch.tensor([0.2, 0.3, 0.5]), atol=1e-3, rtol=0)
    assert all(torch.equal(p, q) for p, q in zip(before, net.parameters()))   # the original is untouched
    with pytest.raises(ValueError, match="features and actions must have shapes"):
        soups.sft(net, x, y[:3])


def test_default_weights_are_uniform():
    # Three distinct ingredients: the default soup and the default geometric mixture are the uniform ones, not any
    # other weighting (a soup of identical models, or a normalisation check, would not notice).
    g = torch.Generator().manual_seed(2)
    logps = [torch.log_softmax(2 * torch.randn(4, 5, generator=g), -1) for _ in range(3)]
    logg, logz = soups.geometric_mixture(logps)
    uniform, uniform_z = soups.geometric_mixture(logps, [1 / 3] * 3)
    torch.testing.assert_close(logg, uniform, atol=1e-14, rtol=0)
    torch.testing.assert_close(logz, uniform_z, atol=1e-14, rtol=0)
    mixed = sum(logps) / 3
    torch.testing.assert_close(logg, mixed - torch.logsumexp(mixed, -1, keepdim=True), atol=1e-14, rtol=0)
    nets = [MLP(3, 4, 8, seed=s, parametrization="standard") for s in range(3)]
    x = torch.randn(5, 3, generator=g)
    torch.testing.assert_close(soups.soup_model(nets)(x), soups.soup_model(nets, [1 / 3] * 3)(x), atol=1e-12, rtol=0)
    state = soups.weight_soup([n.state_dict() for n in nets])
    for name, value in state.items():
        torch.testing.assert_close(value, sum(n.state_dict()[name] for n in nets) / 3, atol=1e-14, rtol=0)
