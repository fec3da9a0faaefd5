"""kllab: learn, teach and explore the Kullback-Leibler divergence and its relatives.

Three layers, one subpackage each; a layer imports only the layers above it in this list.

``kllab.maths``
    The numerics: torch, NumPy, SciPy, POT and scikit-learn only, one module per concept shared
    between papers: ``divergences``, ``distributions``, ``fitting``, ``optim`` (the one Adam),
    ``distill/``, ``calibration``, ``curriculum``, ``ranking``, ``fusion``, ``consistency``,
    ``clustering``, ``ensemble``, ``transport/``, ``matching``, ``rlhf/``, ``soups``, ``online/``,
    ``games``, ``robust``, ``adversarial``, ``width``, ``kernels``, ``sequences/``, ``attribution``,
    ``adaptation``, ``detection``, ``survival``, ``surrogates``, ``margins``, ``confusion``, ``generative``,
    ``kde`` (the one KDE), ``cauchy_schwarz``, ``expfamily``, ``universal``, ``information``, ``quadratic``,
    ``deep_kernels``, ``scaling``, ``natural_gradient``, ``symmetry``, ``attention``, ``linear_dynamics``,
    ``spectral``, ``landscape``; plus
    ``validation`` (the checks behind every "NAME must be ...; got ..." message). A new paper's numerics go into the module of their
    concept, or a new module named after the concept (never after the paper); their tests go
    into ``tests/maths/test_<module>.py``.
``kllab.ui``
    The presentation: plotly and ipywidgets. ``plots`` (figure builders), ``widgets`` (the knob
    panel), ``gallery`` (the landing page's cards).
``kllab.harness``
    The notebook machinery: Jupyter, papermill, Voila, Dask. ``catalog`` (the 44 papers, from
    ``catalog.toml``), ``scaffold`` (``kllab new``), ``engine`` (kept-kernel execution, shared by
    runs, sweeps and tests), ``run``, ``sweep``, ``record``, ``ranges``, ``nbtools``, ``dashboard``,
    ``handout`` (a course's copies), ``site`` (the static course site), ``cli``.

A paper's notebook is ``notebooks/<slug>.ipynb`` (``kllab new P02`` writes its skeleton); the
tests of every notebook (``tests/notebooks/``) pick it up from the catalog.

Math order everywhere: ``f(p, q)`` is D(p‖q), with p the reference (data, teacher,
target) and q the model. ``direction="forward"`` is KL(p‖q), ``"reverse"`` is KL(q‖p).
"""

__version__ = "0.2.0"
