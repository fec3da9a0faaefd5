"""Tests of kllab.maths.landscape: segments, barriers, Hessian-vector products, the midpoint identity, SGD, spawning.

Oracles: closed forms of a quadratic loss (the midpoint identity is exact there), central finite differences of
autograd gradients (Hessian-vector products), torch autograd (the hand-written backpropagation), scikit-learn's
``make_moons`` data for a convex model (softmax regression: Jensen gives B <= 0), and plain one-model SGD.
"""

import math

import pytest
import torch

from kllab.maths.landscape import (FlatMLP, barrier_profile, cross_entropy, hvp, interpolate, loss_barrier,
                                   midpoint_prediction, spawn, train_sgd)

@pytest.fixture(autouse=True)
def _float64(float64):
    """Every test here runs in float64; the default dtype is restored after each (doctests share the worker)."""


def _moons(n=60, seed=0):
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=0.25, random_state=seed)
    return torch.tensor(x), torch.tensor(y)


def _quadratic(p=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(p, p, generator=gen))
    a = q @ torch.diag(torch.linspace(-2.0, 3.0, p)) @ q.T           # indefinite
    b = torch.randn(p, generator=gen)
    return a, b, (lambda t: 0.5 * t @ a @ t + b @ t + 0.7)


# ---------------------------------------------------------------------------------------------- segment

def test_interpolate_endpoints_and_midpoint():
    a, b = torch.randn(7), torch.randn(7)
    pts = interpolate(a, b, [0.0, 0.5, 1.0])
    assert pts.shape == (3, 7)
    assert torch.equal(pts[0], a) and torch.allclose(pts[2], b) and torch.allclose(pts[1], (a + b) / 2)


def test_quadratic_profile_is_the_closed_form_parabola():
    a_mat, _, quad = _quadratic()
    ta, tb = torch.randn(5), torch.randn(5)
    alphas = torch.linspace(0, 1, 11)
    losses, prof = barrier_profile(quad, ta, tb, alphas)
    d = tb - ta
    theory = -0.5 * alphas * (1 - alphas) * (d @ a_mat @ d)
    assert torch.allclose(prof, theory, atol=1e-12)
    assert torch.allclose(losses, torch.stack([quad(t) for t in interpolate(ta, tb, alphas)]))
    assert prof[0].abs() < 1e-12 and prof[-1].abs() < 1e-12


def test_loss_barrier_of_a_ridge_and_of_a_bowl():
    ridge = lambda t: -(t ** 2).sum()
    assert loss_barrier(ridge, torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])) == pytest.approx(1.0)
    bowl = lambda t: (t ** 2).sum()
    assert loss_barrier(bowl, torch.tensor([-1.0]), torch.tensor([1.0])) == 0.0   # only the ends reach 0


# ---------------------------------------------------------------------------------------------- curvature

def test_hvp_matches_the_matrix_of_a_quadratic():
    a_mat, _, quad = _quadratic()
    theta, v = torch.randn(5), torch.randn(5)
    assert torch.allclose(hvp(quad, theta, v), a_mat @ v, atol=1e-12)


def test_hvp_matches_finite_differences_on_a_network():
    x, y = _moons()
    net = FlatMLP(2, 2, width=6, depth=2)
    loss = cross_entropy(net, x, y)
    theta, v = net.init(0), torch.randn(net.n_params, generator=torch.Generator().manual_seed(1))

    def grad(t):
        t = t.clone().requires_grad_(True)
        return torch.autograd.grad(loss(t), t)[0]

    h = 1e-5
    fd = (grad(theta + h * v) - grad(theta - h * v)) / (2 * h)
    hv = hvp(loss, theta, v)
    assert ((hv - fd).norm() / hv.norm()).item() < 1e-7


def test_midpoint_identity_exact_for_a_quadratic():
    _, _, quad = _quadratic()
    ta, tb = torch.randn(5), 3 * torch.randn(5)          # far apart: exact anyway
    _, prof = barrier_profile(quad, ta, tb, [0.0, 0.5, 1.0])
    assert midpoint_prediction(quad, ta, tb) == pytest.approx(prof[1].item(), abs=1e-12)


def test_midpoint_identity_error_is_fourth_order_on_a_network():
    # On a smooth network the remainder B(1/2) + D'HD/8 is O(|D|^4): halving the segment divides it by about 16.
    x, y = _moons()
    net = FlatMLP(2, 2, width=5, depth=2)
    loss = cross_entropy(net, x, y)
    m = net.init(3)
    d = torch.randn(net.n_params, generator=torch.Generator().manual_seed(4))
    d = d / d.norm()
    errors = []
    for s in (0.4, 0.2, 0.1):
        a, b = m - s * d / 2, m + s * d / 2
        _, prof = barrier_profile(loss, a, b, [0.0, 0.5, 1.0])
        errors.append(abs(prof[1].item() - midpoint_prediction(loss, a, b)))
    rates = [errors[i] / errors[i + 1] for i in range(2)]
    assert all(12 < r < 20 for r in rates), rates


# ---------------------------------------------------------------------------------------------- convexity

def test_softmax_regression_has_no_barrier():
    # Jensen: the cross-entropy of a linear model is convex in its parameters, so B(alpha) <= 0 on any segment.
    x, y = _moons(100)
    net = FlatMLP(2, 2, width=1, depth=0)
    loss = cross_entropy(net, x, y)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        ta, tb = 3 * torch.randn(net.n_params, generator=gen), 3 * torch.randn(net.n_params, generator=gen)
        _, prof = barrier_profile(loss, ta, tb, torch.linspace(0, 1, 21))
        assert prof.max().item() <= 1e-12
        assert prof[10].item() < 0   # strictly convex along a generic segment


def test_network_with_hidden_layers_can_have_a_barrier():
    # Two hidden units tanh(+-(5 x2 - 1.25)) voting with opposite signs, and the copy with the units swapped: the same
    # function, but at the midpoint every weight of the first layer averages to 0, the logits vanish, loss = log 2.
    x, y = _moons(100)
    net = FlatMLP(2, 2, width=2, depth=1)
    sl = dict(net.layer_slices())
    theta = torch.zeros(net.n_params)
    theta[sl["W1"]] = torch.tensor([[0.0, 0.0], [5.0, -5.0]]).reshape(-1)
    theta[sl["b1"]] = torch.tensor([-1.25, 1.25])
    theta[sl["W2"]] = 0.25 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).reshape(-1)
    swapped = theta.clone()
    swapped[sl["W1"]] = theta[sl["W1"]].view(2, 2)[:, [1, 0]].reshape(-1)
    swapped[sl["b1"]] = theta[sl["b1"]][[1, 0]]
    swapped[sl["W2"]] = theta[sl["W2"]].view(2, 2)[[1, 0]].reshape(-1)
    loss = cross_entropy(net, x, y)
    assert loss(swapped).item() == pytest.approx(loss(theta).item(), abs=1e-12)
    _, prof = barrier_profile(loss, theta, swapped, [0.0, 0.5, 1.0])
    assert loss((theta + swapped) / 2).item() == pytest.approx(math.log(2), abs=1e-12)
    assert loss(theta).item() < math.log(2) - 0.1
    assert prof[1].item() == pytest.approx(math.log(2) - loss(theta).item(), abs=1e-12)
    assert loss_barrier(loss, theta, swapped) == pytest.approx(prof[1].item())


# ---------------------------------------------------------------------------------------------- networks and SGD

def test_flat_mlp_matches_torch_layers():
    net = FlatMLP(3, 2, width=4, depth=2)
    theta = net.init(5)
    sl = dict(net.layer_slices())
    x = torch.randn(7, 3)
    h = torch.tanh(x @ theta[sl["W1"]].view(3, 4) + theta[sl["b1"]])
    h = torch.tanh(h @ theta[sl["W2"]].view(4, 4) + theta[sl["b2"]])
    out = h @ theta[sl["W3"]].view(4, 2) + theta[sl["b3"]]
    assert torch.allclose(net(theta, x), out)
    assert net.n_params == 3 * 4 + 4 + 4 * 4 + 4 + 4 * 2 + 2
    batched = net(torch.stack([theta, net.init(6)]), x)
    assert batched.shape == (2, 7, 2) and torch.allclose(batched[0], out)


def test_loss_and_grad_matches_autograd():
    net = FlatMLP(2, 3, width=5, depth=2)
    theta = torch.stack([net.init(0), net.init(1)])
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 9, 2, generator=gen), torch.randint(0, 3, (2, 9), generator=gen)
    losses, grads = net.loss_and_grad(theta, x, y)
    t = theta.clone().requires_grad_(True)
    ref = -torch.log_softmax(net(t, x), -1).gather(-1, y[..., None]).mean((1, 2))
    (g_ref,) = torch.autograd.grad(ref.sum(), t)
    assert torch.allclose(losses, ref) and torch.allclose(grads, g_ref, atol=1e-14)


def test_cross_entropy_equals_torch_functional():
    x, y = _moons()
    net = FlatMLP(2, 2, width=4, depth=1)
    theta = net.init(0)
    ref = torch.nn.functional.cross_entropy(net(theta, x), y)
    assert cross_entropy(net, x, y)(theta).item() == pytest.approx(ref.item(), rel=1e-14)
    both = cross_entropy(net, x, y)(torch.stack([theta, net.init(1)]))
    assert both.shape == (2,) and both[0].item() == pytest.approx(ref.item(), rel=1e-14)


def test_train_sgd_is_plain_sgd_and_models_are_independent():
    x, y = _moons()
    net = FlatMLP(2, 2, width=4, depth=1)
    start = torch.stack([net.init(0), net.init(1)])
    both = train_sgd(net, start, x, y, steps=5, lr=0.3, batch_size=12, orders=[7, 8])
    alone = train_sgd(net, start[1:], x, y, steps=5, lr=0.3, batch_size=12, orders=[8])
    assert torch.allclose(both[1], alone[0], atol=1e-14)
    # by hand: one step on the first batch of order 7 (a permutation of the data)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(7))[:12]
    t = start[0].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(net(t, x[perm]), y[perm]), t)
    one = train_sgd(net, start[:1], x, y, steps=1, lr=0.3, batch_size=12, orders=[7])
    assert torch.allclose(one[0], start[0] - 0.3 * g, atol=1e-14)
    # two calls with `start` follow the same data order as one call
    split = train_sgd(net, train_sgd(net, start, x, y, steps=2, lr=0.3, batch_size=12, orders=[7, 8]), x, y,
                      steps=3, lr=0.3, batch_size=12, orders=[7, 8], start=2)
    assert torch.allclose(split, both, atol=1e-14)


def test_spawn_children_start_from_the_parent():
    x, y = _moons()
    net = FlatMLP(2, 2, width=4, depth=1)
    init = net.init(0)
    chunks = list(spawn(net, x, y, init=init, spawn_steps=[0, 5], child_steps=4, lr=0.2, batch_size=10, seed=3,
                        independent_init=net.init(1), every=2))
    assert [done for done, _ in chunks] == [2, 4]
    res = chunks[-1][1]
    assert torch.equal(res["parent"][0], init)
    parent5 = train_sgd(net, init[None], x, y, steps=5, lr=0.2, batch_size=10, orders=[3])[0]
    assert torch.allclose(res["parent"][1], parent5, atol=1e-14)
    child_a = train_sgd(net, parent5[None], x, y, steps=4, lr=0.2, batch_size=10, orders=[4])[0]
    child_b = train_sgd(net, parent5[None], x, y, steps=4, lr=0.2, batch_size=10, orders=[5])[0]
    assert torch.allclose(res["a"][1], child_a, atol=1e-14) and torch.allclose(res["b"][1], child_b, atol=1e-14)
    ind = train_sgd(net, torch.stack([init, net.init(1)]), x, y, steps=4, lr=0.2, batch_size=10, orders=[4, 5])
    assert torch.allclose(res["independent"], ind, atol=1e-14)


# ---------------------------------------------------------------------------------------------- bad input

def test_bad_input_is_refused_with_the_parameter_named():
    net = FlatMLP(2, 2, width=3, depth=1)
    x, y = _moons(20)
    loss = cross_entropy(net, x, y)
    a = net.init(0)
    with pytest.raises(ValueError, match="theta_b must be one flat parameter vector"):
        interpolate(a, a[:-1], [0.5])
    with pytest.raises(ValueError, match="alphas must lie in"):
        interpolate(a, a, [0.5, 1.5])
    with pytest.raises(ValueError, match="theta_a must not contain NaN"):
        barrier_profile(loss, torch.full_like(a, math.nan), a, [0.5])
    with pytest.raises(ValueError, match="v must be one flat parameter vector"):
        hvp(loss, a, torch.ones(3))
    with pytest.raises(ValueError, match="n_points must be >= 2"):
        loss_barrier(loss, a, a, n_points=1)
    with pytest.raises(ValueError, match="y must hold labels in"):
        cross_entropy(net, x, y + 2)
    with pytest.raises(ValueError, match="x must have shape"):
        cross_entropy(net, x[:, :1], y)
    with pytest.raises(ValueError, match="lr must be > 0"):
        train_sgd(net, a[None], x, y, steps=1, lr=0.0, batch_size=4, orders=[0])
    with pytest.raises(ValueError, match="batch_size must be <= 20"):
        train_sgd(net, a[None], x, y, steps=1, lr=0.1, batch_size=21, orders=[0])
    with pytest.raises(ValueError, match="orders must give one data-order seed per model"):
        train_sgd(net, a[None], x, y, steps=1, lr=0.1, batch_size=4, orders=[0, 1])
    with pytest.raises(ValueError, match="spawn_steps must be >= 0"):
        next(spawn(net, x, y, init=a, spawn_steps=[-1], child_steps=1, lr=0.1, batch_size=4, seed=0))
    with pytest.raises(ValueError, match="width must be >= 1"):
        FlatMLP(2, 2, width=0)
    with pytest.raises(ValueError, match="theta must have shape"):
        net(torch.ones(4), x)
