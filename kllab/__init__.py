"""kllab: learn, teach and explore the Kullback-Leibler divergence and its relatives.

Modules (one concept each). Numerics: :mod:`~kllab.divergences`, :mod:`~kllab.distributions`,
:mod:`~kllab.fitting`, :mod:`~kllab.distill`, :mod:`~kllab.rlhf`, :mod:`~kllab.width`,
:mod:`~kllab.kernels`, :mod:`~kllab.matching`, :mod:`~kllab.sequences`. Presentation:
:mod:`~kllab.plots`, :mod:`~kllab.widgets`, :mod:`~kllab.gallery`. Running: :mod:`~kllab.catalog`,
:mod:`~kllab.runner`, :mod:`~kllab.record`, :mod:`~kllab.sweep`, :mod:`~kllab.execution`,
:mod:`~kllab.dashboard`, :mod:`~kllab.nbtools`, :mod:`~kllab.cli`.
The numerics never import plotly or ipywidgets; only ``plots`` and ``widgets`` do.

Math order everywhere: ``f(p, q)`` is D(p‖q), with p the reference (data, teacher,
target) and q the model. ``direction="forward"`` is KL(p‖q), ``"reverse"`` is KL(q‖p).
"""

__version__ = "0.1.0"
