r"""Online learning on the probability simplex: mirror steps and FTRL, named by the divergence they pay for moving.

Every update here moves a policy :math:`p_t` along a reward (minus a loss) and pays a divergence for
moving. Three divergences between the new point p and the anchor :math:`p_t` (the reference, as the
first argument of ``kl``, is the anchor):

===================  ==========================================  ==========================================
``divergence``       proximity term                              regulariser whose Bregman divergence it is
===================  ==========================================  ==========================================
``"reverse"``        :math:`\mathrm{KL}(p\|p_t)`                 entropy :math:`\sum_i p_i\log p_i` (Hedge, Exp3)
``"forward"``        :math:`\mathrm{KL}(p_t\|p)`                 :math:`-\sum_i p_{t,i}\log p_i`, which moves with :math:`p_t`
``"itakura_saito"``  :math:`\sum_i p_i/p_{t,i} - \log(p_i/p_{t,i}) - 1`  log-barrier :math:`-\sum_i \log p_i`
===================  ==========================================  ==========================================

The reverse KL is mode-seeking: its steps are multiplicative, :math:`p_{t+1} \propto p_t e^{-\eta\hat\ell}`,
and let rare arms fade without limit. The forward KL is mass-covering: it is infinite when p drops an arm
:math:`p_t` still plays, a barrier, but one weighted by :math:`p_t`, so it guards rare arms weakly.
Itakura-Saito is the Bregman divergence of the log-barrier (Dai, Luo, Wei, Zimmert, 2023,
arXiv:2301.12942): a barrier with the same strength for every arm.

:func:`mirror_step` is the one update shared by the bandits of this module and the preference games of
:mod:`kllab.maths.games`; its reverse-KL case is the Gibbs policy
:func:`kllab.maths.rlhf.kl_regularized_policy` with a moved reference. :func:`ftrl` is
follow-the-regularised-leader, for the two fixed regularisers (:data:`REGULARIZER`); on the simplex it
coincides with the reverse-KL or Itakura-Saito mirror steps applied one after the other. :func:`bregman`
and :func:`regularizer` make the Bregman-divergence link explicit.

For bandits, :func:`loss_estimate` builds importance-weighted loss estimates, optionally shifted so that
they can be very negative; :func:`stability` is the exact worst-case cost of one round in the regret
decomposition; :func:`play_bandit` runs the three updates on stochastic K-armed bandits and records what
the regret bound needs; :func:`regret_bound` and :func:`tuned_eta` are the closed forms.
"""

from .bandits import loss_estimate, stability, BanditRun, play_bandit, barrier_penalty, regret_bound, tuned_eta
from .mirror import DIVERGENCES, REGULARIZERS, REGULARIZER, regularizer, bregman, mirror_step, ftrl, one_thread, _mirror_step

__all__ = ["DIVERGENCES", "REGULARIZERS", "REGULARIZER", "regularizer", "bregman", "mirror_step", "ftrl", "loss_estimate", "stability", "one_thread", "BanditRun", "play_bandit", "barrier_penalty", "regret_bound", "tuned_eta"]
