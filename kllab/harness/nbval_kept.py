"""A pytest plugin: nbval runs notebooks on the engine's kept kernel instead of starting one per notebook.

``pytest -p kllab.harness.nbval_kept --nbval-lax notebooks/`` (kllab's ``pyproject.toml`` adds the
``-p`` option) gives nbval the same kernel that :mod:`kllab.harness.engine` keeps for the calling
thread, reset to its start-up state and moved to the notebook's folder before each notebook, and
keeps it afterwards instead of shutting it down. Starting a kernel and importing torch and plotly
costs seconds per notebook; the reset costs a fraction of one. A kernel that died or timed out is
replaced at the next notebook. Nothing else of nbval changes: it still sends each cell, collects
its outputs and compares the cells marked ``# NBVAL_CHECK_OUTPUT``.

With pytest-xdist, the plugin's scheduler keeps each notebook's cells together on one worker (they
share a kernel, in order), gives each parametrised test (one notebook's run, panel or dashboard)
a unit of its own, so that the notebooks spread over the workers, keeps each group of the ``kllab_groups``
ini option together in one process, in collection order, and keeps other tests with their module
(module-scoped fixtures).
"""

from __future__ import annotations

import tempfile

__all__ = ["KeptRunningKernel"]


def _kept_class():
    from nbval.kernel import RunningKernel

    from .engine import kernels

    class KeptRunningKernel(RunningKernel):
        """nbval's kernel handle over this thread's kept kernel."""

        def __init__(self, kernel_name, cwd=None, startup_timeout=60):
            cwd = cwd or tempfile.gettempdir()
            self._kept = kernels.kept_kernel(kernel_name, cwd, tempfile.gettempdir())
            try:
                self._kept.prepare(cwd)
            except (RuntimeError, TimeoutError):  # it died or hangs: start again
                kernels.drop_kept_kernel()
                self._kept = kernels.kept_kernel(kernel_name, cwd, tempfile.gettempdir())
                self._kept.prepare(cwd)
            self._kept.runs += 1
            self.km = self._kept.km
            self.kc = self.km.blocking_client()
            self.kc.start_channels()
            self._ensure_iopub_up()

        def stop(self):
            """Close this notebook's channels; the kernel stays for the next notebook."""
            self.kc.stop_channels()
            del self.km

    return KeptRunningKernel


KeptRunningKernel = None


def pytest_configure(config):
    global KeptRunningKernel
    import nbval.plugin

    KeptRunningKernel = _kept_class()
    nbval.plugin.RunningKernel = KeptRunningKernel


def pytest_addoption(parser):
    parser.addini("kllab_groups", type="linelist", default=[],
                  help="xdist units that must run in one process, in collection order, one per line: "
                       "'NAME: NODEID-PREFIX NODEID-PREFIX ...' (a prefix matches itself, 'prefix[...]' and 'prefix::...')")


def _groups(config) -> list[tuple[str, tuple[str, ...]]]:
    groups = []
    for line in config.getini("kllab_groups"):
        name, sep, prefixes = line.partition(":")
        if not sep or not prefixes.split():
            raise ValueError(f"kllab_groups: each line must be 'NAME: NODEID-PREFIX ...'; got {line!r}")
        groups.append((name.strip(), tuple(prefixes.split())))
    return groups


def _group_of(nodeid: str, groups) -> str | None:
    for name, prefixes in groups:
        for prefix in prefixes:
            if nodeid == prefix or nodeid.startswith((prefix + "[", prefix + "::")):
                return name
    return None


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    groups = _groups(config)

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            # The ini's groups, not pytest.mark.xdist_group: xdist's --dist loadgroup renames items, which
            # pytest 9.2 ignores (the nodeid is no longer an attribute a plugin can set).
            group = _group_of(nodeid, groups)
            if group is not None:
                return "group:" + group
            if ".ipynb::" in nodeid:
                return nodeid.split("::", 1)[0]
            if nodeid.endswith("]"):
                return nodeid
            return nodeid.rsplit("::", 1)[0]

    return NotebookScheduling(config, log)
