"""Comp-sum surrogates: the losses against torch and closed forms, the conditional infimum against a numerical
minimisation (SciPy) and finite differences, CE regret = KL (SciPy's rel_entr), the Pinsker and MAE bounds,
the reverse-KL surrogate, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import entr, log_softmax as sp_log_softmax, rel_entr, softmax as sp_softmax

from kllab.maths import surrogates as S

pytestmark = pytest.mark.usefixtures("float64")

TAUS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


def draws(seed, n=200, k=4, scale=2.0, eta_scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    logeta = torch.log_softmax(eta_scale * torch.randn(n, k, generator=gen), -1)
    logits = scale * torch.randn(n, k, generator=gen)
    return logeta, logits


# ---- the losses -----------------------------------------------------------------------------------------------

def test_cross_entropy_is_tau_one_against_torch():
    _, logits = draws(0)
    labels = torch.randint(0, 4, (200,), generator=torch.Generator().manual_seed(1))
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(S.comp_sum_loss(logits, labels, 1.0), ce, rtol=0, atol=1e-12)


def test_named_members_of_the_family_against_closed_forms():
    _, logits = draws(2)
    labels = torch.randint(0, 4, (200,), generator=torch.Generator().manual_seed(3))
    hy = logits.gather(-1, labels[:, None])
    others = torch.ones_like(logits, dtype=torch.bool).scatter(-1, labels[:, None], False)
    u = torch.where(others, torch.exp(logits - hy), torch.zeros(())).sum(-1)     # sum_{y' != y} e^{h_y' - h_y}
    p_y = torch.softmax(logits, -1).gather(-1, labels[:, None])[:, 0]
    torch.testing.assert_close(S.comp_sum_loss(logits, labels, 0.0), u, rtol=1e-12, atol=0)          # sum-exponential
    torch.testing.assert_close(S.comp_sum_loss(logits, labels, 2.0), 1 - p_y, rtol=0, atol=1e-12)    # MAE
    gce = (1 - p_y ** 0.5) / 0.5                                                                       # GCE, q = 0.5
    torch.testing.assert_close(S.comp_sum_loss(logits, labels, 1.5), gce, rtol=0, atol=1e-12)
    for tau in TAUS:   # Phi_tau of u, from its definition
        phi = torch.log1p(u) if tau == 1.0 else ((1 + u) ** (1 - tau) - 1) / (1 - tau)
        torch.testing.assert_close(S.comp_sum_loss(logits, labels, tau), phi, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(S.comp_sum_phi(u, tau), phi, rtol=1e-10, atol=1e-12)


def test_the_family_is_continuous_at_tau_one():
    _, logits = draws(4)
    labels = torch.zeros(200, dtype=torch.long)
    ce = S.comp_sum_loss(logits, labels, 1.0)
    for d in (1e-7, -1e-7):
        torch.testing.assert_close(S.comp_sum_loss(logits, labels, 1.0 + d), ce, rtol=1e-5, atol=1e-9)


def test_phi_derivative_by_finite_differences():
    u = torch.linspace(0.5, 5.0, 10)
    h = 1e-6
    for tau in TAUS:
        fd = (S.comp_sum_phi(u + h, tau) - S.comp_sum_phi(u - h, tau)) / (2 * h)
        torch.testing.assert_close(fd, (1 + u) ** (-tau), rtol=1e-7, atol=1e-9)   # Phi'(u) = (1 + u)^(-tau)


# ---- conditional risks, infima, regrets -------------------------------------------------------------------------

def test_conditional_risk_is_the_eta_average_of_the_losses():
    logeta, logits = draws(5, n=20, k=3)
    for tau in TAUS:
        by_label = torch.stack([S.comp_sum_loss(logits, torch.full((20,), y), tau) for y in range(3)], -1)
        torch.testing.assert_close(S.comp_sum_conditional_risk(logeta, logits, tau),
                                   (logeta.exp() * by_label).sum(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 1.5, 1.75])
def test_bayes_risk_and_minimiser_against_scipy_minimisation(tau):
    logeta, _ = draws(6, n=6, k=4, eta_scale=1.0)
    best = S.comp_sum_bayes_risk(logeta, tau)
    qstar = S.comp_sum_minimiser(logeta, tau)
    for i in range(6):
        eta = logeta[i].exp().numpy()

        def risk(h):
            lq = sp_log_softmax(h)
            return float(np.sum(eta * (-lq if tau == 1.0 else -np.expm1((tau - 1) * lq) / (tau - 1))))

        res = minimize(risk, logeta[i].numpy(), method="BFGS", options={"gtol": 1e-12, "maxiter": 5000})
        assert res.fun == pytest.approx(best[i].item(), abs=1e-8)
        np.testing.assert_allclose(sp_softmax(res.x), qstar[i].exp().numpy(), atol=1e-4)
        # the closed-form minimiser is a stationary point of the risk in the logits (central differences)
        h0 = qstar[i].numpy()
        grad = [(risk(h0 + 1e-6 * e) - risk(h0 - 1e-6 * e)) / 2e-6 for e in np.eye(4)]
        assert np.abs(grad).max() < 1e-7
        assert risk(h0) == pytest.approx(best[i].item(), abs=1e-12)


@pytest.mark.parametrize("tau", [2.0, 3.0])
def test_bayes_risk_for_tau_at_least_two_is_the_best_vertex(tau):
    logeta, _ = draws(7, n=50, k=5)
    eta = logeta.exp()
    # risk of a softmax that tends to the vertex of the arg max of eta
    vertex = 40.0 * torch.nn.functional.one_hot(eta.argmax(-1), 5).double()
    torch.testing.assert_close(S.comp_sum_conditional_risk(logeta, vertex, tau), S.comp_sum_bayes_risk(logeta, tau),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(S.comp_sum_bayes_risk(logeta, tau), (1 - eta.amax(-1)) / (tau - 1), rtol=0, atol=1e-15)
    # and no random score vector does better
    _, logits = draws(8, n=50, k=5, scale=5.0)
    assert (S.comp_sum_regret(logeta, logits, tau) >= -1e-12).all()


def test_bayes_risk_closed_forms_at_tau_zero_and_one():
    logeta, _ = draws(9, n=100, k=5)
    eta = logeta.exp()
    torch.testing.assert_close(S.comp_sum_bayes_risk(logeta, 1.0), torch.as_tensor(entr(eta.numpy()).sum(-1)),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(S.comp_sum_bayes_risk(logeta, 0.0), eta.sqrt().sum(-1) ** 2 - 1, rtol=1e-12, atol=1e-12)
    # continuity in tau across 1 and towards 2
    torch.testing.assert_close(S.comp_sum_bayes_risk(logeta, 1.0 + 1e-6), S.comp_sum_bayes_risk(logeta, 1.0),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(S.comp_sum_bayes_risk(logeta, 2.0 - 1e-3), S.comp_sum_bayes_risk(logeta, 2.0),
                               rtol=0, atol=0.05)


def test_cross_entropy_regret_is_the_forward_kl_against_scipy():
    logeta, logits = draws(10, n=500, k=6)
    regret = S.comp_sum_regret(logeta, logits, 1.0)
    q = torch.softmax(logits, -1)
    oracle = torch.as_tensor(rel_entr(logeta.exp().numpy(), q.numpy()).sum(-1))
    torch.testing.assert_close(regret, oracle, rtol=0, atol=1e-12)
    # the reverse KL is a different number: the identity picks the direction
    reverse = torch.as_tensor(rel_entr(q.numpy(), logeta.exp().numpy()).sum(-1))
    assert (regret - reverse).abs().max() > 0.1


def test_regret_vanishes_at_the_minimiser_and_is_nonnegative():
    logeta, logits = draws(11, n=300, k=4)
    for tau in TAUS:
        assert (S.comp_sum_regret(logeta, logits, tau) >= -1e-12).all()
        if tau < 2:
            at_min = S.comp_sum_regret(logeta, S.comp_sum_minimiser(logeta, tau), tau)
            assert at_min.abs().max() < 1e-12
            # the minimiser keeps the arg max of eta: every tau < 2 is classification-calibrated
            assert torch.equal(S.comp_sum_minimiser(logeta, tau).argmax(-1), logeta.argmax(-1))


def test_zero_eta_entries_are_allowed():
    logeta = torch.tensor([[0.0, -math.inf, -math.inf], [math.log(0.5), math.log(0.5), -math.inf]])
    logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0]])
    for tau in TAUS:
        r = S.comp_sum_regret(logeta, logits, tau)
        assert torch.isfinite(r).all() and (r >= -1e-12).all()
    torch.testing.assert_close(S.zero_one_regret(logeta, logits), torch.tensor([1.0, 0.5]))


# ---- the 0-1 regret and its bounds -----------------------------------------------------------------------------

def test_zero_one_regret_against_a_loop():
    logeta, logits = draws(12, n=50, k=5)
    eta = logeta.exp().numpy()
    expect = [eta[i].max() - eta[i][int(np.argmax(logits[i].numpy()))] for i in range(50)]
    np.testing.assert_allclose(S.zero_one_regret(logeta, logits).numpy(), expect, atol=1e-15)


def test_pinsker_bound_holds_and_is_tight_for_two_classes():
    logeta, logits = draws(13, n=20000, k=5, scale=1.0, eta_scale=1.0)
    zo = S.zero_one_regret(logeta, logits)
    tv2 = (logeta.exp() - torch.softmax(logits, -1)).abs().sum(-1)         # 2 TV
    bound = S.pinsker_zero_one_bound(S.comp_sum_regret(logeta, logits, 1.0))
    assert (zo <= tv2 + 1e-12).all() and (tv2 <= bound + 1e-12).all()
    # K = 2, eta = (1/2 + e, 1/2 - e), h slightly favouring class 1: ratio -> 1 as e -> 0
    e = 1e-3
    le = torch.tensor([[math.log(0.5 + e), math.log(0.5 - e)]])
    h = torch.tensor([[0.0, 1e-9]])
    ratio = (S.zero_one_regret(le, h) / S.pinsker_zero_one_bound(S.comp_sum_regret(le, h, 1.0))).item()
    assert 0.99 < ratio <= 1.0
    # dropping the factor 2 breaks the bound on these draws
    assert (zo > torch.sqrt(S.comp_sum_regret(logeta, logits, 1.0))).any()


def test_mae_bound_holds():
    for k in (2, 3, 7):
        logeta, logits = draws(14 + k, n=5000, k=k, scale=3.0)
        zo = S.zero_one_regret(logeta, logits)
        assert (zo <= S.mae_zero_one_bound(S.comp_sum_regret(logeta, logits, 2.0), k) + 1e-12).all()


# ---- the reverse-KL surrogate ----------------------------------------------------------------------------------

def test_reverse_kl_loss_against_scipy_and_its_conditional_identities():
    logeta, logits = draws(20, n=300, k=4)
    labels = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(21))
    eps = 0.2
    target = (1 - eps) * torch.nn.functional.one_hot(labels, 4).double() + eps / 4
    q = torch.softmax(logits, -1)
    oracle = torch.as_tensor(rel_entr(q.numpy(), target.numpy()).sum(-1))
    torch.testing.assert_close(S.reverse_kl_loss(logits, labels, eps), oracle, rtol=0, atol=1e-12)
    # regret = KL(q || softmax(c eta)), with c = log(1 + K (1 - eps) / eps)
    c = math.log(1 + 4 * (1 - eps) / eps)
    lstar = torch.log_softmax(c * logeta.exp(), -1)
    torch.testing.assert_close(S.reverse_kl_minimiser(logeta, eps), lstar)
    kl_q = torch.as_tensor(rel_entr(q.numpy(), lstar.exp().numpy()).sum(-1))
    torch.testing.assert_close(S.reverse_kl_regret(logeta, logits, eps), kl_q, rtol=0, atol=1e-12)
    # the minimiser keeps the arg max but is not eta (not proper)
    assert torch.equal(lstar.argmax(-1), logeta.argmax(-1))
    assert (lstar.exp() - logeta.exp()).abs().max() > 0.05


def test_reverse_kl_infimum_against_scipy_minimisation():
    logeta, _ = draws(22, n=4, k=3, eta_scale=1.0)
    eps = 0.1
    for i in range(4):
        def risk(h):
            return S.reverse_kl_conditional_risk(logeta[i], torch.as_tensor(h), eps).item()
        res = minimize(risk, np.zeros(3), method="BFGS", options={"gtol": 1e-10})
        regret_at_opt = S.reverse_kl_regret(logeta[i], torch.as_tensor(res.x), eps).item()
        assert abs(regret_at_opt) < 1e-9


# ---- shapes and bad input -------------------------------------------------------------------------------------

def test_shapes():
    logeta, logits = draws(30, n=12, k=3)
    logeta, logits = logeta.reshape(3, 4, 3), logits.reshape(3, 4, 3)
    for f in (lambda: S.comp_sum_regret(logeta, logits, 1.5), lambda: S.zero_one_regret(logeta, logits),
              lambda: S.reverse_kl_regret(logeta, logits, 0.1), lambda: S.comp_sum_bayes_risk(logeta, 0.0)):
        assert f().shape == (3, 4)
    assert S.comp_sum_loss(logits, torch.zeros(3, 4, dtype=torch.long), 0.5).shape == (3, 4)


def test_bad_input():
    logeta, logits = draws(31, n=5, k=3)
    labels = torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValueError, match=r"tau must be >= 0; got -0.5"):
        S.comp_sum_loss(logits, labels, -0.5)
    with pytest.raises(ValueError, match="tau must be a finite"):
        S.comp_sum_regret(logeta, logits, math.nan)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]"):
        S.comp_sum_loss(logits, torch.full((5,), 3), 1.0)
    with pytest.raises(ValueError, match="labels must have shape"):
        S.comp_sum_loss(logits, torch.zeros(4, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="labels must be an integer"):
        S.comp_sum_loss(logits, torch.zeros(5), 1.0)
    with pytest.raises(ValueError, match="logeta must be log-probabilities"):
        S.comp_sum_regret(logeta.exp(), logits, 1.0)
    with pytest.raises(ValueError, match="logeta and logits must have the same shape"):
        S.comp_sum_regret(logeta, logits[:, :2], 1.0)
    bad = logits.clone(); bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="logits must not contain NaN"):
        S.zero_one_regret(logeta, bad)
    bad[0, 0] = math.inf
    with pytest.raises(ValueError, match="logits must be finite"):
        S.comp_sum_conditional_risk(logeta, bad, 1.0)
    with pytest.raises(ValueError, match=r"smoothing must be > 0; got 0.0"):
        S.reverse_kl_loss(logits, labels, 0.0)
    with pytest.raises(ValueError, match=r"smoothing must be <= 1; got 1.5"):
        S.reverse_kl_regret(logeta, logits, 1.5)
    with pytest.raises(ValueError, match="u must be >= 0"):
        S.comp_sum_phi(torch.tensor([-1.0]), 1.0)
    with pytest.raises(ValueError, match="ce_regret must be >= 0"):
        S.pinsker_zero_one_bound(torch.tensor([-0.1]))
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        S.mae_zero_one_bound(torch.tensor([0.1]), 1)
