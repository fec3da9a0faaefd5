r"""KL-regularised two-player preference games: the regularised Nash equilibrium, and mirror descent vs mirror prox.

A preference matrix :math:`P_{yy'} = P(y \succ y') \in [0, 1]` with :math:`P + P^\top = 1` (so
:math:`P - \tfrac12` is antisymmetric, and intransitive cycles such as rock-paper-scissors are
allowed) defines the game of Nash learning from human feedback. With a reference policy
:math:`\pi_{ref}` and a KL coefficient β > 0 the first player maximises, the second minimises,

.. math::
    J_\beta(\pi, \pi') = \pi^\top P \pi' - \beta\,\mathrm{KL}(\pi\|\pi_{ref}) + \beta\,\mathrm{KL}(\pi'\|\pi_{ref}).

The game is symmetric, so its unique equilibrium is a pair :math:`(\pi^*, \pi^*)` where
:math:`\pi^*` is the Gibbs best response to itself,

.. math::
    \pi^*(y) \propto \pi_{ref}(y)\, \exp\!\big(P(y \succ \pi^*)/\beta\big), \qquad P(y \succ \pi) = (P\pi)_y ,

i.e. :func:`kllab.maths.rlhf.kl_regularized_policy` with the win rates :math:`P\pi^*` as the reward.
:func:`regularized_nash` solves this fixed point by a root solve; :func:`exploitability` measures
how far a policy is from it. :func:`mirror_descent` and :func:`mirror_prox` iterate
:func:`kllab.maths.online.mirror_step` (one KL-prox step, anchored to :math:`\pi_{ref}`), once or
twice per iteration; :func:`linear_rates` is the linear-stability theory of both at
:math:`\pi^*`, and :func:`kl_bound` the contraction :math:`(1+\eta\beta)^{-k}` of Tiapkin et al.
(2025, arXiv:2505.19731).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.linalg import null_space
from scipy.optimize import root
from scipy.special import logsumexp, softmax

from . import rlhf
from .divergences import _as_tensor, kl
from .online import _mirror_step, one_thread
from .validation import check_int, check_log_probs, check_positive, check_real

__all__ = ["check_preference", "cyclic_preference", "random_preference", "win_rate", "game_value",
           "regularized_nash", "exploitability", "mirror_descent", "mirror_prox", "mode_frequencies", "contraction_rates", "linear_rates", "kl_bound",
           "span"]


def check_preference(P) -> torch.Tensor:
    """Return ``P`` as a float64 tensor if it is a preference matrix: square, in [0, 1], ``P + P.T = 1``.

    >>> check_preference([[0.5, 0.9], [0.1, 0.5]]).tolist()
    [[0.5, 0.9], [0.1, 0.5]]
    """
    P = torch.as_tensor(P, dtype=torch.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 2:
        raise ValueError(f"P must be a square matrix with at least 2 actions; got shape {tuple(P.shape)}")
    if not torch.isfinite(P).all() or (P < 0).any() or (P > 1).any():
        raise ValueError("P must hold probabilities P(y > y') in [0, 1]; got a value outside")
    err = (P + P.T - 1).abs().max().item()
    if err > 1e-9:
        raise ValueError(f"P must satisfy P(y > y') + P(y' > y) = 1 (P + P.T = 1); got an error of {err:.3g}")
    return P


def cyclic_preference(n_actions: int, margin: float = 0.5) -> torch.Tensor:
    r"""The cyclic tournament on K actions: rock-paper-scissors for K = 3, intransitive for every K ≥ 3.

    Action y beats the :math:`\lfloor (K-1)/2 \rfloor` actions after it, cyclically, with probability
    :math:`\tfrac12 + \text{margin}`; for even K it ties with the one opposite. Every action wins as
    often as it loses, so with a uniform reference the equilibrium is uniform.

    >>> cyclic_preference(3).tolist()
    [[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.5]]
    """
    k = check_int("n_actions", n_actions, low=2)
    margin = check_real("margin", margin, low=0.0, high=0.5)
    d = (torch.arange(k)[None, :] - torch.arange(k)[:, None]) % k          # how far ahead y' is of y
    wins = (d >= 1) & (d <= (k - 1) // 2)
    losses = (d >= k - (k - 1) // 2) & (d <= k - 1)
    return 0.5 + margin * (wins.double() - losses.double())


def random_preference(n_actions: int, seed: int = 0) -> torch.Tensor:
    r"""A random preference matrix: :math:`P(y \succ y')` uniform on [0, 1] for y < y', the rest by symmetry.

    >>> P = random_preference(4, seed=1); bool(torch.allclose(P + P.T, torch.ones(4, 4, dtype=torch.float64)))
    True
    """
    k = check_int("n_actions", n_actions, low=2)
    seed = check_int("seed", seed)
    g = torch.Generator().manual_seed(seed)
    upper = torch.rand(k, k, generator=g, dtype=torch.float64).triu(1)
    return upper + (1 - upper.T).tril(-1) + 0.5 * torch.eye(k, dtype=torch.float64)


def win_rate(P, logpi) -> torch.Tensor:
    r"""Probability that each action beats a draw from π: :math:`P(y \succ \pi) = \sum_{y'} P_{yy'}\pi(y')`.

    Parameters
    ----------
    P : Tensor, shape (K, K)
    logpi : Tensor, shape (..., K)

    Returns
    -------
    Tensor, shape (..., K)

    >>> win_rate(cyclic_preference(3), torch.full((3,), 1 / 3, dtype=torch.float64).log()).tolist()
    [0.5, 0.5, 0.5]
    """
    P, logpi = _check_game(P, logpi, "logpi")
    return logpi.exp() @ P.T


def game_value(logpi, logpi_opp, P, logp_ref, beta: float) -> torch.Tensor:
    r"""The regularised payoff :math:`J_\beta(\pi, \pi')` of π (``logpi``) against π' (``logpi_opp``), per example.

    .. math::
        J_\beta(\pi, \pi') = \pi^\top P \pi' - \beta\,\mathrm{KL}(\pi\|\pi_{ref}) + \beta\,\mathrm{KL}(\pi'\|\pi_{ref})

    Antisymmetric up to the constant: :math:`J_\beta(\pi, \pi') + J_\beta(\pi', \pi) = 1`.

    >>> P = cyclic_preference(3); u = torch.full((3,), 1 / 3, dtype=torch.float64).log()
    >>> game_value(u, u, P, u, 0.1).item()
    0.5
    """
    beta = check_positive("beta", beta)
    r = win_rate(P, logpi_opp)
    logpi = _as_tensor(logpi).to(torch.float64)
    logp_ref = _as_tensor(logp_ref).to(torch.float64)
    return (logpi.exp() * r).sum(-1) - beta * kl(logpi, logp_ref) + beta * kl(_as_tensor(logpi_opp).to(torch.float64),
                                                                             logp_ref)


def _check_game(P, logpi, name: str = "logp_ref"):
    """The preference matrix and a policy (log-probabilities over its actions), checked against each other."""
    P = check_preference(P)
    logpi = _as_tensor(logpi).to(torch.float64)
    check_log_probs(name, logpi)
    if logpi.shape[-1] != P.shape[0]:
        raise ValueError(f"{name} must have {P.shape[0]} actions on its last axis (P is {tuple(P.shape)}); "
                         f"got {logpi.shape[-1]}")
    return P, logpi


def regularized_nash(P, logp_ref, beta: float, *, logp_start=None) -> torch.Tensor:
    r"""The β-regularised Nash equilibrium :math:`\pi^*` of the preference game; ``logp_ref`` is the reference.

    Solves the fixed point :math:`\pi^* \propto \pi_{ref}\exp(P\pi^*/\beta)` as a root of

    .. math::
        F(u, c) = \big(u - \log\pi_{ref} - P e^{u}/\beta + c,\ \ \mathrm{logsumexp}(u)\big) = 0

    (u = log π*, c = log Z) with MINPACK's hybrid Newton method (``scipy.optimize.root``) and its
    exact Jacobian, continued in β from 1 down to the target (halving each time) so that every
    solve starts next to the solution; or, given ``logp_start`` (say the equilibrium at a nearby β),
    directly from there, falling back to the continuation if that solve fails. Nothing here iterates the game dynamics, so the result is an
    independent target for :func:`mirror_prox`. The equilibrium exists and is unique for β > 0 (the
    regularised game is strongly monotone).

    Parameters
    ----------
    P : Tensor, shape (K, K)
        Preference matrix (:func:`check_preference`).
    logp_ref : Tensor, shape (K,)
        Log-probabilities of the reference, with full support.
    beta : float > 0
    logp_start : Tensor, shape (K,), optional
        A starting point for the solve (a warm start along a sweep over β).

    Returns
    -------
    Tensor, shape (K,)
        log π*, float64, with a fixed-point residual below 1e-10.

    >>> P = cyclic_preference(3); ref = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64).log()
    >>> star = regularized_nash(P, ref, 0.1)
    >>> bool(torch.allclose(star, rlhf.kl_regularized_policy(ref, win_rate(P, star), 0.1), atol=1e-12))
    True
    """
    beta = check_positive("beta", beta)
    P, logp_ref = _check_game(P, logp_ref)
    if logp_ref.ndim != 1:
        raise ValueError(f"logp_ref must be one policy of shape (K,); got shape {tuple(logp_ref.shape)}")
    if not torch.isfinite(logp_ref).all():
        raise ValueError("logp_ref must have full support (no -inf): the equilibrium is solved in log space")
    Pn, ref = P.numpy(), logp_ref.numpy()
    k = len(ref)

    def equations(x, b):
        u, c = x[:k], x[k]
        pi = np.exp(u)
        value = np.concatenate([u - ref - Pn @ pi / b + c, [logsumexp(u)]])
        jac = np.zeros((k + 1, k + 1))
        jac[:k, :k] = np.eye(k) - Pn * pi[None, :] / b
        jac[:k, k] = 1.0
        jac[k, :k] = softmax(u)
        return value, jac

    def solve(x, rungs):
        for b in rungs:
            x = root(equations, x, args=(b,), jac=True, method="hybr", tol=1e-14).x
        star = torch.as_tensor(x[:k] - logsumexp(x[:k]), dtype=torch.float64)
        residual = (star - rlhf.kl_regularized_policy(logp_ref, win_rate(P, star), beta)).abs().max().item()
        return star, residual

    if logp_start is not None:
        u = _as_tensor(logp_start).to(torch.float64)
        check_log_probs("logp_start", u)
        if u.shape != logp_ref.shape or not torch.isfinite(u).all():
            raise ValueError(f"logp_start must be a full-support policy of shape {tuple(logp_ref.shape)}; "
                             f"got shape {tuple(u.shape)}")
        u = u.numpy()
        star, residual = solve(np.concatenate([u, [logsumexp(ref + Pn @ np.exp(u) / beta)]]), [beta])
        if residual < 1e-10:
            return star
    rungs, b = [], max(beta, 1.0)
    while b > beta:
        rungs.append(b)
        b /= 2
    rungs.append(beta)
    u = ref + Pn @ np.exp(ref) / rungs[0]
    star, residual = solve(np.concatenate([u - logsumexp(u), [0.0]]), rungs)
    if not residual < 1e-10:
        raise RuntimeError(f"the equilibrium solve did not converge (fixed-point residual {residual:.2e})")
    return star


def exploitability(logpi, P, logp_ref, beta: float) -> torch.Tensor:
    r"""How much a best response gains against π in the regularised game, per example (0 exactly at :math:`\pi^*`).

    .. math::
        e(\pi) = \max_{\pi'} J_\beta(\pi', \pi) - \tfrac12
               = \beta\log\sum_y \pi_{ref}(y)\, e^{P(y\succ\pi)/\beta} + \beta\,\mathrm{KL}(\pi\|\pi_{ref}) - \tfrac12

    (the best response is the Gibbs policy, :func:`kllab.maths.rlhf.log_partition` gives its value).
    :math:`e \ge 0`, and it is convex in π: its minimiser is the equilibrium. For the symmetric pair
    :math:`(\pi, \pi)` the duality gap is :math:`2e(\pi)`.

    >>> P = cyclic_preference(3); ref = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64).log()
    >>> exploitability(regularized_nash(P, ref, 0.1), P, ref, 0.1).abs().item() < 1e-12
    True
    """
    beta = check_positive("beta", beta)
    P, logp_ref = _check_game(P, logp_ref)
    logpi = _as_tensor(logpi).to(torch.float64)
    r = win_rate(P, logpi)
    ref = logp_ref.expand_as(logpi)
    return beta * rlhf.log_partition(ref, r, beta) + beta * kl(logpi, ref) - 0.5


def _dynamics(P, logp_ref, beta, eta, steps, logpi0, extragradient):
    beta = check_positive("beta", beta)
    eta = check_positive("eta", eta)
    steps = check_int("steps", steps, low=0)
    P, logp_ref = _check_game(P, logp_ref)
    logpi = logp_ref.clone() if logpi0 is None else _as_tensor(logpi0).to(torch.float64)
    check_log_probs("logpi0", logpi)
    ref = logp_ref.expand_as(logpi)
    path = [logpi]
    with one_thread():
        for _ in range(steps):
            opponent = logpi
            if extragradient:   # the leading half step: play against the current policy, then look again
                opponent = _mirror_step(logpi, logpi.exp() @ P.T, eta, "reverse", beta, ref)
            logpi = _mirror_step(logpi, opponent.exp() @ P.T, eta, "reverse", beta, ref)
            path.append(logpi)
    return torch.stack(path)


def mirror_descent(P, logp_ref, beta: float, eta: float, steps: int, *, logpi0=None) -> torch.Tensor:
    r"""Self-play mirror descent in the regularised game: one KL-prox step against the current policy.

    .. math::
        \pi_{k+1} = \arg\max_\pi\ \eta\, P(\pi\succ\pi_k) - \eta\beta\,\mathrm{KL}(\pi\|\pi_{ref}) - \mathrm{KL}(\pi\|\pi_k)

    (:func:`kllab.maths.online.mirror_step` with reward :math:`P\pi_k`). Linearly convergent only for
    η small against β; otherwise it spirals out to a cycle around :math:`\pi^*` (see
    :func:`linear_rates`). Starts at ``logpi0`` (default: the reference).

    Parameters
    ----------
    P : Tensor, shape (K, K)
    logp_ref : Tensor, shape (..., K)
    beta, eta : float > 0
    steps : int >= 0
    logpi0 : Tensor, shape (..., K), optional

    Returns
    -------
    Tensor, shape (steps + 1, ..., K)
        log π_0, ..., log π_steps.

    >>> P = cyclic_preference(3); ref = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64).log()
    >>> mirror_descent(P, ref, 0.1, 1.0, 5).shape
    torch.Size([6, 3])
    """
    return _dynamics(P, logp_ref, beta, eta, steps, logpi0, extragradient=False)


def mirror_prox(P, logp_ref, beta: float, eta: float, steps: int, *, logpi0=None) -> torch.Tensor:
    r"""Nash mirror prox: a KL-prox half step against the current policy, then the real step against the half step.

    .. math::
        \pi_{k+1/2} &= \arg\max_\pi\ \eta\, P(\pi\succ\pi_k) - \eta\beta\,\mathrm{KL}(\pi\|\pi_{ref}) - \mathrm{KL}(\pi\|\pi_k) \\
        \pi_{k+1} &= \arg\max_\pi\ \eta\, P(\pi\succ\pi_{k+1/2}) - \eta\beta\,\mathrm{KL}(\pi\|\pi_{ref}) - \mathrm{KL}(\pi\|\pi_k)

    Two preference queries per iteration. For :math:`\eta \le 2` (η L ≤ 1 with L = ½ the Lipschitz
    constant of :math:`\pi \mapsto P\pi` from ℓ1 to ℓ∞),
    :math:`\mathrm{KL}(\pi^*\|\pi_k) \le (1+\eta\beta)^{-k}\,\mathrm{KL}(\pi^*\|\pi_0)`, whatever the
    number of actions; at η = 2 and N = 2k queries this is the :math:`(1+2\beta)^{-N/2}` of
    Tiapkin et al. (2025). Starts at ``logpi0`` (default: the reference).

    Parameters and returns as :func:`mirror_descent`.

    >>> P = cyclic_preference(3); ref = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64).log()
    >>> star = regularized_nash(P, ref, 0.1); path = mirror_prox(P, ref, 0.1, 2.0, 30)
    >>> bool((kl(star.expand_as(path), path) <= kl_bound(kl(star, ref), 0.1, 2.0, 30) + 1e-15).all())
    True
    """
    return _dynamics(P, logp_ref, beta, eta, steps, logpi0, extragradient=True)


def kl_bound(kl0, beta: float, eta: float, steps: int) -> torch.Tensor:
    r"""The mirror-prox contraction :math:`\mathrm{KL}_0\,(1+\eta\beta)^{-k}` for k = 0..steps.

    >>> [round(v, 4) for v in kl_bound(1.0, 0.5, 2.0, 2).tolist()]
    [1.0, 0.5, 0.25]
    """
    beta = check_positive("beta", beta)
    eta = check_positive("eta", eta)
    steps = check_int("steps", steps, low=0)
    k = torch.arange(steps + 1, dtype=torch.float64)
    return torch.as_tensor(kl0, dtype=torch.float64) * torch.exp(-k * math.log1p(eta * beta))


def span(logpi, logp_star) -> torch.Tensor:
    r"""Span semi-norm of the log-ratio, :math:`\max_y \log\frac{\pi(y)}{\pi^*(y)} - \min_y \log\frac{\pi(y)}{\pi^*(y)}`, per example.

    Blind to normalisation constants, zero iff π = π*; it sees every action alike, however rare.

    >>> round(span(torch.tensor([0.5, 0.5]).log(), torch.tensor([0.8, 0.2]).log()).item(), 6) == round(math.log(4), 6)
    True
    """
    d = _as_tensor(logpi) - _as_tensor(logp_star)
    return d.amax(-1) - d.amin(-1)


def mode_frequencies(P, logp_ref, beta: float, *, logp_star=None) -> np.ndarray:
    r"""The rotation frequencies |ω| of the game's K - 1 directions at the equilibrium, largest first.

    The eigenvalues of :math:`AS`, with :math:`A = P - \tfrac12` and :math:`S = \mathrm{diag}(\pi^*) -
    \pi^*\pi^{*\top}`, are those of the antisymmetric :math:`S^{1/2} A S^{1/2}`: imaginary,
    :math:`\pm i\omega`; the constant direction (a change of normalisation, not of policy) is dropped. Every
    :math:`|\omega| \le \tfrac12`, because :math:`|u^\top A u'| \le \tfrac12\|u\|_1\|u'\|_1` for
    zero-sum u, u' and :math:`\|S\delta\|_1^2 \le \delta^\top S\delta`. They depend on the game and on
    β, not on the step size. Pass ``logp_star`` (from :func:`regularized_nash`) to skip the solve.

    >>> w = mode_frequencies(cyclic_preference(3), torch.full((3,), 1 / 3, dtype=torch.float64).log(), 1e3)
    >>> [round(v, 4) for v in w.tolist()]    # pi* ~ uniform: omega = sqrt(3) / 6
    [0.2887, 0.2887]
    """
    beta = check_positive("beta", beta)
    P, logp_ref = _check_game(P, logp_ref)
    star = regularized_nash(P, logp_ref, beta) if logp_star is None else _as_tensor(logp_star).to(torch.float64)
    pi = star.exp().numpy()
    # Work on the zero-sum directions (an orthonormal basis Q of the complement of the constant vector, which
    # is only a change of normalisation): there S is positive definite and AS acts as S_Q Q^T A Q, with the
    # eigenvalues of the real antisymmetric S_Q^(1/2) Q^T A Q S_Q^(1/2). Times i it is Hermitian, with the
    # real eigenvalues +-omega, computed stably even where AS is not diagonalisable (a still direction).
    Q = null_space(np.ones((1, len(pi))))
    w, v = np.linalg.eigh(Q.T @ (np.diag(pi) - np.outer(pi, pi)) @ Q)
    root_s = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    omega = np.linalg.eigvalsh(1j * (root_s @ (Q.T @ (P.numpy() - 0.5) @ Q) @ root_s))
    return np.sort(np.abs(omega))[::-1]


def contraction_rates(omega, beta: float, eta: float) -> dict[str, float]:
    r"""Per-iteration contraction of log-probability errors near :math:`\pi^*`, from the rotation frequencies ω.

    .. math::
        \rho_{\rm MD} = \max_\omega \frac{\sqrt{1+\eta^2\omega^2}}{1+\eta\beta}, \qquad
        \rho_{\rm MP} = \max_\omega \frac{\sqrt{(1+\eta\beta-\eta^2\omega^2)^2+\eta^2\omega^2}}{(1+\eta\beta)^2}

    See :func:`linear_rates`; ``omega`` is :func:`mode_frequencies` of the game at this β.

    >>> r = contraction_rates([0.0], 0.5, 2.0)     # a direction the game does not rotate
    >>> r["mirror_descent"], r["mirror_prox"]
    (0.5, 0.5)
    """
    beta = check_positive("beta", beta)
    eta = check_positive("eta", eta)
    x = eta * np.asarray(omega, dtype=float)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"omega must be a non-empty 1-D array of finite frequencies; got {omega!r}")
    md = np.sqrt(1 + x ** 2) / (1 + eta * beta)
    mp = np.sqrt((1 + eta * beta - x ** 2) ** 2 + x ** 2) / (1 + eta * beta) ** 2
    return {"mirror_descent": float(md.max()), "mirror_prox": float(mp.max())}


def linear_rates(P, logp_ref, beta: float, eta: float) -> dict[str, float]:
    r"""Linear-stability theory at :math:`\pi^*`: the per-iteration contraction of log-probability errors.

    Near the equilibrium an error δ in log π moves by :math:`\delta \mapsto M\delta` (up to
    constants). With :math:`S = \mathrm{diag}(\pi^*) - \pi^*\pi^{*\top}` (the softmax Jacobian) and the
    antisymmetric :math:`A = P - \tfrac12`,

    .. math::
        M_{\rm MD} = \frac{I + \eta AS}{1+\eta\beta}, \qquad
        M_{\rm MP} = \frac{I + \eta AS\,(I + \eta AS)/(1+\eta\beta)}{1+\eta\beta},

    and a direction rotating at ω (:func:`mode_frequencies`) contracts by
    :math:`\sqrt{1+\eta^2\omega^2}/(1+\eta\beta)` under mirror descent (unstable when
    :math:`\eta\omega^2 > 2\beta + \eta\beta^2`) and by
    :math:`\sqrt{(1+\eta\beta-\eta^2\omega^2)^2+\eta^2\omega^2}/(1+\eta\beta)^2` under mirror prox
    (:func:`contraction_rates`). For η ≤ 2 (so ηω ≤ 1) the latter is never slower than
    :math:`1/(1+\eta\beta)`, which a direction with ω = 0 reaches (one exists whenever K is even).
    KL(π*‖π_k) shrinks by the square of the rate.

    Returns
    -------
    dict with "mirror_descent" and "mirror_prox": spectral radii, per iteration.

    >>> r = linear_rates(cyclic_preference(3), torch.full((3,), 1 / 3, dtype=torch.float64).log(), 0.02, 1.0)
    >>> r["mirror_descent"] > 1 > r["mirror_prox"]
    True
    """
    return contraction_rates(mode_frequencies(P, logp_ref, beta), beta, eta)
