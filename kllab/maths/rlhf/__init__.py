r"""KL-regularised policy optimisation on a finite set of answers: optima, estimators, best-of-n.

The reference policy π_ref is the reference p, the trained policy π the model q (math order
``f(p, q)`` = D(p‖q), as everywhere in kllab). The usual RLHF objective uses the reverse KL,

.. math::
    J_\beta(\pi) = \mathbb{E}_{\pi}[r] - \beta\,\mathrm{KL}(\pi \,\|\, \pi_{ref}),

whose maximiser is the Gibbs policy :math:`\pi^* \propto \pi_{ref}\, e^{r/\beta}`
(Korbak et al., 2022). With the forward KL, :math:`\mathbb{E}_\pi[r] - \beta\,\mathrm{KL}(\pi_{ref}\|\pi)`,
the stationarity condition gives :math:`\pi^*(y) = \beta\,\pi_{ref}(y)/(\Lambda - r(y))` with
Λ > max r fixed by normalisation (a 1-D solve; Deng et al., 2025).

One module per concept:

``optima``
    :func:`kl_regularized_policy` (both optima), :func:`objective`, :func:`log_partition`,
    :func:`kl_prior_fit` (cross-entropy to data plus a KL prior, minimised exactly: the
    fine-tuning step of SuperHF), and gradient-based routes to the same optima,
    :func:`fit_policy` and :func:`minimise_softmax`.
``estimators``
    Schulman's per-sample estimators :func:`kl_estimators` (k1, k2, k3), their exact moments
    (:func:`estimator_moments`), Monte-Carlo draws (:func:`sample_estimates`) and their exact
    expected gradients when used as a loss or as a reward (:func:`estimator_gradients`),
    with the closed-form KL gradients of a softmax policy (:func:`kl_gradients`).
``best_of_n``
    The best-of-n distribution of a discrete policy (:func:`best_of_n`), its KL bound
    :math:`\log n - (n-1)/n` (:func:`best_of_n_kl_bound`), and iterated best-of-n
    fine-tuning with a KL prior (:func:`superhf_rounds`).
``policy_gradient``
    Policy-gradient training of a tabular softmax policy on reward minus a KL term built from
    an estimator (:func:`kl_penalized_training`), sampled (leave-one-out baseline) or with exact
    expected gradients: the KDRL update.
"""

from .best_of_n import best_of_n, best_of_n_kl_bound, superhf_rounds
from .estimators import ESTIMATORS, estimator_gradients, estimator_moments, kl_estimators, kl_gradients, sample_estimates
from .optima import fit_policy, kl_prior_fit, kl_regularized_policy, log_partition, minimise_softmax, objective
from .policy_gradient import TrainingRun, kl_penalized_training

__all__ = [
    "kl_regularized_policy", "objective", "log_partition", "kl_estimators", "fit_policy",
    "minimise_softmax", "kl_prior_fit",
    "ESTIMATORS", "estimator_moments", "sample_estimates", "estimator_gradients", "kl_gradients",
    "best_of_n", "best_of_n_kl_bound", "superhf_rounds",
    "TrainingRun", "kl_penalized_training",
]
