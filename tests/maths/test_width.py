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


# --- the centred quadratic network of lazy / rich training (P29) ---------------------------------------------------

from kllab.maths.kernels import kernel_dynamics  # noqa: E402
from kllab.maths.width import (alignment, gaussian_quadratic_mse, kernel_gd_coefficients, quadratic_net,  # noqa: E402
                               quadratic_net_jacobian, quadratic_net_moments, quadratic_net_ntk,
                               quadratic_net_tangent_moments, train_centered)


def quad_toy(n=6, d=5, p=30, seed=0, batch=None):
    g = torch.Generator().manual_seed(seed)
    shape = () if batch is None else (batch,)
    w = torch.randn(*shape, n, d, generator=g)
    a = torch.randn(*shape, n, generator=g)
    x = torch.randn(p, d, generator=g)
    return x, w, a, g


def test_quadratic_net_is_its_moments_quadratic_form_and_matches_a_loop():
    x, w, a, _ = quad_toy(batch=3)
    b, q = quadratic_net_moments(w, a)
    f = quadratic_net(x, w, a)
    torch.testing.assert_close(f, (x[None] @ b[..., None]).squeeze(-1)
                               + ((x[None] @ q) * x[None]).sum(-1))
    n, d = w.shape[-2:]
    loop = sum(a[:, i, None] * ((x @ w[:, i].T).T / math.sqrt(d) + (x @ w[:, i].T).T ** 2 / (2 * d))
               for i in range(n)) / math.sqrt(n)
    torch.testing.assert_close(f, loop)
    torch.testing.assert_close(q, q.transpose(-1, -2))


def test_gaussian_quadratic_mse_against_monte_carlo():
    _, w, a, g = quad_toy(d=4)
    b, q = quadratic_net_moments(w, a)
    q = q + 0.3 * torch.randn(4, 4, generator=g)          # not symmetric: only its symmetric part counts
    c = -0.7
    x = torch.randn(400_000, 4, generator=g)
    e = (c + x @ b + ((x @ q) * x).sum(1)) ** 2
    se = e.std().item() / math.sqrt(len(e))
    exact = gaussian_quadratic_mse(b, q, c).item()
    assert abs(e.mean().item() - exact) < 4 * se
    # dropping the 2 of Var(x'Qx) = 2 tr Q^2 would be many standard errors off
    qs = (q + q.T) / 2
    assert abs(e.mean().item() - (exact - (qs * qs).sum().item())) > 20 * se


def test_quadratic_net_jacobian_and_ntk_against_torch_func():
    from torch.func import jacrev

    x, w, a, _ = quad_toy()
    jw = jacrev(lambda ww: quadratic_net(x, ww, a))(w)       # (P, N, d)
    ja = jacrev(lambda aa: quadratic_net(x, w, aa))(a)       # (P, N)
    j_w, j_a = quadratic_net_jacobian(x, w, a)
    torch.testing.assert_close(j_w, jw)
    torch.testing.assert_close(j_a, ja)
    x2 = x[:4] + 1.0
    jw2 = jacrev(lambda ww: quadratic_net(x2, ww, a))(w).flatten(1)
    ja2 = jacrev(lambda aa: quadratic_net(x2, w, aa))(a)
    torch.testing.assert_close(quadratic_net_ntk(x, x2, w, a), jw.flatten(1) @ jw2.T + ja @ ja2.T)
    torch.testing.assert_close(quadratic_net_ntk(x, None, w, a), j_w.flatten(1) @ j_w.flatten(1).T + j_a @ j_a.T)


def test_tangent_moments_are_the_derivative_of_the_moments():
    _, w, a, g = quad_toy(batch=2)
    dw, da = torch.randn(w.shape, generator=g), torch.randn(a.shape, generator=g)
    eps = 1e-4
    bp, qp = quadratic_net_moments(w + eps * dw, a + eps * da)
    bm, qm = quadratic_net_moments(w - eps * dw, a - eps * da)
    db, dq = quadratic_net_tangent_moments(w, a, dw, da)
    torch.testing.assert_close(db, (bp - bm) / (2 * eps), atol=1e-7, rtol=0)
    torch.testing.assert_close(dq, (qp - qm) / (2 * eps), atol=1e-7, rtol=0)


def test_train_centered_step_is_the_gradient_step_and_starts_at_zero():
    x, w, a, g = quad_toy(batch=2)
    y = torch.randn(x.shape[0], generator=g)
    alpha, lr = torch.tensor([0.7, 5.0]), 0.3
    out = train_centered(x, y, w, a, alpha, lr=lr, steps=1, record_every=1)
    torch.testing.assert_close(out["train"][0], (y ** 2).mean().expand(2))     # f_alpha = 0 at initialisation
    ww, aa = w.clone().requires_grad_(), a.clone().requires_grad_()
    f = alpha[:, None] * (quadratic_net(x, ww, aa) - quadratic_net(x, w, a))
    loss = (0.5 * ((f - y) ** 2).mean(-1) / alpha ** 2).sum()
    gw, ga = torch.autograd.grad(loss, (ww, aa))
    torch.testing.assert_close(out["w"][1], w - lr * gw)
    torch.testing.assert_close(out["a"][1], a - lr * ga)


def test_train_centered_chunks_and_early_stop():
    x, w, a, g = quad_toy(batch=2)
    y = torch.randn(x.shape[0], generator=g)
    whole = train_centered(x, y, w, a, 2.0, lr=0.5, steps=40, record_every=10)
    first = train_centered(x, y, w, a, 2.0, lr=0.5, steps=20, record_every=10)
    second = train_centered(x, y, w, a, 2.0, lr=0.5, steps=20, record_every=10, start=(first["w"][-1], first["a"][-1]))
    torch.testing.assert_close(second["w"][-1], whole["w"][-1])
    torch.testing.assert_close(second["train"], whole["train"][2:])
    stop = train_centered(x, y, w, a, 2.0, lr=0.5, steps=1000, record_every=10, stop_fraction=0.5)
    assert (stop["train"][-1] <= 0.5 * stop["train"][0]).all() and not (stop["train"][-2] <= 0.5 * stop["train"][0]).all()
    assert stop["step"][-1] < 1000


def test_kernel_gd_coefficients_against_explicit_descent_and_kernel_dynamics():
    g = torch.Generator().manual_seed(3)
    phi = torch.randn(12, 5, generator=g)                     # a linear model with 5 features on 12 points: rank 5
    y = torch.randn(12, generator=g)
    theta, lr = phi @ phi.T, 0.4
    v, fs = torch.zeros(5), []
    for t in range(31):
        fs.append(phi @ v)
        v = v - lr * phi.T @ (phi @ v - y) / 12
    c = kernel_gd_coefficients(theta, y, lr=lr, steps=[0, 7, 30])
    torch.testing.assert_close(c @ theta, torch.stack([fs[0], fs[7], fs[30]]))
    torch.testing.assert_close(c[1] @ theta, kernel_dynamics(theta, torch.zeros(12), y, lr, 7)[-1])
    torch.testing.assert_close(kernel_gd_coefficients(theta, y, lr=lr, steps=7), c[1])


def test_large_output_scale_is_the_kernel_model_at_rate_one_over_alpha():
    x, w, a, g = quad_toy(n=4, d=6, p=40, seed=1)
    y = ((x[:, 0] ** 2) - 1) / math.sqrt(2)
    lr, steps = 0.5, 60
    j_w, j_a = quadratic_net_jacobian(x, w, a)
    c = kernel_gd_coefficients(quadratic_net_ntk(x, None, w, a), y, lr=lr, steps=steps)
    lin_b, lin_q = quadratic_net_tangent_moments(w, a, torch.einsum("p,pnd->nd", c, j_w), c @ j_a)
    b0, q0 = quadratic_net_moments(w, a)
    dist = []
    for alpha in (10.0, 100.0):
        out = train_centered(x, y, w[None], a[None], alpha, lr=lr, steps=steps, record_every=steps)
        b, q = quadratic_net_moments(out["w"][-1, 0], out["a"][-1, 0])
        dist.append(gaussian_quadratic_mse(alpha * (b - b0) - lin_b, alpha * (q - q0) - lin_q).sqrt().item())
    ref = gaussian_quadratic_mse(lin_b, lin_q).sqrt().item()
    assert dist[1] < 0.02 * ref
    assert 7 < dist[0] / dist[1] < 13                           # O(1/alpha)


def test_alignment():
    w = torch.tensor([[1.0, 1.0, 0.0], [0.0, -2.0, 0.0], [0.0, 0.0, 0.5]])
    assert alignment(w, torch.tensor([0.0, 3.0, 0.0])).item() == pytest.approx(1.0)
    assert alignment(w, torch.tensor([1.0, 0.0, 0.0])).item() == pytest.approx(1 / math.sqrt(2))
    assert alignment(w[None].expand(4, -1, -1), torch.tensor([0.0, 0.0, 1.0])).shape == (4,)


@pytest.mark.parametrize("call, message", [
    (lambda: quadratic_net(torch.zeros(3, 4), torch.zeros(2, 5), torch.zeros(2)), "x must have shape (P, d) with d = 5"),
    (lambda: quadratic_net_moments(torch.zeros(2, 5), torch.zeros(3)), "w must have shape (..., N, d) and a shape (..., N)"),
    (lambda: quadratic_net_moments(torch.full((2, 5), float("nan")), torch.zeros(2)), "w must not contain NaN"),
    (lambda: gaussian_quadratic_mse(torch.zeros(3), torch.zeros(2, 2)), "b must have shape (..., d) and q shape (..., d, d)"),
    (lambda: train_centered(torch.zeros(4, 3), torch.zeros(4), torch.zeros(1, 2, 3), torch.zeros(1, 2), 0.0),
     "output_scale must be finite and > 0"),
    (lambda: train_centered(torch.zeros(4, 3), torch.zeros(5), torch.zeros(1, 2, 3), torch.zeros(1, 2), 1.0),
     "y must have shape (4,)"),
    (lambda: train_centered(torch.zeros(4, 3), torch.zeros(4), torch.zeros(1, 2, 3), torch.zeros(1, 2), 1.0, lr=-1.0),
     "lr must be > 0"),
    (lambda: train_centered(torch.zeros(4, 3), torch.zeros(4), torch.zeros(1, 2, 3), torch.zeros(1, 2), 1.0,
                            stop_fraction=1.5), "stop_fraction must be < 1"),
    (lambda: kernel_gd_coefficients(torch.eye(3) * 10, torch.ones(3), lr=1.0, steps=2), "lr must be < 2 P / lambda_max"),
    (lambda: kernel_gd_coefficients(torch.eye(3), torch.ones(2), lr=1.0, steps=2), "k_train and y must have shapes"),
    (lambda: alignment(torch.ones(2, 3), torch.zeros(3)), "beta must be non-zero"),
])
def test_quadratic_net_bad_input(call, message):
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    assert message in str(err.value)
