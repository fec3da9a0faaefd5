r"""Optima of KL-regularised objectives over a finite set of answers, in closed form and by gradient.

Part of :mod:`kllab.maths.rlhf`. The reference policy π_ref is the reference p, the trained
policy π the model q.

* :func:`kl_regularized_policy`: the maximiser of :math:`\mathbb{E}_\pi[r] - \beta D` for the
  reverse (Gibbs) and forward (RAPO) KL;
* :func:`objective` and :func:`log_partition`: the objective and its optimal value
  :math:`\beta \log Z` (reverse KL);
* :func:`kl_prior_fit`: the exact minimiser of a cross-entropy to data plus β·KL to a prior,
  the fine-tuning step of SuperHF (Mukobi et al., 2023);
* :func:`minimise_softmax` and :func:`fit_policy`: Adam on the logits of a softmax policy, an
  independent route to the same optima.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.special import wrightomega

from ..divergences import _kl_unchecked, _pair
from ..optim import Adam
from ..validation import DIRECTIONS, check_choice, check_int, check_positive, check_same_shape

__all__ = ["kl_regularized_policy", "objective", "log_partition", "fit_policy", "minimise_softmax", "kl_prior_fit"]


def _reward(reward, logp_ref: torch.Tensor) -> torch.Tensor:
    reward = torch.as_tensor(reward, dtype=logp_ref.dtype)
    check_same_shape("reward", reward, "logp_ref", logp_ref)
    if not torch.isfinite(reward).all():
        raise ValueError("reward must be finite everywhere; got a NaN or inf")
    return reward


def _beta(beta, batch_shape: torch.Size) -> float | torch.Tensor:
    """A positive float, or a tensor of positive values broadcastable to the batch shape."""
    if not torch.is_tensor(beta):
        return check_positive("beta", beta)
    beta = beta.to(torch.float64)
    if not (torch.isfinite(beta).all() and (beta > 0).all()):
        raise ValueError(f"beta must be > 0 and finite everywhere; got min {beta.min().item()!r}")
    try:  # numpy's rule, the same as torch's (torch.broadcast_shapes imports torch._refs: slow the first time)
        ok = np.broadcast_shapes(tuple(beta.shape), tuple(batch_shape)) == tuple(batch_shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"beta must broadcast to the batch shape {tuple(batch_shape)}; "
                         f"got shape {tuple(beta.shape)}")
    return beta


def log_partition(logp_ref, reward, beta: float) -> torch.Tensor:
    r"""log Z for the reverse-KL optimum: :math:`\log \sum_y \pi_{ref}(y) e^{r(y)/\beta}`, per example.

    ``logp_ref`` is the reference policy. :math:`\beta \log Z` is the optimal value of
    :math:`\mathbb{E}_\pi[r] - \beta\,\mathrm{KL}(\pi\|\pi_{ref})`.

    >>> import torch
    >>> ref = torch.tensor([0.5, 0.5], dtype=torch.float64).log()
    >>> round(log_partition(ref, torch.tensor([0.0, 1.0]), 1.0).item(), 6)  # log((1 + e) / 2)
    0.620115
    """
    beta = check_positive("beta", beta)
    logp_ref, _ = _pair(logp_ref, logp_ref, True, names=("logp_ref", "logp_ref"))
    reward = _reward(reward, logp_ref)
    return torch.logsumexp(logp_ref + reward / beta, dim=-1)


def _forward_solution(logp_ref: torch.Tensor, r: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    r"""log π(y) = log(β p_ref(y) / (Λ − r(y))), Σ π = 1, for every row at once (float64, log space).

    With t = Λ − max r > 0 on the support, h(t) = Σ β p / (t + gap) is decreasing, h(β) ≤ 1 and
    h(β m) ≥ 1 where m is the reference mass on the reward maximiser(s): the root is bracketed in
    [log β m, log β] and found by bisection on log t, in log space (no underflow when m is tiny).
    """
    support = logp_ref > -math.inf
    neg_inf = torch.full((), -math.inf, dtype=logp_ref.dtype)
    r_max = torch.where(support, r, neg_inf).amax(-1, keepdim=True)
    gap = torch.where(support, r_max - r, torch.full((), math.inf, dtype=r.dtype))
    log_gap = torch.log(gap)                                   # -inf at the maximiser(s)
    log_m = torch.logsumexp(torch.where(gap == 0, logp_ref, neg_inf), -1, keepdim=True)
    log_beta = torch.as_tensor(beta, dtype=logp_ref.dtype).log()
    log_beta = log_beta.reshape(-1, 1) if log_beta.ndim else log_beta   # one beta per row, or one for all
    lo, hi = log_beta + log_m, (log_beta + torch.zeros_like(log_m))

    def log_pi(log_t: torch.Tensor) -> torch.Tensor:
        return torch.where(support, log_beta + logp_ref - torch.logaddexp(log_t, log_gap), neg_inf)

    for _ in range(80):  # the bracket is at most ~745 wide: 80 halvings reach machine precision
        mid = 0.5 * (lo + hi)
        over = torch.logsumexp(log_pi(mid), -1, keepdim=True) > 0
        lo, hi = torch.where(over, mid, lo), torch.where(over, hi, mid)
    out = log_pi(0.5 * (lo + hi))
    return out - torch.logsumexp(out, -1, keepdim=True)  # removes the last bisection step, nothing more


def kl_regularized_policy(logp_ref, reward, beta: float | torch.Tensor, *, direction: str = "reverse") -> torch.Tensor:
    r"""Optimal policy of E_π[r] − β·D, with D = KL(π‖π_ref) (``"reverse"``) or KL(π_ref‖π) (``"forward"``).

    ``logp_ref`` is the reference policy π_ref (the reference p, first argument, as always);
    the result is the optimal policy π* (the model q) in log space.

    .. math::
        \text{reverse:}\quad \pi^*(y) = \frac{\pi_{ref}(y)\, e^{r(y)/\beta}}{Z}, \qquad
        \text{forward:}\quad \pi^*(y) = \frac{\beta\, \pi_{ref}(y)}{\Lambda - r(y)},\ \ \sum_y \pi^*(y) = 1

    Reverse KL keeps π* inside the support of π_ref and, for a rare answer of mass ε with
    a reward gap of 1, gives it :math:`\varepsilon e^{1/\beta}/(\varepsilon e^{1/\beta} + 1 - \varepsilon)`;
    forward KL gives it about :math:`1 - \beta` whenever β < 1 (RAPO, Deng et al., 2025).
    The forward solution is a bracketed 1-D root solve in float64 for every row at once.

    Parameters
    ----------
    logp_ref : Tensor, shape (..., K)
        Log-probabilities of the reference policy.
    reward : Tensor, shape (..., K)
    beta : float > 0, or Tensor broadcastable to shape (...)
        The KL coefficient (a tensor solves several coefficients in one call).
    direction : {"reverse", "forward"}

    Returns
    -------
    Tensor, shape (..., K)
        log π*.

    >>> import torch
    >>> ref = torch.tensor([0.5, 0.5], dtype=torch.float64).log(); r = torch.tensor([0.0, 1.0])
    >>> [round(v, 4) for v in kl_regularized_policy(ref, r, 1.0).exp().tolist()]
    [0.2689, 0.7311]
    >>> [round(v, 4) for v in kl_regularized_policy(ref, r, 0.5, direction="forward").exp().tolist()]  # (1 - b + sqrt((1 - b)^2 + 2b)) / 2
    [0.191, 0.809]
    """
    check_choice("direction", direction, DIRECTIONS)
    logp_ref, _ = _pair(logp_ref, logp_ref, True, names=("logp_ref", "logp_ref"))
    beta = _beta(beta, logp_ref.shape[:-1])
    reward = _reward(reward, logp_ref)
    if direction == "reverse":
        scale = beta.to(logp_ref.dtype).unsqueeze(-1) if torch.is_tensor(beta) else beta
        return torch.log_softmax(logp_ref + reward / scale, dim=-1)
    k = logp_ref.shape[-1]
    lp64 = logp_ref.detach().to(torch.float64).reshape(-1, k)
    r64 = reward.detach().to(torch.float64).reshape(-1, k)
    b64 = beta.expand(logp_ref.shape[:-1]).reshape(-1) if torch.is_tensor(beta) else beta
    return _forward_solution(lp64, r64, b64).reshape(logp_ref.shape).to(logp_ref.dtype)


def objective(logpi, logp_ref, reward, beta: float, *, direction: str = "reverse") -> torch.Tensor:
    r"""The regularised objective :math:`\mathbb{E}_\pi[r] - \beta D`, per example.

    ``logpi`` is the policy being scored; ``logp_ref`` the reference. D is KL(π‖π_ref) for
    ``"reverse"`` and KL(π_ref‖π) for ``"forward"``. Differentiable in ``logpi``.

    >>> import torch
    >>> ref = torch.tensor([0.5, 0.5], dtype=torch.float64).log(); r = torch.tensor([0.0, 1.0])
    >>> best = kl_regularized_policy(ref, r, 1.0)
    >>> bool(torch.isclose(objective(best, ref, r, 1.0), log_partition(ref, r, 1.0)))
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    beta = check_positive("beta", beta)
    logpi, logp_ref = _pair(logpi, logp_ref, True, names=("logpi", "logp_ref"))
    reward = _reward(reward, logp_ref)
    pi = logpi.exp()
    expected = (pi * reward).sum(-1)
    d = _kl_unchecked(logpi, logp_ref) if direction == "reverse" else _kl_unchecked(logp_ref, logpi)
    return expected - beta * d


def minimise_softmax(loss: Callable[[torch.Tensor], torch.Tensor], init_logits, *, steps: int = 2000,
                     lr: float = 0.05) -> tuple[torch.Tensor, list[float]]:
    r"""Minimise ``loss(log_softmax(logits))`` over the logits with Adam, in float64.

    The generic gradient route behind :func:`fit_policy`: ``loss`` receives the policy's
    log-probabilities, shape ``init_logits.shape``, and returns a tensor that is summed (so a
    batch of independent rows trains side by side, Adam acting element by element).

    Parameters
    ----------
    loss : callable
        Differentiable in its argument.
    init_logits : Tensor, shape (..., K)
    steps : int ≥ 1
    lr : float > 0

    Returns
    -------
    (log π, history)
        The final log-probabilities (detached) and the summed loss before every step.

    >>> import torch
    >>> target = torch.tensor([0.2, 0.8], dtype=torch.float64)
    >>> logpi, _ = minimise_softmax(lambda lq: -(target * lq).sum(), torch.zeros(2), steps=400, lr=0.1)
    >>> [round(v, 3) for v in logpi.exp().tolist()]
    [0.2, 0.8]
    """
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr)
    logits = torch.as_tensor(init_logits, dtype=torch.float64).detach().clone().requires_grad_(True)
    if logits.ndim == 0:
        raise ValueError("init_logits must have at least one axis (the answers); got a scalar")
    opt = Adam([logits], lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        value = loss(torch.log_softmax(logits, -1)).sum()
        value.backward()
        opt.step()
        history.append(value.item())
    return torch.log_softmax(logits.detach(), -1), history


def fit_policy(logp_ref, reward, beta: float, *, direction: str = "reverse", steps: int = 2000,
               lr: float = 0.05, init_logits=None) -> tuple[torch.Tensor, list[float]]:
    r"""Maximise :func:`objective` over a softmax policy with exact expected gradients (Adam).

    An independent route to the optimum of :func:`kl_regularized_policy`: no closed form,
    just gradient ascent on :math:`\mathbb{E}_\pi[r] - \beta D` over the logits
    (:func:`minimise_softmax` on its negative).

    Parameters
    ----------
    logp_ref, reward : Tensor, shape (..., K)
    beta : float > 0
    direction : {"reverse", "forward"}
    steps : int ≥ 1
    lr : float > 0
    init_logits : Tensor, optional
        Starting logits (default: ``logp_ref`` where finite, else -30).

    Returns
    -------
    (log π, history)
        The trained policy's log-probabilities (float64) and the objective at every step.

    >>> import torch
    >>> ref = torch.tensor([0.5, 0.5], dtype=torch.float64).log(); r = torch.tensor([0.0, 1.0])
    >>> logpi, _ = fit_policy(ref, r, 1.0, steps=500, lr=0.1)
    >>> bool(torch.allclose(logpi.exp(), kl_regularized_policy(ref, r, 1.0).exp(), atol=1e-4))
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    beta = check_positive("beta", beta)
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr)
    logp_ref, _ = _pair(logp_ref, logp_ref, True, names=("logp_ref", "logp_ref"))
    logp_ref = logp_ref.detach().to(torch.float64)
    reward = _reward(reward, logp_ref)
    if init_logits is None:
        init_logits = logp_ref.clamp_min(-30.0)
    logpi, history = minimise_softmax(lambda lq: -objective(lq, logp_ref, reward, beta, direction=direction),
                                      init_logits, steps=steps, lr=lr)
    return logpi, [-h for h in history]


def _reverse_prior_fit(logb: np.ndarray, logp0: np.ndarray, beta: np.ndarray) -> np.ndarray:
    r"""argmin CE(b, π) + β KL(π‖π0) per row: log π = log π0 + ω(z + c) − c, Newton on c (float64).

    Stationarity gives :math:`(s + c)e^{s + c} = b\,e^{c}/(\beta\pi_0)` for s = log(π/π0), so
    s + c = ω(log b − log β − log π0 + c) with ω the Wright omega function (ω(x) = W(eˣ)).
    g(c) = log Σ π is convex and decreasing, g(0) ≥ 0 and the root is ≤ 1/β: Newton from c = 0
    climbs to it monotonically.
    """
    support = logp0 > -np.inf
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(support & (logb > -np.inf), logb - np.log(beta) - logp0, -np.inf)
    c = np.zeros(logb.shape[:-1] + (1,))
    previous = np.inf
    for _ in range(100):  # quadratic convergence: typically under 10 iterations
        omega = wrightomega(z + c)
        logpi = np.where(support, logp0 + omega - c, -np.inf)
        top = logpi.max(-1, keepdims=True)
        g = top + np.log(np.exp(logpi - top).sum(-1, keepdims=True))
        # In exact arithmetic |g| falls at every Newton step from the left; once it stops falling
        # it has reached the rounding floor (about eps * (|c| + max omega)).
        worst = np.abs(g).max()
        if worst < 1e-15 or worst >= previous:
            break
        previous = worst
        w = np.exp(logpi - g)
        slope = -(w / (1.0 + omega)).sum(-1, keepdims=True)
        c = np.minimum(c - g / slope, 1.0 / beta)
    return logpi - g


def kl_prior_fit(logp_data, logp_prior, beta, *, direction: str = "forward") -> torch.Tensor:
    r"""Fit data by cross-entropy with a KL prior, exactly; ``logp_data`` is the reference (the data).

    Minimises, over all distributions π on the K answers,

    .. math::
        L(\pi) = -\sum_y b(y)\log\pi(y) + \beta D, \qquad
        D = \mathrm{KL}(\pi_0\|\pi)\ (\texttt{"forward"}) \ \text{or}\ \mathrm{KL}(\pi\|\pi_0)\ (\texttt{"reverse"}),

    with b the data distribution and π0 the prior. This is one fine-tuning step of SuperHF
    (Mukobi et al., 2023) fitted to convergence: b is the best-of-n distribution of the current
    policy, π0 the base model. The forward prior (the one SuperHF's code computes, per token)
    gives a mixture, the reverse prior a Wright-omega form with one normaliser c per row:

    .. math::
        \text{forward:}\ \ \pi = \frac{b + \beta\pi_0}{1 + \beta}, \qquad
        \text{reverse:}\ \ \log\pi = \log\pi_0 + \omega\!\Big(\log\frac{b}{\beta\pi_0} + c\Big) - c,
        \ \ \sum_y \pi(y) = 1 .

    Parameters
    ----------
    logp_data, logp_prior : Tensor, shape (..., K)
        Log-probabilities; ``-inf`` allowed.
    beta : float > 0, or Tensor broadcastable to shape (...)
        KL coefficient (a tensor fits several coefficients in one call).
    direction : {"forward", "reverse"}

    Returns
    -------
    Tensor, shape (..., K)
        log π, float64.

    Raises
    ------
    ValueError
        For the reverse prior, if the data put mass where the prior has none (the loss is then
        infinite for every π).

    >>> import torch
    >>> b = torch.tensor([0.0, 1.0], dtype=torch.float64).log(); p0 = torch.tensor([0.5, 0.5]).log()
    >>> [round(v, 4) for v in kl_prior_fit(b, p0, 1.0).exp().tolist()]
    [0.25, 0.75]
    >>> [round(v, 4) for v in kl_prior_fit(b, p0, 1.0, direction="reverse").exp().tolist()]
    [0.2178, 0.7822]
    """
    check_choice("direction", direction, DIRECTIONS)
    logp_data, logp_prior = _pair(logp_data, logp_prior, True, names=("logp_data", "logp_prior"))
    logp_data, logp_prior = logp_data.detach().to(torch.float64), logp_prior.detach().to(torch.float64)
    beta = _beta(beta, logp_data.shape[:-1])
    beta_t = torch.as_tensor(beta, dtype=torch.float64)
    beta_t = beta_t.expand(logp_data.shape[:-1]).unsqueeze(-1) if beta_t.ndim else beta_t
    if direction == "forward":
        return torch.logaddexp(logp_data, beta_t.log() + logp_prior) - torch.log1p(beta_t)
    if ((logp_data > -math.inf) & (logp_prior == -math.inf)).any():
        raise ValueError("logp_data must be 0 wherever logp_prior is 0 for the reverse prior "
                         "(KL(pi||pi_0) forbids mass the cross-entropy requires); got data outside the prior's support")
    k = logp_data.shape[-1]
    b_np = np.broadcast_to(beta_t.numpy(), logp_data.shape[:-1] + (1,) if beta_t.ndim else ()).reshape(-1, 1) \
        if beta_t.ndim else np.float64(beta)
    out = _reverse_prior_fit(logp_data.reshape(-1, k).numpy(), logp_prior.reshape(-1, k).numpy(), b_np)
    return torch.from_numpy(np.ascontiguousarray(out)).reshape(logp_data.shape)
