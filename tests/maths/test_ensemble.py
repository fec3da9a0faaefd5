"""Models trained side by side: each equals the same model trained alone (torch.nn oracle), bad input."""

import pytest
import torch

from kllab.maths.ensemble import EnsembleMLP, train_ensemble

pytestmark = pytest.mark.usefixtures("float64")


def reference(net: EnsembleMLP, r: int) -> torch.nn.Sequential:
    """Model r of the stack as a plain torch.nn network with the same weights."""
    layers = []
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        lin = torch.nn.Linear(w.shape[1], w.shape[2])
        with torch.no_grad():
            lin.weight.copy_(w[r].T)
            lin.bias.copy_(b[r])
        layers += [lin, torch.nn.ReLU()] if i < len(net.weights) - 1 else [lin]
    return torch.nn.Sequential(*layers)


def test_forward_matches_torch_nn_for_every_model():
    net = EnsembleMLP(4, 3, width=6, seeds=[3, 1, 4], depth=2)
    x = torch.randn(10, 4)
    out = net(x)
    assert out.shape == (3, 10, 3)
    for r in range(3):
        torch.testing.assert_close(out[r], reference(net, r)(x))
    # per-model inputs take the batched path and agree
    torch.testing.assert_close(net(x.expand(3, -1, -1)), out)


def test_a_models_initial_weights_depend_only_on_its_seed():
    a = EnsembleMLP(2, 2, width=3, seeds=[7, 8])
    b = EnsembleMLP(2, 2, width=3, seeds=[9, 8])
    for wa, wb in zip(a.weights, b.weights):
        torch.testing.assert_close(wa[1], wb[1])
        assert not torch.equal(wa[0], wb[0])


def test_training_side_by_side_equals_training_alone():
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    y = torch.sin(x.sum(1, keepdim=True))
    both = EnsembleMLP(3, 1, width=5, seeds=[0, 1])
    hist = train_ensemble(both, lambda: ((both(x) - y) ** 2).mean((1, 2)), steps=50, lr=0.02, weight_decay=1e-3)
    alone = EnsembleMLP(3, 1, width=5, seeds=[1])
    hist1 = train_ensemble(alone, lambda: ((alone(x) - y) ** 2).mean((1, 2)), steps=50, lr=0.02, weight_decay=1e-3)
    torch.testing.assert_close(hist[:, 1], hist1[:, 0])
    torch.testing.assert_close(both(x)[1], alone(x)[0])
    assert hist.shape == (50, 2) and (hist[-1] < hist[0]).all()


def test_initialisation_is_torch_nn_linears_uniform():
    # U(-1/sqrt(n_in), 1/sqrt(n_in)) for weights and biases: inside the bound, and filling it (std bound/sqrt(3))
    net = EnsembleMLP(400, 300, width=500, seeds=[0, 1])
    for w, b in zip(net.weights, net.biases):
        bound = 1 / w.shape[1] ** 0.5
        for x in (w, b):
            assert x.abs().max().item() <= bound
        assert w.abs().max().item() > 0.99 * bound
        assert w.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.01)


def test_history_is_each_models_loss_before_each_step():
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(2))
    y = x.prod(1, keepdim=True)
    net = EnsembleMLP(2, 1, width=6, seeds=[3, 4])
    loss = lambda: ((net(x) - y) ** 2).mean((1, 2))
    with torch.no_grad():
        before = loss()
    hist = train_ensemble(net, loss, steps=5, lr=0.05)
    torch.testing.assert_close(hist[0], before, rtol=0, atol=0)
    with torch.no_grad():
        after = loss()
    assert not torch.allclose(hist[-1], after)            # the last row is before the last step, not after it
    more = train_ensemble(net, loss, steps=1, lr=0.05)
    torch.testing.assert_close(more[0], after, rtol=0, atol=0)


def test_adam_matches_torch_optim_adam():
    x = torch.randn(25, 2, generator=torch.Generator().manual_seed(1))
    y = (x[:, :1] > 0).double()
    ours = EnsembleMLP(2, 1, width=4, seeds=[5])
    theirs = EnsembleMLP(2, 1, width=4, seeds=[5])
    train_ensemble(ours, lambda: ((ours(x) - y) ** 2).mean((1, 2)), steps=40, lr=0.03, weight_decay=0.01)
    opt = torch.optim.Adam(theirs.parameters(), lr=0.03, weight_decay=0.01)
    for _ in range(40):
        opt.zero_grad()
        ((theirs(x) - y) ** 2).mean().backward()
        opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="width must be >= 1; got 0"):
        EnsembleMLP(2, 2, width=0, seeds=[0])
    with pytest.raises(ValueError, match="seeds must name at least one model"):
        EnsembleMLP(2, 2, width=3, seeds=[])
    net = EnsembleMLP(2, 2, width=3, seeds=[0, 1])
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\) or \(2, N, 2\); got \(5, 3\)"):
        net(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train_ensemble(net, lambda: net(torch.zeros(1, 2)).sum((1, 2)), steps=0)
    with pytest.raises(ValueError, match=r"loss\(\) must return one loss per model"):
        train_ensemble(net, lambda: net(torch.zeros(1, 2)).sum(), steps=1)


def test_training_in_chunks_gives_the_same_iterates_as_one_call():
    from kllab.maths.ensemble import train_ensemble_in_chunks

    x = torch.linspace(-1, 1, 16, dtype=torch.float64)[:, None]
    y = x.abs()
    one, chunked = EnsembleMLP(1, 1, width=6, seeds=[3, 4]), EnsembleMLP(1, 1, width=6, seeds=[3, 4])
    hist = train_ensemble(one, lambda: ((one(x) - y) ** 2).mean((1, 2)), steps=23, lr=0.02)
    parts = list(train_ensemble_in_chunks(chunked, lambda: ((chunked(x) - y) ** 2).mean((1, 2)), steps=23, every=5, lr=0.02))
    assert [done for done, _ in parts] == [5, 10, 15, 20, 23]
    assert torch.equal(parts[-1][1], hist) and torch.equal(parts[1][1], hist[:10])
    for a, b in zip(one.parameters(), chunked.parameters()):
        assert torch.equal(a, b)
    still = EnsembleMLP(1, 1, width=6, seeds=[3, 4])
    early = list(train_ensemble_in_chunks(still, lambda: torch.zeros(2, requires_grad=True), steps=23, every=5,
                                          first=2))
    assert [done for done, _ in early] == [2, 5, 10, 15, 20, 23]
    with pytest.raises(ValueError, match="every must be"):
        list(train_ensemble_in_chunks(one, lambda: one(x).sum((1, 2)), steps=3, every=0))
    with pytest.raises(ValueError, match="first must be"):
        list(train_ensemble_in_chunks(one, lambda: one(x).sum((1, 2)), steps=3, every=1, first=0))
