"""The one execution engine of kllab: papermill runs of notebooks on Jupyter kernels kept between runs.

``kllab run``, ``kllab sweep`` and the test suite all execute notebooks here. A *task* (see
:func:`task_for`) names a notebook, its parameters and how to run it; :func:`run_point` executes
one task in the calling thread's kept kernel and returns a plain dict (status, error naming the
cell, seconds, check lines, recorded values, the executed notebook's text); :func:`run_tasks`
runs many on local worker threads, each with its own kernel, or on a Dask cluster. The executed
notebooks are real papermill outputs: the ``injected-parameters`` cell and papermill's metadata.

Kept kernels (:mod:`.kernels`). Starting a kernel and importing torch and plotly takes a few
seconds, more than a FAST notebook's own work, so each worker thread keeps one kernel and reuses
it from notebook to notebook. Before every run the kernel is brought back to its state after
start-up: the user namespace is cleared (as ``%reset -f``), the execution counter set to 1, every
widget closed, and the working directory, environment variables, ``sys.path``, warning filters,
NumPy's error and print settings, torch's default dtype, thread count, grad mode and
deterministic flag, and plotly's default renderer and template are restored; the global random
generators of Python, NumPy and torch start as in a new process. Imported modules stay imported.
A notebook whose cell raises keeps the kernel (the reset cleans up after it); a kernel that died,
timed out or failed to reset is replaced by a new one. ``task["fresh"]`` (``--fresh-kernels``)
starts a new kernel for the run instead, as stock papermill does, for notebooks that change
other process-wide state.
"""

from .kernels import kernel_baseline, kernel_restore, kept_kernel, kill_all, shutdown_all
from .points import describe_failure, failure, first_line, run_point, task_for
from .pool import check_workers, local_workers, run_tasks

__all__ = ["task_for", "run_point", "run_tasks", "local_workers", "check_workers", "failure", "describe_failure", "first_line",
           "kept_kernel", "kill_all", "shutdown_all", "kernel_baseline", "kernel_restore", "KERNEL"]

KERNEL = "python3"
"""The kernel every kllab notebook runs on."""
