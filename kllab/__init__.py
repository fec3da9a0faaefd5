"""kllab: learn, teach and explore the Kullback-Leibler divergence and its relatives.

Modules (one concept each): :mod:`~kllab.divergences`, :mod:`~kllab.distributions`,
:mod:`~kllab.fitting`, :mod:`~kllab.distill`, :mod:`~kllab.rlhf`, :mod:`~kllab.width`,
:mod:`~kllab.plots`, :mod:`~kllab.widgets`, :mod:`~kllab.catalog`, :mod:`~kllab.runner`.
The numerics never import plotly or ipywidgets; only ``plots`` and ``widgets`` do.

Math order everywhere: ``f(p, q)`` is D(p‖q), with p the reference (data, teacher,
target) and q the model. ``direction="forward"`` is KL(p‖q), ``"reverse"`` is KL(q‖p).
"""

__version__ = "0.1.0"
