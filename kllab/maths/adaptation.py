r"""Source-free adaptation: entropy minimisation with a KL prior on the predicted class ratio.

A model trained on a labelled *source* domain meets unlabelled *target* inputs :math:`x_1..x_N`
(the pixels of one image). Its softmax outputs :math:`s_i \in \Delta_K` give the **predicted class
ratio** (the paper's "soft size")

.. math::
    \hat s = \frac1N \sum_{i=1}^N s_i \in \Delta_K ,

and the adaptation loss of Bateson et al. is the mean prediction entropy plus a KL between
:math:`\hat s` and a prior class ratio :math:`\tau`:

.. math::
    L_\lambda = \frac1N \sum_i H(s_i) + \lambda\, \mathrm{KL}(\hat s \,\|\, \tau)
    \qquad \text{(the paper's and its code's order, ``direction="reverse"``)},

or, with ``direction="forward"``, :math:`\lambda\,\mathrm{KL}(\tau\|\hat s)`. kllab's convention is
followed: the prior :math:`\tau` is the reference p and the prediction :math:`\hat s` the model q, so
"forward" is :math:`\mathrm{KL}(\tau\|\hat s)` (infinite as soon as :math:`\hat s` drops a class that
:math:`\tau` keeps) and "reverse" is :math:`\mathrm{KL}(\hat s\|\tau)` (finite at a collapsed
:math:`\hat s`: :math:`\log(1/\tau_k)` when everything goes to class k).

**Information maximisation.** With :math:`\tau = u` uniform and :math:`\lambda = 1`,

.. math::
    \frac1N \sum_i H(s_i) + \mathrm{KL}(\hat s\,\|\,u) = \log K - \Big[H(\hat s) - \frac1N \sum_i H(s_i)\Big],

and the bracket is the mutual information :math:`I(X; Y)` between an input drawn uniformly from the
batch and the label drawn from its prediction (:math:`H(Y) - H(Y\mid X)`). Minimising the loss is
maximising that mutual information. The identity is exact:
:math:`\mathrm{KL}(\hat s\|u) = \log K - H(\hat s)`.

Conventions: log space (``logp`` holds :math:`\log s_i` on the last axis, the N inputs on the axis
before it), no hidden reduction over models (results have shape ``logp.shape[:-2]``).

References
----------
* M. Bateson, H. Kervadec, J. Dolz, H. Lombaert, I. Ben Ayed. *Source-Free Domain Adaptation for Image
  Segmentation.* Medical Image Analysis 2022, arXiv:2108.03152. Code: github.com/mathilde-b/SFDA
  (``losses.py``, class ``EntKLProp``).
* A. Krause, P. Perona, R. Gomes. *Discriminative clustering by regularized information maximization.*
  NeurIPS 2010 (the mutual-information objective).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .divergences import entropy, kl
from .optim import Adam
from .validation import (DIRECTIONS, check_choice, check_int, check_log_probs, check_no_nan,
                         check_positive)

__all__ = ["class_ratio", "mean_entropy", "information_maximisation", "InformationTerms",
           "prior_kl", "sfda_loss", "adapt", "Adaptation"]


def _check_batch(logp, validate: bool) -> torch.Tensor:
    if not torch.is_tensor(logp):
        raise ValueError(f"logp must be a torch.Tensor of log-probabilities; got {type(logp).__name__}")
    if logp.ndim < 2:
        raise ValueError(f"logp must have shape (..., N, K): N inputs, K classes; got shape {tuple(logp.shape)}")
    if logp.shape[-2] < 1 or logp.shape[-1] < 2:
        raise ValueError(f"logp must hold at least one input and two classes, shape (..., N >= 1, K >= 2); "
                         f"got shape {tuple(logp.shape)}")
    if validate:
        check_log_probs("logp", logp)
    return logp


def _check_prior(log_tau, k: int) -> torch.Tensor:
    if not torch.is_tensor(log_tau):
        log_tau = torch.as_tensor(log_tau, dtype=torch.float64)
    if log_tau.shape[-1:] != (k,):
        raise ValueError(f"log_tau must hold log class ratios on its last axis, of length K = {k}; "
                         f"got shape {tuple(log_tau.shape)}")
    check_log_probs("log_tau", log_tau)
    return log_tau


def class_ratio(logp: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
    r"""The predicted class ratio (soft size) in log space, :math:`\log \hat s = \log \frac1N\sum_i s_i`.

    Parameters
    ----------
    logp : Tensor, shape (..., N, K)
        Log-softmax outputs of N inputs.

    Returns
    -------
    Tensor, shape (..., K)

    >>> import torch
    >>> logp = torch.tensor([[0.9, 0.1], [0.5, 0.5]]).log()
    >>> class_ratio(logp).exp()
    tensor([0.7000, 0.3000])
    """
    logp = _check_batch(logp, validate)
    return torch.logsumexp(logp, dim=-2) - math.log(logp.shape[-2])


def mean_entropy(logp: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
    r"""Mean prediction entropy :math:`\frac1N\sum_i H(s_i)` in nats; shape ``logp.shape[:-2]``.

    >>> import torch
    >>> round(mean_entropy(torch.tensor([[0.5, 0.5], [1.0, 0.0]]).log()).item(), 6) == round(math.log(2) / 2, 6)
    True
    """
    logp = _check_batch(logp, validate)
    return entropy(logp, validate=False).mean(-1)


@dataclass(frozen=True)
class InformationTerms:
    """The three terms of the information-maximisation identity, each of shape ``logp.shape[:-2]``."""

    mean_entropy: torch.Tensor          # H(Y | X) = mean_i H(s_i)
    marginal_entropy: torch.Tensor      # H(Y) = H(s_hat)
    mutual_information: torch.Tensor    # I(X; Y) = H(Y) - H(Y | X) >= 0


def information_maximisation(logp: torch.Tensor, *, validate: bool = True) -> InformationTerms:
    r"""Conditional entropy, marginal entropy and mutual information of a batch of predictions.

    .. math::
        I(X;Y) = H(\hat s) - \frac1N\sum_i H(s_i) \;\ge 0,
        \qquad \frac1N\sum_i H(s_i) + \mathrm{KL}(\hat s\|u) = \log K - I(X;Y).

    >>> import torch
    >>> t = information_maximisation(torch.tensor([[1.0, 0.0], [0.0, 1.0]]).log())   # confident and balanced
    >>> round(t.mutual_information.item(), 6) == round(math.log(2), 6)
    True
    """
    logp = _check_batch(logp, validate)
    h_cond = mean_entropy(logp, validate=False)
    h_marg = entropy(class_ratio(logp, validate=False), validate=False)
    return InformationTerms(h_cond, h_marg, h_marg - h_cond)


def prior_kl(logp: torch.Tensor, log_tau, *, direction: str = "reverse", validate: bool = True) -> torch.Tensor:
    r"""KL between the predicted class ratio :math:`\hat s` and the prior :math:`\tau` (the reference).

    ``direction="reverse"`` is :math:`\mathrm{KL}(\hat s\|\tau)` (the paper's), ``"forward"`` is
    :math:`\mathrm{KL}(\tau\|\hat s)`.

    Parameters
    ----------
    logp : Tensor, shape (..., N, K)
    log_tau : Tensor, shape (K,) or broadcastable to (..., K)
        Log of the prior class ratio; must be normalised.
    direction : {"forward", "reverse"}

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> logp = torch.tensor([[0.9, 0.1], [0.5, 0.5]]).log(); tau = torch.tensor([0.7, 0.3]).log()
    >>> prior_kl(logp, tau).abs().item() < 1e-7
    True
    """
    check_choice("direction", direction, DIRECTIONS)
    logp = _check_batch(logp, validate)
    log_tau = _check_prior(log_tau, logp.shape[-1])
    log_s = class_ratio(logp, validate=False)
    log_tau = log_tau.to(log_s.dtype).expand_as(log_s)
    return kl(log_tau, log_s, direction=direction, validate=False)


def _check_lam(lam) -> torch.Tensor | float:
    if torch.is_tensor(lam):
        check_no_nan("lam", lam)
        if (lam < 0).any() or not torch.isfinite(lam).all():
            raise ValueError(f"lam must be finite and >= 0; got {lam.min().item():g} .. {lam.max().item():g}")
        return lam
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite real number >= 0; got {lam!r}")
    return float(lam)


def sfda_loss(logp: torch.Tensor, log_tau, lam, *, direction: str = "reverse",
              validate: bool = True) -> torch.Tensor:
    r"""The adaptation loss :math:`\frac1N\sum_i H(s_i) + \lambda\,\mathrm{KL}` of one batch (image) per leading index.

    .. math::
        L_\lambda = \frac1N\sum_i H(s_i) + \lambda \cdot
        \begin{cases} \mathrm{KL}(\hat s\|\tau) & \text{reverse (the paper)} \\
                      \mathrm{KL}(\tau\|\hat s) & \text{forward} \end{cases}

    Parameters
    ----------
    logp : Tensor, shape (..., N, K)
    log_tau : Tensor, shape (K,) or broadcastable to (..., K)
    lam : float ≥ 0 or Tensor broadcastable to (...)
        Weight of the prior; 0 is entropy minimisation alone.
    direction : {"forward", "reverse"}

    Returns
    -------
    Tensor, shape (...)

    >>> import torch
    >>> logp = torch.log_softmax(torch.randn(5, 3, dtype=torch.float64), -1); u = torch.full((3,), 1 / 3).log()
    >>> im = information_maximisation(logp)
    >>> bool(torch.isclose(sfda_loss(logp, u, 1.0), math.log(3) - im.mutual_information))
    True
    """
    lam = _check_lam(lam)
    logp = _check_batch(logp, validate)
    return mean_entropy(logp, validate=False) + lam * prior_kl(logp, log_tau, direction=direction, validate=False)


@dataclass(frozen=True)
class Adaptation:
    """What :func:`adapt` records: the loss and the predicted class ratio before each step, and after the last."""

    loss: torch.Tensor        # shape (steps + 1, R)
    log_ratio: torch.Tensor   # shape (steps + 1, R, K)


def adapt(model: torch.nn.Module, x: torch.Tensor, log_tau, lam, *, steps: int, lr: float = 0.01,
          direction: str = "reverse", logits: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Adaptation:
    r"""Source-free adaptation: full-batch Adam on :func:`sfda_loss`, target inputs only, no labels.

    ``model(x)`` must return logits of shape (R, N, K): R independent models (an
    :class:`~kllab.maths.ensemble.EnsembleMLP`), each adapted on its own batch (image); the optimiser steps
    on the sum of the R losses, which for models sharing no parameter is R separate adaptations.

    Parameters
    ----------
    model : nn.Module
        Starts from the source-trained weights; changed in place.
    x : Tensor, shape (N, d) or (R, N, d)
        The unlabelled target inputs.
    log_tau : Tensor, shape (K,) or (R, K)
        Log prior class ratio.
    lam : float ≥ 0 or Tensor of shape (R,)
        Prior weight per model (0: entropy minimisation alone).
    steps : int ≥ 1
    lr : float > 0
    direction : {"forward", "reverse"}
    logits : callable, optional
        ``logits(x)`` instead of ``model(x)`` (e.g. a temperature applied to the outputs).

    Returns
    -------
    Adaptation
        The loss and :math:`\log\hat s` of every model before each step and after the last.

    >>> import torch
    >>> from kllab.maths.ensemble import EnsembleMLP
    >>> net = EnsembleMLP(2, 2, width=4, seeds=[0])
    >>> x = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> tau = torch.tensor([0.7, 0.3], dtype=torch.float64).log()
    >>> run = adapt(net, x, tau, 10.0, steps=300, lr=0.02)
    >>> run.loss.shape, abs(run.log_ratio[-1, 0, 1].exp().item() - 0.3) < 0.02
    (torch.Size([301, 1]), True)
    """
    check_choice("direction", direction, DIRECTIONS)
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr)
    lam = _check_lam(lam)
    if not torch.is_tensor(x) or x.ndim not in (2, 3):
        raise ValueError(f"x must be a tensor of shape (N, d) or (R, N, d); got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    check_no_nan("x", x)
    forward = model if logits is None else logits
    params = [p for p in model.parameters() if p.requires_grad]
    opt = Adam(params, lr=lr)
    with torch.enable_grad():   # also when called under torch.no_grad()
        return _loop(model, forward, x, log_tau, lam, steps, opt, direction)


def _loop(model, forward, x, log_tau, lam, steps, opt, direction) -> Adaptation:
    first = True
    losses, ratios = [], []
    for t in range(steps + 1):
        opt.zero_grad()
        logp = torch.log_softmax(forward(x), dim=-1)
        if first:   # validate the shapes and the prior once, then run unchecked
            if logp.ndim != 3:
                raise ValueError(f"model(x) must return logits of shape (R, N, K); got shape {tuple(logp.shape)}")
            _check_batch(logp, True)
            _check_prior(log_tau, logp.shape[-1])
            if torch.is_tensor(lam) and lam.ndim > 0 and lam.shape != (logp.shape[0],):
                raise ValueError(f"lam must be a number or have shape (R,) = ({logp.shape[0]},); got shape {tuple(lam.shape)}")
            first = False
        per_model = sfda_loss(logp, log_tau, lam, direction=direction, validate=False)
        losses.append(per_model.detach())
        ratios.append(class_ratio(logp, validate=False).detach())
        if t == steps:
            break
        per_model.sum().backward()
        opt.step()
    return Adaptation(torch.stack(losses), torch.stack(ratios))
