"""Width: the empirical NTK against the analytic kernel and a hand-written Jacobian."""

import math

import pytest
import torch

from kllab.maths.width import MLP, empirical_ntk, relu_ntk, train_mse

pytestmark = pytest.mark.usefixtures("float64")


def circle(n):
    th = torch.linspace(0, 2 * math.pi, n + 1)[:-1]
    return torch.stack([th.cos(), th.sin()], 1)


def test_empirical_ntk_matches_hand_jacobian():
    net = MLP(2, 1, width=7, seed=1)
    x = circle(4)
    rows = []
    for xi in x:
        net.zero_grad()
        net(xi[None]).sum().backward()
        rows.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    j = torch.stack(rows)
    torch.testing.assert_close(empirical_ntk(net, x), j @ j.T)


def test_relu_ntk_formula_against_monte_carlo():
    # Infinite width = expectation over one hidden unit; estimate it with many units.
    x = circle(6)
    g = torch.Generator().manual_seed(0)
    m = 400_000
    w = torch.randn(m, 2, generator=g)
    pre = x @ w.T
    act = torch.relu(pre)
    ind = (pre > 0).double()
    mc = (act @ act.T / m + (x @ x.T) * (ind @ ind.T) / m) / 2  # / d: the MLP scales inputs by 1/sqrt(d)
    torch.testing.assert_close(relu_ntk(x), mc, atol=5e-3, rtol=0)


def test_empirical_ntk_converges_with_width():
    x = circle(8)
    errs = []
    for m in (64, 4096):
        e = [(empirical_ntk(MLP(2, 1, m, seed=s), x) - relu_ntk(x)).abs().mean() for s in range(3)]
        errs.append(torch.stack(e).mean().item())
    assert errs[1] < errs[0] / 4  # 1/sqrt(64) shrinks 8x; allow noise


def test_parametrizations_agree_at_init():
    x = circle(5)
    a, b = MLP(2, 1, 32, parametrization="ntk", seed=3), MLP(2, 1, 32, parametrization="standard", seed=3)
    torch.testing.assert_close(a(x), b(x))


def test_train_mse_decreases():
    x = circle(10)
    # Not sin(3θ): a bias-free ReLU unit on the circle has no odd harmonics above 1, so that target is unlearnable.
    y = torch.sin(2 * torch.atan2(x[:, 1], x[:, 0]))[:, None]
    hist = train_mse(MLP(2, 1, 256), x, y, lr=5.0, steps=500)
    assert hist[-1] < 0.1 * hist[0]


@pytest.mark.parametrize("call, message", [
    (lambda: MLP(2, 1, width=0), "width must be >= 1; got 0"),
    (lambda: MLP(2, 1, width=2.5), "width must be an integer; got 2.5"),
    (lambda: MLP(2, 1, width=4, parametrization="mup"), "parametrization must be one of 'ntk', 'standard'"),
    (lambda: train_mse(MLP(2, 1, 4), circle(3), torch.zeros(3), lr=1.0), "y must have shape (3, 1)"),
    (lambda: train_mse(MLP(2, 1, 4), circle(3), torch.zeros(3, 1), lr=-1.0), "lr must be > 0"),
])
def test_bad_input(call, message):
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    assert message in str(err.value)


def test_empirical_ntk_matches_torch_func_two_layers_and_cross_kernel():
    # Oracle: torch.func's vmap(jacrev), a different differentiation route; depth 2, standard parametrisation.
    from torch.func import functional_call, jacrev, vmap

    net = MLP(3, 1, width=9, depth=2, parametrization="standard", seed=4)
    x1, x2 = torch.randn(6, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def jac(x):
        j = vmap(jacrev(lambda p, xi: functional_call(net, p, (xi[None],)).squeeze()), (None, 0))(params, x)
        return torch.cat([v.reshape(x.shape[0], -1) for v in j.values()], 1)

    torch.testing.assert_close(empirical_ntk(net, x1, x2), jac(x1) @ jac(x2).T)
    assert empirical_ntk(net, x1).shape == (6, 6) and not empirical_ntk(net, x1).requires_grad


def test_train_mse_is_plain_gradient_descent():
    # The update is torch.optim.SGD's, step for step.
    x, y = circle(5), torch.sin(3 * torch.arange(5.0, dtype=torch.float64))[:, None]
    a, b = MLP(2, 1, width=6, seed=2), MLP(2, 1, width=6, seed=2)
    hist = train_mse(a, x, y, lr=0.3, steps=25)
    opt = torch.optim.SGD(b.parameters(), lr=0.3)
    for t in range(25):
        opt.zero_grad()
        loss = 0.5 * ((b(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        assert hist[t] == loss.item()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_standard_parametrisation_rescales_each_layers_kernel():
    # Same function at initialisation is not enough: the parametrisation is what the gradient sees. With the same
    # draw, d f / d a_j is sqrt(m) times larger in standard parametrisation and d f / d w_jk sqrt(d) times larger, so
    # Theta_standard = m Theta_ntk(output layer) + d Theta_ntk(hidden layer), exactly.
    x = circle(5)
    x = torch.cat([x, torch.ones(5, 1)], 1)                      # d = 3, so that the two factors differ
    m, d = 16, 3
    ntk, std = MLP(d, 1, m, parametrization="ntk", seed=5), MLP(d, 1, m, parametrization="standard", seed=5)
    W, a = ntk.layers[0].weight.detach(), ntk.layers[1].weight.detach()[0]
    u = x @ W.T / math.sqrt(d)
    j_a = torch.relu(u) / math.sqrt(m)
    j_w = ((a * (u > 0))[:, :, None] * x[:, None, :] / math.sqrt(d * m)).flatten(1)
    torch.testing.assert_close(empirical_ntk(ntk, x), j_a @ j_a.T + j_w @ j_w.T)
    torch.testing.assert_close(empirical_ntk(std, x), m * (j_a @ j_a.T) + d * (j_w @ j_w.T))
