"""Tests of kllab.maths.attribution: additive attributions, importance distributions, the prior penalty.

Oracles: Shapley values by averaging marginal contributions over every permutation of the factors (written
here, independent of the library's coalition formula), the closed form of a linear model's Shapley values,
SciPy's ``entropy`` and ``jensenshannon`` for the penalties, a Monte-Carlo mean for the Gaussian closed form,
and finite differences (``torch.autograd.gradcheck``) for the gradients a training loop uses.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from kllab.maths import attribution as A

D64 = torch.float64


def permutation_shapley(model, x, background):
    """Shapley values by brute force over the d! orderings (v(S) = mean over the background)."""
    n, d = x.shape
    phi = torch.zeros(n, d, dtype=D64)
    perms = list(itertools.permutations(range(d)))

    def value(mask):
        mixed = torch.where(mask, x[:, None, :], background[None, :, :])
        return model(mixed.reshape(-1, d)).reshape(n, -1).mean(1)

    for perm in perms:
        mask = torch.zeros(d, dtype=torch.bool)
        before = value(mask)
        for j in perm:
            mask = mask.clone()
            mask[j] = True
            after = value(mask)
            phi[:, j] += after - before
            before = after
    return phi / len(perms)


def test_linear_attributions_are_the_shapley_values_of_a_linear_model():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 4, generator=g, dtype=D64)
    w = torch.randn(4, generator=g, dtype=D64)
    model = lambda z: z @ w + 0.3                                       # noqa: E731
    phi = A.linear_attributions(x, w)
    assert torch.allclose(phi, permutation_shapley(model, x, x), atol=1e-12)
    assert torch.allclose(phi, A.exact_shapley(model, x, x), atol=1e-12)
    assert torch.allclose(phi, w * (x - x.mean(0)), atol=0)            # the closed form
    # efficiency: sum_j phi_j = f - mean f
    assert torch.allclose(phi.sum(-1), model(x) - model(x).mean(), atol=1e-12)


def test_additive_mlp_attributions_are_its_shapley_values_and_efficient():
    net = A.AdditiveMLP(4, width=5, seeds=[3, 4])
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=D64)
    with torch.no_grad():
        g = net(x)
        phi = A.additive_attributions(g)
        f = net.predict(x)
        for r in range(2):
            model = lambda z, r=r: net.predict(z)[r]                    # noqa: E731
            assert torch.allclose(phi[r], permutation_shapley(model, x, x), atol=1e-10)
        assert torch.allclose(phi.sum(-1), f - f.mean(-1, keepdim=True), atol=1e-12)


def test_exact_shapley_matches_permutations_on_a_non_additive_model():
    g = torch.Generator().manual_seed(2)
    x, bg = torch.randn(3, 4, generator=g, dtype=D64), torch.randn(5, 4, generator=g, dtype=D64)
    model = lambda z: z[:, 0] * z[:, 1] + torch.sin(z[:, 2]) * z[:, 3] ** 2     # noqa: E731
    phi = A.exact_shapley(model, x, bg)
    assert torch.allclose(phi, permutation_shapley(model, x, bg), atol=1e-12)
    assert torch.allclose(phi.sum(-1), model(x) - model(bg).mean(), atol=1e-12)


def test_additive_mlp_models_depend_only_on_their_seed():
    x = torch.randn(5, 3, dtype=D64)
    both = A.AdditiveMLP(3, width=4, seeds=[7, 8])(x)
    alone = A.AdditiveMLP(3, width=4, seeds=[8])(x)
    assert torch.equal(both[1], alone[0])


def test_gaussian_closed_form_against_monte_carlo():
    g = torch.Generator().manual_seed(3)
    n = 200_000
    sd = torch.tensor([1.0, 2.0, 0.5], dtype=D64)
    w = torch.tensor([0.7, -1.2, 3.0], dtype=D64)
    x = torch.randn(n, 3, generator=g, dtype=D64) * sd
    phi = A.linear_attributions(x, w, mean=torch.zeros(3, dtype=D64))
    mc = A.mean_abs_attribution(phi)
    exact = A.gaussian_mean_abs_attribution(w, sd)
    se = (phi.abs().std(0) / math.sqrt(n))
    assert ((mc - exact).abs() < 4 * se).all(), (mc, exact, se)
    # a dropped sqrt(2/pi) would be off by 25 %, far outside
    assert ((mc - w.abs() * sd).abs() > 50 * se).all()


def test_importance_closed_values_and_temperature():
    phi = torch.tensor([[3.0, -1.0, 0.0], [-3.0, 1.0, 0.0]], dtype=D64)
    li = A.importance(phi)
    assert torch.allclose(li.exp(), torch.tensor([0.75, 0.25, 0.0], dtype=D64))
    assert li[2] == -math.inf
    for t in (0.3, 1.0, 4.0):
        m = np.array([3.0, 1.0, 0.5])
        expected = m ** (1 / t) / (m ** (1 / t)).sum()
        phi2 = torch.tensor(np.stack([m, -m]), dtype=D64)
        assert np.allclose(A.importance(phi2, t).exp().numpy(), expected, atol=1e-14)
    hot = A.importance(torch.tensor([[3.0, 1.0]], dtype=D64), 1e3).exp()
    cold = A.importance(torch.tensor([[3.0, 1.0]], dtype=D64), 1e-2).exp()
    assert torch.allclose(hot, torch.full((2,), 0.5, dtype=D64), atol=1e-3) and cold[0] > 1 - 1e-12
    # the linear shortcut |w| * mean|x - xbar| gives the same importance as the attributions
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(4), dtype=D64)
    w = torch.tensor([1.0, -0.5, 0.1, 2.0], dtype=D64)
    short = A.importance_from_mean_abs(w.abs() * (x - x.mean(0)).abs().mean(0), 0.7)
    assert torch.allclose(short, A.importance(A.linear_attributions(x, w), 0.7), atol=1e-14)
    # eps keeps a zero factor finite
    assert torch.isfinite(A.importance(phi, eps=1e-8)).all()
    # batched: (R, N, d) -> (R, d)
    assert A.importance(torch.randn(3, 10, 4, dtype=D64)).shape == (3, 4)


def test_penalties_against_scipy():
    g = torch.Generator().manual_seed(5)
    li = torch.log_softmax(torch.randn(6, 5, generator=g, dtype=D64), -1)
    lp = torch.log_softmax(torch.randn(5, generator=g, dtype=D64), -1)
    p, q = lp.exp().numpy(), li.exp().numpy()
    fwd = A.importance_penalty(li, lp, "forward")
    rev = A.importance_penalty(li, lp, "reverse")
    js = A.importance_penalty(li, lp, "js")
    assert fwd.shape == rev.shape == js.shape == (6,)
    for r in range(6):
        assert math.isclose(fwd[r].item(), entropy(p, q[r]), rel_tol=1e-12)      # KL(prior || I)
        assert math.isclose(rev[r].item(), entropy(q[r], p), rel_tol=1e-12)      # KL(I || prior)
        assert math.isclose(js[r].item(), jensenshannon(p, q[r]) ** 2, rel_tol=1e-10)
    assert not torch.allclose(fwd, rev)                                          # a swapped direction shows
    assert (fwd >= 0).all() and (rev >= 0).all() and (js <= math.log(2)).all()
    assert A.importance_penalty(lp, lp, "forward").item() == 0.0


def test_forward_is_zero_avoiding_and_reverse_zero_forcing():
    lp = torch.tensor([0.5, 0.3, 0.2], dtype=D64).log()
    li = torch.tensor([0.6, 0.4, 0.0], dtype=D64).log()          # a factor the prior names gets no importance
    assert A.importance_penalty(li, lp, "forward").item() == math.inf
    rev = A.importance_penalty(li, lp, "reverse").item()
    assert math.isfinite(rev) and math.isclose(rev, 0.6 * math.log(0.6 / 0.5) + 0.4 * math.log(0.4 / 0.3))
    assert A.importance_penalty(li, lp, "js").item() < math.log(2)


def test_penalty_gradient_in_the_weights_by_finite_differences():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(40, 4, generator=g, dtype=D64)
    lp = torch.log_softmax(torch.randn(4, generator=g, dtype=D64), -1)
    w = torch.tensor([0.9, -0.4, 0.3, 0.2], dtype=D64, requires_grad=True)
    for direction in A.PENALTY_DIRECTIONS:
        for t in (0.5, 2.0):
            f = lambda w: A.importance_penalty(A.importance(A.linear_attributions(x, w), t), lp, direction)  # noqa: E731
            assert torch.autograd.gradcheck(f, (w,), eps=1e-6, atol=1e-8)
    net = A.AdditiveMLP(3, width=2, seeds=[0])
    xs = torch.randn(20, 3, generator=g, dtype=D64)
    lp3 = torch.log_softmax(torch.randn(3, generator=g, dtype=D64), -1)
    f = lambda a: A.importance_penalty(A.importance(A.additive_attributions(                            # noqa: E731
        (torch.tanh(xs[None, :, :, None] * net.u[:, None] + net.c[:, None]) * a[:, None]).sum(-1))), lp3, "reverse")
    assert torch.autograd.gradcheck(f, (net.a.detach().clone().requires_grad_(),), eps=1e-6, atol=1e-8)


def test_bad_input_is_rejected_with_its_name():
    x = torch.randn(5, 3, dtype=D64)
    lp = torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=D64))
    with pytest.raises(ValueError, match="temperature must be > 0; got 0.0"):
        A.importance(x, 0.0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        A.importance(x, 1.0, eps=-1.0)
    with pytest.raises(ValueError, match="phi must not contain NaN"):
        A.importance(torch.tensor([[float("nan"), 1.0]], dtype=D64))
    with pytest.raises(ValueError, match="all-zero"):
        A.importance(torch.zeros(4, 3, dtype=D64))
    with pytest.raises(ValueError, match="phi must have at least 2 axes"):
        A.importance(torch.ones(3, dtype=D64))
    with pytest.raises(ValueError, match="mean_abs must be >= 0"):
        A.importance_from_mean_abs(torch.tensor([1.0, -1.0], dtype=D64))
    with pytest.raises(ValueError, match="weight must have one entry per factor, 3"):
        A.linear_attributions(x, torch.ones(2, dtype=D64))
    with pytest.raises(ValueError, match="direction must be one of"):
        A.importance_penalty(lp, lp, "backward")
    with pytest.raises(ValueError, match="log_prior must be log-probabilities"):
        A.importance_penalty(lp, torch.tensor([0.5, 0.3, 0.2], dtype=D64), "reverse")
    with pytest.raises(ValueError, match="log_prior must have one entry per factor, 3"):
        A.importance_penalty(lp, torch.log(torch.tensor([0.5, 0.5], dtype=D64)))
    with pytest.raises(ValueError, match="width must be >= 1"):
        A.AdditiveMLP(3, width=0, seeds=[0])
    with pytest.raises(ValueError, match="x must have shape"):
        A.AdditiveMLP(3, width=2, seeds=[0])(torch.ones(4, 2, dtype=D64))
    with pytest.raises(ValueError, match="x and background must have shapes"):
        A.exact_shapley(lambda z: z.sum(-1), x, torch.ones(2, 4, dtype=D64))
    with pytest.raises(ValueError, match="sd must be >= 0"):
        A.gaussian_mean_abs_attribution(torch.ones(2), torch.tensor([1.0, -1.0]))
