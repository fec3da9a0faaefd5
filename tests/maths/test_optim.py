"""kllab.maths.optim.Adam: the iterates of torch.optim.Adam, bit for bit, without its machinery."""

import pytest
import torch

from kllab.maths.optim import Adam


def _loss(x, w):
    return ((x @ w - 1.0) ** 2).mean() + 0.1 * (w ** 4).sum()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [{}, {"weight_decay": 0.01}, {"betas": (0.5, 0.9), "eps": 1e-6},
                                     {"maximize": True}])
def test_same_iterates_as_torch(dtype, options):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 5, generator=g, dtype=dtype)
    w0 = torch.randn(5, 3, generator=g, dtype=dtype)
    ours, theirs = w0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    sign = -1.0 if options.get("maximize") else 1.0
    opt_a, opt_b = Adam([ours], lr=0.05, **options), torch.optim.Adam([theirs], lr=0.05, **options)
    for step in range(60):
        for w, opt in ((ours, opt_a), (theirs, opt_b)):
            opt.zero_grad()
            (sign * _loss(x, w)).backward()
            opt.step()
        assert torch.equal(ours, theirs), f"iterates differ at step {step + 1}"


def test_a_parameter_without_gradient_is_left_alone_and_lr_can_change():
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = Adam([a, b], lr=0.1)
    (a ** 2).sum().backward()
    opt.step()
    assert torch.equal(b, torch.ones(2)) and (a < 1).all()
    opt.lr = 0.0
    before = a.clone()
    opt.zero_grad()
    (a ** 2).sum().backward()
    opt.step()
    assert torch.equal(a, before)


def test_a_parameter_that_starts_late_counts_its_own_steps_as_torch_does():
    # torch keeps one step count per parameter for the bias corrections; a parameter without a gradient for the first
    # steps starts its count when it first gets one. A single global count would give different iterates here.
    def run(cls):
        a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        b = torch.tensor([0.5, -1.0, 3.0], dtype=torch.float64, requires_grad=True)
        opt = cls([a, b], lr=0.1)
        for t in range(8):
            opt.zero_grad()
            loss = (a ** 2).sum() + (((b - 1) ** 2).sum() + a[0] * b[1]) * (t >= 3)
            loss.backward()
            if t < 3:
                b.grad = None
            opt.step()
        return a.detach(), b.detach()

    (a1, b1), (a2, b2) = run(Adam), run(torch.optim.Adam)
    assert torch.equal(a1, a2) and torch.equal(b1, b2), (a1, a2, b1, b2)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0.0}, "lr must be > 0; got 0.0"),
    ({"betas": (0.9, 1.0)}, "betas must be < 1; got 1.0"),
    ({"betas": (0.9,)}, "betas must be two numbers"),
    ({"eps": -1.0}, "eps must be > 0"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Adam([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError, match="params must be a non-empty list of tensors with requires_grad"):
        Adam([torch.zeros(1)])


def test_a_learning_rate_schedule_matches_torchs():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, generator=gen, dtype=torch.float64)
    mine, ref = a.clone().requires_grad_(True), a.clone().requires_grad_(True)
    opt_mine, opt_ref = Adam([mine], lr=0.05), torch.optim.Adam([ref], lr=0.05)
    for t in range(200):
        for x, opt in ((mine, opt_mine), (ref, opt_ref)):
            opt.zero_grad()
            ((x - 1.0) ** 4 + torch.sin(3 * x)).sum().backward()
            opt.step()
        opt_mine.lr = opt_ref.param_groups[0]["lr"] = 0.05 * (1 - t / 200)   # a schedule changes lr between steps
        assert torch.equal(mine, ref), t
