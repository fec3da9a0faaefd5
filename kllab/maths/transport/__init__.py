r"""Optimal transport: Sinkhorn (entropic OT), its debiased divergence, exact OT, and 1-D closed forms.

Math order, as everywhere in kllab: ``f(logp, logq, ...)`` compares the reference p (teacher, target,
data) with the model q (student, generator). Distributions are log-probabilities on the last axis
(``-inf`` is a legal log-probability), placed at points whose pairwise ground cost is a matrix
:math:`C_{ij} = c(x_i, y_j)`, ``cost[..., i, j]`` with i indexing p and j indexing q. Results are
per example (no hidden reductions).

* **Exact OT** (:func:`exact_ot`, a wrapper of POT's ``ot.emd2``) and, on the line, its closed forms:
  :func:`w1_1d` from the distribution functions, :func:`w2_to_gaussian` from the quantile functions.
* **Entropic OT** (:func:`sinkhorn`): :math:`\mathrm{OT}_\varepsilon(p, q) = \min_{P \in U(p, q)}
  \langle P, C\rangle + \varepsilon\,\mathrm{KL}(P \| p \otimes q)`, solved by Sinkhorn's iterations on a
  stabilised kernel (potentials absorbed, ε-scaling from a cold start), in the log domain if that ever fails:
  stable for any ε. Its value differentiates by the envelope theorem (gradient
  :math:`f` in p, :math:`g` in q, :math:`P` in the cost), so training never backpropagates through
  the iterations. POT's ``ot.sinkhorn2(..., method="sinkhorn_log")`` solves the same problem one pair
  at a time; this one is batched over leading axes and takes log-probabilities. The tests check the two
  agree.
* **The Sinkhorn divergence** (:func:`sinkhorn_divergence`, and :class:`SinkhornDivergence`, the same as a
  warm-started loss for training loops), debiased:
  :math:`S_\varepsilon(p, q) = \mathrm{OT}_\varepsilon(p, q) - \tfrac12\mathrm{OT}_\varepsilon(p, p) -
  \tfrac12\mathrm{OT}_\varepsilon(q, q)`, with :math:`S_\varepsilon(p, p) = 0`, tending to exact OT as
  ε → 0 and to half an MMD as ε → ∞.
* **Gaussians** in closed form: :func:`w2_gaussian` (Bures), :func:`entropic_ot_gaussian`,
  :func:`sinkhorn_divergence_gaussian`, and the W2 projection of a 1-D mixture onto the Gaussians,
  :func:`w2_gaussian_projection` (quantile matching).
* **A generator trained by OT**: :func:`train_affine_ot` fits :math:`x = \mu + \sigma z` to a teacher by
  the Sinkhorn divergence, and/or a KL term: reverse (the DMD gradient of :mod:`kllab.maths.matching`) or
  forward (maximum likelihood on the teacher's points); :func:`monge_map_1d` and :func:`barycentric_map` say
  where OT pushes each sample.

References: M. Cuturi, *Sinkhorn Distances: Lightspeed Computation of Optimal Transport*, NeurIPS 2013,
arXiv:1306.0895; G. Peyré, M. Cuturi, *Computational Optimal Transport*, 2019, arXiv:1803.00567;
J. Feydy et al., *Interpolating between Optimal Transport and MMD using Sinkhorn Divergences*, AISTATS
2019, arXiv:1810.08278; H. Janati et al., *Entropic Optimal Transport between Unbalanced Gaussian
Measures has a Closed Form*, NeurIPS 2020, arXiv:2006.02572.
"""

from .exact import exact_ot, w1_1d
from .gaussian import w2_gaussian, entropic_ot_gaussian, sinkhorn_divergence_gaussian, w2_to_gaussian, w2_gaussian_projection, monge_map_1d
from .generators import quantile_points, AffineRun, train_affine_ot
from .sinkhorn import cost_matrix, SinkhornResult, sinkhorn, entropic_ot, sinkhorn_divergence, SinkhornDivergence, barycentric_map

__all__ = ["cost_matrix", "SinkhornResult", "sinkhorn", "entropic_ot", "sinkhorn_divergence", "SinkhornDivergence", "exact_ot", "w1_1d", "w2_gaussian", "entropic_ot_gaussian", "sinkhorn_divergence_gaussian", "w2_to_gaussian", "w2_gaussian_projection", "monge_map_1d", "barycentric_map", "quantile_points", "AffineRun", "train_affine_ot"]
