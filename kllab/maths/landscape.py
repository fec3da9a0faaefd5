r"""The loss along the straight line between two solutions: barriers, curvature and spawning.

Two parameter vectors :math:`\theta_A, \theta_B` are *linearly mode connected* when the loss stays
low on the whole segment :math:`\theta_\alpha = (1-\alpha)\,\theta_A + \alpha\,\theta_B`,
:math:`\alpha \in [0, 1]`. The **barrier profile** is the loss minus its linear interpolation,

.. math::
    B(\alpha) = L(\theta_\alpha) - \big[(1-\alpha)\,L(\theta_A) + \alpha\,L(\theta_B)\big],
    \qquad \text{barrier} = \max_\alpha B(\alpha).

For a convex loss :math:`B(\alpha) \le 0` everywhere (Jensen's inequality). At the midpoint
:math:`m = (\theta_A + \theta_B)/2`, with :math:`\Delta = \theta_B - \theta_A`, Taylor expansions of
:math:`L(m \pm \Delta/2)` cancel the odd orders, which leaves the exact identity

.. math::
    B(\tfrac12) = -\tfrac18\,\Delta^\top H(m)\,\Delta + O(\|\Delta\|^4),

with :math:`H(m)` the Hessian of the loss at the midpoint: a barrier at the midpoint needs negative
curvature along the segment, a "ridge" that the segment crosses. For a quadratic loss the identity
is exact. (This is a Taylor identity, written here for teaching; it is not the barrier formula of
Singh et al., 2024, whose "mountainside and ridge" picture it illustrates.)

* :class:`FlatMLP`: a tanh (smooth) MLP whose parameters are one flat vector, batched over models;
  ``depth = 0`` is softmax (multinomial logistic) regression, convex in its parameters;
* :func:`cross_entropy`: the mean cross-entropy of a :class:`FlatMLP` on a data set, a function of θ;
* :func:`interpolate`, :func:`barrier_profile`, :func:`loss_barrier`: the segment and its barrier;
* :func:`hvp`: the Hessian-vector product :math:`H(\theta)v` (forward-over-reverse, ``torch.func``);
* :func:`midpoint_prediction`: :math:`-\tfrac18\Delta^\top H(m)\Delta`;
* :func:`train_sgd`: minibatch SGD of a stack of models, each with its own data order;
* :func:`spawn`: Frankle et al.'s spawning: train a parent for k steps, then two children from it
  with different data orders.

References: Singh, Adilova, Kamp, Fischer, Schölkopf, Hofmann, *Landscaping Linear Mode Connectivity*,
ICML 2024 HiLD workshop (arXiv:2406.16300); Frankle, Dziugaite, Roy, Carbin, *Linear Mode
Connectivity and the Lottery Ticket Hypothesis*, ICML 2020 (arXiv:1912.05671).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .validation import check_finite, check_int, check_positive

__all__ = ["FlatMLP", "cross_entropy", "interpolate", "barrier_profile", "loss_barrier", "hvp",
           "midpoint_prediction", "train_sgd", "spawn"]


def _vector(name: str, theta, n: int | None = None) -> torch.Tensor:
    if not torch.is_tensor(theta):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(theta).__name__}")
    if theta.ndim != 1 or (n is not None and theta.shape[0] != n):
        want = f"({n},)" if n is not None else "(P,)"
        raise ValueError(f"{name} must be one flat parameter vector of shape {want}; got shape {tuple(theta.shape)}")
    if not theta.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {theta.dtype}")
    check_finite(name, theta)
    return theta


def _pair(theta_a, theta_b) -> tuple[torch.Tensor, torch.Tensor]:
    theta_a = _vector("theta_a", theta_a)
    theta_b = _vector("theta_b", theta_b, theta_a.shape[0])
    return theta_a, theta_b


class FlatMLP:
    r"""A tanh MLP ``in_dim -> width (x depth) -> out_dim`` whose parameters are one flat vector.

    Layer :math:`\ell` computes :math:`h_\ell = \tanh(h_{\ell-1}W_\ell + b_\ell)` (no tanh on the output
    layer); ``init`` draws every weight and bias uniformly on :math:`\pm 1/\sqrt{n_{in}}`, like
    ``torch.nn.Linear``. A smooth activation keeps the Hessian continuous, so that the midpoint
    identity's remainder is :math:`O(\|\Delta\|^4)` (with ReLU it is not). ``depth = 0`` is a linear
    map, and with the cross-entropy, softmax regression: a convex loss of the parameters.

    Parameters
    ----------
    in_dim, out_dim : int ≥ 1
    width : int ≥ 1
        Hidden units per layer (unused when ``depth = 0``).
    depth : int ≥ 0
        Number of hidden layers.

    ``net(theta, x)``: ``theta`` of shape (P,) or (R, P) (R models), ``x`` of shape (N, in_dim) or
    (R, N, in_dim); returns logits of shape (N, out_dim), or (R, N, out_dim) when either is batched.

    >>> net = FlatMLP(2, 2, width=3, depth=1)
    >>> net.n_params, [name for name, _ in net.layer_slices()]
    (17, ['W1', 'b1', 'W2', 'b2'])
    >>> net(net.init(0), torch.zeros(5, 2, dtype=torch.float64)).shape
    torch.Size([5, 2])
    """

    def __init__(self, in_dim: int, out_dim: int, width: int, depth: int = 2):
        self.in_dim = check_int("in_dim", in_dim, low=1)
        self.out_dim = check_int("out_dim", out_dim, low=1)
        self.width = check_int("width", width, low=1)
        self.depth = check_int("depth", depth, low=0)
        self.sizes = [self.in_dim] + [self.width] * self.depth + [self.out_dim]
        self._shapes = []
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            self._shapes += [(a, b), (b,)]
        self.n_params = sum(math.prod(s) for s in self._shapes)

    def layer_slices(self) -> list[tuple[str, slice]]:
        """The name (``W1``, ``b1``, ...) and the slice of the flat vector of every weight and bias."""
        out, start = [], 0
        for i, shape in enumerate(self._shapes):
            n = math.prod(shape)
            out.append((f"{'W' if i % 2 == 0 else 'b'}{i // 2 + 1}", slice(start, start + n)))
            start += n
        return out

    def init(self, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """A fresh parameter vector of shape (P,), drawn from ``seed`` alone."""
        gen = torch.Generator().manual_seed(check_int("seed", seed))
        parts = []
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            bound = 1.0 / math.sqrt(a)
            parts += [(2 * torch.rand(a * b, generator=gen, dtype=dtype) - 1) * bound,
                      (2 * torch.rand(b, generator=gen, dtype=dtype) - 1) * bound]
        return torch.cat(parts)

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(theta) or theta.ndim not in (1, 2) or theta.shape[-1] != self.n_params:
            got = tuple(theta.shape) if torch.is_tensor(theta) else type(theta).__name__
            raise ValueError(f"theta must have shape ({self.n_params},) or (R, {self.n_params}); got {got}")
        if not torch.is_tensor(x) or x.ndim not in (2, 3) or x.shape[-1] != self.in_dim:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"x must have shape (N, {self.in_dim}) or (R, N, {self.in_dim}); got {got}")
        batched = theta.ndim == 2 or x.ndim == 3
        if batched:
            r = theta.shape[0] if theta.ndim == 2 else x.shape[0]
            theta = theta.expand(r, -1) if theta.ndim == 1 else theta
            x = x.expand(r, -1, -1) if x.ndim == 2 else x
            if theta.shape[0] != x.shape[0]:
                raise ValueError(f"theta and x must stack the same number of models; got {theta.shape[0]} and {x.shape[0]}")
        h, start, n_layers = x, 0, len(self.sizes) - 1
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            w = theta[..., start:start + a * b].reshape(*theta.shape[:-1], a, b)
            start += a * b
            bias = theta[..., start:start + b]
            start += b
            h = (torch.bmm(h, w) + bias.unsqueeze(1)) if batched else (h @ w + bias)
            if i < n_layers - 1:
                h = torch.tanh(h)
        return h

    def loss_and_grad(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Each model's mean cross-entropy on its own batch and its gradient, by backpropagation written out.

        ``theta`` (R, P), ``x`` (R, B, in_dim), ``y`` (R, B) integer labels; returns the losses (R,) and the
        gradients (R, P). The same numbers as autograd (the tests check it) without its per-step overhead,
        which dominates for networks this small.
        """
        r = theta.shape[0]
        hs, start, params = [x], 0, []
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            w = theta[:, start:start + a * b].reshape(r, a, b)
            bias = theta[:, start + a * b:start + a * b + b]
            start += a * b + b
            params.append(w)
            z = torch.baddbmm(bias.unsqueeze(1), hs[-1], w)
            hs.append(torch.tanh(z) if i < len(self.sizes) - 2 else z)
        logp = torch.log_softmax(hs[-1], -1)
        onehot = torch.zeros_like(logp).scatter_(-1, y[..., None], 1.0)
        losses = -(logp * onehot).sum(-1).mean(-1)
        dz = (logp.exp() - onehot) / x.shape[1]                                 # d loss / d logits
        grads = []
        for i in range(len(params) - 1, -1, -1):
            grads.append(dz.sum(1))                                             # bias
            grads.append(torch.bmm(hs[i].transpose(1, 2), dz).reshape(r, -1))   # weight
            if i > 0:
                dz = torch.bmm(dz, params[i].transpose(1, 2)) * (1 - hs[i] ** 2)
        return losses, torch.cat(grads[::-1], 1)


def cross_entropy(net: FlatMLP, x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The mean cross-entropy :math:`L(\theta) = -\frac1N\sum_i \log\mathrm{softmax}(f_\theta(x_i))_{y_i}` as a
    function of θ: a scalar for θ of shape (P,), one loss per model, shape (R,), for θ of shape (R, P).

    Parameters
    ----------
    net : FlatMLP
    x : Tensor, shape (N, in_dim)
    y : integer Tensor, shape (N,), labels in ``[0, out_dim)``
    """
    if not isinstance(net, FlatMLP):
        raise TypeError(f"net must be a FlatMLP; got {type(net).__name__}")
    if not torch.is_tensor(x) or x.ndim != 2 or x.shape[1] != net.in_dim:
        raise ValueError(f"x must have shape (N, {net.in_dim}); got {tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    check_finite("x", x)
    if not torch.is_tensor(y) or y.shape != (x.shape[0],) or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor of shape ({x.shape[0]},); "
                         f"got {tuple(y.shape) if torch.is_tensor(y) else type(y).__name__}")
    if y.numel() and (y.min() < 0 or y.max() >= net.out_dim):
        raise ValueError(f"y must hold labels in [0, {net.out_dim}); got values from {int(y.min())} to {int(y.max())}")

    def loss(theta: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(net(theta, x), -1)
        if logp.ndim == 2:
            return -logp.gather(-1, y[:, None]).mean()
        return -logp.gather(-1, y.expand(logp.shape[0], -1)[..., None]).mean((1, 2))

    return loss


def _alphas(alphas) -> torch.Tensor:
    a = torch.as_tensor(alphas, dtype=torch.float64)
    if a.ndim != 1 or a.numel() == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence; got shape {tuple(a.shape)}")
    check_finite("alphas", a)
    if (a < 0).any() or (a > 1).any():
        raise ValueError(f"alphas must lie in [0, 1]; got values from {a.min().item():g} to {a.max().item():g}")
    return a


def interpolate(theta_a: torch.Tensor, theta_b: torch.Tensor, alphas) -> torch.Tensor:
    r"""The points :math:`\theta_\alpha = (1-\alpha)\,\theta_A + \alpha\,\theta_B` of the segment, shape (len(alphas), P).

    >>> interpolate(torch.tensor([0.0, 2.0]), torch.tensor([4.0, 2.0]), [0, 0.25, 1]).tolist()
    [[0.0, 2.0], [1.0, 2.0], [4.0, 2.0]]
    """
    theta_a, theta_b = _pair(theta_a, theta_b)
    a = _alphas(alphas).to(theta_a.dtype)[:, None]
    return (1 - a) * theta_a + a * theta_b


def barrier_profile(loss: Callable[[torch.Tensor], torch.Tensor], theta_a: torch.Tensor, theta_b: torch.Tensor,
                    alphas) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The loss on the segment and the barrier profile :math:`B(\alpha)`.

    Returns ``(losses, B)``, both of shape (len(alphas),): :math:`L(\theta_\alpha)` and
    :math:`L(\theta_\alpha) - (1-\alpha)L(\theta_A) - \alpha L(\theta_B)`. ``loss`` maps a (P,) vector to a scalar.

    >>> quad = lambda t: (t ** 2).sum()
    >>> _, b = barrier_profile(quad, torch.tensor([-1.0]), torch.tensor([1.0]), [0, 0.5, 1])
    >>> b.tolist()      # convex: the loss sags below its chord
    [0.0, -1.0, 0.0]
    """
    theta_a, theta_b = _pair(theta_a, theta_b)
    a = _alphas(alphas)
    with torch.no_grad():
        losses = torch.stack([loss(t).reshape(()) for t in interpolate(theta_a, theta_b, a)]).to(torch.float64)
        ends = torch.stack([loss(theta_a).reshape(()), loss(theta_b).reshape(())]).to(torch.float64)
    return losses, losses - (1 - a) * ends[0] - a * ends[1]


def loss_barrier(loss: Callable[[torch.Tensor], torch.Tensor], theta_a: torch.Tensor, theta_b: torch.Tensor,
                 n_points: int = 21) -> float:
    r"""The barrier :math:`\max_\alpha B(\alpha)` on ``n_points`` equally spaced α in [0, 1] (0 at the ends,
    so the barrier is ≥ 0; a convex loss gives exactly 0).

    >>> round(loss_barrier(lambda t: -(t ** 2).sum(), torch.tensor([-1.0]), torch.tensor([1.0])), 6)   # a ridge
    1.0
    """
    n_points = check_int("n_points", n_points, low=2)
    _, b = barrier_profile(loss, theta_a, theta_b, torch.linspace(0, 1, n_points, dtype=torch.float64))
    return float(b.max())


def hvp(loss: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""The Hessian-vector product :math:`H(\theta)\,v = \nabla^2 L(\theta)\,v`, shape (P,), without forming H.

    Forward-mode differentiation of the gradient (``torch.func.jvp`` of ``torch.func.grad``): one
    gradient's cost, exact to rounding.

    >>> A = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    >>> hvp(lambda t: 0.5 * t @ A @ t, torch.zeros(2), torch.tensor([1.0, 0.0])).tolist()
    [2.0, 1.0]
    """
    theta = _vector("theta", theta)
    v = _vector("v", v, theta.shape[0])
    from torch.func import grad, jvp
    return jvp(grad(lambda t: loss(t).reshape(())), (theta.detach(),), (v.to(theta.dtype),))[1]


def midpoint_prediction(loss: Callable[[torch.Tensor], torch.Tensor], theta_a: torch.Tensor,
                        theta_b: torch.Tensor) -> float:
    r"""The quadratic prediction of the midpoint barrier, :math:`-\tfrac18\,\Delta^\top H(m)\,\Delta`, with
    :math:`\Delta = \theta_B - \theta_A` and :math:`m = (\theta_A + \theta_B)/2`.

    It equals :math:`B(\tfrac12)` up to :math:`O(\|\Delta\|^4)`, exactly for a quadratic loss.

    >>> A = torch.tensor([[1.0, 0.0], [0.0, -3.0]])
    >>> midpoint_prediction(lambda t: 0.5 * t @ A @ t, torch.tensor([0.0, -1.0]), torch.tensor([0.0, 1.0]))
    1.5
    """
    theta_a, theta_b = _pair(theta_a, theta_b)
    delta = theta_b - theta_a
    return float(-delta @ hvp(loss, (theta_a + theta_b) / 2, delta) / 8)


def _order(seed: int, n: int, steps: int, batch_size: int) -> torch.Tensor:
    """Minibatch indices (steps, batch_size): consecutive slices of fresh random permutations of range(n)."""
    if steps == 0:
        return torch.zeros(0, batch_size, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    n_epochs = -(-steps * batch_size // n)
    return torch.cat([torch.randperm(n, generator=gen) for _ in range(n_epochs)])[:steps * batch_size].view(steps, batch_size)


def train_sgd(net: FlatMLP, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float,
              batch_size: int, orders: Sequence[int], start: int = 0) -> torch.Tensor:
    r"""Plain minibatch SGD, :math:`\theta \leftarrow \theta - \eta\,\nabla L_{\rm batch}(\theta)`, on R models at once.

    Model r draws its batches from the data order seeded by ``orders[r]`` (consecutive slices of
    random permutations of the data, one per epoch); models with the same seed see the same batches.
    ``start`` skips that many steps of each order first, so that training on in two calls follows the
    same data order as one call. Returns the trained parameters, shape (R, P) (a new tensor).

    Parameters
    ----------
    net : FlatMLP
    theta : Tensor, shape (R, P)
    x, y : the data, shapes (N, in_dim) and (N,)
    steps : int ≥ 0
    lr : float > 0
    batch_size : int in [1, N]
    orders : sequence of R ints
    start : int ≥ 0
    """
    if not torch.is_tensor(theta) or theta.ndim != 2 or theta.shape[1] != net.n_params:
        raise ValueError(f"theta must have shape (R, {net.n_params}); got "
                         f"{tuple(theta.shape) if torch.is_tensor(theta) else type(theta).__name__}")
    check_finite("theta", theta)
    steps = check_int("steps", steps, low=0)
    start = check_int("start", start, low=0)
    lr = check_positive("lr", lr)
    batch_size = check_int("batch_size", batch_size, low=1, high=x.shape[0])
    orders = [check_int("orders", s) for s in orders]
    if len(orders) != theta.shape[0]:
        raise ValueError(f"orders must give one data-order seed per model ({theta.shape[0]}); got {len(orders)}")
    cross_entropy(net, x, y)   # validates x and y
    seeds = sorted(set(orders))
    idx = {s: _order(s, x.shape[0], start + steps, batch_size)[start:] for s in seeds}
    batches = torch.stack([idx[s] for s in orders], 1)                         # (steps, R, B)
    xs, ys = x[batches], y[batches]
    theta = theta.detach().clone()
    for t in range(steps):
        theta -= lr * net.loss_and_grad(theta, xs[t], ys[t])[1]
    return theta.detach()


def spawn(net: FlatMLP, x: torch.Tensor, y: torch.Tensor, *, init: torch.Tensor, spawn_steps: Sequence[int],
          child_steps: int, lr: float, batch_size: int, seed: int, independent_init: torch.Tensor | None = None,
          every: int | None = None):
    r"""Spawning (Frankle et al., 2020): a parent trained by SGD for k steps, then two children copied from
    it and trained ``child_steps`` more steps each, with two different data orders. A generator.

    The parent follows data order ``seed``; child A order ``seed + 1``, child B order ``seed + 2``, the
    same for every k, so that the children of different spawn steps differ only by where they start.
    All the children train together as one batch of models. With ``independent_init``, a pair with
    no shared history trains alongside them: one network from ``init`` and one from
    ``independent_init``, with the orders of A and B, for ``child_steps`` steps.

    Yields ``(steps done, result)`` every ``every`` child steps (default: once, at the end), the last
    after ``child_steps``. ``result`` is a dict of tensors: ``"parent"`` (K, P), the parent at each
    spawn step; ``"a"``, ``"b"`` (K, P), the children, for the K spawn steps in the order given; and,
    with ``independent_init``, ``"independent"`` (2, P).
    """
    init = _vector("init", init, net.n_params)
    ks = [check_int("spawn_steps", k, low=0) for k in spawn_steps]
    if not ks:
        raise ValueError("spawn_steps must name at least one spawn step; got an empty sequence")
    child_steps = check_int("child_steps", child_steps, low=1)
    every = child_steps if every is None else check_int("every", every, low=1)
    seed = check_int("seed", seed)
    parents, theta, done = {}, init[None].clone(), 0
    for k in sorted(set(ks)):
        theta = train_sgd(net, theta, x, y, steps=k - done, lr=lr, batch_size=batch_size, orders=[seed], start=done)
        parents[k], done = theta[0], k
    parent = torch.stack([parents[k] for k in ks])
    models, orders = parent.repeat(2, 1), [seed + 1] * len(ks) + [seed + 2] * len(ks)
    if independent_init is not None:
        independent_init = _vector("independent_init", independent_init, net.n_params)
        models, orders = torch.cat([models, init[None], independent_init[None]]), orders + [seed + 1, seed + 2]
    done = 0
    while done < child_steps:
        n = min(every, child_steps - done)
        models = train_sgd(net, models, x, y, steps=n, lr=lr, batch_size=batch_size, orders=orders, start=done)
        done += n
        result = {"parent": parent, "a": models[:len(ks)], "b": models[len(ks):2 * len(ks)]}
        if independent_init is not None:
            result["independent"] = models[2 * len(ks):]
        yield done, result
