r"""Mirror steps and FTRL on the probability simplex, named by the divergence they pay for moving.

Part of :mod:`kllab.maths.online` (which explains the three divergences): :func:`mirror_step`, :func:`ftrl`,
:func:`bregman`, :func:`regularizer`, :func:`one_thread`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from .. import rlhf
from ..divergences import _as_tensor, kl
from ..validation import check_choice, check_log_probs, check_positive, check_real

__all__ = ["DIVERGENCES", "REGULARIZERS", "REGULARIZER", "regularizer", "bregman", "mirror_step", "ftrl", "one_thread"]


DIVERGENCES = ("reverse", "forward", "itakura_saito")
"""The proximity terms of :func:`mirror_step`, by the divergence they are."""

REGULARIZERS = ("entropy", "log_barrier")
"""The fixed regularisers of :func:`ftrl`, :func:`regularizer` and :func:`bregman`."""

REGULARIZER = {"reverse": "entropy", "itakura_saito": "log_barrier"}
"""The regulariser whose Bregman divergence is each proximity term (the forward KL has none that stays put)."""

_INF = math.inf


@contextmanager
def one_thread():
    """Run a loop over tiny tensors on one intra-op thread, restoring the thread count afterwards.

    Thousands of sequential operations on tensors of a few dozen numbers are dominated by
    dispatch; several intra-op threads only add hand-off costs (tens of times slower on a busy
    machine).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _divergence_name(name: str) -> str:
    return check_choice("divergence", name, DIVERGENCES)


def _regularizer_name(name: str) -> str:
    return check_choice("regularizer", name, REGULARIZERS)


def regularizer(logp, name: str) -> torch.Tensor:
    r"""The regulariser ψ(p) (with η = 1) at ``logp``, per example.

    .. math::
        \text{entropy: } \psi(p) = \sum_i p_i \log p_i, \qquad
        \text{log\_barrier: } \psi(p) = -\sum_i \log p_i

    Parameters
    ----------
    logp : Tensor, shape (..., K)
        Log-probabilities; ``-inf`` is legal and gives ``inf`` for the log-barrier.
    name : {"entropy", "log_barrier"}

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> u = torch.full((4,), 0.25, dtype=torch.float64).log()
    >>> round(regularizer(u, "entropy").item(), 6) == round(-math.log(4), 6)
    True
    >>> round(regularizer(u, "log_barrier").item(), 6) == round(4 * math.log(4), 6)
    True
    """
    name = _regularizer_name(name)
    logp = _as_tensor(logp)
    check_log_probs("logp", logp)
    if name == "entropy":
        p = logp.exp()
        return torch.where(p > 0, p * logp, torch.zeros((), dtype=logp.dtype)).sum(-1)
    return (-logp).sum(-1)


def bregman(logp, logq, name: str, *, validate: bool = True) -> torch.Tensor:
    r"""Bregman divergence :math:`D_\psi(p, q)` of the regulariser ``name``; ``logq`` is the anchor.

    .. math::
        D_\psi(p, q) = \psi(p) - \psi(q) - \langle\nabla\psi(q), p - q\rangle =
        \begin{cases} \sum_i p_i \log(p_i/q_i) = \mathrm{KL}(p\|q) & \text{entropy} \\
        \sum_i \big(p_i/q_i - \log(p_i/q_i) - 1\big) & \text{log\_barrier (Itakura-Saito)}\end{cases}

    On the simplex the entropic Bregman divergence *is* the KL divergence (the linear terms cancel
    because both arguments sum to one), so this calls :func:`kllab.maths.divergences.kl`. The
    log-barrier's is infinite as soon as either argument puts zero mass anywhere: the barrier never
    lets an iterate reach the boundary.

    Parameters
    ----------
    logp, logq : Tensor, shape (..., K)
        Log-probabilities of the new point p and of the anchor q.
    name : {"entropy", "log_barrier"}
    validate : bool
        Check shapes, NaN and normalisation.

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> p = torch.tensor([0.5, 0.5], dtype=torch.float64).log(); q = torch.tensor([0.9, 0.1], dtype=torch.float64).log()
    >>> round(bregman(p, q, "entropy").item(), 4), round(bregman(p, q, "log_barrier").item(), 4)
    (0.5108, 2.5339)
    """
    name = _regularizer_name(name)
    if name == "entropy":
        return kl(logp, logq, validate=validate)
    logp, logq = _as_tensor(logp), _as_tensor(logq)
    if validate:
        check_log_probs("logp", logp)
        check_log_probs("logq", logq)
        if logp.shape != logq.shape:
            raise ValueError(f"logp and logq must have the same shape; got {tuple(logp.shape)} and {tuple(logq.shape)}")
    d = logp - logq
    terms = torch.expm1(d) - d
    boundary = torch.isinf(logp) | torch.isinf(logq)
    return torch.where(boundary, torch.full((), _INF, dtype=terms.dtype), terms).sum(-1)


def _inverse_normalise(theta: torch.Tensor, c: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                       iters: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """p_i = w_i / (theta_i + c) with sum p = 1, on the last axis (Newton on the scalar c); w = 1 by default.

    f(c) = sum_i w_i / (theta_i + c) - 1 is convex and decreasing on c > -min theta (the min over arms
    with w > 0), and its root lies at or above c0 = w_j - theta_j for j the arm of smallest theta (that
    arm alone contributes 1 there, so f(c0) >= 0). From the left of the root Newton's iterates
    increase monotonically to it; from the right one step lands on the left. Clamping every iterate to
    >= c0 therefore keeps it off the pole and converges from any start, so a warm start ``c`` (the
    previous round's) needs two or three steps. The solve runs on theta - theta_j, so that huge
    cumulative losses of either sign lose no precision. Arms with theta = +inf or w = 0 get p = 0.
    Returns (log p, c).
    """
    if weight is None:
        support = torch.isfinite(theta)
        weight_j = torch.ones(theta.shape[:-1] + (1,), dtype=theta.dtype)
    else:
        support = (weight > 0) & torch.isfinite(theta)
    masked = torch.where(support, theta, torch.full((), _INF, dtype=theta.dtype))
    lo, j = masked.min(-1, keepdim=True)
    if weight is not None:
        weight_j = weight.gather(-1, j)
    t = torch.where(support, theta - lo, torch.full((), _INF, dtype=theta.dtype))   # >= 0, zero at arm j
    w = 1.0 if weight is None else weight
    c = weight_j if c is None else torch.maximum(c + lo, weight_j)                     # centred: c >= w_j
    for _ in range(iters):
        terms = w / (t + c)
        s = terms.sum(-1, keepdim=True)
        f = s - 1.0
        if f.abs().max() <= 1e-13:
            break
        c = torch.maximum(c + f / (terms / (t + c)).sum(-1, keepdim=True), weight_j)
    else:  # pragma: no cover - Newton converges quadratically here; this is a guard
        raise RuntimeError("the barrier normalisation did not converge")
    return torch.log(terms) - torch.log(s), c - lo    # removes the 1e-13 tolerance, nothing more


def mirror_step(logpi, reward, eta: float, *, divergence: str = "reverse", beta: float = 0.0,
                logp_ref=None) -> torch.Tensor:
    r"""One mirror-ascent step from the current policy ``logpi``, optionally anchored to ``logp_ref``.

    ``logpi`` is the current iterate :math:`\pi_k` (the anchor of the step), ``logp_ref`` the reference
    :math:`\pi_{ref}` of an extra regularisation of weight β, measured with the same divergence D:

    .. math::
        \pi_{k+1} = \arg\max_{\pi \in \Delta}\ \eta\,\langle r, \pi\rangle - \eta\beta\, D(\pi, \pi_{ref}) - D(\pi, \pi_k).

    * ``"reverse"``, :math:`D(\pi, \pi_k) = \mathrm{KL}(\pi\|\pi_k)`:
      :math:`\log\pi_{k+1} = \frac{\log\pi_k + \eta\beta\log\pi_{ref} + \eta r}{1 + \eta\beta} - \log Z`, the Gibbs policy
      :func:`kllab.maths.rlhf.kl_regularized_policy` of r with the *geometric* mixture
      :math:`\pi_k^{1/(1+\eta\beta)}\pi_{ref}^{\eta\beta/(1+\eta\beta)}` as its reference and coefficient
      :math:`\beta + 1/\eta`: a KL-prox step is an RLHF step whose reference has moved.
    * ``"forward"``, :math:`D(\pi, \pi_k) = \mathrm{KL}(\pi_k\|\pi)`:
      :math:`\pi_{k+1} = \frac{\pi_k + \eta\beta\,\pi_{ref}}{\lambda - \eta r}`, λ fixed by normalisation: the
      forward-KL optimum of :func:`kllab.maths.rlhf.kl_regularized_policy` with the *arithmetic* mixture as
      reference and the same coefficient.
    * ``"itakura_saito"`` (the log-barrier's Bregman divergence):
      :math:`\frac{1 + \eta\beta}{\pi_{k+1}} = \frac{1}{\pi_k} + \frac{\eta\beta}{\pi_{ref}} - \eta r + \lambda`.

    The last two are solved by a monotone Newton iteration on λ. For losses pass ``reward = -loss``.

    Parameters
    ----------
    logpi : Tensor, shape (..., K)
        Log-probabilities of the current iterate (finite for ``"itakura_saito"``).
    reward : Tensor, shape (..., K)
        The gain of each action (finite).
    eta : float > 0
        Step size.
    divergence : {"reverse", "forward", "itakura_saito"}
    beta : float >= 0
        Weight of the anchor to ``logp_ref`` (0: plain mirror ascent).
    logp_ref : Tensor, shape (..., K), optional
        Required when ``beta > 0``.

    Returns
    -------
    Tensor, shape (..., K)
        log π_{k+1}.

    References
    ----------
    Nemirovski and Yudin (1983); Beck and Teboulle (2003); Tiapkin et al. (2025), arXiv:2505.19731.

    >>> import torch
    >>> u = torch.full((2,), 0.5, dtype=torch.float64).log(); r = torch.tensor([0.0, 1.0], dtype=torch.float64)
    >>> [round(v, 4) for v in mirror_step(u, r, 1.0).exp().tolist()]   # softmax(log u + r)
    [0.2689, 0.7311]
    >>> [round(v, 4) for v in mirror_step(u, r, 1.0, divergence="itakura_saito").exp().tolist()]
    [0.382, 0.618]
    """
    name = _divergence_name(divergence)
    eta = check_positive("eta", eta)
    beta = check_real("beta", beta, low=0.0)
    logpi = _as_tensor(logpi)
    check_log_probs("logpi", logpi)
    reward = torch.as_tensor(reward, dtype=logpi.dtype)
    if reward.shape != logpi.shape:
        raise ValueError(f"reward and logpi must have the same shape; got {tuple(reward.shape)} and {tuple(logpi.shape)}")
    if not torch.isfinite(reward).all():
        raise ValueError("reward must be finite everywhere; got a NaN or inf")
    if beta > 0:
        if logp_ref is None:
            raise ValueError("logp_ref must be given when beta > 0; got None")
        logp_ref = _as_tensor(logp_ref).to(logpi.dtype)
        check_log_probs("logp_ref", logp_ref)
        if logp_ref.shape != logpi.shape:
            raise ValueError(f"logp_ref and logpi must have the same shape; got {tuple(logp_ref.shape)} "
                             f"and {tuple(logpi.shape)}")
    if name == "itakura_saito" and not (torch.isfinite(logpi).all() and (beta == 0 or torch.isfinite(logp_ref).all())):
        raise ValueError("logpi and logp_ref must be finite for the itakura_saito step (the log-barrier keeps every "
                         "iterate inside the simplex); got -inf")
    return _mirror_step(logpi, reward, eta, name, beta, logp_ref)


def _mirror_step(logpi, reward, eta, name, beta, logp_ref):
    """:func:`mirror_step` after its input checks (the Gibbs policy still checks its own)."""
    if name == "reverse":
        anchor = logpi
        if beta > 0:  # the geometric mixture of the iterate and the reference, normalised
            anchor = torch.log_softmax((logpi + eta * beta * logp_ref) / (1 + eta * beta), dim=-1)
        return rlhf.kl_regularized_policy(anchor, reward, beta + 1.0 / eta)
    if name == "forward":
        weight = logpi.exp() if beta == 0 else logpi.exp() + eta * beta * logp_ref.exp()
        return _inverse_normalise(-eta * reward, torch.ones_like(reward[..., :1]), weight=weight)[0]
    theta = torch.exp(-logpi) - eta * reward
    if beta > 0:
        theta = theta + eta * beta * torch.exp(-logp_ref)
    return _inverse_normalise(theta / (1 + eta * beta))[0]


def ftrl(cum_loss, eta: float, *, regularizer: str = "entropy", logp_init=None) -> torch.Tensor:
    r"""Follow the regularised leader on the simplex: the point that minimises cumulative loss plus :math:`D_\psi/\eta`.

    ``logp_init`` is the starting point :math:`p_1` (uniform by default), the anchor of the regulariser;
    arms where it is ``-inf`` stay at probability zero.

    .. math::
        p_{t+1} = \arg\min_{p\in\Delta}\ \langle L_t, p\rangle + \tfrac1\eta D_\psi(p, p_1)
        = \begin{cases} p_1\, e^{-\eta L_t} / Z & \text{entropy (Exp3, Hedge)} \\
          1 / \big(1/p_1 + \eta L_t + \lambda\big) & \text{log\_barrier}, \ \lambda:\ \textstyle\sum p = 1
          \end{cases}

    The entropic case is :func:`kllab.maths.rlhf.kl_regularized_policy` with reward :math:`-\eta L_t`. With
    these regularisers FTRL equals mirror descent started at :math:`p_1` (:func:`mirror_step` with the
    divergence ``"reverse"`` or ``"itakura_saito"`` applied to each loss in turn): the barrier keeps the
    iterates inside the simplex, where the two coincide.

    Parameters
    ----------
    cum_loss : Tensor, shape (..., K)
        Cumulative (estimated) loss of each arm; any finite real numbers, negative ones included.
    eta : float > 0
    regularizer : {"entropy", "log_barrier"}
    logp_init : Tensor, shape (..., K), optional

    Returns
    -------
    Tensor, shape (..., K)
        log p_{t+1}.

    >>> import torch
    >>> L = torch.tensor([0.0, 1.0, -3.0], dtype=torch.float64)
    >>> p = ftrl(L, 0.5, regularizer="log_barrier").exp()
    >>> round(p.sum().item(), 12), bool((p > 0).all())
    (1.0, True)
    """
    name = _regularizer_name(regularizer)
    eta = check_positive("eta", eta)
    cum_loss = _as_tensor(cum_loss)
    if not torch.isfinite(cum_loss).all():
        raise ValueError("cum_loss must be finite everywhere; got a NaN or inf (exclude an arm with logp_init)")
    if logp_init is None:
        logp_init = torch.full_like(cum_loss, -math.log(cum_loss.shape[-1]))
    logp_init = _as_tensor(logp_init).to(cum_loss.dtype)
    check_log_probs("logp_init", logp_init)
    if logp_init.shape != cum_loss.shape:
        raise ValueError(f"logp_init and cum_loss must have the same shape; got {tuple(logp_init.shape)} "
                         f"and {tuple(cum_loss.shape)}")
    return _ftrl(cum_loss, eta, name, logp_init)[0]


def _ftrl(cum_loss: torch.Tensor, eta, name: str, logp_init: torch.Tensor, c=None, fast: bool = False):
    """FTRL without input checks; ``eta`` a float or a tensor broadcastable to ``cum_loss``.

    Returns log p and, for the log-barrier, the normaliser c (a warm start for the next round).
    """
    if name == "entropy":   # the Gibbs policy p_1 exp(-eta L) / Z, with eta folded into the reward
        if fast:            # the same, without the input checks, inside play_bandit's loop
            return torch.log_softmax(logp_init - eta * cum_loss, dim=-1), None
        return rlhf.kl_regularized_policy(logp_init, -eta * cum_loss, 1.0), None
    return _inverse_normalise(torch.exp(-logp_init) + eta * cum_loss, c)
